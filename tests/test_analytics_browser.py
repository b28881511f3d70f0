"""The Analytics tab in a real browser (Debian's chromium via Playwright) against the standalone
app on a small real library and history: the figures and plots render, a table's CSV downloads,
and a figure ("never used") opens the Library with its query and the LoRAs it counts; at 1024 and
1600 px, and under the dark theme."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_host_css_browser import SDNEXT_BUTTON_RULE  # noqa: E402
from test_ui import XSS, kohya, write_safetensors  # noqa: E402

from lib_lora_manager.history import GenerationRecord  # noqa: E402

USED = ("anime_style", "detail")
NEVER = ("big_unused", "small_unused")  # never in a prompt


def write_loras(root: Path) -> None:
    for name in USED:
        write_safetensors(root / f"{name}.safetensors", kohya(name))
    # sizes differ, so "sort:-size" has an order to show
    write_safetensors(root / "big_unused.safetensors", kohya("big_unused"), payload=b"\x00\x3c" * 4000)
    write_safetensors(root / "small_unused.safetensors", kohya("small_unused"))


def record_history(library) -> None:
    """Twelve generations over the last five days: anime_style always at 0.6, detail in half,
    two failures with the same normalised message, one with a hostile prompt and model name."""
    now = time.time()
    for n in range(12):
        prompt = f"castle {n} <lora:anime_style:0.6>" + (" <lora:detail:1>" if n % 2 else "")
        failed = n in (3, 7)
        library.history.record(GenerationRecord(
            started_at=now - (n % 5) * 86400 - 600 - n, status="failed" if failed else "succeeded", source="txt2img",
            prompt=(XSS + " " if n == 11 else "") + prompt, seeds=[n], steps=20, width=512, height=512,
            model_name=XSS if n == 11 else "tiny_model", duration=None if failed else 2.0 + n,
            error=f"CUDA out of memory at step {n}" if failed else None, loras=GenerationRecord.loras_from_prompt(prompt)))


def open_analytics(session, path: str = "/"):
    page = session.page
    page.goto(session.url + path)
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Analytics").click()
    sync_api.expect(page.locator("#lora_manager_analytics_kpis .lm-an-kpi").first).to_be_visible()
    return page


def plots_drawn(page) -> list[dict]:
    """Each plot's image: its shown size, and the alpha of its corner (the page shows through)."""
    return page.evaluate("""async () => {
        const out = [];
        for (const id of ['generations', 'loras', 'time']) {
            const img = document.querySelector(`#lora_manager_analytics_plots [data-plot="${id}"] img`);
            if (!img) { out.push(null); continue; }
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const r = img.getBoundingClientRect();
            out.push({width: r.width, height: r.height, natural: img.naturalWidth, corner: ctx.getImageData(1, 1, 1, 1).data[3]});
        }
        return out;
    }""")


@pytest.mark.parametrize("width", (1024, 1600))
def test_analytics_tab_in_the_browser(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=write_loras, prepare=record_history, viewport=(width, 1000))
    page, library = session.page, session.library
    expect = sync_api.expect
    page = open_analytics(session)

    kpis = page.locator("#lora_manager_analytics_kpis")
    expect(kpis.locator(".lm-an-kpi", has_text="Generations").locator(".lm-an-kpi-value")).to_have_text("12")
    expect(kpis.locator(".lm-an-kpi", has_text="Success rate").locator(".lm-an-kpi-value")).to_have_text("83 %")
    tables = page.locator("#lora_manager_analytics_tables").first
    expect(tables.locator(".lm-an-error").first).to_have_text("CUDA out of memory at step #")
    assert page.locator('img[src="x"]').count() == 0  # the hostile model name is text
    expect(tables).to_contain_text(XSS)

    # the three plots are images with a size, on a transparent background
    for plot in ("generations", "loras", "time"):
        expect(page.locator(f'#lora_manager_analytics_plots [data-plot="{plot}"] img')).to_be_visible()
    drawn = plots_drawn(page)
    assert all(p and p["width"] > 200 and p["height"] > 100 and p["natural"] > 0 and p["corner"] == 0 for p in drawn), drawn
    shot(page, f"analytics-{width}")

    # a table's CSV: the rows shown, as a download
    top = tables.locator('.lm-an-table[data-table="top-loras"]')
    with page.expect_download() as download:
        top.locator(".lm-an-csv").click()
    assert download.value.suggested_filename == "top-loras.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert [(r["name"], r["uses"]) for r in rows] == [("anime_style", "12"), ("detail", "6")]

    # "never used" opens the Library at its query, showing exactly those LoRAs, largest first
    never = tables.locator('.lm-an-row[data-lm-link-query="used:never sort:-size"]')
    expect(never).to_contain_text("2")
    never.click()
    search = page.locator("#lora_manager_search textarea, #lora_manager_search input").first
    expect(search).to_have_value("used:never sort:-size")
    expect(page.locator("#lora_manager_description .lm-description")).to_contain_text("never used")
    cards = page.locator("#lora_manager_results .lm-card")
    expect(cards).to_have_count(2)
    expect(cards.first).to_contain_text("big_unused")
    expect(page.locator("#lora_manager_library")).to_be_visible()
    shot(page, f"analytics-to-library-{width}")

    # a figure of the history opens the History tab with its query
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Analytics").click()
    page.locator("#lora_manager_analytics_kpis .lm-an-kpi", has_text="Failed").locator("a").click()
    history_search = page.locator("#lora_manager_history_search textarea, #lora_manager_history_search input").first
    expect(history_search).to_have_value("date:<30d status:failed")
    expect(page.locator("#lora_manager_history_results .lm-card")).to_have_count(2)
    assert library.history.search("status:failed").total == 2

    # an error's example record opens in the History's detail panel
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Analytics").click()
    example = tables.locator("[data-lm-open-generation]").first
    number = example.get_attribute("data-lm-open-generation")
    example.click()
    expect(page.locator("#lora_manager_history_detail .lm-detail-name")).to_contain_text(f"Generation #{number}")
    assert library.history.detail(int(number)).status == "failed"
    assert session.dialogs == []


def test_analytics_scope_insight_and_dark_theme(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=record_history, viewport=(1600, 1000))
    page, library = session.page, session.library
    expect = sync_api.expect
    page = open_analytics(session, "/?__theme=dark")
    assert page.evaluate("() => document.body.classList.contains('dark')")
    expect(page.locator('#lora_manager_analytics_plots [data-plot="time"] img')).to_be_visible()
    assert all(p and p["corner"] == 0 and p["natural"] > 0 for p in plots_drawn(page))
    shot(page, "analytics-dark-1600")

    # a bad query says so, and the figures stay
    q = page.locator("#lora_manager_analytics_q textarea, #lora_manager_analytics_q input").first
    q.fill("status:exploded")
    q.press("Enter")
    expect(page.locator("#lora_manager_analytics_status .lm-error")).to_contain_text("exploded")
    expect(page.locator("#lora_manager_analytics_kpis .lm-an-kpi").first).to_be_visible()

    # a query narrows every figure
    q.fill("lora:detail")
    q.press("Enter")
    expect(page.locator("#lora_manager_analytics_kpis .lm-an-kpi", has_text="Generations").locator(".lm-an-kpi-value")).to_have_text("6")
    expect(page.locator("#lora_manager_analytics_status .lm-message")).to_have_count(0)

    # the insight's button makes the weight people use the default
    q.fill("")
    q.press("Enter")
    action = page.locator("#lora_manager_analytics_insights .lm-an-action")
    expect(action).to_have_text("Make 0.6 its default")
    # under SDNext's own button rule the button keeps the size of its sentence, not 16 px
    page.add_style_tag(content=SDNEXT_BUTTON_RULE)
    sizes = page.evaluate("""() => { const b = document.querySelector('#lora_manager_analytics .lm-an-action');
        return [parseFloat(getComputedStyle(b).fontSize), parseFloat(getComputedStyle(b.parentElement).fontSize)]; }""")
    assert sizes[0] < sizes[1], sizes
    action.click()
    expect(page.locator("#lora_manager_analytics_status .lm-ok")).to_contain_text("is now 0.6")
    expect(action).to_have_count(0)
    assert library.get(library.find("anime_style").id).default_weight == 0.6

    # a date range, chosen from the list
    page.locator("#lora_manager_analytics_window input").click()
    page.locator("ul.options li", has_text="Date range").click()
    day = time.strftime("%Y-%m-%d")
    page.locator("#lora_manager_analytics_from input").fill(day)
    to = page.locator("#lora_manager_analytics_to input")
    to.fill(day)
    to.press("Enter")
    expect(page.locator("#lora_manager_analytics_results .lm-an-scope")).to_contain_text(f"date:{day}..{day}")
    assert session.dialogs == []
