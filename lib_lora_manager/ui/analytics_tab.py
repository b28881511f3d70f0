"""The Analytics tab: what the history and the library say over a scope (a time window or a date
range, and an optional History query), as KPI cards beside the window before, three plots over
time, tables with their CSV, and insights.

``AnalyticsTab`` holds the handlers (plain methods returning values in the order of their outputs,
testable without a browser); ``build_content`` lays out the components and wires them. Building
the tab reads nothing: the page script refreshes it the first time it becomes visible.

Browser glue (javascript/lora_manager.js): a click on any figure or row follows its
``data-lm-link-*`` query into the Library or History tab; an insight's "Make W its default" writes
``ID:W`` into the hidden textbox ``lora_manager_analytics_action`` and clicks
``lora_manager_analytics_action_btn``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, LoraManagerError
from ..statuses import GenerationStatus
from . import analytics_cards, cards
from .components import gradio_module as _gr
from .components import no_config

if TYPE_CHECKING:
    from ..library import Library

# label -> analytics window ("range": the from/to days)
WINDOWS = {"24 hours": "24h", "7 days": "7d", "30 days": "30d", "90 days": "90d", "1 year": "1y", "All time": "all",
           "Date range": "range"}
DEFAULT_WINDOW = "30 days"
OUTPUTS = ("status", "scope", "kpis", "plots", "tables", "insights")
PLOTS = ("generations", "loras", "time")  # the plots' names (data-plot), in the order series_figures draws them
# one colour per status, readable on light and dark backgrounds
STATUS_COLOURS = {GenerationStatus.SUCCEEDED: "#3fa36b", GenerationStatus.FAILED: "#d9534f",
                  GenerationStatus.INTERRUPTED: "#e0a030", GenerationStatus.NO_MODEL: "#8c8c8c"}
INK = "#8a8f98"  # axis text and lines: a mid grey that reads on SDNext's light and dark themes alike
BAR = "#4f8cff"
_ACTION = re.compile(r"^\s*(\d+)\s*:\s*(-?\d+(?:\.\d+)?)\s*$")


def window_key(label: str | None) -> str:
    return WINDOWS.get(label or "", label if label in WINDOWS.values() else WINDOWS[DEFAULT_WINDOW])


class AnalyticsTab:
    """Handlers of the Analytics tab, bound to one Library."""

    def __init__(self, open_library: Callable[[], Library]):
        self._open_library = open_library

    def report(self, window: str, start: str | None, end: str | None, q: str | None) -> dict[str, Any]:
        """The analytics report of the scope; raises InvalidInput / QueryError for a bad one."""
        key = window_key(window)
        if key == "range":
            if not (start or "").strip() or not (end or "").strip():
                raise InvalidInput("A date range needs both From and To, as YYYY-MM-DD.")
            return self._open_library().analytics.report(None, q or "", start, end)
        return self._open_library().analytics.report(key, q or "", None, None)

    def render(self, report: dict[str, Any], window: str, start: str | None, end: str | None, status: str = "") -> tuple:
        key = window_key(window)
        series = report["series"]
        # no generations: empty-state words instead of three flat lines
        has_series = bool(series.get("buckets")) and bool(report["kpis"]["generations"])
        values = {
            "status": status,
            "scope": analytics_cards.scope_line(report) + analytics_cards.empty_state(report),
            "kpis": analytics_cards.kpis(report, analytics_cards.added_terms(key, start, end)),
            "plots": plots_html(series) if has_series else "",
            "tables": analytics_cards.tables(report),
            "insights": analytics_cards.insights(report["insights"]),
        }
        return tuple(values[k] for k in OUTPUTS)

    def _failed(self, error: LoraManagerError) -> tuple:
        """A bad scope keeps what is shown and says what is wrong."""
        gr = _gr()
        out = {k: gr.update() for k in OUTPUTS}
        out["status"] = cards.message(str(error), "error")
        return tuple(out[k] for k in OUTPUTS)

    def refresh(self, window: str, start: str | None, end: str | None, q: str | None, status: str = "") -> tuple:
        try:
            report = self.report(window, start, end, q)
        except LoraManagerError as e:
            return self._failed(e)
        return self.render(report, window, start, end, status)

    @staticmethod
    def window_changed(window: str) -> dict:
        """From and To show for a date range only."""
        return _gr().update(visible=window_key(window) == "range")

    def choose_window(self, window: str, start: str | None, end: str | None, q: str | None) -> tuple:
        """A window chosen from the list shows at once; a date range waits for its days."""
        if window_key(window) == "range" and not ((start or "").strip() and (end or "").strip()):
            gr = _gr()
            out = {k: gr.update() for k in OUTPUTS}
            out["status"] = cards.message("Enter the From and To days (YYYY-MM-DD), then Refresh.", "info")
            return tuple(out[k] for k in OUTPUTS)
        return self.refresh(window, start, end, q)

    def set_default_weight(self, request: str | None, window: str, start: str | None, end: str | None,
                           q: str | None) -> tuple:
        """An insight's action: ``ID:WEIGHT`` becomes that LoRA's default weight; then the figures
        are read again (the insight is gone once the default matches)."""
        match = _ACTION.match(request or "")
        if not match:
            return self._failed(InvalidInput("No LoRA and weight given."))
        try:
            detail = self._open_library().edit(int(match.group(1)), default_weight=float(match.group(2)))
        except LoraManagerError as e:
            return self._failed(e)
        done = cards.message(f"The default weight of {detail.name} is now {detail.default_weight:g}.", "ok")
        return self.refresh(window, start, end, q, done)


# --- plots ------------------------------------------------------------------------------------


def _axes(title: str):
    """A small figure with a transparent background and grey ink: the page's own background
    shows through, light or dark."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.0, 2.4), dpi=110)  # 440 × 264 px; text stays legible shown at 300 px wide
    figure.patch.set_alpha(0)
    ax = figure.add_subplot()
    ax.set_facecolor("none")
    ax.set_title(title, color=INK, fontsize=10.5, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(INK)
    ax.tick_params(colors=INK, labelsize=8.5)
    ax.grid(axis="y", color=INK, alpha=0.25, linewidth=0.6)
    ax.set_axisbelow(True)
    return figure, ax


def _finish(ax, xs: list[float], size: float) -> None:
    """Date ticks under bars at ``xs`` (matplotlib day numbers) of ``size`` days each. The
    margins are fixed: tight_layout would draw the figure once more just to measure it."""
    import matplotlib.dates as mdates

    ax.xaxis_date()
    locator = mdates.AutoDateLocator(maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.xaxis.get_offset_text().set_color(INK)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if xs:
        ax.set_xlim(xs[0] - size / 2, xs[-1] + size / 2)
    ax.figure.subplots_adjust(left=0.11, right=0.98, top=0.85, bottom=0.19)


def _bars(ax, xs: list[float], heights: list[float], width: float, bottom: list[float] | None = None,
          colour: str = BAR, label: str | None = None) -> None:
    """Bars as one collection of rectangles (``ax.bar`` makes an artist per bar, about 2 ms each),
    only for the buckets with something in them."""
    from matplotlib.collections import PolyCollection

    base = bottom or [0] * len(xs)
    boxes = [[(x - width / 2, b), (x - width / 2, b + h), (x + width / 2, b + h), (x + width / 2, b)]
             for x, h, b in zip(xs, heights, base) if h]
    ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors="none", label=label))
    ax.set_ylim(0, max(1, max((h + b for h, b in zip(heights, base)), default=0)) * 1.05)


def series_figures(series: dict[str, Any]) -> tuple:
    """(generations by status, LoRA uses, median time) over the report's buckets (empty buckets
    are zero; a bucket without a timed generation has no median point)."""
    import matplotlib.dates as mdates

    buckets = series["buckets"]
    size = {"hour": 1 / 24, "day": 1.0}.get(series.get("bucket"), 7.0)  # bar width in days
    # numbers, not datetimes: matplotlib converts a datetime bar by bar (most of the time spent)
    xs = [float(x) + size / 2 for x in mdates.date2num([dt.datetime.fromtimestamp(b["start"]) for b in buckets])]
    width = size * 0.8

    figure1, ax = _axes("Generations by status")
    bottom = [0] * len(buckets)
    for status, colour in STATUS_COLOURS.items():
        heights = [b.get(str(status), 0) for b in buckets]
        if any(heights):
            _bars(ax, xs, heights, width, bottom, colour, str(status).replace("_", " "))
            bottom = [x + h for x, h in zip(bottom, heights)]
    if any(bottom):
        # above the plot, beside its title: never over the bars
        legend = ax.legend(fontsize=7.5, frameon=False, loc="lower right", bbox_to_anchor=(1, 0.98), ncol=4,
                           handlelength=1, columnspacing=0.8, borderaxespad=0)
        for text in legend.get_texts():
            text.set_color(INK)
    _finish(ax, xs, size)

    figure2, ax = _axes("LoRA uses")
    _bars(ax, xs, [b["loras"] for b in buckets], width)
    _finish(ax, xs, size)

    figure3, ax = _axes("Median time (s)")
    medians = [float("nan") if b["median_seconds"] is None else b["median_seconds"] for b in buckets]
    ax.plot(xs, medians, color=BAR, marker="o", markersize=3, linewidth=1.4)
    ax.set_ylim(bottom=0)
    _finish(ax, xs, size)
    ax.yaxis.get_major_locator().set_params(integer=False)
    return figure1, figure2, figure3


def png_data_url(figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = io.BytesIO()
    FigureCanvasAgg(figure).print_png(out)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def plots_html(series: dict[str, Any]) -> str:
    """The three plots as PNG images (drawn here, so the page loads no plotting library of its
    own: gr.Plot brings gradio's 4.6 MB plotly/vega bundle to every page load), and their table
    as CSV."""
    bucket = cards.esc(series.get("bucket"))
    shown = []
    for name, figure in zip(PLOTS, series_figures(series)):
        title = cards.esc(f"{figure.axes[0].get_title(loc='left')} by {series.get('bucket')}")
        shown.append(f'<figure class="lm-an-plot" data-plot="{name}"><img src="{png_data_url(figure)}" alt="{title}" '
                     f'title="{title}"></figure>')
    csv = analytics_cards.csv_link(analytics_cards.series_rows(series), "over-time")
    return (f'<div class="lm-an-head lm-an-series-head">Over time, by {bucket}{csv}</div>'
            f'<div class="lm-an-plots">{"".join(shown)}</div>')


# --- layout -----------------------------------------------------------------------------------


def build_content(open_library: Callable[[], Library]) -> AnalyticsTab:
    """Create the Analytics tab's components inside the current Blocks context and wire them."""
    import gradio as gr

    tab = AnalyticsTab(open_library)
    with gr.Column(elem_classes=["lm-root"], elem_id="lora_manager_analytics"):
        with gr.Row(elem_classes=["lm-searchbar", "lm-an-scopebar"]):
            window = gr.Dropdown(list(WINDOWS), value=DEFAULT_WINDOW, label="Window", elem_id="lora_manager_analytics_window",
                                 elem_classes=["lm-an-window"])
            q = gr.Textbox(label="History query (optional)", lines=1, max_lines=1, elem_id="lora_manager_analytics_q",
                           elem_classes=["lm-search"], placeholder="model:sdxl source:txt2img lora:NAME status:failed …")
            refresh_btn = gr.Button("Refresh", variant="primary", elem_id="lora_manager_analytics_refresh",
                                    elem_classes=["lm-btn"])
        with gr.Row(visible=False, elem_classes=["lm-an-range"]) as range_row:
            start = gr.Textbox(label="From", placeholder="YYYY-MM-DD", lines=1, max_lines=1,
                               elem_id="lora_manager_analytics_from", elem_classes=["lm-an-date"])
            end = gr.Textbox(label="To", placeholder="YYYY-MM-DD", lines=1, max_lines=1,
                             elem_id="lora_manager_analytics_to", elem_classes=["lm-an-date"])
        status = gr.HTML("", elem_id="lora_manager_analytics_status")
        scope = gr.HTML('<div class="lm-empty">Loading the analytics…</div>', elem_id="lora_manager_analytics_results")
        kpis = gr.HTML("", elem_id="lora_manager_analytics_kpis")
        plots = gr.HTML("", elem_id="lora_manager_analytics_plots")
        gr.HTML('<h3 class="lm-an-title">Insights</h3>', elem_id="lora_manager_analytics_insights_title")
        insights = gr.HTML("", elem_id="lora_manager_analytics_insights")
        tables = gr.HTML("", elem_id="lora_manager_analytics_tables")
        with gr.Column(elem_classes=["lm-hidden"], elem_id="lora_manager_analytics_glue"):
            first_view = gr.Button("refresh", elem_id="lora_manager_analytics_first_view", elem_classes=["lm-hidden"])
            action = gr.Textbox(show_label=False, elem_id="lora_manager_analytics_action", elem_classes=["lm-hidden"])
            action_btn = gr.Button("apply", elem_id="lora_manager_analytics_action_btn", elem_classes=["lm-hidden"])
        no_config(window, start, end, q, action)

    by_name = {"status": status, "scope": scope, "kpis": kpis, "plots": plots, "tables": tables, "insights": insights}
    outputs = [by_name[k] for k in OUTPUTS]
    scope_inputs = [window, start, end, q]
    refresh_btn.click(tab.refresh, scope_inputs, outputs)
    q.submit(tab.refresh, scope_inputs, outputs)
    first_view.click(tab.refresh, scope_inputs, outputs, show_progress=False)
    window.change(tab.window_changed, [window], [range_row], show_progress=False)
    window.input(tab.choose_window, scope_inputs, outputs)
    start.submit(tab.refresh, scope_inputs, outputs)
    end.submit(tab.refresh, scope_inputs, outputs)
    action_btn.click(tab.set_default_weight, [action, *scope_inputs], outputs)
    return tab
