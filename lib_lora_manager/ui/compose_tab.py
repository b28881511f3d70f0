"""The Compose tab: LoRAs with weights and trigger words, base and negative prompt, the composed
prompt in SDNext's syntax with warnings, reading prompts/infotext/images back, and recipes.

The composition is a list of entries (held by the page's ``PageComposition``, see below)::

    {"lora_id": 3, "name": "anime_style", "label": "Anime style", "weight": 0.8,
     "te": None, "unet": None, "enabled": True, "triggers": ["anime style"]}

(``te``/``unet`` set only when the text-encoder and UNet weights are separate; ``triggers`` are
the words switched on.) The same entries are what recipes store. Gradio 3 cannot add
components at run time, so the tab has ``MAX_ROWS`` fixed rows and hides the unused ones.

Handlers are methods of ``ComposeTab`` that return a dict of named values (``"entries"``,
``"prompt"``, ``"rows": {index: {field: value}}``, ``"params": {field: value}`` …); the wiring in
``build_content`` turns it into Gradio outputs, leaving every value not named unchanged.
Tests call the methods directly. LoRAs that are not in the library never become rows: their
tokens stay in the base prompt as written, and the warnings name them.

The page's composition lives on the server in a ``PageComposition`` (page_composition.py): composition
events apply their one change to it under its lock (``_wire_composition``), so no change is lost to
another event running at the same time, and row indexes are mapped through the row order the page
showed (a hidden box) to the entries the user clicked.

Two things go through the page script (javascript/lora_manager_compose.js): weight sliders, whose
changes it turns into one ``weights`` request at a time, and the draft, the composition as JSON
that every change writes into a hidden box and that the script keeps in the browser's storage and
hands back through the restore box when the page loads (``draft_json``, ``restore``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import base_models, image_params
from ..errors import InvalidInput, LoraManagerError, NotFound
from ..generation import GenerationRequest
from ..hostinfo import HostInfo
from ..naming import format_weight
from ..prompts import extract_loras, format_infotext, format_lora, infotext_parameters
from ..results import LoraDetail, LoraSummary, PromptLora, SavedRecipe
from . import cards, recommend_cards
from .components import gradio_module as _gr
from .components import no_config
from .page_composition import PageComposition, plain

if TYPE_CHECKING:
    from ..library import Library

MAX_ROWS = 10
DEFAULT_RANGE = (-1.0, 2.0)  # weight slider bounds for a LoRA without a recommended range
STEP = 0.01
ROW_FIELDS = ("box", "title", "enabled", "weight", "split", "split_row", "te", "unet", "triggers")
MAX_RESULTS = 30
MAX_RECIPES = 60
SUGGESTIONS = 8  # LoRAs in the suggestion strip under the prompt
DRAFT_LIMIT = 200_000  # characters of a saved draft read back; a browser's storage is not trusted
EMPTY_HINT = "No LoRAs yet: find one above, or open a LoRA in the Library and click “Add to composition”."



def first_id(text: Any) -> int | None:
    """The id at the start of a choice ("#12 name") or a request ("12 1700000000")."""
    match = re.match(r"\s*#?(\d+)", str(text or ""))
    return int(match.group(1)) if match else None


def add_request(lora_id: Any) -> str:
    """What another tab writes into ``ComposeTab.add_box`` to add a LoRA: the id, then a nonce so
    that adding the same LoRA twice in a row is still a change."""
    lora_id = first_id(lora_id)
    return f"{lora_id} {time.time_ns()}" if lora_id is not None else ""


def weight_range(detail: LoraDetail | None, *values: float | None) -> tuple[float, float]:
    """Slider bounds: the LoRA's recommended range (default bounds for a missing side), widened
    to hold the given weights (a weight read from a prompt stays what it was)."""
    low = detail.weight_min if detail else None
    high = detail.weight_max if detail else None
    low = DEFAULT_RANGE[0] if low is None else float(low)
    high = DEFAULT_RANGE[1] if high is None else float(high)
    if low >= high:
        low, high = DEFAULT_RANGE
    for value in values:
        if value is not None:
            low, high = min(low, float(value)), max(high, float(value))
    return low, high


def new_entry(detail: LoraDetail, weight: float | None = None, te: float | None = None,
              unet: float | None = None, triggers: list[str] | None = None) -> dict[str, Any]:
    """A composer entry for a library LoRA, at its default weight with its trigger words on."""
    if weight is None:
        weight = detail.default_weight if detail.default_weight is not None else 1.0
    return {"lora_id": int(detail.id), "name": detail.prompt_name, "label": detail.name, "weight": float(weight),
            "te": te, "unet": unet, "enabled": True,
            "triggers": list(detail.trigger_words or []) if triggers is None else triggers}


@dataclass
class Outputs:
    """Named output slots → components, in a fixed order (the wiring's side of the dicts)."""

    slots: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, component: Any) -> None:
        self.slots[key] = component

    def pick(self, *prefixes: str) -> list[str]:
        return [k for k in self.slots if any(k == p or k.startswith(p + ".") for p in prefixes)]


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """{"rows": {0: {"weight": v}}, "params": {"steps": 20}} → {"row0.weight": v, "params.steps": 20}."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if key == "rows":
            for index, row in value.items():
                for name, item in row.items():
                    flat[f"row{index}.{name}"] = item
        elif key == "params":
            for name, item in value.items():
                flat[f"params.{name}"] = item
        else:
            flat[key] = value
    return flat


class ComposeTab:
    """Handlers of the Compose tab, bound to one Library and host."""

    def __init__(self, open_library: Callable[[], Library], host: HostInfo):
        self._open_library = open_library
        self.host = host
        self.parameter_names: list[str] = []  # GenerationRequest fields the generation panel edits
        # components other tabs write to or read (set by build_content)
        self.inbox: Any = None
        self.add_box: Any = None
        self.prompt_out: Any = None
        self.negative: Any = None

    @property
    def library(self) -> Library:
        return self._open_library()

    def model_family(self) -> str | None:
        """The loaded model's family; the generator never loads a model to answer."""
        return self.host.generator.model_family() if self.host.generator is not None else None

    def suggestions(self, text: str | None, composition: PageComposition | None) -> str:
        """The suggestion strip for the prompt being typed: LoRAs for the loaded model's family
        (any without one) that are not in the composition yet."""
        from ..recommendations import words

        if not words(text or ""):
            return ""
        family = self.model_family()
        base = family if family in base_models.BY_CODE and family != "unknown" else None
        exclude = [e["lora_id"] for e in composition.snapshot()] if composition is not None else []
        try:
            answer = self.library.recommender.for_prompt(text or "", base=base, exclude=exclude, limit=SUGGESTIONS)
        except LoraManagerError:  # typing goes on; the strip just stays empty
            return ""
        return recommend_cards.strip(answer)

    # --- the composed prompt ------------------------------------------------------------------

    def composed(self, entries: list[dict[str, Any]], base: str, negative: str) -> dict[str, Any]:
        """{"prompt", "warnings"} for the composition as it is."""
        family = self.model_family()
        request = [{"id": e["lora_id"], "name": e.get("name"), "weight": e["weight"], "te": e.get("te"),
                    "unet": e.get("unet"), "enabled": e.get("enabled", True), "triggers": list(e.get("triggers") or [])}
                   for e in entries or []]
        draft = draft_json(entries, base, negative)
        try:
            result = self.library.composer.compose(base or "", request, negative or "", model_family=family)
        except LoraManagerError as e:
            return {"prompt": "", "warnings": warnings_html([f"The prompt could not be composed: {e}"], family),
                    "draft": draft}
        notes = result.warnings + self._text_token_warnings(base or "", entries or [])
        return {"prompt": result.prompt, "warnings": warnings_html(notes, family), "draft": draft}

    def _text_token_warnings(self, base: str, entries: list[dict[str, Any]]) -> list[str]:
        """LoRA tokens typed (or kept) in the base prompt: unknown ones, and ones also in a row."""
        in_rows = {e["lora_id"] for e in entries if e.get("enabled", True)}
        notes = []
        for ref in extract_loras(base)[1]:
            try:
                lora = self.library.find(ref.name)
            except (NotFound, InvalidInput) as e:
                notes.append(f"{ref.name} (written in the prompt) is not resolved: {e}")
                continue
            if lora.id in in_rows:
                notes.append(f"{ref.name} is written in the prompt and is in the composition: SDNext would load it twice")
        return notes

    def update_prompt(self, entries, base, negative) -> dict[str, Any]:
        return self.composed(entries, base, negative)

    # --- rows -----------------------------------------------------------------------------------

    def _detail(self, lora_id: int) -> LoraDetail | None:
        """The LoRA's details, or None when it left the library (deleted or in the trash)."""
        try:
            detail = self.library.get(lora_id)
        except NotFound:
            return None
        return None if detail.trashed_at is not None else detail

    def _row(self, entry: dict[str, Any], family: str | None) -> dict[str, Any]:
        gr = _gr()
        detail = self._detail(entry["lora_id"])
        split = entry.get("te") is not None or entry.get("unet") is not None
        weight = float(entry["weight"])
        te = float(entry["te"]) if entry.get("te") is not None else weight
        unet = float(entry["unet"]) if entry.get("unet") is not None else te
        low, high = weight_range(detail, weight, te, unet)
        words = list(detail.trigger_words) if detail else []
        checked = [w for w in entry.get("triggers") or [] if w]
        choices = words + [w for w in checked if w not in words]  # words saved in a recipe stay visible
        return {
            "box": gr.update(visible=True),
            "title": row_title(entry, detail, family),
            "enabled": bool(entry.get("enabled", True)),
            "weight": gr.update(value=weight, minimum=low, maximum=high, visible=not split),
            "split": split,
            "split_row": gr.update(visible=split),
            "te": gr.update(value=te, minimum=low, maximum=high),
            "unet": gr.update(value=unet, minimum=low, maximum=high),
            "triggers": gr.update(choices=choices, value=checked, visible=bool(choices)),
        }

    def render(self, entries: list[dict[str, Any]], base: str, negative: str, status: str = "") -> dict[str, Any]:
        """Everything that shows the composition: the rows, the prompt, the warnings."""
        gr = _gr()
        entries = list(entries or [])
        family = self.model_family()
        rows = {i: (self._row(entries[i], family) if i < len(entries) else {"box": gr.update(visible=False)})
                for i in range(MAX_ROWS)}
        return {"entries": entries, "rows": rows, "summary": summary_html(entries), "status": status,
                **self.composed(entries, base, negative)}

    def edit(self, index: int, entries, base, negative, enabled, weight, split, te, unet, triggers,
             shown_weight: float | None = None) -> dict[str, Any]:
        """One row's controls changed: update its entry and the prompt (the row is not re-rendered,
        so a slider being dragged is left alone). A weight given as None stays as it is."""
        gr = _gr()
        entries = [dict(e) for e in entries or []]
        if not 0 <= index < len(entries):
            return {}
        entry = entries[index]
        was_split = entry.get("te") is not None or entry.get("unet") is not None
        entry["enabled"] = bool(enabled)
        entry["weight"] = float(weight) if weight is not None else entry["weight"]
        entry["triggers"] = [str(w) for w in triggers or []]
        row: dict[str, Any] = {"split_row": gr.update(visible=bool(split)), "weight": gr.update(visible=not split)}
        if split and not was_split:  # both start at the weight
            if shown_weight is not None:
                entry["weight"] = float(shown_weight)
            entry["te"] = entry["unet"] = entry["weight"]
            row.update(te=gr.update(value=entry["weight"]), unet=gr.update(value=entry["weight"]))
        elif split:  # a weight not given stays as it is
            entry["te"] = float(te) if te is not None else entry["te"]
            entry["unet"] = float(unet) if unet is not None else entry["unet"]
        else:
            if was_split:  # back to one weight: the text-encoder weight is the one SDNext applied first
                entry["weight"] = float(entry["te"])
                row["weight"] = gr.update(visible=True, value=entry["weight"])
            entry["te"] = entry["unet"] = None
        return {"entries": entries, "rows": {index: row}, "summary": summary_html(entries),
                **self.composed(entries, base, negative)}

    def weights(self, entries, base, negative, *values) -> dict[str, Any]:
        """A weight slider changed (dragged, typed into, arrow keys): every row's weights are read
        again from ``values`` (weight, text encoder, UNet for each row). The rows are not
        re-rendered, so a slider being dragged or typed into is left alone."""
        entries = [dict(e) for e in entries or []]
        for index, entry in enumerate(entries[:MAX_ROWS]):
            weight, te, unet = (values[3 * index:3 * index + 3] + (None, None, None))[:3]
            if entry.get("te") is not None or entry.get("unet") is not None:
                entry["te"] = float(te) if te is not None else entry["te"]
                entry["unet"] = float(unet) if unet is not None else entry["unet"]
            elif weight is not None:  # None while a number is half typed ("1.")
                entry["weight"] = float(weight)
        return {"entries": entries, "summary": summary_html(entries), **self.composed(entries, base, negative)}

    def move(self, index: int, delta: int, entries, base, negative) -> dict[str, Any]:
        entries = list(entries or [])
        target = index + delta
        if not (0 <= index < len(entries) and 0 <= target < len(entries)):
            return {}
        entries[index], entries[target] = entries[target], entries[index]
        return self.render(entries, base, negative)

    def remove(self, index: int, entries, base, negative) -> dict[str, Any]:
        entries = list(entries or [])
        if not 0 <= index < len(entries):
            return {}
        gone = entries.pop(index)
        return self.render(entries, base, negative, cards.message(f"Removed {gone.get('label') or gone.get('name')}.", "info"))

    def clear(self, entries, base, negative) -> dict[str, Any]:
        return self.render([], base, negative, cards.message("The composition is empty.", "info")) if entries else {}

    # --- adding LoRAs ---------------------------------------------------------------------------

    def find(self, query: str) -> dict[str, Any]:
        """Search the library (the Library tab's query language) for LoRAs to add."""
        gr = _gr()
        try:
            page = self.library.search(query or "", per_page=MAX_RESULTS)
        except LoraManagerError as e:
            return {"choices": gr.update(choices=[], value=None), "status": cards.message(str(e), "error")}
        choices = [choice_label(item) for item in page.items]
        if not choices:
            return {"choices": gr.update(choices=[], value=None), "status": cards.message("No LoRA matches.", "info")}
        more = f" (first {len(choices)} of {page.total:,}; refine the search)" if page.total > len(choices) else ""
        return {"choices": gr.update(choices=choices, value=choices[0]),
                "status": cards.message(f"{cards.plural(page.total)} found{more}: choose one and click Add.", "info")}

    def add(self, entries, lora_id, base, negative) -> dict[str, Any]:
        entries = list(entries or [])
        lora_id = first_id(lora_id)
        if lora_id is None:
            return {"status": cards.message("Choose a LoRA to add.", "error")}
        if len(entries) >= MAX_ROWS:
            return {"status": cards.message(f"The composition holds up to {MAX_ROWS} LoRAs; remove one first.", "error")}
        try:
            detail = self.library.get(lora_id)
        except LoraManagerError as e:
            return {"status": cards.message(str(e), "error")}
        twice = any(e["lora_id"] == detail.id for e in entries)
        entries.append(new_entry(detail))
        note = f"Added {detail.name}."
        if twice:
            note += " It was already in the composition: see the warnings."
        return self.render(entries, base, negative, cards.message(note, "error" if twice else "ok"))

    def add_from_box(self, value, entries, base, negative) -> dict[str, Any]:
        """The hidden add box changed (another tab asked to add a LoRA); it is emptied again."""
        if first_id(value) is None:
            return {}
        return {**self.add(entries, value, base, negative), "add_box": ""}

    # --- reading prompts back -------------------------------------------------------------------

    def load_text(self, text: str) -> dict[str, Any]:
        """Replace the composition with what a prompt or a whole infotext says."""
        text = (text or "").strip()
        if not text:
            return {"status": cards.message("Paste a prompt or an infotext first.", "error")}
        try:
            read = self.library.composer.read_prompt(text)
        except LoraManagerError as e:
            return {"status": cards.message(str(e), "error")}
        entries: list[dict[str, Any]] = []
        kept: list[str] = []
        notes: list[str] = []
        lowered = read.text.lower()
        for item in read.loras:
            reason = _not_editable(item, len(entries))
            detail = self._detail(item.lora_id) if reason is None else None
            if reason is None and detail is None:
                reason = "not in the library any more"
            if reason:
                kept.append(item.text or f"<lora:{item.name}>")
                notes.append(f"{item.name}: {reason}")
                continue
            weight = item.weight if item.weight is not None else 1.0  # SDNext's default multiplier
            te = item.te if item.te is not None else weight
            unet = item.unet if item.unet is not None else te
            split = te != weight or unet != weight
            # only the trigger words the prompt already has: the composed prompt stays the one read
            words = [w for w in detail.trigger_words if w.lower() in lowered]
            entries.append(new_entry(detail, weight, te if split else None, unet if split else None, words))
        base = " ".join(part for part in [read.text, *kept] if part)
        params, skipped = self._known_parameters(infotext_parameters(read.parameters))
        message = f"Read {cards.plural(len(entries))} from the text."
        if notes:
            message += " Kept in the prompt as written (not in the composer): " + "; ".join(notes) + "."
        if params:
            message += f" Generation settings: {', '.join(params)}."
        if skipped:
            message += " Ignored: " + "; ".join(skipped) + "."
        kind = "error" if notes else "ok"
        return {**self.render(entries, base, read.negative, cards.message(message, kind)),
                "base": base, "negative": read.negative, "params": params}

    def load_image(self, upload) -> dict[str, Any]:
        """Read the generation parameters stored in a dropped image (PNG text chunk or EXIF)."""
        path = getattr(upload, "name", upload)
        if not path:
            return {}
        try:
            text = image_params.read_infotext(str(path))
        except LoraManagerError as e:
            return {"status": cards.message(str(e), "error"), "image": None}
        return {**self.load_text(text), "parse_text": text, "image": None}

    def load_inbox(self, text) -> dict[str, Any]:
        """The hidden inbox changed (another tab sent a prompt or infotext); it is emptied again."""
        if not (text or "").strip():
            return {}
        return {**self.load_text(text), "inbox": ""}

    def restore(self, text, entries, base, negative) -> dict[str, Any]:
        """The page script handed back the composition this browser kept (its last draft, see
        ``draft_json``); the restore box is emptied again. A composition already started on this
        page is not replaced."""
        if not (text or "").strip():
            return {}
        if entries:
            return {"restore_box": ""}
        try:
            draft = read_draft(text)
        except InvalidInput as e:
            return {"status": cards.message(f"The composition kept in this browser was not restored: {e}", "error"),
                    "restore_box": ""}
        restored, kept, notes = self._saved_entries(draft["loras"])
        base = " ".join(part for part in [draft["prompt"], *kept] if part)
        status = ""
        if notes:
            status = cards.message("Restored the last composition; kept in the prompt as written: "
                                   + "; ".join(notes) + ".", "error")
        return {**self.render(restored, base, draft["negative"], status),
                "base": base, "negative": draft["negative"], "restore_box": ""}

    def _known_parameters(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The generation-panel fields among ``values``, each checked like a request field."""
        params, skipped = {}, []
        for name, value in values.items():
            if name not in self.parameter_names:
                continue
            try:
                params[name] = getattr(GenerationRequest.from_dict({name: value}), name)
            except InvalidInput as e:
                skipped.append(str(e))
        return params, skipped

    # --- recipes --------------------------------------------------------------------------------

    def recipe_list(self, query: str = "", status: str = "") -> dict[str, Any]:
        gr = _gr()
        try:
            found = self.library.recipes.search(query or "", limit=MAX_RECIPES)
        except LoraManagerError as e:
            return {"recipe_status": cards.message(str(e), "error")}
        choices = [f"#{r.id} {r.name}" for r in found]
        return {"recipe_list": recipes_html(found, self.host.api_base, query or ""),
                "recipe_choice": gr.update(choices=choices, value=None), "recipe_status": status}

    def recipe_refresh(self, query: str = "") -> dict[str, Any]:
        """The list shown again when it first comes into view: what a save, rename or delete
        said, and the recipe chosen, stay (the page asks while those may be running)."""
        out = self.recipe_list(query)
        if "recipe_list" in out:
            out["recipe_choice"] = _gr().update(choices=out["recipe_choice"]["choices"])
            del out["recipe_status"]
        return out

    def recipe_pick(self, value, query: str = "") -> dict[str, Any]:
        """A recipe card was clicked: choose it and put its name in the name box."""
        gr = _gr()
        recipe_id = first_id(value)
        if recipe_id is None:
            return {}
        try:
            recipe = self.library.recipes.get(recipe_id)
            listed = [f"#{r.id} {r.name}" for r in self.library.recipes.search(query or "", limit=MAX_RECIPES)]
        except LoraManagerError as e:
            return {"recipe_status": cards.message(str(e), "error")}
        choice = f"#{recipe.id} {recipe.name}"
        choices = listed if choice in listed else [choice, *listed]
        return {"recipe_choice": gr.update(choices=choices, value=choice), "recipe_name": recipe.name,
                "recipe_status": cards.message(f"“{recipe.name}” chosen: Apply loads it.", "info"), "delete_pending": None}

    def recipe_save(self, name, cover, query, entries, base, negative, *values) -> dict[str, Any]:
        # without a generation panel there are no settings to save: the recipe keeps its own
        parameters = ({k: v for k, v in zip(self.parameter_names, values) if v is not None}
                      if self.parameter_names else None)
        cover_path = getattr(cover, "name", cover) or None
        try:
            recipe = self.library.recipes.save(name, base or "", negative or "", list(entries or []),
                                               parameters, cover_image_path=cover_path)
        except LoraManagerError as e:
            return {"recipe_status": cards.message(f"Not saved: {e}", "error")}
        note = f"Saved “{recipe.name}” with {cards.plural(len(recipe.loras))}"
        note += f" and {cards.plural(len(recipe.parameters), 'generation setting')}." if recipe.parameters else "."
        return {**self.recipe_list(query, cards.message(note, "ok")), "recipe_name": recipe.name, "recipe_cover": None}

    def recipe_apply(self, choice) -> dict[str, Any]:
        """Restore a recipe: its LoRAs (re-found by name if their id changed), prompts and settings."""
        recipe_id = first_id(choice)
        if recipe_id is None:
            return {"recipe_status": cards.message("Choose a recipe first.", "error")}
        try:
            recipe = self.library.recipes.get(recipe_id)
        except LoraManagerError as e:
            return {"recipe_status": cards.message(str(e), "error")}
        entries, kept, notes = self._saved_entries(recipe.loras)
        base = " ".join(part for part in [recipe.prompt, *kept] if part)
        params, skipped = self._known_parameters(recipe.parameters)
        message = f"Applied “{recipe.name}”: {cards.plural(len(entries))}"
        message += f", {cards.plural(len(params), 'generation setting')}." if params else "."
        if notes:
            message += " Kept in the prompt as written: " + "; ".join(notes) + "."
        if skipped:
            message += " Ignored: " + "; ".join(skipped) + "."
        out = self.render(entries, base, recipe.negative_prompt)
        return {**out, "base": base, "negative": recipe.negative_prompt, "params": params,
                "recipe_name": recipe.name, "recipe_status": cards.message(message, "error" if notes else "ok")}

    def _saved_entries(self, saved_loras: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """Entries rebuilt from saved ones (a recipe's or a draft's): (entries, tokens kept as text,
        notes). A LoRA gone from the library, or re-added under a new id, is found again by name;
        one not found stays in the prompt as its token."""
        entries, kept, notes = [], [], []
        for saved in saved_loras:
            detail = self._detail(saved["lora_id"]) if saved.get("lora_id") is not None else None
            reason = f"the composer holds {MAX_ROWS} LoRAs" if len(entries) >= MAX_ROWS else ""
            if detail is None and not reason:  # gone, or re-added under a new id: found again by name
                try:
                    detail = self.library.find(saved.get("name") or "")
                except LoraManagerError as e:
                    reason = str(e)
            if reason:
                kept.append(_token(saved))
                notes.append(f"{saved.get('label') or saved.get('name')}: {reason}")
                continue
            entry = new_entry(detail, saved.get("weight"), saved.get("te"), saved.get("unet"), list(saved.get("triggers") or []))
            entry["enabled"] = bool(saved.get("enabled", True))
            entries.append(entry)
        return entries, kept, notes

    def recipe_delete(self, choice, pending, query) -> dict[str, Any]:
        """Two clicks: the first asks, the second (same recipe) deletes."""
        recipe_id = first_id(choice)
        if recipe_id is None:
            return {"recipe_status": cards.message("Choose a recipe first.", "error"), "delete_pending": None}
        try:
            recipe = self.library.recipes.get(recipe_id)
            if pending != recipe_id:
                return {"recipe_status": cards.message(f"Click Delete again to delete “{recipe.name}”.", "error"),
                        "delete_pending": recipe_id}
            self.library.recipes.delete(recipe_id)
        except LoraManagerError as e:
            return {"recipe_status": cards.message(str(e), "error"), "delete_pending": None}
        return {**self.recipe_list(query, cards.message(f"Deleted “{recipe.name}”.", "ok")), "delete_pending": None}

    def recipe_rename(self, choice, new_name, query) -> dict[str, Any]:
        recipe_id = first_id(choice)
        if recipe_id is None:
            return {"recipe_status": cards.message("Choose the recipe to rename.", "error")}
        try:
            recipe = self.library.recipes.rename(recipe_id, new_name)
        except LoraManagerError as e:
            return {"recipe_status": cards.message(f"Not renamed: {e}", "error")}
        return {**self.recipe_list(query, cards.message(f"Renamed to “{recipe.name}”.", "ok")), "recipe_name": recipe.name}

    # --- sending to SDNext ------------------------------------------------------------------------

    def paste_text(self, prompt, negative, *values) -> str:
        """The infotext SDNext's paste mechanism reads: composed prompt, negative, settings."""
        params, _ = self._known_parameters({k: v for k, v in zip(self.parameter_names, values) if v is not None})
        return format_infotext(prompt or "", negative or "", params)

    @staticmethod
    def sent(prompt, negative, result) -> str:
        """Status after the page script tried to fill SDNext's prompt boxes (``result`` is its message)."""
        text = str(result or "")
        return cards.message(text, "ok" if text.startswith("Sent") else "info") if text else ""


def draft_json(entries: list[dict[str, Any]] | None, base: str | None, negative: str | None) -> str:
    """The composition as the page script keeps it in the browser's storage (JSON), or "{}" when
    there is nothing to keep (the script then forgets the kept one)."""
    loras = [{k: e.get(k) for k in ("lora_id", "name", "label", "weight", "te", "unet", "enabled", "triggers")}
             for e in entries or []]
    if not loras and not (base or "").strip() and not (negative or "").strip():
        return "{}"
    return json.dumps({"version": 1, "loras": loras, "prompt": base or "", "negative": negative or ""},
                      ensure_ascii=False, separators=(",", ":"))


def read_draft(text: str) -> dict[str, Any]:
    """A draft written by ``draft_json`` (by any version of the page, or edited by hand): checked
    field by field. Raises InvalidInput."""
    if len(text) > DRAFT_LIMIT:
        raise InvalidInput(f"it is longer than {DRAFT_LIMIT:,} characters")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"it is not JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("loras", []), list):
        raise InvalidInput("it is not a composition")
    loras = []
    for item in data.get("loras", [])[:MAX_ROWS]:
        if not isinstance(item, dict):
            continue
        try:
            lora_id = int(item["lora_id"]) if item.get("lora_id") is not None else None
            weights = {k: (float(item[k]) if item.get(k) is not None else None) for k in ("weight", "te", "unet")}
            if not all(math.isfinite(w) for w in weights.values() if w is not None):
                raise ValueError("not finite")
        except (TypeError, ValueError):
            raise InvalidInput(f"a LoRA's id or weight is not a number: {cards.cut(str(item), 120)}") from None
        triggers = item.get("triggers") if isinstance(item.get("triggers"), list) else []
        loras.append({"lora_id": lora_id, "name": str(item.get("name") or ""), "label": str(item.get("label") or ""),
                      **weights, "enabled": bool(item.get("enabled", True)), "triggers": [str(w) for w in triggers]})
    return {"loras": loras, "prompt": str(data.get("prompt") or ""), "negative": str(data.get("negative") or "")}


def _not_editable(item: PromptLora, rows: int) -> str | None:
    """Why a LoRA read from a prompt stays text instead of becoming a row, or None."""
    if item.lora_id is None:
        return item.problem or "not in the library"
    # positional arguments after NAME (the weight, or SDNext's high/low); a weight that is not a
    # number (a step schedule) was read as None
    positional = [a for a in (item.text or "").strip("<>").split(":")[2:] if a.count("=") != 1]
    scheduled = item.weight is None and positional and positional[0].strip()
    if scheduled or len(positional) > 1 or isinstance(item.te, str) or isinstance(item.unet, str):
        return "a step-scheduled weight or a positional option, which the composer does not edit"
    if item.extra:
        return f"uses {', '.join(k + '=' for k in item.extra)}, which the composer does not edit"
    if rows >= MAX_ROWS:
        return f"the composer holds {MAX_ROWS} LoRAs"
    return None


def _token(saved: dict[str, Any]) -> str:
    return format_lora(str(saved.get("name") or "?"), float(saved.get("weight") or 1.0), saved.get("te"), saved.get("unet"))


# --- HTML (everything from files or users is escaped) --------------------------------------------


def choice_label(item: LoraSummary) -> str:
    return f"#{int(item.id)} {item.name} ({base_models.label(item.base_model)})"


def row_title(entry: dict[str, Any], detail: LoraDetail | None, family: str | None) -> str:
    esc = cards.esc
    if detail is None:
        return (f'<div class="lm-compose-title"><span class="lm-compose-name">{esc(entry.get("label") or entry.get("name"))}</span>'
                '<span class="lm-badge lm-bad">not in the library any more</span></div>')
    badges = cards.base_badge(detail) + cards.status_badges(detail)
    if base_models.compatible(detail.base_model, family) is False:
        badges += f'<span class="lm-badge lm-bad" title="the loaded model is {esc(base_models.label(family))}">other base</span>'
    low, high = detail.weight_min, detail.weight_max
    if low is not None or high is not None:
        span = f"{format_weight(low) if low is not None else '…'} to {format_weight(high) if high is not None else '…'}"
        badges += f'<span class="lm-compose-range" title="recommended weight">{esc(span)}</span>'
    return (f'<div class="lm-compose-title"><span class="lm-compose-name">{esc(detail.name)}</span>'
            f'<code class="lm-compose-token">{esc(detail.prompt_name)}</code>{badges}</div>')


def warnings_html(warnings: list[str], family: str | None) -> str:
    model = (f'<div class="lm-compose-model">Loaded model: {cards.esc(base_models.label(family))}</div>' if family
             else '<div class="lm-compose-model">No model family known: base models are not checked.</div>')
    if not warnings:
        return f'<div class="lm-compose-warnings lm-none">{model}No warnings.</div>'
    items = "".join(f"<li>{cards.esc(cards.cut(w, 600))}</li>" for w in warnings)
    return f'<div class="lm-compose-warnings">{model}<ul>{items}</ul></div>'


def summary_html(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f'<div class="lm-empty lm-compose-empty">{cards.esc(EMPTY_HINT)}</div>'
    on = sum(1 for e in entries if e.get("enabled", True))
    return f'<div class="lm-compose-summary">{cards.plural(len(entries))}, {on} on (up to {MAX_ROWS})</div>'


def recipes_html(recipes: list[SavedRecipe], api_base: str, query: str) -> str:
    esc = cards.esc
    if not recipes:
        text = f"No recipe matches “{query}”." if query.strip() else "No recipes yet: compose, name it and click Save recipe."
        return f'<div class="lm-empty">{esc(text)}</div>'
    out = []
    for r in recipes:
        if r.cover:
            url = f"{(api_base or '').rstrip('/')}/lora-manager/v1/recipes/{int(r.id)}/cover?v={int(r.updated_at or 0)}"
            image = f'<img class="lm-recipe-img" src="{esc(url)}" alt="" loading="lazy">'
        else:
            image = '<div class="lm-recipe-img lm-recipe-noimg">no cover</div>'
        loras = ", ".join(f"{e.get('label') or e.get('name')} {format_weight(float(e.get('weight') or 0))}" for e in r.loras)
        out.append(
            f'<div class="lm-recipe" data-id="{int(r.id)}" tabindex="0" role="button" title="Choose this recipe">{image}'
            f'<div class="lm-recipe-text"><div class="lm-recipe-name">{esc(r.name)}</div>'
            f'<div class="lm-recipe-loras">{esc(cards.cut(loras, 300)) or "no LoRAs"}</div>'
            f'<div class="lm-recipe-prompt">{esc(cards.cut(r.prompt, 200))}</div></div></div>')
    return f'<div class="lm-recipes">{"".join(out)}</div>'


# --- layout ---------------------------------------------------------------------------------


def _wire(event, handler: Callable[..., dict[str, Any]], inputs: list, outputs: Outputs, keys: list[str], **kwargs):
    """Attach ``handler`` (which returns a dict of named values) to ``event`` with the named outputs."""
    gr = _gr()
    components = [outputs.slots[k] for k in keys]

    def run(*args):
        flat = flatten(handler(*args))
        return tuple(flat.get(k, gr.update()) for k in keys)

    return event(run, inputs, components, **kwargs)


def _wire_composition(tab: ComposeTab, event, handler: Callable[..., dict[str, Any]], state, order, prompts: list,
                      inputs: list, outputs: Outputs, keys: list[str], row: int | None = None, weights: bool = False,
                      **kwargs):
    """Attach a handler that reads or changes the composition: ``handler(entries, base, negative,
    *inputs)``, or ``handler(index, entries, base, negative, *inputs)`` for row ``row``. It runs
    under the page's composition lock on the current entries, and the entries it returns become
    the composition. The page's row order (``order``) maps the row it clicked, or the slider values
    it sent (``weights``), to the entries it showed; a page whose rows were behind is shown the
    current composition."""
    gr = _gr()
    keys = [k for k in keys if k != "entries"] + ["order"]
    components = [outputs.slots[k] for k in keys]
    shows_rows = any(k.startswith("row") for k in keys)

    def run(composition: PageComposition | None, shown: str, base: str, negative: str, *args):
        if composition is None:  # a call without a page (no session): nothing to keep between calls
            composition = PageComposition()
        with composition.lock:
            current = composition.snapshot()
            behind = not composition.shown(shown)
            if row is not None:
                index = composition.index(shown, row)
                result = handler(index, current, base, negative, *args) if index is not None else {}
            elif weights:
                result = handler(current, base, negative, *composition.weights(shown, args, 3, MAX_ROWS))
            else:
                result = handler(current, base, negative, *args)
            changed = "entries" in result
            if changed:
                composition.replace(result.pop("entries"))
            if behind and shows_rows and (changed or row is not None or weights):
                # the page's rows show an older composition than the one this event changed
                result = {**result, **tab.render(composition.entries, result.get("base", base),
                                                 result.get("negative", negative), result.get("status", ""))}
                result.pop("entries", None)
            result["order"] = composition.order()
        flat = flatten(result)
        return tuple(flat.get(k, gr.update()) for k in keys)

    return event(run, [state, order, *prompts, *inputs], components, **kwargs)


def build_content(open_library: Callable[[], Library], host: HostInfo) -> ComposeTab:
    """Create the Compose tab inside the current Blocks context and wire it; reads nothing."""
    import gradio as gr

    tab = ComposeTab(open_library, host)
    out = Outputs()
    quiet = {"show_progress": False}

    with gr.Column(elem_classes=["lm-root", "lm-compose"], elem_id="lora_manager_compose"):
        with gr.Row(elem_classes=["lm-compose-main"]):
            with gr.Column(elem_classes=["lm-compose-loras"]):
                with gr.Row(elem_classes=["lm-searchbar"]):
                    search = gr.Textbox(show_label=False, label="Find a LoRA", lines=1, max_lines=1,
                                        placeholder="Find a LoRA to add: words, tag:style base:sdxl …",
                                        elem_id="lora_manager_compose_search", elem_classes=["lm-search"])
                    find_btn = gr.Button("Find", elem_id="lora_manager_compose_find", elem_classes=["lm-btn"])
                with gr.Row(elem_classes=["lm-compose-pick"]):
                    choices = gr.Dropdown([], label="Results", elem_id="lora_manager_compose_results")
                    add_btn = gr.Button("Add", variant="primary", elem_id="lora_manager_compose_add", elem_classes=["lm-btn"])
                summary = gr.HTML(summary_html([]), elem_id="lora_manager_compose_summary")
                no_config(search, choices)
                rows = []
                for i in range(MAX_ROWS):
                    rid = f"lora_manager_compose_row{i}"
                    with gr.Group(visible=False, elem_id=rid, elem_classes=["lm-compose-row"]) as box:
                        with gr.Row(elem_classes=["lm-compose-row-head"]):
                            title = gr.HTML("", elem_id=f"{rid}_title")
                            up = gr.Button("↑", size="sm", elem_id=f"{rid}_up", elem_classes=["lm-btn", "lm-tool"])
                            down = gr.Button("↓", size="sm", elem_id=f"{rid}_down", elem_classes=["lm-btn", "lm-tool"])
                            drop = gr.Button("✕", size="sm", elem_id=f"{rid}_remove", elem_classes=["lm-btn", "lm-tool"])
                        with gr.Row(elem_classes=["lm-compose-row-weights"]):
                            enabled = gr.Checkbox(value=True, label="On", elem_id=f"{rid}_enabled")
                            weight = gr.Slider(*DEFAULT_RANGE, value=1.0, step=STEP, label="Weight", elem_id=f"{rid}_weight")
                            split = gr.Checkbox(value=False, label="Separate TE/UNet", elem_id=f"{rid}_split")
                        with gr.Row(visible=False, elem_classes=["lm-compose-row-weights"]) as split_row:
                            te = gr.Slider(*DEFAULT_RANGE, value=1.0, step=STEP, label="Text encoder", elem_id=f"{rid}_te")
                            unet = gr.Slider(*DEFAULT_RANGE, value=1.0, step=STEP, label="UNet", elem_id=f"{rid}_unet")
                        triggers = gr.CheckboxGroup([], label="Trigger words (checked ones go into the prompt)",
                                                    visible=False, elem_id=f"{rid}_triggers")
                    no_config(enabled, weight, split, te, unet, triggers)
                    parts = dict(zip(ROW_FIELDS, (box, title, enabled, weight, split, split_row, te, unet, triggers)))
                    for name, component in parts.items():
                        out.add(f"row{i}.{name}", component)
                    rows.append((parts, up, down, drop))
                clear_btn = gr.Button("Clear the composition", size="sm", elem_id="lora_manager_compose_clear",
                                      elem_classes=["lm-btn"])

            with gr.Column(elem_classes=["lm-compose-prompts"]):
                base = gr.Textbox(label="Prompt", lines=3, placeholder="The prompt; trigger words and LoRA tokens are added",
                                  elem_id="lora_manager_compose_base")
                # follows the prompt as it is typed (the page script clicks suggest_btn, debounced)
                suggest_strip = gr.HTML("", elem_id="lora_manager_compose_suggest")
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="lora_manager_compose_negative")
                prompt_out = gr.Textbox(label="Composed prompt", lines=4, interactive=False,
                                        elem_id="lora_manager_compose_prompt", elem_classes=["lm-mono"])
                with gr.Row(elem_classes=["lm-compose-actions"]):
                    copy_btn = gr.Button("Copy", size="sm", elem_id="lora_manager_compose_copy", elem_classes=["lm-btn"])
                    # standalone has no SDNext page to send to (the button would do nothing there)
                    send_btn = gr.Button("Send to SDNext", size="sm", variant="primary", visible=host.name == "sdnext",
                                         elem_id="lora_manager_compose_send", elem_classes=["lm-btn"])
                    paste_btn = gr.Button("Send with parameters", size="sm", visible=host.bind_paste is not None,
                                          elem_id="lora_manager_compose_send_params", elem_classes=["lm-btn"])
                # empty until something is composed: at build time SDNext has not loaded a model yet
                warnings = gr.HTML("", elem_id="lora_manager_compose_warnings")
                status = gr.HTML("", elem_id="lora_manager_compose_status")
                no_config(base, negative, prompt_out)

        # generation right under the composition: Run is what people reach for next
        from . import generate_panel

        panel = None
        if host.jobs is not None:
            panel = generate_panel.build(host, prompt_out, negative)
            tab.parameter_names = list(panel.parameters)
        else:  # no dead buttons: say how to turn generation on
            generate_panel.build_unavailable()

        with gr.Accordion("Read a prompt, an infotext or an image", open=False, elem_id="lora_manager_compose_parse_acc"):
            parse_text = gr.Textbox(label="Prompt or infotext (as SDNext writes it under an image)", lines=4,
                                    elem_id="lora_manager_compose_parse_text")
            with gr.Row(elem_classes=["lm-compose-actions"]):
                parse_btn = gr.Button("Load into the composer", elem_id="lora_manager_compose_parse",
                                      elem_classes=["lm-btn"])
            parse_image = gr.File(label="…or drop an image made by SDNext (PNG, JPEG or WebP with parameters)",
                                  file_types=["image"], elem_id="lora_manager_compose_parse_image")
            no_config(parse_text)

        with gr.Accordion("Recipes", open=True, elem_id="lora_manager_compose_recipes_acc"):
            with gr.Row(elem_classes=["lm-searchbar"]):
                recipe_query = gr.Textbox(show_label=False, label="Search recipes", lines=1, max_lines=1,
                                          placeholder="Search recipes by name, prompt or LoRA",
                                          elem_id="lora_manager_compose_recipe_search", elem_classes=["lm-search"])
                recipe_find = gr.Button("Search", elem_id="lora_manager_compose_recipe_find", elem_classes=["lm-btn"])
            recipe_list_html = gr.HTML('<div class="lm-empty">Loading recipes…</div>', elem_id="lora_manager_compose_recipe_list")
            with gr.Row(elem_classes=["lm-compose-actions"]):
                recipe_choice = gr.Dropdown([], label="Recipe", elem_id="lora_manager_compose_recipe_choice")
                recipe_apply = gr.Button("Apply", variant="primary", elem_id="lora_manager_compose_recipe_apply", elem_classes=["lm-btn"])
                recipe_delete = gr.Button("Delete", variant="stop", elem_id="lora_manager_compose_recipe_delete", elem_classes=["lm-btn"])
            with gr.Row(elem_classes=["lm-compose-actions"]):
                recipe_name = gr.Textbox(label="Recipe name", lines=1, max_lines=1, elem_id="lora_manager_compose_recipe_name")
                recipe_save = gr.Button("Save recipe", elem_id="lora_manager_compose_recipe_save", elem_classes=["lm-btn"])
                recipe_rename = gr.Button("Rename chosen", elem_id="lora_manager_compose_recipe_rename", elem_classes=["lm-btn"])
            recipe_cover = gr.File(label="Cover image (optional, kept with the recipe)", file_types=["image"],
                                   elem_id="lora_manager_compose_recipe_cover")
            recipe_status = gr.HTML("", elem_id="lora_manager_compose_recipe_status")
            no_config(recipe_query, recipe_choice, recipe_name)

        # hidden glue: other tabs and the page script write here (hidden by CSS, not visible=False,
        # which gradio 3 does not render at all)
        with gr.Column(elem_classes=["lm-hidden"], elem_id="lora_manager_compose_glue"):
            inbox = gr.Textbox(show_label=False, elem_id="lora_manager_compose_inbox")
            add_box = gr.Textbox(show_label=False, elem_id="lora_manager_compose_add_box")
            send_result = gr.Textbox(show_label=False, elem_id="lora_manager_compose_send_result")
            paste_source = gr.Textbox(show_label=False, elem_id="lora_manager_compose_infotext")
            recipe_pick_id = gr.Textbox(show_label=False, elem_id="lora_manager_compose_recipe_pick_id")
            recipe_pick_btn = gr.Button("pick", elem_id="lora_manager_compose_recipe_pick")
            recipe_refresh = gr.Button("refresh", elem_id="lora_manager_compose_recipe_refresh")
            # the composition kept in the browser: written after every change, read back on load
            draft = gr.Textbox(show_label=False, elem_id="lora_manager_compose_draft")
            restore_box = gr.Textbox(show_label=False, elem_id="lora_manager_compose_restore")
            apply_weights = gr.Button("apply weights", elem_id="lora_manager_compose_apply_weights")
            # the keys of the entries in the order the rows show them (page_composition.py)
            order = gr.Textbox(show_label=False, elem_id="lora_manager_compose_order")
            suggest_btn = gr.Button("suggest", elem_id="lora_manager_compose_suggest_btn")
        no_config(inbox, add_box, send_result, paste_source, recipe_pick_id, draft, restore_box, order)
        # this page's composition, kept on the server (Gradio copies the initial value for each page)
        state = gr.State(PageComposition())
        delete_pending = gr.State(None)

    tab.inbox, tab.add_box, tab.prompt_out, tab.negative = inbox, add_box, prompt_out, negative
    suggest_btn.click(tab.suggestions, [base, state], [suggest_strip], show_progress=False)
    params = [panel.parameters[name] for name in tab.parameter_names] if panel is not None else []
    for name, component in (("order", order), ("summary", summary), ("prompt", prompt_out), ("warnings", warnings),
                            ("status", status), ("base", base), ("negative", negative), ("choices", choices),
                            ("parse_text", parse_text), ("image", parse_image), ("inbox", inbox), ("add_box", add_box),
                            ("recipe_list", recipe_list_html), ("recipe_choice", recipe_choice), ("recipe_name", recipe_name),
                            ("recipe_cover", recipe_cover), ("recipe_status", recipe_status), ("delete_pending", delete_pending),
                            ("draft", draft), ("restore_box", restore_box)):
        out.add(name, component)
    for name, component in zip(tab.parameter_names, params):
        out.add(f"params.{name}", component)

    # --- wiring ---------------------------------------------------------------------------------
    composer = out.pick("summary", "prompt", "warnings", "draft", "status", *(f"row{i}" for i in range(MAX_ROWS)))
    loaded = composer + out.pick("base", "negative", "params")
    prompts = [base, negative]

    def changes(event, handler, inputs, keys, **options):
        """An event that reads or changes the composition (see _wire_composition)."""
        return _wire_composition(tab, event, handler, state, order, prompts, inputs, out, keys, **options)

    _wire(find_btn.click, tab.find, [search], out, ["choices", "status"])
    _wire(search.submit, tab.find, [search], out, ["choices", "status"])
    changes(add_btn.click, lambda e, b, n, choice: tab.add(e, choice, b, n), [choices], composer)
    changes(add_box.change, lambda e, b, n, value: tab.add_from_box(value, e, b, n), [add_box], composer + ["add_box"], **quiet)
    changes(clear_btn.click, tab.clear, [], composer)
    for component in (base, negative):
        changes(component.change, tab.update_prompt, [], ["prompt", "warnings", "draft"], **quiet)

    for i, (parts, up, down, drop) in enumerate(rows):
        # all rows: a page behind the composition is shown it again (_wire_composition)
        # on/off, TE/UNet and trigger words only: weights are the weights event's, and a slider
        # value read here may be older than the one that event is applying
        for event in (parts["enabled"].input, parts["triggers"].input):
            changes(event, lambda index, e, b, n, on, split, words: tab.edit(index, e, b, n, on, None, split, None, None, words),
                    [parts["enabled"], parts["split"], parts["triggers"]], composer, row=i, **quiet)
        # turning TE/UNet on starts both at the weight shown, which may be newer than the entry's
        # while a weights event is still on its way (a busy SDNext takes seconds)
        changes(parts["split"].input, lambda index, e, b, n, on, split, words, shown: tab.edit(
                    index, e, b, n, on, None, split, None, None, words, shown_weight=shown),
                [parts["enabled"], parts["split"], parts["triggers"], parts["weight"]], composer, row=i, **quiet)
        changes(up.click, lambda index, *a: tab.move(index, -1, *a), [], composer, row=i, **quiet)
        changes(down.click, lambda index, *a: tab.move(index, 1, *a), [], composer, row=i, **quiet)
        changes(drop.click, tab.remove, [], composer, row=i, **quiet)

    changes(parse_btn.click, lambda e, b, n, text: tab.load_text(text), [parse_text], loaded)
    changes(parse_image.upload, lambda e, b, n, image: tab.load_image(image), [parse_image], loaded + ["parse_text", "image"])
    changes(inbox.change, lambda e, b, n, text: tab.load_inbox(text), [inbox], loaded + ["inbox"], **quiet)
    # Weight sliders: the page script clicks apply_weights after every change the user makes
    # (drag, each key typed, Enter, Tab, arrow keys), one request at a time, and once more when
    # values changed while one ran. Gradio's own slider events fall short: `release` misses Enter
    # and arrow keys, and `input` is dropped while the previous one runs (the last value typed
    # was lost) or, with a second pass, answered out of order on a concurrent queue.
    sliders = [parts[k] for parts, *_ in rows for k in ("weight", "te", "unet")]
    # queue=False: a plain request; through SDNext's queue each of the websocket's four steps cost
    # about 0.2 s on a busy CPU (the answer took 1.5-2 s for 0.05 s of work)
    changes(apply_weights.click, tab.weights, sliders, composer, weights=True, queue=False, **quiet).then(None, None, None, queue=False, _js="() => { if (window.loraManagerCompose) window.loraManagerCompose.applied(); return []; }")
    changes(restore_box.change, lambda e, b, n, text: tab.restore(text, e, b, n), [restore_box], loaded + ["restore_box"], **quiet)
    draft.change(None, [draft], None, _js="(text) => { if (window.loraManagerCompose)"
                 " window.loraManagerCompose.keep(text); return []; }", **quiet)

    copy_btn.click(None, [prompt_out], None,
                   _js="(text) => { if (window.loraManager) window.loraManager.copy(text, 'lora_manager_compose_copy'); return []; }")
    send_btn.click(ComposeTab.sent, [prompt_out, negative, send_result], [status],
                   _js="(prompt, negative) => (window.loraManagerSendToTxt2img ? window.loraManagerSendToTxt2img(prompt, negative)"
                       " : [prompt, negative, 'Reload the page: the LoRA Manager page script is not loaded.'])")
    if host.bind_paste is not None:
        for component in [prompt_out, negative] + params:
            component.change(tab.paste_text, [prompt_out, negative] + params, [paste_source], queue=False, **quiet)
        host.bind_paste(paste_btn, paste_source)

    recipe_keys = ["recipe_list", "recipe_choice", "recipe_status"]
    _wire(recipe_find.click, tab.recipe_list, [recipe_query], out, recipe_keys)
    _wire(recipe_query.submit, tab.recipe_list, [recipe_query], out, recipe_keys)
    _wire(recipe_refresh.click, tab.recipe_refresh, [recipe_query], out, recipe_keys, **quiet)
    _wire(recipe_pick_btn.click, tab.recipe_pick, [recipe_pick_id, recipe_query], out,
          ["recipe_choice", "recipe_name", "recipe_status", "delete_pending"], **quiet)
    changes(recipe_save.click, lambda e, b, n, name, cover, query, *values: tab.recipe_save(name, cover, query, plain(e), b, n, *values),
            [recipe_name, recipe_cover, recipe_query] + params, recipe_keys + ["recipe_name", "recipe_cover"])
    changes(recipe_apply.click, lambda e, b, n, choice: tab.recipe_apply(choice), [recipe_choice],
            loaded + ["recipe_name", "recipe_status"])
    _wire(recipe_delete.click, tab.recipe_delete, [recipe_choice, delete_pending, recipe_query], out,
          recipe_keys + ["delete_pending"])
    _wire(recipe_rename.click, tab.recipe_rename, [recipe_choice, recipe_name, recipe_query], out, recipe_keys + ["recipe_name"])
    recipe_choice.change(lambda: None, None, [delete_pending], **quiet)  # a new choice needs a new confirmation
    return tab
