"""A LoRA's usage in the Library detail panel: rendered from real recorded generations (escaped,
every figure a History query), and in a real browser at 1024 and 1600 px, where a figure opens
the History at its query and a picture opens its generation."""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.ui import cards

XSS = '<img src=x onerror="window.__xss=1">'
DAY = 86400.0


def record(library, out: Path) -> dict[str, int]:
    """anime_style in 6 generations over 3 days: 4 with detail, 2 failed (model m2), weights
    0.6 (4) and 1 (2); two rated pictures (5 and 3), one favorite. The model name is hostile."""
    now = time.time()
    out.mkdir(parents=True, exist_ok=True)
    ids = {}
    plan = [  # (days ago, prompt, status, model, rating, favorite)
        (2, "a <lora:anime_style:0.6> <lora:detail:1>", "succeeded", XSS, 5, True),
        (2, "b <lora:anime_style:0.6> <lora:detail:1>", "succeeded", XSS, 3, False),
        (1, "c <lora:anime_style:0.6> <lora:detail:1>", "failed", "m2", None, False),
        (1, "d <lora:anime_style:0.6> <lora:detail:1>", "failed", "m2", None, False),
        (0, "e <lora:anime_style:1>", "succeeded", XSS, None, False),
        (0, "f <lora:anime_style:1>", "succeeded", XSS, None, False),
    ]
    for n, (ago, prompt, status, model, rating, favorite) in enumerate(plan):
        image = out / f"{n}.png"
        Image.new("RGB", (64, 64), (40 * n, 90, 160)).save(image)
        gid = library.history.record(GenerationRecord(
            started_at=now - ago * DAY - n, status=status, prompt=prompt, model_name=model, duration=2.0,
            loras=GenerationRecord.loras_from_prompt(prompt),
            images=[GeneratedImage(path=str(image), seed=n)] if status == "succeeded" else []))
        if rating:
            library.history.rate(gid, rating)
        if favorite:
            library.history.set_favorite(gid, True)
        ids[prompt[0]] = gid
    return ids


def test_usage_html_is_escaped_and_every_figure_a_history_query(library, lora_dir, tmp_path):
    from factories import make_lora

    make_lora(lora_dir, "anime_style", seed=1)
    make_lora(lora_dir, "detail", seed=2)
    library.indexer.scan()
    ids = record(library, tmp_path / "out")
    lora = library.find("anime_style")
    u = library.analytics.lora_usage(lora.id)
    assert [p["generation_id"] for p in u["best_rated_pictures"]] == [ids["a"], ids["b"]]
    assert [p["generation_id"] for p in u["favorite_pictures"]] == [ids["a"]]
    page = cards.usage(u, "anime_style", "/base")
    assert XSS not in page and html.escape(XSS, quote=True) in page
    assert "6 generations" in page and "failure rate 33 % (2 of 6 finished)" in page
    assert "0.6 × 4" in page and "1 × 2" in page
    queries = [html.unescape(q) for q in re.findall(r'data-lm-link-query="([^"]*)"', page)]
    assert 'lora:"anime_style"' in queries and 'lora:"anime_style" status:failed' in queries
    assert 'lora:"anime_style" lora:"detail"' in queries and 'lora:"anime_style" model:"m2"' in queries
    # each link finds what its figure counts
    found = {q: library.history.search(q).total for q in queries}
    assert found['lora:"anime_style"'] == 6 and found['lora:"anime_style" status:failed'] == 2
    assert found['lora:"anime_style" lora:"detail"'] == 4 and found['lora:"anime_style" model:"m2"'] == 2
    assert f'data-lm-open-generation="{ids["a"]}"' in page and f"/base/lora-manager/v1/history/{ids['a']}/images/0?size=160" in page
    never = cards.usage(library.analytics.lora_usage(library.find("detail").id) | {"uses": 0}, "detail", "")
    assert "no data" in never


@pytest.mark.parametrize("width", [1024, 1600])
def test_usage_in_the_library_detail_in_the_browser(standalone_in_browser, tmp_path, width):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    import browser
    from browser import shot
    from factories import make_lora

    session = standalone_in_browser(
        add_loras=lambda root: (make_lora(root, "anime_style", seed=1), make_lora(root, "detail", seed=2)),
        prepare=lambda library: record(library, tmp_path / "out"), viewport=(width, 900), timeout_ms=10_000)
    page, expect = session.page, sync_api.expect
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_results .lm-card", has_text="anime").first.click()
    usage = page.locator("#lora_manager_detail .lm-usage")
    expect(usage).to_be_visible()
    expect(usage.locator(".lm-usage-bar")).to_have_count(3)  # three days
    expect(usage.locator(".lm-usage-pic img")).to_have_count(3)  # best rated 2, favorite 1
    assert page.evaluate("() => window.__xss") is None
    usage.locator(".lm-usage-pics").last.scroll_into_view_if_needed()
    page.wait_for_function("""() => Array.from(document.querySelectorAll('#lora_manager_detail .lm-usage-pic img'))
        .every((img) => img.complete && img.naturalWidth > 0)""")  # the thumbnails were served
    shot(page, f"lora-usage-page-{width}")
    if browser.SHOTS:  # the panel scrolls on its own: the usage as it shows there
        usage.screenshot(path=os.path.join(browser.SHOTS, f"lora-usage-{width}.png"))
    # a figure opens the History at its query
    usage.locator(".lm-usage-link", has_text="failure rate").click()
    expect(page.locator("#lora_manager_history_search textarea, #lora_manager_history_search input").first).to_have_value(
        'lora:"anime_style" status:failed')
    expect(page.locator("#lora_manager_history_results .lm-card")).to_have_count(2)


def test_usage_under_the_dark_theme(standalone_in_browser, tmp_path):
    """Gradio's dark theme (SDNext's dark themes set the same variables): the usage's text and
    links keep their contrast with the panel."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    import browser
    from factories import make_lora

    session = standalone_in_browser(
        add_loras=lambda root: (make_lora(root, "anime_style", seed=1), make_lora(root, "detail", seed=2)),
        prepare=lambda library: record(library, tmp_path / "out"), viewport=(1600, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/?__theme=dark")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_results .lm-card", has_text="anime").first.click()
    usage = page.locator("#lora_manager_detail .lm-usage")
    sync_api.expect(usage).to_be_visible()
    colours = page.evaluate("""() => {
        const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
        const light = ([r, g, b]) => (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
        let el = document.querySelector('#lora_manager_detail .lm-usage'), bg = 'rgba(0, 0, 0, 0)';
        while (el && /rgba\\(.*, 0\\)$/.test(bg = getComputedStyle(el).backgroundColor)) el = el.parentElement;
        const text = getComputedStyle(document.querySelector('#lora_manager_detail .lm-usage-line')).color;
        const title = getComputedStyle(document.querySelector('#lora_manager_detail .lm-usage-title')).color;
        return {bg: light(rgb(bg)), text: light(rgb(text)), title: light(rgb(title))};
    }""")
    assert colours["bg"] < 0.3 and colours["text"] > 0.6 and colours["title"] > 0.4, colours
    if browser.SHOTS:
        usage.screenshot(path=os.path.join(browser.SHOTS, "lora-usage-1600-dark.png"))


def test_uses_over_time_by_day_then_by_month():
    """Up to 60 days from first use to last: a bar a day, empty days 0; beyond: a bar a month."""
    unit, bars = cards._usage_buckets([{"day": "2026-01-30", "uses": 2}, {"day": "2026-02-02", "uses": 5}])
    assert unit == "day" and bars == [("2026-01-30", 2), ("2026-01-31", 0), ("2026-02-01", 0), ("2026-02-02", 5)]
    unit, bars = cards._usage_buckets([{"day": "2025-11-30", "uses": 1}, {"day": "2025-12-01", "uses": 2},
                                       {"day": "2026-02-15", "uses": 4}])
    assert unit == "month" and bars == [("2025-11", 1), ("2025-12", 2), ("2026-01", 0), ("2026-02", 4)]
