"""History queries: the shared grammar over generations, on real recorded generations (SQLite,
and PostgreSQL when LORA_MANAGER_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from factories import make_lora
from sqlalchemy import event

from lib_lora_manager import query
from lib_lora_manager.errors import QueryError
from lib_lora_manager.history import GenerationRecord
from lib_lora_manager.history_query import GENERATIONS
from lib_lora_manager.lora_query import LORAS

NOW = time.time()


def day(y: int, m: int, d: int, hour: int = 12, minute: int = 0) -> float:
    return dt.datetime(y, m, d, hour, minute).timestamp()  # local time, as the query reads dates


def rec(prompt: str, started_at: float, **kw) -> GenerationRecord:
    return GenerationRecord(started_at=started_at, status=kw.pop("status", "succeeded"), prompt=prompt,
                            loras=GenerationRecord.loras_from_prompt(prompt), **kw)


@pytest.fixture
def gens(library, lora_dir):
    """Eight generations covering every key; returns {name: id} and the library."""
    make_lora(lora_dir / "styles", "anime_style", seed=1)
    make_lora(lora_dir, "detail", "sdxl", seed=2)
    library.indexer.scan()
    anime = library.find("anime_style").id
    library.edit(anime, display_name="Anime Look")
    ids = {
        "castle": library.history.record(rec(
            "a castle at night <lora:anime_style:0.8>", NOW - 3600, negative_prompt="blurry", model_name="sdxl_base",
            source="txt2img", duration=3.0)),
        "portrait": library.history.record(rec(
            "portrait of a girl <lora:detail:1>", NOW - 10 * 86400, negative_prompt="lowres", model_name="dreamshaper_8",
            model_hash="abcdef1234", status="failed", source="img2img")),
        "forest": library.history.record(rec(
            "a CASTLE in the forest <lora:ANIME_STYLE:0.5> <lora:gone_lora:1>", day(2025, 11, 15), status="interrupted",
            source="api", duration=9.5)),
        "first_day": library.history.record(rec(
            "500 off", day(2025, 11, 1, 0, 30), group="sweep-1", label="0.5", source="lora-manager", duration=1.0)),
        "last_day": library.history.record(rec(
            "50% off", day(2025, 11, 27, 23, 30), group="sweep-1", label="1.0", source="lora-manager", duration=2.0)),
        "after": library.history.record(rec("detailyx", day(2025, 11, 28, 0, 30), status="no_model")),
        "underscore": library.history.record(rec("detail_x", day(2025, 10, 1))),
        "unrated": library.history.record(rec("plain", NOW - 7200)),
    }
    library.history.rate(ids["castle"], 5)
    library.history.rate(ids["forest"], 2)
    library.history.rate(ids["portrait"], 4)
    library.history.set_favorite(ids["castle"], True)
    return ids, library


def found(library, q: str) -> set[int]:
    page = library.history.search(q, per_page=200)
    assert page.total == len(page.items)
    return {item.id for item in page.items}


def names(ids: dict[str, int], *keys: str) -> set[int]:
    return {ids[k] for k in keys}


def test_every_key_and_its_negation(gens):
    ids, library = gens
    every = set(ids.values())
    anime = library.find("anime_style").id
    cases = {
        # free text over prompt and negative prompt, any case; % and _ are literal
        "castle": ("castle", "forest"),
        "blurry": ("castle",),
        '"castle at night"': ("castle",),
        "50%": ("last_day",),
        "detail_x": ("underscore",),
        # lora: recorded name, library names (display name, relative path, id), resolved entries
        "lora:anime_style": ("castle", "forest"),
        'lora:"Anime Look"': ("castle", "forest"),
        "lora:styles/anime_style": ("castle", "forest"),
        f"lora:{anime}": ("castle", "forest"),
        "lora:gone_lora": ("forest",),
        "lora:detail.safetensors": ("portrait",),
        # model name or hash prefix
        "model:dream": ("portrait",),
        "model:ABCDEF": ("portrait",),
        "status:failed": ("portrait",),
        "status:ok": ("castle", "first_day", "last_day", "underscore", "unrated"),
        "status:no_model": ("after",),
        "status:interrupted": ("forest",),
        "source:api": ("forest",),
        "source:lm": ("first_day", "last_day"),
        "group:sweep-1": ("first_day", "last_day"),
        "rating:>=4": ("castle", "portrait"),
        "rating:2..4": ("forest", "portrait"),
        "rating:none": ("first_day", "last_day", "after", "underscore", "unrated"),
        "fav:yes": ("castle",),
        "date:<1d": ("castle", "unrated"),
        "date:>5d": ("portrait", "forest", "first_day", "last_day", "after", "underscore"),
        "date:2025-11-01..2025-11-27": ("first_day", "forest", "last_day"),
        "date:..2025-11-01": ("first_day", "underscore"),
        "date:2025-11-28..": ("after", "castle", "portrait", "unrated"),
        "date:<2025-11-01": ("underscore",),
    }
    for q, expected in cases.items():
        assert found(library, q) == names(ids, *expected), q
        # negation takes exactly the rest: unknown models, sources, groups and ratings included
        assert found(library, f"-{q}") == every - names(ids, *expected), f"-{q}"
    assert found(library, "castle -lora:gone_lora fav:no") == set()
    # a key twice: each its own list of model names
    assert found(library, "model:dream model:ABCDEF") == names(ids, "portrait")
    assert found(library, "-model:dream -model:nothing") == every - names(ids, "portrait")
    assert found(library, "castle -lora:gone_lora") == names(ids, "castle")


def test_sorts(gens):
    ids, library = gens

    def order(q: str) -> list[int]:
        return [i.id for i in library.history.search(q, per_page=200).items]

    newest_first = order("")
    assert newest_first[0] == ids["castle"] and newest_first[-1] == ids["underscore"]
    assert order("sort:date") == list(reversed(newest_first))
    assert order("sort:-rating")[:3] == [ids["castle"], ids["portrait"], ids["forest"]]  # unrated last
    assert order("sort:rating")[:3] == [ids["forest"], ids["portrait"], ids["castle"]]
    durations = order("sort:duration")
    assert durations[:4] == [ids["first_day"], ids["last_day"], ids["castle"], ids["forest"]]
    assert order("sort:-duration")[0] == ids["forest"]
    assert library.history.search("sort:-rating").sort == "-rating"


def test_paging_and_description(gens):
    ids, library = gens
    page = library.history.search("", page=2, per_page=3)
    assert (page.total, page.pages, len(page.items)) == (8, 3, 3)
    assert page.description == "All generations; sorted by date (newest first)."
    described = library.history.search("castle lora:anime_style -status:failed rating:>=4 fav:yes "
                                       "date:2025-11-01..2025-11-27 sort:duration")
    assert described.description == (
        "Generations matching “castle”, using LoRA “anime_style”, not failed, rated 4 or more, favorites, "
        "made from 2025-11-01 to 2025-11-27; sorted by duration (shortest first).")
    item = library.history.search("lora:gone_lora").items[0]
    assert [u.name for u in item.loras] == ["ANIME_STYLE", "gone_lora"]
    assert item.loras[0].lora_id == library.find("anime_style").id and item.loras[1].lora_id is None


@pytest.mark.parametrize("text,message,position", [
    ("castle foo:1", "unknown filter “foo:”", 7),
    ("castle status:exploded", "unknown status “exploded”", 7),
    ("  rating:abc", "use a number", 0),  # the query is trimmed before parsing
    ("x date:2025-13-01..2025-12-01", "not a valid date", 2),
    ("date:2025-11-05..2025-11-01", "ends before it starts", 0),
    ("date:yesterday", "a range like 2026-01-01..2026-01-31", 0),
    ("fav:maybe", "use yes or no", 0),
    ("sort:name", "unknown sort “name” (known: date, rating, duration)", 0),
    ("a -sort:date", "cannot be negated", 2),
    ('castle "unclosed', "unclosed quote", 7),
    ("lora:", "needs a value", 0),
])
def test_bad_queries_say_why_and_where(text, message, position):
    with pytest.raises(QueryError) as info:
        query.parse(text, GENERATIONS)
    assert message in str(info.value)
    assert info.value.position == position


def test_search_refuses_a_bad_query_with_its_position(gens):
    _ids, library = gens
    with pytest.raises(QueryError) as info:
        library.history.search("castle status:maybe")
    assert info.value.position == 7


def test_the_library_keeps_its_own_keys_and_gains_positions_and_day_ranges():
    assert "lora" not in LORAS.filters and "tag" not in GENERATIONS.filters
    with pytest.raises(QueryError) as info:
        query.parse("anime rating:abc", LORAS)
    assert info.value.position == 6
    assert query.parse("added:2025-01-01..2025-01-31", LORAS).describe() == (
        "LoRAs added from 2025-01-01 to 2025-01-31; sorted by name (A to Z).")
    with pytest.raises(QueryError, match="unknown filter “status:”"):
        query.parse("status:failed", LORAS)


WORDS = ("castle", "dragon", "neon", "sunset", "forest", "girl")


@pytest.fixture
def wordy(library):
    """Sixty generations whose prompts draw from six words, so most terms match most rows;
    returns the library and {id: prompt}."""
    prompts = {}
    for n in range(60):
        words = [w for k, w in enumerate(WORDS) if (n >> k) & 1 or n % (k + 2) == 0]
        prompt = " ".join(words) + (" neon sunset" if n % 7 == 0 else "")
        generation = library.history.record(rec(prompt, NOW - n * 60))
        prompts[generation] = prompt
        if n % 5:
            library.history.rate(generation, n % 5)
    return library, prompts


@pytest.mark.parametrize("text", [
    "castle", "-castle", "castle dragon", "castle -dragon", "-castle -dragon", "castle dragon -neon -girl", '"neon sunset" castle',
    "castle ca -dragon", "-castle gi", "castle dragon rating:>=2", "-castle -dragon sort:-rating", "castle castle",
    '-"neon sunset" forest sort:rating'])
def test_several_words_find_the_rows_holding_each_and_none_of_the_negated(wordy, text):
    """Free-text words are looked up together (SQLite: one full-text expression, counted in the
    full-text table); every page, whether it walks the sort index testing rows or reads the
    matches by id, and every cursor page, holds what a substring test of each prompt says."""
    library, prompts = wordy
    terms = [t for t in query._tokens(text) if t[2] is None]
    expected = {i for i, p in prompts.items() if all((v in p) != negated for _pos, negated, _key, v in terms)}
    if "rating:>=2" in text:
        expected = {i for i in expected if library.history.detail(i).rating and library.history.detail(i).rating >= 2}
    whole = library.history.search(text, per_page=200)  # the matches by id
    assert {g.id for g in whole.items} == expected and whole.total == len(expected)
    order = [g.id for g in whole.items]
    singles = [library.history.search(text, page=n, per_page=1) for n in range(1, 6)]  # walks, testing rows
    assert [g.id for p in singles for g in p.items] == order[:5]
    assert {p.total for p in singles} == {len(expected)}
    cursor, followed = None, []
    for _ in range(5):
        found = library.history.search(text, per_page=1, after=cursor)
        followed += [g.id for g in found.items]
        cursor = found.next
    assert followed == order[:5]


def test_free_text_words_become_one_term_of_one_expression():
    from lib_lora_manager import text_index

    parsed = query.parse('castle -dragon ab "neon sunset" status:failed', GENERATIONS)
    merged = text_index.merge(parsed.terms)
    assert [(t.key, t.value, t.negated) for t in merged] == [
        (None, "castle dragon neon sunset", False), (None, "ab", False), ("status", "failed", False)]
    assert text_index.merge(query.parse("castle ab", GENERATIONS).terms)[0].value == "castle"  # one: as it was
    negated = text_index.merge(query.parse("-castle -dragon", GENERATIONS).terms)
    assert len(negated) == 1 and negated[0].negated and negated[0].outside_of() is not None


def test_descending_sorts_keep_unrated_last_through_an_index_on_postgresql(postgres_url, tmp_path):
    """PostgreSQL walks an ascending index backwards as DESC NULLS FIRST: sort:-rating and
    sort:-duration (NULLs last) have indexes of their own order there (migration 0012), so a
    page is read off the index instead of sorting every generation."""
    from factories import reset_postgres
    from sqlalchemy import text

    from lib_lora_manager.library import Library

    reset_postgres(postgres_url)
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    try:
        with library.store.db.engine.connect() as conn:
            conn.exec_driver_sql("SET enable_sort = off")  # the plan a large table gets, on a small one
            for column in ("rating", "duration"):
                plan = "\n".join(conn.execute(text(
                    f"EXPLAIN SELECT id FROM generations ORDER BY {column} DESC NULLS LAST, id DESC LIMIT 48")).scalars())
                assert f"ix_generations_page_{column}_desc" in plan and "Sort" not in plan, plan
    finally:
        library.close()


def test_descending_sorts_with_their_own_index_are_one_walk_on_postgresql(postgres_url, tmp_path, monkeypatch):
    """The history's sort:-rating is one walk of its DESC NULLS LAST index, not the two walks
    (rows with a value, then without) a descending sort of a nullable column gets otherwise;
    either way unrated generations come last."""
    from factories import reset_postgres
    from sqlalchemy import event

    from lib_lora_manager.library import Library

    reset_postgres(postgres_url)
    monkeypatch.setattr(query, "_FEW_MATCHES", 0)  # as many matches as a page is worth walking for
    library = Library.open(str(tmp_path / "data"), roots=[], database_url=postgres_url)
    try:
        for rating in (None, 3, None, 5, 1):
            gid = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="castle"))
            library.history.rate(gid, rating)
        statements: list[str] = []
        event.listen(library.store.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for indexes, walks in ((GENERATIONS.descending_indexes, 0), (frozenset(), 1)):
            monkeypatch.setattr(GENERATIONS, "descending_indexes", indexes)
            statements.clear()
            assert [g.rating for g in library.history.search("sort:-rating").items] == [5, 3, 1, None, None]
            assert sum("NULLS FIRST" in s for s in statements) == walks, statements
    finally:
        library.close()


@pytest.mark.parametrize("q, index, column", [
    ("status:failed", "ix_generations_status", "status"), ("date:<7d", "ix_generations_started_at", "started_at"),
    ("group:sweep-1", "ix_generations_group_key", "group_key"), ("rating:>=4", "ix_generations_page_rating", "rating"),
])
def test_sqlite_counts_and_finds_a_range_of_an_indexed_column_in_that_index(gens, q, index, column):
    """A filter on an indexed column is counted in that range of its index, and a group (a few
    generations) is read by id: at a million generations a scan of any index costs tens of ms."""
    _ids, library = gens
    if not library.store.db.is_sqlite:
        pytest.skip("SQLite is told which index to use; PostgreSQL plans by its statistics")
    statements: list[tuple[str, tuple]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((statement, parameters)))
    library.store.db.totals.clear()
    library.history.search(q)
    with library.store.db.engine.connect() as conn:
        def plan(statement, parameters):
            return " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
        counts = [plan(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT COUNT")]
        pages = [plan(s, p) for s, p in statements if s.lstrip().startswith("SELECT generations.id") and "LIMIT" in s]
    assert len(counts) == 1 and f"SEARCH generations USING COVERING INDEX {index} ({column}" in counts[0], counts
    if q.startswith("group:"):
        assert "SCAN generations" not in pages[0], pages


def test_a_lone_fav_yes_is_counted_in_the_favorites_index(gens):
    """Favorites are few: "fav:yes" alone is counted in their partial index, not in an entry of
    every generation (60 ms at 1,000,000 generations on SQLite, under 1 ms from the index)."""
    ids, library = gens
    statements: list[tuple[str, object]] = []
    event.listen(library.store.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, parameters, *_a: statements.append((statement, parameters)))
    for q in ("fav:yes", "favorite:yes sort:-rating"):
        statements.clear()
        library.store.db.totals.clear()
        page = library.history.search(q)
        assert page.total == 1 and [g.id for g in page.items] == [ids["castle"]]
        counts = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT COUNT")]
        assert len(counts) == 1, counts
        with library.store.db.engine.connect() as conn:
            if library.store.db.is_sqlite:
                plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + counts[0][0], counts[0][1]))
            else:  # the plan a large history gets, on a small one
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + counts[0][0], counts[0][1]))
        assert "ix_generations_favorite" in plan, plan
    assert found(library, "fav:no") == set(ids.values()) - {ids["castle"]}
    assert found(library, "-fav:yes") == set(ids.values()) - {ids["castle"]}
