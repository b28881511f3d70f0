"""The long-lived objects of one running host: the library, the history recorder, the generator
and the job queue.

Each host (SDNext, standalone) makes one ``App`` and hands its methods to the UI and the REST
routes. Every object is built on first use, once, however many threads ask at the same time; a
slow build (the library's migrations) never holds up a cheap one (the recorder SDNext's
generating thread submits to). ``close`` shuts them down in the one order that loses nothing:
the job worker first, so no new records come; then the recorder, which stores the pending ones;
then the library.

Importing this module loads neither SQLAlchemy nor the library: SDNext's startup stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .generation import Generator
    from .history import Recorder
    from .jobs import JobQueue
    from .library import Library

T = TypeVar("T")


class _Slot:
    """One object being built, or built: later askers wait on ``done`` without the lock."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class App:
    """``open_library()`` opens the library; ``generator(app)`` makes the host's generator (None:
    the host cannot generate, and has no job queue); ``store(library, item)`` stores one item
    submitted to the recorder (default: ``library.history.record`` of a GenerationRecord)."""

    def __init__(self, open_library: Callable[[], Library], *, generator: Callable[[App], Generator] | None = None,
                 store: Callable[[Library, Any], Any] | None = None):
        self._open_library = open_library
        self._make_generator = generator
        self._store = store or (lambda library, record: library.history.record(record))
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._closing = False
        self._shut: set[str] = set()  # what close() has reached: never built or started again

    # --- the objects ----------------------------------------------------------------------------

    def library(self) -> Library:
        return self._built("library", self._open_library)

    def recorder(self) -> Recorder:
        """The history recorder; its thread stores what ``submit`` queues."""
        from .history import Recorder

        return self._built("recorder", lambda: Recorder(lambda item: self._store(self.library(), item)))

    def submit(self, item: Any) -> None:
        """Queue one generation for the history (returns at once: the recorder's thread stores it)."""
        self.recorder().submit(item)

    def generator(self) -> Generator | None:
        if self._make_generator is None:
            return None
        return self._built("generator", lambda: self._make_generator(self))

    def jobs(self) -> JobQueue:
        """The job queue, (re)started on every use: jobs left queued by a previous run or before
        ``pause`` go on."""
        if self._make_generator is None:
            raise RuntimeError("this host cannot generate: it has no job queue")
        queue = self._built("jobs", self._new_queue)
        with self._lock:
            if "jobs" in self._shut:
                raise RuntimeError("LoRA Manager has shut down")
            queue.start()
        return queue

    def _new_queue(self) -> JobQueue:
        from .jobs import JobQueue

        return JobQueue(self.library().store, self.generator())

    def resume_jobs(self) -> None:
        """Start the job worker now if jobs were left queued (they go on) or running (they end
        interrupted); otherwise it starts when someone first uses the queue."""
        from .jobs import left_over

        if self._make_generator is not None and left_over(self.library().store.db):
            self.jobs()

    # --- stopping ------------------------------------------------------------------------------

    def pause(self, timeout: float = 5.0) -> None:
        """Stop the job worker (a running job finishes) and store the pending records; everything
        stays open, and the next ``jobs()`` starts the worker again (SDNext's UI restart)."""
        queue, recorder = self._existing("jobs"), self._existing("recorder")
        if queue is not None:
            queue.close(timeout)
        if recorder is not None:
            recorder.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Shut down for good: the job worker (a running job finishes, and may still submit its
        record), then the recorder (after storing what is pending), then the library. Each is
        neither built nor started again once its turn has come; a second call does nothing."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        for name in ("jobs", "recorder", "library"):
            with self._lock:
                self._shut.add(name)
                slot = self._slots.get(name)
            if slot is None or not slot.done.wait(timeout) or slot.value is None:
                continue  # never built, or its build failed (or is still hanging)
            if name == "library":
                slot.value.close()
            else:
                slot.value.close(timeout)

    # --- building once ---------------------------------------------------------------------------

    def _built(self, name: str, build: Callable[[], T]) -> T:
        """The object ``name``, built by the first caller outside the lock; callers that come
        while it is being built wait for it. A failed build is raised to everyone waiting for
        it, and tried again by the next caller. What ``close`` has reached is not built any
        more, but an object already built is still returned (it is closed, or being closed)."""
        with self._lock:
            slot = self._slots.get(name)
            mine = slot is None
            if mine:
                if name in self._shut:
                    raise RuntimeError("LoRA Manager has shut down")
                slot = self._slots[name] = _Slot()
        if not mine:
            slot.done.wait()
            if slot.error is not None:
                raise slot.error
            return slot.value
        try:
            slot.value = build()
        except BaseException as e:
            slot.error = e
            with self._lock:
                del self._slots[name]
            raise
        finally:
            slot.done.set()
        return slot.value

    def _existing(self, name: str) -> Any:
        """The object ``name`` if it has been built, without building or waiting."""
        with self._lock:
            slot = self._slots.get(name)
        return slot.value if slot is not None and slot.done.is_set() else None
