"""The query language on its own: parsing, descriptions and error messages."""

from __future__ import annotations

import dataclasses
import random

import pytest
from factories import make_lora

from lib_lora_manager import query
from lib_lora_manager.errors import InvalidInput, QueryError
from lib_lora_manager.fields import MAX_PER_PAGE
from lib_lora_manager.lora_query import LORAS
from lib_lora_manager.models import Lora
from lib_lora_manager.vocabulary import Key, QueryHelp


def test_description_reads_like_the_query():
    q = query.parse('anime "blue hair" tag:character -tag:wip base:sdxl rating:>=4 fav:yes added:<30d sort:-rating', LORAS)
    assert q.describe() == (
        "LoRAs matching “anime”, matching “blue hair”, tagged “character”, not tagged “wip”, for SDXL, "
        "rated 4 or more, favorites, added in the last 30 days; sorted by rating (highest first).")
    assert query.parse("", LORAS).describe() == "All LoRAs; sorted by name (A to Z)."


@pytest.mark.parametrize("text,message", [
    ("foo:bar", "unknown filter “foo:”"),
    ("rating:abc", "use a number"),
    ("base:nope", "unknown base model"),
    ('"unclosed', "unclosed quote"),
    ("sort:bogus", "unknown sort"),
    ("-sort:name", "cannot be negated"),
    ("added:yesterday", "use <30d"),
    ("added:>2026-02-31", "not a valid date"),
    ("fav:maybe", "use yes or no"),
    ("type:banana", "unknown type"),
    ("hash:xyz", "hexadecimal"),
    ("tag:", "needs a value"),
])
def test_bad_queries_say_why(text, message):
    with pytest.raises(QueryError) as info:
        query.parse(text, LORAS)
    assert message in str(info.value)


def test_sort_spellings():
    assert query.parse("sort:-rating", LORAS).sort == query.Sort("rating", True)
    assert query.parse("sort:rating-", LORAS).sort == query.Sort("rating", True)
    assert query.parse("sort:date", LORAS).sort == query.Sort("added", False)


def test_arbitrary_text_never_raises_anything_but_query_error():
    rng = random.Random(7)
    alphabet = 'ab:-"<>=.. 0123456789tagbsrtinfvdeu\\%_*\u00e9\u4e2d\x00'
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        try:
            query.parse(text, LORAS).describe()
        except QueryError:
            pass


def _sizes_table(filters, sort_words=None) -> query.Table:
    """A table of its own over the LoRA rows: the same grammar with other keys and words."""
    words = {"size": ("size (smallest first)", "size (largest first)")}
    help = QueryHelp(text="names", keys={"big": Key("bigger than N bytes", ("big:N",), "big:100")},
                     sort_words=words if sort_words is None else sort_words, default_sort="-size",
                     sort_example="sort:size", negated="-big:100")
    return query.Table(noun="files", id_column=Lora.id, free_text=lambda v: (Lora.stem == v, f"named “{v}”"),
                       filters=filters, sorts={"size": Lora.size}, help=help)


def test_a_table_brings_its_own_keys_and_words():
    table = _sizes_table({"big": lambda v: (Lora.size > int(v), f"bigger than {v} bytes")})
    assert query.parse("big:100", table).describe() == "Files bigger than 100 bytes; sorted by size (largest first)."
    with pytest.raises(QueryError, match="unknown filter “tag:” \\(known: big, sort\\)"):
        query.parse("tag:x", table)
    assert "big" not in LORAS.filters


def test_a_table_refuses_keys_its_help_does_not_document():
    def big(v):
        return Lora.size > int(v), "big"

    with pytest.raises(ValueError, match="huge"):
        _sizes_table({"big": big, "huge": big})
    with pytest.raises(ValueError, match="big"):
        _sizes_table({})
    with pytest.raises(ValueError, match="name"):
        _sizes_table({"big": big}, {"size": ("small", "large"), "name": ("A to Z", "Z to A")})


def test_index_walk_and_scan_find_the_same_page(library, lora_dir):
    """Whichever way a page is found (walking the sort index, or scanning and sorting the
    matches), it holds the same ids in the same order, and trashed LoRAs count in neither."""
    for i in range(8):
        make_lora(lora_dir, f"walk{i}", seed=i)
    library.indexer.scan()
    library.set_rating([library.ids(f"walk{i}")[0] for i in (1, 3, 5)], 4)
    library.files.trash(library.ids("walk7"))
    walk = dataclasses.replace(LORAS, index_walk=lambda *facts: True)
    scan = dataclasses.replace(LORAS, index_walk=lambda *facts: False)
    for text, total in (("", 7), ("walk", 7), ("sort:-rating", 7), ("rating:none sort:-name", 4), ("-walk2 sort:size", 6),
                        ("walk1 sort:-size", 1), ("error:no sort:-name", 7), ("nomatch", 0),
                        # one negated set: counted as all rows but the set's (the trashed one in neither)
                        ("-walk7", 7), ("-walk1", 6), ("-hash:0000", 7), ("-error:no", 0), ("dupe:no", 7), ("-dupe:no", 0),
                        # several sets of ids: tested against each other in the index of ids, rows read last
                        ("walk error:no sort:-size", 7), ("walk -walk2 -hash:0000 sort:size", 6), ("alk1 walk", 1),
                        # sets after the row's own columns, whatever their order in the query
                        ("-walk2 rating:none walk sort:-added", 3)):
        parsed = query.parse(text, LORAS)
        with library.store.db.read() as session:
            whole = scan.page(session, parsed, 1, 100)
            assert whole.total == len(whole.ids) == total, text
            for table in (walk, scan, LORAS):
                pages = [table.page(session, parsed, page, 2) for page in (1, 2, 3, 4)]
                assert [p.ids for p in pages] == [whole.ids[i:i + 2] for i in (0, 2, 4, 6)], (text, table.index_walk)
                assert [(p.total, p.page, p.per_page) for p in pages] == [(total, n, 2) for n in (1, 2, 3, 4)]
                cursor_ids, found = [], table.page(session, parsed, 1, 2)  # cursors, either way too
                while True:
                    cursor_ids += found.ids
                    after = table.next_cursor(parsed, found, session.get(Lora, found.ids[-1]) if found.ids else None)
                    if after is None:
                        break
                    found = table.page(session, parsed, 1, 2, after)
                assert cursor_ids == whole.ids, (text, table.index_walk)


def test_page_reads_page_and_per_page_as_search_does(library):
    parsed = query.parse("", LORAS)
    with library.store.db.read() as session:
        assert LORAS.page(session, parsed, "2", str(MAX_PER_PAGE)) == (0, [], 2, MAX_PER_PAGE)
        for per_page in (0, MAX_PER_PAGE + 1, "x"):  # refused as REST refuses them, never clamped
            with pytest.raises(InvalidInput, match="per_page"):
                LORAS.page(session, parsed, 1, per_page)
        with pytest.raises(InvalidInput, match="page must be between"):
            LORAS.page(session, parsed, 0, 10)


def test_folder_is_the_folder_and_what_is_under_it_whatever_its_characters(library, lora_dir):
    """folder:x is a range of the folder index (x/ up to x0): no character of x is a pattern,
    case counts as in every other comparison of paths, and names that are not UTF-8 (surrogate
    escapes, stored as stand-ins) or end in the last code point are bounded as stored."""
    folders = ["50%", "50x", "50%/deep", "a_b", "axb", "ünï", "ünïx", "ünï/deep/er", "Styles/sub", "styles",
               "z\U0010ffff", "z\U0010ffff/in", "z\U0010ffffa", "caf\udce9", "caf\udce9/sub", "caf\udce9x",
               # between the folder and what is under it in the index's order: PostgreSQL's range holds them
               "50% old", "50%-x/deep", "50%.", "ünï !"]
    for n, folder in enumerate(folders):
        make_lora(lora_dir / folder, f"f{n:02d}", seed=n)
    library.indexer.scan()

    def found(folder: str) -> set[str]:
        return {folders[int(path.rsplit("/", 1)[-1][1:3])] for path in
                (item.relpath for item in library.search(f'folder:"{folder}"', per_page=100).items)}

    assert found("50%") == {"50%", "50%/deep"}
    assert found("a_b") == {"a_b"}
    assert found("ünï") == {"ünï", "ünï/deep/er"}
    assert found("ünï/deep") == {"ünï/deep/er"}
    assert found("styles") == {"styles"} and found("Styles") == {"Styles/sub"}
    assert found("z\U0010ffff") == {"z\U0010ffff", "z\U0010ffff/in"}
    assert found("caf\udce9") == {"caf\udce9", "caf\udce9/sub"}
    assert len(library.ids('-folder:"50%"')) == len(folders) - 2
    assert found("50% old") == {"50% old"} and found("50%-x") == {"50%-x/deep"}


def test_the_next_prefix_skips_surrogates_and_the_last_code_point():
    assert query.after_prefix("a/") == "a0"
    assert query.after_prefix("ab\U0010ffff\U0010ffff") == "ac"
    assert query.after_prefix("\U0010ffff") is None
    assert query.after_prefix("x\ud7ff") == "x\ue000"
    assert query.after_prefix("%_\\") == "%_]"


def test_terms_are_tested_columns_first_and_sets_of_ids_last():
    parsed = query.parse("-tag:anime style base:sd1 folder:x fav:no sort:-added", LORAS)
    assert [t.key for t in parsed.tests()] == ["base", "fav", "tag", None, "folder"]
    assert parsed.where() == [t.clause for t in parsed.tests()]
    assert [t.key for t in parsed.terms] == ["tag", None, "base", "folder", "fav"]  # as written, for its words


def test_few_matches_of_id_sets_are_read_by_id_and_many_walk_the_index():
    few_tags, text = query.parse("tag:x", LORAS), query.parse("rating:5", LORAS)
    assert not query.walk_unless_few(few_tags, 1, 48, 100, lambda: 50_000)
    assert query.walk_unless_few(few_tags, 1, 48, 3000, lambda: 50_000)  # the page is found after 800 entries
    assert query.walk_unless_few(few_tags, 1, 48, 6000, lambda: 10**9)
    assert query.walk_unless_few(text, 1, 48, 10, lambda: 50_000)  # tested on the index entries themselves


def test_a_term_most_rows_hold_finds_the_same_pages_by_testing_rows(library, lora_dir):
    """When most rows match, a page walks the sort index testing each row's text rather than
    listing the full-text index's matches first: the same ids, offset pages and cursors alike."""
    for i in range(24):
        make_lora(lora_dir, f"walk{i:02d}" if i % 8 else f"other{i:02d}", seed=i)
    library.indexer.scan()
    for text in ("walk", "walk sort:-size", "alk0 sort:-added", "wa"):
        whole = [item.id for item in library.search(text, per_page=100).items]  # few pages' worth: the id sets
        assert len(whole) > 6, text
        singles = [library.search(text, page=n, per_page=1).items for n in (1, 2, 3)]  # 1 and 2 test the rows
        assert [i.id for items in singles for i in items] == whole[:3], text
        cursor, followed = None, []
        for _ in range(3):
            found = library.search(text, per_page=1, after=cursor)
            followed += [i.id for i in found.items]
            cursor = found.next
        assert followed == whole[:3], text


def test_postgresql_walks_a_descending_nullable_sort_in_two_parts(library, lora_dir, monkeypatch):
    """On PostgreSQL a descending sort on a column that may be NULL is asked for as the rows
    with a value (DESC NULLS FIRST: the index walked backwards) and then those without, never as
    DESC NULLS LAST, which its indexes cannot give in order (every match would be sorted)."""
    from sqlalchemy import event

    if library.store.db.is_sqlite:
        pytest.skip("SQLite walks its index for NULLS LAST in either direction")
    for i in range(5):
        make_lora(lora_dir, f"part{i}", seed=i)
    library.indexer.scan()
    library.set_rating(library.ids("part1") + library.ids("part3"), 4)
    monkeypatch.setattr(query, "_FEW_MATCHES", 2)  # a few matches are sorted at once
    statements: list[str] = []
    event.listen(library.store.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    pages = [library.search("sort:-rating", page=n, per_page=2) for n in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [2, 2, 1] and {p.items[0].rating for p in pages[:1]} == {4}
    ordered = [s for s in statements if "ORDER BY loras.rating" in s]
    assert ordered and not any("NULLS LAST" in s for s in ordered)
