"""Schema migrations, SQLite settings and concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from factories import POSTGRES_URL, migrate_to, reset_postgres
from sqlalchemy import create_engine, select, text, update

from lib_lora_manager.db import MIGRATIONS_DIR, SCHEMA_REVISION, Database, sqlite_url
from lib_lora_manager.errors import Busy
from lib_lora_manager.models import State


def test_schema_revision_is_the_migrations_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_migrations_match_the_models(tmp_path):
    """Autogenerate against a migrated database finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from lib_lora_manager import text_index
    from lib_lora_manager.models import Base, on_dialect

    db = Database(sqlite_url(tmp_path / "m.db"))
    db.migrate()
    with db.engine.connect() as conn:
        assert text_index.owns("loras_text_data")  # FTS5's shadow tables are the full-text index's
        # the full-text tables are not models: text_index.py keeps them (as migrations/env.py says)
        # and the indexes of another dialect (models.on_dialect)
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, *_: not (name and text_index.owns(name)),
            "include_object": lambda obj, _name, kind, reflected, _to: kind != "index" or reflected or on_dialect(obj, "sqlite")})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_sqlite_pragmas_and_idempotent_migration(tmp_path):
    db = Database(sqlite_url(tmp_path / "lib.db"))
    assert db.migrate() is None  # new database: nothing to back up
    assert db.migrate() is None  # already at head: alembic is not even imported
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_sqlite_file_is_backed_up_before_a_migration(tmp_path):
    path = tmp_path / "lib.db"
    db = Database(sqlite_url(path))
    db.migrate()
    with db.write() as session:
        session.add(State(key="marker", value="before"))
    # pretend the file was made by an older schema version
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    from alembic.util.exc import CommandError

    with pytest.raises(CommandError):  # unknown old revision: alembic refuses, but the copy exists
        db.migrate()
    backups = list(tmp_path.glob("lib.db.before-old-*.bak"))
    assert len(backups) == 1
    copy = sqlite3.connect(backups[0])
    assert copy.execute("SELECT value FROM state WHERE key='marker'").fetchone() == ("before",)


def test_concurrent_writers_never_see_database_locked(tmp_path):
    db = Database(sqlite_url(tmp_path / "lib.db"))
    db.migrate()
    errors = []

    def writer(n):
        try:
            for i in range(40):
                with db.write() as session:
                    session.merge(State(key=f"k{n}-{i}", value="x" * 100))
        except Exception as e:  # the assertion below reports any failure type
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        assert session.query(State).count() == 240


@pytest.mark.skipif(not POSTGRES_URL, reason="LORA_MANAGER_TEST_POSTGRES_URL is not set")
def test_postgres_migrates_and_reports_head():
    reset_postgres(POSTGRES_URL)
    db = Database(POSTGRES_URL)
    db.migrate()
    assert db.current_revision() == SCHEMA_REVISION
    db.dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="LORA_MANAGER_TEST_POSTGRES_URL is not set")
def test_postgres_keeps_the_server_options_of_the_url():
    """A URL's ``options`` (a schema of its own, as bench/scale.py gives each size) is kept
    beside our own settings: the engine's connect_args used to replace it, and every database
    named that way was written into ``public``."""
    schema = "lm_options_test"
    reset_postgres(POSTGRES_URL)  # nothing of ours in public: the migration writes into the schema
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in POSTGRES_URL else "?"
    db = Database(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}%2Cpublic")
    try:
        with db.read() as session:
            assert session.scalar(text("SHOW search_path")) == f"{schema},public"
            assert session.scalar(text("SHOW temp_buffers")) == "64MB"
        db.migrate()
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename = 'loras'"),
                               {"s": schema}) == 1
    finally:
        db.dispose()
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def test_a_write_holds_the_write_lock_from_its_start_and_a_read_never_takes_it(tmp_path):
    """Otherwise a write that read first must upgrade its lock, which SQLite refuses at once
    ("database is locked", no busy wait) when another process wrote meanwhile."""
    path = tmp_path / "lib.db"
    db = Database(sqlite_url(path))
    db.migrate()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # another process
    with db.read() as session:
        session.execute(select(State)).all()
        other.execute("BEGIN IMMEDIATE")  # readers leave the write lock free
        other.execute("ROLLBACK")
    with db.write():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # taken at BEGIN, before any statement of ours
    other.close()


def test_a_write_waits_for_another_process_then_says_busy(tmp_path, monkeypatch):
    from lib_lora_manager import db as db_module

    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.2)
    monkeypatch.setattr(db_module, "RETRY_FOR", 0.6)
    path = tmp_path / "lib.db"
    db = Database(sqlite_url(path))
    db.migrate()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writes, for too long
    started = time.monotonic()
    with pytest.raises(Busy, match="database is busy: another process .* nothing was changed, please try again"):
        db.transaction(lambda session: session.merge(State(key="k", value="lost")))
    with pytest.raises(Busy):
        with db.write() as session:
            session.merge(State(key="k", value="lost"))
    assert time.monotonic() - started < 5
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()  # a short write: waited for
    db.transaction(lambda session: session.merge(State(key="k", value="kept")))
    with db.read() as session:
        assert session.get(State, "k").value == "kept"
    other.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="LORA_MANAGER_TEST_POSTGRES_URL is not set")
def test_a_deadlocked_transaction_is_run_again():
    reset_postgres(POSTGRES_URL)
    dbs = [Database(POSTGRES_URL), Database(POSTGRES_URL)]  # two processes' engines
    dbs[0].migrate()
    with dbs[0].write() as session:
        session.add_all([State(key="a", value="0"), State(key="b", value="0")])
    both_locked_one = threading.Barrier(2)
    runs = {"a": 0, "b": 0}

    def work(first: str, second: str):
        def body(session):
            runs[first] += 1
            session.execute(update(State).where(State.key == first).values(value=State.value + "1"))
            if runs[first] == 1:
                both_locked_one.wait(10)  # each holds one row and wants the other's: a deadlock
            session.execute(update(State).where(State.key == second).values(value=State.value + "1"))
        return body
    threads = [threading.Thread(target=d.transaction, args=(work(*keys),)) for d, keys in zip(dbs, [("a", "b"), ("b", "a")])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with dbs[0].read() as session:
        assert {s.key: s.value for s in session.scalars(select(State))} == {"a": "011", "b": "011"}
    assert sorted(runs.values()) == [1, 2]  # PostgreSQL aborted one; it ran again, whole
    for d in dbs:
        d.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_generation_row_counts_are_filled_in_from_the_rows_recorded_before(tmp_path, engine):
    """0023 counts each generation's image and LoRA rows recorded before it (analytics sums them)."""
    if engine == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
        reset_postgres(POSTGRES_URL)
        db = Database(POSTGRES_URL)
    else:
        db = Database(sqlite_url(tmp_path / "lib.db"))
    migrate_to(db, "0020")
    with db.engine.begin() as conn:
        for i in (1, 2, 3):
            conn.execute(text("INSERT INTO generations (id, started_at, status, prompt, negative_prompt, favorite, search_text) "
                              "VALUES (:i, 1.0, 'succeeded', 'x', '', false, 'x')"), {"i": i})
        for generation_id, n in ((1, 2), (2, 1)):
            conn.execute(text("INSERT INTO generation_images (generation_id, position, missing) VALUES (:g, :p, false)"),
                         [{"g": generation_id, "p": p} for p in range(n)])
        for generation_id, n in ((1, 3), (3, 1)):
            conn.execute(text("INSERT INTO generation_loras (generation_id, position, name) VALUES (:g, :p, 'l')"),
                         [{"g": generation_id, "p": p} for p in range(n)])
    db.migrate()
    with db.engine.connect() as conn:
        counts = conn.execute(text("SELECT id, image_count, lora_count FROM generations ORDER BY id")).all()
    assert [tuple(r) for r in counts] == [(1, 2, 3), (2, 1, 0), (3, 0, 1)]
    db.engine.dispose()


def test_reads_together_see_one_snapshot_while_another_writer_commits(library):
    """Two sessions of reads_together count the same rows however often another thread commits
    (each beginning on its own would, now and then, begin on either side of a commit); a write
    that holds SQLite's lock longer than the wait leaves one session."""
    from sqlalchemy import func

    from lib_lora_manager.models import Tag

    db = library.store.db
    stop, written = threading.Event(), []

    def write():
        while not stop.is_set():
            n = len(written)
            db.transaction(lambda session, n=n: session.add(Tag(name=f"t{n}")))
            written.append(n)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = []
        while len(seen) < 60 or len(set(seen)) < 10:
            with db.reads_together(2, 5.0) as sessions:
                assert len(sessions) == 2
                counts = {session.scalar(select(func.count(Tag.id))) for session in sessions}
                assert len(counts) == 1, counts
                seen.extend(counts)
    finally:
        stop.set()
        writer.join()
    if db.is_sqlite:
        with db.write() as holder:
            holder.add(Tag(name="held"))
            holder.flush()
            with db.reads_together(2, 0.05) as sessions:
                assert len(sessions) == 1


def test_reads_together_on_a_server_that_exports_no_snapshot_is_one_session(library, monkeypatch):
    """A server that cannot export a snapshot (a standby may not) leaves one session, whose
    transaction starts again cleanly: the report is read on it."""
    from lib_lora_manager import db as db_module

    if library.store.db.is_sqlite:
        pytest.skip("PostgreSQL's snapshots")
    monkeypatch.setattr(db_module, "EXPORT_SNAPSHOT", "SELECT pg_export_snapshot_of_a_standby()")
    with library.store.db.reads_together(2, 1.0) as sessions:
        assert len(sessions) == 1
        assert sessions[0].scalar(text("SELECT 1")) == 1
    assert library.analytics.report("all", "castle")["kpis"]["generations"] == 0
