"""HTML for the Library tab: cards, the table view, the detail panel and small status lines.

Everything that came from a file, a sidecar or the internet (names, tags, metadata, errors,
descriptions, paths) is untrusted: it passes through ``esc`` before it reaches markup or an
attribute, and long values are cut. Nothing here runs a query; callers pass Library results.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterable
from typing import Any

from .. import base_models, wording
from ..results import DuplicateFile, LoraDetail, LoraSummary
from ..wording import human_size

PREVIEW_PATH = "/lora-manager/v1/loras/{id}/preview?size={size}&v={version}"
CARD_TAGS = 4  # tags shown on a card; the rest are counted
MAX_VALUE = 4000  # characters of one metadata value shown in the detail panel
MAX_DESCRIPTION = 8000
BEST_MARK = ' <span class="lm-badge lm-keep" title="the best copy: “Keep the best of every group” keeps it">best</span>'


def esc(value: Any) -> str:
    """Escape for HTML text and quoted attribute values; None is empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def cut(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def initials(code: str | None) -> str:
    """Two or three characters standing for a base model on a card without a preview."""
    label = base_models.label(code)
    if code in (None, "", "unknown"):
        return "?"
    if label.upper().startswith("SD") and len(label) > 2:
        return label[2:].lstrip(".")[:3] or "SD"
    digits = [c for c in label if c.isdigit()]
    if digits:
        return label[0].upper() + digits[0]
    capitals = [c for c in label if c.isupper()]
    if len(capitals) >= 2:
        return "".join(capitals[:2])
    return label[:2].capitalize()


def _css_token(value: Any) -> str:
    """A value usable inside a class name (family codes, adapter types)."""
    return re.sub(r"[^a-z0-9_-]", "", str(value or "").lower())[:40] or "unknown"


def preview_url(api_base: str, lora_id: int, version: int | None, size: int) -> str:
    return (api_base or "").rstrip("/") + PREVIEW_PATH.format(id=int(lora_id), size=int(size), version=int(version or 0))


def stars(rating: int | None) -> str:
    if not rating:
        return '<span class="lm-stars lm-unrated" title="not rated">☆☆☆☆☆</span>'
    rating = max(0, min(5, int(rating)))
    return f'<span class="lm-stars" title="rated {rating} of 5">{"★" * rating}{"☆" * (5 - rating)}</span>'


def rating_stars(lora_id: int, rating: int | None) -> str:
    """Stars that rate on one click (javascript/lora_manager.js): star N sets rating N, the
    current rating's star clears it. Each is a button, so the keyboard reaches it too."""
    rating = max(0, min(5, int(rating or 0)))
    buttons = "".join(
        f'<button type="button" class="lm-star{" lm-on" if n <= rating else ""}" data-star="{n}" '
        f'title="{"Clear the rating" if n == rating else f"Rate {n} of 5"}" aria-label="rate {n} of 5">'
        f'{"★" if n <= rating else "☆"}</button>'
        for n in range(1, 6))
    title = f"rated {rating} of 5" if rating else "not rated"
    return (f'<span class="lm-stars lm-rate{"" if rating else " lm-unrated"}" data-id="{int(lora_id)}" '
            f'data-rating="{rating}" title="{title}" role="group" aria-label="{title}">{buttons}</span>')


def duplicate_badge(item: LoraSummary, copies: int) -> str:
    """A card's mark that other files hold the same content; a click shows them (the search
    ``hash:<sha256>``, run by the page script)."""
    if copies < 2 or not item.sha256:
        return ""
    others = copies - 1
    return (f'<button type="button" class="lm-badge lm-dupe-badge" data-sha="{esc(item.sha256[:16])}" '
            f'title="{others} other {"file holds" if others == 1 else "files hold"} the same content: click to show them all">'
            f'{copies} copies</button>')


def unreadable(item: LoraSummary) -> bool:
    """A file that could not be read: SDNext cannot load it either, so nothing offers its token."""
    return bool(item.error)


def base_badge(item: LoraSummary) -> str:
    code = item.base_model or "unknown"
    label = item.base_model_label or base_models.label(code)
    return f'<span class="lm-badge lm-base lm-base-{_css_token(code)}" title="base model">{esc(label)}</span>'


def status_badges(item: LoraSummary) -> str:
    out = []
    if item.missing:
        out.append('<span class="lm-badge lm-bad" title="the file is not in its folder any more">missing</span>')
    if item.error:
        out.append(f'<span class="lm-badge lm-bad" title="{esc(cut(item.error, 500))}">error</span>')
    if item.nsfw:
        out.append('<span class="lm-badge lm-nsfw">nsfw</span>')
    return "".join(out)


def tag_chips(tags: Iterable[str], limit: int | None = CARD_TAGS) -> str:
    tags = list(tags or [])
    shown = tags if limit is None else tags[:limit]
    chips = "".join(f'<span class="lm-tag">{esc(t)}</span>' for t in shown)
    if limit is not None and len(tags) > limit:
        rest = ", ".join(tags[limit:])
        chips += f'<span class="lm-tag lm-more" title="{esc(cut(rest, 500))}">+{len(tags) - limit}</span>'
    return chips


def thumb(item: LoraSummary, api_base: str, blur: bool, size: int = 320, css: str = "lm-thumb") -> str:
    """Preview image (lazy) over a placeholder with the base-model initials.

    The placeholder is always there: if the image fails to load, the script hides the image."""
    classes = css + (" lm-blur" if blur else "") + ("" if item.has_preview else " lm-no-preview")
    placeholder = f'<span class="lm-placeholder lm-base-{_css_token(item.base_model)}">{esc(initials(item.base_model))}</span>'
    image = ""
    if item.has_preview:
        src = preview_url(api_base, item.id, item.preview_version, size)
        image = f'<img class="lm-thumb-img" loading="lazy" decoding="async" alt="" src="{esc(src)}">'
    return f'<div class="{classes}">{placeholder}{image}</div>'


def _blurred(item: LoraSummary, show_nsfw: bool) -> bool:
    return bool(item.nsfw) and not show_nsfw


def card(item: LoraSummary, api_base: str, show_nsfw: bool, selected: bool = False, copies: int = 0) -> str:
    lora_id = int(item.id)
    name = item.name or item.filename or f"LoRA {lora_id}"
    classes = ["lm-card"]
    if selected:
        classes.append("lm-selected")
    if item.missing or item.error:
        classes.append("lm-has-problem")
    fav = '<span class="lm-fav" title="favorite">♥</span>' if item.favorite else ""
    adapter = item.adapter_type or "unknown"
    compose = "" if unreadable(item) else (
        f'<button type="button" class="lm-compose-add" data-id="{lora_id}" title="Add to composition" '
        f'aria-label="add {esc(name)} to the composition">+</button>')
    return (
        f'<div class="{" ".join(classes)}" data-id="{lora_id}" tabindex="0" role="button" '
        f'aria-label="Open {esc(name)}" title="{esc(item.relpath or name)}">'
        f'<label class="lm-check" title="select for bulk actions"><input type="checkbox" class="lm-select-box" '
        f'data-id="{lora_id}"{" checked" if selected else ""} aria-label="select {esc(name)}"></label>'
        f'{fav}{thumb(item, api_base, _blurred(item, show_nsfw))}'
        f'<div class="lm-card-body"><div class="lm-name">{esc(name)}</div>'
        f'<div class="lm-folder">{esc(item.folder or "")}</div>'
        f'<div class="lm-badges">{base_badge(item)}<span class="lm-badge lm-type">{esc(adapter)}</span>'
        f'{status_badges(item)}{duplicate_badge(item, copies)}</div>'
        f'<div class="lm-card-foot">{rating_stars(lora_id, item.rating)}{compose}</div>'
        f'<div class="lm-tags">{tag_chips(item.tags or [])}</div></div></div>'
    )


def grid(items: list[LoraSummary], api_base: str, show_nsfw: bool, selected: set[int],
         copies: dict[str, int] | None = None) -> str:
    """``copies``: sha256 -> how many files hold it, for the hashes held more than once."""
    if not items:
        return empty_results()
    copies = copies or {}
    cards = "".join(card(i, api_base, show_nsfw, int(i.id) in selected, copies.get(i.sha256 or "", 0)) for i in items)
    return f'<div class="lm-grid">{cards}</div>'


def table(items: list[LoraSummary], selected: set[int], copies: dict[str, int] | None = None) -> str:
    """The same page as a compact table (no images): for scanning many names quickly. Its
    columns have fixed widths but the name's, which takes the rest: beside the detail panel the
    name is cut (its whole text is the title) rather than the table growing past its column.
    The folder, tags and problems sit under the name."""
    if not items:
        return empty_results()
    copies = copies or {}
    rows = []
    for i in items:
        lora_id = int(i.id)
        name = i.name or i.filename
        checked = " checked" if lora_id in selected else ""
        folder = f'<span class="lm-row-folder" title="{esc(i.folder)}">{esc(i.folder)}</span>' if i.folder else ""
        under = f'{folder}{status_badges(i)}{duplicate_badge(i, copies.get(i.sha256 or "", 0))}{tag_chips(i.tags or [], limit=6)}'
        rows.append(
            f'<tr class="lm-row{" lm-selected" if checked else ""}" data-id="{lora_id}" tabindex="0">'
            f'<td class="lm-col-check"><input type="checkbox" class="lm-select-box" data-id="{lora_id}"{checked} '
            f'aria-label="select {esc(name)}"></td>'
            f'<td class="lm-col-name"><div class="lm-row-name" title="{esc(i.relpath or name)}">{"♥ " if i.favorite else ""}{esc(name)}</div>'
            f'<div class="lm-row-under">{under}</div></td>'
            f'<td class="lm-col-base">{base_badge(i)}<div class="lm-row-type">{esc(i.adapter_type)}</div></td>'
            f'<td class="lm-col-rating">{rating_stars(lora_id, i.rating)}</td>'
            f'<td class="lm-num lm-col-size">{esc(human_size(i.size))}</td></tr>'
        )
    head = ('<tr><th class="lm-col-check"></th><th class="lm-col-name">Name</th><th class="lm-col-base">Base</th>'
            '<th class="lm-col-rating">Rating</th><th class="lm-num lm-col-size">Size</th></tr>')
    return (f'<div class="lm-table-wrap"><table class="lm-table lm-lib-table"><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def empty_results() -> str:
    return '<div class="lm-empty">No LoRA matches this query.</div>'


def plural(n: int, noun: str = "LoRA") -> str:
    return wording.plural(n, noun)


def pager(page: int, pages: int, total: int, noun: str = "LoRA") -> str:
    return f'<div class="lm-pager-info">Page {page:,} of {pages:,} · {plural(total, noun)}</div>'


def description(text: str, effective_query: str) -> str:
    query_part = f' <code class="lm-query" title="the query that ran">{esc(effective_query)}</code>' if effective_query else ""
    return f'<div class="lm-description">{esc(text)}{query_part}</div>'


def message(text: str, kind: str = "info") -> str:
    """A one-line status (kind: info, ok, error)."""
    if not text:
        return ""
    return f'<div class="lm-message lm-{_css_token(kind)}" role="status">{esc(text)}</div>'


def stats_line(stats: dict[str, Any], scan_message: str = "") -> str:
    parts = [plural(stats.get("total", 0), "LoRA"), f"{stats.get('hashed', 0):,} hashed",
             f"{stats.get('missing', 0):,} missing", f"{stats.get('errors', 0):,} unreadable"]
    text = " · ".join(parts)
    scan = f' <span class="lm-scan-status">{esc(scan_message)}</span>' if scan_message else ""
    return f'<div class="lm-stats">{esc(text)}{scan}</div>'


# --- detail panel ---------------------------------------------------------------------------


def row(label: str, value: Any, *, raw_html: bool = False, css: str = "") -> str:
    """A label/value row of a detail table; empty values give no row."""
    if value in (None, "", [], {}):
        return ""
    shown = value if raw_html else esc(value)
    return f'<tr class="{css}"><th>{esc(label)}</th><td>{shown}</td></tr>'


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def civitai_rows(civitai: dict[str, Any] | None) -> str:
    if not isinstance(civitai, dict) or not civitai:
        return ""
    model = _int_or_none(civitai.get("model_id") or civitai.get("modelId"))
    version = _int_or_none(civitai.get("version_id") or civitai.get("modelVersionId"))
    out = []
    if model:
        url = f"https://civitai.com/models/{model}" + (f"?modelVersionId={version}" if version else "")
        link = f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(url)}</a>'
        out.append(row("CivitAI page", link, raw_html=True))
    for key, value in civitai.items():
        if isinstance(value, (str, int, float, bool)) and key not in ("description",):
            out.append(row(f"CivitAI {key.replace('_', ' ')}", cut(value, 500)))
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            out.append(row(f"CivitAI {key.replace('_', ' ')}", cut(", ".join(map(str, value)), 1000)))
    return "".join(out)


def base_model_text(d: LoraDetail) -> str:
    parts = [f"detected {base_models.label(d.base_model_detected)}"
             + (f" (from {d.base_model_source})" if d.base_model_source not in (None, "", "none") else "")]
    if d.base_model_sidecar:
        parts.append(f"sidecar says {base_models.label(d.base_model_sidecar)}")
    if d.base_model_user:
        parts.append(f"your override: {base_models.label(d.base_model_user)}")
    if d.base_model_conflict:
        parts.append(f"conflict: {d.base_model_conflict}")
    return "; ".join(parts)


def trigger_text(suggestions: list[Any]) -> str:
    words = []
    for s in suggestions or []:
        if isinstance(s, (list, tuple)) and s:
            words.append(f"{s[0]} ×{s[1]}" if len(s) > 1 else str(s[0]))
        else:
            words.append(str(s))
    return ", ".join(words)


def suggestion_words(suggestions: list[Any], limit: int = 30) -> list[str]:
    words: list[str] = []
    for s in suggestions or []:
        word = str(s[0] if isinstance(s, (list, tuple)) and s else s).strip()
        if word and word not in words:
            words.append(word[:200])
    return words[:limit]


def metadata_table(metadata: dict[str, Any] | None) -> str:
    """The file's ``__metadata__`` (ss_*, modelspec.*, …) as an escaped key/value table."""
    if not metadata:
        return '<p class="lm-muted">This file has no training metadata.</p>'
    rows = []
    for key in sorted(metadata, key=lambda k: (not str(k).startswith("ss_"), str(k))):
        value = metadata[key]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append(f'<tr><th>{esc(cut(key, 200))}</th><td><div class="lm-meta-value">{esc(cut(text, MAX_VALUE))}</div></td></tr>')
    return (f'<details class="lm-meta"><summary>Training metadata ({plural(len(metadata), "key")})</summary>'
            f'<table class="lm-kv">{"".join(rows)}</table></details>')


def detail(d: LoraDetail, api_base: str, show_nsfw: bool) -> str:
    """The read-only part of the detail panel: preview, badges, every field, metadata."""
    name = d.name or d.filename
    if unreadable(d):  # why it cannot be read, once: the hash failed for the same reason, and no token is offered
        errors = [e for e in [d.error, *(d.sidecar_errors or [])] if e]
    else:
        errors = [e for e in [d.token_problem, *(d.sidecar_errors or []), d.hash_error] if e]
    if d.missing:
        errors.insert(0, f"the file is missing from its folder (since {when(d.missing_since) or 'the last scan'})")
    dim = d.network_dim
    alpha = d.network_alpha
    dim_alpha = " / ".join(str(x) for x in (dim, alpha) if x is not None) if dim is not None or alpha is not None else ""
    description_text = (d.description or "").strip()  # plain text (sidecars strip HTML)
    rows = "".join([
        row("File", d.path, css="lm-path"),
        row("Library folder", d.root),
        row("Size", human_size(d.size)),
        row("Format", d.format),
        row("Added", when(d.added_at)),
        row("File date", when(d.mtime)),
        row("Base model", f"{base_models.label(d.base_model)} — {base_model_text(d)}"),
        row("Adapter type", d.adapter_type),
        row("Network module", d.network_module),
        row("Dim / alpha", dim_alpha),
        row("Architecture", d.architecture),
        row("Title", d.title),
        row("Output name", d.output_name),
        row("Training model", d.training_model),
        row("Resolution", d.resolution),
        row("Epochs", d.epochs),
        row("Steps", d.steps),
        row("Prompt name", d.prompt_name),
        row("SHA-256", d.sha256 or ("not hashed yet" if not d.hash_error else ""), css="lm-hash"),
        row("AutoV2", d.autov2, css="lm-hash"),
        row("Short hash", d.shorthash, css="lm-hash"),
        civitai_rows(d.civitai),
        row("Trigger suggestions", trigger_text(d.trigger_suggestions or [])),
        row("Tags", ", ".join(d.tags or [])),
    ])
    problems = "".join(f'<li>{esc(cut(e, 2000))}</li>' for e in errors)
    problems_html = f'<ul class="lm-errors">{problems}</ul>' if problems else ""
    desc_html = (f'<details class="lm-desc" open><summary>Description</summary>'
                 f'<div class="lm-desc-text">{esc(cut(description_text, MAX_DESCRIPTION))}</div></details>') if description_text else ""
    fav = '<span class="lm-fav-inline" title="favorite">♥</span>' if d.favorite else ""
    return (
        f'<div class="lm-detail-view" data-id="{int(d.id)}">'
        f'{thumb(d, api_base, _blurred(d, show_nsfw), size=640, css="lm-detail-preview")}'
        f'<div class="lm-detail-head"><h3 class="lm-detail-name">{fav}{esc(name)}</h3>'
        f'<div class="lm-badges">{base_badge(d)}<span class="lm-badge lm-type">{esc(d.adapter_type)}</span>'
        f'{status_badges(d)}{stars(d.rating)}</div>'
        f'<div class="lm-relpath">{esc(d.relpath)}</div></div>'
        f'{problems_html}<table class="lm-kv lm-fields">{rows}</table>{desc_html}{metadata_table(d.metadata)}</div>'
    )


def duplicates(groups: list[list[DuplicateFile]]) -> str:
    """The duplicate groups; each group's first file (its best copy) is marked as the one
    "Keep the best of every group" keeps."""
    if not groups:
        return '<p class="lm-muted">No duplicate files (same SHA-256) among the hashed LoRAs.</p>'
    parts = []
    for n, group in enumerate(groups, 1):
        items = "".join(
            f'<li><span class="lm-dupe-id">#{int(i.id)}</span> {esc(i.relpath)} '
            f'<span class="lm-muted">{esc(human_size(i.size))}{" · " + esc(", ".join(i.tags or [])) if i.tags else ""}'
            f'{" · ★" + str(i.rating) if i.rating else ""}{" · ♥" if i.favorite else ""}</span>'
            f'{BEST_MARK if k == 0 else ""}</li>'
            for k, i in enumerate(group))
        sha = esc((group[0].sha256 or "")[:12])
        parts.append(f'<div class="lm-dupe-group"><div class="lm-dupe-head">Group {n} · {plural(len(group), "file")} · {sha}…</div><ul>{items}</ul></div>')
    return f'<div class="lm-dupes">{"".join(parts)}</div>'


def tag_list(tags: list[tuple[str, int]], limit: int = 300) -> str:
    if not tags:
        return '<p class="lm-muted">No tags yet.</p>'
    chips = "".join(f'<span class="lm-tag">{esc(name)} <span class="lm-count">{count:,}</span></span>' for name, count in tags[:limit])
    more = f'<span class="lm-muted"> and {len(tags) - limit:,} more</span>' if len(tags) > limit else ""
    return f'<div class="lm-tag-list">{chips}{more}</div>'


# --- usage in the detail panel ---------------------------------------------------------------

USAGE_BARS = 60  # at most this many bars in "uses over time": days, else months
PICTURE_PATH = "/lora-manager/v1/history/{id}/images/0?size=160"


def _history_link(text: str, query: str, title: str = "") -> str:
    """A figure that opens the History tab at ``query`` (javascript/lora_manager.js follows it)."""
    hint = f' title="{esc(title)}"' if title else ""
    return (f'<a href="#" class="lm-usage-link" data-lm-link-tab="history" data-lm-link-query="{esc(query)}"{hint}>'
            f'{esc(text)}</a>')


def _quoted(word: str) -> str:
    return '"' + str(word).replace('"', "") + '"'


def _usage_buckets(over_time: list[dict[str, Any]]) -> tuple[str, list[tuple[str, int]]]:
    """("day" or "month", [(label, uses)]) from first use to last, empty days or months as 0."""
    import datetime as dt

    days = {dt.date.fromisoformat(r["day"]): r["uses"] for r in over_time}
    first, last = min(days), max(days)
    if (last - first).days < USAGE_BARS:
        span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        return "day", [(d.isoformat(), days.get(d, 0)) for d in span]
    months: dict[str, int] = {}
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        months[f"{y:04d}-{m:02d}"] = 0
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    for d, n in days.items():
        months[f"{d.year:04d}-{d.month:02d}"] += n
    return "month", list(months.items())[-USAGE_BARS:]


def _picture(p: dict[str, Any], api_base: str) -> str:
    gid = int(p["generation_id"])
    rating = int(p["rating"]) if p.get("rating") else None
    stars_html = f'<span class="lm-usage-stars">{rating}★</span>' if rating else ""
    title = f"generation {gid}" + (f", rated {rating}" if rating else "")
    return (f'<a href="#" class="lm-usage-pic" data-lm-open-generation="{gid}" title="{esc(title)}">'
            f'<img loading="lazy" alt="{esc(title)}" src="{esc((api_base or "").rstrip("/") + PICTURE_PATH.format(id=gid))}">'
            f'{stars_html}</a>')


def _pictures(items: list[dict[str, Any]], api_base: str, label: str) -> str:
    if not items:
        return ""
    pictures = "".join(_picture(p, api_base) for p in items)
    return f'<div class="lm-usage-block"><div class="lm-usage-title">{esc(label)}</div><div class="lm-usage-pics">{pictures}</div></div>'


def usage(u: dict[str, Any], lora_word: str, api_base: str) -> str:
    """A LoRA's use in the generation history (analytics.Analytics.lora_usage): uses over time,
    weights, the LoRAs and models it is used with, its best rated and favorite pictures, its
    failure rate. Each figure opens the History at ``lora:NAME`` and what else it counts."""
    mine = f"lora:{_quoted(lora_word)}"
    if not u["uses"]:
        return ('<details class="lm-usage" open><summary>Usage</summary>'
                '<div class="lm-usage-line">Not used in any recorded generation yet: no data.</div></details>')
    failed = u["by_status"].get("failed", 0)
    finished = sum(u["by_status"].get(s, 0) for s in ("succeeded", "failed", "interrupted"))
    rate = ("failure rate: no data (no finished generation)" if u["failure_rate"] is None
            else f"failure rate {u['failure_rate'] * 100:.0f} % ({failed} of {finished} finished)")
    failures = _history_link(rate, f"{mine} status:failed", "its failed generations") if failed else esc(rate)
    line = f'{_history_link(plural(u["uses"], "generation"), mine, "every generation that used it")} · {failures}'

    unit, buckets = _usage_buckets(u["over_time"])
    top = max(n for _, n in buckets) or 1
    bars = "".join(f'<span class="lm-usage-bar lm-h{round(10 * n / top)}" title="{esc(label)}: {n}"></span>' for label, n in buckets)
    over_time = (f'<div class="lm-usage-block"><div class="lm-usage-title">Uses over time (by {unit})</div>'
                 f'<div class="lm-usage-bars">{bars}</div>'
                 f'<div class="lm-usage-axis"><span>{esc(buckets[0][0])}</span><span>{esc(buckets[-1][0])}</span></div></div>')

    weights = "".join(f'<span class="lm-usage-chip">{esc(_weight_text(w["weight"]))} × {int(w["uses"])}</span>'
                      for w in u["weights"])
    weights_html = (f'<div class="lm-usage-block"><div class="lm-usage-title">Weights used</div>'
                    f'<div class="lm-usage-chips">{weights}</div></div>') if weights else ""

    def listing(title: str, rows: list[tuple[str, int, str]]) -> str:
        if not rows:
            return ""
        items = "".join(f'<li>{_history_link(text, query)} <span class="lm-usage-n">{n}</span></li>' for text, n, query in rows)
        return f'<div class="lm-usage-block"><div class="lm-usage-title">{esc(title)}</div><ul class="lm-usage-list">{items}</ul></div>'

    used_with = listing("Used with", [(r["name"] or f"#{r['id']}", r["generations"], f"{mine} lora:{_quoted(r['name'])}")
                                      for r in u["used_with"]])
    models = listing("Models", [(m["model"] or "(no model)", m["generations"],
                                 f"{mine} model:{_quoted(m['model'])}" if m["model"] else mine) for m in u["models"]])
    pictures = (_pictures(u.get("best_rated_pictures", []), api_base, "Best rated")
                + _pictures(u.get("favorite_pictures", []), api_base, "Favorites"))
    return (f'<details class="lm-usage" open><summary>Usage</summary><div class="lm-usage-line">{line}</div>'
            f'{over_time}{weights_html}<div class="lm-usage-cols">{used_with}{models}</div>{pictures}</details>')


def _weight_text(weight: float | None) -> str:
    return "none" if weight is None else f"{weight:g}"
