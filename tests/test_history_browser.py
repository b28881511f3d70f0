"""The History tab in a real browser (Debian's chromium via Playwright) against the standalone
app: first-view refresh, card → detail, rating, escaping, the LoRA link into the Library tab."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_ui import XSS, kohya, write_safetensors  # noqa: E402

from lib_lora_manager.history import GeneratedImage, GenerationRecord  # noqa: E402


def record_generations(library, out: Path) -> None:
    """15 generations with anime_style, one a second, the last with a hostile prompt."""
    now = time.time()
    for n in range(15):
        image = out / f"{n}.png"
        image.parent.mkdir(exist_ok=True)
        Image.new("RGB", (512, 384), (15 * n, 90, 160)).save(image)
        prompt = f"{XSS} castle {n} <lora:anime_style:0.8>" if n == 14 else f"meadow {n} <lora:anime_style:0.5>"
        library.history.record(GenerationRecord(
            started_at=now - 100 + n, status="succeeded", source="txt2img", prompt=prompt, seeds=[n], steps=20,
            width=512, height=384, model_name="tiny", loras=GenerationRecord.loras_from_prompt(prompt),
            images=[GeneratedImage(path=str(image), seed=n)]))


def test_history_tab_in_the_browser(standalone_in_browser, tmp_path):
    session = standalone_in_browser(
        add_loras=lambda root: write_safetensors(root / "anime_style.safetensors", kohya("anime_style")),
        prepare=lambda library: record_generations(library, tmp_path / "out"),
        settings={"lora_manager_page_size": 12})
    url, library, page = session.url, session.library, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()

    # first view fills the gallery; thumbnails come from the REST route
    results = page.locator("#lora_manager_history_results")
    expect(results.locator(".lm-card")).to_have_count(12)
    expect(page.locator("#lora_manager_history_pager .lm-pager-info")).to_contain_text("Page 1 of 2 · 15 generations")
    thumb = results.locator("img.lm-thumb-img").first
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    shot(page, "history-gallery")
    page.locator("#lora_manager_history_view label", has_text="Table").click()
    expect(results.locator("tr.lm-row")).to_have_count(12)
    shot(page, "history-table")
    page.locator("#lora_manager_history_view label", has_text="Gallery").click()
    expect(results.locator(".lm-card")).to_have_count(12)

    # search with the query language
    search = page.locator("#lora_manager_history_search input, #lora_manager_history_search textarea").first
    search.fill("castle lora:anime_style")
    search.press("Enter")
    expect(results.locator(".lm-card")).to_have_count(1)
    expect(page.locator("#lora_manager_history_description .lm-description")).to_contain_text("using LoRA “anime_style”")

    # open it: the hostile prompt is text, the image is shown, rating is stored
    results.locator(".lm-card .lm-thumb").first.click()
    detail = page.locator("#lora_manager_history_detail")
    expect(detail.locator(".lm-detail-name")).to_contain_text("Generation #15")
    expect(detail.locator(".lm-hist-text").first).to_contain_text(XSS)
    assert page.locator('img[src="x"]').count() == 0
    page.locator("#lora_manager_history_rating label", has_text="4").click()
    expect(page.locator("#lora_manager_history_status .lm-message")).to_contain_text("Rated 4 of 5.")
    assert library.history.detail(15).rating == 4
    expect(results.locator(".lm-stars").first).to_have_attribute("title", "rated 4 of 5")
    shot(page, "history-detail")

    # load it into the composer: the Compose tab shows with the prompt read back
    page.locator("#lora_manager_history_load").click()
    expect(page.locator("#lora_manager_compose_base textarea")).to_have_value(re.compile("castle 14"))
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()

    # a bad query says where it is wrong
    search.fill("castle status:exploded")
    search.press("Enter")
    expect(page.locator("#lora_manager_history_description .lm-query-bad")).to_have_text("status:exploded")

    # the LoRA name opens that LoRA in the Library tab
    detail.locator(".lm-lora-link").click()
    expect(page.locator("#lora_manager_detail .lm-detail-name")).to_have_text("anime_style")
    assert session.dialogs == []
