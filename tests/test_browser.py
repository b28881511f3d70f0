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
    page.locator("#lora_manager_bulk_acc").get_by_text("Bulk actions").click()
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
