"""Which processes have the library open, so work in flight is taken over only from the dead.

Several processes can share one library: SDNext and the CLI on one SQLite file, or servers on
several machines sharing one PostgreSQL database. A running job or a journalled file operation
names the process that owns it; at startup another process must not mistake it for something a
crash left behind. Each process registers a row and renews its heartbeat on a thread; an owner is
gone when its row is missing, its heartbeat is stale, or (same host, POSIX) its pid has exited.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from .db import Database
from .models import Process

log = logging.getLogger("lora_manager")

HEARTBEAT = 20.0  # seconds between heartbeats
STALE = 90.0  # a heartbeat older than this means the process is gone (it missed four beats)


def _pid_exited(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


class ProcessRegistry:
    """This process's row in ``processes`` and the liveness of others."""

    def __init__(self, db: Database):
        self.db = db
        self.id = uuid.uuid4().hex
        self.host = socket.gethostname()[:255]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        """Add our row (and forget rows of processes that are gone) and start the heartbeat."""
        now = time.time()
        with self.db.write() as session:
            session.add(Process(id=self.id, host=self.host, pid=os.getpid(), started_at=now, heartbeat_at=now))
        self._thread = threading.Thread(target=self._beat, name="lora-manager-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.beat()
            except Exception as e:  # noqa: BLE001 - a missed beat (database briefly away) is retried next time
                log.warning("LoRA Manager: heartbeat failed: %s", e)

    def beat(self) -> None:
        with self.db.write() as session:
            renewed = session.execute(update(Process).where(Process.id == self.id).values(heartbeat_at=time.time())).rowcount
            if not renewed:  # someone judged us gone (a long pause): come back
                now = time.time()
                session.add(Process(id=self.id, host=self.host, pid=os.getpid(), started_at=now, heartbeat_at=now))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            with self.db.write() as session:
                session.execute(delete(Process).where(Process.id == self.id))
        except Exception as e:  # noqa: BLE001 - closing must not fail; a stale row expires by itself
            log.warning("LoRA Manager: could not unregister: %s", e)

    def gone(self, owners: Iterable[str | None]) -> set[str | None]:
        """The owners among ``owners`` that are no longer running (None: nobody owned it)."""
        owners = set(owners)
        owners.discard(self.id)
        if not owners:
            return set()
        with self.db.read() as session:
            rows = {row.id: row for row in session.scalars(
                select(Process).where(Process.id.in_([o for o in owners if o is not None])))}
        now = time.time()
        out: set[str | None] = set()
        for owner in owners:
            row = rows.get(owner) if owner is not None else None
            if row is None or now - row.heartbeat_at > STALE or (row.host == self.host and _pid_exited(row.pid)):
                out.add(owner)
        return out

    def forget_gone(self) -> None:
        """Drop the rows of processes that are gone (their work has been taken over by then)."""
        with self.db.read() as session:
            ids = list(session.scalars(select(Process.id)))
        dead = [i for i in self.gone(ids) if i is not None]
        if dead:
            with self.db.write() as session:
                session.execute(delete(Process).where(Process.id.in_(dead)))
