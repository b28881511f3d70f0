"""Keeping the index in step with the folders (``library.indexer``): scans, now or on a thread,
and the hash worker that hashes new files in the background.

The scanning itself is scanner.py's (pure work over files and the database); this module owns
the threads, the one-scan-at-a-time lock and the status the UI and REST show.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import or_, select, update

from . import merging, naming, scanner
from .errors import Busy, LoraManagerError
from .hashing import HashCancelled, HashError, hash_file, lower_thread_priority
from .models import Lora, live
from .store import Store
from .task_status import SharedStatus, TaskStatus

log = logging.getLogger("lora_manager")


@dataclass
class ScanStatus(TaskStatus):
    message: str = "not scanned yet"


class Indexer:
    def __init__(self, store: Store, *, hashing: bool = True):
        self.store = store
        self.hashing = hashing
        self.status = ScanStatus()
        self._shared = SharedStatus(store, "scan", elsewhere="a scan is running in another process", done="scanned")
        self._scan_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_hasher = threading.Event()
        self._threads: list[threading.Thread] = []

    def scan(self, progress: Callable[[float, str], None] | None = None) -> scanner.ScanReport:
        """Synchronise the index with the folders now; raises Busy if a scan is running."""
        if not self._scan_lock.acquire(blocking=False):
            raise Busy("a scan is already running")
        status = self.status
        status.running, status.fraction, status.started_at, status.message = True, 0.0, time.time(), "starting"
        status.error = None
        try:
            self._shared.started(status.started_at)
        except BaseException:  # an interrupt too: the lock must not stay held
            self._scan_lock.release()
            status.running = False
            raise

        def report(fraction: float, message: str) -> None:
            status.fraction, status.message = fraction, message
            if progress:
                progress(fraction, message)
        store = self.store
        try:
            result = scanner.scan(store.db, store.roots, report, mounts=store.mounts, should_stop=self._stop.is_set,
                                  thumbnail_dir=os.path.join(store.data_dir, "embedded-previews"))
            status.last_report = dict(result.__dict__)
            status.message = "last scan: " + result.summary()
            self._wake_hasher.set()
            return result
        except Exception as e:  # recorded for the status (REST, UI), then raised as it was
            status.error = f"{type(e).__name__}: {e}" if not isinstance(e, LoraManagerError) else str(e)
            status.message = f"scan failed: {status.error}"
            raise
        finally:
            status.running, status.finished_at = False, time.time()
            try:
                self._shared.ended(status)
            finally:
                self._scan_lock.release()

    def shared_status(self) -> ScanStatus:
        """This process's scan status, unless another process sharing the database scans now or
        scanned since: then theirs (what a status line shows, whichever process asks)."""
        return self._shared.seen(self.status)

    def scanning(self) -> bool:
        """Whether this process scans now."""
        return self._scan_lock.locked()

    def scan_in_background(self) -> bool:
        """Start a scan on a thread; False if one is already running."""
        if self._scan_lock.locked():
            return False
        thread = threading.Thread(target=self._background_scan, name="lora-manager-scan", daemon=True)
        thread.start()
        self._threads.append(thread)
        return True

    def _background_scan(self) -> None:
        """The scan thread's top level: a failure is in the status (see scan) and in the log, with
        its traceback; the thread never dies silently."""
        try:
            self.scan()
        except Busy:
            pass
        except LoraManagerError as e:
            log.error("LoRA Manager: scan failed: %s", e)
        except Exception:  # noqa: BLE001  (thread top level: anything else is a bug to see)
            log.exception("LoRA Manager: scan failed")

    def start_background(self, *, scan: bool = True) -> None:
        """Background sync after startup: a scan (if asked), then the hash worker."""
        if scan:
            self.scan_in_background()
        if self.hashing and not any(t.name == "lora-manager-hash" for t in self._threads if t.is_alive()):
            thread = threading.Thread(target=self._hash_loop, name="lora-manager-hash", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the scan and the hash worker, waiting up to ``timeout`` for each thread."""
        self._stop.set()
        self._wake_hasher.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._stop.clear()

    def _hash_loop(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            if self.hashing and self.hash_pending(limit=50, should_stop=self._stop.is_set):
                continue
            self._wake_hasher.wait(timeout=60)
            self._wake_hasher.clear()

    def hash_pending(self, limit: int | None = None, should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> int:
        """Hash files that have no hash yet (oldest first); returns how many were hashed.

        Each file is hashed once per (size, mtime); failures are recorded on the item and not
        retried until the file changes."""
        store = self.store
        with store.db.read() as session:
            # only files of folders this machine mounts: another machine's are not ours to judge
            stmt = select(Lora.id, Lora.path, Lora.root_id, Lora.relpath, Lora.mtime_ns, Lora.format).where(
                Lora.sha256.is_(None), Lora.hash_error.is_(None), Lora.missing.is_(False),
                or_(Lora.root_id.in_(store.mounts.root_ids), Lora.root_id.is_(None)), live()).order_by(Lora.id)
            todo = session.execute(stmt.limit(limit) if limit else stmt).all()
        count = 0
        boundary = store.boundary()
        for n, (lora_id, stored_path, root_id, relpath, mtime_ns, fmt) in enumerate(todo):
            path = store.mounts.local_path(root_id, relpath) or stored_path
            if should_stop and should_stop():
                break
            if progress:
                progress(n, len(todo), naming.display(os.path.basename(path)))
            try:
                if not boundary.allows(path):  # became a link elsewhere since the scan
                    raise HashError(path, "a link leading outside the library folders; not read")
                hashes = hash_file(path, safetensors=fmt == "safetensors", should_stop=should_stop)
            except HashCancelled:
                break
            except HashError as e:
                store.db.transaction(partial(_store_hash_error, lora_id=lora_id, mtime_ns=mtime_ns, error=str(e)))
                continue
            # one short transaction per file, after the file was read: the write lock is never
            # held while hashing
            store.db.transaction(partial(_store_hashes, lora_id=lora_id, mtime_ns=mtime_ns, hashes=hashes))
            count += 1
        return count


def _store_hash_error(session, lora_id: int, mtime_ns: int, error: str) -> None:
    """Record why a file could not be hashed, unless it changed since it was read."""
    session.execute(update(Lora).where(Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(hash_error=error))


def _store_hashes(session, lora_id: int, mtime_ns: int, hashes) -> None:
    """Record a file's hashes, unless the file changed since it was read (a newer mtime)."""
    updated = session.execute(update(Lora).where(Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(
        sha256=hashes.sha256, addnet_hash=hashes.addnet, hashed_mtime_ns=mtime_ns, hash_error=None)).rowcount
    if updated:
        merging.adopt_vanished(session, lora_id, hashes.sha256)
