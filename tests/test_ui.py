"""The Library tab's handlers, called as plain functions over a real library on tmp_path.

The blocks are built once per test (as SDNext would build them) and the handlers are the same
methods the buttons are wired to; no browser and no mocks."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from lib_lora_manager import settings, ui, wording
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.library import Library
from lib_lora_manager.results import LoraSummary
from lib_lora_manager.ui import cards, filters
from lib_lora_manager.ui.library_tab import EVERY_RESULT, SELECTED, LibraryTab

XSS = "<img src=x onerror=alert(1)>"
PAGE_SIZE = 12


def write_safetensors(path: Path, metadata: dict[str, str], payload: bytes = b"\x00\x3c") -> Path:
    """A real, tiny .safetensors file: one F16 1x1 tensor (so rank 1) and the given __metadata__."""
    header = {"__metadata__": metadata, "lora_unet_down.lora_down.weight": {"dtype": "F16", "shape": [1, 1], "data_offsets": [0, 2]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


def kohya(name: str, base: str = "sdxl_base_v1-0", **extra: str) -> dict[str, str]:
    md = {"ss_output_name": name, "ss_base_model_version": base, "ss_network_module": "networks.lora",
          "ss_network_dim": "8", "ss_network_alpha": "4", "ss_num_epochs": "10", "ss_resolution": "(1024, 1024)",
          "ss_tag_frequency": json.dumps({"5_thing": {name.lower(): 20, "solo": 12}})}
    md.update(extra)
    return md


@pytest.fixture
def lora_dir(tmp_path) -> Path:
    root = tmp_path / "Lora"
    for n in range(30):
        write_safetensors(root / "styles" / f"style_{n:02d}.safetensors", kohya(f"style_{n:02d}"))
    write_safetensors(root / f"{XSS}.safetensors",
                      kohya(XSS, "sd_v1", ss_training_comment="<script>alert(2)</script>", ss_sd_model_name='"><b>bold</b>'))
    write_safetensors(root / "portrait.safetensors", kohya("portrait", "sd_v1"))
    return root


@pytest.fixture
def library(tmp_path, lora_dir, monkeypatch):
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    lib = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], hashing=False)
    lib.indexer.scan()
    yield lib
    lib.close()


def host_with(**values) -> HostInfo:
    current = {s.key: s.default for s in settings.SETTINGS} | {"lora_manager_page_size": PAGE_SIZE} | values
    return HostInfo(name="test", api_base="/base", setting=current.__getitem__)


@pytest.fixture
def tab(library) -> LibraryTab:
    host = host_with()
    [(blocks, title, elem_id)] = ui.build_tabs(lambda: library, host)
    assert (title, elem_id) == ("LoRA Manager", "lora_manager")
    return LibraryTab(lambda: library, host)


def search(tab: LibraryTab, text: str = "", view: str = "Grid", selected: str = "", **quick) -> tuple:
    args = dict(base=filters.ANY, adapter=filters.ANY, favorites=False, rating=filters.ANY, tag=filters.ANY,
                problems=filters.ANY, sort=filters.default_sort()) | quick
    return tab.search(text, args["base"], args["adapter"], args["favorites"], args["rating"], args["tag"],
                      args["problems"], args["sort"], view, selected)


def card_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="lm-card[^"]*" data-id="(\d+)"', html)]


def by_name(library: Library, name: str) -> int:
    return next(i.id for i in library.search("", per_page=200).items if i.filename == f"{name}.safetensors")


# --- building -------------------------------------------------------------------------------

def test_blocks_have_the_glue_elements_and_no_hotkey_suffixes(library):
    opened = []

    def open_library():
        opened.append(1)
        return library

    [(blocks, _title, _elem_id)] = ui.build_tabs(open_library, host_with())
    assert opened == []  # building the tab never touches the database (SDNext's startup budget)
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()} - {None}
    assert {"lora_manager_search", "lora_manager_open_id", "lora_manager_open_btn", "lora_manager_selected",
            "lora_manager_results", "lora_manager_token", "lora_manager_copy_token"} <= ids
    assert not [i for i in ids if i.endswith(("_generate", "_interrupt"))]
    assert all(i.startswith("lora_manager") for i in ids)
    # the page script's first refresh brings one page
    results = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "lora_manager_results")
    assert "Loading" in results.value and card_ids(results.value) == []
    state = next(b for b in blocks.blocks.values() if isinstance(getattr(b, "value", None), dict) and "q" in b.value)
    html, _description, _pager, _state = LibraryTab(open_library, host_with()).refresh(state.value, "Grid", "")
    assert len(card_ids(html)) == PAGE_SIZE


def test_tab_is_laid_out_once_in_the_host_blocks(library):
    """SDNext and the standalone app build the tabs first and render them into their own Blocks;
    each component appears once in the page layout."""
    import gradio as gr

    from lib_lora_manager.hosts.standalone import build_blocks

    def layout_ids(config: dict) -> list[int]:
        out, todo = [], [config["layout"]]
        while todo:
            node = todo.pop()
            out.append(node["id"])
            todo.extend(node.get("children", []))
        return out

    tabs = ui.build_tabs(lambda: library, host_with())
    with gr.Blocks() as sdnext_like:
        with gr.Tabs(elem_id="tabs"):
            for blocks, title, elem_id in tabs:
                with gr.TabItem(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
    for demo in (sdnext_like, build_blocks(library, host_with())):
        ids = layout_ids(demo.get_config_file())
        assert len(ids) == len(set(ids))
        search = [b._id for b in demo.blocks.values() if getattr(b, "elem_id", None) == "lora_manager_search"]
        assert len(search) == 1 and search[0] in ids
        assert any(d["trigger"] == "submit" and search[0] in d["targets"] for d in demo.get_config_file()["dependencies"])


# --- searching and paging -------------------------------------------------------------------

def test_search_returns_one_page_of_escaped_cards(tab):
    html, description, pager, state = search(tab, "style")
    assert len(card_ids(html)) == PAGE_SIZE
    assert state["total"] == 30 and state["pages"] == 3 and state["page"] == 1
    assert "Page 1 of 3 · 30 LoRAs" in pager
    assert "matching “style”" in description and "style" in description
    assert '/base/lora-manager/v1/loras/' not in html  # no previews yet: placeholders only
    assert 'class="lm-placeholder lm-base-sdxl">XL<' in html

    second = tab.next_page(state, "Grid", "")
    assert second[3]["page"] == 2 and not set(card_ids(second[0])) & set(card_ids(html))
    last = tab.last_page(state, "Grid", "")
    assert last[3]["page"] == 3 and len(card_ids(last[0])) == 30 - 2 * PAGE_SIZE
    assert tab.next_page(last[3], "Grid", "")[3]["page"] == 3  # stays on the last page
    assert tab.prev_page(second[3], "Grid", "")[3]["page"] == 1


def test_quick_filters_compose_into_the_query(tab, library):
    q = filters.effective_query("style", "SD1.5", "lora", True, "★★★★ 4 or more", "blue hair", "Healthy only",
                                "Rating (highest first)")
    assert q == 'sort:-rating style base:sd1 type:lora fav:yes rating:>=4 tag:"blue hair" missing:no error:no'
    html, description, _pager, state = search(tab, "", base="SD1.5")
    assert state["total"] == 2 and "for SD1.5" in description and "base:sd1" in description
    # a sort typed by the user wins over the sort dropdown
    typed = search(tab, "style sort:-name", sort="Name (A to Z)")[3]["q"]
    assert typed.index("sort:-name") > typed.index("style")


def test_invalid_query_shows_the_message_and_keeps_the_results(tab):
    html, description, pager, state = search(tab, 'tag:"unclosed')
    assert "unclosed quote" in description and "lm-error" in description
    assert "Traceback" not in description
    for kept in (html, pager, state):  # gr.update() with nothing in it: the previous value stays
        assert isinstance(kept, dict) and "value" not in kept
    assert "unknown filter" in search(tab, "nonsense:1")[1]


def test_table_view_and_selection_marks(tab, library):
    first = library.search("style", per_page=PAGE_SIZE).items[0].id
    html, *_ = search(tab, "style", view="Table", selected=f"{first},999")
    assert len(re.findall(r'<tr class="lm-row[^"]*" data-id=', html)) == PAGE_SIZE
    assert f'class="lm-row lm-selected" data-id="{first}"' in html


def test_xss_name_is_text_in_cards_table_and_detail(tab, library):
    xss_id = by_name(library, XSS)
    for view in ("Grid", "Table"):
        html = search(tab, "onerror", view=view)[0]
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<img src=x" not in html and "<script" not in html
    detail = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(xss_id))))
    view = detail["view"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in view
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in view  # ss_training_comment, in the metadata table
    assert "&quot;&gt;&lt;b&gt;bold&lt;/b&gt;" in view
    assert "<script" not in view and "<img src=x" not in view and "<b>bold" not in view
    assert detail["token"] == f"<lora:{XSS}:1>"  # a Textbox value: shown as text by Gradio


# --- detail panel ---------------------------------------------------------------------------

def test_detail_shows_metadata_fields_and_loads_the_raw_header_on_demand(tab, library):
    lora_id = by_name(library, "style_03")
    detail = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(lora_id))))
    view = detail["view"]
    for text in ("style_03.safetensors", "SDXL", "networks.lora", "1 / 4.0", "ss_network_dim", "Training metadata",
                 "not hashed yet", "Dim / alpha"):
        assert text in view, text
    assert detail["column"]["visible"] is True and detail["id"] == lora_id
    assert detail["raw_header"] == ""  # never the whole header in the first response
    assert "style_03" in detail["suggestions"]["choices"]
    text, message = tab.raw_header(lora_id)
    assert json.loads(text)["__metadata__"]["ss_output_name"] == "style_03" and message == ""
    assert "no LoRA" in dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail("424242")))["status"]


def test_saving_persists_and_validation_errors_are_messages(tab, library):
    lora_id = by_name(library, "portrait")
    out = dict(zip(LibraryTab.DETAIL_FIELDS, tab.save(
        lora_id, "Nice Portrait", "faces, Photo ", "4", True, True, "my notes", "prt, face", 0.8, 0.5, 1.2, "Pony")))
    assert "Saved." in out["status"]
    d = library.get(lora_id)
    assert (d.rating, d.favorite, d.nsfw, d.notes) == (4, True, True, "my notes")
    assert d.tags == ["faces", "photo"] and d.trigger_words == ["prt", "face"]
    assert (d.default_weight, d.weight_min, d.weight_max) == (0.8, 0.5, 1.2)
    assert d.base_model == "pony" and d.name == "Nice Portrait"
    assert out["token"] == "<lora:portrait:0.8>" and out["rating"] == "4" and out["base"] == "Pony"

    bad = dict(zip(LibraryTab.DETAIL_FIELDS, tab.save(
        lora_id, "x", "", "2", False, False, "", "", 0.8, 1.5, 1.0, "auto")))
    assert "Not saved" in bad["status"] and "reversed" in bad["status"]
    assert library.get(lora_id).rating == 4  # unchanged

    cleared = dict(zip(LibraryTab.DETAIL_FIELDS, tab.save(
        lora_id, "", "", "unrated", False, False, "", "", None, None, None, "auto")))
    assert "Saved." in cleared["status"] and library.get(lora_id).rating is None
    assert library.get(lora_id).base_model == "sd1"


def test_trigger_suggestions_are_added_to_the_field(tab):
    text, message = tab.add_suggestions("a, b", ["b", "c"])
    assert text == "a, b, c" and "Added 1 trigger word" in message
    text, message = tab.add_suggestions("(red, blue:1.2), A", ["a", "red", "blue:1.2"])  # the trigger words' own split
    assert text == "(red, blue:1.2), A, red, blue:1.2" and "Added 2 trigger words" in message


def test_saving_one_box_never_rewrites_another(tab, library):
    """Trigger words whose shown text would split differently, and notes another process
    changed while the panel was open, survive a save that only changes the rating."""
    lora_id = by_name(library, "portrait")
    library.edit(lora_id, trigger_words=["x [y", "z]"], notes="mine")
    opened = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(lora_id))))
    assert opened["triggers"] == "x [y, z]"
    library.edit(lora_id, notes="changed elsewhere")
    out = dict(zip(LibraryTab.DETAIL_FIELDS, tab.save(
        lora_id, "", opened["tags"], "3", False, False, opened["notes"], opened["triggers"], None, None, None, "auto",
        opened["loaded_tags"], opened["loaded_form"])))
    assert "Saved." in out["status"]
    d = library.get(lora_id)
    assert (d.rating, d.trigger_words, d.notes) == (3, ["x [y", "z]"], "changed elsewhere")
    # a box the user did change is saved, by the one splitting rule
    tab.save(lora_id, "", "", "3", False, False, "changed elsewhere", "a, (b, c)", None, None, None, "auto",
             [], dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(lora_id))))["loaded_form"])
    assert library.get(lora_id).trigger_words == ["a", "(b, c)"]


def test_preview_upload_candidate_clear_and_nsfw_blur(tab, library, lora_dir, tmp_path):
    from PIL import Image

    lora_id = by_name(library, "portrait")
    upload = tmp_path / "upload.png"
    Image.new("RGB", (64, 96), (200, 30, 30)).save(upload)
    out = tab.set_preview_upload(lora_id, str(upload))
    assert "Preview updated." in out[LibraryTab.DETAIL_FIELDS.index("status")] and out[-1] is None
    assert library.get(lora_id).has_preview
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert "not an image" in tab.set_preview_upload(lora_id, str(bad))[LibraryTab.DETAIL_FIELDS.index("status")]

    library.edit(lora_id, nsfw=True)
    html = search(tab, "portrait")[0]
    assert f'src="/base/lora-manager/v1/loras/{lora_id}/preview?size=320&amp;v=' in html
    assert "lm-blur" not in html  # NSFW previews are shown by default
    hidden = LibraryTab(lambda: library, host_with(lora_manager_show_nsfw=False))
    assert 'class="lm-thumb lm-blur"' in search(hidden, "portrait")[0]

    shutil.copy(upload, lora_dir / "portrait.preview.png")
    out = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(lora_id)))
    assert out["candidates"]["choices"] == ["portrait.preview.png"]
    assert "Preview set from portrait.preview.png" in dict(zip(LibraryTab.DETAIL_FIELDS, tab.use_candidate(lora_id, "portrait.preview.png")))["status"]
    assert "not next to this LoRA" in dict(zip(LibraryTab.DETAIL_FIELDS, tab.use_candidate(lora_id, "../../etc/passwd")))["status"]
    assert "removed" in dict(zip(LibraryTab.DETAIL_FIELDS, tab.clear_preview(lora_id)))["status"]


# --- bulk, tags, duplicates, scan -----------------------------------------------------------

def test_bulk_add_tags_on_every_result_of_the_query(tab, library):
    state = search(tab, "style_0")[3]
    message, apply_button, pending = tab.bulk_review("Add tags", "batch one", "auto", None, EVERY_RESULT, "", state)
    assert "for 10 LoRAs" in message and apply_button["visible"] is True and "10 LoRAs" in apply_button["value"]
    assert library.search("tag:\"batch one\"").total == 0  # nothing happens before Apply
    message, apply_button, pending_after, _sel = tab.bulk_apply(pending, "")
    assert "done for 10 LoRAs" in message and pending_after is None and apply_button["visible"] is False
    assert library.search('tag:"batch one"').total == 10


def test_bulk_on_selected_cards_rate_and_trash_with_undo(tab, library):
    a, b = by_name(library, "style_01"), by_name(library, "style_02")
    state = search(tab)[3]
    assert "No cards are selected" in tab.bulk_review("Rate", "5", "auto", None, SELECTED, "", state)[0]
    assert "from 1 to 5" in tab.bulk_review("Rate", "9", "auto", None, SELECTED, f"{a}", state)[0]
    _msg, _btn, pending = tab.bulk_review("Rate", "5", "auto", None, SELECTED, f"{a},{b}", state)
    tab.bulk_apply(pending, f"{a},{b}")
    assert library.get(a).rating == 5 and library.get(b).rating == 5

    _msg, button, pending = tab.bulk_review("Move to trash", "", "auto", None, SELECTED, f"{a},{b}", state)
    assert button["variant"] == "stop"
    message, _btn, _p, new_selected = tab.bulk_apply(pending, f"{a},{b},7")
    assert "Undo last trash" in message and new_selected == "7"
    assert library.search("style_01").total == 0
    assert "Restored 2 LoRAs" in tab.undo_trash()
    assert library.search("style_01").total == 1


def test_bulk_move_and_base_model(tab, library, lora_dir):
    a = by_name(library, "portrait")
    state = search(tab)[3]
    _m, _b, pending = tab.bulk_review("Move to folder", "people", "auto", str(lora_dir), SELECTED, str(a), state)
    assert "done for 1 LoRA" in tab.bulk_apply(pending, str(a))[0]
    assert library.get(a).relpath == "people/portrait.safetensors"
    _m, _b, pending = tab.bulk_review("Set base model", "", "Flux.1", None, SELECTED, str(a), state)
    tab.bulk_apply(pending, str(a))
    assert library.get(a).base_model == "flux"


def test_tags_rename_and_merge(tab, library):
    a, b = by_name(library, "style_01"), by_name(library, "style_02")
    library.edit(a, tags=["anime", "wip"])
    library.edit(b, tags=["animé"])
    message, tag_html, rename_from, merge_from, filter_tag = tab.rename_tag("wip", "Draft")
    assert "Renamed “wip” to “draft” on 1 LoRA" in message and "draft" in rename_from["choices"]
    assert filter_tag["choices"][0] == filters.ANY and "draft" in filter_tag["choices"]
    message, *_ = tab.merge_tags(["animé"], "anime")
    assert "on 1 LoRA" in message and library.get(b).tags == ["anime"]
    assert "Choose the tags" in tab.merge_tags([], "x")[0]


def test_duplicates_keep_one_and_undo(tab, library, lora_dir):
    original = lora_dir / "styles" / "style_05.safetensors"
    shutil.copy(original, lora_dir / "copy_of_style_05.safetensors")
    library.indexer.scan()
    library.indexer.hash_pending()
    html, keep, message, _best_button, _plan = tab.find_duplicates()
    assert "1 group" in message and len(keep["choices"]) == 2 and "copy_of_style_05" in html
    kept = int(keep["choices"][0].split(" ")[0][1:])
    other = int(keep["choices"][1].split(" ")[0][1:])
    html, keep, message, _best_button, _plan, selected = tab.keep_duplicate(keep["choices"][0], f"{other},{kept},3")
    assert "moved 1 file to the trash" in message and keep["choices"] == []
    assert selected == f"{kept},3"  # the trashed copy leaves the selection
    html, keep, message, _best_button, _plan = tab.undo_duplicates()
    assert "Restored 1 LoRA" in message and len(keep["choices"]) == 2


def test_scan_reports_progress_and_busy(tab, library, lora_dir):
    write_safetensors(lora_dir / "new_one.safetensors", kohya("new_one"))
    calls, nested = [], []

    def progress(fraction, desc=""):
        calls.append((fraction, desc))
        if not nested:  # a second scan while this one runs: a message, not an exception
            nested.append(tab.scan())

    message, stats = tab.scan(progress)
    assert "Scan finished" in message and "33 LoRAs" in stats and calls
    assert "already running" in nested[0][0]


def test_card_markup_is_escaped():
    item = LoraSummary(
        id=3, name=XSS, filename="a.safetensors", relpath=XSS, folder=XSS, prompt_name="a", token="<lora:a:1>",
        token_problem=None, base_model="x\"y", base_model_label="x\"y", adapter_type=XSS, size=1, rating=None,
        favorite=False, nsfw=False, tags=['"><script>'], trigger_words=[], missing=False, error='<b onmouseover="x">',
        sha256=None, autov2=None, shorthash=None, has_preview=True, preview_version=5)
    html = cards.card(item, '/p"re', show_nsfw=True)
    assert "<script" not in html and "<b " not in html and 'src="/p&quot;re/lora-manager/v1/loras/3/preview?size=320&amp;v=5"' in html
    assert cards.initials("sdxl") == "XL" and cards.initials("flux") == "F1" and cards.initials(None) == "?"
    assert wording.human_size(1536) == "1.5 KB"


def test_saving_the_form_keeps_tags_added_meanwhile(tab, library):
    lora_id = by_name(library, "portrait")
    library.edit(lora_id, tags=["faces"])
    opened = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(lora_id))))
    assert opened["loaded_tags"] == ["faces"]
    library.add_tags([lora_id], ["added elsewhere"])  # e.g. a bulk action while the panel is open
    tab.save(lora_id, "", "faces, mine", "unrated", False, False, "", "", None, None, None, "auto", opened["loaded_tags"])
    assert library.get(lora_id).tags == ["added elsewhere", "faces", "mine"]
    tab.save(lora_id, "", "mine", "unrated", False, False, "", "", None, None, None, "auto", ["faces", "mine"])
    assert library.get(lora_id).tags == ["added elsewhere", "mine"]


# --- one-click rating, duplicates' best copies, unreadable files ------------------------------

def no_change() -> dict:
    import gradio as gr

    return gr.update()


def test_rating_from_a_card_persists_and_updates_the_open_form(tab, library):
    a, b = by_name(library, "style_03"), by_name(library, "style_04")
    html = search(tab)[0]
    # every card carries stars that rate on a click
    assert re.search(rf'class="lm-stars lm-rate lm-unrated" data-id="{a}" data-rating="0"', html)
    stored, message, rating_box, form = tab.rate_card(f"{a}:4", None, None)
    assert stored == f"{a}:4" and library.get(a).rating == 4
    assert message == no_change() and rating_box == no_change()
    # the detail panel shows b: rating a changes nothing there; rating b updates its form
    opened = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(b))))
    _stored, _m, rating_box, form = tab.rate_card(f"{a}:0", b, opened["loaded_form"])
    assert library.get(a).rating is None and rating_box == no_change()
    stored, _m, rating_box, form = tab.rate_card(f"{b}:2", b, opened["loaded_form"])
    assert stored == f"{b}:2" and rating_box == "2" and form["rating"] == 2
    # Save from that form afterwards does not send the old rating back
    tab.save(b, "", "", rating_box, False, False, "note", "", None, None, None, "auto", [], form)
    assert library.get(b).rating == 2 and library.get(b).notes == "note"
    assert 'data-rating="2"' in search(tab, "style_04")[0]
    # errors are messages, and the card gets back what is stored
    stored, message, *_ = tab.rate_card("999999:3", None, None)
    assert stored == "" and "Not rated" in message
    stored, message, *_ = tab.rate_card(f"{a}:9", None, None)
    assert stored == "" and "Not rated" in message and library.get(a).rating is None


def test_rating_stars_markup():
    html = cards.rating_stars(7, 3)
    assert html.count('class="lm-star lm-on"') == 3 and html.count('class="lm-star"') == 2
    assert 'data-star="3" title="Clear the rating"' in html and 'title="Rate 5 of 5"' in html
    assert 'data-rating="0"' in cards.rating_stars(7, None) and "lm-unrated" in cards.rating_stars(7, None)


def test_duplicate_badges_and_keep_the_best_of_every_group(tab, library, lora_dir):
    for n in ("05", "06"):
        shutil.copy(lora_dir / "styles" / f"style_{n}.safetensors", lora_dir / f"copy_of_style_{n}.safetensors")
        shutil.copy(lora_dir / "styles" / f"style_{n}.safetensors", lora_dir / f"second_copy_of_style_{n}.safetensors")
    library.indexer.scan()
    library.indexer.hash_pending()
    rated, favorite = by_name(library, "copy_of_style_05"), by_name(library, "second_copy_of_style_06")
    library.edit(rated, rating=3)
    library.edit(favorite, favorite=True)
    html = search(tab, "style_05")[0]
    assert html.count("3 copies</button>") == 3 and f'data-sha="{library.get(rated).sha256[:16]}"' in html
    assert "copies</button>" not in search(tab, "portrait")[0]
    assert "3 copies" in search(tab, "style_05", view="Table")[0]

    listing, _keep, message, button, plan = tab.keep_best_review()
    size = library.get(rated).size
    assert "each of the 2 groups" in message and "4 files" in message and wording.human_size(4 * size) in message
    assert button["visible"] is True and button["value"] == f"Trash 4 files ({wording.human_size(4 * size)})"
    assert sorted(plan["keep"]) == sorted([rated, favorite]) and listing.count(">best</span>") == 2
    assert library.search("dupe:yes").total == 6  # nothing moved yet

    selection = f"{by_name(library, 'copy_of_style_06')},{rated},1"
    *_outputs, selected = tab.keep_best_apply(plan, selection)
    message = _outputs[2]
    assert "moved 4 files to the trash" in message and selected == f"{rated},1"
    assert library.search("dupe:yes").total == 0
    assert {library.get(rated).rating, library.get(favorite).favorite} == {3, True}
    assert "Restored 4 LoRAs" in tab.undo_duplicates()[2]  # one trash batch: one undo
    assert library.search("dupe:yes").total == 6


def test_keep_the_best_with_no_duplicates(tab):
    listing, _keep, message, button, plan = tab.keep_best_review()
    assert "nothing to do" in message and button["visible"] is False and plan is None
    assert "first" in tab.keep_best_apply(None, "")[2]


def test_unreadable_file_shows_one_error_and_no_token(tab, library, lora_dir):
    from lib_lora_manager import synth

    synth.write_hostile(lora_dir / "broken_download.safetensors", "truncated")
    library.indexer.scan()
    library.indexer.hash_pending()
    lora_id = by_name(library, "broken_download")
    detail = library.get(lora_id)
    assert detail.error and detail.hash_error  # both reasons are stored …
    opened = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(lora_id))))
    errors = re.findall(r"<li>(.*?)</li>", opened["view"].split('class="lm-errors"')[1].split("</ul>")[0])
    assert len(errors) == 1 and "truncated" in errors[0]  # … the panel says it once
    assert opened["token_row"]["visible"] is False and opened["weight_row"]["visible"] is False
    html = search(tab, "broken_download")[0]
    assert "lm-compose-add" not in html
    readable = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(by_name(library, "portrait")))))
    assert readable["token_row"]["visible"] is True and readable["weight_row"]["visible"] is True
    assert "lm-compose-add" in search(tab, "portrait")[0]
