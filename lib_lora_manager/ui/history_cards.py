"""HTML for the History tab: generation cards, the table view and the detail view.

Prompts, infotexts, model names, LoRA names and error messages are user or internet text: all
of it goes through ``esc`` (and is cut to a bounded length) before it reaches markup. Images are
referenced by the REST route that serves only files recorded for a generation.
"""

from __future__ import annotations

import json
from typing import Any

from ..results import GenerationDetail, GenerationSummary, RecordedLora
from ..statuses import GenerationStatus
from .cards import cut, esc, message, row, stars, when

IMAGE_PATH = "/lora-manager/v1/history/{id}/images/{index}"
CARD_LORAS = 4
MAX_PROMPT = 20000  # characters of a prompt or infotext shown in the detail view


def status_word(status: str | None) -> str:
    """A generation's status as shown: the very word REST returns and ``status:`` finds (jobs use
    the same ones), so what the user reads is what they can search for."""
    return str(status) if status else "unknown"


def image_url(api_base: str, generation_id: int, index: int, size: int | None = None) -> str:
    url = (api_base or "").rstrip("/") + IMAGE_PATH.format(id=int(generation_id), index=int(index))
    return f"{url}?size={int(size)}" if size else url


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def status_badge(status: str | None) -> str:
    if status == GenerationStatus.SUCCEEDED:
        return ""
    word = status_word(status)
    return f'<span class="lm-badge lm-bad lm-hist-status" title="status:{esc(word)}">{esc(word)}</span>'


def weight_text(used: RecordedLora) -> str:
    te, unet = used.te_weight, used.unet_weight
    if te is None and unet is None:
        return ""
    if te == unet or unet is None:
        return f"{te:g}"
    if te is None:
        return f"unet {unet:g}"
    return f"te {te:g} / unet {unet:g}"


def lora_chips(loras: list[RecordedLora], limit: int | None = CARD_LORAS) -> str:
    shown = loras if limit is None else loras[:limit]
    chips = []
    for used in shown:
        weight = weight_text(used)
        css = "lm-tag" if used.lora_id else "lm-tag lm-unresolved"
        title = "in the library" if used.lora_id else "not in the library"
        count = f' <span class="lm-count">{esc(weight)}</span>' if weight else ""
        chips.append(f'<span class="{css}" title="{title}">{esc(cut(used.name, 80))}{count}</span>')
    if limit is not None and len(loras) > limit:
        rest = ", ".join(str(u.name) for u in loras[limit:])
        chips.append(f'<span class="lm-tag lm-more" title="{esc(cut(rest, 500))}">+{len(loras) - limit}</span>')
    return "".join(chips)


def _thumb(item: GenerationSummary, api_base: str, size: int = 320) -> str:
    """The first image over a placeholder; the page script hides an image that fails to load."""
    word = status_word(item.status) if item.status != GenerationStatus.SUCCEEDED else "no image"
    placeholder = f'<span class="lm-placeholder lm-hist-placeholder">{esc(word)}</span>'
    image = ""
    if item.images:
        src = image_url(api_base, item.id, 0, size)
        image = f'<img class="lm-thumb-img" loading="lazy" decoding="async" alt="" src="{esc(src)}">'
    return f'<div class="lm-thumb lm-hist-thumb{"" if image else " lm-no-preview"}">{placeholder}{image}</div>'


def card(item: GenerationSummary, api_base: str) -> str:
    gid = int(item.id)
    count = len(item.images or [])
    badges = [status_badge(item.status)]
    if item.model:
        badges.append(f'<span class="lm-badge lm-hist-model" title="model">{esc(cut(item.model, 40))}</span>')
    if item.label:
        group = esc(item.group)
        badges.append(f'<span class="lm-badge lm-hist-label" title="group {group}">{esc(cut(item.label, 40))}</span>')
    if count > 1:
        badges.append(f'<span class="lm-badge" title="images">{count} images</span>')
    fav = '<span class="lm-fav" title="favorite">♥</span>' if item.favorite else ""
    prompt = item.prompt_excerpt or ""
    prompt_html = esc(prompt) or '<span class="lm-muted">(empty prompt)</span>'
    return (
        f'<div class="lm-card lm-hist-card{"" if item.status == GenerationStatus.SUCCEEDED else " lm-has-problem"}" '
        f'data-id="{gid}" tabindex="0" role="button" aria-label="Open generation {gid}" title="{esc(cut(prompt, 300))}">'
        f'{fav}{_thumb(item, api_base)}'
        f'<div class="lm-card-body"><div class="lm-hist-when">{esc(when(item.started_at))}'
        f'{" · " + esc(duration(item.duration)) if item.duration is not None else ""}</div>'
        f'<div class="lm-hist-prompt">{prompt_html}</div>'
        f'<div class="lm-badges">{"".join(badges)}</div>'
        f'<div class="lm-card-foot">{stars(item.rating)}</div>'
        f'<div class="lm-tags">{lora_chips(item.loras or [])}</div></div></div>'
    )


def grid(items: list[GenerationSummary], api_base: str) -> str:
    if not items:
        return empty_results()
    return f'<div class="lm-grid lm-hist-grid">{"".join(card(i, api_base) for i in items)}</div>'


def table(items: list[GenerationSummary]) -> str:
    """The same page as rows: date, outcome, prompt, LoRAs and the main parameters."""
    if not items:
        return empty_results()
    rows = []
    for i in items:
        size = f"{i.width}×{i.height}" if i.width and i.height else ""
        rows.append(
            f'<tr class="lm-row" data-id="{int(i.id)}" tabindex="0">'
            f'<td class="lm-num">{int(i.id)}</td><td class="lm-nowrap">{esc(when(i.started_at))}</td>'
            f'<td>{esc(status_word(i.status))}</td>'
            f'<td class="lm-row-prompt">{"♥ " if i.favorite else ""}{esc(cut(i.prompt_excerpt, 160))}</td>'
            f'<td class="lm-row-tags">{lora_chips(i.loras or [], limit=3)}</td>'
            f'<td>{esc(cut(i.model, 40))}</td><td class="lm-num">{esc(size)}</td>'
            f'<td class="lm-num">{esc(i.steps)}</td><td class="lm-num">{esc(i.seed)}</td>'
            f'<td class="lm-num">{esc(duration(i.duration))}</td><td>{stars(i.rating)}</td></tr>')
    head = ("<tr><th>#</th><th>Date</th><th>Status</th><th>Prompt</th><th>LoRAs</th><th>Model</th><th>Size</th>"
            "<th>Steps</th><th>Seed</th><th>Took</th><th>Rating</th></tr>")
    return (f'<div class="lm-table-wrap"><table class="lm-table lm-hist-table"><thead>{head}</thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def empty_results() -> str:
    return '<div class="lm-empty">No generation matches this query.</div>'


def empty_history() -> str:
    return ('<div class="lm-empty">No generations recorded yet. Every image made in SDNext (any tab or the API) '
            'or by LoRA Manager shows up here.</div>')


def query_error(text: str, q: str, position: int | None) -> str:
    """The error, and the query with the offending term marked when the parser knows where it is."""
    shown = ""
    if position is not None and 0 <= position <= len(q):
        end = q.find(" ", position)
        end = len(q) if end < 0 else end
        shown = (f'<code class="lm-query">{esc(q[:position])}<mark class="lm-query-bad">{esc(q[position:end]) or "␣"}</mark>'
                 f'{esc(q[end:])}</code>')
    return f'{message(text, "error")}{shown}'


# --- detail view ------------------------------------------------------------------------------


def _row(label: str, value: Any) -> str:
    return row(label, None if value in (None, "", [], {}) else cut(value, 2000))


def _images(d: GenerationDetail, api_base: str) -> str:
    figures = []
    for image in d.images or []:
        n = int(image.index)
        caption = f"Image {n + 1}" + (f" · seed {image.seed}" if image.seed is not None else "")
        if image.exists:
            full = image_url(api_base, d.id, n)
            body = (f'<a href="{esc(full)}" target="_blank" rel="noopener noreferrer" title="open the full image">'
                    f'<img class="lm-hist-full" loading="lazy" decoding="async" alt="{esc(caption)}" '
                    f'src="{esc(image_url(api_base, d.id, n, 768))}"></a>')
        else:
            body = '<div class="lm-hist-gone">the image file is gone</div>'
        figures.append(f'<figure class="lm-hist-image">{body}<figcaption>{esc(caption)}</figcaption></figure>')
    if not figures:
        return '<p class="lm-muted">No image was recorded for this generation.</p>'
    return f'<div class="lm-hist-images">{"".join(figures)}</div>'


def _loras(d: GenerationDetail) -> str:
    if not d.loras:
        return '<p class="lm-muted">No LoRA was used.</p>'
    items = []
    for used in d.loras:
        weight = weight_text(used)
        recorded = f'<code>{esc(cut(used.name, 200))}</code>'
        if used.lora_id:
            name = used.library_name or used.name
            link = (f'<a href="#" class="lm-lora-link" data-lora-id="{int(used.lora_id)}" '
                    f'title="open in the Library">{esc(cut(name, 200))}</a>')
            note = ' <span class="lm-badge lm-bad">file missing</span>' if used.missing else ""
            shown = f' <span class="lm-muted">{esc(weight)}</span>' if weight else ""
            items.append(f"<li>{link} {recorded}{note}{shown}</li>")
        else:
            items.append(f'<li>{recorded} <span class="lm-muted">not in the library'
                         f'{" · " + esc(weight) if weight else ""}</span></li>')
    return f'<ul class="lm-hist-loras">{"".join(items)}</ul>'


def _parameter_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def detail(d: GenerationDetail, api_base: str) -> str:
    """The read-only part of the History detail panel."""
    seeds = ", ".join(str(s) for s in (d.seeds or [])[:64])
    size = f"{d.width} × {d.height}" if d.width and d.height else ""
    group = " · ".join(x for x in (d.label, f"group {d.group}" if d.group else "") if x)
    fields = "".join([
        _row("Made", when(d.started_at)),
        _row("Took", duration(d.duration)),
        _row("Status", status_word(d.status)),
        _row("Source", d.source),
        _row("Model", d.model),
        _row("Model hash", d.model_hash),
        _row("Size", size),
        _row("Steps", d.steps),
        _row("Sampler", d.sampler),
        _row("CFG scale", d.cfg_scale),
        _row("Seeds", seeds),
        _row("Sweep / comparison", group),
    ])
    parameters = "".join(_row(k, _parameter_value(v)) for k, v in (d.parameters or {}).items())
    parameters_html = (f'<details class="lm-meta"><summary>All parameters from the infotext ({len(d.parameters):,})</summary>'
                       f'<table class="lm-kv">{parameters}</table></details>') if parameters else ""
    error = f'<ul class="lm-errors"><li>{esc(cut(d.error, 2000))}</li></ul>' if d.error else ""
    negative = ""
    if d.negative_prompt:
        negative = (f'<div class="lm-hist-text-label">Negative prompt</div>'
                    f'<div class="lm-hist-text">{esc(cut(d.negative_prompt, MAX_PROMPT))}</div>')
    infotext = ""
    if d.infotext:
        infotext = (f'<details class="lm-meta"><summary>Infotext</summary>'
                    f'<pre class="lm-hist-infotext">{esc(cut(d.infotext, MAX_PROMPT))}</pre></details>')
    prompt = esc(cut(d.prompt, MAX_PROMPT)) or '<span class="lm-muted">(empty)</span>'
    return (
        f'<div class="lm-detail-view lm-hist-detail" data-id="{int(d.id)}">{_images(d, api_base)}'
        # rating and favorite are the form's controls above, not repeated here (they would go stale)
        f'<div class="lm-detail-head"><h3 class="lm-detail-name">Generation #{int(d.id)}</h3>'
        f'<div class="lm-badges">{status_badge(d.status)}</div></div>{error}'
        f'<div class="lm-hist-text-label">Prompt</div>'
        f'<div class="lm-hist-text">{prompt}</div>'
        f'{negative}<div class="lm-hist-text-label">LoRAs</div>{_loras(d)}'
        f'<table class="lm-kv lm-fields">{fields}</table>{parameters_html}{infotext}</div>'
    )


# --- importing images made before ----------------------------------------------------------------

IMPORT_PROBLEMS_SHOWN = 20


def import_report(report: dict[str, Any] | None, headline: str) -> str:
    """An image import's outcome: the headline, the counts, and the files it could not use with
    their reasons (paths and reasons come from files: escaped)."""
    if not report:
        return message(headline)
    counts = [(report.get("imported", 0), "imported"), (report.get("read", 0), "read"),
              (report.get("unchanged", 0), "unchanged"), (report.get("skipped", 0), "without generation data"),
              (report.get("errors", 0), "unreadable"), (report.get("moved", 0), "moved"),
              (report.get("recorded", 0), "recorded already"), (report.get("missing", 0), "gone")]
    chips = "".join(f'<span class="lm-import-count"><b>{int(n):,}</b> {esc(word)}</span>' for n, word in counts if n)
    problems = report.get("problems") or {}
    items = "".join(f'<li><span class="lm-import-file">{esc(cut(path, 300))}</span>: {esc(cut(reason, 300))}</li>'
                    for path, reason in list(problems.items())[:IMPORT_PROBLEMS_SHOWN])
    more = len(problems) - IMPORT_PROBLEMS_SHOWN
    if more > 0:
        items += f"<li>… and {more:,} more</li>"
    listed = (f'<details class="lm-import-problems"><summary>Files not imported ({len(problems):,})</summary>'
              f'<ul class="lm-errors">{items}</ul></details>') if items else ""
    return f'<div class="lm-import-report">{message(headline, "ok")}<div class="lm-import-counts">{chips}</div>{listed}</div>'
