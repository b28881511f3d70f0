"""The query language on its own: parsing, descriptions and error messages."""

from __future__ import annotations

import random

import pytest

from lib_lora_manager import query
from lib_lora_manager.errors import QueryError


def test_description_reads_like_the_query():
    q = query.parse('anime "blue hair" tag:character -tag:wip base:sdxl rating:>=4 fav:yes added:<30d sort:-rating')
    assert q.describe() == (
        "LoRAs matching “anime”, matching “blue hair”, tagged “character”, not tagged “wip”, for SDXL, "
        "rated 4 or more, favorites, added in the last 30 days; sorted by rating (highest first).")
    assert query.parse("").describe() == "All LoRAs; sorted by name (A to Z)."


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
        query.parse(text)
    assert message in str(info.value)


def test_sort_spellings():
    assert query.parse("sort:-rating").sort == query.Sort("rating", True)
    assert query.parse("sort:rating-").sort == query.Sort("rating", True)
    assert query.parse("sort:date").sort == query.Sort("added", False)


def test_arbitrary_text_never_raises_anything_but_query_error():
    rng = random.Random(7)
    alphabet = 'ab:-"<>=.. 0123456789tagbsrtinfvdeu\\%_*\u00e9\u4e2d\x00'
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        try:
            query.parse(text).describe()
        except QueryError:
            pass


def test_new_keys_can_be_registered():
    from lib_lora_manager.models import Lora

    query.register_filter("big", lambda v: (Lora.size > int(v), f"bigger than {v} bytes"))
    try:
        assert query.parse("big:100").describe().startswith("LoRAs bigger than 100 bytes")
    finally:
        del query.FILTERS["big"]
