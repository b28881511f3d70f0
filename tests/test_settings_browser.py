"""The standalone Settings tab in a real browser at 1024 and 1600 px: a bad value is refused
with a message; a new page size is saved, the Library shows that many cards, and a reload keeps it."""

from __future__ import annotations

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_generate_browser import text_input  # noqa: E402

from lib_lora_manager.demo import create_demo_library  # noqa: E402


def open_settings(page):
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Settings").click()
    return page.locator("#lora_manager_setting_page_size input[type=number]")


@pytest.mark.parametrize("width", [1024, 1600])
def test_page_size_is_saved_applied_and_kept(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=create_demo_library, saved_settings=True, viewport=(width, 1000))
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    cards = page.locator("#lora_manager_results .lm-card")
    total = session.library.search("").total
    assert total > 12
    expect(cards).to_have_count(min(total, 48))

    size = open_settings(page)
    expect(size).to_have_value("48")
    status = page.locator("#lora_manager_settings_status").first
    # a bad value: a message, nothing saved
    size.fill("5")
    page.locator("#lora_manager_settings_save").click()
    expect(status).to_contain_text("Nothing saved. Cards per page: enter a whole number from 12 to 200, not 5.")
    # every setting SDNext shows, with its label
    for label in ("Extra LoRA folders", "Database URL", "Hash files in the background", "Sync the index",
                  "Cards per page", "Show NSFW previews"):
        expect(page.locator("#lora_manager_settings").first).to_contain_text(label)
    size.fill("12")
    page.locator("#lora_manager_settings_save").click()
    expect(status).to_contain_text("Saved. Cards per page: 12 from the next search or page.")
    shot(page, f"settings-saved-{width}")
    box = page.locator("#lora_manager_settings").first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width

    # the Library's next search shows 12 cards
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Library").click()
    search = text_input(page, "lora_manager_search")
    search.press("Enter")
    expect(cards).to_have_count(12)

    # a reload keeps it: the Library starts with 12, the Settings tab shows 12
    page.reload()
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    expect(cards).to_have_count(12)
    expect(open_settings(page)).to_have_value("12")
    assert not session.dialogs
