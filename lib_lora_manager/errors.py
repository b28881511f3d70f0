"""Domain errors. Their message is written for the user: the UI shows it as is, REST returns it
as JSON with a 4xx status, the CLI prints it on one line and exits non-zero."""

from __future__ import annotations


class LoraManagerError(Exception):
    """Base class; ``str(error)`` is a complete, user-readable sentence."""

    status = 400


class NotFound(LoraManagerError):
    status = 404


class InvalidInput(LoraManagerError):
    status = 422


class QueryError(InvalidInput):
    """A search query that cannot be parsed; ``position`` points at the offending term."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


class FileOperationError(LoraManagerError):
    """Moving, trashing or restoring a file failed; the index was left unchanged for it."""

    status = 409

    def __init__(self, path: str, reason: str):
        from .naming import display

        super().__init__(f"{display(path)}: {reason}")  # a name may hold bytes that are not UTF-8
        self.path = path
        self.reason = reason


class Busy(LoraManagerError):
    status = 409


class TooLarge(LoraManagerError):
    """A request body past the size any honest request has; refused before it is read."""

    status = 413
