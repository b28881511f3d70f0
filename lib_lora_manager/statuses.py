"""The closed sets of words the project stores and sends: a generation's status and source, a
job's status and kind. Each is a ``StrEnum``, so a member is the very string the database holds
and REST returns (``GenerationStatus.NO_MODEL == "no_model"``) and a plain string read back from
either compares equal to it.

This module imports nothing of ours: the UI imports it while SDNext starts, before SQLAlchemy.
"""

from __future__ import annotations

import enum

if hasattr(enum, "StrEnum"):
    StrEnum = enum.StrEnum
else:  # Python 3.10 (SDNext still runs on it): what 3.11's StrEnum does for ours
    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return str.__str__(self)


class GenerationStatus(StrEnum):
    """How one generation ended (the history's ``status``; ``status:`` in its queries)."""

    SUCCEEDED = "succeeded"
    INTERRUPTED = "interrupted"  # stopped before it finished (SDNext's Stop, a cancel)
    FAILED = "failed"
    NO_MODEL = "no_model"  # no model was loaded (we never load one)


class GenerationSource(StrEnum):
    """Where a generation came from, as far as we tell. Hosts may report other words (SDNext's
    processing class name when it is none of these), so a stored source is any short text."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    CONTROL = "control"
    VIDEO = "video"
    API = "api"  # SDNext's REST API
    LORA_MANAGER = "lora-manager"  # our own jobs
    IMPORTED = "imported"  # read from an image file made before (image_import.py)


# a re-run is a txt2img request: sources that need an input image cannot be repeated
RERUNNABLE_SOURCES = (None, "", GenerationSource.TXT2IMG, GenerationSource.API, GenerationSource.LORA_MANAGER)


class JobStatus(StrEnum):
    """Where a job of the queue is (``GET /jobs/{id}``'s ``status``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE_JOBS = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED_JOBS = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


class JobKind(StrEnum):
    GENERATE = "generate"
    SWEEP = "sweep"  # one LoRA at several weights
    AB = "ab"  # with and without one LoRA


class FileOperationKind(StrEnum):
    """What a journalled file operation does (fileops.py)."""

    MOVE = "move"
    TRASH = "trash"
    RESTORE = "restore"  # out of the trash
