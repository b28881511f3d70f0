"""Our HTML buttons under SDNext's own stylesheet, which sizes every button with
`font-size: var(--text-lg) !important`, which made the "N copies" badge twice the size of the
card's other badges (and its row taller) and the selection links bigger than their line."""
from __future__ import annotations

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from browser import shot  # noqa: E402  (tests/ is on sys.path, see conftest)

from lib_lora_manager import demo  # noqa: E402

# the rule as SDNext's own stylesheet has it (with --text-lg as its themes set it)
SDNEXT_BUTTON_RULE = ":root { --text-lg: 16px; } button { font-size: var(--text-lg) !important; min-width: unset !important; }"

SIZES_JS = """() => {
    const px = (el) => parseFloat(getComputedStyle(el).fontSize);
    const dupe = document.querySelector('#lora_manager_results .lm-dupe-badge');
    const badge = dupe.closest('.lm-card').querySelector('.lm-badge:not(.lm-dupe-badge)');
    const link = document.querySelector('#lora_manager_selection .lm-select-page');
    return {dupe: px(dupe), badge: px(badge), dupePad: getComputedStyle(dupe).paddingLeft,
            link: px(link), line: px(link.parentElement)};
}"""


@pytest.mark.parametrize("width", (1024, 1600))
def test_our_buttons_keep_their_size_under_sdnext_button_rule(standalone_in_browser, width):
    session = standalone_in_browser(add_loras=demo.create_demo_library,
                                    prepare=lambda library: library.indexer.hash_pending(), viewport=(width, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.add_style_tag(content=SDNEXT_BUTTON_RULE)
    sync_api.expect(page.locator("#lora_manager_results .lm-dupe-badge").first).to_be_visible()
    sizes = page.evaluate(SIZES_JS)
    shot(page, f"library-dupe-badge-sdnext-buttons-{width}")
    assert abs(sizes["dupe"] - sizes["badge"]) < 0.5, sizes
    assert sizes["dupePad"] == "6px", sizes
    assert abs(sizes["link"] - sizes["line"]) < 0.5, sizes


def test_history_table_prompt_stays_readable_in_a_narrow_column(standalone_in_browser):
    """ModernUI at 1024 px with the History detail open leaves the table ~408 px: the fixed
    Date, Status, LoRAs and Rating columns left the prompt 34 px (a word per line)."""
    from test_browser import demo_library_with_history

    session = standalone_in_browser(add_loras=demo.create_demo_library, prepare=demo_library_with_history,
                                    viewport=(1024, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()
    page.locator("#lora_manager_history_view label", has_text="Table").click()
    rows = page.locator("#lora_manager_history_results .lm-row")
    sync_api.expect(rows.first).to_be_visible()
    page.add_style_tag(content="#lora_manager_history .lm-table-wrap { width: 408px !important; }")
    page.wait_for_timeout(200)
    width = page.evaluate("""() => document.querySelector('#lora_manager_history_results .lm-row-prompt')
        .getBoundingClientRect().width""")
    clipped = page.evaluate("""() => { const wrap = document.querySelector('#lora_manager_history_results .lm-table-wrap');
        return wrap.scrollWidth - wrap.clientWidth; }""")
    statuses = page.evaluate("""() => [...document.querySelectorAll('#lora_manager_history_results .lm-hist-table td:nth-child(3)')]
        .map((td) => [td.textContent, td.scrollWidth <= td.clientWidth])""")
    shot(page, "history-table-narrow-408")
    assert width >= 120 and clipped <= 1, (width, clipped)
    # the status word whole ("succ…" was all the column showed)
    assert statuses and all(whole for _, whole in statuses), statuses


def test_library_filters_keep_two_even_columns_in_a_narrow_tab(standalone_in_browser):
    """ModernUI at 1024 px with its Networks panel open leaves the Library about 390 px: cells of
    at least 200 px fitted one column, and the sort's two-cell span added a squeezed implicit column
    beside it (filters a sliver wide)."""
    session = standalone_in_browser(add_loras=demo.create_demo_library, viewport=(1024, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.add_style_tag(content="#lora_manager_library .lm-filters { width: 390px !important; }")
    page.wait_for_timeout(200)
    cells = page.evaluate("""() => {
        const grid = document.querySelector('#lora_manager_library .lm-filters');
        const kids = [];
        for (const child of grid.children) {
            if (child.classList.contains('form')) kids.push(...child.children); else kids.push(child);
        }
        return {row: grid.getBoundingClientRect().width,
                cells: kids.filter((el) => el.offsetParent !== null).map((el) => {
                    const r = el.getBoundingClientRect();
                    return {id: el.id, left: Math.round(r.left), width: r.width};
                })};
    }""")
    shot(page, "library-filters-narrow-390")
    others = [c for c in cells["cells"] if c["id"] != "lora_manager_sort"]
    sort = [c for c in cells["cells"] if c["id"] == "lora_manager_sort"]
    assert len({c["left"] for c in others}) == 2, cells
    assert min(c["width"] for c in others) >= cells["row"] / 2 - 12, cells
    assert sort and sort[0]["width"] >= cells["row"] - 2, cells


def test_library_token_shows_whole_in_a_narrow_detail_panel(standalone_in_browser):
    """At 1024 px inside SDNext the detail panel can be 260 px: the token field beside Copy and
    "Add to composition" was a few characters wide and scrolled its token."""
    session = standalone_in_browser(add_loras=demo.create_demo_library, viewport=(1024, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    search = page.locator("#lora_manager_search input, #lora_manager_search textarea").first
    search.fill("pastel_dream")
    search.press("Enter")
    sync_api.expect(page.locator("#lora_manager_results .lm-card")).to_have_count(1)
    page.locator("#lora_manager_results .lm-card .lm-thumb").click()
    field = page.locator("#lora_manager_token input, #lora_manager_token textarea").first
    sync_api.expect(field).to_have_value("<lora:pastel_dream:1>")
    page.add_style_tag(content="#lora_manager_detail { max-width: 260px !important; min-width: 0 !important; flex: 0 0 260px !important; }")
    page.wait_for_timeout(200)
    sizes = field.evaluate("(el) => ({scroll: el.scrollWidth, client: el.clientWidth})")
    shot(page, "library-detail-token-260")
    assert sizes["scroll"] <= sizes["client"] + 1, sizes
    buttons = page.evaluate("""() => ['#lora_manager_copy_token', '#lora_manager_add_to_compose'].map((s) => {
        const b = document.querySelector(s); return b.scrollWidth <= b.clientWidth + 1; })""")
    assert all(buttons), buttons


SEARCHBARS_JS = """() => [...document.querySelectorAll('.lm-searchbar')].filter((bar) => bar.offsetParent !== null)
    .map((bar) => {
        const box = bar.getBoundingClientRect();
        const kids = [...bar.children].filter((el) => el.offsetParent !== null).map((el) => {
            const r = el.getBoundingClientRect();
            return {id: el.id || el.className.slice(0, 40), left: Math.round(r.left), right: Math.round(r.right),
                    width: Math.round(r.width)};
        });
        return {bar: bar.parentElement.closest('[id^=lora_manager]').id, left: Math.round(box.left),
                right: Math.round(box.right), kids};
    })"""


@pytest.mark.parametrize("tab", ("Library", "Compose", "History", "Analytics", "Recommendations"))
def test_search_bars_wrap_in_a_narrow_tab(standalone_in_browser, tab):
    """ModernUI at 1024 px beside its Networks panel leaves our tabs about 416 px: the
    Recommendations prompt, base model and Suggest (at least 510 px side by side) ran past the
    panel's edge, which then scrolled sideways and cut the cards' left side off; the Library's
    Scan button stuck out too. A bar's parts wrap onto another line instead, each whole."""
    session = standalone_in_browser(add_loras=demo.create_demo_library, viewport=(1024, 900), timeout_ms=10_000)
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")
    page.add_style_tag(content="#lora_manager_tabs { max-width: 416px !important; }")
    page.locator("#lora_manager_tabs .tab-nav button", has_text=tab).click()
    page.wait_for_timeout(300)
    bars = page.evaluate(SEARCHBARS_JS)
    assert bars, f"no search bar shown in {tab}"
    for bar in bars:
        assert bar["right"] - bar["left"] <= 416, bar
        for kid in bar["kids"]:
            assert bar["left"] - 1 <= kid["left"] and kid["right"] <= bar["right"] + 1, bar
            assert kid["width"] >= 60, bar  # nothing squeezed to a sliver
    shot(page, f"searchbar-narrow-{tab.lower()}")
