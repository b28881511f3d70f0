"""File hashes for LoRAs: full-file SHA-256 and the kohya "addnet" hash, in one read.

Two hashes matter for a LoRA:

- ``sha256`` of the whole file. CivitAI's by-hash lookup takes it, and its first ten hex digits
  upper-cased are CivitAI's "AutoV2" hash.
- ``addnet``: SHA-256 of the bytes after the safetensors header, i.e. from offset ``8 + N`` to the
  end, where ``N`` is the little-endian u64 at the start of the file. It ignores the JSON header,
  so editing a LoRA's metadata does not change it. SDNext uses it as the LoRA hash
  (``modules/hashes.py`` ``addnet_hash_safetensors``) and shows its first eight digits
  (``shorthash``) in infotexts and ``<lora:…>`` lookups. Non-safetensors files have none here;
  SDNext falls back to the full-file hash for them, which callers can do with ``sha256``.

Libraries live on slow disks and NAS shares, so the file is read once and both digests are fed
from the same buffer: the main thread updates one, a short-lived worker thread the other
(hashlib releases the GIL on large buffers, so the two run in parallel and the wall time stays
that of a single ``sha256sum``). Pages already hashed are dropped from the page cache so hashing
a 50 GB library does not evict everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .wording import plural

__all__ = [
    "FileHashes",
    "HashCancelled",
    "HashError",
    "hash_file",
    "lower_thread_priority",
]

_SAFETENSORS_LENGTH_BYTES = 8
# Below this size the second thread costs more than it saves: hash both digests inline.
_THREADED_MIN_SIZE = 8 << 20
_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
# Niceness given to background hashing threads by lower_thread_priority().
_BACKGROUND_NICENESS = 10


@dataclass(frozen=True)
class FileHashes:
    """Digests of one file, lowercase hex."""

    sha256: str
    addnet: str | None  # None for files that are not safetensors

    @property
    def autov2(self) -> str:
        """CivitAI's AutoV2 hash: the first ten hex digits of the full SHA-256, upper case."""
        return self.sha256[:10].upper()

    @property
    def shorthash(self) -> str | None:
        """SDNext's LoRA short hash: the first eight hex digits of the addnet hash."""
        return self.addnet[:8] if self.addnet else None


class HashError(Exception):
    """A file could not be hashed; ``str()`` is a one-line reason naming the file."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class HashCancelled(Exception):
    """``should_stop`` asked hashing to stop; nothing was computed."""


def hash_file(
    path: str | os.PathLike[str],
    *,
    safetensors: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk_size: int = 4 << 20,
    drop_cache: bool = True,
) -> FileHashes:
    """Hash ``path`` in one sequential pass, returning the full SHA-256 and the addnet hash.

    ``safetensors``: whether to compute the addnet hash; None decides by the ``.safetensors``
    extension (case-insensitive). ``should_stop`` is polled before each chunk; when it returns
    true, HashCancelled is raised. ``drop_cache`` advises the kernel to drop pages once hashed.

    Raises HashError (never a bare OSError) when the file cannot be opened or read, is not a
    regular file, is a safetensors file too short for its declared header, or changed (size,
    mtime, or replaced at its path) while it was being read.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if safetensors is None:
        safetensors = os.fspath(path).lower().endswith(".safetensors")
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is rejected below as not a regular file.
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError as e:
        raise HashError(path, f"cannot open: {_reason(e)}") from e
    try:
        return _hash_fd(fd, path, safetensors=safetensors, should_stop=should_stop,
                        chunk_size=chunk_size, drop_cache=drop_cache)
    finally:
        os.close(fd)


def _hash_fd(
    fd: int,
    path: str | os.PathLike[str],
    *,
    safetensors: bool,
    should_stop: Callable[[], bool] | None,
    chunk_size: int,
    drop_cache: bool,
) -> FileHashes:
    before = _fstat(fd, path)
    if not stat.S_ISREG(before.st_mode):
        raise HashError(path, "not a regular file")
    size = before.st_size
    body_start = _body_offset(fd, path, size) if safetensors else None
    _advise(fd, 0, 0, "POSIX_FADV_SEQUENTIAL")

    full = hashlib.sha256()
    addnet = hashlib.sha256() if body_start is not None else None
    side = _SideHasher(addnet) if addnet is not None and size >= _THREADED_MIN_SIZE else None
    try:
        _feed(fd, path, full, addnet, side=side, size=size, body_start=body_start or 0,
              should_stop=should_stop, chunk_size=chunk_size, drop_cache=drop_cache)
    finally:
        if side is not None:
            side.close()
    _check_unchanged(fd, path, before)
    return FileHashes(full.hexdigest(), addnet.hexdigest() if addnet is not None else None)


def _feed(
    fd: int,
    path: str | os.PathLike[str],
    full: hashlib._Hash,
    addnet: hashlib._Hash | None,
    *,
    side: _SideHasher | None,
    size: int,
    body_start: int,
    should_stop: Callable[[], bool] | None,
    chunk_size: int,
    drop_cache: bool,
) -> None:
    """Read the ``size`` bytes the file had when opened, feeding all of them to ``full`` and
    those from ``body_start`` on to ``addnet`` (through ``side`` when given).

    Reading stops at ``size`` even if the file grows (a download in progress); the stat check
    afterwards reports that."""
    raw = io.FileIO(fd, "r", closefd=False)  # os.readv/pread are POSIX-only; this works everywhere
    view = memoryview(bytearray(min(chunk_size, max(size, 1))))
    offset = 0
    while offset < size:
        if should_stop is not None and should_stop():
            raise HashCancelled(os.fspath(path))
        try:
            n = _read_into(raw, view[: min(len(view), size - offset)])
        except OSError as e:
            raise HashError(path, f"read error at byte {offset}: {_reason(e)}") from e
        if not n:
            raise HashError(path, "file changed while hashing (it got shorter)")
        chunk = view[:n]
        body = chunk[max(0, body_start - offset):] if addnet is not None and offset + n > body_start else None
        if side is not None and body is not None:
            side.submit(body)
            full.update(chunk)
            side.wait()
        else:
            full.update(chunk)
            if body is not None and addnet is not None:
                addnet.update(body)
        if drop_cache:
            _advise(fd, offset, n, "POSIX_FADV_DONTNEED")
        offset += n


def _read_into(raw: io.FileIO, buffer: memoryview) -> int | None:
    """One read into ``buffer``; short reads are fine (network filesystems return them)."""
    return raw.readinto(buffer)


class _SideHasher:
    """A worker thread that updates one hash object with buffers handed to it, one at a time.

    A thread per file (rather than a shared pool) keeps concurrent callers from queueing behind
    each other, and on Linux it inherits the caller's niceness, so lower_thread_priority() in a
    background scanner covers both halves of the work.
    """

    _STOP = None

    def __init__(self, target: hashlib._Hash) -> None:
        self._target = target
        self._jobs: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="lora-hash-side", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not self._STOP:
            try:
                self._target.update(job)
            except BaseException as e:  # handed back to the caller, re-raised there
                self._done.put(e)
                continue
            self._done.put(None)

    def submit(self, data: memoryview) -> None:
        self._jobs.put(data)

    def wait(self) -> None:
        error = self._done.get()
        if error is not None:
            raise error

    def close(self) -> None:
        self._jobs.put(self._STOP)
        self._thread.join()


def _body_offset(fd: int, path: str | os.PathLike[str], size: int) -> int:
    """Offset of the first byte after the safetensors header, validated against the file size."""
    if size == 0:
        raise HashError(path, "empty file, not a safetensors file")
    if size < _SAFETENSORS_LENGTH_BYTES:
        raise HashError(path, f"truncated safetensors: {plural(size, 'byte')}, shorter than the 8-byte header length")
    try:
        head = os.read(fd, _SAFETENSORS_LENGTH_BYTES)  # at offset 0: the fd was just opened
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError as e:
        raise HashError(path, f"read error at byte 0: {_reason(e)}") from e
    if len(head) < _SAFETENSORS_LENGTH_BYTES:
        raise HashError(path, "file changed while hashing")
    header_length = int.from_bytes(head, "little")
    body_start = _SAFETENSORS_LENGTH_BYTES + header_length
    if body_start > size:
        raise HashError(
            path,
            f"invalid safetensors header length {header_length}: it ends past the end of the file ({plural(size, 'byte')})",
        )
    return body_start


def _fstat(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    try:
        return os.fstat(fd)
    except OSError as e:
        raise HashError(path, f"cannot stat: {_reason(e)}") from e


def _check_unchanged(fd: int, path: str | os.PathLike[str], before: os.stat_result) -> None:
    """Raise when the open file was modified, or the path now names another file."""
    after = _fstat(fd, path)
    try:
        at_path = os.stat(path)
    except OSError as e:
        raise HashError(path, "file changed while hashing (it is gone from its path)") from e
    same_content = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    same_file = (at_path.st_dev, at_path.st_ino) == (before.st_dev, before.st_ino)
    if not same_content or not same_file:
        raise HashError(path, "file changed while hashing")


def _advise(fd: int, offset: int, length: int, advice_name: str) -> None:
    """posix_fadvise where the platform has it; advice is only a hint, so failures are ignored."""
    advice = getattr(os, advice_name, None)
    if advice is None or not hasattr(os, "posix_fadvise"):
        return
    with contextlib.suppress(OSError):  # e.g. EINVAL on some network filesystems
        os.posix_fadvise(fd, offset, length, advice)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def lower_thread_priority() -> None:
    """Best effort: make the calling thread (and threads it starts later) yield the CPU.

    On Linux niceness is per thread: setpriority on the native thread id raises the calling
    thread's niceness to 10 (never lowers it). Threads created afterwards inherit it, including
    hash_file's worker. The CFQ/BFQ I/O schedulers derive I/O priority from niceness too.
    Elsewhere it does nothing, because there setpriority would affect the whole process.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < _BACKGROUND_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, _BACKGROUND_NICENESS)
    except OSError:
        pass  # not permitted in some sandboxes; hashing still works at normal priority
