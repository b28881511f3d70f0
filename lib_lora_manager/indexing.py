"""Keeping the index in step with the folders (``library.indexer``): scans, now or on a thread,
and the hash worker that hashes new files in the background.

The scanning itself is scanner.py's (pure work over files and the database); this module owns
the threads, the one-scan-at-a-time lock and the status the UI and REST show.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import or_, select, update

from . import merging, naming, scanner
from .errors import Busy, LoraManagerError
from .hashing import HashCancelled, HashError, hash_file, lower_thread_priority
from .models import Lora, State, live
from .store import Store

log = logging.getLogger("lora_manager")


@dataclass
class ScanStatus:
    running: bool = False
    fraction: float = 0.0
    message: str = "not scanned yet"
    started_at: float | None = None
    finished_at: float | None = None
    last_report: dict[str, Any] | None = None
    error: str | None = None  # why the last scan failed, None when it did not


class Indexer:
    def __init__(self, store: Store, *, hashing: bool = True):
        self.store = store
        self.hashing = hashing
        self.status = ScanStatus()
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
            self._record_start(status.started_at)
        except Exception:
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
                self._record_end(status)
            finally:
                self._scan_lock.release()

    # The scan status every process sharing the database sees (the CLI after a server's scan,
    # SDNext after a CLI's): the running scan's owner, and the last scan's outcome.
    _RUNNING, _LAST = "scan_running", "last_scan"

    def _record_start(self, started_at: float) -> None:
        value = json.dumps({"owner": self.store.processes.id, "started_at": started_at})
        self.store.db.transaction(lambda session: session.merge(State(key=self._RUNNING, value=value)))

    def _record_end(self, status: ScanStatus) -> None:
        value = json.dumps({"started_at": status.started_at, "finished_at": status.finished_at, "message": status.message,
                            "error": status.error, "report": status.last_report if status.error is None else None})
        owner = self.store.processes.id

        def work(session) -> None:
            session.merge(State(key=self._LAST, value=value))
            running = session.get(State, self._RUNNING)
            if running is not None and _json_object(running.value).get("owner") == owner:
                session.delete(running)
        try:
            self.store.db.transaction(work)
        except Exception as e:  # noqa: BLE001 - the scan's outcome stands; only other processes see less
            log.warning("LoRA Manager: cannot record the scan's outcome: %s", e)

    def shared_status(self) -> ScanStatus:
        """This process's scan status, unless another process sharing the database scans now or
        scanned since: then theirs (what a status line shows, whichever process asks)."""
        own = self.status
        if own.running:
            return own
        with self.store.db.read() as session:
            running = session.get(State, self._RUNNING)
            last = session.get(State, self._LAST)
            running, last = _json_object(running and running.value), _json_object(last and last.value)
        owner = running.get("owner")
        if owner and owner != self.store.processes.id and not self.store.processes.gone([owner]):
            return ScanStatus(running=True, message="a scan is running in another process",
                              started_at=_number(running.get("started_at")))
        finished = _number(last.get("finished_at"))
        if not last or (own.finished_at is not None and (finished is None or finished <= own.finished_at)):
            return own
        if "message" not in last:  # recorded before the outcome was: the bare report
            last = {"report": last, "message": "scanned before (by an older version)"}
        message = last.get("message")
        report = last.get("report")
        return ScanStatus(running=False, fraction=1.0, message=message if isinstance(message, str) else "scanned",
                          started_at=_number(last.get("started_at")), finished_at=finished,
                          last_report=report if isinstance(report, dict) else None,
                          error=last.get("error") if isinstance(last.get("error"), str) else None)

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


def _json_object(text: str | None) -> dict:
    """A stored JSON object; anything else (absent, damaged) is empty."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _store_hash_error(session, lora_id: int, mtime_ns: int, error: str) -> None:
    """Record why a file could not be hashed, unless it changed since it was read."""
    session.execute(update(Lora).where(Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(hash_error=error))


def _store_hashes(session, lora_id: int, mtime_ns: int, hashes) -> None:
    """Record a file's hashes, unless the file changed since it was read (a newer mtime)."""
    updated = session.execute(update(Lora).where(Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(
        sha256=hashes.sha256, addnet_hash=hashes.addnet, hashed_mtime_ns=mtime_ns, hash_error=None)).rowcount
    if updated:
        merging.adopt_vanished(session, lora_id, hashes.sha256)
