"""The generation panel in a real browser against the standalone app (demo library, tiny demo
model) at 1024 and 1600 px: Run answers with the new job's status at once; a strength sweep of
a LoRA in a folder shows its labelled grid the panel's width, its captions whole; and without a
model the panel's place says how to turn generation on."""

from __future__ import annotations

import re

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_generate_browser import number_input, text_input  # noqa: E402

from lib_lora_manager.demo import create_demo_library  # noqa: E402

# records the status line at the moment the notice first names a job as queued
WATCH_STATUS = """(job) => {
    window.lmSeen = null;
    const notice = document.querySelector('#lora_manager_gen_notice');
    const status = document.querySelector('#lora_manager_gen_status');
    new MutationObserver((_, observer) => {
        if (notice.innerText.includes(`Job ${job} queued`) && window.lmSeen === null) {
            window.lmSeen = status.innerText; observer.disconnect(); }
    }).observe(notice, {childList: true, subtree: true, characterData: true});
}"""


@pytest.mark.parametrize("width", [1024, 1600])
def test_sweep_grid_and_run_status(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=create_demo_library, demo_model=True, viewport=(width, 1000),
                                    timeout_ms=30_000)
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    # the SD1.5 watercolor shares its name with the SDXL one: its token names its folder
    search = text_input(page, "lora_manager_search")
    search.fill("watercolor base:sd1")
    search.press("Enter")
    page.locator("#lora_manager_results .lm-card").first.locator(".lm-compose-add").click()
    prompt_out = text_input(page, "lora_manager_compose_prompt")
    expect(prompt_out).to_have_value(re.compile(r"<lora:styles/watercolor:[\d.]+>"))
    for elem_id, value in (("lora_manager_gen_steps", 3), ("lora_manager_gen_width", 64), ("lora_manager_gen_height", 64)):
        number_input(page, elem_id, value)
    status = page.locator("#lora_manager_gen_status").first

    # a first run ends; the next Run's answer already shows the new job, not the old one's end
    page.locator("#lora_manager_gen_run").click()
    expect(status.locator('[data-status="succeeded"]')).to_contain_text("succeeded", timeout=120_000)
    job = max(j["id"] for j in session.jobs.list()) + 1
    page.evaluate(WATCH_STATUS, job)
    page.locator("#lora_manager_gen_run").click()
    page.wait_for_function("() => window.lmSeen !== null")
    shown = page.evaluate("() => window.lmSeen")
    assert f"Job {job} · Generation" in shown, f"the status still showed {shown!r} when job {job} was queued"
    expect(status.locator('[data-status="succeeded"]')).to_contain_text(f"Job {job}", timeout=120_000)

    # a strength sweep: the grid the panel's width, a click opens it; captions keep their weights
    page.locator("#lora_manager_gen_testing").get_by_text("LoRA testing", exact=True).click()
    expect(page.locator("#lora_manager_gen_test_lora input")).to_have_value("styles/watercolor")
    page.locator("#lora_manager_gen_test_weights textarea, #lora_manager_gen_test_weights input").first.fill("0, 0.25, 0.5, 1")
    page.locator("#lora_manager_gen_sweep").click()
    expect(status.locator('[data-status="succeeded"]')).to_contain_text("Strength sweep", timeout=120_000)
    # the follower still runs (it lingers for a next Run): the status line keeps its own height
    assert status.bounding_box()["height"] < 60, status.bounding_box()
    grid = page.locator("#lora_manager_gen_grid .lm-gen-grid-whole img")
    expect(grid).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=grid.element_handle())
    panel_width = page.locator("#lora_manager_gen").bounding_box()["width"]
    assert grid.bounding_box()["width"] >= 0.9 * panel_width, (grid.bounding_box(), panel_width)
    link = page.locator("#lora_manager_gen_grid .lm-gen-grid-whole")
    assert link.get_attribute("target") == "_blank" and link.get_attribute("href").endswith("/grid")
    expect(page.locator("#lora_manager_gen_grid .lm-gen-grid > figcaption")).to_contain_text(
        "watercolor 0, watercolor 0.25, watercolor 0.5, watercolor 1")
    captions = page.evaluate("""() => [...document.querySelectorAll('#lora_manager_gen_gallery .caption-label')]
        .map(c => [c.innerText, c.scrollWidth <= c.clientWidth + 1])""")
    assert [text for text, _ in captions] == ["watercolor 0", "watercolor 0.25", "watercolor 0.5", "watercolor 1"], captions
    assert all(whole for _, whole in captions), captions
    grid.scroll_into_view_if_needed()
    shot(page, f"generate-sweep-grid-{width}")
    # a narrow panel (ModernUI at 1024 px beside its Networks panel, ~420 px): the one-row grid
    # was a 90 px strip; the images go a few per row instead, each with its label as text
    page.add_style_tag(content="#lora_manager_gen { max-width: 420px !important; }")
    cells = page.locator("#lora_manager_gen_grid .lm-gen-grid-cells figure")
    expect(cells).to_have_count(4)
    expect(grid).to_be_hidden()
    page.wait_for_function("() => [...document.querySelectorAll('#lora_manager_gen_grid .lm-gen-grid-cells img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    boxes = page.evaluate("""() => [...document.querySelectorAll('#lora_manager_gen_grid .lm-gen-grid-cells figure')].map(f => {
        const r = f.querySelector('img').getBoundingClientRect(); const c = f.querySelector('figcaption');
        return [Math.round(r.left), r.width, c.innerText, c.scrollWidth <= c.clientWidth + 1]; })""")
    assert len({left for left, *_ in boxes}) == 2 and min(w for _, w, *_ in boxes) >= 150, boxes
    assert [text for *_, text, _ in boxes] == ["watercolor 0", "watercolor 0.25", "watercolor 0.5", "watercolor 1"], boxes
    assert all(whole for *_, whole in boxes), boxes
    page.locator("#lora_manager_gen_grid").first.scroll_into_view_if_needed()
    shot(page, f"generate-sweep-grid-narrow-{width}")
    assert not session.dialogs


@pytest.mark.parametrize("width", [1024, 1600])
def test_without_a_model_the_panel_says_how_to_turn_it_on(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=create_demo_library, viewport=(width, 900))
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Compose").click()
    hint = page.locator("#lora_manager_gen_off").first
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("serve --model PATH")
    expect(hint).to_contain_text("serve --demo")
    assert page.locator("#lora_manager_gen_run").count() == 0  # no buttons that cannot work
    box = hint.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    hint.scroll_into_view_if_needed()
    shot(page, f"generate-off-{width}")
