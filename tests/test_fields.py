"""Field types (fields.py): what each accepts, what it refuses, and that every refusal is one
readable InvalidInput naming the field."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from lib_lora_manager import fields
from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.generation import FIELDS, GenerationRequest

ACCEPTED = [
    (fields.RATING, 1, 1), (fields.RATING, 5, 5), (fields.RATING, 4.0, 4), (fields.RATING, "3", 3),
    (fields.RATING, None, None), (fields.RATING, "", None), (fields.RATING, 0, None), (fields.RATING, "0", None),
    (fields.FLAG, True, True), (fields.FLAG, False, False),
    (fields.Flag("x", words=True), "false", False), (fields.Flag("x", words=True), "YES", True), (fields.Flag("x", words=True), "0", False),
    (fields.WEIGHT, 0.8, 0.8), (fields.WEIGHT, "0.8", 0.8), (fields.WEIGHT, -20, -20.0), (fields.WEIGHT, 20, 20.0),
    (fields.WEIGHT, None, None), (fields.WEIGHT, "", None), (fields.WEIGHT, "1e1", 10.0),
    (fields.LORA_ID, 1, 1), (fields.LORA_ID, "12", 12), (fields.LORA_ID, 7.0, 7), (fields.LORA_ID, fields.MAX_ID, fields.MAX_ID),
    (fields.IDS, [3, 1, 3, "2"], [3, 1, 2]), (fields.IDS, [], []), (fields.IDS, (5,), [5]),
    (fields.PAGE, 1, 1), (fields.PAGE, "1000000", 1_000_000), (fields.PER_PAGE, 200, 200),
    (fields.SEED, -1, -1), (fields.SEED, 0, 0), (fields.SEED, fields.MAX_SEED, fields.MAX_SEED),
    (fields.TAGS, ["Anime ", "anime", "", "Style"], ["anime", "style"]), (fields.TAGS, "a, B,,a", ["a", "b"]),
    (fields.TAGS, None, []), (fields.TAGS, ["x" * 200], ["x" * 200]),
    (fields.TRIGGER_WORDS, "Shiny armor, metal", ["Shiny armor", "metal"]), (fields.TRIGGER_WORDS, ["a", "a", " b "], ["a", "b"]),
    (fields.TRIGGERS, True, True), (fields.TRIGGERS, False, []), (fields.TRIGGERS, None, []), (fields.TRIGGERS, ["x"], ["x"]),
    (fields.DISPLAY_NAME, "  Shiny  ", "Shiny"), (fields.DISPLAY_NAME, "", None), (fields.DISPLAY_NAME, None, None),
    (fields.NOTES, "line one\nline two", "line one\nline two"), (fields.NOTES, "é ✓ 🎨", "é ✓ 🎨"),
    (fields.PROMPT, None, ""), (fields.PROMPT, "  keep spaces ", "  keep spaces "),
    (fields.Text(50, one_line=True), " a \n  b ", "a b"),
    (fields.LORA_NAME, "caf\udce9.safetensors", "caf\udce9.safetensors"),  # an undecodable file name, as argv gives it
    (fields.QUERY, "folder:caf\udce9", "folder:caf\udce9"),
    (fields.BASE_MODEL, "SDXL 1.0", "sdxl"), (fields.BASE_MODEL, "Pony", "pony"), (fields.BASE_MODEL, "auto", None),
    (fields.BASE_MODEL, None, None), (fields.BASE_MODEL, "", None),
    (fields.MOVE_TARGET, {"root": "/lib"}, {"root": "/lib"}), (fields.MOVE_TARGET, {"root": "/lib", "subfolder": None}, {"root": "/lib", "subfolder": ""}),
    (fields.COMPOSE_ENTRIES, [{"name": "a", "weight": "0.5", "enabled": False}], [{"name": "a", "weight": 0.5, "enabled": False}]),
    (fields.COMPOSE_ENTRIES, None, []),
    (fields.Choice(("a", "b"), "action"), "b", "b"),
]


@pytest.mark.parametrize("field,value,expected", ACCEPTED, ids=[f"{c[0].name}-{n}" for n, c in enumerate(ACCEPTED)])
def test_accepts(field, value, expected):
    assert field.parse(value) == expected


REFUSED = [
    (fields.RATING, True, "rating must be 1 to 5"), (fields.RATING, False, "rating must be 1 to 5"),
    (fields.RATING, 1.5, "not 1.5"), (fields.RATING, "x", "not “x”"), (fields.RATING, 6, "not 6"), (fields.RATING, -1, "not -1"),
    (fields.RATING, [3], "not a list"), (fields.RATING, {"a": 1}, "not an object"),
    (fields.FLAG, "false", "flag must be true or false, not “false”"), (fields.FLAG, 0, "not 0"), (fields.FLAG, 1, "not 1"),
    (fields.FLAG, None, "not null"), (fields.Flag("x", words=True), "maybe", "not “maybe”"),
    (fields.WEIGHT, True, "weight must be a number, not true"), (fields.WEIGHT, "heavy", "weight must be a number"),
    (fields.WEIGHT, math.nan, "must be between -20 and 20"), (fields.WEIGHT, math.inf, "must be between -20 and 20"),
    (fields.WEIGHT, "nan", "must be a number"), (fields.WEIGHT, 21, "weight must be between -20 and 20, not 21"),
    (fields.WEIGHT, 10**400, "must be between"), (fields.WEIGHT, "1e999", "must be between"), (fields.WEIGHT, [1], "must be a number"),
    (fields.LORA_ID, 0, "LoRA id must be between 1 and 2147483647, not 0"), (fields.LORA_ID, -1, "not -1"),
    (fields.LORA_ID, 2**31, "not 2147483648"), (fields.LORA_ID, 2**63, "not 9223372036854775808"),
    (fields.LORA_ID, 10**30, "between 1 and"), (fields.LORA_ID, "9" * 5000, "between 1 and"), (fields.LORA_ID, 10**5000, "about 5000 digits"),
    (fields.LORA_ID, "abc", "LoRA id must be a number, not “abc”"), (fields.LORA_ID, True, "must be a number, not true"),
    (fields.LORA_ID, 1.5, "must be a number, not 1.5"), (fields.LORA_ID, None, "not null"), (fields.LORA_ID, "1e3", "must be a number"),
    (fields.IDS, [-1, 0], "ids item 1 must be between 1 and 2147483647, not -1"), (fields.IDS, [True], "ids item 1"), (fields.IDS, [None], "not null"),
    (fields.IDS, "1,2", "ids must be a list of ids"), (fields.IDS, None, "ids must be a list"), (fields.IDS, {"a": 1}, "not an object"),
    (fields.IDS, list(range(1, fields.MAX_IDS + 2)), "too many items"),
    (fields.PAGE, 0, "page must be between 1 and 1000000, not 0"), (fields.PAGE, 10**17, "not 100000000000000000"),
    (fields.PAGE, "x", "page: expected int"), (fields.PER_PAGE, 201, "per_page must be between 1 and 200"),
    (fields.SEED, 10**30, "seed must be between -1 and 4294967294"), (fields.SEED, -2, "not -2"), (fields.SEED, 1.5, "expected int"),
    (fields.TAGS, [None], "tags must be a list of text; item 1 is null"), (fields.TAGS, 5, "tags must be a list of text"),
    (fields.TAGS, {"a": 1}, "not an object"), (fields.TAGS, ["a\x00b"], "tags item 1 contains a NUL character"),
    (fields.TAGS, ["x" * 201], "tags item 1 is too long (201 characters; at most 200)"),
    (fields.TAGS, [f"t{n}" for n in range(101)], "tags has too many items (101; at most 100)"),
    (fields.TAGS, ["caf\udce9"], "not valid Unicode text"),
    (fields.TRIGGER_WORDS, 5, "trigger_words must be a list of text"), (fields.TRIGGER_WORDS, {"a": 1}, "not an object"),
    (fields.TRIGGER_WORDS, [1], "item 1 is 1"),
    (fields.TRIGGERS, "abc", "triggers must be a list of words, true or false"), (fields.TRIGGERS, 1, "triggers must be"),
    (fields.DISPLAY_NAME, {"a": 1}, "display_name must be text, not an object"), (fields.DISPLAY_NAME, 5, "must be text, not 5"),
    (fields.DISPLAY_NAME, "x" * 1001, "too long"), (fields.NOTES, "a\x00b", "notes contains a NUL character"),
    (fields.NOTES, "\ud800", "not valid Unicode text"), (fields.NOTES, "caf\udce9", "not valid Unicode text"),
    (fields.NOTES, "x" * 20001, "notes is too long (20001 characters; at most 20000)"),
    (fields.LORA_NAME, "a\x00", "contains a NUL character"), (fields.LORA_NAME, "\ud800", "not valid Unicode text"),
    (fields.QUERY, None, "q must be text, not null"), (fields.QUERY, "x" * 2001, "too long"),
    (fields.BASE_MODEL, 5, "base_model must be text"), (fields.BASE_MODEL, ["sdxl"], "not a list"),
    (fields.BASE_MODEL, "nonsense", "unknown base model “nonsense”"),
    (fields.MOVE_TARGET, {"root": 5}, "move target: root must be text, not 5"), (fields.MOVE_TARGET, {}, "root is required"),
    (fields.MOVE_TARGET, {"root": "/x", "subfolder": 5}, "subfolder must be text"),
    (fields.MOVE_TARGET, {"root": "/x", "other": 1}, "unknown field “other”"), (fields.MOVE_TARGET, "x", "expected an object"),
    (fields.COMPOSE_ENTRIES, [{}] * 51, "loras has too many items (51; at most 50)"), (fields.COMPOSE_ENTRIES, "a", "loras must be a list"),
    (fields.COMPOSE_ENTRIES, ["alpha"], "LoRA 1: expected an object with an id or a name"),
    (fields.COMPOSE_ENTRIES, [{"name": "a"}, {"name": "b", "weight": "x"}], "LoRA 2: weight must be a number, not “x”"),
    (fields.COMPOSE_ENTRIES, [{"name": "a", "enabled": "false"}], "LoRA 1: enabled must be true or false"),
    (fields.COMPOSE_ENTRIES, [{"id": -1}], "LoRA 1: id must be between 1"),
    (fields.Choice(("a", "b"), "action"), "c", "unknown action “c” (known: a, b)"), (fields.Choice(("a",), "action"), None, "unknown action null"),
]


@pytest.mark.parametrize("field,value,message", REFUSED, ids=[f"{c[0].name}-{n}" for n, c in enumerate(REFUSED)])
def test_refuses_with_a_sentence_naming_the_field(field, value, message):
    with pytest.raises(InvalidInput) as refused:
        field.parse(value)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 400


def test_the_caller_names_the_field():
    with pytest.raises(InvalidInput, match="^default_weight must be between -20 and 20, not 30$"):
        fields.WEIGHT.parse(30, "default_weight")


def test_huge_numbers_are_refused_quickly():
    started = time.perf_counter()
    for value in ("9" * 4000, "-" + "9" * 4000, 10**4000):
        with pytest.raises(InvalidInput):
            fields.PAGE.parse(value)
    assert time.perf_counter() - started < 0.1


def test_messages_show_user_text_safely():
    """A message quotes user text short, and with undecodable bytes escaped, so it can be printed
    and sent as JSON."""
    with pytest.raises(InvalidInput) as refused:
        fields.RATING.parse("x" * 500 + "\udce9")
    message = str(refused.value)
    assert len(message) < 200 and message.encode("utf-8")


def test_every_field_documents_itself_as_json_schema():
    named = [value for value in vars(fields).values() if isinstance(value, fields.Field)]
    assert len(named) > 20
    for field in named + list(FIELDS.values()):
        schema = field.json_schema()
        assert isinstance(schema, dict) and ("type" in schema or "anyOf" in schema), field


def test_generation_request_fields_cover_the_request():
    assert list(FIELDS) == [f.name for f in dataclasses.fields(GenerationRequest)]


def test_library_history_and_generation_share_the_types():
    from lib_lora_manager import history, library

    assert library.EDITABLE["rating"] is history.EDITABLE["rating"] is fields.RATING
    assert FIELDS["seed"] is fields.SEED and library.EDITABLE["tags"] is fields.TAGS
