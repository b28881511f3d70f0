"""Generation history: what one generation used and made, as hosts report it.

A host (SDNext's before/after-process hooks, our own jobs, the standalone pipeline) fills a
``GenerationRecord``; ``Library.record_generation`` stores it, resolves its LoRAs to library
entries (unknown ones keep their name) and bumps each LoRA's use count and last use.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from .errors import LoraManagerError

log = logging.getLogger("lora_manager")

STATUSES = ("succeeded", "interrupted", "failed", "no_model")


@dataclass
class UsedLora:
    name: str  # as written in the prompt (SDNext name, relative path, absolute path or hash)
    te_weight: float | None = None
    unet_weight: float | None = None


@dataclass
class GeneratedImage:
    path: str | None = None  # where the host saved it
    thumbnail: str | None = None  # our own copy when the host did not save
    seed: int | None = None


@dataclass
class GenerationRecord:
    started_at: float
    status: str
    duration: float | None = None
    source: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    seeds: list[int] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    model_name: str | None = None
    model_hash: str | None = None
    infotext: str | None = None
    error: str | None = None
    group: str | None = None  # sweep / A-B group key (GenerationRequest.group)
    label: str | None = None
    loras: list[UsedLora] = field(default_factory=list)
    images: list[GeneratedImage] = field(default_factory=list)

    @classmethod
    def loras_from_prompt(cls, prompt: str) -> list[UsedLora]:
        """The LoRAs of a prompt's ``<lora:…>`` tokens, with SDNext's effective weights."""
        from .prompts import extract_loras

        _text, refs = extract_loras(prompt)
        out = []
        for ref in refs:
            te, unet = ref.te_weight, ref.unet_weight
            out.append(UsedLora(ref.name, te if isinstance(te, float) else None, unet if isinstance(unet, float) else None))
        return out


class Recorder:
    """Takes records on the generating thread and stores them on a thread of its own.

    ``submit`` only appends to a queue, so the generating thread (SDNext holds its queue lock
    there) never waits for the database; a record that cannot be stored is logged and dropped,
    never raised into the host."""

    def __init__(self, store: Callable[[GenerationRecord], int]):
        self._store = store
        self._queue: queue.SimpleQueue[GenerationRecord | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, record: GenerationRecord) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(record)
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="lora-manager-history", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted record was handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self._store(record)
            except (LoraManagerError, SQLAlchemyError, OSError, ValueError, TypeError) as e:
                log.error("LoRA Manager: a generation could not be recorded: %s", e)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
