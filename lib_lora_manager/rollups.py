"""The history summed by hour, for analytics over a window without a History query.

Three rollups (models.GENERATION_HOURS, LORA_USE_HOURS, LORA_PAIR_HOURS) hold, per hour of
``started_at`` (``started_at // 3600``), what analytics counts: generations by model, image size
and status; the generations naming each library LoRA; the pairs of LoRAs used together. Triggers
(migration 0026) mark an hour in HISTORY_DIRTY_HOURS in the same transaction as any write to its
generations or their LoRA rows, whoever writes; ``refresh`` sums the marked hours again from the
rows and clears them.

Correctness never waits for a refresh: a reader takes an hour from its rollup only when it is not
marked in the reader's own snapshot, and reads the rows of marked hours and of the hours a
window or series bucket edge cuts (``Hours``). What each rollup sums is written once, here
(``generation_sums``, ``lora_use_sums``, ``pair_sums``): ``refresh`` applies it to the
generations of an hour, analytics to its copy of the generations of the hours read from rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, cast, delete, distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import BigInteger, Float

from .models import GENERATION_HOURS, HISTORY_DIRTY_HOURS, LORA_PAIR_HOURS, LORA_USE_HOURS, Generation, GenerationLora

HOUR = 3600
REFRESH_AT = 24  # marked hours in a window worth summing before a report (fewer are read from rows)
_CHUNK = 200  # marked hours claimed per statement
# the generations' index holding every column the sums read, in time order: SQLite reads each
# span of hours from it (left to itself it may walk a LoRA or status index through all rows)
ROWS_INDEX = "ix_generations_analytics"
GENERATIONS = Generation.__table__.c


class floor_of(FunctionElement):
    """floor(x) for x >= 0: PostgreSQL's CAST to integer rounds, SQLite's truncates."""

    inherit_cache = True
    type = Float()


@compiles(floor_of)
def _floor_default(element, compiler, **kw):
    return f"floor({compiler.process(element.clauses, **kw)})"


@compiles(floor_of, "sqlite")
def _floor_sqlite(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def hour_of(started_at):
    """The hour of a time column, as the triggers mark it (times are never negative)."""
    return cast(floor_of(started_at / HOUR), BigInteger)


def _ranges(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted hours as [first, last + 1) runs."""
    out: list[list[int]] = []
    for h in sorted(set(hours)):
        if out and out[-1][1] == h:
            out[-1][1] = h + 1
        else:
            out.append([h, h + 1])
    return [(a, b) for a, b in out]


def spans(hours: Iterable[int], lo: float | None = None, hi: float | None = None) -> list[tuple[float, float]]:
    """The times [a, b) of the hours' runs within [lo, hi): each is read as one range of an index
    (an OR of them, or one range around them all, has SQLite read every row between)."""
    out = [(a * HOUR if lo is None else max(a * HOUR, lo), b * HOUR if hi is None else min(b * HOUR, hi))
           for a, b in _ranges(hours)]
    return [(a, b) for a, b in out if a < b]


def in_span(g=GENERATIONS) -> list:
    """The conditions of a time span on generations ``g``, bound at execution (``a``, ``b``): one
    statement, compiled once, runs for every span."""
    return [g.started_at >= bindparam("a"), g.started_at < bindparam("b")]


# --- what each rollup sums ------------------------------------------------------------------------
# Each reads generations from ``g``: the generations table's columns, or those of a copy of some
# of its rows under the same names (analytics.SCOPED).

def _read(statement, g):
    if g is GENERATIONS:
        statement = statement.with_hint(Generation.__table__, f"INDEXED BY {ROWS_INDEX}", "sqlite")
    return statement


def generation_sums(labels: list, where: list, g=GENERATIONS):
    """Generations grouped by ``labels``, model, image size and status, with what analytics
    counts of them (the columns of GENERATION_HOURS after its hour)."""
    stepped = and_(g.duration.is_not(None), g.steps > 0)
    return _read(select(*labels, g.model_name, g.width, g.height, g.status, func.count().label("n"),
                        func.count(g.duration).label("timed"), func.count(case((stepped, 1))).label("stepped"),
                        func.sum(case((stepped, g.duration))).label("seconds"), func.sum(case((stepped, g.steps))).label("steps"),
                        func.sum(g.image_count).label("images"), func.count(case((g.lora_count > 0, 1))).label("with_lora"),
                        func.sum(g.lora_count).label("lora_rows"))
                 .where(*where).group_by(*labels, g.model_name, g.width, g.height, g.status), g)


def lora_use_sums(labels: list, where: list, g=GENERATIONS):
    """The rows naming a library LoRA grouped by ``labels``, LoRA, model and status (the columns
    of LORA_USE_HOURS after its hour)."""
    gl = GenerationLora.__table__
    return _read(select(*labels, gl.c.lora_id, g.model_name, g.status, func.count(distinct(g.id)).label("uses"),
                        func.count().label("lora_rows"), func.max(g.started_at).label("last_used_at"),
                        func.sum(g.rating).label("rating_sum"), func.count(g.rating).label("rated_rows"),
                        func.count(case((g.favorite.is_(True), 1))).label("favorite_rows"))
                 .select_from(g.id.table).join(gl, gl.c.generation_id == g.id).where(gl.c.lora_id.is_not(None), *where)
                 .group_by(*labels, gl.c.lora_id, g.model_name, g.status), g)


def pair_sums(labels: list, where: list, g=GENERATIONS):
    """Two library LoRAs named in one generation (a < b) grouped by ``labels`` and pair, with the
    generations naming both."""
    a, b = GenerationLora.__table__.alias("a"), GenerationLora.__table__.alias("b")
    return _read(select(*labels, a.c.lora_id.label("a"), b.c.lora_id.label("b"), func.count(distinct(g.id)).label("generations"))
                 .select_from(g.id.table).join(a, a.c.generation_id == g.id)
                 .join(b, and_(b.c.generation_id == a.c.generation_id, b.c.lora_id > a.c.lora_id))
                 .where(a.c.lora_id.is_not(None), *where).group_by(*labels, a.c.lora_id, b.c.lora_id), g)


_ROLLUPS = ((GENERATION_HOURS, generation_sums), (LORA_USE_HOURS, lora_use_sums), (LORA_PAIR_HOURS, pair_sums))


# --- keeping them in step -------------------------------------------------------------------------

def marked(session, first: int | None = None, end: int | None = None) -> list[int]:
    """The marked hours in [first, end) (None: unbounded), as this transaction sees them."""
    h = HISTORY_DIRTY_HOURS.c.hour
    where = ([h >= first] if first is not None else []) + ([h < end] if end is not None else [])
    return list(session.scalars(select(h).where(*where).order_by(h)))


def refresh(session, hours: Iterable[int] | None = None) -> int:
    """Sum the marked ``hours`` (None: all marked ones) again from their rows and clear their
    marks, in the caller's write transaction; returns how many hours were summed. On PostgreSQL
    the marks are claimed first (a concurrent refresh waits for them, then finds them gone); a
    write committed meanwhile marks its hour again for the next refresh."""
    wanted = marked(session) if hours is None else sorted(set(hours))
    sums = [(table, table.insert().from_select([c.name for c in table.c], sum_of([hour_of(GENERATIONS.started_at).label("hour")],
                                                                                 in_span())))
            for table, sum_of in _ROLLUPS]
    done = 0
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i:i + _CHUNK]
        claim = delete(HISTORY_DIRTY_HOURS).where(HISTORY_DIRTY_HOURS.c.hour.in_(chunk))
        if session.get_bind().dialect.name == "postgresql":
            chunk = list(session.scalars(claim.returning(HISTORY_DIRTY_HOURS.c.hour)))
        else:
            session.execute(claim)
        if not chunk:
            continue
        for table, insert in sums:
            session.execute(delete(table).where(table.c.hour.in_(chunk)))
            for a, b in spans(chunk):
                session.execute(insert, {"a": a, "b": b})
        done += len(chunk)
    return done


class Hours(NamedTuple):
    """How a read over [lo, hi) splits into hours: those read from the rollups (every hour of
    [first, end) but ``from_rows``) and those read from the generations' rows (marked, or cut by
    one of the edges or the range's ends)."""

    first: int
    end: int  # exclusive
    from_rows: tuple[int, ...]
    lo: float
    hi: float

    def rolled(self, table) -> list:
        """The conditions on a rollup ``table`` for its hours of the range."""
        h = table.c.hour
        return [h >= self.first, h < self.end] + ([h.not_in(self.from_rows)] if self.from_rows else [])

    def spans(self) -> list[tuple[float, float]]:
        """The times of the hours read from rows, within [lo, hi)."""
        return spans(self.from_rows, self.lo, self.hi)


def hours(session, first: float, end: float, edges: Iterable[float]) -> Hours:
    """The split of [first, end) for a read whose figures change at ``edges`` (window and bucket
    starts): each hour holding an edge or the range's ends, or marked, is read from rows."""
    h_first, h_end = int(first // HOUR), int(end // HOUR) + 1
    cut = {int(e // HOUR) for e in (first, end, *edges)}
    return Hours(h_first, h_end, tuple(sorted(cut | set(marked(session, h_first, h_end)))), first, end)
