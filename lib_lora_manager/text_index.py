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
  PostgreSQL 13 but refusable) on ``search_text``; the LIKE stays as it is and uses it. No
  trigram serves a term of one or two characters, so ``loras`` also keeps ``search_grams``, a
  stored generated column of every distinct one- and two-character substring of its text (a
  SQL function computes it when the row is written), under a GIN index: such a term is in the
  text exactly when it is in that array, which the index finds (a count or a few matches) and a
  page's walk of its sort index tests per row as cheaply as a LIKE. A generated column rather
  than an index on the function: the function costs ~70 µs a row, and a planner testing it per
  row while walking an index (which it judges cheap) read pages for seconds.
- Otherwise (and on PostgreSQL for short terms when the column could not be added) the LIKE
  reads the rows: slower, same answers.

``sync`` makes a database's indexes fit the engine that opens it, at every open (after
migrating): an SQLite file indexed by one Python and opened by another without FTS5 loses its
triggers (or every write would fail), and gets them back, rebuilt, when FTS5 is there again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3

from sqlalchemy import Boolean, ColumnElement, Text, bindparam, cast, column, not_, select, table
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from .dbtypes import SafeText, clean_text
from .query import ForEngine, ids_where, like_escape

log = logging.getLogger("lora_manager")

MIN_TERM = 3  # characters: a trigram index cannot look up anything shorter
TRIGRAM_EXTENSION = "pg_trgm"
# content table -> its full-text table (SQLite) and its trigram index (PostgreSQL)
INDEXED = {"loras": "loras_text", "generations": "generations_text"}
_TRIGGERS = ("ai", "ad", "au")  # after insert, delete, update of search_text
# PostgreSQL: content tables whose short terms are looked up in a column of their text's
# one- and two-character substrings (the history's prompts are long: their LIKE stays)
SHORT_GRAMS = ("loras",)
GRAMS_COLUMN = "search_grams"
GRAMS_FUNCTION = "lora_manager_short_grams"
# the dialect attribute naming the content tables whose grams this engine's database has (sync)
_GRAMS_READY = "lora_manager_grams_ready"


def trigram_index_name(content: str) -> str:
    return f"ix_{content}_search_text_trgm"


def grams_index_name(content: str) -> str:
    return f"ix_{content}_{GRAMS_COLUMN}"


def owns(name: str) -> bool:
    """Whether a table, column or index of that name belongs to the full-text indexes (not to
    the models: SQLite's FTS5 keeps shadow tables such as ``loras_text_data``)."""
    return any(name == fts or name.startswith(fts + "_") for fts in INDEXED.values()) or \
        name in {trigram_index_name(content) for content in INDEXED} or \
        name == GRAMS_COLUMN or name in {grams_index_name(content) for content in SHORT_GRAMS}


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
    the LIKE (PostgreSQL's trigram index serves it; a term of one or two characters is looked up
    in the text's grams instead), on SQLite the full-text table's ids."""
    needle = value.lower()
    like = text_column.like(f"%{like_escape(needle)}%", escape="\\")
    short = _short_term(text_column, needle, like) if len(needle) < MIN_TERM else None
    if not sqlite_has_trigram():
        fallback = ids_where(id_column, like)  # one sequential pass, not a row per index entry walked
        return fallback if short is None else ForEngine(short, fallback.sqlite)
    fts = INDEXED[text_column.table.name]
    if len(needle) >= MIN_TERM:
        index = table(fts, column("rowid"), column(text_column.name))
        phrase = '"' + needle.replace('"', '""') + '"'  # one FTS5 phrase: the trigrams in a row
        ids = select(index.c.rowid).where(index.c[text_column.name].op("MATCH")(bindparam(None, phrase, type_=SafeText())))
    else:
        # FTS5 keeps the text in its "_content" table (columns id, c0): scanned directly, it is
        # two and a half times faster than the same LIKE through the virtual table
        copy = table(f"{fts}_content", column("id"), column("c0"))
        ids = select(copy.c.id).where(copy.c.c0.like(bindparam(None, f"%{like_escape(needle)}%", type_=SafeText()),
                                                     escape="\\"))
    found = ForEngine(like if short is None else short, id_column.in_(ids),
                      not_(id_column.in_(select(id_column).where(like))) if short is None else not_(short))
    # a page of a term most rows hold is found sooner by testing the rows its walk reads than by
    # listing every match from the index first (query.Table.page)
    found.row_test = like
    return found


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
        return len(_postgresql_indexes(connection)) == len(INDEXED) + len(SHORT_GRAMS)
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
        connection.exec_driver_sql(f"DELETE FROM {fts}")
        connection.exec_driver_sql(f"INSERT INTO {fts}(rowid, search_text) SELECT id, search_text FROM {content}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {content} BEGIN "
            f"INSERT INTO {fts}(rowid, search_text) VALUES (new.id, new.search_text); END")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {content} BEGIN DELETE FROM {fts} WHERE rowid = old.id; END")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF search_text ON {content} BEGIN "
            f"UPDATE {fts} SET search_text = new.search_text WHERE rowid = old.id; END")


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


def _sync_postgresql(connection) -> None:
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
                connection.exec_driver_sql(f"CREATE INDEX {trigram_index_name(content)} ON {content} "
                                           "USING gin (search_text gin_trgm_ops)")
        savepoint.commit()
    except DBAPIError as e:  # refused (privileges, no contrib package): the LIKE reads every row
        savepoint.rollback()
        log.warning("LoRA Manager: no trigram index for free text (%s); searches read every row",
                    str(e).splitlines()[0])


def drop_postgresql(connection) -> None:
    for content in INDEXED:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {trigram_index_name(content)}")
    for content in SHORT_GRAMS:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {grams_index_name(content)}")
        connection.exec_driver_sql(f"ALTER TABLE {content} DROP COLUMN IF EXISTS {GRAMS_COLUMN}")
    connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {GRAMS_FUNCTION}(text)")
