"""The Library tab in a real browser: Debian's chromium driven by Playwright for Python, against
the standalone app (FastAPI + REST + Gradio 3.43.2) served by uvicorn on a free port."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402  (tests/ is on sys.path, see conftest)
from test_ui import XSS, kohya, write_safetensors  # noqa: E402


def write_loras(root: Path) -> None:
    for n in range(20):
        write_safetensors(root / "styles" / f"style_{n:02d}.safetensors", kohya(f"style_{n:02d}"))
    write_safetensors(root / f"{XSS}.safetensors", kohya(XSS, "sd_v1", ss_training_comment="<script>alert(2)</script>"))


def test_search_open_rate_select_and_xss_in_the_browser(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, settings={"lora_manager_page_size": 12},
                                    timeout_ms=10_000, clipboard=True)
    url, library, page = session.url, session.library, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    results = page.locator("#lora_manager_results")
    expect(results.locator(".lm-card")).to_have_count(12)
    expect(page.locator("#lora_manager_pager .lm-pager-info")).to_contain_text("Page 1 of 2 · 21 LoRAs")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")

    # search: type, Enter, see the cards and the query in words
    search = page.locator("#lora_manager_search input, #lora_manager_search textarea").first
    search.fill("style_1")
    search.press("Enter")
    expect(page.locator("#lora_manager_description .lm-description")).to_contain_text("matching “style_1”")
    expect(results.locator(".lm-card")).to_have_count(10)
    expect(page.locator("#lora_manager_pager .lm-pager-info")).to_contain_text("Page 1 of 1 · 10 LoRAs")
    shot(page, "1-search")

    # open a card: the detail panel shows it; rate it and save
    card = results.locator(".lm-card", has_text="style_13")
    lora_id = int(card.get_attribute("data-id"))
    card.locator(".lm-thumb").click()
    detail = page.locator("#lora_manager_detail")
    expect(detail.locator(".lm-detail-name")).to_have_text("style_13")
    expect(page.locator("#lora_manager_token input, #lora_manager_token textarea").first).to_have_value("<lora:style_13:1>")
    page.locator("#lora_manager_edit_rating label", has_text="4").click()
    page.locator("#lora_manager_save").click()
    expect(page.locator("#lora_manager_detail_status .lm-message")).to_contain_text("Saved.")
    assert library.get(lora_id).rating == 4
    with urllib.request.urlopen(f"{url}/lora-manager/v1/loras/{lora_id}") as response:
        assert json.load(response)["rating"] == 4
    expect(card.locator(".lm-stars")).to_have_attribute("title", "rated 4 of 5")
    shot(page, "2-detail")

    # copy the prompt token; load the raw header only when asked
    page.locator("#lora_manager_copy_token").click()
    expect(page.locator("#lora_manager_copy_token")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == "<lora:style_13:1>"
    raw = page.locator("#lora_manager_raw_header textarea")
    assert raw.input_value() == ""
    page.locator("#lora_manager_raw_header_acc").get_by_text("Raw header", exact=True).click()
    page.locator("#lora_manager_load_header").click()
    expect(raw).to_have_value(re.compile(r'"ss_output_name": "style_13"'))

    # upload a preview: the card shows the thumbnail from the REST route
    image = Path(library.store.data_dir) / "upload.png"
    Image.new("RGB", (60, 80), (30, 120, 200)).save(image)
    page.locator("#lora_manager_preview_acc").get_by_text("Preview image", exact=True).click()
    page.locator("#lora_manager_preview_upload input[type=file]").set_input_files(str(image))
    expect(page.locator("#lora_manager_detail_status .lm-message")).to_contain_text("Preview updated.")
    thumb = card.locator("img.lm-thumb-img")
    expect(thumb).to_have_attribute("src", re.compile(rf"^/lora-manager/v1/loras/{lora_id}/preview\?size=320&v=\d+$"))
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())

    # select two cards and tag them with the bulk bar
    for name in ("style_10", "style_11"):
        results.locator(".lm-card", has_text=name).locator(".lm-select-box").check()
    ids = sorted(int(results.locator(".lm-card", has_text=n).get_attribute("data-id")) for n in ("style_10", "style_11"))
    expect(page.locator("#lora_manager_selection .lm-sel-count")).to_contain_text("2 selected")
    page.locator("#lora_manager_bulk_value input, #lora_manager_bulk_value textarea").first.fill("picked")
    page.locator("#lora_manager_bulk_review").click()
    expect(page.locator("#lora_manager_bulk_message .lm-message")).to_contain_text("for 2 LoRAs (the selected cards)")
    page.locator("#lora_manager_bulk_apply").click()
    expect(page.locator("#lora_manager_bulk_message .lm-message")).to_contain_text("done for 2 LoRAs")
    assert sorted(i.id for i in library.search("tag:picked").items) == ids

    # a scan from the UI: progress, then the summary and fresh stats
    write_safetensors(Path(library.store.roots[0]) / "new_one.safetensors", kohya("new_one"))
    page.locator("#lora_manager_scan").click()
    expect(page.locator("#lora_manager_scan_message .lm-message")).to_contain_text("Scan finished: 22 files, 1 new")
    expect(page.locator("#lora_manager_stats .lm-stats")).to_contain_text("22 LoRAs")

    # the LoRA named like an HTML tag is text, not markup
    search.fill("onerror")
    search.press("Enter")
    xss_card = results.locator(".lm-card")
    expect(xss_card).to_have_count(1)
    expect(xss_card.locator(".lm-name")).to_have_text(XSS)
    xss_card.locator(".lm-thumb").click()
    expect(detail.locator(".lm-detail-name")).to_have_text(XSS)
    expect(detail.locator(".lm-meta")).to_contain_text("<script>alert(2)</script>")
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("#lora_manager_library script").count() == 0
    shot(page, "3-xss")
    assert session.dialogs == []


# --- one-click stars, the bulk bar, duplicates, unreadable files, tables and filters ------------

import time  # noqa: E402

from lib_lora_manager import demo  # noqa: E402
from lib_lora_manager.history import GenerationRecord  # noqa: E402
from lib_lora_manager.ui import filters  # noqa: E402

WIDTHS = (1024, 1600)


def card_named(results, name: str):
    return results.locator(".lm-card", has=results.page.locator(".lm-name", has_text=re.compile(f"^{re.escape(name)}$")))


def bar_box(page) -> dict:
    return page.evaluate("""() => { const r = document.querySelector('#lora_manager_bulkbar').getBoundingClientRect();
        return {top: r.top, bottom: r.bottom, height: r.height, vh: window.innerHeight}; }""")


def test_card_stars_sticky_bulk_bar_and_selection_after_trash(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, viewport=(1024, 800), timeout_ms=10_000)
    url, library, page = session.url, session.library, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    results = page.locator("#lora_manager_results")
    expect(results.locator(".lm-card")).to_have_count(21)
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    expect(page.locator("#lora_manager_stats .lm-stats")).to_contain_text("21 LoRAs")  # the first refresh is over
    # the page asks for less motion (tests/browser.py): the cards' hover lift is off
    assert results.locator(".lm-card").first.evaluate("(el) => getComputedStyle(el).transitionDuration") == "0s"

    # (a) one click on the fourth star rates 4: the card changes in place (the same element, the
    # page where it was), the rating is stored; a click on the current rating clears it
    page.mouse.wheel(0, 700)
    page.wait_for_function("() => window.scrollY > 300")
    page.evaluate("() => { document.querySelector('#lora_manager_results .lm-results-inner').dataset.probe = 'kept'; }")
    card = card_named(results, "style_07")
    lora_id = int(card.get_attribute("data-id"))
    stars = card.locator(".lm-rate")
    # every height the page above the cards takes while the clicks' answers are pending (a
    # growing message box there moved the page under the pointer)
    page.evaluate("""() => { window.lmAbove = new Set(); new ResizeObserver(() => window.lmAbove.add(
        document.querySelector('#lora_manager_results').getBoundingClientRect().top + window.scrollY))
        .observe(document.querySelector('#lora_manager_bulkbar')); }""")
    stars.locator(".lm-star[data-star='4']").click()
    stars.evaluate("(el) => el.scrollIntoView({block: 'center'})")  # so no later click needs to scroll
    where = card.bounding_box()["y"]
    expect(stars).to_have_attribute("data-rating", "4")
    expect(stars.locator(".lm-star.lm-on")).to_have_count(4)
    deadline = time.time() + 10
    while library.get(lora_id).rating != 4 and time.time() < deadline:
        time.sleep(0.1)
    assert library.get(lora_id).rating == 4
    stars.locator(".lm-star[data-star='4']").click()
    expect(stars).to_have_attribute("data-rating", "0")
    deadline = time.time() + 10
    while library.get(lora_id).rating is not None and time.time() < deadline:
        time.sleep(0.1)
    assert library.get(lora_id).rating is None
    stars.locator(".lm-star[data-star='2']").click()
    page.wait_for_function("() => document.querySelector('#lora_manager_rated textarea, #lora_manager_rated input').value.endsWith(':2')")
    assert library.get(lora_id).rating == 2
    assert page.evaluate("() => document.querySelector('#lora_manager_results .lm-results-inner').dataset.probe") == "kept"
    assert len(page.evaluate("() => [...window.lmAbove]")) == 1  # nothing above the cards changed height
    assert abs(card.bounding_box()["y"] - where) < 5  # and the card stayed where it was on screen
    expect(page.locator("#lora_manager_detail")).to_be_hidden()  # a star click does not open the card
    shot(page, "library-card-stars-1024")
    page.set_viewport_size({"width": 1600, "height": 800})
    shot(page, "library-card-stars-1600")
    page.set_viewport_size({"width": 1024, "height": 800})

    # (b) while cards are selected, the bulk bar stays on screen over the cards as the page scrolls
    page.evaluate("() => window.scrollTo(0, 0)")
    names = ("style_01", "style_02")
    for name in names:
        card_named(results, name).locator(".lm-select-box").check()
    ids = [int(card_named(results, n).get_attribute("data-id")) for n in names]
    expect(page.locator("#lora_manager_selection .lm-sel-count")).to_have_text("2 selected")
    page.mouse.wheel(0, 1600)
    page.wait_for_function("() => window.scrollY > 1000")
    page.wait_for_timeout(200)
    box = bar_box(page)
    assert -1 <= box["top"] <= 2 and box["bottom"] <= box["vh"], box
    expect(page.locator("#lora_manager_bulk_review")).to_be_in_viewport()
    shot(page, "library-bulkbar-sticky-1024")
    page.set_viewport_size({"width": 1600, "height": 800})
    page.wait_for_timeout(200)
    box = bar_box(page)
    assert -1 <= box["top"] <= 2, box
    shot(page, "library-bulkbar-sticky-1600")
    page.set_viewport_size({"width": 1024, "height": 800})

    # (c) trash from the bar, still scrolled: the selection is empty afterwards, and says so
    page.locator("#lora_manager_bulk_action").click()
    page.locator("ul.options li", has_text="Move to trash").click()
    page.locator("#lora_manager_bulk_review").click()
    expect(page.locator("#lora_manager_bulk_message .lm-message")).to_contain_text("for 2 LoRAs (the selected cards)")
    page.locator("#lora_manager_bulk_apply").click()
    expect(page.locator("#lora_manager_bulk_message .lm-message")).to_contain_text("done for 2 LoRAs")
    expect(results.locator(".lm-card")).to_have_count(19)
    expect(page.locator("#lora_manager_selection .lm-sel-count")).to_have_text("No cards selected")
    assert page.evaluate("() => window.loraManager.selectedIds()") == []
    expect(page.locator("#lora_manager_bulkbar")).not_to_have_class(re.compile("lm-has-selection"))
    assert all(library.get(i).trashed_at for i in ids)
    assert session.dialogs == []


def demo_library_with_history(library) -> None:
    library.indexer.hash_pending()
    now = time.time()
    for n in range(6):
        prompt = ("a knight in shining armour standing on a hill at sunset with dramatic clouds, masterpiece, "
                  f"best quality, number {n} <lora:aria_knight:0.7>")
        library.history.record(GenerationRecord(
            started_at=now - 100 + n, status="succeeded", source="txt2img", prompt=prompt, seeds=[n], steps=20,
            width=1024, height=1024, model_name="sdxl_base_1.0_0.9vae", loras=GenerationRecord.loras_from_prompt(prompt)))


def test_duplicate_badges_keep_the_best_and_the_unreadable_file(standalone_in_browser):
    session = standalone_in_browser(add_loras=demo.create_demo_library, prepare=demo_library_with_history,
                                    viewport=(1024, 900), timeout_ms=10_000)
    url, library, page = session.url, session.library, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    results = page.locator("#lora_manager_results")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    expect(results.locator(".lm-card").first).to_be_visible()

    # (d) the two copies of a file carry a badge; a click shows both
    badges = results.locator(".lm-dupe-badge")
    expect(badges).to_have_count(2)
    expect(badges.first).to_have_text("2 copies")
    badges.first.click()
    expect(page.locator("#lora_manager_description .lm-description")).to_contain_text("with hash")
    expect(results.locator(".lm-card")).to_have_count(2)
    shot(page, "library-duplicate-badge-1024")

    # keep the best of every group: what goes (files, bytes) first, then the trash
    page.locator("#lora_manager_dupes_acc").get_by_text("Duplicates", exact=True).click()
    page.locator("#lora_manager_keep_best").click()
    message = page.locator("#lora_manager_dupes_message .lm-message")
    expect(message).to_contain_text("moves 1 file (")
    expect(page.locator("#lora_manager_best_rule .lm-help")).to_contain_text("the favorite, else the highest rated")
    expect(page.locator("#lora_manager_dupes .lm-keep")).to_have_count(1)
    confirm = page.locator("#lora_manager_keep_best_apply")
    expect(confirm).to_have_text(re.compile(r"^\s*Trash 1 file \(\d"))
    shot(page, "library-duplicates-review-1024")
    page.set_viewport_size({"width": 1600, "height": 900})
    shot(page, "library-duplicates-review-1600")
    page.set_viewport_size({"width": 1024, "height": 900})
    assert len(library.files.duplicates()) == 1  # nothing moved before the confirmation
    confirm.click()
    expect(message).to_contain_text("moved 1 file to the trash")
    assert library.files.duplicates() == []
    expect(results.locator(".lm-card")).to_have_count(1)
    expect(results.locator(".lm-dupe-badge")).to_have_count(0)

    # 9: an unreadable file: one error line, no token, no composition, no weights
    search = page.locator("#lora_manager_search input, #lora_manager_search textarea").first
    search.fill("broken_download")
    search.press("Enter")
    # the result before also had one card: wait for this search's card, not a count
    expect(results.locator(".lm-card", has_text="broken_download")).to_have_count(1)
    expect(results.locator(".lm-card")).to_have_count(1)
    expect(results.locator(".lm-compose-add")).to_have_count(0)
    results.locator(".lm-card .lm-thumb").click()
    detail = page.locator("#lora_manager_detail")
    expect(detail.locator(".lm-detail-name")).to_have_text("broken_download")
    expect(detail.locator(".lm-errors li")).to_have_count(1)
    expect(detail.locator(".lm-errors li")).to_contain_text("truncated")
    for hidden in ("#lora_manager_token", "#lora_manager_add_to_compose", "#lora_manager_copy_token",
                   "#lora_manager_edit_weight", "#lora_manager_edit_weight_min"):
        expect(page.locator(hidden)).to_be_hidden()
    shot(page, "library-unreadable-detail-1024")
    page.set_viewport_size({"width": 1600, "height": 900})
    shot(page, "library-unreadable-detail-1600")
    # a readable one shows them again
    search.fill("Café Owner")
    search.press("Enter")
    expect(results.locator(".lm-card", has_text="Café Owner")).to_have_count(1)
    expect(results.locator(".lm-card")).to_have_count(1)
    results.locator(".lm-card .lm-thumb").click()
    expect(detail.locator(".lm-detail-name")).to_have_text("Café Owner")
    expect(page.locator("#lora_manager_add_to_compose")).to_be_visible()
    expect(page.locator("#lora_manager_edit_weight")).to_be_visible()
    assert session.dialogs == []


FITS_JS = """(ids) => ids.map((id) => {
    const input = document.querySelector(`#${id} input`);
    const style = getComputedStyle(input);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return [id, room];
})"""

TEXT_WIDTH_JS = """([id, text]) => {
    const input = document.querySelector(`#${id} input`);
    const style = getComputedStyle(input);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    return ctx.measureText(text).width;
}"""

TABLE_JS = """(list) => {
    const wrap = document.querySelector(`#${list} .lm-table-wrap`);
    const box = wrap.getBoundingClientRect();
    const heads = Array.from(wrap.querySelectorAll('th')).filter((th) => th.offsetParent !== null);
    return {overflow: wrap.scrollWidth - wrap.clientWidth,
            clipped: heads.filter((th) => th.getBoundingClientRect().right > box.right + 1).map((th) => th.textContent),
            heads: heads.map((th) => th.textContent)};
}"""


@pytest.mark.parametrize("width", WIDTHS)
def test_filters_and_tables_fit_beside_the_detail_panel(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=demo.create_demo_library, prepare=demo_library_with_history,
                                    viewport=(width, 900), timeout_ms=10_000)
    page = session.page
    expect = sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    expect(page.locator("#lora_manager_results .lm-card").first).to_be_visible()

    # (f) every label of the fixed filter dropdowns fits its box (the sort's are the longest)
    choices = {"lora_manager_sort": list(filters.sort_choices()), "lora_manager_filter_base": filters.BASE_CHOICES,
               "lora_manager_filter_type": filters.TYPE_CHOICES, "lora_manager_filter_rating": list(filters.RATING_CHOICES),
               "lora_manager_filter_problems": list(filters.PROBLEM_CHOICES)}
    rooms = dict(page.evaluate(FITS_JS, list(choices)))
    cut = [(box, label) for box, labels in choices.items() for label in labels
           if page.evaluate(TEXT_WIDTH_JS, [box, label]) > rooms[box]]
    shot(page, f"library-filters-{width}")
    assert cut == [], (rooms, cut)

    # (e) the Library table beside the detail panel: no column cut off, names on one line
    page.locator("#lora_manager_view label", has_text="Table").click()
    rows = page.locator("#lora_manager_results .lm-row")
    expect(rows.first).to_be_visible()
    rows.nth(1).locator(".lm-row-name").click()
    expect(page.locator("#lora_manager_detail .lm-detail-name")).to_be_visible()
    page.wait_for_timeout(300)
    table = page.evaluate(TABLE_JS, "lora_manager_results")
    assert table["overflow"] <= 1 and table["clipped"] == [], table
    assert {"Name", "Base", "Rating", "Size"} <= set(table["heads"])
    one_line = page.evaluate("""() => Array.from(document.querySelectorAll('#lora_manager_results .lm-row-name'))
        .every((el) => el.getBoundingClientRect().height <= parseFloat(getComputedStyle(el).lineHeight) * 1.5 + 1)""")
    assert one_line
    shot(page, f"library-table-detail-{width}")

    # the History table (same table styles) beside its detail: nothing cut, the prompt readable
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()
    page.locator("#lora_manager_history_view label", has_text="Table").click()
    history_rows = page.locator("#lora_manager_history_results .lm-row")
    expect(history_rows).to_have_count(6)
    history_rows.first.click()
    expect(page.locator("#lora_manager_history_detail")).to_be_visible()
    page.wait_for_timeout(300)
    table = page.evaluate(TABLE_JS, "lora_manager_history_results")
    assert table["overflow"] <= 1 and table["clipped"] == [], table
    assert {"Date", "Prompt", "LoRAs", "Rating"} <= set(table["heads"])
    prompt_width = page.evaluate("() => document.querySelector('#lora_manager_history_results .lm-row-prompt').getBoundingClientRect().width")
    assert prompt_width >= 120  # a few words a line, never one
    shot(page, f"history-table-detail-{width}")
    assert session.dialogs == []
