"""What leaves the library: typed, documented results, and the one way they become JSON.

The Library, its parts and History hand these out (never ORM rows, never hand-built dicts);
REST and the CLI turn them into JSON with ``to_json``; the UI reads their attributes. Text that
came from file names holds ``\\xNN`` escapes for bytes that are not UTF-8 (naming.display), so
every value here is safe to serialise. This module imports nothing heavy: the UI uses it while
SDNext starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .prompts import ComposedLora
from .wording import plural

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a search: the items, how many matched in all, and the query in words."""

    total: int
    page: int
    per_page: int
    items: list[T]
    description: str  # the query as understood ("LoRAs tagged anime; sorted by name (A to Z).")
    sort: str  # the sort key used, "-" in front when descending
    next: str | None = None  # the cursor of the next page (search's ``after``); None on the last

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass
class BulkResult:
    """What a bulk action did: the LoRAs it changed, and why each other one was not."""

    done: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    batch: str | None = None  # trash batch, for undo

    def summary(self, verb: str) -> str:
        text = f"{verb} {plural(len(self.done), 'LoRA')}"
        if self.errors:
            text += f"; {len(self.errors)} failed: " + "; ".join(list(self.errors.values())[:5])
        return text


@dataclass
class LoraSummary:
    """One LoRA as a card shows it (search results, duplicates, compositions)."""

    id: int
    name: str  # display name, else the model card's title, else the file's stem
    filename: str
    relpath: str  # inside its library folder
    folder: str  # relpath's folder ("" at the top)
    prompt_name: str  # what <lora:…> needs to load it in SDNext
    token: str  # <lora:prompt_name:default weight>
    token_problem: str | None  # why SDNext cannot parse the token, when it cannot
    base_model: str | None  # base_models code (sd15, sdxl, pony…)
    base_model_label: str
    adapter_type: str | None
    size: int | None
    rating: int | None
    favorite: bool
    nsfw: bool
    tags: list[str]
    trigger_words: list[str]
    missing: bool
    error: str | None  # why the file could not be read
    sha256: str | None
    autov2: str | None  # the first 10 hex digits of sha256, as CivitAI shows them
    shorthash: str | None  # SDNext's short hash (addnet)
    has_preview: bool
    preview_version: int  # changes when the preview may have changed (cache busting)


@dataclass
class DuplicateFile(LoraSummary):
    """A file of a duplicate group: a summary with where the file is on this machine."""

    path: str = ""


@dataclass
class LoraDetail(LoraSummary):
    """Everything about one LoRA (the detail panel, REST, the CLI)."""

    path: str = ""  # on this machine
    root: str = ""  # its library folder on this machine
    format: str = ""  # safetensors, ckpt, pt…
    mtime: float | None = None
    added_at: float | None = None
    missing_since: float | None = None
    trashed_at: float | None = None
    use_count: int = 0  # generations recorded with it
    last_used_at: float | None = None
    header_size: int | None = None
    base_model_detected: str | None = None
    base_model_source: str | None = None
    base_model_sidecar: str | None = None
    base_model_user: str | None = None
    base_model_conflict: str | None = None  # the file and a sidecar name different families
    network_module: str | None = None
    network_dim: int | None = None
    network_alpha: float | None = None
    title: str | None = None
    output_name: str | None = None
    training_model: str | None = None
    resolution: str | None = None
    epochs: int | None = None
    steps: int | None = None
    architecture: str | None = None
    trigger_suggestions: list[str] = field(default_factory=list)
    description: str | None = None
    civitai: dict[str, Any] | None = None
    sidecar_errors: list[str] = field(default_factory=list)
    addnet_hash: str | None = None
    hash_error: str | None = None
    notes: str | None = None
    default_weight: float | None = None
    weight_min: float | None = None
    weight_max: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the training metadata (ss_* keys…)


@dataclass
class Composition:
    """A composed prompt and what is wrong with it (never an error: each problem is a warning)."""

    prompt: str
    negative_prompt: str
    warnings: list[str]
    loras: list[ComposedLora]  # as they went into the prompt


@dataclass
class PromptLora:
    """A ``<lora:…>`` token read back from a prompt, resolved to a library entry where possible."""

    name: str
    weight: float | None  # None: SDNext's default multiplier
    te: float | str | None  # a float, or a step schedule such as "0.2@0,1@0.5"
    unet: float | str | None
    extra: dict[str, str]  # in=, mid=, out=, dyn=, module=
    text: str  # the token as written
    lora_id: int | None = None
    token: str | None = None  # the library entry's token, when resolved
    problem: str | None = None  # why it did not resolve


@dataclass
class PromptReading:
    """A prompt or a whole infotext read back: its text, negative prompt, LoRAs and parameters."""

    text: str
    negative: str
    loras: list[PromptLora]
    parameters: dict[str, str]


@dataclass
class SavedRecipe:
    """A recipe: a named composition kept for later."""

    id: int
    name: str
    prompt: str
    negative_prompt: str
    # the composer's entries: {"lora_id", "name", "label", "weight", "te", "unet", "enabled", "triggers"}
    loras: list[dict[str, Any]]
    parameters: dict[str, Any]  # GenerationRequest fields
    cover: str | None  # our copy of the cover image, None when there is none (or it is gone)
    created_at: float
    updated_at: float


@dataclass
class RecordedLora:
    """A LoRA a generation used, as the prompt named it, and the library entry it resolved to."""

    name: str
    lora_id: int | None
    te_weight: float | None
    unet_weight: float | None
    library_name: str | None = None  # detail only: the entry's name now
    missing: bool | None = None  # detail only: the entry's file is gone or trashed


@dataclass
class RecordedImage:
    """An image a generation made: the host's file and/or our thumbnail copy."""

    index: int
    path: str | None
    thumbnail: str | None
    seed: int | None
    exists: bool | None = None  # detail only: whether either file is still there
    missing: bool = False  # an import found the file gone (the record stays)


@dataclass
class GenerationSummary:
    """One recorded generation as the History's cards show it."""

    id: int
    started_at: float
    duration: float | None
    status: str  # generation.STATUSES
    source: str | None  # txt2img, img2img, api, lora-manager…
    prompt_excerpt: str
    loras: list[RecordedLora]
    model: str | None
    model_hash: str | None
    width: int | None
    height: int | None
    steps: int | None
    sampler: str | None
    cfg_scale: float | None
    seed: int | None  # the first image's
    rating: int | None
    favorite: bool
    group: str | None  # sweep / A-B group key
    label: str | None
    images: list[RecordedImage]
    error: str | None  # cut short; the detail has it whole


@dataclass
class GenerationDetail(GenerationSummary):
    """Everything about one generation: parameters, infotext, the whole prompts."""

    prompt: str = ""
    negative_prompt: str = ""
    seeds: list[int] = field(default_factory=list)
    infotext: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # from the infotext, besides the prompts
    rerunnable: bool = False  # a text-to-image generation: History.request can repeat it


@dataclass
class DeletedGeneration:
    """What deleting a generation did to its files."""

    id: int
    deleted_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    kept_files: dict[str, str] = field(default_factory=dict)  # file -> why it stays


_SCALARS = frozenset((str, int, float, bool))


def to_json(value: Any) -> Any:
    """A result (or a list, dict or tuple of them) as JSON-ready data: dataclasses become
    objects of their fields, Pages included."""
    if value is None or type(value) in _SCALARS:  # most values: a page of 48 cards holds ~2,000
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
