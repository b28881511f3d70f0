"""Free text through a full-text index that the database keeps in step by itself.

Free text is a case-insensitive substring match on a ``search_text`` column (lower-cased in
Python when the row is written): ``search_text LIKE '%words%'``. A LIKE with a leading ``%``
reads every row; these indexes answer the same question without doing so.

- SQLite: an FTS5 table with the trigram tokenizer per searched table (``loras_text``,
  ``generations_text``). Trigrams keep substring matching: a phrase of three or more characters
  matches exactly the rows whose text contains it. The table keeps its own copy of the text (a
  few MB): a shorter term, which no trigram can look up, is a LIKE over that narrow copy
  instead of over the whole rows. Triggers on the content table update the index inside the
  statement that changed the row, so every writer (scans, edits, merges, deletes, recorded
  generations, bulk UPDATEs, a migration) keeps it right in its own transaction, and a
  rollback undoes both.
  Needs SQLite ≥ 3.34 with FTS5 compiled in, checked once per process.
- PostgreSQL: a GIN index with ``gin_trgm_ops`` (the pg_trgm extension, trusted since
  PostgreSQL 13 but refusable) on ``search_text``; the LIKE stays as it is and uses it. The
  history keeps its text in a narrow copy too (``generations_text``: id, search_text; triggers
  keep it, as on SQLite) and the index is on the copy: a term most prompts hold can only be
  counted by testing every prompt, and the copy is a third of the rows' size, so counting reads
  a third of the pages. Pages test the rows' own column as they walk, or the copy's ids.
  A trigram index only narrows a LIKE down (every row it lists is tested again), so the copy's
  words (its text split at spaces) are under a GIN index too, and its distinct words in a table
  of their own (``generations_text_words``): a term without a space is in a text exactly when
  it is in one of its words, so its matches are counted from that index (the rows holding one
  of the few words the term is in) without testing any text, a third of the time at 100,000
  generations. A word too long for the index stands as ``LONG_WORD`` among its text's words:
  those few texts are tested by the LIKE.
  No trigram serves a term of one or two characters, so ``loras`` also keeps ``search_grams``, a
  stored generated column of every distinct one- and two-character substring of its text (a
  SQL function computes it when the row is written), under a GIN index: such a term is in the
  text exactly when it is in that array, which the index finds (a count or a few matches) and a
  page's walk of its sort index tests per row as cheaply as a LIKE. A generated column rather
  than an index on the function: the function costs ~70 µs a row, and a planner testing it per
  row while walking an index (which it judges cheap) read pages for seconds.
- Otherwise (and on PostgreSQL for short terms of the history, or of the LoRAs when the column
  could not be added) the LIKE reads the rows: slower, same answers.

``sync`` makes a database's indexes fit the engine that opens it, at every open (after
migrating): an SQLite file indexed by one Python and opened by another without FTS5 loses its
triggers (or every write would fail), and gets them back, rebuilt, when FTS5 is there again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3

from sqlalchemy import Boolean, ColumnElement, Text, and_, bindparam, cast, column, func, not_, or_, select, table
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from .dbtypes import SafeText, clean_text
from .query import ForEngine, Term, ids_where, like_escape

log = logging.getLogger("lora_manager")

MIN_TERM = 3  # characters: a trigram index cannot look up anything shorter
TRIGRAM_EXTENSION = "pg_trgm"
# content table -> its full-text table (SQLite) and its trigram index (PostgreSQL)
INDEXED = {"loras": "loras_text", "generations": "generations_text"}
# PostgreSQL: content tables whose text is also in a narrow copy of that name (id, search_text)
COPIED = {"generations": "generations_text"}
_TRIGGERS = ("ai", "ad", "au")  # after insert, delete, update of search_text
# SQLite: the full-text table's copy of a text ends with this character (no text holds it), so
# that every two characters of the text begin a trigram: "xl" is in a text exactly when one of
# the index's terms "xl?" is (TERMS lists them), the last two characters included
END = "\x1f"
# SQLite: each connection's view of a full-text table's terms (fts5vocab, in its temp schema)
TERMS = "{fts}_terms"
_NOTHING = '"' + END * 3 + '"'  # a phrase no text holds: the expression when no term begins so
# PostgreSQL: content tables whose short terms are looked up in a column of their text's
# one- and two-character substrings (the history's prompts are long: their LIKE stays)
SHORT_GRAMS = ("loras",)
GRAMS_COLUMN = "search_grams"
GRAMS_FUNCTION = "lora_manager_short_grams"
# the dialect attribute naming the content tables whose grams this engine's database has (sync)
_GRAMS_READY = "lora_manager_grams_ready"
# PostgreSQL: the distinct words of a copy's text (split at spaces), as a GIN index holds them
WORDS_FUNCTION = "lora_manager_words"
_WORD_BYTES = 200  # longer words are not listed: a GIN entry or a key has to fit in a page
LONG_WORD = " long"  # stands for them (a space: it is no word of any text)


def words_table(copy: str) -> str:
    """The table of a copy's distinct words (PostgreSQL)."""
    return f"{copy}_words"


def words_index_name(copy: str) -> str:
    return f"{copy}_by_word"


def trigram_index_name(content: str) -> str:
    """The PostgreSQL trigram index of a content table's text (on its copy when it has one)."""
    return f"ix_{COPIED.get(content, content)}_search_text_trgm"


def grams_index_name(content: str) -> str:
    return f"ix_{content}_{GRAMS_COLUMN}"


def owns(name: str) -> bool:
    """Whether a table, column or index of that name belongs to the full-text indexes (not to
    the models: SQLite's FTS5 keeps shadow tables such as ``loras_text_data``)."""
    return any(name == fts or name.startswith(fts + "_") for fts in INDEXED.values()) or \
        name in {trigram_index_name(content) for content in INDEXED} or name in _RETIRED_INDEXES or \
        name == GRAMS_COLUMN or name in {grams_index_name(content) for content in SHORT_GRAMS}


# trigram indexes of content tables that now have a copy: sync drops them
_RETIRED_INDEXES = {f"ix_{content}_search_text_trgm" for content in COPIED}


@functools.cache
def sqlite_has_trigram() -> bool:
    """Whether this process's SQLite has FTS5 with the trigram tokenizer (3.34+)."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE VIRTUAL TABLE probe USING fts5(t, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False
    finally:
        connection.close()


# --- the free-text clause -------------------------------------------------------------------


class _ShortTerm(ColumnElement[bool]):
    """A term too short for trigrams on PostgreSQL: in the text's grams when the database has
    them (``sync`` tells the engine), else the LIKE."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True
    _traverse_internals = [("grams", InternalTraversal.dp_clauseelement),
                           ("like", InternalTraversal.dp_clauseelement),
                           ("content", InternalTraversal.dp_string)]

    def __init__(self, grams: ColumnElement[bool], like: ColumnElement[bool], content: str):
        self.grams, self.like, self.content = grams, like, content


@compiles(_ShortTerm)
def _compile_short_term(element: _ShortTerm, compiler, **kw) -> str:
    ready = element.content in getattr(compiler.dialect, _GRAMS_READY, ())
    return f"({compiler.process(element.grams if ready else element.like, **kw)})"


def _short_term(text_column, needle: str, like: ColumnElement[bool]) -> ColumnElement[bool] | None:
    """PostgreSQL's clause for a term of one or two characters (None when it is longer once
    stored, or the table keeps no grams)."""
    content = text_column.table.name
    stored = clean_text(needle)  # as search_text holds it (SafeText)
    if content not in SHORT_GRAMS or not 0 < len(stored) < MIN_TERM:
        return None
    grams = column(GRAMS_COLUMN, ARRAY(Text), _selectable=text_column.table)
    needles = cast(array([bindparam(None, stored, type_=Text())]), ARRAY(Text))  # text[], as the column
    return _ShortTerm(grams.contains(needles), like, content)


def match(id_column, text_column, value: str) -> ColumnElement[bool]:
    """Rows whose ``text_column`` (lower-cased search text) contains ``value`` lower-cased:
    the ids of its copy's matching rows (the history), the text's grams (a LoRA term of one or
    two characters), otherwise the LIKE (PostgreSQL's trigram index serves it); on SQLite the
    full-text table's ids. ``row_test``: the same test on the row itself, for a walk of the sort
    index that reads the rows anyway (query.Table.page chooses)."""
    needle = value.lower()
    pattern = f"%{like_escape(needle)}%"
    like = text_column.like(pattern, escape="\\")
    content = text_column.table.name
    copy = _copy(content)
    short = _short_term(text_column, needle, like) if len(needle) < MIN_TERM else None
    if copy is not None:  # elsewhere than SQLite: the ids of the copy's matches, counted there
        default = id_column.in_(select(copy.c.id).where(copy.c.search_text.like(pattern, escape="\\")))
        negated = not_(default)
        counts = _copy_counts(copy, copy.c.search_text.like(pattern, escape="\\"), _in_words(copy, [(needle, pattern)]))
    elif short is not None:
        default, negated, counts = short, not_(short), {}
    else:  # negated, a set of ids a page's walk tests each entry against (see ForEngine)
        default, negated, counts = like, not_(id_column.in_(select(id_column).where(like))), {}
    if not sqlite_has_trigram():
        # one sequential pass, not a row per index entry walked
        found = ForEngine(default, ids_where(id_column, like).sqlite, negated)
        found.row_test, found.counts = like, counts
        return found
    fts = INDEXED[content]
    phrase = None
    if len(needle) >= MIN_TERM:
        phrase = '"' + needle.replace('"', '""') + '"'  # one FTS5 phrase: the trigrams in a row
        ids = _matching(fts, text_column.name, phrase)
        counts["sqlite"] = _counted(fts, text_column.name, phrase)
    elif len(needle) == MIN_TERM - 1:
        # the terms of the index beginning with the two characters, one MATCH of all of them
        # (a few ms at 200,000 rows, where a LIKE over the text reads all of it)
        terms = table(TERMS.format(fts=fts), column("term"), schema="temp")
        listed = select(func.group_concat(func.printf('"%w"', terms.c.term), " OR ")).where(
            terms.c.term >= bindparam(None, needle, type_=SafeText()),
            terms.c.term < bindparam(None, needle + "\U0010ffff", type_=SafeText()))
        expression = func.coalesce(listed.scalar_subquery(), _NOTHING)
        index = table(fts, column("rowid"), column(text_column.name))
        ids = select(index.c.rowid).where(index.c[text_column.name].op("MATCH")(expression))
        counts["sqlite"] = select(func.count()).select_from(index).where(index.c[text_column.name].op("MATCH")(expression))
    else:
        # FTS5 keeps the text in its "_content" table (columns id, c0): scanned directly, it is
        # two and a half times faster than the same LIKE through the virtual table
        fts_copy = table(f"{fts}_content", column("id"), column("c0"))
        ids = select(fts_copy.c.id).where(fts_copy.c.c0.like(bindparam(None, pattern, type_=SafeText()), escape="\\"))
    found = ForEngine(default, id_column.in_(ids), negated)
    # a page of a term most rows hold is found sooner by testing the rows its walk reads than by
    # listing every match from the index first (query.Table.page)
    found.row_test, found.counts = like, counts
    if phrase is not None:
        found.phrase, found.pattern, found.fts = phrase, pattern, (fts, text_column.name, id_column, copy)
    return found


def _copy_counts(copy, condition, in_words=None) -> dict:
    """How many rows of the copy (one per content row) meet ``condition``, and how many do not:
    a negated word is counted in the same one pass (query.Table.page, ``outside_counts``).
    ``in_words``: the same count from the copy's words (``_in_words``), when the terms allow."""
    if in_words is not None:
        every = select(func.count()).select_from(copy).scalar_subquery()
        return {"postgresql": in_words, "postgresql outside": select(every - in_words.scalar_subquery())}
    return {"postgresql": select(func.count()).select_from(copy).where(condition),
            "postgresql outside": select(func.count() - func.count().filter(condition)).select_from(copy)}


def _in_words(copy, terms: list[tuple[str, str]]):
    """How many rows of the copy hold every term (lower-cased text, its LIKE pattern), counted
    from the GIN index of their words: each term's condition is that the row's words overlap
    the listed words holding it, which the index answers exactly (no text tested). The rows with
    a word too long to be listed are counted apart by the LIKE. None when a term has a space (a
    phrase can span words) or is too short to be looked up among the words by its trigrams."""
    if any(" " in needle or len(needle) < MIN_TERM for needle, _pattern in terms):
        return None
    words = table(words_table(copy.name), column("word"))
    row_words = getattr(func, WORDS_FUNCTION)(copy.c.search_text)
    held = and_(*(row_words.op("&&")(func.array(
        select(words.c.word).where(words.c.word.like(pattern, escape="\\")).scalar_subquery())) for _needle, pattern in terms))
    long_word = cast(array([LONG_WORD]), ARRAY(Text))
    likes = [copy.c.search_text.like(pattern, escape="\\") for _needle, pattern in terms]
    listed = select(func.count()).select_from(copy).where(held).scalar_subquery()
    unlisted = select(func.count()).select_from(copy).where(row_words.op("@>")(long_word), not_(held), *likes).scalar_subquery()
    return select(listed + unlisted)


def _copy(content: str):
    name = COPIED.get(content)
    return None if name is None else table(name, column("id"), column("search_text"))


def _matching(fts: str, name: str, expression: str):
    index = table(fts, column("rowid"), column(name))
    return select(index.c.rowid).where(index.c[name].op("MATCH")(bindparam(None, expression, type_=SafeText())))


def _counted(fts: str, name: str, expression: str):
    """How many rows of the full-text table match: the content table's count when nothing
    else is asked of its rows (the triggers keep one row there per row of the content table)."""
    index = table(fts, column(name))
    return select(func.count()).select_from(index).where(
        index.c[name].op("MATCH")(bindparam(None, expression, type_=SafeText())))


def merge(terms: list[Term]) -> list[Term]:
    """``terms`` with the free-text terms of three characters or more (what a trigram can look
    up) as one term, looked up at once: on SQLite one MATCH expression, ``("a" AND "b") NOT ("c"
    OR "d")``; elsewhere one pass over the copy (when the table has one) testing every LIKE. When
    every one is negated, the term is the rows outside ``"c" OR "d"``. A query of common words
    otherwise builds and probes one id set per word."""
    phrased = [t for t in terms if t.key is None and getattr(t.positive, "phrase", None) is not None]
    if len(phrased) < 2:
        return terms
    fts, name, id_column, copy = phrased[0].positive.fts
    wanted = [t for t in phrased if not t.negated]
    unwanted = [t for t in phrased if t.negated]

    def on_copy(t: Term) -> ColumnElement[bool]:
        return copy.c.search_text.like(t.positive.pattern, escape="\\")

    if wanted:
        expression = " AND ".join(t.positive.phrase for t in wanted)
        if unwanted:
            expression = f"({expression}) NOT ({' OR '.join(t.positive.phrase for t in unwanted)})"
        on_rows = and_(*(t.positive.row_test if not t.negated else not_(t.positive.row_test) for t in phrased))
        copied = and_(*(on_copy(t) if not t.negated else not_(on_copy(t)) for t in phrased)) if copy is not None else None
        in_words = None if unwanted or copy is None else _in_words(
            copy, [(t.value.lower(), t.positive.pattern) for t in wanted])
        negated = False
    else:
        expression = " OR ".join(t.positive.phrase for t in unwanted)
        on_rows = or_(*(t.positive.row_test for t in unwanted))
        copied = or_(*(on_copy(t) for t in unwanted)) if copy is not None else None
        in_words = None
        negated = True
    if copied is not None:
        default = id_column.in_(select(copy.c.id).where(copied))
        counts = _copy_counts(copy, copied, in_words)
    else:
        default, counts = on_rows, {}
    positive = ForEngine(default, id_column.in_(_matching(fts, name, expression)), not_(default))
    positive.row_test = on_rows
    positive.counts = counts | {"sqlite": _counted(fts, name, expression)}
    clause = not_(positive) if negated else positive
    one = Term(None, " ".join(t.value for t in phrased), negated, clause, ", ".join(t.description for t in phrased), positive)
    merged = {id(t) for t in phrased}
    first = next(n for n, t in enumerate(terms) if id(t) in merged)
    return [one if n == first else t for n, t in enumerate(terms) if n == first or id(t) not in merged]


# --- keeping the indexes ----------------------------------------------------------------------


def in_step(connection) -> bool:
    """Whether the database's full-text indexes are those this engine can use and keep (one
    cheap look at the catalog; ``sync`` when not)."""
    if connection.dialect.name == "sqlite":
        present = _sqlite_objects(connection)
        if not sqlite_has_trigram():
            return not any(f"{fts}_{t}" in present for fts in INDEXED.values() for t in _TRIGGERS)
        return all(fts in present and all(f"{fts}_{t}" in present for t in _TRIGGERS) for fts in INDEXED.values())
    if connection.dialect.name == "postgresql":
        return _postgresql_copies(connection) == set(COPIED) and \
            len(_postgresql_indexes(connection)) == len(INDEXED) + len(SHORT_GRAMS)
    return True


def note(connection) -> None:
    """Tell the engine of ``connection`` which content tables have their grams (PostgreSQL),
    so a short term's clause reads them, or the LIKE where they could not be added. Called at
    every open, after ``sync``."""
    if connection.dialect.name == "postgresql":
        present = _postgresql_indexes(connection)
        ready = frozenset(content for content in SHORT_GRAMS if grams_index_name(content) in present)
        setattr(connection.dialect, _GRAMS_READY, ready)


def sync(connection) -> None:
    """Create, repair or (SQLite without FTS5) disarm the full-text indexes of a migrated
    database, on ``connection`` inside its (write) transaction."""
    if connection.dialect.name == "sqlite":
        _sync_sqlite(connection)
    elif connection.dialect.name == "postgresql":
        _sync_postgresql(connection)


def _sqlite_objects(connection) -> set[str]:
    names = [fts for fts in INDEXED.values()] + [f"{fts}_{t}" for fts in INDEXED.values() for t in _TRIGGERS]
    marks = ", ".join("?" * len(names))
    rows = connection.exec_driver_sql(f"SELECT name FROM sqlite_master WHERE name IN ({marks})", tuple(names))
    return {r[0] for r in rows}


def _sync_sqlite(connection) -> None:
    present = _sqlite_objects(connection)
    if not sqlite_has_trigram():
        # without the module every write to the content tables would fail in their triggers;
        # the index goes stale, and is rebuilt when an engine with FTS5 opens the file again
        armed = [f"{fts}_{t}" for fts in INDEXED.values() for t in _TRIGGERS if f"{fts}_{t}" in present]
        for trigger in armed:
            connection.exec_driver_sql(f"DROP TRIGGER {trigger}")
        if armed:
            log.warning("LoRA Manager: this SQLite (%s) has no FTS5 trigram tokenizer: free text reads every row "
                        "until a newer one opens the library", sqlite3.sqlite_version)
        return
    for content, fts in INDEXED.items():
        triggers = [f"{fts}_{t}" for t in _TRIGGERS]
        if fts in present and all(t in present for t in triggers):
            continue
        if fts not in present:
            connection.exec_driver_sql(
                f"CREATE VIRTUAL TABLE {fts} USING fts5(search_text, "
                # already lower-cased in Python: folding again could only add matches LIKE does not find
                "tokenize='trigram case_sensitive 1')")
        for trigger in triggers:
            if trigger in present:
                connection.exec_driver_sql(f"DROP TRIGGER {trigger}")
        end = f"char({ord(END)})"
        connection.exec_driver_sql(f"DELETE FROM {fts}")
        connection.exec_driver_sql(f"INSERT INTO {fts}(rowid, search_text) SELECT id, search_text || {end} FROM {content}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {content} BEGIN "
            f"INSERT INTO {fts}(rowid, search_text) VALUES (new.id, new.search_text || {end}); END")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {content} BEGIN DELETE FROM {fts} WHERE rowid = old.id; END")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF search_text ON {content} BEGIN "
            f"UPDATE {fts} SET search_text = new.search_text || {end} WHERE rowid = old.id; END")


def connect_sqlite(cursor) -> None:
    """On a new SQLite connection: its views of the full-text tables' terms (TERMS), in its temp
    schema; read only when a query asks, so a database without the tables yet is no error."""
    if sqlite_has_trigram():
        for fts in INDEXED.values():
            cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{TERMS.format(fts=fts)} USING fts5vocab(main, {fts}, row)")


def drop_sqlite(connection) -> None:
    """Remove the SQLite full-text tables and their triggers (migration 0007's downgrade)."""
    for fts in INDEXED.values():
        for trigger in _TRIGGERS:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {fts}_{trigger}")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {fts}")


def _postgresql_indexes(connection) -> set[str]:
    names = [trigram_index_name(content) for content in INDEXED] + [grams_index_name(content) for content in SHORT_GRAMS]
    return {r[0] for r in connection.exec_driver_sql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY(%(names)s)",
        {"names": names})}


def _postgresql_copies(connection) -> set[str]:
    """The content tables whose copy is there and kept (its table and its three triggers)."""
    kept = {r[0] for r in connection.exec_driver_sql(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(%(names)s)",
        {"names": [f"{copy}_{t}" for copy in COPIED.values() for t in (*_TRIGGERS, "words")]})}
    tables = {r[0] for r in connection.exec_driver_sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(%(names)s)",
        {"names": [*COPIED.values(), *(words_table(copy) for copy in COPIED.values())]})}
    indexes = {r[0] for r in connection.exec_driver_sql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ANY(%(names)s)",
        {"names": [words_index_name(copy) for copy in COPIED.values()]})}
    return {content for content, copy in COPIED.items()
            if copy in tables and all(f"{copy}_{t}" in kept for t in (*_TRIGGERS, "words"))
            and words_table(copy) in tables and words_index_name(copy) in indexes}


def _sync_postgresql(connection) -> None:
    kept = _postgresql_copies(connection)
    for content, copy in COPIED.items():
        if content not in kept:
            _copy_postgresql(connection, content, copy)
    for index in _RETIRED_INDEXES:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    present = _postgresql_indexes(connection)
    if not all(trigram_index_name(content) in present for content in INDEXED):
        _sync_trigrams(connection, present)
    if not all(grams_index_name(content) in present for content in SHORT_GRAMS):
        _sync_grams(connection, present)


# every distinct substring of one and of two characters (char_length: characters, as LIKE and
# Python count them); IMMUTABLE, as a generated column needs
_GRAMS_SQL = (f"CREATE OR REPLACE FUNCTION {GRAMS_FUNCTION}(t text) RETURNS text[] "
              "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
              "SELECT ARRAY(SELECT DISTINCT substr(t, i, n) FROM generate_series(1, 2) AS n, "
              "generate_series(1, char_length(t) - n + 1) AS i) $$")


def _sync_grams(connection, present: set[str]) -> None:
    savepoint = connection.begin_nested()  # refused (not the tables' owner, PostgreSQL < 12): keep the LIKE
    try:
        connection.exec_driver_sql(_GRAMS_SQL)
        for content in SHORT_GRAMS:
            # computes the column of every row: ~3.5 s at 50,000 LoRAs, once
            connection.exec_driver_sql(f"ALTER TABLE {content} ADD COLUMN IF NOT EXISTS {GRAMS_COLUMN} text[] "
                                       f"GENERATED ALWAYS AS ({GRAMS_FUNCTION}(search_text)) STORED")
            connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {grams_index_name(content)} ON {content} "
                                       f"USING gin ({GRAMS_COLUMN})")
            # statistics of the new column now, not at autovacuum's next pass: without them the
            # planner guesses every short term's share of the rows, and walks where it should not
            connection.exec_driver_sql(f"ANALYZE {content}")
        savepoint.commit()
    except DBAPIError as e:
        savepoint.rollback()
        log.warning("LoRA Manager: no index for free text of one or two characters (%s); such searches "
                    "read every row", str(e).splitlines()[0])


def _sync_trigrams(connection, present: set[str]) -> None:
    savepoint = connection.begin_nested()  # a refused extension must not abort the transaction
    try:
        connection.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {TRIGRAM_EXTENSION}")
        for content in INDEXED:
            if trigram_index_name(content) not in present:
                connection.exec_driver_sql(f"CREATE INDEX {trigram_index_name(content)} ON {COPIED.get(content, content)} "
                                           "USING gin (search_text gin_trgm_ops)")
        for copy in COPIED.values():
            _index_words(connection, copy)
        savepoint.commit()
    except DBAPIError as e:  # refused (privileges, no contrib package): the LIKE reads every row
        savepoint.rollback()
        log.warning("LoRA Manager: no trigram index for free text (%s); searches read every row",
                    str(e).splitlines()[0])
    for copy in COPIED.values():
        connection.exec_driver_sql(f"ANALYZE {copy}")  # the planner's statistics of it from the start


def _copy_postgresql(connection, content: str, copy: str) -> None:
    """(Re)build ``copy``, the narrow copy of ``content``'s text, and the triggers that keep it
    in step in the writer's own statement (as SQLite's full-text tables are kept)."""
    for t in _TRIGGERS:
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {copy}_{t} ON {content}")
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {copy}")
    # no foreign key: the delete trigger removes a row's copy, and dropping the content table
    # (the models' drop_all) leaves the copy to drop_postgresql
    connection.exec_driver_sql(f"CREATE TABLE {copy} (id integer PRIMARY KEY, search_text text NOT NULL)")
    connection.exec_driver_sql(f"INSERT INTO {copy} (id, search_text) SELECT id, search_text FROM {content}")
    connection.exec_driver_sql(f"""CREATE OR REPLACE FUNCTION {copy}_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {copy} (id, search_text) VALUES (NEW.id, NEW.search_text);
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE {copy} SET id = NEW.id, search_text = NEW.search_text WHERE id = OLD.id;
    ELSE
        DELETE FROM {copy} WHERE id = OLD.id;
    END IF;
    RETURN NULL;
END $$""")
    connection.exec_driver_sql(f"CREATE TRIGGER {copy}_ai AFTER INSERT ON {content} FOR EACH ROW EXECUTE FUNCTION {copy}_kept()")
    connection.exec_driver_sql(f"CREATE TRIGGER {copy}_ad AFTER DELETE ON {content} FOR EACH ROW EXECUTE FUNCTION {copy}_kept()")
    connection.exec_driver_sql(f"CREATE TRIGGER {copy}_au AFTER UPDATE OF id, search_text ON {content} FOR EACH ROW "
                               f"EXECUTE FUNCTION {copy}_kept()")
    _copy_words(connection, copy)


def _copy_words(connection, copy: str) -> None:
    """The GIN index of ``copy``'s words and the table of its distinct words, kept by a trigger
    on the copy. Words of texts since changed or deleted stay listed: they only add a word no
    row holds to a term's list."""
    connection.exec_driver_sql(f"""CREATE OR REPLACE FUNCTION {WORDS_FUNCTION}(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT ARRAY(SELECT DISTINCT CASE WHEN octet_length(w) > {_WORD_BYTES} THEN '{LONG_WORD}' ELSE w END
             FROM unnest(string_to_array(t, ' ')) AS w) $$""")
    words = words_table(copy)
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {words}")
    connection.exec_driver_sql(f"CREATE TABLE {words} (word text PRIMARY KEY)")
    listed = f"unnest({WORDS_FUNCTION}({{text}})) AS w WHERE w <> '{LONG_WORD}'"
    connection.exec_driver_sql(f"INSERT INTO {words} (word) SELECT DISTINCT w FROM {copy}, {listed.format(text='search_text')}")
    connection.exec_driver_sql(f"""CREATE OR REPLACE FUNCTION {words}_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {words} (word) SELECT w FROM {listed.format(text='NEW.search_text')} ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$""")
    connection.exec_driver_sql(f"CREATE TRIGGER {copy}_words AFTER INSERT OR UPDATE OF search_text ON {copy} FOR EACH ROW "
                               f"EXECUTE FUNCTION {words}_kept()")
    connection.exec_driver_sql(f"CREATE INDEX {words_index_name(copy)} ON {copy} USING gin ({WORDS_FUNCTION}(search_text))")
    if connection.exec_driver_sql(f"SELECT 1 FROM pg_extension WHERE extname = '{TRIGRAM_EXTENSION}'").first():
        _index_words(connection, copy)
    connection.exec_driver_sql(f"ANALYZE {words}")


def _index_words(connection, copy: str) -> None:
    """A term's words are found by its trigrams (pg_trgm; without it, by reading every word)."""
    connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {words_table(copy)}_trgm ON {words_table(copy)} "
                               "USING gin (word gin_trgm_ops)")


def drop_postgresql(connection) -> None:
    """Remove the trigram indexes, the copies with their triggers and the grams (migration 0007's
    downgrade; a test's or benchmark's reset, after the models' tables are gone)."""
    for content in INDEXED:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {trigram_index_name(content)}")
    for copy in COPIED.values():
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {copy}")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {copy}_kept() CASCADE")  # and its triggers
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {words_table(copy)}")
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {words_table(copy)}_kept() CASCADE")
    connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {WORDS_FUNCTION}(text)")
    for content in SHORT_GRAMS:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {grams_index_name(content)}")
        if connection.exec_driver_sql(f"SELECT to_regclass('{content}')").scalar() is not None:  # gone after drop_all
            connection.exec_driver_sql(f"ALTER TABLE {content} DROP COLUMN IF EXISTS {GRAMS_COLUMN}")
    connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {GRAMS_FUNCTION}(text)")
