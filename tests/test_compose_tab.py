"""The Compose tab's handlers, called as plain functions over a real library on tmp_path, plus the
tab's wiring in the built blocks. No browser; the only stand-in is the host's generator (what
SDNext reports as the loaded model)."""

from __future__ import annotations

import os
import sys
import types

import pytest
from factories import make_lora
from PIL import Image, PngImagePlugin

from lib_lora_manager import image_params, prompts, settings, ui
from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.ui import compose_tab
from lib_lora_manager.ui.compose_tab import MAX_ROWS, ComposeTab

XSS = "<img src=x onerror=alert(1)>"
PARAMS = ["steps", "sampler_name", "seed", "width", "height", "cfg_scale", "enable_hr", "hr_scale"]
INFOTEXT = (
    "a castle at dusk, anime style, <lora:anime_style:0.6> <lora:detail_tweaker:te=0.4:unet=0.9> "
    "<lora:not_here:0.5> <lora:anime_style:0.2@0,1@0.5>\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 28, Size: 640x768, Sampler: "DPM++ 2M", Seed: 1234, CFG scale: 6.5, LoRA networks: "anime_style, detail_tweaker", '
    "App: SD.Next"
)


class LoadedModel:
    """What SDNext's generator answers about the loaded model (it never loads one to answer)."""

    def __init__(self, family):
        self.family = family

    def model_family(self):
        return self.family


def host_with(**kwargs) -> HostInfo:
    values = {s.key: s.default for s in settings.SETTINGS}
    return HostInfo(**({"name": "test", "api_base": "/base", "setting": values.__getitem__} | kwargs))


@pytest.fixture
def ids(library, lora_dir):
    make_lora(lora_dir / "styles", "anime_style", "sd1", seed=1)
    make_lora(lora_dir, "detail_tweaker", "sdxl", seed=2)
    make_lora(lora_dir, "plain", "sd1", seed=3)
    make_lora(lora_dir, XSS, "sd1", seed=4)
    library.indexer.scan()
    found = {item.filename.rsplit(".", 1)[0]: item.id for item in library.search("").items}
    library.edit(found["anime_style"], display_name="Anime Style", trigger_words=["anime style", "cel shading"],
                 default_weight=0.7, weight_min=0.4, weight_max=1.2)
    library.edit(found["detail_tweaker"], trigger_words=["sharp"])
    return found


@pytest.fixture
def tab(library):
    tab = ComposeTab(lambda: library, host_with(generator=LoadedModel("sd1")))
    tab.parameter_names = list(PARAMS)
    return tab


def add(tab, entries, lora_id, base="a castle", negative=""):
    out = tab.add(entries, lora_id, base, negative)
    assert "entries" in out, out.get("status")
    return out


def row_args(entry):
    """The row controls' values for ``entry`` (what the browser would send)."""
    split = entry["te"] is not None
    return (entry["enabled"], entry["weight"], split, entry["te"] if split else entry["weight"],
            entry["unet"] if split else entry["weight"], entry["triggers"])


# --- building -----------------------------------------------------------------------------------

def test_compose_tab_is_built_without_the_database_and_library_adds_to_it(library, ids):
    opened = []

    def open_library():
        opened.append(1)
        return library

    [(blocks, _title, _elem_id)] = ui.build_tabs(open_library, host_with(name="standalone"))
    assert opened == []
    by_id = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None)}
    assert {"lora_manager_compose_tab", "lora_manager_compose_base", "lora_manager_compose_prompt",
            "lora_manager_compose_inbox", "lora_manager_compose_add_box", f"lora_manager_compose_row{MAX_ROWS - 1}_weight",
            "lora_manager_add_to_compose", "lora_manager_compose_recipe_list"} <= set(by_id)
    assert not [i for i in by_id if i.endswith(("_generate", "_interrupt"))]
    # standalone has no SDNext page to send to and no paste mechanism: neither button shows
    assert by_id["lora_manager_compose_send"].visible is False
    assert by_id["lora_manager_compose_send_params"].visible is False

    # the Library's "Add to composition" writes an add request and selects the Compose tab
    button = by_id["lora_manager_add_to_compose"]
    [index] = [n for n, d in enumerate(blocks.dependencies) if button._id in d["targets"]]
    assert blocks.dependencies[index]["outputs"] == [by_id["lora_manager_compose_add_box"]._id, by_id["lora_manager_tabs"]._id]
    request, tabs_update = blocks.fns[index].fn(ids["plain"])
    assert tabs_update["selected"] == "lora_manager_compose_tab"
    tab = ComposeTab(open_library, host_with())
    out = tab.add_from_box(request, [], "", "")
    assert [e["lora_id"] for e in out["entries"]] == [ids["plain"]] and out["add_box"] == ""
    assert tab.add_from_box("", [], "", "") == {}  # emptying the box is not a request
    assert compose_tab.add_request(ids["plain"]) != request  # the same LoRA again is still a change


def test_sdnext_host_shows_send_and_binds_the_paste_button(library, monkeypatch):
    import gradio as gr

    bound = []
    made = {}

    def build_panel(host, prompt, negative):
        made["inputs"] = (prompt, negative)
        return types.SimpleNamespace(parameters={"steps": gr.Slider(1, 150, value=20, step=1, label="Steps"),
                                                 "seed": gr.Number(value=-1, label="Seed")})

    fake = types.ModuleType("lib_lora_manager.ui.generate_panel")
    fake.build = build_panel
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(ui, "generate_panel", fake, raising=False)
    host = host_with(name="sdnext", jobs=lambda: None, bind_paste=lambda button, text: bound.append((button, text)))
    with gr.Blocks():
        tab = compose_tab.build_content(lambda: library, host)
    assert made["inputs"][0] is tab.prompt_out and made["inputs"][1] is tab.negative
    assert tab.parameter_names == ["steps", "seed"]
    [(button, source)] = bound
    assert button.elem_id == "lora_manager_compose_send_params" and button.visible is True
    send = next(b for b in button.parent.children if b.elem_id == "lora_manager_compose_send")
    assert send.visible is True
    assert source.elem_id == "lora_manager_compose_infotext"
    # what the paste button reads: SDNext infotext of the composed prompt and the panel's settings
    text = tab.paste_text("a castle <lora:x:0.5>", "blurry", 30, 7.0)
    assert text == "a castle <lora:x:0.5>\nNegative prompt: blurry\nSteps: 30, Seed: 7"


# --- composing ----------------------------------------------------------------------------------

def test_a_lora_is_added_at_its_default_weight_within_its_recommended_range(tab, ids):
    out = add(tab, [], ids["anime_style"])
    [entry] = out["entries"]
    assert entry == {"lora_id": ids["anime_style"], "name": "anime_style", "label": "Anime Style", "weight": 0.7,
                     "te": None, "unet": None, "enabled": True, "triggers": ["anime style", "cel shading"]}
    row = out["rows"][0]
    assert row["box"]["visible"] is True
    assert (row["weight"]["minimum"], row["weight"]["maximum"], row["weight"]["value"]) == (0.4, 1.2, 0.7)
    assert row["triggers"]["choices"] == ["anime style", "cel shading"] and row["triggers"]["value"] == entry["triggers"]
    assert "0.4 to 1.2" in row["title"] and "SD1.5" in row["title"]
    assert all(out["rows"][i]["box"]["visible"] is False for i in range(1, MAX_ROWS))
    assert out["prompt"] == "a castle, anime style, cel shading <lora:anime_style:0.7>"
    assert "No warnings" in out["warnings"] and "Loaded model: SD1.5" in out["warnings"]

    # no recommended range: default bounds, weight 1
    out = add(tab, out["entries"], ids["plain"])
    row = out["rows"][1]
    assert (row["weight"]["minimum"], row["weight"]["maximum"], row["weight"]["value"]) == (*compose_tab.DEFAULT_RANGE, 1.0)
    assert row["triggers"]["visible"] is False
    assert out["prompt"].endswith("<lora:anime_style:0.7> <lora:plain:1>")


def test_find_lists_matches_and_reports_bad_queries(tab, ids):
    out = tab.find("base:sdxl")
    [choice] = out["choices"]["choices"]
    assert choice.startswith(f"#{ids['detail_tweaker']} ") and choice.endswith("(SDXL)")
    assert compose_tab.first_id(out["choices"]["value"]) == ids["detail_tweaker"]
    assert "error" in tab.find("rating:>>4")["status"]
    assert tab.find("nothing-matches-this")["choices"]["choices"] == []
    assert "Choose a LoRA" in tab.add([], None, "", "")["status"]


def test_disable_reorder_remove_and_the_row_limit(tab, ids):
    entries = add(tab, [], ids["anime_style"])["entries"]
    entries = add(tab, entries, ids["plain"])["entries"]
    off = tab.edit(0, entries, "a castle", "", False, 0.7, False, 0.7, 0.7, ["anime style", "cel shading"])
    assert off["entries"][0]["enabled"] is False
    assert off["prompt"] == "a castle <lora:plain:1>"  # disabled: neither its token nor its trigger words
    moved = tab.move(1, -1, off["entries"], "a castle", "")
    assert [e["lora_id"] for e in moved["entries"]] == [ids["plain"], ids["anime_style"]]
    assert moved["rows"][0]["weight"]["value"] == 1.0 and moved["rows"][1]["enabled"] is False
    assert tab.move(0, -1, moved["entries"], "", "") == {}  # already first
    removed = tab.remove(0, moved["entries"], "a castle", "")
    assert [e["lora_id"] for e in removed["entries"]] == [ids["anime_style"]] and "Removed Plain" in removed["status"]
    assert removed["rows"][1]["box"]["visible"] is False

    full = [dict(removed["entries"][0]) for _ in range(MAX_ROWS)]
    assert f"up to {MAX_ROWS}" in tab.add(full, ids["plain"], "", "")["status"]
    assert tab.clear(full, "", "")["entries"] == []


def test_weight_and_separate_text_encoder_and_unet_weights(tab, ids):
    entries = add(tab, [], ids["anime_style"])["entries"]
    out = tab.edit(0, entries, "a castle", "", True, 0.9, False, 0.9, 0.9, [])
    assert out["prompt"] == "a castle <lora:anime_style:0.9>"
    # switching the split on starts both at the weight and shows their sliders instead of the weight
    out = tab.edit(0, out["entries"], "a castle", "", True, 0.9, True, 0.2, 0.2, [])
    assert (out["entries"][0]["te"], out["entries"][0]["unet"]) == (0.9, 0.9)
    assert out["rows"][0]["split_row"]["visible"] is True and out["rows"][0]["weight"]["visible"] is False
    assert out["rows"][0]["te"]["value"] == 0.9
    out = tab.edit(0, out["entries"], "a castle", "", True, 0.9, True, 0.5, 1.1, [])
    assert out["prompt"] == "a castle <lora:anime_style:te=0.5:unet=1.1>"
    rendered = tab.render(out["entries"], "a castle", "")["rows"][0]
    assert rendered["split"] is True and (rendered["te"]["value"], rendered["unet"]["value"]) == (0.5, 1.1)
    # back to one weight: the text-encoder weight carries on
    out = tab.edit(0, out["entries"], "a castle", "", True, 0.9, False, 0.5, 1.1, [])
    assert out["entries"][0]["te"] is None and out["entries"][0]["weight"] == 0.5
    assert out["prompt"] == "a castle <lora:anime_style:0.5>"
    assert tab.edit(5, out["entries"], "", "", True, 1, False, 1, 1, []) == {}  # a hidden row


def test_trigger_word_toggles_change_the_prompt(tab, ids):
    entries = add(tab, [], ids["anime_style"])["entries"]
    out = tab.edit(0, entries, "a castle", "", True, 0.7, False, 0.7, 0.7, ["cel shading"])
    assert out["prompt"] == "a castle, cel shading <lora:anime_style:0.7>"
    out = tab.edit(0, out["entries"], "a castle", "", True, 0.7, False, 0.7, 0.7, [])
    assert out["prompt"] == "a castle <lora:anime_style:0.7>"
    out = tab.edit(0, out["entries"], "a castle, anime style", "", True, 0.7, False, 0.7, 0.7, ["anime style"])
    assert out["prompt"] == "a castle, anime style <lora:anime_style:0.7>"  # not repeated


def test_warnings_base_model_missing_file_duplicate_range_and_unresolved(library, lora_dir, ids):
    sdxl = ComposeTab(lambda: library, host_with(generator=LoadedModel("sdxl")))
    out = add(sdxl, [], ids["anime_style"])
    assert "Anime Style is a SD1.5 LoRA; the model is SDXL" in out["warnings"] and "other base" in out["rows"][0]["title"]
    assert "Loaded model: SDXL" in out["warnings"]
    # no generator (or nothing loaded): no base-model check, and it says so
    unknown = ComposeTab(lambda: library, host_with())
    out = add(unknown, [], ids["anime_style"])
    assert "No warnings" in out["warnings"] and "base models are not checked" in out["warnings"]

    twice = add(unknown, out["entries"], ids["anime_style"])
    assert "in the composition twice" in twice["warnings"] and "already in the composition" in twice["status"]
    outside = unknown.edit(0, out["entries"], "", "", True, 1.8, False, 1.8, 1.8, [])
    assert "outside its recommended range" in outside["warnings"]

    os.remove(lora_dir / "plain.safetensors")
    library.indexer.scan()
    missing = add(unknown, [], ids["plain"])
    assert "the file is missing" in missing["warnings"] and "missing" in missing["rows"][0]["title"]

    typed = unknown.update_prompt(out["entries"], "a castle <lora:nowhere:1> <lora:anime_style:0.5>", "")
    assert "nowhere (written in the prompt) is not resolved" in typed["warnings"]
    assert "anime_style is written in the prompt and is in the composition" in typed["warnings"]


def test_hostile_lora_name_is_escaped_everywhere(tab, library, ids):
    hostile = '"><script>alert(3)</script>'
    library.edit(ids[XSS], display_name=hostile, trigger_words=[hostile])
    out = add(tab, [], ids[XSS])
    html = out["rows"][0]["title"] + out["warnings"] + out["summary"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html  # the file name
    assert "<script>" not in html and "&lt;script&gt;alert(3)&lt;/script&gt;" in out["rows"][0]["title"]
    assert "cannot load this file from a prompt" in out["warnings"]  # SDNext could not parse the token
    assert "&lt;script&gt;" in out["warnings"]  # the warning names it by its display name
    typed = tab.update_prompt([], f"<lora:{XSS[:-1]}:1>", "")
    assert "<img" not in typed["warnings"]
    saved = tab.recipe_save(hostile, None, "", out["entries"], hostile, "", *[None] * len(PARAMS))
    assert "<script>" not in saved["recipe_list"] + saved["recipe_status"]
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in saved["recipe_list"]


# --- reading prompts back -------------------------------------------------------------------------

def test_an_infotext_is_read_back_into_a_composition(tab, ids):
    out = tab.load_text(INFOTEXT)
    entries = out["entries"]
    assert [e["lora_id"] for e in entries] == [ids["anime_style"], ids["detail_tweaker"]]
    assert entries[0]["weight"] == 0.6 and entries[0]["te"] is None
    assert entries[0]["triggers"] == ["anime style"]  # only the words the prompt has: it stays the same prompt
    assert (entries[1]["te"], entries[1]["unet"]) == (0.4, 0.9) and entries[1]["triggers"] == []
    # what the composer cannot hold stays in the prompt as written, and the status says why
    assert out["base"] == "a castle at dusk, anime style <lora:not_here:0.5> <lora:anime_style:0.2@0,1@0.5>"
    assert "not_here: no LoRA named" in out["status"] and "step-scheduled" in out["status"]
    assert out["negative"] == "blurry, lowres"
    assert out["params"] == {"steps": 28, "sampler_name": "DPM++ 2M", "seed": 1234, "width": 640, "height": 768, "cfg_scale": 6.5}
    assert out["rows"][1]["split"] is True and out["rows"][0]["weight"]["minimum"] == 0.4
    assert "not_here (written in the prompt) is not resolved" in out["warnings"]
    assert out["prompt"].startswith("a castle at dusk, anime style <lora:not_here:0.5>")
    assert out["prompt"].endswith("<lora:anime_style:0.6> <lora:detail_tweaker:te=0.4:unet=0.9>")

    assert "Paste a prompt" in tab.load_text("  ")["status"]
    plain = tab.load_text("just words <lora:plain>")
    assert plain["entries"][0]["weight"] == 1.0 and plain["params"] == {}  # SDNext's default multiplier


def test_the_inbox_loads_a_prompt_and_empties(tab, ids):
    out = tab.load_inbox("a cat <lora:plain:0.5>")
    assert out["inbox"] == "" and [e["weight"] for e in out["entries"]] == [0.5]
    assert tab.load_inbox("") == {}


def test_a_dropped_png_is_read_from_its_parameters_chunk(tab, ids, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    png = tmp_path / "made-by-sdnext.png"
    Image.new("RGB", (32, 32), (10, 120, 200)).save(png, pnginfo=info)
    out = tab.load_image(str(png))
    assert [e["lora_id"] for e in out["entries"]] == [ids["anime_style"], ids["detail_tweaker"]]
    assert out["parse_text"] == INFOTEXT and out["negative"] == "blurry, lowres" and out["image"] is None

    jpeg = tmp_path / "made-by-sdnext.jpg"  # SDNext's default format keeps it in EXIF UserComment
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + INFOTEXT.encode("utf-16-be")
    Image.new("RGB", (32, 32)).save(jpeg, exif=exif)
    assert image_params.read_infotext(str(jpeg)) == INFOTEXT

    bare = tmp_path / "bare.png"
    Image.new("RGB", (8, 8)).save(bare)
    assert "holds no generation parameters" in tab.load_image(str(bare))["status"]
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert "not an image that can be read" in tab.load_image(str(text))["status"]
    with pytest.raises(InvalidInput):
        image_params.read_infotext(str(tmp_path / "absent.png"))


def test_infotext_round_trip_of_generation_settings():
    params = {"steps": 30, "sampler_name": "DPM++ 2M, Karras", "seed": 77, "cfg_scale": 7.5, "width": 832, "height": 1216,
              "n_iter": 2, "batch_size": 3, "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent",
              "hr_second_pass_steps": 10, "denoising_strength": 0.4}
    text = prompts.format_infotext("a castle <lora:x:0.5>", "blurry", params)
    assert text.splitlines()[:2] == ["a castle <lora:x:0.5>", "Negative prompt: blurry"]
    assert 'Sampler: "DPM++ 2M, Karras"' in text and "Size: 832x1216" in text and "Batch: 2x3" in text
    fields = prompts.parse_infotext(text)
    assert fields["Prompt"] == "a castle <lora:x:0.5>" and fields["Negative prompt"] == "blurry"
    assert prompts.infotext_parameters(fields) == params
    # a random seed and the hires settings of a run without a second pass are left out
    short = prompts.format_infotext("p", "", {"steps": 20, "seed": -1, "enable_hr": False, "hr_scale": 2.0})
    assert short == "p\nSteps: 20"


# --- recipes --------------------------------------------------------------------------------------

def test_recipe_save_search_apply_rename_delete_round_trip(tab, library, ids, tmp_path):
    out = tab.load_text(INFOTEXT)
    entries = tab.edit(0, out["entries"], out["base"], out["negative"], False, 0.6, False, 0.6, 0.6, ["anime style"])["entries"]
    values = [out["params"].get(name) for name in PARAMS]
    cover = tmp_path / "cover.png"
    Image.new("RGB", (300, 200), (0, 200, 0)).save(cover)
    saved = tab.recipe_save("Dusk castle", str(cover), "", entries, out["base"], out["negative"], *values)
    assert "Saved “Dusk castle” with 2 LoRAs and 6 generation settings" in saved["recipe_status"]
    assert "Dusk castle" in saved["recipe_list"] and "/base/lora-manager/v1/recipes/" in saved["recipe_list"]
    [choice] = saved["recipe_choice"]["choices"]
    assert saved["recipe_cover"] is None  # the upload box empties

    empty = tab.clear(entries, "", "")
    assert empty["entries"] == []
    applied = tab.recipe_apply(choice)
    assert applied["entries"] == entries and applied["base"] == out["base"] and applied["negative"] == "blurry, lowres"
    assert applied["params"] == out["params"] and applied["recipe_name"] == "Dusk castle"
    assert applied["rows"][0]["enabled"] is False and applied["prompt"] == tab.composed(entries, out["base"], out["negative"])["prompt"]

    assert tab.recipe_list("tweaker")["recipe_choice"]["choices"] == [choice]
    assert "No recipe matches" in tab.recipe_list("zebra")["recipe_list"]
    picked = tab.recipe_pick(str(compose_tab.first_id(choice)), "")
    assert picked["recipe_name"] == "Dusk castle" and picked["recipe_choice"]["value"] == choice
    assert picked["recipe_choice"]["choices"] == [choice]

    renamed = tab.recipe_rename(choice, "Castle at dusk", "")
    assert renamed["recipe_name"] == "Castle at dusk"
    choice = renamed["recipe_choice"]["choices"][0]
    first = tab.recipe_delete(choice, None, "")
    assert "Click Delete again" in first["recipe_status"] and first["delete_pending"] == compose_tab.first_id(choice)
    assert library.recipes.search("")  # nothing deleted yet
    second = tab.recipe_delete(choice, first["delete_pending"], "")
    assert "Deleted “Castle at dusk”" in second["recipe_status"] and library.recipes.search("") == []
    assert "Choose a recipe" in tab.recipe_apply(None)["recipe_status"]


def test_recipe_with_a_lost_lora_and_bad_input(tab, library, ids, lora_dir):
    entries = add(tab, [], ids["plain"])["entries"] + add(tab, [], ids["anime_style"])["entries"]
    assert "Not saved: give the recipe a name" in tab.recipe_save(" ", None, "", entries, "x", "", *[None] * len(PARAMS))["recipe_status"]
    bad = [0] + [None] * (len(PARAMS) - 1)  # steps 0
    assert "Not saved: steps must be between" in tab.recipe_save("r", None, "", entries, "x", "", *bad)["recipe_status"]
    saved = tab.recipe_save("lost", None, "", entries, "x", "", *[None] * len(PARAMS))
    choice = saved["recipe_choice"]["choices"][0]
    library.files.trash([ids["plain"]])  # the LoRA goes away after the recipe was saved
    applied = tab.recipe_apply(choice)
    assert [e["lora_id"] for e in applied["entries"]] == [ids["anime_style"]]
    assert applied["base"] == "x <lora:plain:1>" and "Kept in the prompt as written" in applied["recipe_status"]


def test_send_status_messages():
    assert "lm-ok" in ComposeTab.sent("p", "", "Sent to SDNext's Text tab.")
    assert "lm-info" in ComposeTab.sent("p", "", "Open SDNext to send prompts.")
    assert ComposeTab.sent("p", "", "") == ""


def test_a_composed_prompt_reads_back_to_the_same_composition(tab, library, lora_dir, ids):
    # two files share a basename: their tokens carry SDNext's "fullname" (relative path, no extension)
    make_lora(lora_dir / "one", "twin", "sd1", seed=11)
    make_lora(lora_dir / "two", "twin", "sd1", seed=12)
    library.indexer.scan()
    twins = [i.id for i in sorted(library.search("twin").items, key=lambda i: i.relpath)]  # one/, two/
    entries = add(tab, [], twins[0])["entries"]
    entries = add(tab, entries, twins[1])["entries"]
    entries = add(tab, entries, ids["detail_tweaker"])["entries"]
    entries = tab.edit(2, entries, "a castle", "", True, 0.5, True, 0.5, 0.5, ["sharp"])["entries"]
    entries = tab.edit(2, entries, "a castle", "", True, 0.5, True, 0.3, 0.8, ["sharp"])["entries"]
    composed = tab.composed(entries, "a castle", "")["prompt"]
    assert "<lora:one/twin:1> <lora:two/twin:1>" in composed
    back = tab.load_text(composed)
    assert [e["lora_id"] for e in back["entries"]] == twins + [ids["detail_tweaker"]]
    assert back["entries"][2]["te"] == 0.3 and back["entries"][2]["unet"] == 0.8
    assert back["prompt"] == composed and "lm-ok" in back["status"]


# --- the composition kept in the browser ----------------------------------------------------------


def test_every_change_writes_the_draft_and_restore_brings_it_back(tab, library, ids):
    entries = add(tab, [], ids["anime_style"])["entries"]
    entries = add(tab, entries, ids["detail_tweaker"])["entries"]
    edited = tab.edit(0, entries, "a castle", "blurry", False, 1.1, False, 1.1, 1.1, ["cel shading"])
    edited = tab.edit(1, edited["entries"], "a castle", "blurry", True, 1.0, True, 0.4, 0.9, [])
    moved = tab.move(1, -1, edited["entries"], "a castle", "blurry")
    draft = moved["draft"]
    assert tab.update_prompt(moved["entries"], "a castle", "blurry")["draft"] == draft

    fresh = ComposeTab(lambda: library, host_with(generator=LoadedModel("sd1")))  # a reload: a new session
    back = fresh.restore(draft, [], "", "")
    assert back["entries"] == moved["entries"]
    assert (back["base"], back["negative"], back["restore_box"]) == ("a castle", "blurry", "")
    assert back["prompt"] == moved["prompt"] and back["status"] == ""
    assert back["rows"][1]["enabled"] is False and back["rows"][0]["split"] is True
    # a composition started on the page before the kept one came back is left alone
    assert fresh.restore(draft, moved["entries"], "x", "") == {"restore_box": ""}
    assert fresh.restore("", [], "", "") == {}


def test_nothing_to_keep_is_an_empty_draft_and_clear_keeps_only_the_prompts(tab, ids):
    assert tab.update_prompt([], "", " ")["draft"] == "{}"
    entries = add(tab, [], ids["plain"])["entries"]
    cleared = tab.clear(entries, "a castle", "")
    assert cleared["entries"] == [] and '"loras":[]' in cleared["draft"] and '"prompt":"a castle"' in cleared["draft"]
    assert tab.clear(entries, "", "")["draft"] == "{}"


def test_a_kept_lora_since_deleted_restores_with_a_warning(tab, library, ids):
    entries = add(tab, [], ids["plain"])["entries"]
    entries = add(tab, entries, ids["anime_style"])["entries"]
    draft = tab.composed(entries, "a castle", "")["draft"]
    library.files.trash([ids["plain"]])
    back = tab.restore(draft, [], "", "")
    assert [e["lora_id"] for e in back["entries"]] == [ids["anime_style"]]
    assert back["base"] == "a castle <lora:plain:1>"
    assert "Restored the last composition; kept in the prompt as written: Plain: no LoRA named" in back["status"]


@pytest.mark.parametrize("text, message", [
    ("not json", "it is not JSON"),
    ("[1, 2]", "it is not a composition"),
    ('{"loras": {"a": 1}}', "it is not a composition"),
    ('{"loras": [{"lora_id": "x", "weight": 1}]}', "id or weight is not a number"),
    ('{"loras": [{"lora_id": 1, "weight": [1]}]}', "id or weight is not a number"),
    ('{"loras": [{"lora_id": 1, "weight": NaN}]}', "id or weight is not a number"),
    ('{"loras": [{"lora_id": 1, "weight": 1, "te": Infinity, "unet": 1}]}', "id or weight is not a number"),
    ("{" + " " * compose_tab.DRAFT_LIMIT + "}", "longer than"),
])
def test_a_damaged_draft_is_reported_not_restored(tab, text, message):
    out = tab.restore(text, [], "", "")
    assert message in out["status"] and "was not restored" in out["status"] and "entries" not in out
    assert out["restore_box"] == ""


def test_a_hostile_draft_is_bounded_and_escaped(tab, ids):
    import json

    lost = {"lora_id": 999_999, "name": "gone", "label": XSS, "weight": 1}
    loras = [lost] + [{"lora_id": ids["anime_style"], "weight": 0.5, "triggers": [XSS, 7]}] * (MAX_ROWS + 5)
    out = tab.restore(json.dumps({"loras": loras, "prompt": 5, "negative": None}), [], "", "")
    assert len(out["entries"]) == MAX_ROWS - 1 and out["entries"][0]["triggers"] == [XSS, "7"]
    assert out["base"] == "5 <lora:gone:1>" and out["negative"] == ""
    assert "gone" in out["status"] or "&lt;img" in out["status"]
    assert XSS not in out["status"] and XSS not in out["rows"][0]["title"]


def test_weight_sliders_are_applied_by_one_request_for_all_rows(library):
    """Gradio 3.43's slider events miss Enter and arrow keys (`release`) or drop and reorder
    values (`input`): the page script clicks one apply button, which reads every slider, and
    hears back from a browser-side step chained after it."""
    [(blocks, _title, _elem_id)] = ui.build_tabs(lambda: library, host_with(name="standalone"))
    by_id = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None)}
    sliders = [by_id[f"lora_manager_compose_row{i}_{k}"]._id for i in range(MAX_ROWS) for k in ("weight", "te", "unet")]
    assert not [d for d in blocks.dependencies if set(d["targets"]) & set(sliders)]  # no echo, no race
    button = by_id["lora_manager_compose_apply_weights"]
    [apply] = [d for d in blocks.dependencies if d["targets"] == [button._id] and d["trigger"] == "click"]
    assert apply["inputs"][4:] == sliders and apply["show_progress"] == "hidden"
    index = blocks.dependencies.index(apply)
    [done] = [d for d in blocks.dependencies if d["trigger_after"] == index]
    assert done["backend_fn"] is False and "loraManagerCompose.applied()" in done["js"]


def test_weights_reads_every_row_and_keeps_half_typed_values(tab, ids):
    entries = add(tab, [], ids["anime_style"])["entries"]
    entries = add(tab, entries, ids["detail_tweaker"])["entries"]
    entries = tab.edit(1, entries, "a castle", "", True, 1.0, True, 1.0, 1.0, [])["entries"]  # separate TE/UNet
    rest = (None, None, None) * (MAX_ROWS - 2)
    out = tab.weights(entries, "a castle", "", 1.15, 1.15, 1.15, 0.3, 0.4, 0.9, *rest)
    assert [(e["weight"], e["te"], e["unet"]) for e in out["entries"]] == [(1.15, None, None), (1.0, 0.4, 0.9)]
    assert "<lora:anime_style:1.15>" in out["prompt"] and "<lora:detail_tweaker:te=0.4:unet=0.9>" in out["prompt"]
    assert '"weight":1.15' in out["draft"] and "rows" not in out  # a slider being dragged is not re-rendered
    half = tab.weights(out["entries"], "a castle", "", None, None, None, 0.3, None, None, *rest)
    assert [(e["weight"], e["te"], e["unet"]) for e in half["entries"]] == [(1.15, None, None), (1.0, 0.4, 0.9)]


# --- one page's composition, changed by events that run at the same time ----------------------


def wired(blocks, elem_id: str, trigger: str):
    """The function Gradio runs for an event, and a reader of its outputs by elem_id."""
    by_id = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, "elem_id", None)}
    [dep] = [d for d in blocks.dependencies if d["targets"] == [by_id[elem_id]._id] and d["trigger"] == trigger]
    fn = blocks.fns[blocks.dependencies.index(dep)].fn
    names = {b._id: b.elem_id for b in blocks.blocks.values()}

    def call(*args):
        return {names[o]: value for o, value in zip(dep["outputs"], fn(*args))}
    return call


def test_the_recipe_list_coming_into_view_keeps_what_a_save_said_and_the_choice(library, ids):
    """The page asks for the recipe list when it first scrolls into view, which may be while a
    save runs (clicking Save scrolls it there): its answer, coming last, once emptied "Saved …"
    (CI). It shows the list and leaves the message and the chosen recipe alone."""
    [(blocks, _title, _elem_id)] = ui.build_tabs(lambda: library, host_with(name="standalone"))
    tab = ComposeTab(lambda: library, host_with())
    entries = add(tab, [], ids["anime_style"])["entries"]
    saved = tab.recipe_save("Heron", None, "", entries, "a heron", "")
    assert "Saved “Heron” with 1 LoRA" in saved["recipe_status"]
    refreshed = wired(blocks, "lora_manager_compose_recipe_refresh", "click")("")
    assert "Heron" in refreshed["lora_manager_compose_recipe_list"]
    assert refreshed["lora_manager_compose_recipe_status"] == {"__type__": "generic_update"}  # unchanged
    choice = refreshed["lora_manager_compose_recipe_choice"]
    assert choice["choices"] == saved["recipe_choice"]["choices"] and "value" not in choice


def test_composition_events_running_at_once_lose_no_change(library, ids, monkeypatch):
    """Two events of one page run on two threads while composing is slow: a weight typed and a
    trigger word unticked both stay, whichever thread writes last."""
    import copy
    import threading
    import time

    from lib_lora_manager.ui.page_composition import PageComposition

    [(blocks, _title, _elem_id)] = ui.build_tabs(lambda: library, host_with(name="standalone"))
    add_event = wired(blocks, "lora_manager_compose_add", "click")
    weights_event = wired(blocks, "lora_manager_compose_apply_weights", "click")
    toggle_event = wired(blocks, "lora_manager_compose_row0_triggers", "input")
    state = [b for b in blocks.blocks.values() if getattr(b, "stateful", False) and isinstance(b.value, PageComposition)]
    page = copy.deepcopy(state[0].value)  # what Gradio does for each new page
    assert page is not state[0].value and page.entries == []

    out = add_event(page, "", "a castle", "", f"#{ids['anime_style']}")
    order = out["lora_manager_compose_order"]
    assert out["lora_manager_compose_prompt"] == "a castle, anime style, cel shading <lora:anime_style:0.7>"

    compose = library.composer.compose
    monkeypatch.setattr(library.composer, "compose", lambda *a, **k: (time.sleep(0.3), compose(*a, **k))[1])
    rest = (None, None, None) * (MAX_ROWS - 1)
    threads = [threading.Thread(target=weights_event, args=(page, order, "a castle", "", 1.15, None, None, *rest)),
               threading.Thread(target=toggle_event, args=(page, order, "a castle", "", True, False, ["anime style"]))]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # both read before either writes, were they not serialized
    for thread in threads:
        thread.join()
    [entry] = page.entries
    assert (entry["weight"], entry["triggers"]) == (1.15, ["anime style"])
    monkeypatch.setattr(library.composer, "compose", compose)
    again = weights_event(page, order, "a castle", "", 1.15, None, None, *rest)
    assert again["lora_manager_compose_prompt"] == "a castle, anime style <lora:anime_style:1.15>"
    assert '"key"' not in again["lora_manager_compose_draft"]


def test_a_row_event_from_a_page_behind_the_composition_reaches_the_entry_it_showed(library, ids):
    """An ↑ answered after the page fired a click on row 0: the click is for the LoRA the page
    showed there, and the page is shown the current rows."""
    import copy

    from lib_lora_manager.ui.page_composition import PageComposition

    [(blocks, _title, _elem_id)] = ui.build_tabs(lambda: library, host_with(name="standalone"))
    add_event = wired(blocks, "lora_manager_compose_add", "click")
    state = [b for b in blocks.blocks.values() if getattr(b, "stateful", False) and isinstance(b.value, PageComposition)]
    page = copy.deepcopy(state[0].value)
    add_event(page, "", "", "", f"#{ids['anime_style']}")
    order = add_event(page, page.order(), "", "", f"#{ids['plain']}")["lora_manager_compose_order"]
    moved = wired(blocks, "lora_manager_compose_row1_up", "click")(page, order, "", "")
    assert [e["lora_id"] for e in page.entries] == [ids["plain"], ids["anime_style"]]
    # fired with the order from before the move: row 0 was anime_style
    off = wired(blocks, "lora_manager_compose_row0_enabled", "input")(page, order, "", "", False, False, [])
    assert [(e["lora_id"], e["enabled"]) for e in page.entries] == [(ids["plain"], True), (ids["anime_style"], False)]
    assert off["lora_manager_compose_order"] == moved["lora_manager_compose_order"] != order
    assert off["lora_manager_compose_row1_enabled"] is False  # the rows shown again, in the current order
    # weights sent in the old order land on the LoRAs they were typed for
    rest = (None, None, None) * (MAX_ROWS - 2)
    wired(blocks, "lora_manager_compose_apply_weights", "click")(page, order, "", "", 0.5, None, None, 1.3, None, None, *rest)
    assert [(e["lora_id"], e["weight"]) for e in page.entries] == [(ids["plain"], 1.3), (ids["anime_style"], 0.5)]
    # a row removed meanwhile: an event for it changes nothing
    current = page.order()
    wired(blocks, "lora_manager_compose_row0_remove", "click")(page, current, "", "")
    wired(blocks, "lora_manager_compose_row0_enabled", "input")(page, current, "", "", False, False, [])
    assert [(e["lora_id"], e["enabled"]) for e in page.entries] == [(ids["anime_style"], False)]
