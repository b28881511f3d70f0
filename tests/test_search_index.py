"""Free text through full-text indexes (text_index.py), kept in step by every writer; the
fallbacks when an engine cannot have them; cursors; migration 0007 on a database with data."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time

import pytest
from factories import POSTGRES_URL, make_lora, migrate_to, reset_postgres
from sqlalchemy import event, func, select, text, update

from lib_lora_manager import query, text_index
from lib_lora_manager.db import SCHEMA_REVISION, Database, sqlite_url
from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.history import GenerationRecord
from lib_lora_manager.library import Library
from lib_lora_manager.lora_query import LORAS
from lib_lora_manager.models import Generation, Lora

PROBES = ("style", "anime", "ani", "blue hair", "keepme", "sparkle", "café", "ミク", "zzz", "xl", "e_s", "100%")


def live_texts(library) -> dict[int, str]:
    with library.store.db.read() as session:
        return dict(session.execute(select(Lora.id, Lora.search_text).where(Lora.trashed_at.is_(None))).all())


def assert_in_step(library, probes=PROBES) -> None:
    """The full-text index holds exactly what the rows hold (SQLite: the FTS table's text is the
    rows' text, and FTS5's own check finds its index true to it), and every probe finds exactly
    the rows whose text contains it."""
    db = library.store.db
    if db.is_sqlite and text_index.sqlite_has_trigram():
        with db.engine.begin() as conn:
            for content, fts in text_index.INDEXED.items():
                conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('integrity-check')")
                copy = conn.exec_driver_sql(f"SELECT rowid, search_text FROM {fts} ORDER BY rowid").all()
                assert copy == conn.exec_driver_sql(f"SELECT id, search_text || char({ord(text_index.END)}) "
                                                    f"FROM {content} ORDER BY id").all()
    if not db.is_sqlite:  # PostgreSQL's narrow copies of the text hold what the rows hold
        with db.engine.connect() as conn:
            for content, copy in text_index.COPIED.items():
                assert conn.exec_driver_sql(f"SELECT id, search_text FROM {copy} ORDER BY id").all() == \
                    conn.exec_driver_sql(f"SELECT id, search_text FROM {content} ORDER BY id").all()
    texts = live_texts(library)
    for probe in probes:
        term = f'"{probe}"' if " " in probe else probe  # one term (no probe holds both)
        expected = sorted(i for i, t in texts.items() if probe.lower() in t)
        assert sorted(library.ids(term)) == expected, probe
        assert sorted(library.ids(f"-{term}")) == sorted(set(texts) - set(expected)), probe
    with db.read() as session:
        prompts = dict(session.execute(select(Generation.id, Generation.search_text)).all())
    for probe in ("castle", "blurry", "cas", "ng", "zzz", "castle blurry"):
        db.totals.clear()
        found = library.history.search(probe, per_page=200)
        expected = sorted(i for i, t in prompts.items() if all(word in t for word in probe.split()))
        assert sorted(g.id for g in found.items) == expected and found.total == len(expected), probe


def record(library, prompt: str, negative: str = "blurry") -> int:
    return library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt=prompt,
                                                   negative_prompt=negative))


def test_every_kind_of_write_keeps_free_text_in_step(library, lora_dir):
    # scanner inserts
    make_lora(lora_dir / "styles", "anime_style", seed=1)
    make_lora(lora_dir, "Café ✨sparkle✨ XL", seed=2)
    make_lora(lora_dir, "blue hair helper", seed=3)
    make_lora(lora_dir, "plain", seed=4)
    library.indexer.scan()
    assert_in_step(library)
    ids = {i.filename: i.id for i in library.search("", per_page=50).items}
    plain = ids["plain.safetensors"]
    # edits: names, notes, trigger words, tags (the row's text is recomputed in the same transaction)
    library.edit(plain, display_name="初音ミク Style", notes="100% keepme", trigger_words=["e_s"], tags=["anime"])
    assert library.ids("keepme") == [plain]
    assert_in_step(library)
    # bulk tag edits
    library.add_tags("style", ["keepme tag"])
    library.remove_tags([plain], ["anime"])
    library.merge_tags(["keepme tag"], "merged keepme")
    assert_in_step(library)
    # a scanner update: the file changed on disk
    make_lora(lora_dir, "plain", seed=9)
    library.indexer.scan()
    assert_in_step(library)
    # the trash: rows stay, searches leave them out; and back
    library.files.trash([ids["blue hair helper.safetensors"]])
    assert_in_step(library)
    library.files.undo_trash()
    assert_in_step(library)
    # a merge: a file that vanished turns up under another name (the hash tells), and its row
    # takes over the new one, which is deleted
    library.indexer.hash_pending()
    old = lora_dir / "Café ✨sparkle✨ XL.safetensors"
    library.edit(ids[old.name], notes="sparkle keepme twin")
    shutil.copy2(old, lora_dir / "renamed twin.safetensors")
    old.unlink()
    library.indexer.scan()
    library.indexer.hash_pending()
    assert library.ids("renamed twin") == [ids[old.name]]  # the old row holds the new file's name
    assert_in_step(library)
    # history: recorded, then deleted
    first = record(library, "a castle at night, anime")
    record(library, "Castle Ruins", negative="lowres, ng")
    assert_in_step(library)
    library.history.delete(first)
    assert_in_step(library)


def test_a_rolled_back_write_leaves_the_index_as_it_was(library, lora_dir):
    make_lora(lora_dir, "anime_style", seed=1)
    library.indexer.scan()
    (lora_id,) = library.ids("")

    class Abort(Exception):
        pass

    def change_then_fail(session):
        session.execute(update(Lora).where(Lora.id == lora_id).values(search_text="zzz only"))
        session.execute(Generation.__table__.insert().values(started_at=1.0, status="succeeded", prompt="castle",
                                                             negative_prompt="", search_text="castle\n"))
        assert library.ids("zzz") == []  # another connection: nothing committed yet
        raise Abort

    with pytest.raises(Abort):
        library.store.db.transaction(change_then_fail)
    assert library.ids("anime") == [lora_id] and library.ids("zzz") == []
    assert library.history.search("castle").total == 0
    assert_in_step(library)


def test_short_terms_and_odd_characters_match_as_substrings(library, lora_dir):
    for n, name in enumerate(("xl_style", "a_b 100%", 'quote"d name', "UPPER Case", "ab")):
        make_lora(lora_dir, name, seed=n)
    library.indexer.scan()
    assert_in_step(library, ("xl", "x", "_", "%", "a_b", "100%", 'e"d', "upper c", "e c", "ab", "b 1"))
    assert library.search('quote"d').total == 1  # a quote inside a word is a character like any other
    # two characters at either end of a text (SQLite: the last two begin no trigram of the text
    # itself), and a text of two characters
    library.edit(library.ids("ab")[0], notes="zq")
    texts = live_texts(library).values()
    ends = {t[:2] for t in texts} | {t[-2:] for t in texts}
    assert_in_step(library, tuple(p for p in ends if p.strip() == p and '"' not in p))


def test_sqlite_without_fts5_falls_back_and_catches_up(tmp_path, lora_dir, monkeypatch, caplog):
    """An SQLite without FTS5 (an older Python) drops the triggers it could not run, reads every
    row for free text, and the index is rebuilt when an engine with FTS5 opens the file again."""
    if not text_index.sqlite_has_trigram():
        pytest.skip("this SQLite has no FTS5 trigram tokenizer: every run is the fallback")
    data = tmp_path / "data"
    make_lora(lora_dir, "anime_style", seed=1)
    library = Library.open(str(data), roots=[str(lora_dir)])
    library.indexer.scan()
    library.close()

    monkeypatch.setattr(text_index, "sqlite_has_trigram", lambda: False)
    with caplog.at_level(logging.WARNING, logger="lora_manager"):
        library = Library.open(str(data), roots=[str(lora_dir)])
    assert "no FTS5" in caplog.text
    with library.store.db.engine.connect() as conn:
        assert text_index.in_step(conn)  # in step for this engine: nothing it cannot run
        triggers = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    # the full-text triggers are gone; those keeping the copies of each hash and marking the
    # history's hours need no FTS5
    assert sorted(t for t in triggers if not t.startswith("history_hours_")) == [
        "loras_hash_copies_ad", "loras_hash_copies_ai", "loras_hash_copies_au"]
    parsed = text_index.match(Lora.id, Lora.search_text, "anime")
    assert "MATCH" not in str(select(Lora.id).where(parsed).compile(library.store.db.engine))
    make_lora(lora_dir, "castle_keepme", seed=2)  # written while the index cannot follow
    library.indexer.scan()
    library.edit(library.ids("anime")[0], notes="keepme too")
    record(library, "castle keepme")
    assert_in_step(library)
    library.close()

    monkeypatch.undo()
    library = Library.open(str(data), roots=[str(lora_dir)])
    try:
        with library.store.db.engine.connect() as conn:
            assert text_index.in_step(conn)
        assert sorted(library.ids("keepme")) == sorted(live_texts(library))
        assert_in_step(library)  # integrity-check included: the index was rebuilt
    finally:
        library.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="LORA_MANAGER_TEST_POSTGRES_URL is not set")
def test_postgresql_without_pg_trgm_reads_every_row(tmp_path, lora_dir, monkeypatch, caplog):
    """The extension refused (here: one that does not exist): the LIKE scans, with the same answers."""
    reset_postgres(POSTGRES_URL)
    engine = Database(POSTGRES_URL).engine
    monkeypatch.setattr(text_index, "TRIGRAM_EXTENSION", "lora_manager_no_such_extension")
    with caplog.at_level(logging.WARNING, logger="lora_manager"):
        library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=POSTGRES_URL)
    try:
        assert "no trigram index" in caplog.text
        with engine.connect() as conn:
            assert not text_index.in_step(conn)
        for n, name in enumerate(("anime_style", "blue hair", "xl")):
            make_lora(lora_dir, name, seed=n)
        library.indexer.scan()
        record(library, "a castle")
        assert_in_step(library)
    finally:
        library.close()
        engine.dispose()


def test_postgresql_gets_trigram_indexes(postgres_url, tmp_path):
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    try:
        with library.store.db.engine.connect() as conn:
            assert text_index.in_step(conn)
            indexes = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%trgm' "
                                            "OR indexname LIKE '%grams'")).scalars())
        # the history's is on its narrow copy of the text, and on its words; the LoRAs' short terms
        # have their grams'
        assert indexes == {"ix_loras_search_text_trgm", "ix_generations_text_search_text_trgm", "ix_loras_search_grams",
                           "generations_text_words_trgm"}
    finally:
        library.close()


def test_postgresql_copies_the_history_text_into_an_older_database(postgres_url, tmp_path):
    """A database indexed before the copy (trigram index on generations itself) gets the copy,
    filled with the rows there, at its next open; the old index goes, and the copy follows every
    write from then on. A reset (the models' drop_all) leaves nothing of it behind."""
    reset_postgres(postgres_url)
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    kept = record(library, "old castle", negative="old lowres")
    library.close()
    engine = Database(postgres_url).engine
    with engine.begin() as conn:  # as the previous version left it
        for copy in text_index.COPIED.values():
            conn.exec_driver_sql(f"DROP FUNCTION {copy}_kept() CASCADE")
            conn.exec_driver_sql(f"DROP TABLE {copy}")
        conn.exec_driver_sql("CREATE INDEX ix_generations_search_text_trgm ON generations USING gin (search_text gin_trgm_ops)")
        assert not text_index.in_step(conn)
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    try:
        with engine.connect() as conn:
            assert text_index.in_step(conn)
            assert not conn.exec_driver_sql("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_generations_search_text_trgm'").all()
        assert [g.id for g in library.history.search("castle").items] == [kept]
        newer = record(library, "new castle")
        assert_in_step(library)
        assert library.history.search("castle").total == 2 and library.history.search("-castle -old").total == 0
        library.history.delete(newer)
        assert_in_step(library)
    finally:
        library.close()
    reset_postgres(postgres_url)
    with engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").scalars().all()
        assert left == []
    engine.dispose()


def test_postgresql_counts_sets_of_ids_in_their_indexes(postgres_url, tmp_path, lora_dir):
    """folder: and hashed: are counted (and their negations' sets listed) by index-only scans:
    their indexes carry trashed_at and the id, and folder: is one range of its index."""
    for n, folder in enumerate(("styles", "styles/sub", "styles 2", "other")):
        make_lora(lora_dir / folder, f"f{n}", seed=n)
    library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=postgres_url)
    try:
        library.indexer.scan()
        with library.store.db.engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_bitmapscan = off")  # what a large library's statistics choose
            for q, index in (("folder:styles", "ix_loras_folder"), ("-folder:styles", "ix_loras_folder"),
                             ("hashed:no", "ix_loras_unhashed")):
                parsed = query.parse(q, LORAS)
                stmt = select(func.count(Lora.id)).where(Lora.trashed_at.is_(None), *parsed.where())
                compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
                assert f"Index Only Scan using {index}" in plan, (q, plan)
        assert sorted(i.folder for i in library.search("folder:styles").items) == ["styles", "styles/sub"]
    finally:
        library.close()


def short_term_sql(library, term: str) -> str:
    return str(select(Lora.id).where(query.parse(term, LORAS).where()[0]).compile(library.store.db.engine))


def test_postgresql_looks_short_terms_up_in_the_grams_and_keeps_them(postgres_url, tmp_path, lora_dir):
    """A term of one or two characters, which no trigram serves, is looked up in the stored
    grams of the text (their GIN index): the same rows as the LIKE, kept by every write, and
    made again by the next open when they went missing."""
    for n, name in enumerate(("xl_style", "Café ミク", "a_b 100%", "plain")):
        make_lora(lora_dir, name, seed=n)
    library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=postgres_url)
    try:
        library.indexer.scan()
        assert "search_grams @>" in short_term_sql(library, "xl") and "LIKE" not in short_term_sql(library, "xl")
        assert "search_grams" not in short_term_sql(library, "xls")  # three characters: the trigrams
        probes = ("xl", "x", "ミク", "é", "_", "%", "0%", "a_", "b ", "zz")
        assert_in_step(library, probes)
        plain = library.ids("plain")[0]
        assert plain not in library.ids("xl")
        library.edit(plain, display_name="Now XL")  # the column follows the row's text
        assert plain in library.ids("xl")
        assert_in_step(library, probes)
        with library.store.db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP INDEX {text_index.grams_index_name('loras')}")
            assert not text_index.in_step(conn)
    finally:
        library.close()
    library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=postgres_url)
    try:
        with library.store.db.engine.connect() as conn:
            assert text_index.in_step(conn)
        assert "search_grams @>" in short_term_sql(library, "xl")
        assert_in_step(library, probes)
    finally:
        library.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="LORA_MANAGER_TEST_POSTGRES_URL is not set")
def test_postgresql_without_grams_reads_short_terms_with_like(tmp_path, lora_dir, monkeypatch, caplog):
    """The grams refused (here: a function PostgreSQL cannot create): short terms are the LIKE,
    with the same answers, and nothing else is lost."""
    reset_postgres(POSTGRES_URL)
    with Database(POSTGRES_URL).engine.begin() as conn:  # left by an earlier test's database
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {text_index.GRAMS_FUNCTION}(text)")
    monkeypatch.setattr(text_index, "_GRAMS_SQL", "CREATE FUNCTION lora_manager_broken() RETURNS no_such_type "
                                                  "LANGUAGE sql AS $$ SELECT 1 $$")
    for n, name in enumerate(("xl_style", "blue hair", "plain")):
        make_lora(lora_dir, name, seed=n)
    with caplog.at_level(logging.WARNING, logger="lora_manager"):
        library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=POSTGRES_URL)
    try:
        assert "one or two characters" in caplog.text and "no trigram index" not in caplog.text
        library.indexer.scan()
        assert "LIKE" in short_term_sql(library, "xl") and "search_grams" not in short_term_sql(library, "xl")
        assert_in_step(library, ("xl", "x", "e ", "zz", "blue"))
    finally:
        library.close()


# --- cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("few", [5000, 0])  # PostgreSQL: a descending nullable sort in one query, and in two
def test_cursor_pages_are_the_offset_pages(library, lora_dir, monkeypatch, few):
    monkeypatch.setattr(query, "_FEW_MATCHES", few)
    for i in range(13):
        make_lora(lora_dir / ("a" if i % 3 else "b"), f"walk{i:02d}", seed=i)
    library.indexer.scan()
    ids = library.ids("sort:name")
    for n, lora_id in enumerate(ids[:7]):  # ratings with ties and gaps; uses for half
        library.edit(lora_id, rating=1 + n % 3, display_name="same name" if n < 4 else None)
    library.set_favorite(ids[::2], True)
    for n in range(5):
        record(library, f"<lora:walk{n:02d}:1> castle")
    library.files.trash([ids[-1]])
    for q in ("", "sort:-name", "sort:rating", "sort:-rating", "sort:used", "sort:-uses", "sort:size", "walk",
              "-walk03 sort:-added", "fav:yes sort:modified", "folder:a sort:-rating", "rating:none",
              # nulls last in descending order too (PostgreSQL walks the rows with a value, then the rest)
              "sort:-used", "rating:none sort:-rating", "rating:>=2 sort:-rating", "walk sort:-used"):
        offset = [library.search(q, page=n, per_page=3) for n in range(1, 6)]
        cursor_pages, cursor = [offset[0]], offset[0].next
        while cursor:
            cursor_pages.append(library.search(q, per_page=3, after=cursor))
            cursor = cursor_pages[-1].next
        expected = [[i.id for i in p.items] for p in offset if p.items]
        assert [[i.id for i in p.items] for p in cursor_pages] == expected, q
        assert [p.page for p in cursor_pages] == list(range(1, len(expected) + 1)), q
        assert {p.total for p in cursor_pages} == {offset[0].total}, q
    history = [library.history.search("sort:-rating", page=n, per_page=2) for n in (1, 2, 3)]
    following = library.history.search("sort:-rating", per_page=2, after=history[0].next)
    assert [g.id for g in following.items] == [g.id for g in history[1].items] and following.page == 2
    assert history[2].next is None


@pytest.mark.parametrize("few", [5000, 0])
def test_a_page_by_number_starts_where_a_page_found_before_ended(library, lora_dir, monkeypatch, few):
    """A page asked for by number starts at the end of a page found before (same query, sort and
    data), as a cursor page does, and skips only the matches between: the next page skips none.
    A page that skips matches remembers where it starts too: asked for again, it skips none. The
    pages are those found by skipping every match before them, in any order of asking, and after
    an edit that reorders them."""
    monkeypatch.setattr(query, "_FEW_MATCHES", few)
    for i in range(13):
        make_lora(lora_dir / ("a" if i % 3 else "b"), f"walk{i:02d}", seed=i)
    library.indexer.scan()
    ids = library.ids("sort:name")
    for n, lora_id in enumerate(ids[:7]):
        library.edit(lora_id, rating=1 + n % 3, display_name="same name" if n < 4 else None)
    library.set_favorite(ids[::2], True)
    for n in range(5):
        record(library, f"<lora:walk{n:02d}:1> castle")
    library.files.trash([ids[-1]])
    pages: list[tuple[str, tuple]] = []

    def seen(_conn, _cursor, statement, parameters, *_args):
        if "ORDER BY" in statement and "lora_tags" not in statement:
            pages.append((" ".join(statement.split()), parameters))

    def skipped(statement: str, parameters) -> int:  # a page statement's OFFSET
        if "OFFSET" not in statement:
            return 0
        if isinstance(parameters, dict):  # PostgreSQL's named parameters
            return parameters[re.search(r"OFFSET %\((\w+)\)s", statement).group(1)]
        return parameters[-1]

    def skipping(q: str, n: int) -> list[int]:  # remembering nothing: every match before is skipped
        parsed = query.parse(q, LORAS)
        with library.store.db.read() as session:
            return LORAS.page(session, parsed, n, 3).ids

    event.listen(library.store.db.engine, "before_cursor_execute", seen)
    queries = ("", "sort:-name", "sort:rating", "sort:-rating", "sort:-used", "walk", "-walk03 sort:-added",
               "fav:yes sort:modified", "folder:a sort:-rating", "rating:none sort:-rating")
    for q in queries:
        library.store.db.totals.clear()
        for n in (1, 2, 3, 5, 4, 2, 5, 4, 1):
            assert [i.id for i in library.search(q, page=n, per_page=3).items] == skipping(q, n), (q, n)
        library.store.db.totals.clear()
        total = library.search(q, page=1, per_page=3).total
        # the next page, then a page further on (skipping from that one's end), then the same again
        for n, skips in ((2, 0), (4, 2), (4, 0)):
            if total <= (n - 1) * 3:
                continue
            pages.clear()
            found = [i.id for i in library.search(q, page=n, per_page=3).items]
            walked = list(pages)
            assert found == skipping(q, n), (q, n)
            # (PostgreSQL's data version, its snapshot, moves with every transaction of the server,
            # other databases' too: whether an end is still known there is up to them)
            if library.store.db.is_sqlite:
                assert walked and all(skipped(*page) == skips for page in walked), (q, n, walked)
    library.search("sort:rating", page=2, per_page=3)
    library.edit(ids[5], rating=None)  # the data changed: the ends found before are not used
    library.edit(ids[0], rating=3)
    for n in (2, 3, 1, 4):
        assert [i.id for i in library.search("sort:rating", page=n, per_page=3).items] == skipping("sort:rating", n), n


def test_a_page_past_ties_of_the_sort_key_seeks_past_them(library, lora_dir):
    """A cursor page whose position's value many LoRAs share (never used: ``sort:-uses``) reads
    those ties past the position's id, then the rows past the value, each one range of the sort
    index (SQLite seeks the value and id, rather than walking every tie before the id): the
    pages are the offset pages."""
    for i in range(12):
        make_lora(lora_dir, f"tie{i:02d}", seed=i)
    library.indexer.scan()
    for n in range(3):
        record(library, f"<lora:tie{n:02d}:1> castle")
    pages: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: pages.append((statement, parameters))
                 if "ORDER BY" in statement and "lora_tags" not in statement else None)
    for q in ("sort:-uses", "sort:uses", "sort:rating", "sort:-added"):
        library.store.db.totals.clear()
        offset = [library.search(q, page=n, per_page=2) for n in range(1, 8)]
        cursor, followed = offset[0].next, [offset[0]]
        while cursor:
            pages.clear()
            followed.append(library.search(q, per_page=2, after=cursor))
            cursor = followed[-1].next
        assert [[i.id for i in p.items] for p in followed] == [[i.id for i in p.items] for p in offset if p.items], q
    if library.store.db.is_sqlite:
        library.store.db.totals.clear()
        cursor = library.search("sort:-uses", page=3, per_page=2)  # past the used: among the ties
        pages.clear()
        library.search("sort:-uses", per_page=2, after=cursor.next)
        walked = list(pages)
        with library.store.db.engine.connect() as conn:
            plans = [" ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)) for s, p in walked]
        assert any("ix_loras_page_use_count (use_count=? AND id<?)" in plan for plan in plans), plans


def test_a_cursor_is_checked(library, lora_dir):
    for i in range(4):
        make_lora(lora_dir, f"c{i}", seed=i)
    library.indexer.scan()
    cursor = library.search("", per_page=2).next
    with pytest.raises(InvalidInput, match="another search"):
        library.search("sort:-name", per_page=2, after=cursor)
    for bad in ("nonsense", "eyJ4Ijox", cursor[:-3], "x" * 20_000):
        with pytest.raises(InvalidInput, match="after"):
            library.search("", per_page=2, after=bad)
    parsed = query.parse("", LORAS)
    with library.store.db.read() as session:
        found = LORAS.page(session, parsed, 1, 10)
        assert LORAS.next_cursor(parsed, found, session.get(Lora, found.ids[-1])) is None  # the last page


# --- migration 0007 --------------------------------------------------------------------------




@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0007_indexes_a_0006_database_with_data(engine, tmp_path):
    if engine == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
        reset_postgres(POSTGRES_URL)
        with Database(POSTGRES_URL).engine.begin() as conn:  # as a database made before 0007 has it
            conn.exec_driver_sql("DROP EXTENSION IF EXISTS pg_trgm")
        url = POSTGRES_URL
    else:
        url = sqlite_url(tmp_path / "old.db")
    db = Database(url)
    migrate_to(db, "0006")
    with db.engine.begin() as conn:
        for n, words in enumerate(("anime style", "blue hair", "castle keepme")):
            conn.execute(text(
                "INSERT INTO loras (path, root, relpath, folder, filename, stem, sdnext_name, sort_name, format, size, "
                "mtime_ns, mtime, added_at, scanned_at, missing, base_model_detected, base_model_source, adapter_type, "
                "base_model, favorite, nsfw, search_text, updated_at, use_count) VALUES (:path, '/r', :rel, '', :rel, :rel, "
                ":rel, :rel, 'safetensors', 1, 1, 1, 1, 1, false, 'sd1', 'header', 'lora', 'sd1', false, false, :words, 1, 0)"),
                {"path": f"/r/{n}.safetensors", "rel": f"{n}.safetensors", "words": words})
        conn.execute(text("INSERT INTO generations (started_at, status, prompt, negative_prompt, favorite, search_text) "
                          "VALUES (1, 'succeeded', 'Castle', '', false, 'castle\n')"))
    assert db.current_revision() == "0006"
    db.migrate()
    assert db.current_revision() == SCHEMA_REVISION
    with db.engine.connect() as conn:
        assert text_index.in_step(conn)
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=url)
    try:
        assert library.search("keepme").total == 1 and library.search("-style").total == 2
        assert library.history.search("castle").total == 1
        with library.store.db.engine.connect() as conn:
            from sqlalchemy import inspect

            indexes = {i["name"] for i in inspect(conn).get_indexes("loras")}
        assert "ix_loras_page_sort_name" in indexes and "ix_loras_live_sort_name" not in indexes
        assert_in_step(library, ("keepme", "style", "hair", "e k", "le", "me", "ir"))
    finally:
        library.close()


def test_migration_0013_marks_the_end_of_sqlite_full_text(tmp_path):
    """A 0012 database's full-text copies have no end mark (its last two characters begin no
    trigram): 0013 rebuilds them with it, so a two-character term at the end of a text is found."""
    db = Database(sqlite_url(tmp_path / "old.db"))
    migrate_to(db, "0012")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO loras (path, root, relpath, folder, filename, stem, sdnext_name, sort_name, format, size, "
            "mtime_ns, mtime, added_at, scanned_at, missing, base_model_detected, base_model_source, adapter_type, "
            "base_model, favorite, nsfw, search_text, updated_at, use_count) VALUES ('/r/a.safetensors', '/r', "
            "'a.safetensors', '', 'a', 'a', 'a', 'a', 'safetensors', 1, 1, 1, 1, 1, false, 'sd1', 'header', 'lora', "
            "'sd1', false, false, 'sdxl style zq', 1, 0)"))
        conn.exec_driver_sql("DELETE FROM loras_text")  # as revision 0012's triggers wrote it
        conn.exec_driver_sql("INSERT INTO loras_text(rowid, search_text) SELECT id, search_text FROM loras")
    db.migrate()
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=sqlite_url(tmp_path / "old.db"))
    try:
        assert library.search("zq").total == library.search("sd").total == 1
        assert_in_step(library, ("zq", "sd", "q", "style"))
    finally:
        library.close()


# --- copies per hash (dupe:), kept by triggers ------------------------------------------------


def assert_copies_in_step(library) -> set[int]:
    """lora_hash_copies holds, for each hash, how many rows present and not in the trash hold
    it; dupe:yes finds the live rows holding a hash more than one does. Returns those ids."""
    with library.store.db.read() as session:
        kept = dict(session.execute(text("SELECT sha256, copies FROM lora_hash_copies")).all())
        rows = session.execute(select(Lora.id, Lora.sha256, Lora.missing, Lora.trashed_at)).all()
    counted = [r for r in rows if r.sha256 is not None and not r.missing and r.trashed_at is None]
    expected = {h: sum(1 for r in counted if r.sha256 == h) for h in {r.sha256 for r in counted}}
    assert kept == expected
    dupes = {r.id for r in rows if r.trashed_at is None and expected.get(r.sha256, 0) > 1}
    assert set(library.ids("dupe:yes")) == dupes
    assert set(library.ids("dupe:no")) == {r.id for r in rows if r.trashed_at is None} - dupes
    return dupes


def test_every_kind_of_write_keeps_the_copies_of_each_hash_in_step(library, lora_dir):
    original = make_lora(lora_dir / "a", "same")
    for name in ("b/same", "b/copy", "c/copy"):
        (lora_dir / name).parent.mkdir(exist_ok=True)
        shutil.copy(original, lora_dir / f"{name}.safetensors")
    make_lora(lora_dir, "alone", seed=3)
    library.indexer.scan()
    assert assert_copies_in_step(library) == set()  # not hashed yet
    library.indexer.hash_pending()
    four = assert_copies_in_step(library)
    assert len(four) == 4
    library.files.trash(library.ids("folder:c"))
    assert len(assert_copies_in_step(library)) == 3
    library.files.undo_trash()
    assert len(assert_copies_in_step(library)) == 4
    (lora_dir / "b" / "copy.safetensors").unlink()  # missing after a rescan
    library.indexer.scan()
    assert len(assert_copies_in_step(library)) == 4  # three copies counted; the missing row shares their hash
    db = library.store.db
    with db.write() as session:  # a bulk UPDATE and DELETE, as a migration or a tool might write
        session.execute(update(Lora).where(Lora.id.in_(library.ids("folder:a"))).values(sha256="f" * 64))
    assert len(assert_copies_in_step(library)) == 3
    with pytest.raises(RuntimeError), db.write() as session:  # rolled back: the copies too
        session.execute(update(Lora).values(sha256="e" * 64))
        raise RuntimeError
    assert len(assert_copies_in_step(library)) == 3
    with db.write() as session:
        session.execute(text("DELETE FROM lora_tags"))
        session.execute(Lora.__table__.delete().where(Lora.id.in_(library.ids("folder:b same"))))
    assert assert_copies_in_step(library) == set()


def test_dupe_is_counted_in_the_hash_index_and_a_walk_tests_each_row(library, lora_dir, monkeypatch):
    """``dupe:`` totals and pages are exact with copies in the trash, missing and unhashed LoRAs
    (a LoRA without a hash has no duplicate); on SQLite counted in the hash index, not by a seek
    per match in the index of live ids, and a walk can test each row it reads (a NOT IN would
    drop those without a hash) instead of listing every duplicate first."""
    monkeypatch.setattr(query, "ROW_COST", 0)  # walks test the rows they read whenever they can
    original = make_lora(lora_dir / "a", "same")
    for name in ("b/same", "b/copy", "c/copy", "d/trashed"):
        (lora_dir / name).parent.mkdir(exist_ok=True)
        shutil.copy(original, lora_dir / f"{name}.safetensors")
    for n in range(4):
        make_lora(lora_dir, f"alone{n}", seed=3 + n)
    library.indexer.scan()
    library.indexer.hash_pending()
    make_lora(lora_dir, "unhashed", seed=20)
    library.indexer.scan()
    (lora_dir / "b" / "copy.safetensors").unlink()
    library.indexer.scan()  # missing, and still sharing the hash
    library.files.trash(library.ids("folder:d"))
    with library.store.db.read() as session:
        rows = session.execute(select(Lora.id, Lora.sha256).where(Lora.trashed_at.is_(None))).all()
    copies = {sha for sha in {r.sha256 for r in rows} if sha and sum(r.sha256 == sha for r in rows) > 1}
    dupes = {r.id for r in rows if r.sha256 in copies}
    assert len(dupes) == 4 and any(r.sha256 is None for r in rows)
    statements: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((" ".join(statement.split()), parameters)))
    for q, expected in (("dupe:yes", dupes), ("dupe:no", {r.id for r in rows} - dupes), ("-dupe:yes", {r.id for r in rows} - dupes)):
        library.store.db.totals.clear()
        statements.clear()
        found = library.search(q, per_page=2)
        assert found.total == len(expected), q
        paged = [i.id for n in range(1, found.pages + 1) for i in library.search(q, page=n, per_page=2).items]
        assert paged == [i.id for i in library.search(q, per_page=50).items] and set(paged) == expected, q
        assert set(library.ids(q)) == expected, q
        if library.store.db.is_sqlite:
            first = [s for s, _p in statements[:statements.index(next(x for x in statements if "ORDER BY" in x[0])) + 1]]
            assert not any("ix_loras_live" in s for s in first if s.startswith("SELECT count")), first
            if q != "dupe:yes":
                assert not any("NOT IN" in s for s in first), first


def empty_database(engine: str, tmp_path) -> str:
    """The URL of an empty database of ``engine`` (PostgreSQL: the test database, reset)."""
    if engine == "sqlite":
        return sqlite_url(tmp_path / "old.db")
    if not POSTGRES_URL:
        pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0009_counts_the_copies_of_a_0008_database(engine, tmp_path):
    url = empty_database(engine, tmp_path)
    db = Database(url)
    migrate_to(db, "0008")
    with db.engine.begin() as conn:
        for n, (sha256, missing, trashed) in enumerate(
                [("a" * 64, False, None), ("a" * 64, False, None), ("a" * 64, True, None), ("a" * 64, False, 5.0),
                 ("b" * 64, False, None), ("b" * 64, True, None), (None, False, None)]):
            conn.execute(text(
                "INSERT INTO loras (path, root, relpath, folder, filename, stem, sdnext_name, sort_name, format, size, "
                "mtime_ns, mtime, added_at, scanned_at, missing, base_model_detected, base_model_source, adapter_type, "
                "base_model, favorite, nsfw, search_text, updated_at, use_count, sha256, trashed_at) VALUES (:path, '/r', "
                ":rel, '', :rel, :rel, :rel, :rel, 'safetensors', 1, 1, 1, 1, 1, :missing, 'sd1', 'header', 'lora', 'sd1', "
                "false, false, '', 1, 0, :sha256, :trashed)"),
                {"path": f"/r/{n}.safetensors", "rel": f"{n}.safetensors", "missing": missing, "sha256": sha256,
                 "trashed": trashed})
    db.migrate()
    with db.engine.connect() as conn:
        assert dict(conn.execute(text("SELECT sha256, copies FROM lora_hash_copies")).all()) == {"a" * 64: 2, "b" * 64: 1}
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=url)
    try:
        assert len(assert_copies_in_step(library)) == 3  # the two counted and the missing one sharing their hash
        assert library.search("hashed:no").total == 1 and library.search("hashed:yes").total == 5
    finally:
        library.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0011_derives_base_models_and_splits_trigger_words_of_stored_rows(engine, tmp_path):
    url = empty_database(engine, tmp_path)
    db = Database(url)
    migrate_to(db, "0010")
    rows = [  # detected, sidecar, user, effective as 0009 stored it, trigger words
        ("pony", "sdxl", None, "sdxl", '["ryuu", "dragon horns", "ryuu, dragon horns"]'),
        ("illustrious", "sdxl", None, "sdxl", '["(red, blue:1.2)", "a, A"]'), ("sd1", "sdxl", None, "sdxl", '["solo"]'),
        ("pony", "sdxl", "sd1", "sd1", None), ("sdxl", "pony", None, "pony", '["x", "y"]')]
    with db.engine.begin() as conn:
        for n, (detected, sidecar, user, effective, words) in enumerate(rows):
            conn.execute(text(
                "INSERT INTO loras (path, root, relpath, folder, filename, stem, sdnext_name, sort_name, format, size, "
                "mtime_ns, mtime, added_at, scanned_at, missing, base_model_detected, base_model_source, adapter_type, "
                "base_model, base_model_sidecar, base_model_user, favorite, nsfw, search_text, updated_at, use_count, "
                "trigger_words) VALUES (:path, '/r', :rel, '', :rel, :rel, :rel, :rel, 'safetensors', 1, 1, 1, 1, 1, false, "
                ":detected, 'metadata', 'lora', :effective, :sidecar, :user, false, false, '', 1, 0, :words)"),
                {"path": f"/r/{n}.safetensors", "rel": f"{n}.safetensors", "detected": detected, "sidecar": sidecar,
                 "user": user, "effective": effective, "words": words})
    db.migrate()
    with db.engine.connect() as conn:
        got = conn.execute(text("SELECT base_model, trigger_words FROM loras ORDER BY id")).all()
    db.dispose()
    assert [r[0] for r in got] == ["pony", "illustrious", "sdxl", "sd1", "pony"]
    assert [r[1] and json.loads(r[1]) for r in got] == [
        ["ryuu", "dragon horns"], ["(red, blue:1.2)", "a"], ["solo"], None, ["x", "y"]]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0012_brings_a_0011_history_its_search_indexes(engine, tmp_path):
    """A history made at revision 0011 is searched at once after the upgrade: on PostgreSQL the
    text is copied (and followed from then on), the descending sorts have their indexes; model:
    has its index on both."""
    url = empty_database(engine, tmp_path)
    db = Database(url)
    migrate_to(db, "0011")
    if engine == "postgresql":
        with db.engine.begin() as conn:  # 0011's code indexed generations itself
            for copy in text_index.COPIED.values():
                conn.exec_driver_sql(f"DROP TABLE {copy}")
                conn.exec_driver_sql(f"DROP FUNCTION {copy}_kept() CASCADE")  # its index goes with it
            conn.exec_driver_sql("CREATE INDEX ix_generations_search_text_trgm ON generations "
                                 "USING gin (search_text gin_trgm_ops)")
    with db.engine.begin() as conn:
        for n, (prompt, model, rating) in enumerate((("Castle", "DreamShaper_8", 5), ("forest", None, None),
                                                     ("castle keep", "sdxl", 2))):
            conn.execute(text("INSERT INTO generations (started_at, status, prompt, negative_prompt, favorite, search_text, "
                              "model_name, rating) VALUES (:n, 'succeeded', :p, '', false, :t, :m, :r)"),
                         {"n": n, "p": prompt, "t": prompt.lower() + "\n", "m": model, "r": rating})
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=url)
    try:
        assert library.store.db.current_revision() == SCHEMA_REVISION
        history = library.history
        assert history.search("castle").total == 2 and history.search("castle -keep").total == 1
        assert history.search("model:dream").total == 1 and history.search("-model:dream").total == 2
        assert [g.rating for g in history.search("sort:-rating").items] == [5, 2, None]
        record(library, "another castle")
        assert history.search("castle").total == 3
        with library.store.db.engine.connect() as conn:
            from sqlalchemy import inspect

            indexes = {i["name"] for i in inspect(conn).get_indexes("generations")}
            assert "ix_generations_model_name" in indexes
            if engine == "postgresql":
                assert {"ix_generations_page_rating_desc", "ix_generations_page_duration_desc"} <= indexes
                assert "ix_generations_search_text_trgm" not in indexes
                assert text_index.in_step(conn)
        assert_in_step(library, probes=())
    finally:
        library.close()


@pytest.mark.parametrize("q, index, column", [
    ("used:<30d", "ix_loras_page_last_used_at", "last_used_at"), ("rating:>=4", "ix_loras_page_rating", "rating"),
    ("added:>1y base:sd1", "ix_loras_page_added_at", "added_at"), ("uses:>3", "ix_loras_page_use_count", "use_count"),
    ("base:sd1", "ix_loras_base_filters", "base_model=?"),
    ("fav:no base:sd1 -nsfw:yes type:lora", "ix_loras_base_filters", "base_model=? AND adapter_type=? AND favorite=?"),
])
def test_sqlite_counts_a_range_of_a_sort_key_in_that_range_of_its_index(tmp_path, lora_dir, q, index, column):
    """A filter on a sort key's column is one range of that key's page index: counted there,
    SQLite reads the matches' entries, not every LoRA's."""
    make_lora(lora_dir, "one", seed=1)
    library = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)])
    counts: list[tuple[str, tuple]] = []

    def seen(_conn, _cursor, statement, parameters, *_args):
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            counts.append((statement, parameters))

    try:
        library.indexer.scan()
        event.listen(library.store.db.engine, "before_cursor_execute", seen)
        library.search(q)
        (statement, parameters), = counts
        with library.store.db.engine.connect() as conn:
            plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
        assert f"SEARCH loras USING COVERING INDEX {index} ({column}" in plan, plan
    finally:
        library.close()


def test_a_search_without_terms_counts_every_lora_less_those_in_the_trash(library, lora_dir):
    """On SQLite the count of a search without terms reads no entry: every row (counted from the
    table's pages) less the trash (its own index); the total is right on both engines."""
    for n in range(5):
        make_lora(lora_dir, f"l{n}", seed=n)
    library.indexer.scan()
    ids = [i.id for i in library.search("", per_page=50).items]
    library.files.trash(ids[:2])
    statements: list[str] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(" ".join(statement.split())))
    library.store.db.totals.clear()
    assert library.search("").total == 3
    assert library.search("-tag:none-such").total == 3  # all but an empty set: the same count
    if library.store.db.is_sqlite:
        counts = [s for s in statements if s.upper().startswith("SELECT COUNT")]
        assert "SELECT count(*) AS count_1 FROM loras" in counts, counts
        assert not any(s.endswith("WHERE loras.trashed_at IS NULL") for s in counts), counts  # no entry by entry


def test_a_tag_or_a_word_is_counted_in_its_own_index_less_the_trash(library, lora_dir):
    """tag: and free text are counted where they are listed (lora_tags, the full-text table),
    less the LoRAs in the trash that hold them, each tested alone: the totals are exact."""
    for n in range(8):
        make_lora(lora_dir, f"{'style' if n % 2 else 'plain'}_{n}", seed=n)
    library.indexer.scan()
    ids = sorted(i.id for i in library.search("", per_page=50).items)
    library.add_tags(ids[:5], ["anime"])
    library.files.trash([ids[0], ids[1], ids[6]])  # two tagged, one of them and another hold "style"
    statements: list[str] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(" ".join(statement.split())))
    live = set(ids) - {ids[0], ids[1], ids[6]}
    with library.store.db.read() as session:
        texts = dict(session.execute(select(Lora.id, Lora.search_text)).all())
    expected = {"tag:anime": live & set(ids[:5]), "style": {i for i in live if "style" in texts[i]}}
    for q, found in expected.items():
        library.store.db.totals.clear()
        assert library.search(q).total == len(found), q
        assert library.search(f"-{q}").total == len(live - found), q
        assert sorted(library.ids(q)) == sorted(found), q
    if library.store.db.is_sqlite:  # no count took a seek per match in the index of live ids
        assert not any("INDEXED BY ix_loras_live" in s for s in statements if s.upper().startswith("SELECT COUNT")), \
            [s for s in statements if "ix_loras_live" in s]


@pytest.mark.parametrize("text", ["anime style", "anime -style", "-anime -style", "anime style fav:yes",
                                  '"blue hair" anime sort:-name', "anime xl -style", "-anime style sort:size"])
def test_the_words_of_a_library_search_are_looked_up_together(library, lora_dir, text):
    """Free-text words of a library search are one term (SQLite: one full-text expression,
    counted in the full-text table less the trash; at 200,000 LoRAs "anime style" was counted
    through two lists of ids in 54 ms, one expression takes 14): totals, pages that walk testing
    rows and cursor pages hold what a substring test of each LoRA's text says."""
    for n, name in enumerate(("anime_style_a", "anime_b", "style_c", "blue hair anime", "plain_d", "anime style xl",
                              "xl_style", "Anime Styles", "blue_hair", "anime_style_trash", "style_anime")):
        make_lora(lora_dir, name, seed=n)
    library.indexer.scan()
    with library.store.db.read() as session:
        ids = dict(session.execute(select(Lora.stem, Lora.id)).all())
    library.set_favorite([ids["anime_style_a"], ids["anime_b"], ids["plain_d"]])
    library.files.trash([ids["anime_style_trash"]])
    texts = live_texts(library)
    words = [(v.lower(), negated) for _pos, negated, key, v in query._tokens(text) if key is None]
    favorites = {ids["anime_style_a"], ids["anime_b"], ids["plain_d"]}
    expected = {i for i, t in texts.items() if all((v in t) != negated for v, negated in words)
                and ("fav:yes" not in text or i in favorites)}
    statements: list[str] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(statement))
    library.store.db.totals.clear()
    whole = library.search(text, per_page=50)
    assert {i.id for i in whole.items} == expected and whole.total == len(expected), text
    order = [i.id for i in whole.items]
    singles = [library.search(text, page=n, per_page=1) for n in range(1, 5)]
    assert [i.id for p in singles for i in p.items] == order[:4] and {p.total for p in singles} == {len(expected)}
    cursor, followed = None, []
    for _ in range(4):
        found = library.search(text, per_page=1, after=cursor)
        followed += [i.id for i in found.items]
        cursor = found.next
        if cursor is None:
            break
    assert followed == order[:4]
    if library.store.db.is_sqlite and all(len(v) >= text_index.MIN_TERM for v, _negated in words):
        assert not any(s.count("MATCH") > 1 for s in statements), [s for s in statements if "MATCH" in s]


def test_a_folder_is_counted_in_its_index_and_the_smallest_set_is_read_first(library, lora_dir):
    """``folder:`` is counted in the folder index's ranges less the LoRAs in the trash there, each
    tested through the index of the trash (not by reading every row the folder lists); of several
    sets of ids a row must be in, SQLite is given the smallest first (the one it reads; each of its
    ids is seeked in the others). Totals and pages are exact: subfolders in, neighbours out."""
    for n in range(6):
        make_lora(lora_dir / "styles", f"plain{n}", seed=n)
    make_lora(lora_dir / "styles" / "sub", "miku_deep", seed=10)
    make_lora(lora_dir / "styles", "miku_top", seed=11)
    make_lora(lora_dir / "styles 2", "miku_neighbour", seed=12)
    make_lora(lora_dir / "styles", "miku_trashed", seed=13)
    make_lora(lora_dir, "miku_root", seed=14)
    library.indexer.scan()
    library.files.trash(library.ids("miku_trashed"))
    texts = live_texts(library)
    with library.store.db.read() as session:
        folders = dict(session.execute(select(Lora.id, Lora.folder).where(Lora.trashed_at.is_(None))).all())
    inside = {i for i, f in folders.items() if f == "styles" or f.startswith("styles/")}
    statements: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((" ".join(statement.split()), parameters)))
    for q, expected in (("folder:styles", inside), ("-folder:styles", set(texts) - inside),
                        ("folder:styles miku", {i for i in inside if "miku" in texts[i]}),
                        ("miku folder:styles sort:-size", {i for i in inside if "miku" in texts[i]})):
        library.store.db.totals.clear()
        statements.clear()
        found = library.search(q, per_page=50)
        assert {i.id for i in found.items} == expected and found.total == len(expected), q
        assert [i.id for n in (1, 2, 3) for i in library.search(q, page=n, per_page=2).items] == \
            [i.id for i in found.items][:6], q
        if library.store.db.is_sqlite:
            counts = [s for s, _p in statements if s.startswith("SELECT count")]
            pages = [s for s, _p in statements if "ORDER BY" in s and "lora_tags" not in s]
            if "miku" not in q:
                assert not any("ix_loras_live" in s for s in counts), counts
                assert any("INDEXED BY ix_loras_trashed" in s and "folder" in s for s in counts), counts
            else:  # the word's few ids are read, each seeked in the folder's
                both = [s for s in counts + pages if "MATCH" in s and "folder" in s]
                assert both and all(s.index("MATCH") < s.index("loras.folder") for s in both), both


def test_hashed_beside_column_filters_is_counted_in_the_unhashed_index(library, lora_dir):
    """``hashed:`` beside filters on the row's own columns: exact totals on both engines; on
    SQLite counted in the partial index of unhashed LoRAs (which holds those columns), and
    ``hashed:yes`` as the filters' count less those entries, with no row's id tested against
    the set of unhashed LoRAs (at 200,000 LoRAs that test took 60 ms of a 70 ms search)."""
    for n in range(6):
        make_lora(lora_dir, f"old_{n}", seed=n)
    library.indexer.scan()
    library.indexer.hash_pending()
    for n in range(4):  # scanned, not hashed yet
        make_lora(lora_dir, f"new_{n}", seed=10 + n)
    library.indexer.scan()
    with library.store.db.read() as session:
        ids = dict(session.execute(select(Lora.stem, Lora.id)).all())
    library.set_nsfw([ids["old_1"], ids["new_1"]])
    library.files.trash([ids["old_2"], ids["new_2"]])
    (lora_dir / "old_3.safetensors").unlink()
    (lora_dir / "new_3.safetensors").unlink()
    library.indexer.scan()  # both missing now
    with library.store.db.read() as session:
        rows = session.execute(select(Lora.id, Lora.sha256, Lora.missing, Lora.nsfw, Lora.favorite)
                               .where(Lora.trashed_at.is_(None))).all()
    assert sum(r.sha256 is None for r in rows) == 3 and sum(r.sha256 is not None for r in rows) == 5
    tests = {"hashed:yes": lambda r: r.sha256 is not None, "hashed:no": lambda r: r.sha256 is None,
             "missing:no": lambda r: not r.missing, "-nsfw:yes": lambda r: not r.nsfw, "nsfw:yes": lambda r: r.nsfw,
             "fav:no": lambda r: not r.favorite}
    statements: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((statement, parameters)))
    for q in ("hashed:yes missing:no -nsfw:yes sort:-uses", "hashed:no missing:no", "hashed:no nsfw:yes",
              "-hashed:no missing:no fav:no", "hashed:yes nsfw:yes"):
        terms = [t for t in q.split() if not t.startswith("sort:")]
        expected = sorted(r.id for r in rows if all(tests[t.replace("-hashed:no", "hashed:yes")](r) for t in terms))
        library.store.db.totals.clear()
        assert library.search(q).total == len(expected), q
        assert sorted(library.ids(q)) == expected, q
    if library.store.db.is_sqlite:
        statements.clear()
        library.store.db.totals.clear()
        library.search("hashed:yes missing:no -nsfw:yes sort:-uses")
        counts = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT COUNT")]
        with library.store.db.engine.connect() as conn:
            plans = [" ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)) for s, p in counts]
        assert any("COVERING INDEX ix_loras_unhashed_filters" in plan for plan in plans), plans
        assert not any("ix_loras_unhashed " in plan + " " or "LIST SUBQUERY" in plan for plan in plans), plans


def test_hashed_alone_is_counted_in_the_index_of_unhashed_loras(library, lora_dir):
    """``hashed:no`` and ``hashed:yes`` alone: exact totals with unhashed LoRAs in the trash; on
    SQLite counted in the partial index of the unhashed LoRAs less those in the trash (each
    tested through the trash's index), not by a seek in the index of live ids per unhashed LoRA
    (at 200,000 LoRAs 20,000 seeks: 21 to 10 ms of CPU for the first page)."""
    for n in range(4):
        make_lora(lora_dir, f"old_{n}", seed=n)
    library.indexer.scan()
    library.indexer.hash_pending()
    for n in range(3):
        make_lora(lora_dir, f"new_{n}", seed=10 + n)
    library.indexer.scan()
    with library.store.db.read() as session:
        ids = dict(session.execute(select(Lora.stem, Lora.id)).all())
    library.files.trash([ids["old_0"], ids["new_0"]])
    statements: list[str] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(" ".join(statement.split())))
    for q, expected in (("hashed:no", {ids["new_1"], ids["new_2"]}), ("hashed:yes", {ids[f"old_{n}"] for n in (1, 2, 3)}),
                        ("-hashed:no", {ids[f"old_{n}"] for n in (1, 2, 3)})):
        library.store.db.totals.clear()
        statements.clear()
        found = library.search(q)
        assert found.total == len(expected) and {i.id for i in found.items} == expected, q
        if library.store.db.is_sqlite:
            counts = [s for s in statements if s.startswith("SELECT count")]
            assert not any("ix_loras_live" in s for s in counts), counts
            assert any("INDEXED BY ix_loras_unhashed " in s for s in counts), counts


def test_a_negated_tag_beside_column_filters_is_counted_from_the_tag(library, lora_dir):
    """``-tag:x`` beside filters on the row's own columns: exact totals on both engines; on
    SQLite the filters' count less the tag's LoRAs among them, each found by one seek in the
    index of live LoRAs by id (listed from the tag's entries of lora_tags alone), with no entry of
    the filters' count tested against the tag's list (at 200,000 LoRAs that test took a third of
    the search)."""
    for n in range(12):
        make_lora(lora_dir, f"l{n}", seed=n)
    library.indexer.scan()
    ids = sorted(i.id for i in library.search("", per_page=50).items)
    library.add_tags([ids[0], ids[2]], ["anime"])  # a small part of the library: counted from the tag
    library.set_favorite([ids[0], ids[5]])
    library.set_nsfw([ids[1], ids[6]])
    library.files.trash([ids[2], ids[7]])
    with library.store.db.read() as session:
        rows = session.execute(select(Lora.id, Lora.favorite, Lora.nsfw).where(Lora.trashed_at.is_(None))).all()
    tagged = {ids[0], ids[2]}
    statements: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((statement, parameters)))
    for q, test in (("-tag:anime fav:no", lambda r: not r.favorite), ("-tag:anime fav:no -nsfw:yes", lambda r: not r.favorite
                     and not r.nsfw), ("-tag:anime nsfw:yes", lambda r: r.nsfw), ("-tag:none-such fav:yes", lambda r: r.favorite)):
        expected = sorted(r.id for r in rows if test(r) and (r.id not in tagged or "none-such" in q))
        library.store.db.totals.clear()
        statements.clear()
        assert library.search(q).total == len(expected), q
        assert sorted(library.ids(q)) == expected, q
    if library.store.db.is_sqlite:
        statements.clear()
        library.store.db.totals.clear()
        library.search("-tag:anime fav:no -nsfw:yes")
        counts = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT COUNT")]
        with library.store.db.engine.connect() as conn:
            plans = [" ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)) for s, p in counts]
        assert any("SEARCH loras USING COVERING INDEX ix_loras_live_filters (trashed_at=? AND id=?" in plan
                   and "COVERING INDEX ix_lora_tags_tag_id_lora_id" in plan for plan in plans), plans
        scans = [plan for plan in plans if "SCAN loras" in plan]
        assert scans and not any("SUBQUERY" in plan for plan in scans), plans  # no entry tested against the tag


def _insert_old_loras(db: Database, rows: list[dict]) -> None:
    """LoRA rows written by SQL into a database at an older migration (the models describe the
    newest): file ``/r/N.safetensors`` for the Nth, each column ``rows`` does not give a default."""
    with db.engine.begin() as conn:
        for n, given in enumerate(rows):
            rel = f"{n}.safetensors"
            row = {"path": f"/r/{rel}", "root": "/r", "relpath": rel, "folder": "", "filename": rel, "stem": rel,
                   "sdnext_name": rel, "sort_name": rel, "format": "safetensors", "size": 1, "mtime_ns": 1, "mtime": 1,
                   "added_at": 1, "scanned_at": 1, "missing": False, "base_model_detected": "sd1",
                   "base_model_source": "header", "adapter_type": "lora", "base_model": "sd1", "favorite": False,
                   "nsfw": False, "search_text": rel, "updated_at": 1, "use_count": 0, **given}
            if "base_model" in given:
                row["base_model_detected"] = given["base_model"]
            conn.execute(text(f"INSERT INTO loras ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"), row)


def test_migration_0024_indexes_the_base_models_of_a_0023_database(tmp_path):
    """A 0023 SQLite database gets the index of live LoRAs by base model, type and favourite,
    which lists every live LoRA and counts ``base:`` beside ``type:`` and ``fav:`` exactly."""
    url = sqlite_url(tmp_path / "old.db")
    db = Database(url)
    migrate_to(db, "0023")
    _insert_old_loras(db, [{"base_model": "sd1" if n % 3 else "sdxl", "adapter_type": "lora" if n < 4 else "loha",
                            "favorite": n == 1, "trashed_at": 5.0 if n == 2 else None} for n in range(6)])
    db.migrate()
    assert db.current_revision() == SCHEMA_REVISION
    with db.engine.connect() as conn:
        listed = conn.exec_driver_sql("SELECT id FROM loras INDEXED BY ix_loras_base_filters "
                                      "WHERE trashed_at IS NULL ORDER BY id").scalars().all()
        assert listed == conn.exec_driver_sql("SELECT id FROM loras WHERE trashed_at IS NULL ORDER BY id").scalars().all()
        assert len(listed) == 5
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=url)
    try:  # sd1: 1, 2 (trashed), 4, 5; lora: 0-3; favourite: 1
        assert library.search("base:sd1").total == 3
        assert library.search("base:sd1 type:lora fav:no").total == 0
        assert library.search("base:sd1 type:loha").total == 2
        assert library.search("-base:sd1 fav:no").total == 2
    finally:
        library.close()


def test_migration_0016_indexes_the_unhashed_loras_of_a_0014_database(tmp_path):
    """A 0014 SQLite database with hashed and unhashed LoRAs gets the partial index of the
    unhashed ones, which lists them all and counts ``hashed:`` beside other filters exactly."""
    url = sqlite_url(tmp_path / "old.db")
    db = Database(url)
    migrate_to(db, "0014")
    _insert_old_loras(db, [{"missing": n == 4, "sha256": None if n % 2 else f"{n:064x}"} for n in range(5)])
    db.migrate()
    assert db.current_revision() == SCHEMA_REVISION
    with db.engine.connect() as conn:
        listed = conn.exec_driver_sql("SELECT id FROM loras INDEXED BY ix_loras_unhashed_filters "
                                      "WHERE sha256 IS NULL ORDER BY id").scalars().all()
        assert listed == conn.exec_driver_sql("SELECT id FROM loras WHERE sha256 IS NULL ORDER BY id").scalars().all()
        assert len(listed) == 2
    db.dispose()
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=url)
    try:
        assert library.search("hashed:yes missing:no").total == 2  # 0 and 2; 4 is missing
        assert library.search("hashed:no missing:no").total == 2
        assert library.search("-hashed:no missing:yes").total == 1
    finally:
        library.close()


def test_postgresql_counts_history_words_from_their_index_without_reading_the_text(postgres_url, tmp_path):
    """A history term without a space is counted from the GIN index of the copy's words (the
    listed words that hold it): no prompt is tested, where the trigram index only narrows a LIKE
    that then tests every prompt it lists. Totals stay exact for words inside longer words, for
    a word too long to be listed, after a prompt changes and after a generation is deleted; a
    phrase, which can span words, is counted by the LIKE."""
    reset_postgres(postgres_url)
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    long_word = "x" * 150 + "castle" + "y" * 150  # past the listed words' length, in bytes
    try:
        ids = [record(library, prompt) for prompt in (
            "castle, night", "sandcastles at dawn", "(castle:1.2) dragon", "forest", long_word, "neon sunset",
            "neon  sunset")]
        with library.store.db.write() as session:
            session.execute(update(Generation).where(Generation.id == ids[3]).values(search_text="forest castle"))
        library.history.delete(ids[0])
        statements: list[tuple[str, dict]] = []
        event.listen(library.store.db.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, parameters, *_a: statements.append((statement, parameters)))
        with library.store.db.read() as session:
            prompts = dict(session.execute(select(Generation.id, Generation.search_text)).all())
        for q in ("castle", "castle dragon", "-castle", "astl", '"neon sunset"', "sunset", "xxxcastle"):
            words = [w.strip('"') for w in q.lstrip("-").split()] if '"' not in q else [q.strip('"')]
            found = {i for i, t in prompts.items() if all(w in t for w in words)}
            expected = set(prompts) - found if q.startswith("-") else found
            library.store.db.totals.clear()
            result = library.history.search(q, per_page=50)
            assert result.total == len(expected) and {g.id for g in result.items} == expected, q
        assert library.history.search("castle").total == 4  # the long word, the edited prompt, inside words
        statements.clear()
        library.store.db.totals.clear()
        library.history.search("castle")
        counted = [(s, p) for s, p in statements if text_index.WORDS_FUNCTION in s]
        assert counted, statements
        with library.store.db.engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")  # the plan a large table gets, on a small one
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + counted[0][0], counted[0][1]))
        assert f"Bitmap Index Scan on {text_index.words_index_name('generations_text')}" in plan, plan
        assert "Seq Scan on generations_text " not in plan and "search_text_trgm" not in plan, plan
        # a LIKE tests only the texts with a word too long to be listed (found in the index too)
        lines = plan.splitlines()
        likes = [n for n, line in enumerate(lines) if "search_text ~~" in line]
        assert len(likes) == 1 and "Filter" in lines[likes[0]] and '{" long"}' in lines[likes[0] - 1], plan
    finally:
        library.close()
