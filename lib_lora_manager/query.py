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

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Boolean, ColumnElement, String, Text, and_, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

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
    # the term without its "-": the rows a negated term leaves out
    positive: ColumnElement[bool] | None = None

    def outside_of(self) -> ColumnElement[bool] | None:
        """The set this term's rows are all rows but, when it is one: a negated term, or a
        filter whose clause is a negated ForEngine (``dupe:no``, ``hashed:yes``)."""
        return self.positive if self.negated else getattr(self.clause, "negation_of", None)


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


# whether a page walks the sort index: (query, page, per_page, matches, how many rows the table
# holds: an estimate, the largest id, read from the end of the primary key) -> bool
IndexWalk = Callable[["Query", int, int, int, Callable[[], int]], bool]


def most_rows_match(query: Query, page: int, per_page: int, total: int, rows: Callable[[], int]) -> bool:
    """Walk the sort index only when most rows match. The walk stops after the page, but it reads
    rows in index order (random on disk) and tests the filters on each: for few matches one scan
    plus a sort of the matches is cheaper."""
    return not query.terms or total * 2 > rows()


def always_walk(query: Query, page: int, per_page: int, total: int, rows: Callable[[], int]) -> bool:
    """Walk the sort index for every page: right when each sort key's index holds every column
    the filters test (models: the page indexes), so the walk never reads a row."""
    return True


def walk_unless_few(query: Query, page: int, per_page: int, total: int, rows: Callable[[], int]) -> bool:
    """Walk the sort index (as ``always_walk``) unless the matches are few and each term is a set
    of ids from its own index: a walk tests about ``rows × (skipped + per_page) / matches``
    entries to fill the page (every entry when fewer match than a page holds), where reading the
    few matches by id and sorting them costs one row each (counted as ten entries)."""
    if total > _FEW_MATCHES or not all(t.key in query.table.id_set_keys for t in query.terms):
        return True
    return total * total * 10 >= page * per_page * rows()


_PAGE_ENDS = 64  # page ends remembered per query (Table.page), the latest kept
ROW_COST = 2  # ids listed from a full-text index per row a walk reads and tests (Table.page)
_FEW_MATCHES = 5000  # past this the walk wins for any table size the count would be worth taking for


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
    # the rows base_where leaves out, as a clause an index of their own answers (SQLite: a
    # search without terms is counted as every row less these); None when it leaves out none
    left_out: ColumnElement[bool] | None = None
    # that index (SQLite): the few rows left out are tested there one by one, where a term's own
    # index (a folder's range) would read every row it lists
    left_out_index: str | None = None
    index_walk: IndexWalk = most_rows_match
    # sort key -> the index a page walks on SQLite (INDEXED BY): SQLite has no statistics to
    # judge a filter's selectivity by, and a wrong guess reads every row in random order
    page_indexes: dict[str, str] = field(default_factory=dict)
    # the narrow index a query is counted in on SQLite when each of its terms is a set of ids
    # (``id_set_keys``: filter keys whose clause tests nothing but the id; None is free text),
    # and the narrowest page index, which counts any other query
    count_index: str | None = None
    id_set_keys: frozenset[str | None] = frozenset()
    # an index holding the id after columns the base clauses fix (SQLite finds an id in it by
    # one seek): a few matches' candidates are tested there before their rows are read
    id_index: str | None = None
    filter_count_index: str | None = None
    # an index by id after the base clauses' columns, holding every column the filters test: a
    # set's few rows are tested there by one seek each (SQLite)
    seek_index: str | None = None
    # filter key -> an index its clause is a range of (``rating:>=4``, ``added:<30d``,
    # ``status:failed``): a query with such a term is counted in that range on SQLite, not by
    # reading a whole index
    count_indexes: dict[str, str] = field(default_factory=dict)
    # puts the free-text terms together as one (text_index.merge): one lookup for all of them
    merge_terms: Callable[[list[Term]], list[Term]] | None = None
    # sort keys of nullable columns that PostgreSQL walks descending in an index of that order
    # (DESC NULLS LAST): one walk serves the page, not _nulls_apart's two
    descending_indexes: frozenset[str] = frozenset()

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

    def page(self, session: Session, query: Query, page: int, per_page: int, after: str | None = None,
             totals: Totals | None = None) -> IdPage:
        """The ids of one page of ``query``'s matches, in order, and how many match in all.

        ``page`` and ``per_page`` are checked by their field types (fields.PAGE, fields.PER_PAGE),
        as REST checks them: out of bounds raises InvalidInput. ``after``, a cursor from
        ``next_cursor``, starts the page after the last item of the page it was made for (its
        page number is that page's plus one) by the sort key's value rather than by skipping:
        deep pages cost what the first does. Ids first, rows second (the caller's): sorting
        narrow (key, id) pairs is far cheaper than sorting whole rows, and deep pages are
        skipped within the index. ``totals`` remembers counts while the data stay the same."""
        per_page, page = fields.PER_PAGE.parse(per_page), fields.PAGE.parse(page)
        position = _Cursor.read(after, self, query) if after else None
        # PostgreSQL has statistics to choose indexes by: every index is offered to it; SQLite
        # is told which to walk (page_indexes, count_index)
        dialect = session.get_bind().dialect.name
        planner_knows = dialect != "sqlite"
        if self.merge_terms is not None:
            query = Query(query.text, self, self.merge_terms(query.terms), query.sort)
        sized = {id(t): t.clause.counts[dialect] for t in query.terms
                 if t.key in self.id_set_keys and not t.negated and dialect in getattr(t.clause, "counts", {})}
        if not planner_knows and len(sized) > 1:
            # SQLite reads the first set of ids a row must be in and seeks each of its ids in the
            # others: the smallest first ("folder:x miku": 8,000 ids seeked, not 18,000; 28 to 18 ms
            # at 200,000 LoRAs), by the counts of their own indexes (a millisecond or two each),
            # remembered like the query's count while the data stay the same
            terms = query.count_key()
            sizes_key = None if terms is None or totals is None else totals.key(session, ("set sizes", terms))
            size = totals.get(sizes_key) if sizes_key is not None else None
            if size is None:
                size = {n: session.scalar(sized[id(t)]) for n, t in enumerate(query.terms) if id(t) in sized}
                if sizes_key is not None:
                    totals.put(sizes_key, size)
            order = sorted(range(len(query.terms)), key=lambda n: size.get(n, float("inf")))
            query = Query(query.text, self, [query.terms[n] for n in order], query.sort)
        hint = self._hint(session, self.page_indexes.get(query.sort.key))
        id_sets_only = all(t.key in self.id_set_keys for t in query.terms)
        ranged = next((self.count_indexes[t.key] for t in query.terms if t.key in self.count_indexes and not t.negated), None)
        count_index = self.count_index if id_sets_only else ranged or self.filter_count_index
        count_hint = self._hint(session, count_index) or hint
        # a term that counts its own rows (``counts``: dialect name -> a count statement; free
        # text in its full-text table or copy), when it is the only one and the table has no
        # clause of its own (the library's "not in the trash") that its rows must also meet
        counted_alone = not self.base_where(True) and not self.base_where(False)

        def count(indexed: bool, *where: ColumnElement[bool]) -> int:
            alone = getattr(where[0], "counts", {}).get(dialect) if len(where) == 1 else None
            if alone is not None and counted_alone:
                return session.scalar(alone)
            if alone is not None and self.left_out is not None and not planner_knows:
                # counted in its own index, less its rows the base clauses leave out (the few in
                # the trash, each tested), rather than a seek in the index of live ids per match
                test = next((t for t in (getattr(where[0], "of_row", None), getattr(where[0], "row_test", None), where[0])
                             if t is not None))
                out = select(func.count()).select_from(self.id_column.table).where(self.left_out, test)
                if self.left_out_index is not None:
                    out = out.with_hint(self.id_column.table, f"INDEXED BY {self.left_out_index}", "sqlite")
                return session.scalar(alone) - session.scalar(out)
            if not where and not planner_knows:
                # without a WHERE, SQLite counts the table from its b-tree pages (OP_Count) rather
                # than entry by entry: a millisecond at 200,000 rows, where the live index takes 10
                every = session.scalar(select(func.count()).select_from(self.id_column.table))
                out = 0 if self.left_out is None else session.scalar(select(func.count()).where(self.left_out))
                return every - out
            indexed = indexed or count_hint is not None or planner_knows
            stmt = select(func.count(self.id_column)).where(*self.base_where(indexed), *where)
            return session.scalar(stmt if count_hint is None else stmt.with_hint(self.id_column.table, count_hint, "sqlite"))

        def count_beside_set() -> int | None:
            """A query of one set of ids and tests of the row's own columns, on SQLite. A set with a
            partial index of its own (``partial``: the set's condition on the row and that index,
            which holds every column the others test) is counted in that index's entries, and all
            but the set as the others' count less those, rather than by testing each row's id
            against the set (``hashed:yes missing:no -nsfw:yes``: 55 to 21 ms at 200,000 LoRAs);
            all but a set counted in its own index as the others' count less its rows among
            them, each found by one seek (``-tag:anime base:sd1 fav:no type:lora``: 42 to 28 ms at 200,000)."""
            sets = [t for t in query.terms if t.key in self.id_set_keys]
            if planner_knows or len(sets) != 1 or len(query.terms) < 2:
                return None
            term = sets[0]
            outside = term.outside_of()
            partial = getattr(term.clause if outside is None else outside, "partial", None)
            others = [t.clause for t in query.tests() if t is not term]
            if partial is None:
                sized = getattr(outside, "counts", {}).get(dialect) if outside is not None else None
                if sized is None or self.seek_index is None:
                    return None
                # all but a set that is counted in its own index (``-tag:anime base:sd1 fav:no``):
                # the others' count less the set's rows among them, each found by one seek in
                # seek_index, when the set is a small part of the table (a seek costs about what
                # two or three of the entries the others' count reads and tests against the set do)
                if session.scalar(sized) * 4 >= self._rows(session):
                    return None
                among = (select(func.count(self.id_column)).where(*self.base_where(True), outside, *others)
                         .with_hint(self.id_column.table, f"INDEXED BY {self.seek_index}", "sqlite"))
                return count(True, *others) - session.scalar(among)
            condition, index = partial
            inside = session.scalar(select(func.count(self.id_column)).where(*self.base_where(True), condition, *others)
                                    .with_hint(self.id_column.table, f"INDEXED BY {index}", "sqlite"))
            return inside if outside is None else count(True, *others) - inside

        # without terms, every row the base clauses keep matches: counted in their index
        outside = query.terms[0].outside_of() if len(query.terms) == 1 and id_sets_only else None
        rest = getattr(outside, "counts", {}).get(f"{dialect} outside") if counted_alone else None
        known = totals.key(session, query.count_key()) if totals is not None else None
        total = totals.get(known) if totals is not None else None
        if total is not None:
            pass
        elif rest is not None:  # the rows outside the set, counted in the pass that counts the set
            total = session.scalar(rest)
        elif outside is not None:
            # all but a set of ids: counting the set and the rows beats testing every row against it
            total = count(True) - count(True, outside)
        elif (beside := count_beside_set()) is not None:
            total = beside
        else:
            total = count(not query.terms, *query.where())
        if totals is not None:
            totals.put(known, total)
        where = query.where()
        if position is not None:
            page = position.page
        if total == 0 or position is None and (page - 1) * per_page >= total:
            return IdPage(total, [], page, per_page)  # a walk would test every entry to find nothing
        # a page by number starts at the nearest end of a page found before (same terms, sort and
        # data: ``totals``), as a cursor would, and skips only the matches between: the next page,
        # the same page again or one nearby costs what a cursor page does, not a walk past every
        # match before it (a middle page of "-tag:anime" at 200,000 LoRAs: 50 ms to under 5)
        ends_key = None if known is None else (known[0], ("page ends", known[1], query.sort))
        ends = (totals.get(ends_key) if ends_key is not None else None) or {}
        offset = None if position is not None else (page - 1) * per_page  # matches before the page
        skip = offset or 0
        start = max((end for end in ends if end <= skip), default=0)
        if start:
            value, last_id = ends[start]
            position, skip = _Cursor(query.fingerprint(), value, last_id, page), skip - start
        # a page that skips matches reads the last one skipped too: where the page starts, so the
        # same page asked for again (a reload, a second client) skips none
        before = 1 if skip and ends_key is not None else 0
        if (planner_knows and query.sort.descending and getattr(query.sort_column(), "nullable", True)
                and query.sort.key not in self.descending_indexes
                and total > _FEW_MATCHES):  # a few matches sort in no time; walked for a page, they are all read
            found = self._nulls_apart(session, query, where, skip - before, per_page + before, position)
        else:
            found = self._walk(session, query, where, skip - before, per_page + before, position, total, hint,
                               id_sets_only, planner_knows)
        if found and offset is not None and ends_key is not None:
            marks = {offset - before + n + 1: (value, found_id) for n, (found_id, value) in enumerate(found)
                     if n == 0 and before or n == len(found) - 1}
            ends = {**ends, **marks}  # a new dict: others may be reading the old
            totals.put(ends_key, dict(list(ends.items())[-_PAGE_ENDS:]))
        return IdPage(total, [row[0] for row in found[before:]], page, per_page)

    def _walk(self, session: Session, query: Query, where: list[ColumnElement[bool]], skip: int, per_page: int,
              position: _Cursor | None, total: int, hint: str | None, id_sets_only: bool,
              planner_knows: bool) -> list[tuple[int, Any]]:
        """The page's (id, sort key's value) pairs: ``skip`` matches past ``position`` (or the first
        match), by a walk of the sort index or, for a few matches, by sorting them."""
        walked = skip // per_page + 1  # pages' worth of matches the walk reads
        rows = functools.cache(lambda: self._rows(session))  # read once, if at all
        use_index = self.index_walk(query, walked, per_page, total, rows)
        tested = [t for t in query.terms if hasattr(t.clause, "row_test")]
        if use_index and tested:
            # a walk of the sort index fills the page after reading about rows × wanted / total
            # rows, testing each one's text; an id set lists every match of its term from the
            # full-text index (or copy) first (rows − total for a negated term), and a row read
            # costs about what ROW_COST listed ids do
            listed = sum(max(rows() - total, 0) if t.negated else total for t in tested)
            if walked * per_page * rows() * ROW_COST < listed * total:
                where = [getattr(t.clause, "row_test", t.clause) for t in query.tests()]
        if not use_index and id_sets_only:
            # few matches, each found by id: no sort index walked, but each candidate the first set
            # lists is looked up in the narrow index of ids (id_index), so only the matches' rows
            # are read, for their sort key (a row each read, rather, cost 2.5x); without one, the
            # candidates' rows are read by id
            hint = self._hint(session, self.id_index)

        def read(conditions: list[ColumnElement[bool]], skip: int, limit: int) -> list[tuple[int, Any]]:
            # the sort key's value with each id (an index walk holds it): where the page ends
            stmt = (select(self.id_column, query.sort_column())
                    .where(*self.base_where(use_index or hint is not None or planner_knows), *conditions)
                    .order_by(*query.order_by(use_index=use_index)).limit(limit))
            if skip:
                stmt = stmt.offset(skip)
            if hint is not None:
                stmt = stmt.with_hint(self.id_column.table, hint, "sqlite")
            return [tuple(row) for row in session.execute(stmt)]

        if position is not None and position.value is not None and use_index and not skip:
            # the rows tied with the position's value, then those past it: SQLite seeks (value, id)
            # in the sort index for the first, where one condition for both bounds its walk by the
            # value alone and passes every tie before the id (a page of sort:-uses past the middle
            # of 170,000 LoRAs never used: 25 ms to under 1)
            ties, past = position.tied(self, query)
            found = read([*where, *ties], 0, per_page)
            return found if len(found) == per_page else found + read([*where, past], 0, per_page - len(found))
        if position is not None:
            where = [*where, position.beyond(self, query)]
        return read(where, skip, per_page)

    def _nulls_apart(self, session: Session, query: Query, where: list[ColumnElement[bool]], skip: int,
                     per_page: int, position: _Cursor | None) -> list[tuple[int, Any]]:
        """A page in descending order of a column that may be NULL, on PostgreSQL: the rows with
        a value first, then those without (by id), each walked in the sort key's index. Its order
        (NULLS LAST ascending) walked backwards is DESC NULLS FIRST: asked for the whole order at
        once, PostgreSQL sorts every match (a top-N sort of 25,000 rows for a middle page at 50,000
        LoRAs). The rows with a value are counted only for a page among those without. ``skip``:
        matches past ``position`` (or the first). (id, sort key's value) pairs, as ``_walk``'s."""
        column, id_column = query.sort_column(), self.id_column
        base = [*self.base_where(True), *where]
        valued: list[ColumnElement[bool]] | None = [column.is_not(None)]
        unvalued = [column.is_(None)]
        if position is not None and position.value is None:
            valued = None  # the page starts among the rows without a value
            unvalued.append(id_column < position.last_id)
        elif position is not None:
            value = position.value
            valued += [column <= value, or_(column < value, and_(column == value, id_column < position.last_id))]
        ids: list[tuple[int, Any]] = []
        if valued is not None:
            ids = [tuple(row) for row in session.execute(
                select(id_column, column).where(*base, *valued)
                .order_by(column.desc().nulls_first(), id_column.desc()).offset(skip or None).limit(per_page))]
            if len(ids) == per_page:
                return ids
            if ids or not skip:
                skip = 0  # the rows with a value end on this page
            else:  # the page is past them all: how many to skip among the rest
                skip -= session.scalar(select(func.count(id_column)).where(*base, *valued))
        rest = select(id_column).where(*base, *unvalued).order_by(id_column.desc()).offset(skip).limit(per_page - len(ids))
        return ids + [(i, None) for i in session.scalars(rest)]

    def next_cursor(self, query: Query, found: IdPage, last_row: Any) -> str | None:
        """The cursor of the page after ``found`` (``page(after=…)``), or None when it is the
        last. ``last_row``: the row of its last id, as the caller read it."""
        if len(found.ids) < found.per_page or found.page * found.per_page >= found.total or last_row is None:
            return None
        value = getattr(last_row, query.sort_column().key)
        return _Cursor(query.fingerprint(), value, found.ids[-1], found.page + 1).write()

    def _rows(self, session: Session) -> int:
        """About how many rows the table holds: the largest id (the end of the primary key)."""
        return session.scalar(select(func.max(self.id_column))) or 0

    def _hint(self, session: Session, index: str | None) -> str | None:
        if index is None or session.get_bind().dialect.name != "sqlite":
            return None
        return f"INDEXED BY {index}"


class Totals:
    """How many rows matched a query, remembered while the data stay the same
    (``Database.data_version``): a search's count reads every match (tens of milliseconds at
    50,000 rows), the page only up to its end, and paging through a result repeats its count.
    Other figures over the whole data are remembered the same way (analytics' library figures),
    under terms of their own."""

    SIZE = 256

    def __init__(self, version: Callable[[Session], Hashable]):
        self._version = version
        self._known: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, session: Session, terms: Hashable | None) -> Hashable | None:
        """The key of ``terms`` (a query's, None when it cannot be remembered) in ``session``."""
        return None if terms is None else (self._version(session), terms)

    def get(self, key: Hashable | None) -> Any:
        if key is None:
            return None
        with self._lock:
            total = self._known.get(key)
            if total is not None:
                self._known.move_to_end(key)
            return total

    def clear(self) -> None:
        with self._lock:
            self._known.clear()

    def put(self, key: Hashable | None, total: Any) -> None:
        if key is None:
            return
        with self._lock:
            self._known[key] = total
            self._known.move_to_end(key)
            while len(self._known) > self.SIZE:
                self._known.popitem(last=False)


_ROW_ID = fields.Id("after")


@dataclass(frozen=True)
class _Cursor:
    """Where a page ends: the sort key's value and the id of its last item, and the number of
    the page that follows. Opaque to clients (base64 of JSON), and tied to its query by a
    fingerprint of the terms and the sort, so a cursor is never applied to another search."""

    fingerprint: str
    value: Any
    last_id: int
    page: int

    def write(self) -> str:
        data = json.dumps([self.fingerprint, self.value, self.last_id, self.page], ensure_ascii=True, allow_nan=False)
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    @classmethod
    def read(cls, text: str, table: Table, query: Query) -> _Cursor:
        text = fields.CURSOR.parse(text)
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            fingerprint, value, last_id, page = data
            if not (isinstance(fingerprint, str) and isinstance(last_id, int) and isinstance(page, int)
                    and (value is None or isinstance(value, (str, int, float)))):
                raise ValueError(data)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
            raise InvalidInput("after: not a cursor this search handed out; start again from the first page") from None
        if fingerprint != query.fingerprint():
            raise InvalidInput("after: the cursor belongs to another search (query or sort changed); "
                               "start again from the first page")
        return cls(fingerprint, value, _ROW_ID.parse(last_id), fields.PAGE.parse(page, "after"))

    def beyond(self, table: Table, query: Query) -> ColumnElement[bool]:
        """Rows after this position in the query's order: (key, id) beyond (value, id), where
        rows without a value come last in both directions."""
        column, id_column = query.sort_column(), table.id_column
        descending = query.sort.descending
        id_beyond = id_column < self.last_id if descending else id_column > self.last_id
        if self.value is None:
            return and_(column.is_(None), id_beyond)
        clause = or_(column < self.value if descending else column > self.value, and_(column == self.value, id_beyond))
        # the same rows, with a bound a planner can start the walk of the sort index at: without it
        # PostgreSQL walks from the first entry and tests the OR on each (a deep cursor page cost
        # what the offset page did)
        clause = and_(column <= self.value if descending else column >= self.value, clause)
        return or_(clause, column.is_(None)) if getattr(column, "nullable", True) else clause

    def tied(self, table: Table, query: Query) -> tuple[list[ColumnElement[bool]], ColumnElement[bool]]:
        """``beyond`` in two parts, each one range of the sort index: the rows holding this
        position's value past its id, then those past the value (a position with a value)."""
        column, id_column = query.sort_column(), table.id_column
        descending = query.sort.descending
        ties = [column == self.value, id_column < self.last_id if descending else id_column > self.last_id]
        past = column < self.value if descending else column > self.value
        return ties, or_(past, column.is_(None)) if getattr(column, "nullable", True) else past


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
        return [t.clause for t in self.tests()]

    def tests(self) -> list[Term]:
        """The terms in the order a row is best tested in: tests of the row's own columns first,
        sets of ids (a tag, a folder, free text: a lookup each) last. SQLite tests a WHERE's terms
        in the order written and stops at the first that fails: a count of
        ``-tag:anime base:sd1 fav:no`` takes 40 % less time with the tag last."""
        return sorted(self.terms, key=lambda t: t.key in self.table.id_set_keys)

    def sort_column(self):
        column = self.table.sorts[self.sort.key]
        return column() if callable(column) else column

    def count_key(self) -> tuple | None:
        """What the count of this query's matches depends on besides the data: its terms; None
        when a term is relative to the clock (``added:<30d``), whose matches change without a write."""
        if any(_AGE.match(t.value.strip().lower()) for t in self.terms):
            return None
        return self.table.noun, tuple((t.key, t.value, t.negated) for t in self.terms)

    def fingerprint(self) -> str:
        """A short digest of the terms and the sort: what a cursor must have been made for."""
        terms = [(t.key, t.value, t.negated) for t in self.terms]
        text = json.dumps([terms, self.sort.key, self.sort.descending], ensure_ascii=True)
        return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()

    def order_by(self, use_index: bool = True) -> list[UnaryExpression]:
        """ORDER BY clauses. ``use_index=False`` hides the sort key from the planner: for a
        filtered page, scanning and sorting the matches beats walking the whole sort index
        and reading every row to test the filter (SQLite cannot estimate LIKE selectivity)."""
        expr = self.sort_column()
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


class ForEngine(ColumnElement[bool]):
    """A condition written for SQLite and for the others: what serves one planner best can
    mislead the other. SQLite pages walk an index holding some columns only, so a condition on
    another column is best a set of ids (found through that column's own index) that the walk
    tests by rowid; PostgreSQL flattens such a set into a join and probes a row per entry, and
    does best with the condition as it is, except negated: a page walking its sort index then
    tests each entry against the set's hash (``default_negated``), reading no row."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition as it is: no "= 1" after it in a WHERE
    _traverse_internals = [("default", InternalTraversal.dp_clauseelement),
                           ("sqlite", InternalTraversal.dp_clauseelement),
                           ("default_negated", InternalTraversal.dp_clauseelement)]

    def __init__(self, default: ColumnElement[bool], sqlite: ColumnElement[bool] | None = None,
                 default_negated: ColumnElement[bool] | None = None):
        self.default = default
        self.sqlite = sqlite if sqlite is not None else default
        self.default_negated = default_negated if default_negated is not None else not_(default)

    def _negate(self) -> ForEngine:
        negated = ForEngine(self.default_negated, not_(self.sqlite), self.default)
        negated.negation_of = self  # Table.page counts "all but a set" as all rows less the set's
        if hasattr(self, "row_test"):
            negated.row_test = not_(self.row_test)
        return negated


@compiles(ForEngine)
def _compile_default(element: ForEngine, compiler, **kw) -> str:
    return f"({compiler.process(element.default, **kw)})"


@compiles(ForEngine, "sqlite")
def _compile_sqlite(element: ForEngine, compiler, **kw) -> str:
    return f"({compiler.process(element.sqlite, **kw)})"


def ids_where(id_column, *where: ColumnElement[bool]) -> ForEngine:
    """Rows matching ``where``: on SQLite as the set of their ids, elsewhere as it is, and
    negated as the rows outside that set (see ForEngine)."""
    ids = id_column.in_(select(id_column).where(*where))
    return ForEngine(and_(*where), ids, not_(ids))


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
        positive = clause
        if negated:
            clause, words = not_(clause), f"not {words}"
        query.terms.append(Term(key, value, negated, clause, words, positive))
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


_LAST_CODE_POINT = 0x10FFFF


def after_prefix(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``, in code point
    order (SQLite's BINARY collation, PostgreSQL's C order and its pattern operators), or None
    when there is none (every character is the last code point). Surrogates, which no database
    stores, are skipped."""
    stem = prefix.rstrip(chr(_LAST_CODE_POINT))
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000
    return stem[:-1] + chr(following)


def starts_with(column, prefix: str) -> ColumnElement[bool]:
    """Values of ``column`` that start with ``prefix``, as a range of its index.

    A LIKE cannot say this through an index on either engine: SQLite's LIKE ignores ASCII case
    (its indexes do not), and PostgreSQL finds a range in ``LIKE $1`` only when it sees the
    pattern, which a prepared statement's generic plan does not. The range is compared in code
    point order: on PostgreSQL by the pattern operators, which a ``text_pattern_ops`` index
    serves whatever the database's collation. No character of the prefix is special."""
    if isinstance(column.type, TypeDecorator):  # bounded as stored (dbtypes.FsPath: escapes as stand-ins)
        prefix = column.type.process_bind_param(prefix, None)
    end = after_prefix(prefix)
    on_sqlite = column >= prefix if end is None else and_(column >= prefix, column < end)
    ge, lt = column.op("~>=~", is_comparison=True), column.op("~<~", is_comparison=True)
    elsewhere = ge(prefix) if end is None else and_(ge(prefix), lt(end))
    return ForEngine(elsewhere, on_sqlite)


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
