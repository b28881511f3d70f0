"""The one query language: parsed here, used by the search box, the CLI and the REST API.

    anime "blue hair" tag:character -tag:wip base:sdxl type:lora rating:>=4 fav:yes
    missing:no hashed:no folder:styles dupe:yes added:<30d sort:-rating

Words are free text (all must match). Any term can be negated with a leading ``-``. Each filter
key is a function returning an SQL clause and a few English words.

This module is the grammar, shared by every searchable table, and knows no table: a ``Table``
holds one table's filter keys, sort columns, words and paging policy. The LoRA library's keys are
in lora_query.py (``LORAS``), the generation history's in history_query.py (``GENERATIONS``);
``parse(text, table)`` reads a query for one of them and ``table.page`` finds one page of it.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, Text, and_, func, not_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from . import fields
from .errors import InvalidInput, QueryError
from .vocabulary import QueryHelp

FilterFn = Callable[[str], tuple[ColumnElement[bool], str]]


@dataclass
class Term:
    key: str | None  # None for free text
    value: str
    negated: bool
    clause: ColumnElement[bool]
    description: str


@dataclass(frozen=True)
class Sort:
    key: str = "name"
    descending: bool = False


class IdPage(NamedTuple):
    """One page of a query's matches: the ids in order, and how many match in all."""

    total: int
    ids: list[int]
    page: int
    per_page: int


# whether a page walks the sort index: (query, page, per_page, matches, count of all rows) -> bool
IndexWalk = Callable[["Query", int, int, int, Callable[[], int]], bool]


def most_rows_match(query: Query, page: int, per_page: int, total: int, count_all: Callable[[], int]) -> bool:
    """Walk the sort index only when most rows match. The walk stops after the page, but it reads
    rows in index order (random on disk) and tests the filters on each: for few matches one scan
    plus a sort of the matches is cheaper."""
    return not query.terms or total * 2 > count_all()


def _no_base_where(indexed: bool) -> list[ColumnElement[bool]]:
    return []


@dataclass
class Table:
    """What one kind of row is searched by: filter keys, sort columns, their words and how pages
    are found."""

    noun: str  # plural, as in "All LoRAs" / "LoRAs tagged …"
    id_column: Any  # the tie-break of every sort
    free_text: FilterFn
    filters: dict[str, FilterFn]
    sorts: dict[str, Any]  # key -> column (or a callable returning one)
    help: QueryHelp  # the words: documents every filter key and sort key, and the default sort
    sort_aliases: dict[str, str] = field(default_factory=dict)
    # clauses every search adds (the library's: not in the trash); ``indexed`` tells whether the
    # page walks the sort index, so a clause can let the planner use or hide a partial index
    base_where: Callable[[bool], list[ColumnElement[bool]]] = _no_base_where
    index_walk: IndexWalk = most_rows_match

    def __post_init__(self):
        undocumented = (set(self.filters) ^ set(self.help.keys)) | (set(self.sorts) ^ set(self.help.sort_words))
        if undocumented:
            raise ValueError(f"the {self.noun}' keys and their help differ in: {', '.join(sorted(undocumented))}")

    @property
    def sort_words(self) -> dict[str, tuple[str, str]]:
        return self.help.sort_words

    @property
    def default_sort(self) -> Sort:
        return Sort(self.help.default_sort.lstrip("-"), self.help.default_sort.startswith("-"))

    def page(self, session: Session, query: Query, page: int, per_page: int) -> IdPage:
        """The ids of one page of ``query``'s matches, in order, and how many match in all.

        ``page`` and ``per_page`` are checked by their field types (fields.PAGE, fields.PER_PAGE),
        as REST checks them: out of bounds raises InvalidInput. Ids first, rows second (the
        caller's): sorting narrow (key, id) pairs is far cheaper than sorting whole rows, and deep
        pages are skipped within the index."""
        per_page, page = fields.PER_PAGE.parse(per_page), fields.PAGE.parse(page)

        def count(indexed: bool, *where: ColumnElement[bool]) -> int:
            return session.scalar(select(func.count(self.id_column)).where(*self.base_where(indexed), *where))

        # without terms, every row the base clauses keep matches: counted in their index
        total = count(not query.terms, *query.where())
        use_index = self.index_walk(query, page, per_page, total, lambda: count(True))
        ids = session.scalars(
            select(self.id_column).where(*self.base_where(use_index), *query.where())
            .order_by(*query.order_by(use_index=use_index)).limit(per_page).offset((page - 1) * per_page)
        ).all()
        return IdPage(total, list(ids), page, per_page)


@dataclass
class Query:
    text: str
    table: Table
    terms: list[Term] = field(default_factory=list)
    sort: Sort | None = None

    def __post_init__(self):
        if self.sort is None:
            self.sort = self.table.default_sort

    def where(self) -> list[ColumnElement[bool]]:
        return [t.clause for t in self.terms]

    def order_by(self, use_index: bool = True) -> list[UnaryExpression]:
        """ORDER BY clauses. ``use_index=False`` hides the sort key from the planner: for a
        filtered page, scanning and sorting the matches beats walking the whole sort index
        and reading every row to test the filter (SQLite cannot estimate LIKE selectivity)."""
        column = self.table.sorts[self.sort.key]
        expr = column() if callable(column) else column
        if not use_index:
            expr = func.lower(expr) if isinstance(expr.type, (String, Text)) else expr + 0
        descending = self.sort.descending
        primary = expr.desc() if descending else expr.asc()
        if getattr(expr, "nullable", True):
            primary = primary.nulls_last()  # unrated / never used last, in both directions
        # the id tie-break runs in the same direction, so an index on the sort key serves it
        id_column = self.table.id_column
        return [primary, id_column.desc() if descending else id_column.asc()]

    def describe(self) -> str:
        """The query in words, shown under the search box so users see how it was understood."""
        parts = [t.description for t in self.terms]
        asc_label, desc_label = self.table.sort_words[self.sort.key]
        noun = self.table.noun
        what = f"All {noun}" if not parts else noun[:1].upper() + noun[1:] + " " + ", ".join(parts)
        return f"{what}; sorted by {desc_label if self.sort.descending else asc_label}."


# --- tokenizing -----------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(-?)(?:([A-Za-z_]+):)?("(?:[^"]*)"?|\S+)')
_TRUE = {"yes", "y", "true", "1", "on"}
_FALSE = {"no", "n", "false", "0", "off"}


def _tokens(text: str):
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if not match:  # pragma: no cover - the pattern matches any non-space run
            raise QueryError(f"cannot read the query near “{text[pos:pos + 20]}”", pos)
        negated, key, value = match.group(1) == "-", match.group(2), match.group(3)
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                raise QueryError(f"unclosed quote in “{match.group(0).strip()}”", match.start(3))
            value = value[1:-1]
        yield match.start(), negated, key.lower() if key else None, value
        pos = match.end()


def parse(text: str | None, table: Table) -> Query:
    """Parse a query string for ``table``. Raises QueryError with a readable message and the
    position of the offending term (never anything else)."""
    text = _checked_text(text)
    query = Query(text=text, table=table)
    for count, (position, negated, key, value) in enumerate(_tokens(text), 1):
        if count > fields.MAX_QUERY_TERMS:  # each term deepens the SQL expression; SQLite stops at 1000
            raise QueryError(f"the query has too many terms (at most {fields.MAX_QUERY_TERMS})", position)
        if key == "sort":
            if negated:
                raise QueryError("sort: cannot be negated; use sort:-name for descending order", position)
            query.sort = _parse_sort(table, value, position)
            continue
        if key is None:
            if not value:
                continue
            if value.endswith(":") and (value[:-1].lower() in table.filters or value[:-1].lower() == "sort"):
                raise QueryError(f"“{value}” needs a value (no space after the colon)", position)
            clause, words = table.free_text(value)
        else:
            if key not in table.filters:
                known = ", ".join(sorted(list(table.filters) + ["sort"]))
                raise QueryError(f"unknown filter “{key}:” (known: {known}); put text with a colon in quotes", position)
            if not value:
                raise QueryError(f"“{key}:” needs a value", position)
            try:
                clause, words = table.filters[key](value)
            except QueryError as e:  # filters judge values only: the parser knows where the term is
                if e.position is None:
                    e.position = position
                raise
        if negated:
            clause, words = not_(clause), f"not {words}"
        query.terms.append(Term(key, value, negated, clause, words))
    return query


def _checked_text(text: str | None) -> str:
    """The query text, if it is text a database can compare (fields.QUERY: bounded, no NUL, no
    lone surrogates but surrogate escapes, the bytes of a file name that is not UTF-8)."""
    if text is None:
        return ""
    try:
        return fields.QUERY.parse(text).strip()
    except InvalidInput as e:  # REST's q says the same; the position marks the character that is not text
        stripped = text.strip() if isinstance(text, str) and len(text) <= fields.MAX_QUERY_LENGTH else ""
        bad = next((n for n, char in enumerate(stripped)
                    if char == "\x00" or "\ud800" <= char <= "\udfff" and not "\udc80" <= char <= "\udcff"), None)
        raise QueryError(str(e), bad) from None


def _parse_sort(table: Table, value: str, position: int) -> Sort:
    descending = value.startswith("-") or value.endswith("-")
    key = value.strip("-+").lower()
    key = table.sort_aliases.get(key, key)
    if key not in table.sorts:
        raise QueryError(f"unknown sort “{value}” (known: {', '.join(table.sorts)})", position)
    return Sort(key, descending)


# --- what tables build their filter keys from -----------------------------------------------


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def yes_or_no(key: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise QueryError(f"“{key}:{value}”: use yes or no")


_COMPARISON = re.compile(r"^(>=|<=|>|<|=)?\s*(-?\d+(?:\.\d+)?)$")
_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)$")
_OP_WORDS = {">=": "or more", "<=": "or less", ">": "more than", "<": "less than", "=": ""}


def numeric_filter(column, key: str, value: str, noun: str) -> tuple[ColumnElement[bool], str]:
    """``key:4``, ``key:>=4``, ``key:<3``, ``key:2..4`` and ``key:none`` on a numeric column."""
    v = value.strip().lower()
    if v in ("none", "no", "unset"):
        return column.is_(None), f"without {noun}"
    if m := _RANGE.match(v):
        lo, hi = float(m.group(1)), float(m.group(2))
        return and_(column >= lo, column <= hi), f"{noun} {m.group(1)} to {m.group(2)}"
    if m := _COMPARISON.match(v):
        op, number = m.group(1) or "=", float(m.group(2))
        clause = {">=": column >= number, "<=": column <= number, ">": column > number,
                  "<": column < number, "=": column == number}[op]
        if op == "=":
            return clause, f"{noun} {m.group(2)}"
        if op in (">", "<"):
            return clause, f"{noun} {_OP_WORDS[op]} {m.group(2)}"
        return clause, f"{noun} {m.group(2)} {_OP_WORDS[op]}"
    raise QueryError(f"“{key}:{value}”: use a number, >=N, <=N, >N, <N, A..B or none")


def flag_filter(key: str, yes_clause, yes_words: str, no_words: str, no_clause=None) -> FilterFn:
    """A yes/no filter; ``no_clause`` defaults to the negation of ``yes_clause``."""
    def parse_flag(value: str):
        if yes_or_no(key, value):
            return yes_clause, yes_words
        return (no_clause if no_clause is not None else not_(yes_clause)), no_words
    return parse_flag


_AGE = re.compile(r"^(<|>|<=|>=)?\s*(\d+(?:\.\d+)?)\s*(h|d|w|m|y)$")
_DATE = re.compile(r"^(<|>|<=|>=)?\s*(\d{4}-\d{2}-\d{2})$")
_DATE_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})?\.\.(\d{4}-\d{2}-\d{2})?$")
_UNIT_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}
_UNIT_WORDS = {"h": "hours", "d": "days", "w": "weeks", "m": "months", "y": "years"}
_MAX_TIMESTAMP = 253402300799.0  # 9999-12-31 23:59:59 UTC: dates beyond sort after every stored time


def _day(key: str, value: str, text: str, days: int = 0) -> float:
    """The timestamp of local midnight of a YYYY-MM-DD date, ``days`` later."""
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise QueryError(f"“{key}:{value}”: {text} is not a valid date") from None
    try:
        return (day + dt.timedelta(days=days)).timestamp()
    except (OverflowError, ValueError, OSError):  # beyond year 9999, or before what the platform's clock knows
        return _MAX_TIMESTAMP if day.year > 1970 else -_MAX_TIMESTAMP


def time_filter(column, key: str, value: str, verb: str) -> tuple[ColumnElement[bool], str]:
    """``<30d`` (within the last 30 days), ``>1y`` (longer ago), ``>2026-01-01``, ``<2026-01-01``,
    and day ranges ``2026-01-01..2026-01-31`` (both days included; either end may be left out)."""
    v = value.strip().lower()
    if m := _AGE.match(v):
        op, amount, unit = m.group(1) or "<", float(m.group(2)), m.group(3)
        # clamped: a thousand-digit age is "ever", not an infinity the database may refuse
        cutoff = max(-_MAX_TIMESTAMP, time.time() - min(amount * _UNIT_SECONDS[unit], 2 * _MAX_TIMESTAMP))
        span = f"{m.group(2)} {_UNIT_WORDS[unit]}"
        if op.startswith("<"):
            return column >= cutoff, f"{verb} in the last {span}"
        return column < cutoff, f"{verb} more than {span} ago"
    if m := _DATE.match(v):
        op = m.group(1) or ">="
        cutoff = _day(key, value, m.group(2))
        if op.startswith(">"):
            return column >= cutoff, f"{verb} on or after {m.group(2)}"
        return column < cutoff, f"{verb} before {m.group(2)}"
    if (m := _DATE_RANGE.match(v)) and (m.group(1) or m.group(2)):
        first, last = m.group(1), m.group(2)
        start = _day(key, value, first) if first else None
        end = _day(key, value, last, days=1) if last else None  # the last day is included
        if start is not None and end is not None and start >= end:
            raise QueryError(f"“{key}:{value}”: the range ends before it starts")
        if start is not None and end is not None:
            return and_(column >= start, column < end), f"{verb} from {first} to {last}"
        if start is not None:
            return column >= start, f"{verb} on or after {first}"
        return column < end, f"{verb} on or before {last}"
    raise QueryError(f"“{key}:{value}”: use <30d, >2w, <6m, >1y (h, d, w, m, y), a date like >2026-01-31 "
                     "or a range like 2026-01-01..2026-01-31")
