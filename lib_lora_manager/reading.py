"""Read changed LoRA files for a scan: header, metadata, sidecars and embedded thumbnail.

``analyse`` reads one file; ``Readers`` reads batches of them, in worker processes when the
machine has more than one core, because parsing headers is CPU work that threads cannot share
(the GIL). The scan's own process stays the one writer: workers send back each file's
``Analysis`` with the metadata already serialised, so the parent neither parses nor re-encodes.

Workers are fresh interpreters (``python -I -S -c``) that import only this module and the
foundation modules under it, on the parent's ``sys.path``. They never run the host's main
script: multiprocessing's spawn would import SDNext's main script again in every worker, and
fork would copy a process full of torch threads and locks. A request is a pickled list of
``Found`` on the worker's stdin, the reply the pickled list of ``Analysis`` on its stdout; a
worker ends when its stdin closes (its parent ended or finished). A worker that dies costs
nothing but speed: its files are read in this process, as they are with one core, for a small
scan, or when no worker can start.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import naming, sidecars
from .lora_info import LoraInfo, extract_with, key_facts
from .safetensors_header import HeaderError, Layouts, parse_header, read_header_bytes

try:
    import orjson
except ImportError:  # the standard library serialises the metadata
    orjson = None

log = logging.getLogger("lora_manager")

MIN_FILES = 64  # a batch smaller than this is read here: starting workers would cost more than it saves
CHUNK = 16  # files per request: small enough that every worker stays busy to the end of a batch
AHEAD = 2  # batches read while the one before is written: bounds what is held in memory
THREADS = 4  # files read at once in this process: reads overlap, parsing takes turns
READ_AHEAD = 2  # headers a worker reads while it parses one: a slow disk or share is kept busy
# Past about this many workers the one writer is the limit (it spends about a fifth of a worker's
# time per file), and each worker is another interpreter in memory.
MAX_PROCESSES = 6

# A header read ahead: (its bytes, the data region's size), or why it cannot be read.
HeaderBytes = tuple[bytes, int] | HeaderError


@dataclass
class Found:
    """A LoRA file seen on disk during this scan."""

    path: str
    root: str
    relpath: str
    directory: str
    filename: str
    size: int
    mtime_ns: int
    inode: int
    sidecar_names: list[str]
    refused: dict[str, str] = field(default_factory=dict)  # sidecars not read (links leaving the library)
    root_id: str | None = None  # the library folder's identity (roots.py)


@dataclass
class Analysis:
    """Everything read from one changed file and its sidecars, ready to be written."""

    found: Found
    columns: dict[str, Any]
    head: dict[str, Any]
    metadata_json: str | None  # the bounded metadata as stored, None when there is none
    trigger_phrase: str | None  # modelspec.trigger_phrase, the first trigger word of a new row
    side: dict[str, Any]
    data: sidecars.SidecarData


# --- one file ---------------------------------------------------------------------------------


def analyse(found: Found, thumbnail_dir: str | None, header_bytes: HeaderBytes | None = None) -> Analysis:
    """Read one changed file; whatever goes wrong reading it is an error on this one item.
    ``header_bytes``: what read_ahead gave for it, when the header was read ahead."""
    try:
        head, metadata, info = header_columns(found, thumbnail_dir, header_bytes)
        side, data = sidecar_columns(found)
    except (OSError, ValueError, UnicodeError) as e:
        log.warning("LoRA Manager: cannot read %s: %s", naming.display(found.path), e)
        return unreadable(found, f"cannot read the file: {e}")
    return Analysis(found, file_columns(found), head, _dumps(metadata) if metadata else None,
                    info.trigger_phrase if info else None, side, data)


def unreadable(found: Found, error: str) -> Analysis:
    """The analysis of a file known only by its directory entry: listed, with ``error`` set."""
    side = {**no_sidecars(found, None), "sidecar_signature": None}
    return Analysis(found, file_columns(found), empty_head(error), None, None, side, sidecars.SidecarData())


def file_columns(found: Found) -> dict[str, Any]:
    """Columns describing where the file is and what the filesystem says about it."""
    stem, ext = os.path.splitext(found.filename)
    folder = os.path.dirname(found.relpath)
    return {
        "path": found.path, "root": found.root, "root_id": found.root_id, "relpath": found.relpath, "folder": folder,
        "filename": found.filename, "stem": stem, "sdnext_name": naming.sdnext_name(found.filename),
        "format": naming.LORA_FORMATS[ext.lower()], "size": found.size, "mtime_ns": found.mtime_ns,
        "mtime": found.mtime_ns / 1e9, "inode": found.inode,
    }


def empty_head(error: str | None = None) -> dict[str, Any]:
    return {
        "error": error, "header_size": None, "base_model_detected": "unknown", "base_model_source": "none",
        "adapter_type": "unknown", "network_module": None, "network_dim": None, "network_alpha": None,
        "title": None, "output_name": None, "training_model": None, "resolution": None, "epochs": None,
        "steps": None, "architecture": None, "trigger_suggestions": None, "embedded_preview": None,
    }


def header_columns(found: Found, thumbnail_dir: str | None = None,
                   header_bytes: HeaderBytes | None = None) -> tuple[dict[str, Any], dict[str, str], LoraInfo | None]:
    """Columns derived from the safetensors header, the bounded metadata, and the info.

    A file that cannot be read gets ``error`` set and everything else empty: one error on one
    item, never a failed scan."""
    empty = empty_head()
    if not found.filename.lower().endswith(".safetensors"):
        return empty, {}, None  # .pt/.ckpt are pickles: listed, never unpickled
    try:
        if header_bytes is None:
            header_bytes = read_header_bytes(found.path)
        elif isinstance(header_bytes, HeaderError):
            raise header_bytes
        info = read_info(*header_bytes, found.filename)
    except HeaderError as e:
        return {**empty, "error": str(e)}, {}, None
    columns = {
        **empty,
        "header_size": len(header_bytes[0]), "base_model_detected": info.base_model,
        "base_model_source": info.base_model_source, "adapter_type": info.adapter_type,
        "network_module": info.network_module, "network_dim": info.network_dim,
        "network_alpha": info.network_alpha, "title": info.title, "output_name": info.output_name,
        "training_model": info.training_model, "resolution": info.resolution, "epochs": info.epochs,
        "steps": info.steps, "architecture": info.architecture,
        "trigger_suggestions": json.dumps(info.trigger_suggestions) if info.trigger_suggestions else None,
        "embedded_preview": _save_thumbnail(found, info, thumbnail_dir),
    }
    return columns, info.metadata, info


# Tensor parts met in this process (its own, in each reading process): most files of a library
# repeat the layout of another, and then only their metadata is parsed (Layouts says why).
LAYOUTS = Layouts()


def read_info(raw: bytes, data_size: int, filename: str, layouts: Layouts | None = None) -> LoraInfo:
    """The facts of the header ``raw``; raises HeaderError as parse_header does."""
    if layouts is None:
        layouts = LAYOUTS
    seen = layouts.match(raw, data_size)
    if seen is not None:
        metadata, keys = seen
        return extract_with(metadata, keys, filename)
    header = parse_header(raw, data_size)
    keys = key_facts(header.tensors)
    layouts.add(raw, header, keys)
    return extract_with(header.metadata, keys, filename)


_MIME_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def _save_thumbnail(found: Found, info: LoraInfo, thumbnail_dir: str | None) -> str | None:
    """Write a modelspec.thumbnail to our data folder (never next to the LoRA)."""
    if not info.thumbnail or not thumbnail_dir:
        return None
    mime, data = info.thumbnail
    ext = _MIME_EXT.get(mime)
    if ext is None:
        return None
    # fsencode: the path's own bytes, whatever they are (a name need not be valid UTF-8)
    name = hashlib.sha1(os.fsencode(found.path) + f"\0{found.mtime_ns}".encode()).hexdigest()[:20] + ext
    target = os.path.join(thumbnail_dir, name)
    try:
        os.makedirs(thumbnail_dir, exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
    except OSError as e:
        log.warning("LoRA Manager: cannot save embedded thumbnail of %s: %s", found.path, e)
        return None
    return target


def sidecar_columns(found: Found) -> tuple[dict[str, Any], sidecars.SidecarData]:
    stem = os.path.splitext(found.filename)[0]
    data = sidecars.read_sidecars(found.directory, stem, found.sidecar_names, refused=found.refused)
    columns = {
        "sidecar_signature": signature(found),
        "description": data.description,
        "sidecar_preview": data.preview,
        "civitai": json.dumps(data.civitai) if data.civitai else None,
        "sidecar_errors": "\n".join(data.errors) if data.errors else None,
        "base_model_sidecar": data.base_model,
    }
    return columns, data


def signature(found: Found) -> str | None:
    return sidecars.sidecar_signature(found.directory, found.sidecar_names) if found.sidecar_names else None


def no_sidecars(found: Found, error: str | None) -> dict[str, Any]:
    """Sidecar columns of a LoRA whose sidecars could not be read or stored: only the error."""
    return {"sidecar_signature": signature(found), "description": None, "sidecar_preview": None, "civitai": None,
            "sidecar_errors": error, "base_model_sidecar": None}


def _dumps(metadata: dict[str, str]) -> str:
    # header values hold no lone surrogates (the parser refuses them), so orjson can write them all
    return orjson.dumps(metadata).decode("utf-8") if orjson is not None else json.dumps(metadata)


# --- many files -------------------------------------------------------------------------------


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class Readers:
    """Reads batches of changed files, in worker processes when there is more than one core.

        with Readers(thumbnail_dir) as readers:
            for analysed in readers.pieces(batch, 100):  # the scanner: write while the rest is read
                write(analysed)
            for analysed in readers.analysed(batches):  # or whole batches, reading ahead
                write(analysed)

    Workers start with the first batch of at least ``min_files`` files, one per core (at most
    MAX_PROCESSES), and then read every batch; before that, with one core, or when workers
    cannot start, the files are read in this process."""

    def __init__(self, thumbnail_dir: str | None, *, processes: int | None = None, min_files: int = MIN_FILES):
        self.thumbnail_dir = thumbnail_dir
        if processes is None:
            processes = min(cores(), MAX_PROCESSES) if cores() > 1 else 0
        self.processes = processes
        self.min_files = min_files
        self._pool: _Pool | None = None
        self._threads: ThreadPoolExecutor | None = None

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._threads is not None:
            self._threads.shutdown(cancel_futures=True)
            self._threads = None

    def analysed(self, batches: Iterable[list[Found]]) -> Iterator[list[Analysis]]:
        """The analyses of each batch in order. While the caller handles one, up to AHEAD more
        are being read; a caller that stops early leaves them unread (see close)."""
        pending: deque[list[Future]] = deque()
        for batch in batches:
            pending.append(self._submit(batch))
            while len(pending) > AHEAD:
                yield _joined(pending.popleft())
        while pending:
            yield _joined(pending.popleft())

    def pieces(self, batch: list[Found], at_least: int = 1) -> Iterator[list[Analysis]]:
        """The analyses of ``batch`` in order, handed over in pieces of at least ``at_least`` as
        soon as they are read: the caller writes one piece while the readers read the rest."""
        ready: list[Analysis] = []
        for future in self._submit(batch):
            result = future.result()
            ready.extend(result if isinstance(result, list) else (result,))
            if len(ready) >= at_least:
                yield ready
                ready = []
        if ready:
            yield ready

    def _submit(self, batch: list[Found]) -> list[Future]:
        # workers that are running take every batch; only a big one starts them
        pool = self._workers() if self._pool is not None or len(batch) >= self.min_files else None
        if pool is not None:
            return [pool.submit(batch[start:start + CHUNK]) for start in range(0, len(batch), CHUNK)]
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="lora-manager-read")
        return [self._threads.submit(analyse, found, self.thumbnail_dir) for found in batch]

    def _workers(self) -> _Pool | None:
        if self._pool is None and self.processes > 0:
            self._pool = _Pool(self.thumbnail_dir, self.processes)
        return self._pool


def _joined(futures: list[Future]) -> list[Analysis]:
    out: list[Analysis] = []
    for future in futures:
        result = future.result()
        if isinstance(result, list):
            out.extend(result)
        else:
            out.append(result)
    return out


class _Pool:
    """Worker processes, each fed by a thread of this process that sends it one request at a
    time from the shared queue and waits for the reply (blocked on a pipe, off the GIL)."""

    def __init__(self, thumbnail_dir: str | None, processes: int):
        self.thumbnail_dir = thumbnail_dir
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.feeders = []
        for number in range(processes):
            worker = _Worker.start(thumbnail_dir)
            feeder = threading.Thread(target=self._feed, args=(worker,), daemon=True,
                                      name=f"lora-manager-reader-{number}")
            feeder.start()
            self.feeders.append((feeder, worker))

    def submit(self, files: list[Found]) -> Future:
        future: Future = Future()
        self.requests.put((files, future))
        return future

    def close(self) -> None:
        """Drop the requests not yet taken, let each feeder finish its current one, end the workers."""
        while True:
            try:
                _files, future = self.requests.get_nowait()
            except queue.Empty:
                break
            future.cancel()
        for _ in self.feeders:
            self.requests.put(None)
        for feeder, worker in self.feeders:
            feeder.join()
            if worker is not None:
                worker.stop()

    def _feed(self, worker: _Worker | None) -> None:
        while True:
            item = self.requests.get()
            if item is None:
                return
            files, future = item
            if not future.set_running_or_notify_cancel():
                continue
            result = None
            if worker is not None:
                try:
                    result, warnings = worker.analyse(files)
                    for message in warnings:  # logged here, where the host's log handlers are
                        log.warning("%s", message)
                except _WorkerGone as e:
                    worker.stop()
                    log.warning("LoRA Manager: a file-reading process stopped (%s, exit status %s); "
                                "its files are read in this process", e, worker.process.returncode)
                    worker = None
            try:
                if result is None:  # read here: the same work, in this process
                    result = [analyse(found, self.thumbnail_dir) for found in files]
            except BaseException as e:  # a bug: the scan fails with it, as it would reading here
                future.set_exception(e)
            else:
                future.set_result(result)


class _WorkerGone(Exception):
    pass


# A worker's first words: the parent's sys.path and this module's name, then ``serve``.
_BOOT = ("import pickle,sys;i=sys.stdin.buffer;n=int.from_bytes(i.read(8),'little');"
         "path,name=pickle.loads(i.read(n));sys.path[:]=path;__import__(name,fromlist=['serve']).serve()")


class _Worker:
    def __init__(self, process: subprocess.Popen):
        self.process = process

    @classmethod
    def start(cls, thumbnail_dir: str | None) -> _Worker | None:
        """A started worker, or None if none can start here (its files are then read in this process)."""
        if not sys.executable:
            return None
        try:
            # -I: no PYTHON* variables, no user site, no current folder on the path; -S: no site
            # import (the parent's path is handed over instead); stderr is the parent's
            # a session of its own: Ctrl+C in the host's terminal is the host's to handle, and
            # a worker ends when the host closes its stdin (or ends)
            separate = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
                        else {"start_new_session": True})
            process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _BOOT],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, **separate)
        except OSError as e:
            log.warning("LoRA Manager: cannot start a file-reading process (%s); files are read here", e)
            return None
        worker = cls(process)
        try:
            # the folder holding this package first: importable even where the parent found it
            # through an import hook that -S leaves out (an editable install)
            package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            _send(process.stdin, ([package_parent, *sys.path], __name__))
            _send(process.stdin, thumbnail_dir)
        except _WorkerGone:
            worker.stop()
            return None
        return worker

    def analyse(self, files: list[Found]) -> tuple[list[Analysis], list[str]]:
        """The analyses of ``files`` and the warnings logged while reading them."""
        _send(self.process.stdin, files)
        return _receive(self.process.stdout)

    def stop(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in a read from a dead network share, say
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def _send(stream: BinaryIO, value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        stream.write(struct.pack("<Q", len(data)))
        stream.write(data)
        stream.flush()
    except (OSError, ValueError) as e:  # a broken pipe, or a stream closed after the worker was lost
        raise _WorkerGone(f"cannot send: {e}") from None


def _receive(stream: BinaryIO) -> Any:
    try:
        head = stream.read(8)
        data = stream.read(struct.unpack("<Q", head)[0]) if len(head) == 8 else b""
    except (OSError, ValueError) as e:
        raise _WorkerGone(f"cannot receive: {e}") from None
    if len(head) < 8 or len(data) < struct.unpack("<Q", head)[0]:
        raise _WorkerGone("it ended without replying")
    return pickle.loads(data)


def serve() -> None:
    """A worker's loop: read the files of each request, reply with their analyses, until stdin closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt a reply
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when reading stops
    warnings = _Collected()
    log.addHandler(warnings)
    log.propagate = False
    # headers hold no reference cycles: collecting while parsing them only costs time
    gc.set_threshold(100_000, 50, 100)
    try:
        thumbnail_dir = _receive(requests)
        with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="lora-manager-read-ahead") as readers:
            while True:
                files = _receive(requests)
                analysed = read_ahead(files, thumbnail_dir, readers)
                _send(replies, (analysed, warnings.take()))
    except _WorkerGone:  # the parent closed our stdin (done) or is gone
        return


class _Collected(logging.Handler):
    """A worker's warnings, sent with its reply and logged by the host."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        messages, self.messages = self.messages, []
        return messages


def read_ahead(files: list[Found], thumbnail_dir: str | None, readers: ThreadPoolExecutor) -> list[Analysis]:
    """The analyses of ``files``, in order, while ``readers`` read the next READ_AHEAD headers
    (reads release the GIL; at most READ_AHEAD + 1 headers are held at once)."""
    ahead: deque[Future] = deque()
    coming = iter(files)
    out = []
    for found in files:
        while len(ahead) <= READ_AHEAD:
            nxt = next(coming, None)
            if nxt is None:
                break
            ahead.append(readers.submit(_header_bytes, nxt))
        out.append(analyse(found, thumbnail_dir, ahead.popleft().result()))
    return out


def _header_bytes(found: Found) -> HeaderBytes | None:
    if not found.filename.lower().endswith(".safetensors"):
        return None
    try:
        return read_header_bytes(found.path)
    except HeaderError as e:
        return e
