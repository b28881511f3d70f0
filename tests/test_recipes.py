"""Recipes on a real library (SQLite, and PostgreSQL when configured): save, update by name,
search, rename, delete, validation and cover images."""

from __future__ import annotations

import os

import pytest
from factories import make_lora
from PIL import Image

from lib_lora_manager.errors import InvalidInput, NotFound


@pytest.fixture
def loras(library, lora_dir):
    make_lora(lora_dir, "anime_style", "sd1", seed=1)
    make_lora(lora_dir / "xl", "detail_tweaker", "sdxl", seed=2)
    library.indexer.scan()
    ids = {item.filename.split(".")[0]: item.id for item in library.search("").items}
    library.edit(ids["anime_style"], display_name="Anime Style", trigger_words=["anime style", "cel shading"],
                 default_weight=0.7)
    return ids


def image(path, size=(64, 48), color=(200, 30, 30)):
    Image.new("RGB", size, color).save(path)
    return str(path)


def test_save_get_and_update_by_name(library, loras):
    saved = library.recipes.save(
        "Castle at dusk", "a castle at dusk", "blurry",
        [{"lora_id": loras["anime_style"]}, {"name": "detail_tweaker", "weight": 0.4, "te": 0.3, "unet": 0.5,
                                              "enabled": False, "triggers": ["sharp"]}],
        {"steps": 30, "sampler_name": "Euler a", "seed": 42})
    assert saved.name == "Castle at dusk" and saved.prompt == "a castle at dusk" and saved.negative_prompt == "blurry"
    first, second = saved.loras
    # a missing weight is the LoRA's default, triggers True (the default) is every trigger word
    assert first == {"lora_id": loras["anime_style"], "name": "anime_style", "label": "Anime Style", "weight": 0.7,
                     "te": None, "unet": None, "enabled": True, "triggers": ["anime style", "cel shading"]}
    # a name is resolved to the library entry
    assert second["lora_id"] == loras["detail_tweaker"] and (second["te"], second["unet"]) == (0.3, 0.5)
    assert second["enabled"] is False and second["triggers"] == ["sharp"]
    assert saved.parameters == {"steps": 30, "sampler_name": "Euler a", "seed": 42}
    assert library.recipes.get(saved.id) == saved

    # the same name (any case) updates the recipe; parameters None keeps the saved ones
    updated = library.recipes.save("castle AT dusk", "a castle at night", "", [{"lora_id": loras["anime_style"], "weight": 0.5}])
    assert updated.id == saved.id and updated.name == "castle AT dusk"
    assert updated.prompt == "a castle at night" and [e["weight"] for e in updated.loras] == [0.5]
    assert updated.parameters == saved.parameters and updated.created_at == saved.created_at
    assert len(library.recipes.search("")) == 1
    assert library.recipes.find("CASTLE at dusk").id == saved.id
    cleared = library.recipes.save("castle at dusk", "x", parameters={})
    assert cleared.parameters == {} and cleared.loras == []


def test_search_by_name_prompt_and_lora_names(library, loras):
    a = library.recipes.save("Night city", "neon streets, rain", "", [{"lora_id": loras["detail_tweaker"]}])
    b = library.recipes.save("Portrait", "a woman, soft light", "lowres", [{"lora_id": loras["anime_style"]}])
    names = lambda q: [r.name for r in library.recipes.search(q)]  # noqa: E731
    assert names("night") == ["Night city"]
    assert names("soft LIGHT") == ["Portrait"]  # every word, any case, anywhere
    assert names("tweaker") == ["Night city"]  # the LoRA's file name
    assert names("anime style") == ["Portrait"]  # its display name
    assert names("lowres") == ["Portrait"]
    assert names("weight") == [] and names("lora_id") == []  # JSON keys are not content
    assert names("100%") == []  # LIKE wildcards are plain characters
    assert names("") == ["Portrait", "Night city"]  # newest first
    assert [r.id for r in library.recipes.search("", limit=1)] == [b.id]
    assert a.id != b.id


def test_rename_and_delete(library, loras):
    a = library.recipes.save("one", "x")
    library.recipes.save("two", "y")
    assert library.recipes.rename(a.id, "  first   recipe ").name == "first recipe"
    with pytest.raises(InvalidInput, match="already named"):
        library.recipes.rename(a.id, "TWO")
    library.recipes.delete(a.id)
    with pytest.raises(NotFound):
        library.recipes.get(a.id)
    with pytest.raises(NotFound):
        library.recipes.delete(a.id)
    with pytest.raises(NotFound):
        library.recipes.rename(a.id, "again")
    assert [r.name for r in library.recipes.search("")] == ["two"]


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "  "}, "give the recipe a name"),
    ({"name": "x" * 201}, "too long"),
    ({"prompt": 5}, "prompt must be text"),
    ({"prompt": "x" * 20001}, "prompt is too long"),
    ({"loras": "anime_style"}, "loras must be a list"),
    ({"loras": ["anime_style"]}, "LoRA 1: expected an object"),
    ({"loras": [{"lora_id": 999999}]}, "LoRA 1: no LoRA with id 999999"),
    ({"loras": [{"lora_id": "abc"}]}, "lora_id must be a number"),
    ({"loras": [{"name": "nowhere"}]}, "LoRA 1: no LoRA named"),
    ({"loras": [{"name": "anime_style", "weight": "heavy"}]}, "weight must be a number"),
    ({"loras": [{"name": "anime_style", "te": 50}]}, "te must be between -20 and 20"),
    ({"loras": [{"name": "anime_style", "triggers": "anime"}]}, "triggers must be a list"),
    ({"parameters": [1]}, "parameters must be an object"),
    ({"parameters": {"steps": 0}}, "steps must be between"),
    ({"parameters": {"strength": 1}}, "unsupported field"),
    ({"parameters": {"prompt": "x"}}, "recipe fields"),
])
def test_bad_input_is_a_clear_message(library, loras, kwargs, message):
    args = {"name": "recipe", "prompt": "", "negative": "", "loras": [], "parameters": {}} | kwargs
    with pytest.raises(InvalidInput, match=message):
        library.recipes.save(**args)
    assert library.recipes.search("") == []


def test_cover_is_a_bounded_copy_replaced_and_removed(library, loras, tmp_path):
    big = image(tmp_path / "big.png", size=(3000, 1500))
    saved = library.recipes.save("with cover", "x", cover_image_path=big)
    cover = saved.cover
    assert os.path.dirname(cover) == os.path.join(library.store.data_dir, "recipes")
    with Image.open(cover) as stored:
        assert stored.format == "WEBP" and max(stored.size) == 1024
    assert os.path.exists(big)  # the user's file is untouched

    # saving again without a cover keeps it; with a new one replaces (and removes) the old copy
    assert library.recipes.save("with cover", "y").cover == cover
    replaced = library.recipes.save("with cover", "y", cover_image_path=image(tmp_path / "small.jpg", (40, 40))).cover
    assert replaced != cover and not os.path.exists(cover) and os.path.exists(replaced)

    library.recipes.delete(saved.id)
    assert not os.path.exists(replaced)


def test_bad_cover_is_refused_without_leftovers(library, loras, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InvalidInput, match="not an image"):
        library.recipes.save("bad cover", "x", cover_image_path=str(text))
    with pytest.raises(InvalidInput, match="cannot read the cover"):
        library.recipes.save("bad cover", "x", cover_image_path=str(tmp_path / "absent.png"))
    assert library.recipes.search("") == []
    assert not os.listdir(os.path.join(library.store.data_dir, "recipes"))
    # a failed save of an existing recipe leaves its cover alone
    good = library.recipes.save("kept", "x", cover_image_path=image(tmp_path / "ok.png"))
    with pytest.raises(InvalidInput):
        library.recipes.save("kept", "x", loras=[{"lora_id": 424242}], cover_image_path=image(tmp_path / "ok2.png"))
    assert library.recipes.get(good.id).cover == good.cover and os.path.exists(good.cover)
    assert os.listdir(os.path.join(library.store.data_dir, "recipes")) == [os.path.basename(good.cover)]
