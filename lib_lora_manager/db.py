"""The database: engine, sessions, the write lock and migrations.

SQLite (default) runs in WAL mode so readers never wait for the writer; writes from Gradio
handlers, background workers and SDNext's generating thread are serialised by one process-wide
lock, because SQLite has a single writer and "database is locked" must never reach a user.
PostgreSQL (a URL) needs no lock but gets the same code path.

Migrations are Alembic revisions in ``migrations/versions``, applied at startup. Alembic is only
imported when the stored revision differs from ``SCHEMA_REVISION`` (startup budget), and a
SQLite file is copied aside before it is migrated.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

SCHEMA_REVISION = "0006"  # head of migrations/versions; a test keeps them in step
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Alembic's ``op`` and ``context`` are process-wide proxies: two databases migrating at once on
# two threads (two libraries opening together) would run each other's operations
_MIGRATING = threading.Lock()


def sqlite_url(path: str | os.PathLike) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Owns the engine. ``read()`` for queries, ``write()`` for anything that changes rows."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.RLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error, one writer at a time."""
        with self._write_lock, self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    # --- migrations

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self) -> str | None:
        """Bring the schema to ``SCHEMA_REVISION``; returns the backup path if one was made."""
        current = self.current_revision()
        if current == SCHEMA_REVISION:
            return None
        backup = self._backup_sqlite(current) if current is not None else None
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO chatter is not for users
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with _MIGRATING, self._write_lock, self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        return backup

    def _backup_sqlite(self, revision: str) -> str | None:
        if not self.is_sqlite:
            return None
        db_file = self.engine.url.database
        if not db_file or db_file == ":memory:" or not os.path.exists(db_file):
            return None
        target = f"{db_file}.before-{revision}-{time.strftime('%Y%m%d-%H%M%S')}.bak"
        with self._write_lock, self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
            shutil.copy2(db_file, target)
        return target
