"""The one query language: parsed here, used by the search box, the CLI and the REST API.

    anime "blue hair" tag:character -tag:wip base:sdxl type:lora rating:>=4 fav:yes
    missing:no hashed:no folder:styles dupe:yes added:<30d sort:-rating

Words are free text over name, title, tags, trigger words and notes (all must match). Any term
can be negated with a leading ``-``. Each filter key is a function in ``FILTERS`` returning an
SQL clause and a few English words; later features register more keys (``register_filter``)
and sort orders (``register_sort``) without touching the parser.

The grammar is shared by every searchable table: a ``Table`` holds one table's filter keys, sort
columns and words. ``LORAS`` (below) is the library; the generation history brings its own
(history.GENERATIONS) and parses with ``parse(text, GENERATIONS)``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, Text, and_, func, not_, or_, select
from sqlalchemy.sql.elements import UnaryExpression

from . import base_models, fields
from .errors import InvalidInput, QueryError
from .lora_info import ADAPTER_TYPES
from .models import Lora, LoraTag, Tag
from .vocabulary import SORT_WORDS

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


@dataclass
class Table:
    """What one kind of row is searched by: filter keys, sort columns and the words for both."""

    noun: str  # plural, as in "All LoRAs" / "LoRAs tagged …"
    id_column: Any  # the tie-break of every sort
    free_text: FilterFn
    filters: dict[str, FilterFn]
    sorts: dict[str, Any]  # key -> column (or a callable returning one)
    sort_words: dict[str, tuple[str, str]]  # key -> (ascending words, descending words)
    default_sort: Sort = Sort()
    sort_aliases: dict[str, str] = field(default_factory=dict)

    def register_filter(self, key: str, fn: FilterFn) -> None:
        self.filters[key] = fn

    def register_sort(self, key: str, column, ascending_words: str, descending_words: str) -> None:
        self.sorts[key] = column
        self.sort_words[key] = (ascending_words, descending_words)


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


def parse(text: str | None, table: Table | None = None) -> Query:
    """Parse a query string for ``table`` (default: the LoRA library). Raises QueryError with a
    readable message and the position of the offending term (never anything else)."""
    table = table or LORAS
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


# --- filters --------------------------------------------------------------------------------


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _free_text(value: str) -> tuple[ColumnElement[bool], str]:
    pattern = f"%{like_escape(value.lower())}%"
    return Lora.search_text.like(pattern, escape="\\"), f"matching “{value}”"


def _bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise QueryError(f"“{key}:{value}”: use yes or no")


def _tag(value: str):
    name = value.strip().lower()
    ids = select(LoraTag.lora_id).join(Tag, Tag.id == LoraTag.tag_id).where(Tag.name == name)
    return Lora.id.in_(ids), f"tagged “{name}”"


def _base(value: str):
    code = base_models.family_code(value)
    if code is None:
        known = ", ".join(f.code for f in base_models.FAMILIES)
        raise QueryError(f"unknown base model “{value}” (known: {known})")
    return Lora.base_model == code, f"for {base_models.label(code)}"


def _type(value: str):
    v = value.lower()
    if v not in ADAPTER_TYPES:
        raise QueryError(f"unknown type “{value}” (known: {', '.join(ADAPTER_TYPES)})")
    return Lora.adapter_type == v, f"of type {v}"


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


def _rating(value: str):
    return numeric_filter(Lora.rating, "rating", value, "rated")


def flag_filter(key: str, yes_clause, yes_words: str, no_words: str, no_clause=None) -> FilterFn:
    """A yes/no filter; ``no_clause`` defaults to the negation of ``yes_clause``."""
    def parse_flag(value: str):
        if _bool(key, value):
            return yes_clause, yes_words
        return (no_clause if no_clause is not None else not_(yes_clause)), no_words
    return parse_flag


_fav = flag_filter("fav", Lora.favorite.is_(True), "favorites", "not favorites", Lora.favorite.is_(False))
_missing = flag_filter("missing", Lora.missing.is_(True), "whose file is missing", "whose file is present", Lora.missing.is_(False))
_hashed = flag_filter("hashed", Lora.sha256.is_not(None), "hashed", "not hashed yet", Lora.sha256.is_(None))
_nsfw = flag_filter("nsfw", Lora.nsfw.is_(True), "flagged NSFW", "not flagged NSFW", Lora.nsfw.is_(False))
_error = flag_filter("error", Lora.error.is_not(None), "that could not be read", "read without errors", Lora.error.is_(None))


def _folder(value: str):
    folder = value.strip().strip("/").replace("\\", "/")
    if not folder:
        return Lora.folder == "", "in the top folder"
    prefix = like_escape(folder) + "/%"
    return or_(Lora.folder == folder, Lora.folder.like(prefix, escape="\\")), f"in folder “{folder}”"


def _dupe(value: str):
    yes = _bool("dupe", value)
    shared = (
        select(Lora.sha256)
        .where(Lora.sha256.is_not(None), Lora.missing.is_(False), Lora.trashed_at.is_(None))
        .group_by(Lora.sha256)
        .having(func.count() > 1)
    )
    clause = Lora.sha256.in_(shared)
    return (clause, "with a duplicate file") if yes else (not_(clause), "without duplicates")


def _hash(value: str):
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", v):
        raise QueryError(f"“hash:{value}”: use 4 to 64 hexadecimal digits")
    pattern = like_escape(v) + "%"
    return or_(Lora.sha256.like(pattern, escape="\\"), Lora.addnet_hash.like(pattern, escape="\\")), f"with hash {v}…"


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


def _used(value: str):
    """``used:never``, ``used:yes``, ``used:<30d`` (used in the last 30 days), ``used:>1y``."""
    v = value.strip().lower()
    if v in ("never", "no"):
        return Lora.use_count == 0, "never used"
    if v in ("yes", "ever"):
        return Lora.use_count > 0, "used at least once"
    return time_filter(Lora.last_used_at, "used", value, "last used")


FILTERS: dict[str, FilterFn] = {
    "used": _used,
    "uses": lambda v: numeric_filter(Lora.use_count, "uses", v, "used"),
    "tag": _tag,
    "base": _base,
    "type": _type,
    "rating": _rating,
    "fav": _fav,
    "favorite": _fav,
    "missing": _missing,
    "hashed": _hashed,
    "nsfw": _nsfw,
    "error": _error,
    "folder": _folder,
    "dupe": _dupe,
    "hash": _hash,
    "added": lambda v: time_filter(Lora.added_at, "added", v, "added"),
    "modified": lambda v: time_filter(Lora.mtime, "modified", v, "modified"),
}

# key -> column (or a callable returning one); the words for each are in vocabulary.SORT_WORDS
SORTS: dict[str, Any] = {
    "name": Lora.sort_name,
    "added": Lora.added_at,
    "modified": Lora.mtime,
    "size": Lora.size,
    "rating": Lora.rating,
    "used": Lora.last_used_at,
    "uses": Lora.use_count,
}
SORT_ALIASES = {"date": "added", "mtime": "modified", "stars": "rating", "filename": "name",
                "last_used": "used", "lastused": "used", "use_count": "uses", "count": "uses"}

LORAS = Table(noun="LoRAs", id_column=Lora.id, free_text=_free_text, filters=FILTERS, sorts=SORTS,
              sort_words=SORT_WORDS, default_sort=Sort("name"), sort_aliases=SORT_ALIASES)


def register_filter(key: str, fn: FilterFn) -> None:
    """Add a filter key to the LoRA library's queries."""
    LORAS.register_filter(key, fn)


def register_sort(key: str, column, ascending_words: str, descending_words: str) -> None:
    LORAS.register_sort(key, column, ascending_words, descending_words)
