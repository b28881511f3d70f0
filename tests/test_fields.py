"""Field types (fields.py): what each accepts, what it refuses, and that every refusal is one
readable InvalidInput naming the field; and that every way in (the Library, History, recipes, the
generation request, REST and the CLI) refuses a bad value with the same sentence."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from factories import make_lora

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
    # one splitting rule with the sidecars: brackets keep commas, list items split too, repeats in any case go
    (fields.TRIGGER_WORDS, "(red, blue:1.2), Ryuu,  dragon   horns\nryuu", ["(red, blue:1.2)", "Ryuu", "dragon horns"]),
    (fields.TRIGGER_WORDS, ["ryuu, dragon horns", "ryuu"], ["ryuu", "dragon horns"]),
    (fields.TRIGGERS, ["a, b", "A"], ["a", "b"]),
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


# --- every way in: the same bad value, refused with the same sentence -------------------------

@dataclass
class WaysIn:
    library: Any
    client: Any  # the REST API on a real FastAPI app
    jobs: Any
    lora: int
    generation: int
    recipe: int
    cli: Callable[[list[str]], str]  # argv -> the message the CLI printed


def _refusal(call: Callable[[], Any]) -> str:
    try:
        call()
    except InvalidInput as e:
        return str(e)
    return "accepted"


def _rest(method: str, path: str, **kwargs) -> Callable[[WaysIn], str]:
    """A REST request; ``path`` and ``kwargs`` may name the world's ids in {braces}."""
    def call(w: WaysIn) -> str:
        ids = {"lora": w.lora, "generation": w.generation, "recipe": w.recipe}
        response = getattr(w.client, method)("/lora-manager/v1" + path.format(**ids), **kwargs)
        assert 400 <= response.status_code < 500, f"{method} {path}: {response.status_code} {response.text[:200]}"
        return response.json()["error"]
    return call


def _bodies(method: str, path: str, body: Callable[[WaysIn, Any], Any]) -> Callable[[WaysIn, Any], str]:
    """A REST request whose JSON body holds the bad value."""
    return lambda w, value: _rest(method, path, json=body(w, value))(w)


RATING_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, rating=v)),
    "Library.set_rating": lambda w, v: _refusal(lambda: w.library.set_rating([w.lora], v)),
    "History.rate": lambda w, v: _refusal(lambda: w.library.history.rate(w.generation, v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"rating": v}),
    "PATCH /history/{id}": _bodies("patch", "/history/{generation}", lambda w, v: {"rating": v}),
    "POST /bulk rate": _bodies("post", "/bulk", lambda w, v: {"ids": [w.lora], "action": "rate", "value": v}),
}
FAVORITE_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, favorite=v)),
    "Library.set_favorite": lambda w, v: _refusal(lambda: w.library.set_favorite([w.lora], v)),
    "History.set_favorite": lambda w, v: _refusal(lambda: w.library.history.set_favorite(w.generation, v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"favorite": v}),
    "PATCH /history/{id}": _bodies("patch", "/history/{generation}", lambda w, v: {"favorite": v}),
}
NSFW_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, nsfw=v)),
    "Library.set_nsfw": lambda w, v: _refusal(lambda: w.library.set_nsfw([w.lora], v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"nsfw": v}),
    "POST /bulk nsfw": _bodies("post", "/bulk", lambda w, v: {"ids": [w.lora], "action": "nsfw", "value": v}),
}
DEFAULT_WEIGHT_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, default_weight=v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"default_weight": v}),
}
BASE_MODEL_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, base_model=v)),
    "Library.set_base_model": lambda w, v: _refusal(lambda: w.library.set_base_model([w.lora], v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"base_model": v}),
    "POST /bulk set_base_model": _bodies("post", "/bulk", lambda w, v: {"ids": [w.lora], "action": "set_base_model", "value": v}),
}
TAGS_WAYS = {
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(w.lora, tags=v)),
    "Library.add_tags": lambda w, v: _refusal(lambda: w.library.add_tags([w.lora], v)),
    "Library.remove_tags": lambda w, v: _refusal(lambda: w.library.remove_tags([w.lora], v)),
    "PATCH /loras/{id}": _bodies("patch", "/loras/{lora}", lambda w, v: {"tags": v}),
    "POST /bulk add_tags": _bodies("post", "/bulk", lambda w, v: {"ids": [w.lora], "action": "add_tags", "value": v}),
}
TAG_TEXT_WAYS = TAGS_WAYS | {"CLI tag --add": lambda w, v: w.cli(["tag", "alpha", "--add", v])}


def _entry(w: WaysIn, weight: Any) -> list[dict[str, Any]]:
    return [{"id": w.lora, "weight": weight}]


LORA_WEIGHT_WAYS = {
    "Recipes.save": lambda w, v: _refusal(lambda: w.library.recipes.save("weights", loras=_entry(w, v))),
    "POST /recipes": lambda w, v: _rest("post", "/recipes", json={"name": "weights", "loras": _entry(w, v)})(w),
    "Library.compose": lambda w, v: _refusal(lambda: w.library.composer.compose("x", _entry(w, v))),
    "POST /compose": lambda w, v: _rest("post", "/compose", json={"prompt": "x", "loras": _entry(w, v)})(w),
    "POST /generate": lambda w, v: _rest("post", "/generate", json={"prompt": "x", "loras": _entry(w, v)})(w),
}
SEED_WAYS = {
    "GenerationRequest.from_dict": lambda w, v: _refusal(lambda: GenerationRequest.from_dict({"seed": v})),
    "POST /generate": _bodies("post", "/generate", lambda w, v: {"seed": v}),
    "Recipes.save parameters": lambda w, v: _refusal(lambda: w.library.recipes.save("seeded", parameters={"seed": v})),
    "POST /recipes parameters": _bodies("post", "/recipes", lambda w, v: {"name": "seeded", "parameters": {"seed": v}}),
}
PARAMETERS_WAYS = {
    "Recipes.save": lambda w, v: _refusal(lambda: w.library.recipes.save("params", parameters=v)),
    "POST /recipes": _bodies("post", "/recipes", lambda w, v: {"name": "params", "parameters": v}),
}
RECIPE_NAME_WAYS = {
    "Recipes.save": lambda w, v: _refusal(lambda: w.library.recipes.save(v)),
    "Recipes.rename": lambda w, v: _refusal(lambda: w.library.recipes.rename(w.recipe, v)),
    "POST /recipes": _bodies("post", "/recipes", lambda w, v: {"name": v}),
    "PATCH /recipes/{id}": _bodies("patch", "/recipes/{recipe}", lambda w, v: {"name": v}),
}
MODEL_WAYS = {
    "Library.compose": lambda w, v: _refusal(lambda: w.library.composer.compose("x", [], model_family=v)),
    "POST /compose": _bodies("post", "/compose", lambda w, v: {"prompt": "x", "model": v}),
}


def _listing(key: str, cli_option: str | None) -> dict[str, Callable[[WaysIn, Any], str]]:
    ways = {
        "Library.search": lambda w, v: _refusal(lambda: w.library.search("", **{key: v})),
        "History.search": lambda w, v: _refusal(lambda: w.library.history.search("", **{key: v})),
        "GET /loras": lambda w, v: _rest("get", "/loras", params={key: v})(w),
        "GET /history": lambda w, v: _rest("get", "/history", params={key: v})(w),
    }
    if cli_option:
        ways[f"CLI search {cli_option}"] = lambda w, v: w.cli(["search", cli_option, v])
    return ways


QUERY_WAYS = {
    "Library.search": lambda w, v: _refusal(lambda: w.library.search(v)),
    "History.search": lambda w, v: _refusal(lambda: w.library.history.search(v)),
    "Recipes.search": lambda w, v: _refusal(lambda: w.library.recipes.search(v)),
    "GET /loras": lambda w, v: _rest("get", "/loras", params={"q": v})(w),
    "GET /history": lambda w, v: _rest("get", "/history", params={"q": v})(w),
    "GET /recipes": lambda w, v: _rest("get", "/recipes", params={"q": v})(w),
    "POST /bulk q": _bodies("post", "/bulk", lambda w, v: {"q": v, "action": "favorite"}),
    "CLI search": lambda w, v: w.cli(["search", v]),
}
LORA_ID_WAYS = {
    "Library.get": lambda w, v: _refusal(lambda: w.library.get(v)),
    "Library.edit": lambda w, v: _refusal(lambda: w.library.edit(v, rating=3)),
    "GET /loras/{id}": lambda w, v: _rest("get", f"/loras/{v}")(w),
    "CLI duplicates --keep": lambda w, v: w.cli(["duplicates", "--keep", v]),
}
GENERATION_ID_WAYS = {
    "History.detail": lambda w, v: _refusal(lambda: w.library.history.detail(v)),
    "History.rate": lambda w, v: _refusal(lambda: w.library.history.rate(v, 3)),
    "History.delete": lambda w, v: _refusal(lambda: w.library.history.delete(v)),
    "GET /history/{id}": lambda w, v: _rest("get", f"/history/{v}")(w),
    "PATCH /history/{id}": lambda w, v: _rest("patch", f"/history/{v}", json={"rating": 3})(w),
}
IMAGE_NUMBER_WAYS = {
    "History.image_file": lambda w, v: _refusal(lambda: w.library.history.image_file(w.generation, v)),
    "History.thumbnail": lambda w, v: _refusal(lambda: w.library.history.thumbnail(w.generation, v)),
    "GET /history/{id}/images/{n}": lambda w, v: _rest("get", f"/history/{{generation}}/images/{v}")(w),
    "GET /history/{id}/image/{n}": lambda w, v: _rest("get", f"/history/{{generation}}/image/{v}")(w),
}
JOB_ID_WAYS = {
    "JobQueue.get": lambda w, v: _refusal(lambda: w.jobs.get(v)),
    "JobQueue.cancel": lambda w, v: _refusal(lambda: w.jobs.cancel(v)),
    "GET /jobs/{id}": lambda w, v: _rest("get", f"/jobs/{v}")(w),
    "POST /jobs/{id}/cancel": lambda w, v: _rest("post", f"/jobs/{v}/cancel")(w),
}

BIG = 10**30
# (what, bad value, the one sentence every way in answers, the ways in that take it)
EVERY_WAY_IN = [
    ("rating", True, "rating must be 1 to 5 (or null to clear it), not true", RATING_WAYS),
    ("rating", 1.5, "rating must be 1 to 5 (or null to clear it), not 1.5", RATING_WAYS),
    ("rating", "x", "rating must be 1 to 5 (or null to clear it), not “x”", RATING_WAYS),
    ("rating", 6, "rating must be 1 to 5 (or null to clear it), not 6", RATING_WAYS),
    ("favorite", "false", "favorite must be true or false, not “false”", FAVORITE_WAYS),
    ("favorite", 1, "favorite must be true or false, not 1", FAVORITE_WAYS),
    ("nsfw", 1, "nsfw must be true or false, not 1", NSFW_WAYS),
    ("default weight", True, "default_weight must be a number, not true", DEFAULT_WEIGHT_WAYS),
    ("default weight", 21, "default_weight must be between -20 and 20, not 21", DEFAULT_WEIGHT_WAYS),
    ("composed weight", True, "LoRA 1: weight must be a number, not true", LORA_WEIGHT_WAYS),
    ("composed weight", "heavy", "LoRA 1: weight must be a number, not “heavy”", LORA_WEIGHT_WAYS),
    ("composed weight", -21, "LoRA 1: weight must be between -20 and 20, not -21", LORA_WEIGHT_WAYS),
    ("base model", ["sdxl"], "base_model must be text (a base model such as sdxl), not a list", BASE_MODEL_WAYS),
    ("base model", "nonsense", "unknown base model “nonsense”", BASE_MODEL_WAYS),
    ("tags", 5, "tags must be a list of text (or comma-separated text), not 5", TAGS_WAYS),
    ("tags", {"a": 1}, "tags must be a list of text (or comma-separated text), not an object", TAGS_WAYS),
    ("tags", [None], "tags must be a list of text; item 1 is null", TAGS_WAYS),
    ("tags", "a\x00b", "tags contains a NUL character", TAG_TEXT_WAYS),
    ("seed", True, "seed: expected int (a whole number), got true", SEED_WAYS),
    ("seed", BIG, f"seed must be between -1 and 4294967294, not {BIG}", SEED_WAYS),
    ("parameters", [1], "parameters must be an object of generation settings", PARAMETERS_WAYS),
    ("parameters", {"prompt": "x"}, "parameters cannot hold prompt: the prompt and negative prompt are recipe fields",
     PARAMETERS_WAYS),
    ("recipe name", None, "give the recipe a name", RECIPE_NAME_WAYS),
    ("recipe name", 5, "name must be text, not 5", RECIPE_NAME_WAYS),
    ("recipe name", "x" * 201, "name is too long (201 characters; at most 200)", RECIPE_NAME_WAYS),
    ("model", 5, "model must be text (a base model such as sdxl), not 5", MODEL_WAYS),
    ("page", "0", "page must be between 1 and 1000000, not 0", _listing("page", "--page")),
    ("page", "abc", "page: expected int (a whole number), got “abc”", _listing("page", "--page")),
    ("per_page", "201", "per_page must be between 1 and 200, not 201", _listing("per_page", "--per-page")),
    ("query", "a\x00b", "q contains a NUL character", QUERY_WAYS),
    ("query", "x" * 2001, "q is too long (2001 characters; at most 2000)", QUERY_WAYS),
    ("LoRA id", "abc", "LoRA id must be a number, not “abc”", LORA_ID_WAYS),
    ("LoRA id", str(BIG), f"LoRA id must be between 1 and 2147483647, not {BIG}", LORA_ID_WAYS),
    ("generation id", "abc", "generation id must be a number, not “abc”", GENERATION_ID_WAYS),
    ("image number", "-1", "image number must be between 0 and 100000, not -1", IMAGE_NUMBER_WAYS),
    ("job id", "0", "job id must be between 1 and 2147483647, not 0", JOB_ID_WAYS),
]


@pytest.fixture
def ways_in(library, lora_dir, tmp_path, capsys, database_url):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from painting import PaintingGenerator

    from lib_lora_manager import api, cli
    from lib_lora_manager.history import GeneratedImage, GenerationRecord
    from lib_lora_manager.jobs import JobQueue

    make_lora(lora_dir, "alpha", seed=1)
    library.indexer.scan()
    lora = library.search("").items[0].id
    image = tmp_path / "out" / "made.png"
    image.parent.mkdir()
    image.write_bytes(b"")
    generation = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="x",
                                                            images=[GeneratedImage(path=str(image))]))
    recipe = library.recipes.save("castle", "a castle", "", [{"lora_id": lora}]).id
    jobs = JobQueue(library.store, PaintingGenerator(tmp_path / "out"))
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library) + api.job_routes(lambda: library, lambda: jobs):
        app.add_api_route(path, endpoint, methods=methods)

    def run_cli(argv: list[str]) -> str:
        common = ["--data-dir", library.store.data_dir, "--lora-dir", str(lora_dir)] + (["--db", database_url] if database_url else [])
        capsys.readouterr()
        status = cli.main(argv + common)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and err[0].startswith("error: "), (status, err)
        return err[0].removeprefix("error: ")

    with TestClient(app) as client:
        yield WaysIn(library, client, jobs, lora, generation, recipe, run_cli)
    jobs.close()


@pytest.mark.parametrize("what,value,message,ways", EVERY_WAY_IN,
                         ids=[f"{row[0]}-{row[1]!r:.16}" for row in EVERY_WAY_IN])
def test_every_way_in_refuses_a_bad_value_with_the_same_sentence(ways_in, what, value, message, ways):
    """The Library (what the UI calls), History, recipes, the generation request, REST and the CLI
    parse the same field with the same type: one bad value, one sentence, wherever it comes in."""
    answers = {way: call(ways_in, value) for way, call in ways.items()}
    assert answers == dict.fromkeys(ways, message)


def test_an_id_is_never_a_boolean(ways_in):
    """int(True) is 1: a boolean id once rated, deleted or showed the first generation."""
    w = ways_in
    history = w.library.history
    for call in (lambda: history.rate(True, 5), lambda: history.set_favorite(True, True), lambda: history.detail(True),
                 lambda: history.delete(True), lambda: history.image_file(True), lambda: w.jobs.get(True),
                 lambda: w.library.get(True), lambda: w.library.recipes.get(True)):
        assert _refusal(call).endswith("must be a number, not true")
    assert _refusal(lambda: history.image_file(w.generation, True)) == "image number: expected int (a whole number), got true"
    assert (history.detail(w.generation).rating, history.detail(w.generation).favorite) == (None, False)


def test_deleting_a_generation_takes_a_real_boolean(ways_in):
    """The text "false" is not false: it once deleted the generation's image files."""
    w = ways_in
    image = w.library.history.detail(w.generation).images[0].path
    assert _refusal(lambda: w.library.history.delete(w.generation, delete_files="false")) == \
        "delete_files must be true or false, not “false”"
    assert w.library.history.detail(w.generation).images[0].exists and os.path.exists(image)
    assert w.library.history.delete(w.generation, delete_files=False).deleted_files == [] and os.path.exists(image)


@pytest.mark.parametrize("words", [
    ["ryuu", "dragon horns"], ["(red, blue:1.2)", "<lora:x:1>"], ["unbalanced (a", "b"], ["x [y", "(z, w)"],
])
def test_trigger_words_shown_joined_split_back_into_the_same_words(words):
    """How a form shows them (", ".join) and saves them: nothing changes on the way."""
    assert fields.TRIGGER_WORDS.parse(", ".join(words)) == words
