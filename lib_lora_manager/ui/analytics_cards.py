"""HTML for the Analytics tab: KPI cards, the tables and the insights of one analytics report.

Every figure and row is a link to the query that produced it: an element carrying
``data-lm-link-tab`` (``library`` or ``history``) and ``data-lm-link-query``, which the page script
(javascript/lora_manager.js) turns into a search in that tab. Names, tags, model names and error
messages come from files and the history: they pass through ``esc`` like everywhere else. A figure
with nothing to count says "no data"; nothing here makes a figure up.

Each table carries its rows as a CSV download (a ``data:`` link built from the same rows), so
what is downloaded is exactly what is shown, in SDNext and standalone alike.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from ..statuses import GenerationStatus
from ..wording import human_size
from .cards import esc, when

NO_DATA = "no data"
TABS = ("library", "history")
ERROR_ROWS = 20  # error groups shown; the CSV has them all


# --- small formats ------------------------------------------------------------------------------


def number(value: float | int | None) -> str:
    return NO_DATA if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def share(value: float | None) -> str:
    """A rate as a percentage; None (nothing to divide by) is "no data", never 0 %."""
    return NO_DATA if value is None else f"{value * 100:.0f} %"


def seconds(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.1f} s" if value < 100 else f"{value:,.0f} s"


def weight(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def change(value: float | None) -> tuple[str, str] | None:
    """(text, css class) of a relative change; None when there is no earlier figure to compare."""
    if value is None:
        return None
    if abs(value) < 0.005:
        return "±0 %", "lm-an-flat"
    return f"{value * 100:+.0f} %", "lm-an-up" if value > 0 else "lm-an-down"


def with_terms(link: dict[str, Any] | None, *terms: str) -> dict[str, str] | None:
    """``link`` with more query terms appended (a KPI's status, say)."""
    if not link:
        return None
    query = " ".join(p for p in (str(link.get("query") or "").strip(), *terms) if p)
    return {"target": link_tab(link), "query": query}


def link_tab(link: dict[str, Any]) -> str:
    tab = str(link.get("target") or link.get("tab") or "history")
    return tab if tab in TABS else "history"


def link_attrs(link: dict[str, Any] | None) -> str:
    """The data attributes the page script follows, and a tooltip naming where the click goes."""
    if not link:
        return ""
    tab, query = link_tab(link), str(link.get("query") or "")
    title = f"Show in the {tab.title()}" + (f": {query}" if query else "")
    return (f' data-lm-link-tab="{esc(tab)}" data-lm-link-query="{esc(query)}" title="{esc(title)}"'
            ' tabindex="0" role="link"')


def linked(text_html: str, link: dict[str, Any] | None, css: str = "lm-an-link") -> str:
    """Markup (already escaped) as a link to a query; plain when there is none."""
    if not link:
        return text_html
    return f'<a href="#" class="{css}"{link_attrs(link)}>{text_html}</a>'


def csv_link(rows: list[dict[str, Any]], name: str) -> str:
    if not rows:
        return ""
    from ..analytics import to_csv  # not at import: building the tabs must not load SQLAlchemy

    href = "data:text/csv;charset=utf-8," + urllib.parse.quote(to_csv(rows))
    return (f'<a class="lm-an-csv" download="{esc(name)}.csv" href="{esc(href)}" '
            f'title="Download these rows as CSV">CSV</a>')


# --- scope and empty state --------------------------------------------------------------------


WINDOW_WORDS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days",
                "1y": "Last year", "all": "All time"}


def scope_line(report: dict[str, Any]) -> str:
    """What is counted: the window in words and the query's description (its sort is irrelevant
    here), then the History query the figures' links extend."""
    s = report["scope"]
    if s.get("window") == "range" and s.get("start") is not None:
        last = dt.datetime.fromtimestamp(s["end"]) - dt.timedelta(days=1)
        window = f"{dt.datetime.fromtimestamp(s['start']):%Y-%m-%d} to {last:%Y-%m-%d}"
    else:
        window = WINDOW_WORDS.get(s.get("window"), "")
    described = re.sub(r";\s*sorted by [^;]*$", ".", s.get("description") or "").strip()
    text = " · ".join(p for p in (window, described) if p)
    query = s.get("query") or ""
    shown = f' <code class="lm-query" title="the History query of this scope">{esc(query)}</code>' if query else ""
    return f'<div class="lm-description lm-an-scope">{esc(text)}{shown}</div>'


def empty_state(report: dict[str, Any]) -> str:
    """Said plainly when the scope has no generations (the library figures still follow)."""
    if report["kpis"]["generations"]:
        return ""
    return ('<div class="lm-empty lm-an-empty">No generations recorded in this scope: nothing to count yet. '
            'Generate images, or import the ones you made before (History tab, “Import images made before”).</div>')


# --- KPIs -------------------------------------------------------------------------------------


# (key, label, format, extra History terms) of the KPIs that stand beside the previous window
KPIS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("generations", "Generations", number, ""),
    ("images", "Images", number, ""),
    ("success_rate", "Success rate", share, ""),
    ("failed", "Failed", number, "status:failed"),
    ("interrupted", "Interrupted", number, "status:interrupted"),
    ("no_model", "No model loaded", number, "status:no_model"),
    ("median_seconds", "Median time", seconds, "status:succeeded sort:duration"),
    ("p95_seconds", "95th percentile time", seconds, "status:succeeded sort:-duration"),
    ("loras_used", "Distinct LoRAs used", number, ""),
    ("models_used", "Distinct models", number, ""),
    ("lora_share", "With a LoRA", share, ""),
    ("loras_added", "LoRAs added", number, ""),
)


# figures where more is worse: their rise shows in the "bad" colour
WORSE_UP = {"failed", "interrupted", "no_model", "median_seconds", "p95_seconds"}


def kpi_card(label: str, value: str, link: dict[str, Any] | None, previous: str | None = None,
             delta: tuple[str, str] | None = None, note: str = "") -> str:
    parts = [f'<div class="lm-an-kpi-label">{esc(label)}</div>',
             f'<div class="lm-an-kpi-value">{linked(esc(value), link)}</div>']
    if previous is not None:
        shown_delta = f' · <span class="{delta[1]}">{esc(delta[0])}</span>' if delta else ""
        parts.append(f'<div class="lm-an-kpi-prev">before: {esc(previous)}{shown_delta}</div>')
    if note:
        parts.append(f'<div class="lm-an-kpi-prev">{esc(note)}</div>')
    return f'<div class="lm-an-kpi">{"".join(parts)}</div>'


def added_terms(window: str, start: str | None, end: str | None) -> str:
    """The Library query words for "added in this window"."""
    if window == "range" and start and end:
        return f"added:{start.strip()}..{end.strip()}"
    return "" if window in ("all", "range") else f"added:<{window}"


def kpis(report: dict[str, Any], added_query: str = "") -> str:
    k = report["kpis"]
    previous = k.get("previous")
    changes = k.get("change") or {}
    scope_link = k.get("link")
    out = []
    for key, label, fmt, terms in KPIS:
        if key == "loras_added":
            link: dict[str, Any] | None = {"target": "library", "query": " ".join(p for p in (added_query, "sort:-added") if p)}
        else:
            link = with_terms(scope_link, terms)
        delta = None
        if previous:
            # the relative change where the report has one; else (from zero, or a count it keeps
            # no change for) the difference of two counts
            delta = change(changes.get(key)) or _difference(k[key], previous[key])
            if delta and key in WORSE_UP:
                delta = (delta[0], {"lm-an-up": "lm-an-worse", "lm-an-down": "lm-an-better"}.get(delta[1], delta[1]))
        out.append(kpi_card(label, fmt(k[key]), link, fmt(previous[key]) if previous else "no earlier window", delta))
    health = report["health"]
    out.append(kpi_card("Library", f"{health['loras']:,} LoRAs", health.get("link"), note=human_size(health["bytes"]) + " on disk"))
    if report.get("recommendations"):
        out.append(recommendations_card(report["recommendations"]))
    return f'<div class="lm-an-kpis">{"".join(out)}</div>'


def recommendations_card(taken: dict[str, Any]) -> str:
    """Recommendations added to a composition in the window, beside the window before, with the
    share of answered ones that were added and the other answers (the window's; no query narrows them)."""
    before = taken.get("previous")
    note = (f"{share(taken.get('taken_share'))} of answered · {taken['up']:,} thumbs up · {taken['down']:,} down · "
            f"{taken['hide']:,} hidden")
    return kpi_card("Recommendations taken", f"{taken['added']:,} added", None,
                    f"{before['added']:,} added" if before else "no earlier window",
                    _difference(taken["added"], before["added"]) if before else None, note=note)


def _difference(now: Any, before: Any) -> tuple[str, str] | None:
    if not isinstance(now, int) or not isinstance(before, int):
        return None
    diff = now - before
    return (f"{diff:+,}", "lm-an-up" if diff > 0 else "lm-an-down" if diff < 0 else "lm-an-flat")


# --- tables -----------------------------------------------------------------------------------


Column = tuple[str, Callable[[dict[str, Any]], str]]  # header, cell markup (escaped) of a row


def table(title: str, columns: Sequence[Column], rows: list[dict[str, Any]], csv_name: str, empty: str,
          csv_rows: list[dict[str, Any]] | None = None, note: str = "") -> str:
    """A titled table whose rows are links (each row's ``link``), with its CSV."""
    head = (f'<div class="lm-an-head"><h3>{esc(title)}</h3>{csv_link(csv_rows if csv_rows is not None else rows, csv_name)}</div>')
    if note:
        head += f'<div class="lm-an-note">{esc(note)}</div>'
    if not rows:
        return f'<section class="lm-an-table" data-table="{esc(csv_name)}">{head}<div class="lm-an-none">{esc(empty)}</div></section>'
    header = "".join(f"<th>{esc(h)}</th>" for h, _ in columns)
    body = "".join(f'<tr class="lm-an-row"{link_attrs(r.get("link"))}>' + "".join(f"<td>{cell(r)}</td>" for _, cell in columns)
                   + "</tr>" for r in rows)
    return (f'<section class="lm-an-table" data-table="{esc(csv_name)}">{head}<div class="lm-table-wrap"><table class="lm-table">'
            f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div></section>")


def _name(r: dict[str, Any]) -> str:
    return esc(r.get("name") or f"#{r.get('id')}")


TOP_COLUMNS: list[Column] = [
    ("LoRA", _name), ("Uses", lambda r: number(r["uses"])), ("Last used", lambda r: esc(when(r.get("last_used_at")))),
    ("Avg. rating", lambda r: "" if r.get("average_rating") is None else f"{r['average_rating']:.1f}"),
    ("Favorites", lambda r: number(r.get("favorites") or 0)),
]
RISING_COLUMNS: list[Column] = [
    ("LoRA", _name), ("Uses", lambda r: number(r["uses"])), ("Before", lambda r: number(r["previous_uses"])),
    ("Growth", lambda r: f"+{r['growth']:,}"),
]
USE_COLUMNS: list[Column] = [("Value", lambda r: esc(r.get("label") or r.get("value") or "(none)")), ("Uses", lambda r: number(r["uses"]))]


def _spread(r: dict[str, Any]) -> str:
    default = r["default_weight"] if r.get("default_weight") is not None else 1.0
    return esc(f"{weight(r['min_weight'])}–{weight(r['max_weight'])} · {r['median_weight'] - default:+g} vs default")


WEIGHT_COLUMNS: list[Column] = [
    ("LoRA", _name), ("Uses", lambda r: number(r["uses"])), ("Median weight", lambda r: esc(weight(r["median_weight"]))),
    ("Default", lambda r: esc(weight(r["default_weight"])) or "1 (unset)"), ("Range · spread", _spread),
]
PAIR_COLUMNS: list[Column] = [
    ("LoRAs", lambda r: f'{esc(r["a"]["name"] or r["a"]["id"])} + {esc(r["b"]["name"] or r["b"]["id"])}'),
    ("Together", lambda r: number(r["together"])), ("Lift", lambda r: f"{r['lift']:.1f}×"),
]
MODEL_COLUMNS: list[Column] = [
    ("Model", lambda r: esc(r.get("model") or "(none)")), ("Uses", lambda r: number(r["uses"])),
    ("Median time", lambda r: seconds(r.get("median_seconds"))), ("Failure rate", lambda r: share(r.get("failure_rate"))),
]
SPEED_COLUMNS: list[Column] = [
    ("Model", lambda r: esc(r.get("model") or "(none)")),
    ("Size", lambda r: esc(f"{r['width']}×{r['height']}") if r.get("width") else ""),
    ("Generations", lambda r: number(r["generations"])), ("s/step", lambda r: f"{r['seconds_per_step']:.2f}"),
]


def _examples(r: dict[str, Any]) -> str:
    return " ".join(f'<a href="#" class="lm-an-link" data-lm-open-generation="{int(i)}" '
                    f'title="Open generation #{int(i)} in the History">#{int(i)}</a>' for i in r.get("examples") or [])


ERROR_COLUMNS: list[Column] = [
    ("Message", lambda r: f'<span class="lm-an-error">{esc(r["message"])}</span>'), ("Count", lambda r: number(r["count"])),
    ("Share", lambda r: share(r.get("share"))), ("First seen", lambda r: esc(when(r.get("first_seen")))),
    ("Last seen", lambda r: esc(when(r.get("last_seen")))), ("Examples", _examples),
]
FIGURE_COLUMNS: list[Column] = [("Figure", lambda r: esc(r["label"])), ("Count", lambda r: esc(r["value"]))]


def unused_rows(never: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"label": "Never used", "count": never["count"], "bytes": never["bytes"], "link": never["link"]},
        {"label": f"Unused for {never['unused_days']} days or more", "count": never["unused_count"],
         "bytes": never["unused_bytes"], "link": never["unused_link"]},
    ]


UNUSED_COLUMNS: list[Column] = [("LoRAs that are", lambda r: esc(r["label"])), ("Count", lambda r: number(r["count"])),
                                ("Disk", lambda r: esc(human_size(r["bytes"])))]


def health_rows(h: dict[str, Any]) -> list[dict[str, Any]]:
    """The library's health figures as rows; a figure with no query to show it has no link."""
    def row(label: str, key: str, value: str | None = None) -> dict[str, Any]:
        item = h[key]
        return {"label": label, "value": value if value is not None else f"{item['count']:,}", "link": item.get("link")}

    d = h["duplicates"]
    return [
        {"label": "LoRAs", "value": f"{h['loras']:,} ({human_size(h['bytes'])})", "link": h.get("link")},
        row("Not hashed yet", "unhashed"), row("Missing files", "missing"), row("Unreadable files", "unreadable"),
        row("Files with copies", "duplicates", f"{d['groups']:,} groups, {human_size(d['wasted_bytes'])} wasted"),
        row("Without a preview", "no_preview"), row("Without trigger words", "no_trigger_words"),
        row("Base model unknown", "no_base_model"), row("Names SDNext cannot load", "unloadable_names"),
    ]


def insights(items: list[dict[str, Any]]) -> str:
    if not items:
        return '<div class="lm-an-none">Nothing stands out in this scope.</div>'
    out = []
    for item in items:
        text = linked(esc(item["text"]), {"target": item.get("target"), "query": item.get("query") or ""})
        action = item.get("action")
        if action and action.get("lora_id") is not None and action.get("default_weight") is not None:
            w = float(action["default_weight"])
            text += (f' <button type="button" class="lm-btn lm-an-action" data-lora-id="{int(action["lora_id"])}" '
                     f'data-weight="{w:g}">Make {w:g} its default</button>')
        out.append(f'<li class="lm-an-insight">{text}</li>')
    return f'<ul class="lm-an-insights">{"".join(out)}</ul>'


def series_rows(series: dict[str, Any]) -> list[dict[str, Any]]:
    """The table behind the plots: one row per bucket, its start as a local time."""
    statuses = [str(s) for s in GenerationStatus]
    return [{"start": when(b["start"]), "generations": b["generations"], **{s: b.get(s, 0) for s in statuses},
             "lora_uses": b["loras"], "median_seconds": b["median_seconds"]} for b in series.get("buckets") or []]


def tables(report: dict[str, Any]) -> str:
    """Every table of the report, each with its CSV."""
    use = report["lora_use"]
    weights = report.get("weights") or []
    errors = report["errors"]
    sections = [
        table("Top used LoRAs", TOP_COLUMNS, report["top_loras"], "top-loras", "No LoRA was used in this scope."),
        table("Rising", RISING_COLUMNS, report["rising"], "rising",
              "Nothing rose against the window before." if report["scope"]["window"] != "all" else "“All” has no window before to compare with."),
        table("Never used and unused", UNUSED_COLUMNS, unused_rows(report["never_used"]), "unused", "",
              note="Over the whole library and history."),
        table("Weights you use", WEIGHT_COLUMNS, weights, "weights", "No LoRA weights recorded in this scope."),
        table("Uses by base model", USE_COLUMNS, use.get("base_model", []), "use-by-base-model", "No LoRA uses in this scope."),
        table("Uses by type", USE_COLUMNS, use.get("type", []), "use-by-type", "No LoRA uses in this scope."),
        table("Uses by tag", USE_COLUMNS, use.get("tag", []), "use-by-tag", "No tagged LoRA was used in this scope."),
        table("Uses by folder", USE_COLUMNS, use.get("folder", []), "use-by-folder", "No LoRA uses in this scope."),
        table("Combinations", PAIR_COLUMNS, report["combinations"], "combinations",
              "No two LoRAs were used together often enough in this scope.",
              note="Lift: how many times more often than chance the pair appears."),
        table("Models", MODEL_COLUMNS, report["models"], "models", "No generations in this scope."),
        table("Speed (seconds per step)", SPEED_COLUMNS, report.get("speed") or [], "speed",
              "No timed generation with steps in this scope."),
        table("Errors", ERROR_COLUMNS, errors[:ERROR_ROWS], "errors", "No failures in this scope.", csv_rows=errors,
              note=f"Showing {ERROR_ROWS} of {len(errors):,} messages; the CSV has all." if len(errors) > ERROR_ROWS else ""),
        table("Library health", FIGURE_COLUMNS, health_rows(report["health"]), "health", ""),
    ]
    return f'<div class="lm-an-tables">{"".join(sections)}</div>'
