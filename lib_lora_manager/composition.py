"""Composing prompts from library LoRAs, and reading prompts back (``library.composer``).

prompts.py knows the token syntax and knows no library; this module resolves each LoRA to its
library entry (its prompt name, default weight, trigger words, base model and file state) and
says what is wrong instead of failing.
"""

from __future__ import annotations

from typing import Any

from . import base_models, catalog, fields
from .errors import InvalidInput, NotFound
from .prompts import ComposedLora, compose, extract_loras, parse_infotext
from .results import Composition, PromptLora, PromptReading
from .store import Store


class Composer:
    def __init__(self, store: Store):
        self.store = store

    def compose(self, prompt: str, loras: list[dict[str, Any]], negative: str = "",
                model_family: str | None = None) -> Composition:
        """Build a prompt from LoRAs; never fails on one bad entry, says what is wrong instead.

        Each entry: ``{"id" or "name", "weight", "te", "unet", "enabled", "triggers"}`` where
        ``triggers`` is True (the LoRA's trigger words, the default), False, or a list of words;
        a missing weight is the LoRA's default weight. Warnings cover unknown and missing files,
        the same LoRA twice, names SDNext cannot parse, weights outside the recommended range
        and, when ``model_family`` is given, LoRAs made for another base model."""
        prompt, negative = fields.PROMPT.parse(prompt), fields.PROMPT.parse(negative, "negative_prompt")
        model_family = fields.MODEL_FAMILY.parse(model_family)
        warnings: list[str] = []
        composed: list[ComposedLora] = []
        used: dict[int, str] = {}
        for n, entry in enumerate(fields.COMPOSE_ENTRIES.parse(loras), 1):
            lora_id = entry.get("id") if entry.get("id") is not None else entry.get("lora_id")
            label = str(entry.get("name") or lora_id or f"#{n}")
            try:
                lora = catalog.row(self.store, lora_id) if lora_id is not None else catalog.find_row(self.store, entry.get("name") or "")
            except (NotFound, InvalidInput) as e:
                warnings.append(f"{label}: {e}; left out")
                continue
            if lora.trashed_at is not None:
                warnings.append(f"{label} is in the trash; left out")
                continue
            item = catalog.detail(self.store, lora.id)
            if lora.id in used:
                warnings.append(f"{item.name} is in the composition twice")
            used[lora.id] = item.name
            if item.missing:
                warnings.append(f"{item.name}: the file is missing, SDNext cannot load it")
            elif item.error:
                warnings.append(f"{item.name}: the file could not be read ({item.error})")
            if item.token_problem:
                warnings.append(f"{item.name}: {item.token_problem}")
            fits = base_models.compatible(item.base_model, model_family)
            if fits is False:
                warnings.append(f"{item.name} is a {base_models.label(item.base_model)} LoRA; "
                                f"the model is {base_models.label(model_family)}")
            weights = {k: entry.get(k) for k in ("weight", "te", "unet")}
            weight = weights["weight"] if weights["weight"] is not None else (item.default_weight if item.default_weight is not None else 1.0)
            low, high = item.weight_min, item.weight_max
            if low is not None and weight < low or high is not None and weight > high:
                warnings.append(f"{item.name}: weight {weight:g} is outside its recommended range "
                                f"{low if low is not None else ''}..{high if high is not None else ''}")
            triggers = entry.get("triggers", True)
            words = item.trigger_words if triggers is True else triggers
            composed.append(ComposedLora(name=item.prompt_name, weight=weight, te=weights["te"], unet=weights["unet"],
                                         enabled=entry.get("enabled", True), triggers=words, lora_id=lora.id))
        return Composition(prompt=compose(prompt, composed), negative_prompt=negative or "", warnings=warnings,
                           loras=composed)

    def read_prompt(self, prompt: str) -> PromptReading:
        """A prompt (or a whole infotext) back into its text and LoRAs, each resolved to a library
        entry by SDNext name, relative path, file name or hash prefix; unresolved ones say why."""
        values = parse_infotext(prompt) if "\n" in (prompt or "") else {"Prompt": prompt or ""}
        text, refs = extract_loras(values.get("Prompt", ""))
        loras = []
        for ref in refs:
            item = PromptLora(name=ref.name, weight=ref.weight, te=ref.te, unet=ref.unet, extra=ref.extra, text=ref.text)
            try:
                lora = catalog.find_row(self.store, ref.name)
                item.lora_id, item.token = lora.id, catalog.detail(self.store, lora.id).token
            except (NotFound, InvalidInput) as e:
                item.problem = str(e)
            loras.append(item)
        return PromptReading(text=text, negative=values.get("Negative prompt", ""), loras=loras,
                             parameters={k: v for k, v in values.items() if k not in ("Prompt", "Negative prompt")})
