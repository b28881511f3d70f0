"""The History tab's "Import images made before" panel in a real browser (chromium via
Playwright, standalone app): folders in, report out (escaped), the gallery refreshed; at 1024
and 1600 px wide."""

from __future__ import annotations

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from image_files import SDNEXT_INFOTEXT, bomb_png, write_comfyui_png, write_png  # noqa: E402


@pytest.mark.parametrize("width", [1024, 1600])
def test_import_images_from_the_history_tab(standalone_in_browser, tmp_path, width):
    folder = tmp_path / "old-images"
    write_png(folder / "00001.png", {"parameters": SDNEXT_INFOTEXT})
    write_comfyui_png(folder / "comfy" / "ComfyUI_00001_.png")
    write_png(folder / "<img src=x onerror=alert(1)>.png", {"parameters": "<b>bold</b> knight\nSteps: 5, Seed: 1, Sampler: Euler"})
    bomb_png(folder / "bomb.png")
    session = standalone_in_browser(viewport=(width, 900))
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()

    page.locator("#lora_manager_history_import").get_by_text("Import images made before").click()
    folders = page.locator("#lora_manager_history_import_folders textarea")
    folders.fill(str(folder))
    page.locator("#lora_manager_history_import_btn").click()
    report = page.locator("#lora_manager_history_import_report").first
    expect(report).to_contain_text("Import finished: 3 images imported.", timeout=30_000)
    expect(report.locator(".lm-import-count")).to_have_count(3)  # imported, read, unreadable
    report.locator("summary", has_text="Files not imported").click()
    expect(report).to_contain_text("decompression bomb")
    results = page.locator("#lora_manager_history_results").first
    expect(results.locator(".lm-card")).to_have_count(3)
    expect(results).to_contain_text("<b>bold</b> knight")  # shown as text, not markup
    assert results.locator("b", has_text="bold").count() == 0 and page.locator("img[src=x]").count() == 0
    for selector in ("#lora_manager_history_import_btn", "#lora_manager_history_import_status"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] + box["width"] <= width and box["height"] < 60  # no clipping, no wrapped label
    shot(page, f"history-import-{width}")

    page.locator("#lora_manager_history_import_status").click()
    expect(report).to_contain_text("Last import: 3 images imported")
    page.locator("#lora_manager_history_import_btn").click()
    expect(report).to_contain_text("Import finished: 0 images imported.")
    expect(report).to_contain_text("4 unchanged")
