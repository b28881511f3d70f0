"""modules.errors: display() logs an exception and swallows it; the double also keeps it."""
from modules.logger import log

already_displayed = {}
displayed: list[tuple[str, BaseException]] = []  # (task, exception), for tests


class ValidationError(ValueError):
    """Expected validation failure: display() reports the message without a traceback."""


def install(suppress=None):  # pylint: disable=unused-argument
    pass


def display(e: Exception, task: str, suppress=None):
    displayed.append((task, e))
    if isinstance(e, ValidationError):
        log.error(f"{task or 'error'}: {e}")
        return
    log.error(f"{task or 'error'}: {type(e).__name__}")
    log.traceback(e, suppress=suppress)


def display_once(e: Exception, task):
    if task in already_displayed:
        return
    display(e, task)
    already_displayed[task] = 1


def run(code, task: str):
    try:
        code()
    except Exception as e:  # pylint: disable=broad-except
        display(e, task)


def exception(suppress=None):  # pylint: disable=unused-argument
    import sys
    e = sys.exc_info()[1]
    if e is not None:
        log.traceback(e)
