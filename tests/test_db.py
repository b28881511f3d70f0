"""Schema migrations, SQLite settings and concurrent writers."""

from __future__ import annotations

import sqlite3
import threading

from factories import POSTGRES_URL, reset_postgres
import pytest
from sqlalchemy import text

from lib_lora_manager.db import MIGRATIONS_DIR, SCHEMA_REVISION, Database, sqlite_url
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

    from lib_lora_manager.models import Base

    db = Database(sqlite_url(tmp_path / "m.db"))
    db.migrate()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
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
