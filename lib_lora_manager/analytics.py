"""Analytics over the generation history and the library (``library.analytics``).

A scope is a time window (24h, 7d, 30d, 90d, 1y, all, or a from..to date range) and an optional
History query (history_query.GENERATIONS): every figure counts exactly the generations the query
finds in the window, through the query's own where-clauses. KPIs stand beside the window of the
same length just before; a rate with nothing to divide by is None ("no data"), never 0 %.

A scope without a History query is summed from the history's hourly rollups (rollups.py), and
from the rows of the few hours they cannot tell (cut by an edge of the window or a series bucket,
or written since they were summed). For a scope with a query, its generations (its window's and
the window's before) and their LoRA rows are copied once into temporary tables of a few narrow
columns; every figure is then aggregated in SQL over them (GROUP BY). A median or p95 is
PostgreSQL's percentile_disc; on SQLite a walk along an index of the durations to the rank, a
sorted read of a series bucket's key range, or a window function over many groups. The library's figures (never used, health), which no scope changes, are read
once per state of the data and shared by every report until a write (Database.totals). Each
figure or row carries ``link``: the Library or History query that lists what it counts.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import aliased

from . import base_models, lora_query, query, rollups
from .dbtypes import SafeString, SafeText
from .errors import Busy, InvalidInput, NotFound
from .history_query import GENERATIONS
from .models import (
    GENERATION_HOURS,
    LORA_PAIR_HOURS,
    LORA_USE_HOURS,
    Generation,
    GenerationImage,
    GenerationLora,
    Lora,
    LoraTag,
    Tag,
    count_unreadable,
    live,
)
from .statuses import GenerationStatus
from .store import Store
from .wording import human_size

HOUR, DAY = 3600.0, 86400.0
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY, "1y": 365 * DAY, "all": None}
# the History query's words for the same window (date:<30d is "started in the last 30 days")
_WINDOW_QUERY = {"24h": "date:<24h", "7d": "date:<7d", "30d": "date:<30d", "90d": "date:<90d", "1y": "date:<1y", "all": ""}
TOP = 20  # rows of each ranking
MIN_PAIR_SUPPORT = 3  # generations two LoRAs must share before their lift is shown
UNUSED_DAYS = 90
PICTURES = 8  # thumbnails of a LoRA's best rated and favorite generations
MAX_ERROR_MESSAGES = 2000  # distinct raw messages read before they are grouped
REFRESH_WAIT = 1.0  # seconds a report waits to sum marked hours while another process writes
SNAPSHOT_WAIT = 0.1  # seconds a report waits to share one snapshot between two connections (SQLite: the write lock)
FINISHED = (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.INTERRUPTED)


class Buckets(NamedTuple):
    """The series' time buckets: ``count`` of ``size`` seconds from ``start``."""

    start: float
    size: float
    count: int

    def of(self, started_at):
        """The bucket number of a time column (SQL)."""
        return rollups.floor_of((started_at - self.start) / self.size)


@dataclass(frozen=True)
class Scope:
    """The generations analytics counts: [start, end) and the History query ``q``."""

    window: str  # a key of WINDOWS, or "range"
    start: float | None  # None: since the first generation
    end: float
    q: str
    parsed: query.Query
    date_query: str  # the History query words for the window

    @property
    def length(self) -> float | None:
        return None if self.start is None else self.end - self.start

    @property
    def rolled(self) -> bool:
        """Counted from the history's hourly rollups (rollups.py): a scope without a History query."""
        return not self.parsed.where()

    def first(self) -> float | None:
        """The start of the window before this one (of this one for ``all``: None)."""
        previous = self.previous()
        return previous.start if previous is not None else self.start

    def current(self, started_at):
        """1 for a time in this window, 0 in the one before (SQL)."""
        return literal(1) if self.start is None else case((started_at >= self.start, 1), else_=0)

    def previous(self) -> Scope | None:
        """The window of the same length just before (None for ``all``)."""
        if self.start is None:
            return None
        return Scope("previous", self.start - self.length, self.start, self.q, self.parsed, "")

    def where(self) -> list:
        clauses = list(self.parsed.where()) + [Generation.started_at < self.end]
        if self.start is not None:
            clauses.append(Generation.started_at >= self.start)
        return clauses

    def history_query(self, *extra: str) -> str:
        return " ".join(p for p in (self.q.strip(), self.date_query, *extra) if p)

    def link(self, *extra: str) -> dict[str, str]:
        return {"target": "history", "query": self.history_query(*extra)}

    def describe(self) -> dict[str, Any]:
        return {"window": self.window, "start": self.start, "end": self.end, "q": self.q,
                "description": self.parsed.describe(), "query": self.history_query()}


def _library_link(q: str) -> dict[str, str]:
    return {"target": "library", "query": q}


def _date(text: str, name: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        raise InvalidInput(f"{name} “{text}” is not a date like 2026-01-31") from None


def scope(window: str | None = "30d", q: str | None = "", start: str | None = None, end: str | None = None,
          now: float | None = None) -> Scope:
    """The scope of a window name or a from/to day range (local days, both included). Raises
    InvalidInput for an unknown window or a bad date, QueryError for a bad query."""
    now = time.time() if now is None else now
    parsed = query.parse(q or "", GENERATIONS)
    if start or end:
        if not (start and end):
            raise InvalidInput("a date range needs both from and to (YYYY-MM-DD)")
        first, last = _date(start, "from"), _date(end, "to")
        if last < first:
            raise InvalidInput("the date range ends before it starts")
        return Scope("range", first.timestamp(), (last + dt.timedelta(days=1)).timestamp(), q or "", parsed,
                     f"date:{start.strip()}..{end.strip()}")
    window = (window or "30d").strip().lower()
    if window not in WINDOWS:
        raise InvalidInput(f"unknown window “{window}” (known: {', '.join(WINDOWS)}, or from and to dates)")
    length = WINDOWS[window]
    return Scope(window, None if length is None else now - length, now, q or "", parsed, _WINDOW_QUERY[window])


def _laps(into: dict[str, float] | None) -> Callable[[str], None]:
    """A stopwatch: each call files the milliseconds since the one before under its name."""
    last = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        if into is not None:
            into[name] = (now - last[0]) * 1000
        last[0] = now
    return lap


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole or part is None else part / whole


def _change(now: float | None, before: float | None) -> float | None:
    """Relative change; None when there is nothing before to compare with."""
    if now is None or not before:
        return None
    return (now - before) / before


_NUMBERS = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?", re.I)
_PATHS = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\\/\s'\":]+)+[\\/]?")  # a line number after ':' stays a number


def normalise_error(message: str | None) -> str:
    """A failure's message with what differs between runs of the same error removed: paths,
    hex ids and numbers (``CUDA out of memory. Tried to allocate 2.00 GiB`` -> ``… allocate # GiB``)."""
    text = (message or "").strip()
    if not text:
        return "(no message)"
    text = _PATHS.sub("<path>", text)
    text = _NUMBERS.sub("#", text)
    return re.sub(r"\s+", " ", text)[:300]


# The scope's generations (the window's, ``cur`` 1, and the window's before it, ``cur`` 0) and
# their LoRA rows, copied once per report into temporary tables of a few narrow columns: every
# figure then aggregates these rows instead of running the History query (free text, tags …)
# again. A scope read from the hourly rollups copies only the generations of the hours read from
# rows, and no LoRA rows (the rollups' sums read those through SCOPED).
_SCRATCH = MetaData()
SCOPED = Table(
    "analytics_scoped", _SCRATCH,
    Column("id", Integer, nullable=False), Column("cur", Integer, nullable=False), Column("started_at", Float, nullable=False),
    Column("status", SafeString(16)), Column("duration", Float), Column("model_name", SafeText),
    Column("width", Integer), Column("height", Integer), Column("steps", Integer), Column("rating", Integer),
    Column("favorite", Boolean), Column("grouped", Boolean),  # a run of a strength sweep or an A/B comparison
    # its image rows and LoRA rows (library LoRAs or not): the images and "with a LoRA" figures
    # are sums over this table alone (named as the generations' columns: rollups' sums read either)
    Column("image_count", Integer), Column("lora_count", Integer),
    # SQLite: in time order (the rows arrive so, from the generations' started_at index), so a
    # bucket of the series is a range of the key (_percentiles' per-group queries); PostgreSQL:
    # no key (it joins by hashing, and an index kept up as the rows arrive cost more than it saved)
    PrimaryKeyConstraint("started_at", "id").ddl_if(dialect="sqlite"),
    prefixes=["TEMPORARY"], sqlite_with_rowid=False)
# the rows naming a library LoRA (the only ones counted one by one), keyed by generation: a
# generation's rows together (pairs); ``weight`` is NULL in a strength sweep or an A/B comparison
# (a group's runs): the comparison set those weights, the user did not choose them
SCOPED_LORAS = Table(
    "analytics_scoped_loras", _SCRATCH,
    Column("generation_id", Integer, nullable=False), Column("id", Integer, nullable=False),
    Column("lora_id", Integer), Column("weight", Float),
    Column("cur", Integer, nullable=False), Column("started_at", Float), Column("status", SafeString(16)),
    Column("model_name", SafeText), Column("rating", Integer), Column("favorite", Boolean),
    # SQLite stores the rows in key order; PostgreSQL would maintain an index as they arrive
    # (slower than the hash joins and sorts it uses without one)
    PrimaryKeyConstraint("generation_id", "id").ddl_if(dialect="sqlite"), prefixes=["TEMPORARY"], sqlite_with_rowid=False)
# per library LoRA used in scope: generations using it now and before, its rows now, last use …
SCOPED_USES = Table(
    "analytics_scoped_uses", _SCRATCH,
    Column("lora_id", Integer, primary_key=True), Column("uses", Integer), Column("previous_uses", Integer),
    Column("lora_rows", Integer), Column("last_used_at", Float), Column("rating", Float), Column("favorites", Integer),
    prefixes=["TEMPORARY"])
_TABLES = (SCOPED, SCOPED_LORAS, SCOPED_USES)
# SQLite: SCOPED's succeeded durations in order, built once the rows are in (one sort): a median
# or p95 of the window, the window before or a model is then a walk along it to the rank, where
# each read would sort its group again. Without a History query, when the scope holds at least
# 1 / WALK_SHARE of the history, the walk is along the generations' own duration index
# (GENERATION_DURATIONS, which holds the window's and the model's columns too) and nothing is
# built; for a smaller scope that walk would pass mostly other generations.
SCOPED_DURATIONS = "analytics_scoped_durations"
GENERATION_DURATIONS = "ix_generations_page_duration"
WALK_SHARE = 4
MIN_FAILURE_RUNS = 5  # finished runs of a LoRA with a model before its failure rate is an insight
MIN_FAILURES = 3
FEW_GROUPS = 4  # groups of a percentile read one by one on SQLite (more: one window pass)


@contextmanager
def _scoped(session, s: Scope, loras: bool = True) -> Iterator[None]:
    """The scope's generations in SCOPED for the body, and with ``loras`` its LoRAs in
    SCOPED_LORAS and SCOPED_USES (temporary tables: this connection's own, dropped after; a
    failed transaction's rollback takes them too)."""
    conn = session.connection()
    tables = _TABLES if loras else (SCOPED,)
    for table in _TABLES:
        table.drop(conn, checkfirst=True)  # left by a body that raised (SQLite keeps them)
    for table in tables:
        table.create(conn)
    for key in ("analytics_walk_generations", "analytics_hours"):
        session.info.pop(key, None)  # decided per scope (Analytics._durations, _rolled_rows)
    if s.rolled:
        _rolled_rows(session, s)
        if loras:
            _rolled_uses(session, s)
    else:
        _copied_rows(session, s)
        if loras:
            _copied_loras(session, s)
    yield
    for key in ("analytics_walk_generations", "analytics_hours"):
        session.info.pop(key, None)
    for table in tables:
        table.drop(conn)


def _sum(column):
    """SUM of a column, an integer one's as an integer (PostgreSQL sums a bigint as numeric)."""
    total = func.sum(column)
    return total if isinstance(column.type, Float) else cast(total, BigInteger)


def _window_where(s: Scope, previous: bool = True) -> list:
    """The generations' time conditions of the window (and, by default, the one before)."""
    first = s.first() if previous else s.start
    return [Generation.started_at < s.end] + ([Generation.started_at >= first] if first is not None else [])


def _rolled_rows(session, s: Scope) -> None:
    """A scope without a History query: the generations of the hours the rollups cannot tell
    (rollups.Hours, kept in session.info for the figures that read them) in SCOPED."""
    first = s.first()
    if first is None:
        first = session.scalar(select(func.min(Generation.started_at)))
        if first is None:
            return  # no generation at all
    buckets = _buckets(session, s)
    edges = ([] if s.start is None else [s.start]) + \
        ([] if buckets is None else [buckets.start + i * buckets.size for i in range(buckets.count + 1)])
    hours = session.info["analytics_hours"] = rollups.hours(session, first, s.end, edges)
    session.info["analytics_walk_generations"] = True  # the durations are read from the generations' index
    copy = SCOPED.insert().from_select([c.name for c in SCOPED.c], _generation_rows(s).where(*rollups.in_span()))
    for a, b in hours.spans():
        session.execute(copy, {"a": a, "b": b})


def _rolled_uses(session, s: Scope) -> None:
    """SCOPED_USES of a scope without a History query, summed from the rollups and SCOPED's rows
    (_rolled_rows); SCOPED_LORAS stays empty."""
    hours = session.info.get("analytics_hours")
    if hours is None:
        return  # no generation at all
    both = _lora_use_hours(s, hours, by_lora=True).subquery()
    c = both.c
    now, before = c.cur == 1, c.cur == 0

    def total(column, when):
        return func.coalesce(func.sum(case((when, column))), 0)

    session.execute(SCOPED_USES.insert().from_select(
        [c.name for c in SCOPED_USES.c],
        select(c.lora_id, total(c.uses, now), total(c.uses, before), total(c.lora_rows, now), func.max(case((now, c.last_used_at))),
               func.sum(case((now, c.rating_sum))) * literal(1.0) / func.nullif(func.sum(case((now, c.rated_rows))), 0),
               total(c.favorite_rows, now)).group_by(c.lora_id)))


def _lora_use_hours(s: Scope, hours: rollups.Hours, where: Callable[[Any], list] = lambda c: [], previous: bool = True,
                    by_lora: bool = False):
    """LORA_USE_HOURS' rows of the scope's hours, with ``cur``, and the same sums
    (rollups.lora_use_sums) of the generations SCOPED holds: those of the hours read from rows.
    ``where(columns)`` narrows the rollup's rows (by model_name or status; the caller narrows the
    union too), and ``previous=False`` leaves out the window before."""
    u = LORA_USE_HOURS.c
    now = [] if previous or s.start is None else [u.hour * HOUR >= s.start]
    rolled = select(s.current(u.hour * HOUR).label("cur"), *(c for c in LORA_USE_HOURS.c if c.name != "hour")) \
        .where(*hours.rolled(LORA_USE_HOURS), *now, *where(u))
    if by_lora:  # SQLite: LoRA by LoRA along the index holding every column, so the groups come in order
        rolled = rolled.with_hint(LORA_USE_HOURS, "INDEXED BY ix_lora_use_hours_lora", "sqlite")
    t = SCOPED.c
    return rolled.union_all(rollups.lora_use_sums([t.cur.label("cur")], [] if previous else [t.cur == 1], t))


def _generation_rows(s: Scope):
    """SCOPED's columns of generations (to narrow with a where)."""
    g = Generation
    return select(g.id, s.current(g.started_at), g.started_at, g.status, g.duration, g.model_name, g.width, g.height,
                  g.steps, g.rating, g.favorite, g.group_key.is_not(None), g.image_count, g.lora_count)


def _copied_rows(session, s: Scope) -> None:
    """A scope with a History query: its generations copied into SCOPED."""
    session.execute(SCOPED.insert().from_select([c.name for c in SCOPED.c],
                                                _generation_rows(s).where(*s.parsed.where(), *_window_where(s))))


def _copied_loras(session, s: Scope) -> None:
    """A scope with a History query: the LoRA rows of SCOPED's generations copied into
    SCOPED_LORAS, and SCOPED_USES summed from them."""
    t, gl = SCOPED.c, GenerationLora
    weight = case((t.grouped.is_(True), None), else_=func.coalesce(gl.te_weight, gl.unet_weight))
    session.execute(SCOPED_LORAS.insert().from_select(
        [c.name for c in SCOPED_LORAS.c],
        select(gl.generation_id, gl.id, gl.lora_id, weight, t.cur, t.started_at, t.status,
               t.model_name, t.rating, t.favorite).join(t.id.table, t.id == gl.generation_id).where(gl.lora_id.is_not(None))))
    u = SCOPED_LORAS.c
    now, before = u.cur == 1, u.cur == 0
    session.execute(SCOPED_USES.insert().from_select(
        [c.name for c in SCOPED_USES.c],
        select(u.lora_id, func.count(distinct(case((now, u.generation_id)))),
               func.count(distinct(case((before, u.generation_id)))), func.sum(u.cur),
               func.max(case((now, u.started_at))), func.avg(case((now, u.rating))),
               func.sum(case((and_(now, u.favorite.is_(True)), 1), else_=0)))
        .group_by(u.lora_id)))


def _buckets(session, s: Scope) -> Buckets | None:
    """The series' buckets: hours for a day, days up to 90, weeks beyond (None: no generation)."""
    start = s.start
    if start is None:
        start = session.scalar(select(func.min(Generation.started_at))) if s.rolled else \
            session.scalar(select(func.min(SCOPED.c.started_at)).where(SCOPED.c.cur == 1))
    if start is None:
        return None
    length = s.end - start
    size = HOUR if length <= DAY + 1 else DAY if length <= 90 * DAY + 1 else 7 * DAY
    return Buckets(start, size, max(1, int(-(-length // size))))


def _percentiles(session, key, value, where: list, counts: dict[Any, int], percents: tuple[int, ...],
                 span: Callable[[Any], list] | None = None, ordered_by: tuple[Any, str] | None = None) -> dict[Any, dict[int, float]]:
    """{key: {percent: value}}: nearest-rank percentiles of ``value`` (not NULL) in each group of
    ``key`` whose count of such values ``counts`` holds, the row at rank ceil(p n / 100) of each.
    ``span(group)``, when given, narrows a group to a range of SCOPED's key (SQLite).
    ``ordered_by`` (table, index): SQLite reads a few groups along that index, in ``value``'s order."""
    wanted = {g: {p: max(1, -(-p * n // 100)) for p in percents} for g, n in counts.items() if n}
    if not wanted:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # its ordered-set aggregate: the first value whose cumulative share reaches p %, the same row
        found = session.execute(select(key, *(func.percentile_disc(p / 100).within_group(value) for p in percents))
                                .where(*where, value.is_not(None)).group_by(key)).all()
        return {g: {p: float(v) for p, v in zip(percents, values)} for g, *values in found if g in wanted}
    out: dict[Any, dict[int, float]] = {}
    if span is not None or len(wanted) <= FEW_GROUPS:
        # SQLite: one sorted read per group and percent, from the nearer end: its sorter keeps only
        # the rows up to the offset (a median half the group's, a p95 a twentieth), where a window
        # function sorts every row; a group without a key range reads the whole table, so only a few
        for g, ranks in wanted.items():
            group = [*where, value.is_not(None), key.is_(None) if g is None else key == g, *(span(g) if span else ())]
            for p, rank in ranks.items():
                n = counts[g]
                ordered = select(value).where(*group).limit(1)
                if ordered_by is not None:  # a walk along the index to the rank, no sort (it holds every filtered column)
                    ordered = ordered.with_hint(ordered_by[0], f"INDEXED BY {ordered_by[1]}", "sqlite")
                ordered = ordered.order_by(value).offset(rank - 1) if rank - 1 <= n - rank \
                    else ordered.order_by(value.desc()).offset(n - rank)
                out.setdefault(g, {})[p] = float(session.scalar(ordered))
        return out
    inner = select(key.label("k"), value.label("v"), func.row_number().over(partition_by=key, order_by=value).label("rank")) \
        .where(*where, value.is_not(None)).subquery()
    k = inner.c.k
    tests = [(k.is_(None) if g is None else k == g, ranks) for g, ranks in wanted.items()]
    keep = or_(*(inner.c.rank == case(*((test, ranks[p]) for test, ranks in tests), else_=-1) for p in percents))
    for g, v, rank in session.execute(select(inner.c.k, inner.c.v, inner.c.rank).where(keep)):  # one ordered pass
        for p, r in wanted.get(g, {}).items():
            if r == rank:
                out.setdefault(g, {})[p] = float(v)
    return out


class _LibraryFigures(NamedTuple):
    """The library's figures, which no window or History query changes: read once while the
    data stay the same (Database.totals) and shared by every report until a write."""

    loras: int
    bytes: int
    never: int
    never_bytes: int
    last_used: list[float]  # the used LoRAs' last uses, in order
    used_bytes: list[int]  # used_bytes[n]: the size of the first n of them
    unhashed: int
    missing: int
    unreadable: int
    no_preview: int
    no_trigger_words: int
    no_base_model: int
    unloadable_names: int
    duplicate_groups: int
    duplicates: int
    wasted_bytes: int


_LIBRARY_TERMS = ("analytics", "library")  # their key among the remembered counts


def _library_figures(session) -> _LibraryFigures:
    present = Lora.missing.is_(False)

    def counted(condition):
        return func.count(case((condition, 1)))

    never = Lora.use_count == 0
    loras, size, never_n, never_bytes, unhashed, missing, no_preview, no_triggers, no_base, unloadable = session.execute(select(
        func.count(Lora.id), func.coalesce(func.sum(Lora.size), 0), counted(never),
        func.coalesce(func.sum(case((never, Lora.size))), 0),
        counted(and_(present, Lora.sha256.is_(None))), counted(Lora.missing.is_(True)),
        counted(lora_query.NO_PREVIEW), counted(lora_query.NO_TRIGGER_WORDS),
        counted(Lora.base_model == "unknown"), counted(lora_query.UNLOADABLE_NAME)).where(live())).one()
    last_used, used_bytes = [], [0]
    for at, bytes_ in session.execute(select(Lora.last_used_at, Lora.size).where(
            live(), Lora.use_count > 0, Lora.last_used_at.is_not(None)).order_by(Lora.last_used_at)):
        last_used.append(at)
        used_bytes.append(used_bytes[-1] + (bytes_ or 0))
    dupes = select(Lora.sha256, func.count().label("n"), func.sum(Lora.size).label("total"), func.max(Lora.size).label("one")) \
        .where(live(), present, Lora.sha256.is_not(None)).group_by(Lora.sha256).having(func.count() > 1).subquery()
    groups, copies, wasted = session.execute(select(func.count(), func.coalesce(func.sum(dupes.c.n), 0),
                                                    func.coalesce(func.sum(dupes.c.total - dupes.c.one), 0))).one()
    return _LibraryFigures(loras, int(size), never_n, int(never_bytes), last_used, used_bytes, unhashed, missing,
                           count_unreadable(session), no_preview, no_triggers, no_base, unloadable, groups, int(copies), int(wasted))


class Analytics:
    """Figures over a Scope; ``report`` is everything the Analytics tab shows."""

    def __init__(self, store: Store, recommendations_taken: Callable[[float | None, float | None], dict[str, Any]] | None = None):
        self.store = store
        # Recommender.taken(start, end): the feedback given to recommendations in a window
        self.recommendations_taken = recommendations_taken

    # --- whole report -----------------------------------------------------------------------

    def report(self, window: str | None = "30d", q: str | None = "", start: str | None = None,
               end: str | None = None, now: float | None = None, timings: dict[str, float] | None = None) -> dict[str, Any]:
        """Every figure of the Analytics tab over one scope. ``timings``, when given, receives
        each part's milliseconds (the benchmark's breakdown).

        The LoRAs' figures are read on a second connection while the generations' are read on
        the first, both in one snapshot (Database.reads_together): on two cores a broad History
        query's report takes about half the time. When the snapshot cannot be shared at once
        (another writer holds SQLite's lock), one connection reads both, one after the other."""
        s = scope(window, q, start, end, now)
        lap = _laps(timings)
        self._sum_marked_hours(s)
        lap("rollups")
        db = self.store.db
        with db.reads_together(2, SNAPSHOT_WAIT) as sessions:
            session = sessions[0]
            # the library's figures as of this transaction's start, remembered until a write
            version = db.data_version(session)
            known = db.totals.get((version, _LIBRARY_TERMS))
            if known is None:
                known = _library_figures(session)
                db.totals.put((version, _LIBRARY_TERMS), known)
            lap("library")
            if len(sessions) == 1:
                with _scoped(session, s):
                    lap("scope")
                    loras = self._lora_figures(session, s, lap)
                    generations = self._generation_figures(session, s, lap)
            else:
                with ThreadPoolExecutor(1, thread_name_prefix="lora-manager-analytics") as pool:
                    loras_read = pool.submit(self._scoped_lora_figures, sessions[1], s, _laps(timings))
                    with _scoped(session, s, loras=False):
                        lap("scope")
                        generations = self._generation_figures(session, s, lap)
                    loras = loras_read.result()
            # the temporary tables are gone; what was remembered holds for the next report too
            after = db.version_after_read(sessions, version)
            if after is not None and after != version:
                db.totals.put((after, _LIBRARY_TERMS), known)
        lap("together")  # the wait for the LoRAs' figures
        out = {"scope": s.describe(), **self._together(generations, loras)}
        out["never_used"], out["health"] = self._library(known)
        out["recommendations"] = self._recommendations(s)
        lap("recommendations")
        out["weights"] = self._weights_from(out["top_loras"])
        out["insights"] = insights(out)
        return out

    def _generation_figures(self, session, s: Scope, lap: Callable[[str], None]) -> dict[str, Any]:
        """The figures of the scope's generations (SCOPED and the rollups)."""
        buckets = _buckets(session, s)
        profile = self._profile(session, s, buckets)
        out = {"kpis": self._kpis(session, s, profile)}
        lap("kpis")
        out["series"] = self._series(session, s, buckets, profile)
        lap("series")
        out["models"] = self._models(session, s, profile)
        lap("models")
        out["speed"] = self._speed(session, s, profile)
        lap("speed")
        out["errors"] = self._errors(session, s)
        lap("errors")
        return out

    def _scoped_lora_figures(self, session, s: Scope, lap: Callable[[str], None]) -> dict[str, Any]:
        with _scoped(session, s):
            lap("loras' scope")
            return self._lora_figures(session, s, lap)

    def _lora_figures(self, session, s: Scope, lap: Callable[[str], None]) -> dict[str, Any]:
        """The figures of the scope's LoRAs (SCOPED_LORAS, SCOPED_USES and the rollups), the
        pairs' lift and the failures' comparison with the window left for _together."""
        su = SCOPED_USES.c
        out = {"loras_used": session.execute(select(func.count(case((su.uses > 0, 1))),
                                                    func.count(case((su.previous_uses > 0, 1))))).one()}
        for name in ("top_loras", "rising", "lora_use", "pairs", "failures"):
            out[name] = getattr(self, "_" + name)(session, s)
            lap(name)
        return out

    def _together(self, generations: dict[str, Any], loras: dict[str, Any]) -> dict[str, Any]:
        """The report's figures from both halves: the LoRAs' KPIs, lifts and failure rates
        measured against the generations'."""
        kpis = generations["kpis"]
        now, before = loras["loras_used"]
        kpis["loras_used"] = now
        if kpis["previous"] is not None:
            kpis["previous"]["loras_used"] = before
            kpis["change"]["loras_used"] = _change(now, before)
        return {"kpis": kpis, "series": generations["series"], "top_loras": loras["top_loras"], "rising": loras["rising"],
                "lora_use": loras["lora_use"], "combinations": self._lifted(loras["pairs"], kpis["generations"]),
                "models": generations["models"], "speed": generations["speed"], "errors": generations["errors"],
                "lora_model_failures": self._failures_beyond(loras["failures"], kpis)}

    def table(self, name: str, window: str | None = "30d", q: str | None = "", start: str | None = None,
              end: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """The rows of one of TABLES over a scope (REST's table routes, CSV)."""
        if name not in TABLES:
            raise InvalidInput(f"unknown analytics table “{name}” (known: {', '.join(TABLES)})")
        s = scope(window, q, start, end, now)
        self._sum_marked_hours(s)
        with self.store.db.read() as session, _scoped(session, s):
            return getattr(self, TABLES[name])(session, s)

    def _sum_marked_hours(self, s: Scope) -> None:
        """Before a rolled scope is read: the marked hours summed again when more than
        rollups.REFRESH_AT of them fall in its range (fewer are read from their rows)."""
        if not s.rolled:
            return
        first = s.first()
        with self.store.db.read() as session:
            marked = rollups.marked(session, None if first is None else int(first // HOUR), int(s.end // HOUR) + 1)
        if len(marked) > rollups.REFRESH_AT:
            try:  # a report does not wait long for another writer: the marked hours read from rows are as right
                self.store.db.transaction(rollups.refresh, retry_for=REFRESH_WAIT)
            except Busy:
                pass

    # --- KPIs -------------------------------------------------------------------------------

    @staticmethod
    def _durations(session, s: Scope) -> tuple[Any, tuple[Any, str] | None]:
        """The columns the medians and p95s of the KPIs and models read (SCOPED's, or on SQLite
        the generations' own for a large scope without a History query: see SCOPED_DURATIONS),
        and the index SQLite walks for them (SCOPED's built on first use)."""
        if session.get_bind().dialect.name != "sqlite":
            return (Generation.__table__.c if s.rolled else SCOPED.c), None
        if "analytics_walk_generations" not in session.info:
            scoped = session.scalar(select(func.count()).select_from(SCOPED))
            session.info["analytics_walk_generations"] = not s.parsed.where() and \
                scoped * WALK_SHARE >= session.scalar(select(func.count()).select_from(Generation))
            if not session.info["analytics_walk_generations"]:
                session.execute(text(f"CREATE INDEX {SCOPED_DURATIONS} ON {SCOPED.name} (status, duration, cur, model_name)"))
        if session.info["analytics_walk_generations"]:
            return Generation.__table__.c, (Generation.__table__, GENERATION_DURATIONS)
        return SCOPED.c, (SCOPED, SCOPED_DURATIONS)

    @staticmethod
    def _window(t, s: Scope, previous: bool = True) -> list:
        """The time conditions of the scope's window (and the one before) on columns ``t``;
        none on SCOPED, which holds just those rows."""
        if t.started_at.table is SCOPED:
            return []
        first = s.start if not previous or s.previous() is None else s.previous().start
        return [t.started_at < s.end] + ([t.started_at >= first] if first is not None else [])

    def _profile(self, session, s: Scope, buckets: Buckets | None = None) -> list[Any]:
        """The scope's generations grouped by period, series bucket, model, image size and status:
        the KPIs' counts (images and LoRA rows too), the series', the models' and the speed table
        are sums of them (a few thousand rows at most; read from the hourly rollups and SCOPED, two
        may share a group: every reader sums them)."""

        def bucket(started_at):
            return (literal(0) if buckets is None else buckets.of(started_at)).label("bucket")
        g = SCOPED.c
        copied = rollups.generation_sums([g.cur, bucket(g.started_at)], [], g)
        hours = session.info.get("analytics_hours")
        if not s.rolled or hours is None:
            return session.execute(copied).all()
        h = GENERATION_HOURS.c
        at = h.hour * HOUR
        sums = [_sum(c).label(c.name) for c in GENERATION_HOURS.c if c.name not in ("hour", "model_name", "width", "height", "status")]
        cur, b = s.current(at).label("cur"), bucket(at)
        rolled = select(cur, b, h.model_name, h.width, h.height, h.status, *sums).where(*hours.rolled(GENERATION_HOURS)) \
            .group_by(cur, b, h.model_name, h.width, h.height, h.status)
        return session.execute(rolled.union_all(copied)).all()

    def _kpis(self, session, s: Scope, profile: list[Any] | None = None) -> dict[str, Any]:
        """The window's KPIs, with the window's before it under ``previous`` and the change."""
        periods = (1, 0) if s.start is not None else (1,)
        by_status: dict[int, dict[str, int]] = {p: {} for p in periods}
        timed = dict.fromkeys(periods, 0)
        model_names: dict[int, set] = {p: set() for p in periods}
        images = dict.fromkeys(periods, 0)
        with_lora = dict.fromkeys(periods, 0)
        for r in self._profile(session, s) if profile is None else profile:
            by_status[r.cur][r.status] = by_status[r.cur].get(r.status, 0) + r.n
            timed[r.cur] += r.timed if r.status == GenerationStatus.SUCCEEDED else 0
            images[r.cur] += int(r.images or 0)
            with_lora[r.cur] += r.with_lora
            if r.model_name is not None:
                model_names[r.cur].add(r.model_name)
        t, ordered_by = self._durations(session, s)
        cur = literal(1) if s.start is None else case((t.started_at >= s.start, 1), else_=0)
        times = _percentiles(session, t.cur if t.duration.table is SCOPED else cur, t.duration, [t.status == GenerationStatus.SUCCEEDED.value, *self._window(t, s)],
                             timed, (50, 95), span=None if s.start is None else
                             lambda cur: [t.started_at >= s.start] if cur else [t.started_at < s.start], ordered_by=ordered_by)
        previous = s.previous()
        out = {}
        for cur, sc in zip(periods, (s, previous)):
            counts = by_status[cur]
            total = sum(counts.values())
            finished = sum(counts.get(x, 0) for x in FINISHED)
            added = [live(indexed=True), Lora.added_at < sc.end] + ([Lora.added_at >= sc.start] if sc.start is not None else [])
            out[cur] = {
                "generations": total, "images": images.get(cur, 0),
                "succeeded": counts.get(GenerationStatus.SUCCEEDED, 0),
                "failed": counts.get(GenerationStatus.FAILED, 0),
                "interrupted": counts.get(GenerationStatus.INTERRUPTED, 0),
                "no_model": counts.get(GenerationStatus.NO_MODEL, 0),
                "finished": finished,
                # over generations that ran to an end: no_model never started one
                "success_rate": _ratio(counts.get(GenerationStatus.SUCCEEDED, 0), finished),
                "median_seconds": times.get(cur, {}).get(50), "p95_seconds": times.get(cur, {}).get(95),
                "loras_used": None, "models_used": len(model_names[cur]),  # loras_used: _together
                "generations_with_lora": with_lora.get(cur, 0), "lora_share": _ratio(with_lora.get(cur, 0), total),
                # the window's range of the added-date index, not every LoRA (SQLite prefers the trash's index)
                "loras_added": session.scalar(select(func.count(Lora.id)).where(*added)
                                              .with_hint(Lora, "INDEXED BY ix_loras_page_added_at", "sqlite")),
                "link": sc.link(),
            }
        kpis = out[1]
        kpis["previous"] = out.get(0)
        kpis["change"] = {k: _change(kpis[k], kpis["previous"][k]) if previous and k != "loras_used" else None
                          for k in ("generations", "images", "success_rate", "failed", "median_seconds",
                                    "p95_seconds", "loras_used", "lora_share")}
        return kpis

    # --- time series ------------------------------------------------------------------------

    def _series(self, session, s: Scope, buckets: Buckets | None, profile: list[Any]) -> dict[str, Any]:
        g = SCOPED.c
        if buckets is None:
            return {"bucket": None, "buckets": []}
        start, size, count = buckets
        rows = [{"start": start + i * size, "generations": 0, "loras": 0, "median_seconds": None,
                 **{str(x): 0 for x in GenerationStatus}} for i in range(count)]
        bucket = buckets.of(g.started_at)
        timed: dict[Any, int] = {}
        for r in profile:
            if r.cur != 1:
                continue
            if r.status == GenerationStatus.SUCCEEDED:
                timed[r.bucket] = timed.get(r.bucket, 0) + r.timed
            if 0 <= int(r.bucket) < count:
                rows[int(r.bucket)][r.status] = rows[int(r.bucket)].get(r.status, 0) + r.n
                rows[int(r.bucket)]["generations"] += r.n
                rows[int(r.bucket)]["loras"] += int(r.lora_rows or 0)
        # the bucket's key range, a second wider (its number decides: the same rounding as the counts')
        # (the status compared as an expression: SQLite must read each bucket's key range, not walk SCOPED_DURATIONS;
        # a rolled scope's are the generations' own, read along their analytics index)
        if s.rolled:
            g = Generation.__table__.c
            bucket = buckets.of(g.started_at)
        succeeded = g.status.concat("") == GenerationStatus.SUCCEEDED.value
        # the generations' range is cut to the window too (one range: SQLite reads just it)
        low, high = (-math.inf if s.start is None else s.start, s.end) if s.rolled else (-math.inf, math.inf)
        medians = _percentiles(session, bucket, g.duration, [succeeded] if s.rolled else [g.cur == 1, succeeded], timed, (50,),
                               span=lambda b: [g.started_at >= max(low, start + int(b) * size - 1),
                                               g.started_at < min(high, start + (int(b) + 1) * size + 1)])
        for b, figures in medians.items():
            if 0 <= int(b) < count:
                rows[int(b)]["median_seconds"] = figures[50]
        return {"bucket": {HOUR: "hour", DAY: "day"}.get(size, "week"), "buckets": rows}

    # --- LoRAs ------------------------------------------------------------------------------

    def _top_loras(self, session, s: Scope) -> list[dict[str, Any]]:
        su = SCOPED_USES.c
        rows = session.execute(select(su.lora_id, su.uses, su.last_used_at, su.rating, su.favorites, Lora.display_name,
                                      Lora.title, Lora.stem, Lora.default_weight)
                               .join(Lora, Lora.id == su.lora_id).where(su.uses > 0)
                               .order_by(su.uses.desc(), su.lora_id).limit(TOP)).all()
        weights = self._weight_figures(session, s, [r.lora_id for r in rows])
        return [{"id": r.lora_id, "name": r.display_name or r.title or r.stem, "uses": r.uses,
                 "last_used_at": r.last_used_at, "average_rating": None if r.rating is None else float(r.rating),
                 "favorites": int(r.favorites or 0), "default_weight": r.default_weight,
                 **weights.get(r.lora_id, {"median_weight": None, "min_weight": None, "max_weight": None, "weighted_uses": 0}),
                 "link": s.link(f"lora:{r.lora_id}")} for r in rows]

    def _weight_figures(self, session, s: Scope, lora_ids: list[int]) -> dict[int, dict[str, Any]]:
        """{lora id: median, min and max weight and the rows they count} over the LoRAs' rows in the
        window, a sweep's or an A/B comparison's left out (SCOPED_LORAS.weight; in a rolled scope
        the few LoRAs' own rows, through their lora_id index)."""
        if s.rolled:
            gl = GenerationLora
            lora_id, weight = gl.lora_id, func.coalesce(gl.te_weight, gl.unet_weight)
            # (the sweeps' weights left out by the value, not a condition on group_key, whose index
            # SQLite would read whole instead of the few LoRAs' rows)
            weight = case((Generation.group_key.is_(None), weight))
            where = [gl.generation_id == Generation.id, *_window_where(s, previous=False)]
        else:
            u = SCOPED_LORAS.c
            lora_id, weight, where = u.lora_id, u.weight, [u.cur == 1]
        where += [lora_id.in_(lora_ids), weight.is_not(None)]
        rows = session.execute(select(lora_id, func.min(weight), func.max(weight), func.count())
                               .where(*where).group_by(lora_id)).all()
        medians = _percentiles(session, lora_id, weight, where, {i: n for i, _, _, n in rows}, (50,))
        return {i: {"median_weight": medians[i][50], "min_weight": low, "max_weight": high, "weighted_uses": n}
                for i, low, high, n in rows}

    def _rising(self, session, s: Scope) -> list[dict[str, Any]]:
        if s.previous() is None:
            return []
        su = SCOPED_USES.c
        growth = (su.uses - su.previous_uses).label("growth")
        rows = session.execute(select(su.lora_id, su.uses, su.previous_uses, growth, Lora.display_name, Lora.title, Lora.stem)
                               .join(Lora, Lora.id == su.lora_id)
                               .where(growth > 0).order_by(growth.desc(), su.lora_id).limit(TOP)).all()
        return [{"id": r[0], "name": r.display_name or r.title or r.stem, "uses": r[1], "previous_uses": r[2],
                 "growth": r[3], "link": s.link(f"lora:{r[0]}")} for r in rows]

    def _lora_use(self, session, s: Scope) -> dict[str, list[dict[str, Any]]]:
        """LoRA uses (rows naming a library LoRA) in the window by the LoRA's base model, type, tag and folder."""
        su = SCOPED_USES.c
        uses = func.sum(su.lora_rows)
        base = select(uses).join(Lora, Lora.id == su.lora_id).where(su.lora_rows > 0)
        out = {}
        for name, column, key in (("base_model", Lora.base_model, "base"), ("type", Lora.adapter_type, "type"),
                                  ("folder", Lora.folder, "folder")):
            rows = session.execute(base.add_columns(column).group_by(column).order_by(uses.desc(), column).limit(TOP)).all()
            out[name] = [{"value": v, "label": base_models.label(v) if key == "base" else v, "uses": int(n),
                          "link": _library_link(f'{key}:"{v}" used:yes' if v else "used:yes")} for n, v in rows]
        rows = session.execute(base.join(LoraTag, LoraTag.lora_id == Lora.id).join(Tag, Tag.id == LoraTag.tag_id)
                               .add_columns(Tag.name).group_by(Tag.name).order_by(uses.desc(), Tag.name).limit(TOP)).all()
        out["tag"] = [{"value": v, "label": v, "uses": int(n), "link": _library_link(f'tag:"{v}" used:yes')} for n, v in rows]
        return out

    def _combinations(self, session, s: Scope) -> list[dict[str, Any]]:
        """Pairs of LoRAs used in the same generation, with lift = P(a,b) / (P(a) P(b)) over the
        window's generations; only pairs seen in MIN_PAIR_SUPPORT generations or more."""
        total = sum(r.n for r in self._profile(session, s) if r.cur == 1)
        return self._lifted(self._pairs(session, s), total)

    def _pairs(self, session, s: Scope) -> list[dict[str, Any]]:
        """The pairs seen together most often (_combinations), with each LoRA's own uses."""
        if s.rolled:
            pairs = session.execute(self._rolled_pairs(session, s)).all()
        else:
            a, b = SCOPED_LORAS.alias("a"), SCOPED_LORAS.alias("b")
            together = func.count(distinct(a.c.generation_id))
            pairs = session.execute(select(a.c.lora_id, b.c.lora_id, together)
                                    .join(b, and_(b.c.generation_id == a.c.generation_id, b.c.lora_id > a.c.lora_id))
                                    .where(a.c.cur == 1, a.c.lora_id.is_not(None)).group_by(a.c.lora_id, b.c.lora_id)
                                    .having(together >= MIN_PAIR_SUPPORT).order_by(together.desc(), a.c.lora_id, b.c.lora_id)
                                    .limit(TOP * 5)).all()
        if not pairs:
            return []
        wanted = {x for p in pairs for x in p[:2]}
        su = SCOPED_USES.c
        single = dict(session.execute(select(su.lora_id, su.uses).where(su.lora_id.in_(wanted))).all())
        names = _names(session, wanted)
        return [{"a": {"id": x, "name": names.get(x), "uses": single[x]}, "b": {"id": y, "name": names.get(y), "uses": single[y]},
                 "together": n, "link": s.link(f"lora:{x}", f"lora:{y}")} for x, y, n in pairs]

    @staticmethod
    def _lifted(pairs: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
        """The TOP pairs by lift over ``total`` generations."""
        if not total:
            return []
        out = []
        for p in pairs:
            a, b, n = dict(p["a"]), dict(p["b"]), p["together"]
            lift = (n / total) / ((a.pop("uses") / total) * (b.pop("uses") / total))
            out.append({"a": a, "b": b, "together": n, "support": n / total, "lift": lift, "link": p["link"]})
        out.sort(key=lambda r: (-r["lift"], -r["together"], r["a"]["id"], r["b"]["id"]))
        return out[:TOP]

    @staticmethod
    def _rolled_pairs(session, s: Scope):
        """The pairs of the window from LORA_PAIR_HOURS and the rows of the hours it cannot tell."""
        hours = session.info.get("analytics_hours")
        if hours is None:
            return select(literal(0), literal(0), literal(0)).where(literal(False))
        p = LORA_PAIR_HOURS.c
        rolled = select(p.a, p.b, p.generations).where(*hours.rolled(LORA_PAIR_HOURS),
                                                       *([] if s.start is None else [p.hour * HOUR >= s.start]))
        both = rolled.union_all(rollups.pair_sums([], [SCOPED.c.cur == 1], SCOPED.c)).subquery()
        together = _sum(both.c.generations)
        return select(both.c.a, both.c.b, together).group_by(both.c.a, both.c.b) \
            .having(together >= MIN_PAIR_SUPPORT).order_by(together.desc(), both.c.a, both.c.b).limit(TOP * 5)

    # --- models, speed, errors ----------------------------------------------------------------

    def _models(self, session, s: Scope, profile: list[Any] | None = None) -> list[dict[str, Any]]:
        g = SCOPED.c
        models: dict[str | None, dict[str, int]] = {}
        for r in self._profile(session, s) if profile is None else profile:
            if r.cur == 1:
                m = models.setdefault(r.model_name, {"uses": 0, "failed": 0, "finished": 0, "timed": 0})
                m["uses"] += r.n
                m["failed"] += r.n if r.status == GenerationStatus.FAILED else 0
                m["finished"] += r.n if r.status in FINISHED else 0
                m["timed"] += r.timed if r.status == GenerationStatus.SUCCEEDED else 0
        top = sorted(models.items(), key=lambda kv: (-kv[1]["uses"], kv[0] is not None, kv[0] or ""))[:TOP]
        t, ordered_by = self._durations(session, s)
        now = [g.cur == 1] if t.duration.table is SCOPED else self._window(t, s, previous=False)
        medians = _percentiles(session, t.model_name, t.duration, [*now, t.status == GenerationStatus.SUCCEEDED.value],
                               {name: m["timed"] for name, m in top}, (50,), ordered_by=ordered_by)
        return [{"model": name, "uses": m["uses"], "failed": m["failed"], "failure_rate": _ratio(m["failed"], m["finished"]),
                 "median_seconds": medians.get(name, {}).get(50),
                 "link": s.link(f'model:"{name}"') if name else s.link()} for name, m in top]

    def _speed(self, session, s: Scope, profile: list[Any] | None = None) -> list[dict[str, Any]]:
        """Seconds per step (total time / total steps of succeeded runs) by model and image size."""
        sizes: dict[tuple, list] = {}
        for r in self._profile(session, s) if profile is None else profile:
            if r.cur == 1 and r.status == GenerationStatus.SUCCEEDED and r.stepped:
                size = sizes.setdefault((r.model_name, r.width, r.height), [0, 0.0, 0])
                size[0], size[1], size[2] = size[0] + r.stepped, size[1] + r.seconds, size[2] + r.steps
        top = sorted(sizes.items(), key=lambda kv: (-kv[1][0], kv[0][0] is not None, kv[0][0] or "",
                                                    *((x is not None, x or 0) for x in kv[0][1:])))[:TOP]
        return [{"model": m, "width": w, "height": h, "generations": n, "seconds_per_step": secs / steps,
                 "link": s.link(f'model:"{m}"') if m else s.link()} for (m, w, h), (n, secs, steps) in top]

    def _errors(self, session, s: Scope) -> list[dict[str, Any]]:
        if s.rolled:  # the window's failures through the status index
            g = Generation.__table__.c
            failures = select(Generation.error).where(*_window_where(s, previous=False))
        else:
            g = SCOPED.c
            failures = select(Generation.error).join(Generation, Generation.id == g.id).where(g.cur == 1)
        rows = session.execute(failures.add_columns(func.count(), func.min(g.started_at), func.max(g.started_at),
                                                    func.min(g.id), func.max(g.id))
                               .where(g.status == GenerationStatus.FAILED.value)
                               .group_by(Generation.error).order_by(func.count().desc()).limit(MAX_ERROR_MESSAGES)).all()
        total = sum(r[1] for r in rows)
        groups: dict[str, dict[str, Any]] = {}
        for message, n, first, last, low, high in rows:
            key = normalise_error(message)
            e = groups.setdefault(key, {"message": key, "count": 0, "first_seen": first, "last_seen": last, "examples": []})
            e["count"] += n
            e["first_seen"], e["last_seen"] = min(e["first_seen"], first), max(e["last_seen"], last)
            e["examples"] = sorted({*e["examples"], low, high})[:5]
        out = sorted(groups.values(), key=lambda e: -e["count"])
        for e in out:
            e["share"] = e["count"] / total
            e["link"] = s.link("status:failed")
        return out

    def _failures(self, session, s: Scope) -> list[dict[str, Any]]:
        """LoRAs that fail often with one model: at least MIN_FAILURES failures in MIN_FAILURE_RUNS
        finished runs and a failure rate of at least 25 %, the TOP highest rates (_failures_beyond
        keeps those twice the window's, a first part of them)."""

        def runs(statuses, lora_ids=None):
            """The window's generations in ``statuses`` per LoRA and model: the query and its count."""
            def where(c):
                return [c.model_name.is_not(None), c.status.in_([x.value for x in statuses])] + \
                    ([] if lora_ids is None else [c.lora_id.in_(lora_ids)])
            if s.rolled:
                c = _lora_use_hours(s, session.info["analytics_hours"], where, previous=False,
                                    by_lora=lora_ids is not None).subquery().c
                n = _sum(c.uses)
                return select(c.lora_id, c.model_name, n).where(*where(c)).group_by(c.lora_id, c.model_name), n
            u = SCOPED_LORAS.c
            n = func.count(distinct(u.generation_id))
            return select(u.lora_id, u.model_name, n).where(u.cur == 1, u.lora_id.is_not(None), *where(u)) \
                .group_by(u.lora_id, u.model_name), n
        if s.rolled and "analytics_hours" not in session.info:
            return []  # no generation
        # the pairs with enough failures (a few rows), then their finished runs
        failed, n = runs([GenerationStatus.FAILED])
        candidates = session.execute(failed.having(n >= MIN_FAILURES)).all()
        if not candidates:
            return []
        fails = {(i, m): n for i, m, n in candidates}
        finished = session.execute(runs(FINISHED, {i for i, _ in fails})[0]).all()
        rows = [(i, m, fails[i, m], n) for i, m, n in finished if (i, m) in fails and n >= MIN_FAILURE_RUNS]
        rows = [r for r in rows if r[2] / r[3] >= 0.25]
        rows.sort(key=lambda r: (-r[2] / r[3], -r[2], r[0], r[1]))
        names = _names(session, {r[0] for r in rows[:TOP]})
        return [{"id": i, "name": names.get(i), "model": m, "failed": f, "finished": n, "failure_rate": f / n,
                 "link": s.link(f"lora:{i}", f"model:{_quoted(m)}", "status:failed")} for i, m, f, n in rows[:TOP]]

    @staticmethod
    def _failures_beyond(rows: list[dict[str, Any]], kpis: dict[str, Any]) -> list[dict[str, Any]]:
        """The LoRA-model failures (_failures) that fail at least twice as often as the window."""
        if kpis["success_rate"] is None:
            return []
        return [r for r in rows if r["failure_rate"] >= 2 * (1 - kpis["success_rate"])]

    def _recommendations(self, s: Scope) -> dict[str, Any] | None:
        """How often recommendations were taken in the window and the window before: added to a
        composition, thumbs up and down, hidden (kept per LoRA and time, not per generation, so
        the History query does not narrow them). None when this library makes none."""
        if self.recommendations_taken is None:
            return None
        previous = s.previous()
        return {**self.recommendations_taken(s.start, s.end),
                "previous": None if previous is None else self.recommendations_taken(previous.start, previous.end)}

    # --- the library ------------------------------------------------------------------------

    @staticmethod
    def _library(f: _LibraryFigures) -> tuple[dict[str, Any], dict[str, Any]]:
        """The LoRAs never or long not used, and the library's health, from its figures
        (_library_figures); each figure's ``link`` is the Library query that lists what it counts
        (the same number: tests check it)."""
        # used before the cutoff: a prefix of the used LoRAs in last-use order (the cutoff moves with the clock)
        unused_n = bisect.bisect_left(f.last_used, time.time() - UNUSED_DAYS * DAY)
        never_used = {"count": f.never, "bytes": f.never_bytes, "link": _library_link("used:never sort:-size"),
                      "unused_days": UNUSED_DAYS, "unused_count": unused_n, "unused_bytes": f.used_bytes[unused_n],
                      "unused_link": _library_link(f"used:>{UNUSED_DAYS}d sort:-size")}

        def figure(n, q):
            return {"count": n, "link": _library_link(q)}

        return never_used, {
            "loras": f.loras, "bytes": f.bytes, "link": _library_link(""),
            "unhashed": figure(f.unhashed, "hashed:no missing:no"),
            "missing": figure(f.missing, "missing:yes"),
            "unreadable": figure(f.unreadable, "error:yes"),
            "duplicates": {"groups": f.duplicate_groups, "count": f.duplicates, "wasted_bytes": f.wasted_bytes,
                           "link": _library_link("dupe:yes")},
            "no_preview": figure(f.no_preview, "preview:no"),
            "no_trigger_words": figure(f.no_trigger_words, "triggers:no"),
            "no_base_model": figure(f.no_base_model, "base:unknown"),
            "unloadable_names": figure(f.unloadable_names, "loadable:no"),
        }

    @staticmethod
    def _weights_from(top: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: r[k] for k in ("id", "name", "uses", "weighted_uses", "median_weight", "min_weight", "max_weight",
                                   "default_weight", "link")}
                for r in top if r["median_weight"] is not None]

    # --- one LoRA ---------------------------------------------------------------------------

    def lora_usage(self, lora_id: int, now: float | None = None) -> dict[str, Any]:
        """How one LoRA has been used, over all recorded generations."""
        mine = select(GenerationLora.generation_id).where(GenerationLora.lora_id == lora_id)
        with self.store.db.read() as session:
            if session.scalar(select(Lora.id).where(Lora.id == lora_id)) is None:
                raise NotFound(f"no LoRA with id {lora_id}")
            # uses by day and status in one pass; both totals are sums of its few rows
            day = rollups.floor_of(Generation.started_at / DAY).label("day")
            by_status: dict[str, int] = {}
            days: dict[Any, int] = {}
            for d, status, n in session.execute(select(day, Generation.status, func.count()).where(Generation.id.in_(mine))
                                                .group_by(day, Generation.status).order_by(day)):
                by_status[status] = by_status.get(status, 0) + n
                days[d] = days.get(d, 0) + n
            finished = sum(by_status.get(x, 0) for x in FINISHED)
            over_time = [{"day": dt.datetime.fromtimestamp(int(d) * DAY, dt.timezone.utc).date().isoformat(), "uses": n}
                         for d, n in days.items()]
            weight = func.coalesce(GenerationLora.te_weight, GenerationLora.unet_weight)
            weights = [{"weight": w, "uses": n} for w, n in session.execute(
                select(weight, func.count()).where(GenerationLora.lora_id == lora_id).group_by(weight).order_by(weight))]
            other = aliased(GenerationLora)
            with_loras = session.execute(select(other.lora_id, other.name, func.count(distinct(other.generation_id)))
                                         .where(other.generation_id.in_(mine), or_(other.lora_id != lora_id, other.lora_id.is_(None)))
                                         .group_by(other.lora_id, other.name).order_by(func.count(distinct(other.generation_id)).desc())
                                         .limit(TOP)).all()
            models = session.execute(select(Generation.model_name, func.count()).where(Generation.id.in_(mine))
                                     .group_by(Generation.model_name).order_by(func.count().desc()).limit(TOP)).all()
            best = session.scalars(select(Generation.id).where(Generation.id.in_(mine), Generation.rating.is_not(None))
                                   .order_by(Generation.rating.desc(), Generation.id.desc()).limit(10)).all()
            favorites = session.scalars(select(Generation.id).where(Generation.id.in_(mine), Generation.favorite.is_(True))
                                        .order_by(Generation.id.desc()).limit(10)).all()
            # the same, among generations with a saved picture (the detail panel's thumbnails)
            pictured = GenerationImage.generation_id == Generation.id
            picture = select(GenerationImage.id).where(pictured, GenerationImage.missing.is_(False), or_(
                GenerationImage.path.is_not(None), GenerationImage.thumbnail.is_not(None))).exists()
            best_pictures = session.execute(select(Generation.id, Generation.rating).where(
                Generation.id.in_(mine), Generation.rating.is_not(None), picture)
                .order_by(Generation.rating.desc(), Generation.id.desc()).limit(PICTURES)).all()
            favorite_pictures = session.scalars(select(Generation.id).where(
                Generation.id.in_(mine), Generation.favorite.is_(True), picture)
                .order_by(Generation.id.desc()).limit(PICTURES)).all()
        total = sum(by_status.values())
        return {
            "id": lora_id, "uses": total, "by_status": by_status, "link": {"target": "history", "query": f"lora:{lora_id}"},
            "failure_rate": _ratio(by_status.get(GenerationStatus.FAILED, 0), finished),
            "over_time": over_time, "weights": weights,
            "used_with": [{"id": i, "name": name, "generations": n,
                           "link": {"target": "history", "query": f"lora:{lora_id} lora:{i if i is not None else _quoted(name)}"}}
                          for i, name, n in with_loras],
            "models": [{"model": m, "generations": n,
                        "link": {"target": "history", "query": f"lora:{lora_id}" + (f" model:{_quoted(m)}" if m else "")}}
                       for m, n in models],
            "best_rated": list(best), "favorites": list(favorites),
            "best_rated_pictures": [{"generation_id": i, "rating": r} for i, r in best_pictures],
            "favorite_pictures": [{"generation_id": i} for i in favorite_pictures],
        }


# the analytics rows REST serves one by one (as JSON or CSV): name -> Analytics method
TABLES = {"top-loras": "_top_loras", "rising": "_rising", "combinations": "_combinations", "models": "_models",
          "speed": "_speed", "errors": "_errors"}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV, nested fields flattened (``link.query``, ``a.name``), lists joined by spaces."""
    flat = [_flatten(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    # CRLF (RFC 4180): a field holding a lone CR is quoted too, not cut into two rows
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = _cell(" ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else value))
    return out


# a spreadsheet runs a cell starting with one of these as a formula (names, prompts and error
# messages come from files and the history); a number written as text ("-0.5") stays a number
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a leading apostrophe before a formula's first character."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER_TEXT.fullmatch(value):
        return "'" + value
    return value


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def _names(session, ids) -> dict[int, str]:
    rows = session.execute(select(Lora.id, Lora.display_name, Lora.title, Lora.stem).where(Lora.id.in_(list(ids))))
    return {i: d or t or s for i, d, t, s in rows}


def _share(value: float | None) -> str:
    return f"{value * 100:.0f} %"


def set_default_weight_action(lora_id: int, weight: float) -> dict[str, Any]:
    """What an insight's button does: the LoRA's default weight set to ``weight``, through
    ``Library.edit`` or the REST edit route (``request``)."""
    return {"action": "set_default_weight", "lora_id": lora_id, "weight": weight, "default_weight": weight,
            "request": {"method": "PATCH", "path": f"/lora-manager/v1/loras/{lora_id}", "body": {"default_weight": weight}}}


def insights(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Short sentences drawn from ``report``'s figures, each with the query that shows them."""
    out: list[dict[str, Any]] = []
    k, s = report["kpis"], report["scope"]
    if not k["generations"]:
        out.append({"text": "No generations recorded in this scope yet: there is nothing to analyse.",
                    "query": s["query"], "target": "history"})
    never = report["never_used"]
    if never["count"]:
        them = "1 LoRA you never used takes" if never["count"] == 1 else f"{never['count']} LoRAs you never used take"
        out.append({"text": f"{them} {human_size(never['bytes'])}.",
                    **never["link"]})
    if k["success_rate"] is not None and k["failed"]:
        out.append({"text": f"{k['failed']} of {k['finished']} finished generations failed ({_share(1 - k['success_rate'])} did not succeed).",
                    "query": report["scope"]["query"] + " status:failed", "target": "history"})
    for m in report["models"]:
        if m["failure_rate"] and m["failed"] >= 3 and m["failure_rate"] >= 0.2 and m["model"]:
            out.append({"text": f"Model {m['model']} failed {_share(m['failure_rate'])} of its runs ({m['failed']}).",
                        "query": m["link"]["query"] + " status:failed", "target": "history"})
    for f in report.get("lora_model_failures", []):
        out.append({"text": f"{f['name']} failed {_share(f['failure_rate'])} of its runs with model {f['model']} "
                            f"({f['failed']} of {f['finished']}).", **f["link"]})
    if report["errors"]:
        e = report["errors"][0]
        out.append({"text": f"The most common failure ({e['count']}, {_share(e['share'])} of failures): {e['message']}",
                    "query": e["link"]["query"], "target": "history"})
    for w in report["weights"]:
        default = w["default_weight"] if w["default_weight"] is not None else 1.0
        if w["weighted_uses"] >= 3 and abs(w["median_weight"] - default) >= 0.2:
            out.append({"text": f"You use {w['name']} at {w['median_weight']:g} though its default is {default:g}: "
                                f"make {w['median_weight']:g} its default?",
                        "query": w["link"]["query"], "target": "history",
                        "action": set_default_weight_action(w["id"], w["median_weight"])})
    h = report["health"]
    if h["duplicates"]["groups"]:
        out.append({"text": f"{h['duplicates']['groups']} files have duplicate copies wasting {human_size(h['duplicates']['wasted_bytes'])}.",
                    **h["duplicates"]["link"]})
    if h["missing"]["count"]:
        out.append({"text": f"{h['missing']['count']} LoRAs are missing from disk.", **h["missing"]["link"]})
    return out

