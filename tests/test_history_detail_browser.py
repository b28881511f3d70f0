"""The History tab's detail panel in a real browser at 1024 and 1600 px: no blank band above its
first control, the rating buttons on one line, and text in a font stack that reaches CJK system
fonts (a LoRA with a Chinese name)."""

from __future__ import annotations

import time

import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_ui import kohya, write_safetensors  # noqa: E402

from lib_lora_manager.history import GeneratedImage, GenerationRecord  # noqa: E402

CJK_NAME = "水彩风格"


def record_cjk_generation(library, out) -> None:
    image = out / "0.png"
    image.parent.mkdir(exist_ok=True)
    Image.new("RGB", (512, 512), (40, 120, 200)).save(image)
    prompt = f"山の城, watercolor <lora:{CJK_NAME}:0.7>"
    library.history.record(GenerationRecord(
        started_at=time.time(), status="succeeded", source="txt2img", prompt=prompt, seeds=[1], steps=20,
        width=512, height=512, model_name="tiny", loras=GenerationRecord.loras_from_prompt(prompt),
        images=[GeneratedImage(path=str(image), seed=1)]))


@pytest.mark.parametrize("width", [1024, 1600])
def test_history_detail_layout_and_cjk_font(standalone_in_browser, tmp_path, width):
    session = standalone_in_browser(
        add_loras=lambda root: write_safetensors(root / f"{CJK_NAME}.safetensors", kohya(CJK_NAME)),
        prepare=lambda library: record_cjk_generation(library, tmp_path / "out"), viewport=(width, 900))
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()
    page.locator("#lora_manager_history_results .lm-card .lm-thumb").first.click()
    detail = page.locator("#lora_manager_history_detail")
    expect(detail.locator(".lm-detail-name")).to_contain_text("Generation #1")
    expect(detail.locator(".lm-hist-loras")).to_contain_text(CJK_NAME)

    shot(page, f"history-detail-cjk-{width}")
    # the panel starts with its controls: no blank band above or between its first parts (an
    # empty block still costs the column's gap on both sides)
    parts = page.evaluate("""() => {
        const panel = document.querySelector('#lora_manager_history_detail');
        const top = panel.getBoundingClientRect().top;
        return [...panel.children].filter(e => e.getBoundingClientRect().height > 0).slice(0, 4)
            .map(e => [Math.round(e.getBoundingClientRect().top - top), Math.round(e.getBoundingClientRect().bottom - top)]); }""")
    gaps = [parts[0][0]] + [b[0] - a[1] for a, b in zip(parts, parts[1:])]
    assert max(gaps) <= 16, f"blank space in the detail panel's head: {parts}"
    assert page.locator("#lora_manager_history_close").bounding_box()["y"] - detail.bounding_box()["y"] <= 16
    # the six rating choices share one line
    tops = page.evaluate("""() => [...document.querySelectorAll('#lora_manager_history_rating label')]
        .map(l => Math.round(l.getBoundingClientRect().top))""")
    assert len(tops) == 6 and len(set(tops)) == 1, tops
    # … each whole, none over its neighbour, all inside the panel
    boxes = page.evaluate("""() => [...document.querySelectorAll('#lora_manager_history_rating label')].map(l => {
        const r = l.getBoundingClientRect(); return [r.left, r.right, l.scrollWidth <= l.clientWidth + 1]; })""")
    panel_right = page.evaluate("() => document.querySelector('#lora_manager_history_detail').getBoundingClientRect().right")
    assert all(whole for _, _, whole in boxes), boxes
    assert all(a[1] <= b[0] for a, b in zip(boxes, boxes[1:])) and boxes[-1][1] <= panel_right, (boxes, panel_right)
    # our text uses a stack that names CJK system fonts, so a machine that has one shows the name
    for selector in ("#lora_manager_history_detail .lm-hist-loras", "#lora_manager_history_results .lm-hist-prompt"):
        family = page.evaluate("(s) => getComputedStyle(document.querySelector(s)).fontFamily", selector)
        for font in ("Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", "Hiragino Sans"):
            assert font in family, f"{selector}: {family}"
    assert not session.dialogs


def test_history_detail_close_keeps_its_corner_when_actions_wrap(standalone_in_browser, tmp_path):
    """Inside SDNext five actions wrap at 1024 px: Close went to a line of its own below them."""
    session = standalone_in_browser(
        add_loras=lambda root: write_safetensors(root / f"{CJK_NAME}.safetensors", kohya(CJK_NAME)),
        prepare=lambda library: record_cjk_generation(library, tmp_path / "out"), viewport=(1024, 900))
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()
    page.locator("#lora_manager_history_results .lm-card .lm-thumb").first.click()
    sync_api.expect(page.locator("#lora_manager_history_close")).to_be_visible()
    # all six actions as inside SDNext (standalone hides the ones it has no host for), in a narrow panel
    page.add_style_tag(content="#lora_manager_history_detail .lm-hist-actions button.hidden { display: inline-flex !important; }"
                               "#lora_manager_history_detail { max-width: 420px !important; min-width: 0 !important; }")
    page.wait_for_timeout(200)
    boxes = page.evaluate("""() => {
        const row = document.querySelector('#lora_manager_history_detail .lm-hist-actions');
        const box = (el) => { const r = el.getBoundingClientRect(); return {top: r.top, right: r.right, bottom: r.bottom}; };
        return {row: box(row), close: box(document.querySelector('#lora_manager_history_close')),
                buttons: [...row.querySelectorAll('button')].filter(b => b.offsetParent !== null && b.id !== 'lora_manager_history_close').map(box)};
    }""")
    shot(page, "history-detail-actions-wrapped-420")
    assert len({round(b["top"]) for b in boxes["buttons"]}) >= 2, boxes  # the actions do wrap at this width
    assert abs(boxes["close"]["top"] - boxes["row"]["top"]) <= 2, boxes
    assert abs(boxes["close"]["right"] - boxes["row"]["right"]) <= 2, boxes
    assert all(b["right"] <= boxes["close"]["right"] - 20 or b["top"] >= boxes["close"]["bottom"] for b in boxes["buttons"]), boxes
