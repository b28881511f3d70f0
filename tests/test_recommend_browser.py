"""The Recommendations tab in a real browser (Debian's chromium via Playwright) against the
standalone app on real factory LoRAs indexed with the packaged model: a prompt's suggestions as
cards, "hide" removes one, "+" adds one to the composition (stored as "added"), and "similar" and
"used with" for a chosen LoRA; at 1024 px (light) and 1600 px (dark theme), screenshots
recommend-1024/1600. Also the Library detail's lists and Compose's suggestion strip."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import SHOTS, shot  # noqa: E402
from factories import make_lora  # noqa: E402
from test_recommendations import LORAS  # noqa: E402

from lib_lora_manager.history import GenerationRecord, UsedLora  # noqa: E402
from lib_lora_manager.statuses import GenerationStatus  # noqa: E402


def write_loras(root: Path) -> None:
    from PIL import Image

    for n, (name, (family, *_)) in enumerate(LORAS.items()):
        make_lora(root, name, family, metadata={}, seed=n)
    Image.new("RGB", (96, 128), (210, 90, 140)).save(root / "celshade_pony.preview.png")  # a real preview


def describe_and_index(library) -> None:
    """Trigger words, tags and notes as users give them, a history with a pair, then the vectors."""
    ids = {item.filename.removesuffix(".safetensors"): item.id for item in library.search("", per_page=100).items}
    for name, (family, triggers, tags, description) in LORAS.items():
        library.edit(ids[name], trigger_words=triggers, tags=tags, notes=description, base_model=family)
    library.history.record_many([
        GenerationRecord(started_at=time.time() - 100 + n, status=GenerationStatus.SUCCEEDED, prompt="x",
                         loras=[UsedLora("megacity_xl"), UsedLora("watercolor_xl")]) for n in range(3)])
    assert library.recommender.index_pending() == len(LORAS)


@pytest.mark.parametrize("width", (1024, 1600))
def test_recommendations_tab_in_the_browser(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=write_loras, prepare=describe_and_index, viewport=(width, 1000))
    page, library, expect = session.page, session.library, sync_api.expect
    page.goto(session.url + ("/?__theme=dark" if width >= 1600 else "/"))  # both of SDNext's themes
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Recommendations").click()
    page.locator("#lora_manager_recommend_prompt textarea").fill("1girl, cel shading, smiling")
    page.locator("#lora_manager_recommend_go").click()
    results = page.locator("#lora_manager_recommend_results")
    pony = results.locator(".lm-reco-card", has_text="celshade_pony")
    expect(pony).to_be_visible()
    expect(pony.locator(".lm-reco-reasons")).to_contain_text("trigger word “cel shading” is in your prompt")
    expect(results.locator(".lm-reco-card", has_text="celshade_sd15")).to_be_visible()  # any base model
    preview = pony.locator("img.lm-thumb-img")
    expect(preview).to_be_visible()
    assert preview.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0  # the Library's preview route
    # the cards fit the page, side by side at 1600
    boxes = [results.locator(".lm-reco-card").nth(i).bounding_box() for i in range(results.locator(".lm-reco-card").count())]
    assert all(b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes)
    if width >= 1600:
        assert len({round(b["y"]) for b in boxes[:3]}) == 1
    # a base model: only its architecture
    page.locator("#lora_manager_recommend_base input").fill("pony")
    page.keyboard.press("Enter")
    expect(results.locator(".lm-reco-card", has_text="celshade_sd15")).to_have_count(0)
    expect(results.locator(".lm-reco-card").first).to_contain_text("celshade_pony")
    shot(page, f"recommend-{width}")
    # hide: gone
    pony.locator('.lm-reco-fb[data-kind="hide"]').click()
    expect(results.locator(".lm-reco-card", has_text="celshade_pony")).to_have_count(0)
    expect(results.locator(".lm-reco-card", has_text="celshade_xl")).to_be_visible()
    # "+": in the composition, and stored as taken
    results.locator(".lm-reco-card", has_text="celshade_xl").locator(".lm-compose-add").click()
    expect(page.locator("#lora_manager_compose_tab")).to_be_visible()
    expect(page.locator("#lora_manager_compose_row0 .lm-compose-name")).to_have_text("celshade_xl")
    deadline = time.monotonic() + 10
    while library.recommender.taken()["added"] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert library.recommender.taken()["hide"] == 1 and library.recommender.taken()["added"] == 1
    # similar and used with for a chosen LoRA
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Recommendations").click()
    page.locator("#lora_manager_recommend_lora input").fill("megacity_xl")
    page.locator("#lora_manager_recommend_related_btn").click()
    related = page.locator("#lora_manager_recommend_related")
    expect(related.locator(".lm-reco-title").first).to_have_text("Similar to megacity_xl")
    expect(related.locator(".lm-reco-title").nth(1)).to_have_text("Used with megacity_xl")
    expect(related.locator(".lm-reco-grid").last.locator(".lm-reco-card", has_text="watercolor_xl")).to_contain_text(
        "used together in 3 generations")
    shot(page, f"recommend-related-{width}")
    assert not session.dialogs


def test_library_detail_offers_similar_and_used_with(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=describe_and_index, viewport=(1024, 1000))
    page, library, expect = session.page, session.library, sync_api.expect
    page.goto(session.url)
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_results .lm-card", has_text="megacity_xl").click()
    lists = page.locator("#lora_manager_detail .lm-reco-detail")
    expect(lists).to_contain_text("used together in 3 generations")
    if SHOTS:  # the detail panel scrolls inside itself: the lists' own picture
        lists.screenshot(path=str(Path(SHOTS) / "recommend-detail-1024.png"))
    used = lists.locator(".lm-usage-block").nth(1)
    used.locator("li", has_text="watercolor_xl").locator(".lm-compose-add").click()
    expect(page.locator("#lora_manager_compose_row0 .lm-compose-name")).to_have_text("watercolor_xl")
    deadline = time.monotonic() + 10
    while library.recommender.taken()["added"] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert library.recommender.taken()["added"] == 1
    assert not session.dialogs


def test_compose_suggests_while_the_prompt_is_typed(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=describe_and_index, viewport=(1024, 1000))
    page, library, expect = session.page, session.library, sync_api.expect
    page.goto(session.url)
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Compose").click()
    prompt = page.locator("#lora_manager_compose_base textarea")
    prompt.press_sequentially("a cyberpunk city with neon lights", delay=20)
    expect(prompt).to_have_value("a cyberpunk city with neon lights")  # typing never waited
    strip = page.locator("#lora_manager_compose_suggest .lm-reco-strip")
    chip = strip.locator(".lm-reco-chip", has_text="megacity_xl")
    expect(chip).to_be_visible()
    shot(page, "recommend-compose-1024")
    chip.locator(".lm-compose-add").click()
    expect(page.locator("#lora_manager_compose_row0 .lm-compose-name")).to_have_text("megacity_xl")
    expect(strip.locator(".lm-reco-chip", has_text="megacity_xl")).to_have_count(0)  # in the composition now
    deadline = time.monotonic() + 10
    while library.recommender.taken()["added"] != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert library.recommender.taken()["added"] == 1
    assert not session.dialogs
