"""HTML for recommendations: a card per recommended LoRA (its preview and badges from the Library
card pieces, the score, the reasons in words, thumbs up / down / hide and "+" to the composition),
and the notice shown when the recommendation model is missing.

The buttons carry the answer's feedback context (``data-context``); the page script
(javascript/lora_manager.js) turns a click into ``context|id|kind`` for the tab's handler.
Names and reasons come from files and sidecars: everything passes through ``cards.esc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import cards

if TYPE_CHECKING:  # recommendations imports SQLAlchemy: not while SDNext builds the tabs
    from ..recommendations import Recommendation, Recommendations
    from ..results import LoraSummary

# glyphs every system font has (emoji fonts are often missing on Linux)
FEEDBACK_BUTTONS = (("up", "▲", "Good suggestion"), ("down", "▼", "Poor suggestion"),
                    ("hide", "✕", "Hide: not suggested here again"))


def notice(text: str | None) -> str:
    """What is missing and how to install it (the recommender's words), or nothing."""
    if not text:
        return ""
    return (f'<div class="lm-message lm-info lm-reco-notice" role="status"><b>Suggestions use words, tags and the '
            f'history only:</b> {cards.esc(text)}</div>')


def _buttons(item: Recommendation, context: str) -> str:
    attrs = f'data-id="{int(item.id)}" data-context="{cards.esc(context)}"'
    out = "".join(f'<button type="button" class="lm-reco-fb" data-kind="{kind}" {attrs} title="{title}" '
                  f'aria-label="{title}: {cards.esc(item.name)}">{icon}</button>' for kind, icon, title in FEEDBACK_BUTTONS)
    return out + (f'<button type="button" class="lm-compose-add" {attrs} title="Add to composition" '
                  f'aria-label="add {cards.esc(item.name)} to the composition">+</button>')


def card(item: Recommendation, summary: LoraSummary | None, context: str, api_base: str, show_nsfw: bool) -> str:
    """One recommended LoRA; ``summary`` (its Library row) gives the preview, None shows initials."""
    lora_id = int(item.id)
    if summary is not None:
        picture = cards.thumb(summary, api_base, bool(summary.nsfw) and not show_nsfw)
        badge = cards.base_badge(summary)
    else:
        picture = f'<div class="lm-thumb lm-no-preview"><span class="lm-placeholder">{cards.esc(cards.initials(item.base_model))}</span></div>'
        badge = f'<span class="lm-badge">{cards.esc(item.base_model_label)}</span>'
    count = f'<span class="lm-badge lm-reco-count">{item.count:,}×</span>' if item.count is not None else ""
    reasons = "".join(f"<li>{cards.esc(r)}</li>" for r in item.reasons)
    return (f'<div class="lm-reco-card" data-id="{lora_id}">{picture}'
            f'<div class="lm-reco-body"><div class="lm-name"><a href="#" class="lm-lora-link" data-lora-id="{lora_id}" '
            f'title="open in the Library">{cards.esc(item.name)}</a></div>'
            f'<div class="lm-badges">{badge}<span class="lm-badge lm-reco-score" title="score">{item.score:.2f}</span>{count}</div>'
            f'<ul class="lm-reco-reasons">{reasons}</ul>'
            f'<div class="lm-reco-actions">{_buttons(item, context)}</div></div></div>')


def listing(answer: Recommendations, summaries: Mapping[int, LoraSummary], api_base: str, show_nsfw: bool,
            empty: str, title: str = "") -> str:
    """The cards of one answer under an optional title; ``empty`` says why there are none."""
    head = f'<h4 class="lm-reco-title">{cards.esc(title)}</h4>' if title else ""
    if not answer.items:
        return f'{head}<div class="lm-empty lm-reco-empty">{cards.esc(empty)}</div>'
    body = "".join(card(i, summaries.get(int(i.id)), answer.context, api_base, show_nsfw) for i in answer.items)
    return f'{head}<div class="lm-reco-grid" data-context="{cards.esc(answer.context)}">{body}</div>'


def _mini(title: str, answer: Recommendations, empty: str) -> str:
    rows = "".join(
        f'<li><a href="#" class="lm-lora-link" data-lora-id="{int(i.id)}" title="open it">{cards.esc(i.name)}</a> '
        f'<span class="lm-reco-why">{cards.esc(i.reasons[0] if i.reasons else "")}</span>'
        f'<button type="button" class="lm-compose-add" data-id="{int(i.id)}" data-context="{cards.esc(answer.context)}" '
        f'title="Add to composition" aria-label="add {cards.esc(i.name)} to the composition">+</button></li>'
        for i in answer.items)
    body = f'<ul class="lm-reco-mini">{rows}</ul>' if rows else f'<div class="lm-usage-line">{cards.esc(empty)}</div>'
    return f'<div class="lm-usage-block"><div class="lm-usage-title">{cards.esc(title)}</div>{body}</div>'


def _words_only(text: str | None) -> str:
    """One visible line under a short list when the model is missing, loading or off: what, and how to fix it."""
    if not text:
        return ""
    return f'<div class="lm-reco-words-only" role="status">By words and tags only: {cards.esc(text)}</div>'


def detail_lists(similar: Recommendations, used: Recommendations) -> str:
    """The Library detail's "Similar" and "Used with" (by lift), each a short list with "+"."""
    return ('<details class="lm-reco-detail" open><summary>Similar and used with</summary>'
            + _mini("Similar", similar, "Nothing like it in the library yet.") + _words_only(similar.notice)
            + _mini("Used with (more than chance)", used, "Not used together with another LoRA often enough yet.")
            + "</details>")


def strip(answer: Recommendations) -> str:
    """Compose's suggestion strip: a chip per LoRA for the prompt being typed (its reasons in the
    tooltip) with "+", and the model's notice when there is one; nothing when there is nothing to suggest."""
    if not answer.items:
        return ""
    chips = "".join(
        f'<span class="lm-reco-chip" title="{cards.esc("; ".join(i.reasons))}">{cards.esc(i.name)}'
        f'<button type="button" class="lm-compose-add" data-id="{int(i.id)}" data-context="{cards.esc(answer.context)}" '
        f'title="Add to composition" aria-label="add {cards.esc(i.name)} to the composition">+</button></span>'
        for i in answer.items)
    return (f'<div class="lm-reco-strip"><span class="lm-reco-strip-label">Suggested:</span>{chips}</div>'
            + _words_only(answer.notice))
