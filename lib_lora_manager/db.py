"""The database: engine, sessions, transactions that survive other writers, and migrations.

Several processes may write at once: SDNext and the CLI on one SQLite file, servers on several
machines on one PostgreSQL database. So:

- SQLite runs in WAL mode (readers never wait for the writer) and a write transaction starts with
  ``BEGIN IMMEDIATE``: it takes the write lock before it reads anything, so it never has to turn a
  read into a write, which SQLite refuses at once with "database is locked" when another process
  wrote meanwhile (the busy timeout does not apply to that upgrade). Reads stay deferred. Within
  one process, writers also queue on a lock, so threads wait in Python rather than in SQLite.
- ``transaction(work)`` runs ``work(session)`` and re-runs all of it when another writer got in
  the way (SQLite busy, a PostgreSQL deadlock or serialization failure, a unique key another
  process inserted first), for a bounded time; then the user gets ``errors.Busy`` with a plain
  message, never a 500. ``write()`` is the context-manager form for bodies that cannot be re-run:
  it waits for the lock the same way and turns a conflict into ``Busy``.
- ``lock_rows`` (SELECT … FOR UPDATE on PostgreSQL, in id order) and ``insert_missing`` (INSERT …
  ON CONFLICT DO NOTHING on both) are the two tools transaction bodies use against other writers.

Migrations are Alembic revisions in ``migrations/versions``, applied at startup. Alembic is only
imported when the stored revision differs from ``SCHEMA_REVISION`` (startup budget), and a
SQLite file is copied aside before it is migrated.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from . import text_index
from .errors import Busy
from .query import Totals

log = logging.getLogger("lora_manager")

SCHEMA_REVISION = "0027"  # head of migrations/versions; a test keeps them in step
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Alembic's ``op`` and ``context`` are process-wide proxies: two databases migrating at once on
# two threads (two libraries opening together) would run each other's operations
_MIGRATING = threading.Lock()
BUSY_TIMEOUT = 10.0  # seconds SQLite waits for another process's write lock before "database is locked"
RETRY_FOR = 20.0  # seconds a write is retried after conflicts before the user is told the library is busy
CONFLICT_ATTEMPTS = 3  # runs of a transaction that met a key another writer had just inserted or deleted
_WRITE = "lora_manager_write"  # execution option of write sessions' connections (SQLite: BEGIN IMMEDIATE)
_LOCK_DEADLINE = "lora_manager_lock_deadline"  # and the time.monotonic() after which SQLite stops waiting for the lock
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"  # Database.reads_together on PostgreSQL
_PG_TRANSIENT = {"40001", "40P01"}  # serialization failure, deadlock detected: re-running succeeds
_PG_CONFLICT = {"23505", "23503"}  # unique / foreign key violation: a concurrent insert or delete won the race
# errors of the driver: wrapped by SQLAlchemy, or raw when raised in _sqlite_begin (an event handler)
DB_ERRORS = (DBAPIError, sqlite3.Error)

T = TypeVar("T")


def sqlite_url(path: str | os.PathLike) -> str:
    return f"sqlite:///{Path(path).resolve()}"


class _SQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering ``select.with_hint(table, "INDEXED BY ix", "sqlite")``
    (SQLAlchemy renders FROM hints only for dialects that have their own syntax)."""

    def get_from_hint_text(self, table, text):
        return text


def _sqlite_connect(dbapi_connection, _record) -> None:
    # the driver's own BEGIN (deferred, and only before the first INSERT/UPDATE/DELETE) is off:
    # _sqlite_begin sends ours, so reads are in the transaction and writes can take the lock first
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA temp_store=MEMORY")
    text_index.connect_sqlite(cursor)
    cursor.close()


def _sqlite_begin(conn) -> None:
    if not conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN")
        return
    # Take the write lock, asking every few milliseconds: SQLite's own busy handler asks only
    # every 100 ms after the first few, and would miss the short pauses a scan leaves between its
    # transactions, making an edit wait for many of them instead of one.
    dbapi = conn.connection.driver_connection
    dbapi.execute("PRAGMA busy_timeout=0")
    try:
        deadline = min(time.monotonic() + BUSY_TIMEOUT, conn.get_execution_options().get(_LOCK_DEADLINE, math.inf))
        while True:
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if getattr(e, "sqlite_errorcode", 5) & 0xFF != 5 or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.001, 0.004))
    finally:
        dbapi.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")


def is_transient(error: BaseException) -> bool:
    """Whether re-running the transaction can succeed: SQLite busy or locked, a PostgreSQL
    serialization failure or deadlock."""
    orig = error.orig if isinstance(error, DBAPIError) else error  # raw: from _sqlite_begin
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def is_conflict(error: BaseException) -> bool:
    """A PostgreSQL key violation: another process inserted (or deleted) the same key between our
    read and our write; the re-run sees it. (On SQLite a write transaction reads under the lock.)"""
    return isinstance(error, IntegrityError) and getattr(error.orig, "sqlstate", None) in _PG_CONFLICT


def busy_error(error: BaseException) -> Busy:
    return Busy("the library database is busy: another process (a scan, a second LoRA Manager or the CLI) kept it "
                f"locked for over {RETRY_FOR:g} s; nothing was changed, please try again ({str(error).splitlines()[0][:120]})")


def lock_rows(session: Session, id_column, ids: Iterable[int], chunk: int = 500) -> list[int]:
    """Lock the rows with these ids for the rest of the transaction; returns the ids that exist.

    PostgreSQL: SELECT … FOR UPDATE in ascending id order, so that two transactions locking
    overlapping sets wait for each other instead of deadlocking. SQLite: the write transaction
    holds the database's write lock already (BEGIN IMMEDIATE), so this only reads."""
    found: list[int] = []
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), chunk):
        stmt = select(id_column).where(id_column.in_(ordered[start:start + chunk])).order_by(id_column)
        found.extend(session.scalars(stmt.with_for_update()))
    return found


def insert_missing(session: Session, table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO NOTHING: rows another writer inserted first are left as they are."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).on_conflict_do_nothing(index_elements=keys), rows)


_SERIALS = itertools.count()


def _server_options(url: str, ours: str) -> str:
    """Our server settings after those the URL's ``options`` asks for (``?options=-csearch_path%3Dx``):
    connect_args replace the URL's options rather than adding to them."""
    given = make_url(url).query.get("options")
    given = [given] if isinstance(given, str) else list(given or ())
    return " ".join([*given, ours])


class Database:
    """Owns the engine. ``read()`` for queries; ``transaction(work)`` or ``write()`` for changes."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # last in, first out: one reader after another gets the same connection, whose data_version
            # keys what Totals remembers (a version is that connection's own)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT},
                                                pool_use_lifo=True)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            self.engine.dialect.statement_compiler = _SQLiteCompiler
        else:
            # analytics copies a window's rows into temporary tables (analytics.SCOPED): in memory up
            # to this size per connection, taken only when used (the default 8 MB spills to files)
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                        connect_args={"options": _server_options(url, "-c temp_buffers=64MB")})
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # the same pool; on SQLite its transactions begin IMMEDIATE
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._write_lock = threading.RLock()
        self._commits = 0  # this process's commits, on any connection (data_version misses a connection's own)
        event.listen(self.engine, "commit", self._committed)
        self.totals = Totals(self.data_version)

    def _committed(self, _conn) -> None:
        self._commits += 1

    def data_version(self, session: Session) -> Hashable:
        """A token that is the same for two reads only when they see the same data: what remembered
        counts are keyed by. Read in ``session``'s transaction, before what it keys.

        SQLite: PRAGMA data_version (begins the read transaction, and changes when any other
        connection, of any process, has committed since this one last read), with this process's
        own commits (data_version does not see a connection's own) and the connection it is on.
        PostgreSQL: the transaction snapshot, which changes when any transaction commits or takes a
        transaction id; the snapshot in which a statement then runs is that one or later: never
        an older one."""
        if not self.is_sqlite:
            return session.execute(text("SELECT pg_current_snapshot()::text")).scalar()
        commits, connection = self._commits, session.connection()
        info = connection.connection.info  # kept with the driver's connection while the pool keeps it
        serial = info.setdefault("lora_manager_serial", next(_SERIALS))
        return commits, serial, connection.exec_driver_sql("PRAGMA data_version").scalar()

    def version_after_read(self, sessions: list[Session], version: Hashable) -> Hashable | None:
        """The data_version the next read sees when nothing has happened since ``version`` was
        taken in the first of ``sessions`` but their transactions, which wrote only temporary
        tables and are about to roll back (None when that cannot be told): what was remembered
        stays valid.

        SQLite: ``version`` (temporary tables are not the database's data). PostgreSQL: creating a
        temporary table takes a transaction id, which moves every later snapshot on although no
        data changed. When these transactions' ids were the next ones given out after ``version``,
        a snapshot with the same transactions in progress and just these ids past it has seen the
        same commits (any other transaction that finished or began would show)."""
        if self.is_sqlite:
            return version
        xmin, xmax, in_progress = str(version).split(":")
        mine = sorted(int(i) for i in (session.execute(text("SELECT pg_current_xact_id_if_assigned()::text")).scalar()
                                       for session in sessions) if i is not None)
        if not mine or mine != list(range(int(xmax), int(xmax) + len(mine))):
            return None
        after = mine[-1] + 1  # xmin: the oldest transaction in progress, or xmax when there is none
        return f"{xmin if in_progress else after}:{after}:{in_progress}"

    @contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except DB_ERRORS as e:
            if is_transient(e):
                raise busy_error(e) from e
            raise

    @contextmanager
    def reads_together(self, count: int, wait: float) -> Iterator[list[Session]]:
        """``count`` read sessions whose transactions see the same data, to read one result on
        several connections at once; or one session when that cannot be had within ``wait``
        seconds (SQLite: another writer holds the lock). The first is closed last (SQLite's pool
        hands it to the next reader: the connection data_version keys).

        SQLite: every read transaction begins while this process holds the write lock, which no
        commit can pass. PostgreSQL: REPEATABLE READ transactions, the others importing the
        first one's exported snapshot."""
        with ExitStack() as stack:
            sessions = [stack.enter_context(self.read()) for _ in range(count)]
            if self.is_sqlite:
                sessions = self._begin_sqlite_reads(sessions, wait)
            else:
                sessions = self._share_postgres_snapshot(sessions)
            yield sessions

    @staticmethod
    def _share_postgres_snapshot(sessions: list[Session]) -> list[Session]:
        """The sessions in REPEATABLE READ transactions of the first one's snapshot (the first
        alone where the server exports none, as a standby may not)."""
        first, *others = sessions
        first.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            snapshot = first.execute(text(EXPORT_SNAPSHOT)).scalar()
        except DBAPIError:
            first.rollback()
            return [first]
        # (a SET takes no parameters: the server's own name for it, checked, is written in)
        if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
            raise ValueError(f"unexpected snapshot name {snapshot!r}")
        for session in others:
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            session.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        return sessions

    def _begin_sqlite_reads(self, sessions: list[Session], wait: float) -> list[Session]:
        """The sessions whose read transactions began between the same two commits (all, or the
        first alone when the write lock was not had within ``wait`` seconds)."""
        for session in sessions:  # their connections first: the first gets the one the last reader had
            session.connection()
        if not self._write_lock.acquire(timeout=wait):
            return sessions[:1]
        try:
            try:
                holder = self._begin(time.monotonic() + wait)
            except DB_ERRORS:
                return sessions[:1]
            with holder:
                for session in sessions:  # a read transaction takes its snapshot at its first read
                    session.execute(text("SELECT 1 FROM sqlite_master LIMIT 1"))
                holder.rollback()
            return sessions
        finally:
            self._write_lock.release()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error, one writer at a time.

        Its body runs once: a conflict with another process's writer becomes ``Busy``. Prefer
        ``transaction``, which re-runs the body instead."""
        try:
            with self._write_session(time.monotonic() + RETRY_FOR) as session:
                yield session
        except DB_ERRORS as e:
            if is_transient(e):
                raise busy_error(e) from e
            raise

    def transaction(self, work: Callable[[Session], T], *, retry_for: float | None = None) -> T:
        """``work(session)`` in a write transaction, committed; re-run from the start after a
        conflict with another writer until ``retry_for`` seconds have passed, then ``Busy``.

        ``work`` must not change its arguments or anything outside the database: it may run
        more than once. Domain errors it raises roll back and pass through."""
        deadline = time.monotonic() + (RETRY_FOR if retry_for is None else retry_for)
        delay, conflicts = 0.005, 0
        while True:
            try:
                with self._write_session(deadline) as session:
                    return work(session)
            except DB_ERRORS as e:
                if is_conflict(e) and conflicts + 1 < CONFLICT_ATTEMPTS:
                    conflicts += 1
                elif not is_transient(e):
                    raise
                if time.monotonic() + delay > deadline:
                    raise busy_error(e) from e
                log.debug("LoRA Manager: write conflict, running the transaction again: %s", e.orig)
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: two losers must not collide again
            delay = min(delay * 2, 0.25)

    @contextmanager
    def _write_session(self, deadline: float) -> Iterator[Session]:
        with self._write_lock:
            session = self._begin(deadline)
            with session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    def _begin(self, deadline: float) -> Session:
        """A write session whose transaction has begun: on SQLite it holds the write lock, which
        is waited for (SQLite's busy timeout, then again) until ``deadline``."""
        delay = 0.005
        while True:
            session = self._write_sessions()
            try:
                session.connection(execution_options={_LOCK_DEADLINE: deadline})  # BEGIN (IMMEDIATE on SQLite)
                return session
            except DB_ERRORS as e:
                session.close()
                if not is_transient(e) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.1)

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
            self._sync_text_index()
            return None
        backup = self._backup_sqlite(current) if current is not None else None
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO chatter is not for users
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        # one transaction; on SQLite it holds the write lock (BEGIN IMMEDIATE) throughout
        with _MIGRATING, self._write_lock, self._write_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        self._sync_text_index()  # what the revisions migrated through left to the full-text indexes
        return backup

    def _sync_text_index(self) -> None:
        """Fit the full-text indexes to this engine (text_index.py): a look at the catalog, and
        a write only when they need creating, repairing or disarming."""
        with self.engine.connect() as conn:
            in_step = text_index.in_step(conn)
        if not in_step:
            with self._write_lock, self._write_engine.begin() as conn:
                text_index.sync(conn)
        with self.engine.connect() as conn:
            text_index.note(conn)

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
