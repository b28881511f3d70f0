"""The history's hourly rollups (rollups.py): a report read from them equals the report counted
from the rows, before and after writes of every kind that the triggers must mark (SQLite, and
PostgreSQL when LORA_MANAGER_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time

import pytest
from factories import make_lora
from sqlalchemy import delete, func, select, update

from lib_lora_manager import analytics, rollups
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.models import (
    GENERATION_HOURS,
    HISTORY_DIRTY_HOURS,
    LORA_PAIR_HOURS,
    LORA_USE_HOURS,
    Generation,
    GenerationLora,
    Lora,
)

NOW = time.time()
HOUR, DAY = 3600.0, 86400.0
WINDOWS = ("24h", "7d", "30d", "90d", "1y", "all")
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")


def _history(library, lora_dir, rng: random.Random) -> list[int]:
    """About 300 generations in 40 busy hours over 100 days (and the last hours, so the 24h window
    holds a few): statuses, models, sizes, ratings, favorites, sweeps, several LoRAs per prompt
    (pairs), names the library does not hold."""
    for seed, name in enumerate(NAMES):
        make_lora(lora_dir, name, seed=seed + 1)
    library.indexer.scan()
    hours = [NOW - rng.uniform(0, 100) * DAY for _ in range(40)] + [NOW - rng.uniform(0, 20) * HOUR for _ in range(5)]
    records = []
    for at in hours:
        for _ in range(rng.randint(1, 12)):
            used = rng.sample(NAMES + ("unknown_one", "unknown_two"), rng.randint(0, 3))
            prompt = "castle " + " ".join(f"<lora:{n}:{rng.choice((0.4, 0.6, 0.8, 1.0))}>" for n in used)
            status = rng.choice(("succeeded",) * 6 + ("failed", "interrupted", "no_model"))
            records.append(GenerationRecord(
                started_at=at + rng.uniform(0, 3000), status=status, prompt=prompt, loras=GenerationRecord.loras_from_prompt(prompt),
                duration=None if status == "no_model" else round(rng.uniform(1, 40), 3), steps=rng.choice((None, 20, 30)),
                width=rng.choice((512, 1024)), height=512, model_name=rng.choice(("m1", "m2", "m3", None)),
                error=f"CUDA out of memory at /x/{rng.randint(1, 9)}.py" if status == "failed" else None,
                group=f"sweep-{len(records) // 7}" if rng.random() < 0.1 else None,
                images=[GeneratedImage(path=f"/x/{len(records)}-{i}.png") for i in range(rng.randint(0, 2))]))
    ids = library.history.record_many(records)
    for generation_id in rng.sample(ids, 60):
        library.history.rate(generation_id, rng.randint(1, 5))
    for generation_id in rng.sample(ids, 25):
        library.history.set_favorite(generation_id, True)
    return ids


def _same(a, b, path="report"):
    """Equal, floats to 1e-9 (sums of the same numbers in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _agree(library, monkeypatch, windows=WINDOWS) -> None:
    """Every window's report and tables from the rollups equal those counted from the rows."""
    for window in windows:
        rolled = library.analytics.report(window, now=NOW)
        tables = {name: library.analytics.table(name, window, now=NOW) for name in analytics.TABLES}
        with monkeypatch.context() as m:
            m.setattr(analytics.Scope, "rolled", property(lambda self: False))
            counted = library.analytics.report(window, now=NOW)
            _same(rolled, counted, f"report({window})")
            for name, rows in tables.items():
                _same(rows, library.analytics.table(name, window, now=NOW), f"table({name}, {window})")


def _marked(library) -> int:
    with library.store.db.read() as session:
        return len(rollups.marked(session))


def test_rollups_agree_with_the_rows_before_and_after_every_kind_of_write(library, lora_dir, monkeypatch):
    rng = random.Random(7)
    ids = _history(library, lora_dir, rng)
    db = library.store.db
    assert _marked(library) >= 40  # every hour written is marked by the triggers

    # nothing summed yet: the marked hours are read from rows
    with monkeypatch.context() as m:
        m.setattr(rollups, "REFRESH_AT", 10 ** 9)
        _agree(library, monkeypatch, ("30d", "all"))
    assert _marked(library) >= 40
    # a report over more marked hours than REFRESH_AT sums them first, then reads the rollups
    library.analytics.report("all", now=NOW)
    assert _marked(library) == 0
    with db.read() as session:
        assert session.scalar(select(func.sum(GENERATION_HOURS.c.n))) == len(ids)
        assert session.scalar(select(func.count()).select_from(LORA_USE_HOURS)) > 0
        assert session.scalar(select(func.count()).select_from(LORA_PAIR_HOURS)) > 0
    _agree(library, monkeypatch)

    # writes after the sum, each in an hour of its own: each marks its hour, and the reports still
    # agree (marked hours read from rows)
    with db.read() as session:
        by_hour = {}
        for generation_id, at, rating, favorite in session.execute(
                select(GenerationLora.generation_id, Generation.started_at, Generation.rating, Generation.favorite)
                .join(Generation).where(GenerationLora.lora_id.is_not(None))):
            by_hour.setdefault(int(at // HOUR), (generation_id, rating, favorite))
    picked = [by_hour[h] for h in sorted(by_hour)[:6]]
    one = [generation_id for generation_id, _, _ in picked]
    library.history.rate(one[0], 1 if picked[0][1] != 1 else 2)
    library.history.set_favorite(one[1], not picked[1][2])
    library.history.delete(one[2])
    library.history.record(GenerationRecord(started_at=NOW - 45 * DAY, status="failed", prompt="<lora:alpha:0.3> <lora:beta:1>",
                                            loras=GenerationRecord.loras_from_prompt("<lora:alpha:0.3> <lora:beta:1>"),
                                            model_name="m1", error="boom 12"))
    with db.write() as session:  # a status or model moved by any writer; a LoRA row relinked or dropped
        session.execute(update(Generation).where(Generation.id == one[3]).values(status="failed", model_name="m9"))
        session.execute(update(GenerationLora).where(GenerationLora.generation_id == one[4]).values(lora_id=None))
        session.execute(delete(GenerationLora).where(GenerationLora.generation_id == one[5]))
    library.files.trash([library.find("gamma").id])  # its rows keep their LoRA until the trash is emptied
    assert _marked(library) == 7  # the six hours and the new generation's (read from rows, not summed by the reports)
    _agree(library, monkeypatch)
    assert db.transaction(rollups.refresh) >= 5
    _agree(library, monkeypatch)


def test_a_deleted_lora_marks_the_hours_of_its_rows(library, lora_dir, monkeypatch):
    rng = random.Random(3)
    _history(library, lora_dir, rng)
    db = library.store.db
    db.transaction(rollups.refresh)
    lora_id = library.find("delta").id
    with db.read() as session:
        used = session.scalar(select(func.count()).select_from(GenerationLora).where(GenerationLora.lora_id == lora_id))
    assert used
    with db.write() as session:  # the foreign key sets its rows' lora_id to NULL
        session.execute(delete(Lora).where(Lora.id == lora_id))
    assert _marked(library) >= 1
    _agree(library, monkeypatch, ("90d", "all"))


def test_only_hours_cut_by_an_edge_or_marked_are_read_from_rows(library):
    base = 1_000_000
    start = base * HOUR
    with library.store.db.write() as session:
        session.execute(HISTORY_DIRTY_HOURS.insert(), [{"hour": base + 7}, {"hour": base + 40}])  # one inside, one after
    with library.store.db.read() as session:
        split = rollups.hours(session, start + 10, start + 10 * HOUR, [start + 3 * HOUR + 5, start + 5 * HOUR])
    # the hours holding the range's ends and each edge (an edge on an hour's start too), and the marked one
    assert split.from_rows == tuple(base + h for h in (0, 3, 5, 7, 10))
    assert (split.first, split.end) == (base, base + 11)
    # read as spans cut to the range: the first hour from the range's start, the last to its end
    assert rollups.spans(split.from_rows, split.lo, split.hi) == [
        (start + 10, start + HOUR), (start + 3 * HOUR, start + 4 * HOUR), (start + 5 * HOUR, start + 6 * HOUR),
        (start + 7 * HOUR, start + 8 * HOUR)]


@pytest.mark.parametrize("hours,runs", [((), []), ((5,), [(5, 6)]), ((3, 1, 2, 7, 8, 10), [(1, 4), (7, 9), (10, 11)])])
def test_hours_are_read_as_runs(hours, runs):
    assert rollups._ranges(hours) == runs


def test_a_report_while_another_process_writes_reads_the_marked_hours_from_rows(library, lora_dir, monkeypatch):
    db = library.store.db
    if not db.is_sqlite:
        pytest.skip("the write lock another process holds is SQLite's")
    ids = _history(library, lora_dir, random.Random(5))
    assert _marked(library) > rollups.REFRESH_AT
    monkeypatch.setattr(analytics, "REFRESH_WAIT", 0.2)
    other = sqlite3.connect(db.engine.url.database, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # a scan's transaction in another process
    try:
        started = time.monotonic()
        report = library.analytics.report("all", now=NOW)
        assert time.monotonic() - started < 5
    finally:
        other.rollback()
        other.close()
    assert report["kpis"]["generations"] == len(ids)
    assert _marked(library) > rollups.REFRESH_AT  # not summed: read from rows
    _agree(library, monkeypatch, ("all",))


def test_refreshes_at_once_beside_a_writer_leave_the_rollups_right(library, lora_dir, monkeypatch):
    """Two processes' reports may sum the marked hours at once while the recorder writes: each
    hour is summed by one of them (PostgreSQL: claimed first), a write meanwhile marks its hour
    again, and the reports agree with the rows afterwards."""
    rng = random.Random(11)
    _history(library, lora_dir, rng)
    db = library.store.db
    errors: list[BaseException] = []

    def run(work):
        try:
            work()
        except BaseException as e:  # reported below
            errors.append(e)

    def write():
        for i in range(20):
            prompt = f"<lora:{NAMES[i % len(NAMES)]}:0.{i % 9 + 1}>"
            library.history.record(GenerationRecord(started_at=NOW - rng.uniform(0, 60) * DAY, status="succeeded", prompt=prompt,
                                                    loras=GenerationRecord.loras_from_prompt(prompt), duration=1.0 + i))

    threads = [threading.Thread(target=run, args=(lambda: db.transaction(rollups.refresh),)) for _ in range(2)]
    threads.append(threading.Thread(target=run, args=(write,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with monkeypatch.context() as m:
        m.setattr(rollups, "REFRESH_AT", 10 ** 9)  # what is still marked is read from rows
        _agree(library, monkeypatch, ("90d", "all"))
    db.transaction(rollups.refresh)
    assert _marked(library) == 0
    _agree(library, monkeypatch, ("90d", "all"))
