"""Remembered counts (query.Totals, Database.data_version): a search's count is taken once while
the data stay the same, and taken again after any write: this process's, on any of its
connections, another process's, or a clock-relative filter's window moving on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from factories import make_lora
from sqlalchemy import event

from lib_lora_manager.history import GenerationRecord
from lib_lora_manager.statuses import GenerationStatus


class Counts:
    """The count statements a database runs (what a remembered total saves)."""

    def __init__(self, engine):
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            self.statements.append(statement)

    def taken(self, search) -> int:
        before = len(self.statements)
        search()
        return len(self.statements) - before


@pytest.fixture
def scanned(library, lora_dir):
    for n in range(6):
        make_lora(lora_dir / ("styles" if n % 2 else "other"), f"style_{n}", seed=n)
    library.indexer.scan()
    return library


def test_a_count_is_taken_once_while_nothing_changes(scanned):
    counts = Counts(scanned.store.db.engine)
    assert counts.taken(lambda: scanned.search("style folder:styles", per_page=1)) >= 1
    # the same terms, another page or sort: the count is remembered
    assert counts.taken(lambda: scanned.search("style folder:styles", page=2, per_page=1)) == 0
    assert counts.taken(lambda: scanned.search("style folder:styles sort:-size", per_page=1)) == 0
    assert scanned.search("style folder:styles", page=3, per_page=1).total == 3
    # other terms are other counts
    assert counts.taken(lambda: scanned.search("style folder:other", per_page=1)) >= 1


def test_an_edit_in_this_process_is_counted(scanned):
    ids = [i.id for i in scanned.search("", per_page=50).items]
    assert scanned.search("rating:5").total == 0
    for n, lora_id in enumerate(ids[:3], 1):
        scanned.edit(lora_id, rating=5)  # each on whichever pooled connection; reads reuse them
        assert scanned.search("rating:5").total == n
    scanned.set_rating(ids, None)
    assert scanned.search("rating:5").total == 0


def test_a_write_by_another_process_is_counted(scanned, database_url, tmp_path):
    assert scanned.search("fav:yes").total == 0
    url = scanned.store.db.engine.url.render_as_string(hide_password=False)
    for n in (1, 2):
        script = textwrap.dedent(f"""
            from sqlalchemy import create_engine, text
            engine = create_engine({url!r})
            with engine.begin() as conn:
                conn.execute(text("UPDATE loras SET favorite = true WHERE id IN "
                                  "(SELECT id FROM loras WHERE favorite = false ORDER BY id LIMIT 1)"))
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert scanned.search("fav:yes").total == n


def test_a_clock_relative_filter_is_counted_each_time(scanned):
    counts = Counts(scanned.store.db.engine)
    for _ in range(2):
        assert counts.taken(lambda: scanned.search("added:<1h", per_page=1)) >= 1
        assert counts.taken(lambda: scanned.search("-modified:>2d", per_page=1)) >= 1
    # an absolute date does not move
    counts.taken(lambda: scanned.search("added:>2020-01-01", per_page=1))
    assert counts.taken(lambda: scanned.search("added:>2020-01-01", per_page=1)) == 0


def test_history_counts_are_remembered_and_follow_new_records(scanned):
    history = scanned.history
    counts = Counts(scanned.store.db.engine)
    history.record(GenerationRecord(prompt="castle at night", source="api", started_at=time.time(), status=GenerationStatus.SUCCEEDED))
    assert history.search("castle").total == 1
    assert counts.taken(lambda: history.search("castle", page=2)) == 0
    history.record(GenerationRecord(prompt="castle by day", source="api", started_at=time.time(), status=GenerationStatus.SUCCEEDED))
    assert history.search("castle").total == 2
