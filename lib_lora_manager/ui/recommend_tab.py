"""The Recommendations tab: LoRAs for a prompt (with a base-model choice), and LoRAs similar to and
used with a chosen LoRA, as cards with their reasons; thumbs up / down / hide are stored as the
recommender's feedback (hidden ones go), "+" adds to the composition and counts as "added".

``RecommendTab`` holds the handlers (plain methods, testable without a browser); ``build_content``
lays out and wires the components. Building the tab reads nothing and never loads the model: the
first request does (the recommender answers from words until the model is ready).

Browser glue (javascript/lora_manager.js): a feedback button writes ``context|id|kind`` into the
hidden textbox ``lora_manager_recommend_action`` and clicks ``lora_manager_recommend_action_btn``;
"+" does the same with ``added`` after the Library's addToComposition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import base_models
from ..errors import InvalidInput, LoraManagerError, NotFound
from ..hostinfo import HostInfo
from . import cards, recommend_cards
from .components import no_config

if TYPE_CHECKING:
    from ..library import Library
    from ..recommendations import Recommendations
    from ..results import LoraSummary

ANY, LOADED = "any", "loaded model"
LIMIT = 12
OUTPUTS = ("status", "results", "related")
_ACTION = re.compile(r"^\s*((?:prompt:[0-9a-f]{20})|(?:similar|with):\d+)\|(\d+)\|(up|down|hide|added)\s*$")
PROMPT_EMPTY = "No LoRA matches this prompt's words or meaning for that base model."


def base_choices(host: HostInfo) -> list[str]:
    """"loaded model" first inside a host that generates (its family is read when asked), then any
    and the codes of the query language."""
    codes = [f.code for f in base_models.FAMILIES if f.code != "unknown"]
    return ([LOADED] if host.generator is not None else []) + [ANY] + codes


class RecommendTab:
    """Handlers of the Recommendations tab, bound to one Library."""

    def __init__(self, open_library: Callable[[], Library], host: HostInfo):
        self._open_library = open_library
        self.host = host

    @property
    def library(self) -> Library:
        return self._open_library()

    def show_nsfw(self) -> bool:
        return bool(self.host.setting("lora_manager_show_nsfw"))

    def base_code(self, choice: str | None) -> str | None:
        """The base code asked for: None for any (or a loaded model of no known family)."""
        choice = (choice or ANY).strip()
        if choice == LOADED:
            family = self.host.generator.model_family() if self.host.generator is not None else None
            return family if family in base_models.BY_CODE and family != "unknown" else None
        if choice == ANY:
            return None
        if choice not in base_models.BY_CODE:
            raise InvalidInput(f"unknown base model “{choice[:40]}”")
        return choice

    def _summaries(self, *answers: Recommendations) -> dict[int, LoraSummary]:
        """The Library rows of the recommended LoRAs, for their previews and badges."""
        out: dict[int, LoraSummary] = {}
        for answer in answers:
            for item in answer.items:
                if item.id not in out:
                    try:
                        out[item.id] = self.library.get(item.id)
                    except NotFound:  # removed since the answer was made: the card shows initials
                        pass
        return out

    def _listing(self, answer: Recommendations, empty: str, title: str = "") -> str:
        return recommend_cards.listing(answer, self._summaries(answer), self.host.api_base, self.show_nsfw(), empty, title)

    def suggest(self, prompt: str | None, base: str | None) -> tuple[str, str]:
        """(status, results) for a prompt."""
        if not (prompt or "").strip():
            return cards.message("Type a prompt to get LoRA suggestions for it.", "info"), ""
        try:
            answer = self.library.recommender.for_prompt(prompt or "", base=self.base_code(base), limit=LIMIT)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), ""
        return recommend_cards.notice(answer.notice), self._listing(answer, PROMPT_EMPTY)

    def related(self, lora: str | None) -> tuple[str, str]:
        """(status, related): LoRAs similar to and used with the chosen one (a name or #id)."""
        if not (lora or "").strip():
            return "", ""
        try:
            detail = self.library.find(re.sub(r"^\s*#(\d+)\b.*$", r"\1", lora or ""))
            rec = self.library.recommender
            similar, used = rec.similar(detail.id, limit=LIMIT), rec.used_with(detail.id, limit=LIMIT)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), ""
        name = detail.name or detail.filename
        html = (self._listing(similar, "Nothing in the library is like it (same architecture, tags or meaning).",
                              f"Similar to {name}")
                + self._listing(used, "Not used together with another LoRA often enough in the history.",
                                f"Used with {name}"))
        return recommend_cards.notice(similar.notice), html

    def act(self, action: str | None, prompt: str | None, base: str | None, lora: str | None) -> tuple[str, str, str]:
        """Store feedback ``context|id|kind``, then show both answers again (hidden ones gone)."""
        match = _ACTION.match(action or "")
        if not match:
            return cards.message("That feedback could not be read.", "error"), _keep(), _keep()
        context, lora_id, kind = match.group(1), int(match.group(2)), match.group(3)
        try:
            self.library.recommender.feedback(context, lora_id, kind)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), _keep(), _keep()
        # feedback also comes from Compose's strip and the Library detail: this tab's own boxes may
        # be empty then, and what it shows stays as it is
        asked_here = bool((prompt or "").strip()) if context.startswith("prompt:") else bool((lora or "").strip())
        if not asked_here:
            return "", _keep(), _keep()
        if context.startswith("prompt:"):
            status, results = self.suggest(prompt, base)
            return status, results, _keep()
        status, related = self.related(lora)
        return status, _keep(), related


def _keep() -> Any:
    from .components import gradio_module

    return gradio_module().update()


def build_content(open_library: Callable[[], Library], host: HostInfo) -> RecommendTab:
    """Create the tab's components inside the current Blocks context and wire them."""
    import gradio as gr

    tab = RecommendTab(open_library, host)
    choices = base_choices(host)
    with gr.Column(elem_classes=["lm-root"], elem_id="lora_manager_recommend"):
        with gr.Row(elem_classes=["lm-searchbar"]):
            prompt = gr.Textbox(label="Prompt", lines=2, max_lines=6, elem_id="lora_manager_recommend_prompt",
                                elem_classes=["lm-search"], placeholder="1girl, cel shading, neon city at night …")
            # its own column: gradio would put it in the prompt's form box, under the prompt
            with gr.Column(elem_classes=["lm-reco-base"], min_width=160):
                base = gr.Dropdown(choices, value=choices[0], label="Base model", elem_id="lora_manager_recommend_base")
            suggest = gr.Button("Suggest", variant="primary", elem_id="lora_manager_recommend_go", elem_classes=["lm-btn"])
        status = gr.HTML("", elem_id="lora_manager_recommend_status")
        results = gr.HTML('<div class="lm-empty">Type a prompt and click Suggest.</div>',
                          elem_id="lora_manager_recommend_results")
        with gr.Row(elem_classes=["lm-searchbar"]):
            lora = gr.Textbox(label="LoRA (name, file name or #id)", lines=1, max_lines=1,
                              elem_id="lora_manager_recommend_lora", elem_classes=["lm-search"])
            related_btn = gr.Button("Similar and used with", elem_id="lora_manager_recommend_related_btn",
                                    elem_classes=["lm-btn"])
        related = gr.HTML("", elem_id="lora_manager_recommend_related")
        with gr.Column(elem_classes=["lm-hidden"], elem_id="lora_manager_recommend_glue"):
            action = gr.Textbox(show_label=False, elem_id="lora_manager_recommend_action", elem_classes=["lm-hidden"])
            action_btn = gr.Button("apply", elem_id="lora_manager_recommend_action_btn", elem_classes=["lm-hidden"])
        no_config(prompt, base, lora, action)

    suggest.click(tab.suggest, [prompt, base], [status, results])
    prompt.submit(tab.suggest, [prompt, base], [status, results])
    base.input(tab.suggest, [prompt, base], [status, results])
    related_btn.click(tab.related, [lora], [status, related])
    lora.submit(tab.related, [lora], [status, related])
    action_btn.click(tab.act, [action, prompt, base, lora], [status, results, related], show_progress=False)
    return tab
