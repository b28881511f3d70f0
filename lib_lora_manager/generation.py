"""What a generation request is, what a host's generator must do, and what comes back.

The job queue (jobs.py), the UI and REST speak these types; each host brings a ``Generator``:
SDNext's in-process ``process_images`` (hosts/sdnext/) or the standalone diffusers pipeline
(hosts/diffusion.py). Field names follow SDNext's ``/sdapi/v1/txt2img`` request, so REST bodies
written for SDNext work here unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import fields
from .statuses import GenerationStatus

MAX_SEED = fields.MAX_SEED

_SHORT = 200  # sampler and upscaler names, group keys and labels

# each request field's type: REST bodies, recipes' parameters and the UI's panels parse with these
FIELDS: dict[str, fields.Field] = {
    "prompt": fields.PROMPT, "negative_prompt": fields.PROMPT, "seed": fields.SEED,
    "steps": fields.Integer(1, 500), "cfg_scale": fields.Number(0.0, 100.0),
    "width": fields.Integer(64, 4096), "height": fields.Integer(64, 4096),
    "sampler_name": fields.Text(_SHORT, nullable=True, description="null: the host's default"),
    "batch_size": fields.Integer(1, 64), "n_iter": fields.Integer(1, 100, description="batch count"),
    "enable_hr": fields.Flag(), "hr_scale": fields.Number(1.0, 4.0), "hr_upscaler": fields.Text(_SHORT, nullable=True),
    "hr_second_pass_steps": fields.Integer(0, 500), "denoising_strength": fields.Number(0.0, 1.0),
    "group": fields.Text(_SHORT, nullable=True), "label": fields.Text(_SHORT, nullable=True),
}


class RequestFields(fields.Field[dict[str, Any]]):
    """Some of the request's fields by name, each parsed by its type in FIELDS: the keys given,
    parsed. ``usage`` says what the whole must be; ``elsewhere`` lists request fields that are
    refused here, with the reason."""

    def __init__(self, name: str, usage: str, *, elsewhere: tuple[str, ...] = (), reason: str = "",
                 nullable: bool = False, description: str = ""):
        self.name, self.usage, self.nullable, self.description = name, usage, nullable, description
        self.elsewhere, self.reason = elsewhere, reason
        self.supported = [key for key in FIELDS if key not in elsewhere]

    def _parse(self, value: Any, name: str) -> dict[str, Any] | None:
        if value is None and self.nullable:
            return None
        if not isinstance(value, Mapping):
            self.fail(f"{name} must be {self.usage}")
        kept = sorted(set(value) & set(self.elsewhere))
        if kept:
            self.fail(f"{name} cannot hold {', '.join(kept)}: {self.reason}")
        unknown = sorted(str(key) for key in value if key not in FIELDS)
        if unknown:
            self.fail(f"unsupported {'field' if len(unknown) == 1 else 'fields'}: {', '.join(unknown)} (supported: {', '.join(self.supported)})")
        return {key: FIELDS[key].parse(item, key) for key, item in value.items()}

    def _schema(self) -> dict[str, Any]:
        schema = {"type": "object", "properties": {key: FIELDS[key].json_schema() for key in self.supported},
                  "additionalProperties": False}
        return {"anyOf": [schema, {"type": "null"}]} if self.nullable else schema


REQUEST = RequestFields("a generation request", "an object")
# a recipe's generation settings: a recipe keeps its prompts itself; group and label belong to one run
RECIPE_PARAMETERS = RequestFields(
    "parameters", "an object of generation settings", elsewhere=("prompt", "negative_prompt", "group", "label"),
    reason="the prompt and negative prompt are recipe fields", nullable=True,
    description="txt2img settings (steps, seed, sampler_name, …); null keeps the saved ones")


@dataclass
class GenerationRequest:
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1  # -1: random
    steps: int = 20
    cfg_scale: float = 6.0
    width: int = 512
    height: int = 512
    sampler_name: str | None = None  # None: the host's default
    batch_size: int = 1
    n_iter: int = 1  # batch count
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    denoising_strength: float = 0.5  # of the hires pass
    # carried into the history: a sweep's generations share ``group`` and each has a ``label``
    group: str | None = None
    label: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> GenerationRequest:
        """Validated request from JSON-like input; a bad field is one readable InvalidInput.
        ``defaults`` (a generator's ``defaults()``) fill the fields ``data`` leaves out before
        the class's own defaults do."""
        return cls(**REQUEST.parse({**(defaults or {}), **data}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Progress:
    """Where a running generation is; ``preview`` is a PIL image when the host has one."""

    step: int = 0
    steps: int = 0
    batch: int = 0  # 0-based batch in progress
    batches: int = 1
    text: str = ""
    preview: Any = None

    @property
    def fraction(self) -> float:
        if not self.steps:
            return 0.0
        return min(1.0, (self.batch + min(self.step, self.steps) / self.steps) / max(self.batches, 1))


@dataclass
class OutputImage:
    path: str  # where the host saved it (a file we can serve and read back)
    infotext: str = ""
    seed: int | None = None


@dataclass
class GenerationOutcome:
    status: GenerationStatus
    images: list[OutputImage] = field(default_factory=list)
    message: str = ""  # for the user: why it did not succeed, or notes

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message,
                "images": [dataclasses.asdict(i) for i in self.images]}


ProgressCallback = Callable[[Progress], None]


class Generator(Protocol):
    """A host's in-process image generation. ``generate`` runs on the job queue's worker thread,
    one call at a time; ``interrupt``/``skip`` come from other threads while it runs."""

    def samplers(self) -> list[str]: ...

    def upscalers(self) -> list[str]: ...

    def model_family(self) -> str | None:
        """base_models family code of the loaded model (None when none is loaded or unknown);
        never loads a model to find out."""

    def model_name(self) -> str | None: ...

    def defaults(self) -> dict[str, Any]:
        """Request fields whose default depends on the model (width and height at its native
        size, a step count that fits it); {} keeps GenerationRequest's. Never loads a model."""

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationOutcome: ...

    def preview(self) -> Any:
        """The running generation's live preview (a PIL image) made now, for hosts that make
        one on request; None when there is none or it comes with the progress reports."""

    def interrupt(self) -> None: ...

    def skip(self) -> None: ...
