"""The Analytics tab's handlers and HTML over real recorded generations (SQLite, and PostgreSQL
when LORA_MANAGER_TEST_POSTGRES_URL is set): figures as hand-counted in test_analytics.py,
escaping, "no data", the links every figure carries, CSV, the plots and the insight's action."""

from __future__ import annotations

import csv
import html
import io
import re
import urllib.parse

import test_analytics
from factories import make_lora
from test_analytics import DAY, NOW, rec
from test_ui import XSS

from lib_lora_manager.ui import analytics_cards
from lib_lora_manager.ui.analytics_tab import OUTPUTS, PLOTS, AnalyticsTab, series_figures

figures = test_analytics.figures  # the hand-counted generations, as a fixture of this module too


def shown(library, window="30 days", start="", end="", q="") -> dict:
    return dict(zip(OUTPUTS, AnalyticsTab(lambda: library).refresh(window, start, end, q)))


def links(markup: str) -> list[tuple[str, str]]:
    """(tab, query) of every followable figure or row, unescaped."""
    return [(html.unescape(t), html.unescape(q))
            for t, q in re.findall(r'data-lm-link-tab="([^"]*)" data-lm-link-query="([^"]*)"', markup)]


def kpi(markup: str, label: str) -> str:
    """The shown value of one KPI card."""
    match = re.search(rf'lm-an-kpi-label">{re.escape(label)}</div><div class="lm-an-kpi-value">(?:<a[^>]*>)?([^<]*)', markup)
    assert match, label
    return html.unescape(match.group(1))


def bar_total(figure) -> float:
    """The heights of every bar drawn, added up."""
    return sum(p.vertices[:, 1].max() - p.vertices[:, 1].min()
               for c in figure.axes[0].collections for p in c.get_paths())


def csv_rows(markup: str, name: str) -> list[dict[str, str]]:
    match = re.search(rf'download="{re.escape(name)}.csv" href="data:text/csv;charset=utf-8,([^"]*)"', markup)
    assert match, name
    return list(csv.DictReader(io.StringIO(urllib.parse.unquote(html.unescape(match.group(1))))))


def test_kpis_plots_tables_and_links_over_the_scope(figures):
    library, g, loras = figures
    out = shown(library)
    assert "Last 30 days · All generations." in out["scope"] and "date:&lt;30d" in out["scope"]
    k = out["kpis"]
    # 30 days: all eight; succeeded g1 g2 g7 g8 of 7 finished (no_model never ran)
    assert kpi(k, "Generations") == "8"
    assert kpi(k, "Success rate") == "57 %"
    assert kpi(k, "Failed") == "2" and kpi(k, "Interrupted") == "1" and kpi(k, "No model loaded") == "1"
    assert kpi(k, "Images") == "2"
    assert "before: 0" in k  # the 30 days before hold nothing
    assert ("history", "date:<30d status:failed") in links(k)
    assert ("library", "added:<30d sort:-added") in links(k)

    # the plots: a bar per status and bucket, the bars adding up to the generations; shown as images
    report = library.analytics.report("30d")
    by_status, lora_uses, _timing = series_figures(report["series"])
    assert bar_total(by_status) == 8
    assert bar_total(lora_uses) == 9  # g1-g3 two each, g4 g7 g8 one
    assert re.findall(r'data-plot="(\w+)"><img src="data:image/png;base64,', out["plots"]) == list(PLOTS)
    series = csv_rows(out["plots"], "over-time")
    assert len(series) == 30 and sum(int(r["generations"]) for r in series) == 8

    t = out["tables"]
    top = csv_rows(t, "top-loras")
    assert [(r["name"], r["uses"]) for r in top] == [("Anime Style", "5"), ("Detail", "4")]
    assert ("history", f"date:<30d lora:{loras['anime_style']}") in links(t)
    assert ("library", "used:never sort:-size") in links(t)
    assert ("history", "date:<30d status:failed") in links(t)  # the error group
    assert f'data-lm-open-generation="{g["g3"]}"' in t  # its example records open in the History
    unused = csv_rows(t, "unused")
    assert unused[0]["count"] == "1"  # "unused" was never used
    models = {r["model"]: r for r in csv_rows(t, "models")}
    assert models["m2"]["failure_rate"] == "1.0"

    # a History query narrows every figure
    narrowed = shown(library, q="model:m2")
    assert kpi(narrowed["kpis"], "Generations") == "2"
    assert kpi(narrowed["kpis"], "Success rate") == "0 %"  # two finished, both failed: a real 0 %
    assert ("history", "model:m2 date:<30d status:failed") in links(narrowed["kpis"])


def test_window_and_date_range(figures):
    library, _g, _loras = figures
    week = shown(library, "7 days")
    assert kpi(week["kpis"], "Generations") == "6"
    assert "before: 1 · " in week["kpis"]  # g7, ten days ago
    # two failures after none: the difference, in the colour of a change for the worse
    failed = re.search(r'Failed</div>.*?</div><div class="lm-an-kpi-prev">(.*?)</div>', week["kpis"]).group(1)
    assert failed == 'before: 0 · <span class="lm-an-worse">+2</span>'
    assert 'before: 1 · <span class="lm-an-up">+500 %</span>' in week["kpis"]  # 6 generations after 1
    day = (NOW - 20 * DAY)
    import datetime as dt

    first = dt.date.fromtimestamp(day).isoformat()
    ranged = shown(library, "Date range", first, first)
    assert kpi(ranged["kpis"], "Generations") == "1"
    assert f"{first} to {first} · All generations." in ranged["scope"]
    assert ("library", f"added:{first}..{first} sort:-added") in links(ranged["kpis"])


def test_empty_history_says_so_and_invents_nothing(library, lora_dir):
    make_lora(lora_dir, "alone", seed=1)
    library.indexer.scan()
    out = shown(library)
    assert "No generations recorded in this scope" in out["scope"]
    assert kpi(out["kpis"], "Success rate") == "no data"
    assert kpi(out["kpis"], "Median time") == "no data"
    assert "0 %" not in out["kpis"]
    assert out["plots"] == ""  # no flat lines standing for nothing
    assert "No LoRA was used in this scope." in out["tables"]
    assert "No generations recorded in this scope yet" in out["insights"]
    assert ("library", "used:never sort:-size") in links(out["tables"])


def test_bad_scope_keeps_the_figures_and_says_why(figures):
    library, _g, _loras = figures
    tab = AnalyticsTab(lambda: library)
    for args, words in ((("30 days", "", "", "status:exploded"), "exploded"),
                        (("Date range", "2026-13-01", "2026-12-01", ""), "is not a date"),
                        (("Date range", "", "", ""), "needs both From and To")):
        out = dict(zip(OUTPUTS, tab.refresh(*args)))
        assert "lm-error" in out["status"] and words in html.unescape(out["status"])
        assert "Traceback" not in out["status"]
        assert out["kpis"] == {"__type__": "generic_update"}  # what was shown stays


def test_untrusted_names_are_escaped(library, lora_dir):
    make_lora(lora_dir, "evil", seed=1)
    library.indexer.scan()
    lora = library.find("evil")
    library.edit(lora.id, display_name=XSS, tags=[XSS])
    for n in range(3):
        library.history.record(rec(f"x <lora:evil:0.3> <lora:{XSS}:1>", NOW - DAY - n, status="failed", model_name=XSS,
                                   error=f"broke {XSS}"))
    out = shown(library)
    everything = "".join(str(v) for v in out.values())
    assert XSS not in everything
    assert html.escape(XSS) in out["tables"]  # the LoRA's name, its tag, the model
    assert "&lt;img src=x onerror=alert(#)&gt;" in out["tables"]  # the normalised error message
    assert html.escape(XSS) in out["insights"]


def test_insight_sets_the_default_weight(figures):
    library, _g, loras = figures
    tab = AnalyticsTab(lambda: library)
    out = dict(zip(OUTPUTS, tab.refresh("30 days", "", "", "")))
    anime = loras["anime_style"]
    # anime_style at 0.6 in three of its four uses; its default is unset (1)
    assert f'data-lora-id="{anime}" data-weight="0.6">Make 0.6 its default</button>' in out["insights"]
    after = dict(zip(OUTPUTS, tab.set_default_weight(f"{anime}:0.6", "30 days", "", "", "")))
    assert library.get(anime).default_weight == 0.6
    assert "The default weight of Anime Style is now 0.6." in after["status"]
    assert "Make 0.6 its default" not in after["insights"]
    bad = dict(zip(OUTPUTS, tab.set_default_weight("999999:0.5", "30 days", "", "", "")))
    assert "lm-error" in bad["status"]
    assert library.get(anime).default_weight == 0.6


def test_formats_say_no_data_never_zero():
    assert analytics_cards.share(None) == "no data" and analytics_cards.share(0.0) == "0 %"
    assert analytics_cards.seconds(None) == "no data"
    assert analytics_cards.change(None) is None  # nothing before: no made-up percentage
    assert analytics_cards.change(0.25) == ("+25 %", "lm-an-up")
    assert analytics_cards.link_attrs({"target": "javascript:alert(1)", "query": '"><b>'}).startswith(
        ' data-lm-link-tab="history" data-lm-link-query="&quot;&gt;&lt;b&gt;"')


def test_median_plot_leaves_a_gap_where_nothing_was_timed():
    buckets = [{"start": NOW - 2 * DAY, "generations": 1, "loras": 0, "median_seconds": 4.0, "succeeded": 1},
               {"start": NOW - DAY, "generations": 0, "loras": 0, "median_seconds": None}]
    _, _, timing = series_figures({"bucket": "day", "buckets": buckets})
    ys = timing.axes[0].lines[0].get_ydata()
    assert ys[0] == 4.0 and ys[1] != ys[1]  # NaN: no point, not a zero



def test_the_tab_is_built_inside_sdnext(sdnext):
    """SDNext renders our one extension tab; Analytics is among the tabs inside it, and building
    it read nothing (its first view asks for the figures)."""
    from test_sdnext_host import sdnext_host, wait_for_scan

    double = sdnext()
    try:
        assert double.errors == []
        blocks, title, _elem_id = double.tabs[0]
        ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
        assert {"lora_manager_analytics_tab", "lora_manager_analytics_window", "lora_manager_analytics_plots",
                "lora_manager_analytics_action_btn", "lora_manager_analytics_first_view"} <= ids
    finally:
        library = sdnext_host().app.library()
        wait_for_scan(library)  # its background scan ends before the double is taken down
        library.close()


def test_recommendations_taken_in_the_window(figures):
    """Feedback given to recommendations (now: inside the 30 days) shows as a KPI and in the report."""
    library, _g, loras = figures
    context = f"similar:{loras['detail']}"
    for kind in ("added", "added", "up", "down", "hide"):
        library.recommender.feedback(context, loras["anime_style"], kind)
    report = library.analytics.report("30d")
    taken = report["recommendations"]
    assert (taken["added"], taken["up"], taken["down"], taken["hide"]) == (2, 1, 1, 1)
    assert taken["taken_share"] == 0.4 and taken["previous"]["added"] == 0
    assert library.analytics.report("all")["recommendations"]["previous"] is None
    k = shown(library)["kpis"]
    assert kpi(k, "Recommendations taken") == "2 added"
    assert "40 % of answered · 1 thumbs up · 1 down · 1 hidden" in k and "before: 0 added" in k
