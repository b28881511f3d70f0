"""What a generation request is, what a host's generator must do, and what comes back.

The job queue (jobs.py), the UI and REST speak these types; each host brings a ``Generator``:
SDNext's in-process ``process_images`` (hosts/sdnext/) or the standalone diffusers pipeline
(hosts/diffusion.py). Field names follow SDNext's ``/sdapi/v1/txt2img`` request, so REST bodies
written for SDNext work here unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InvalidInput

# outcome statuses; the history keeps the same words (history.STATUSES)
SUCCEEDED, INTERRUPTED, FAILED, NO_MODEL = "succeeded", "interrupted", "failed", "no_model"
MAX_SEED = 4294967294  # SDNext's get_fixed_seed draws random seeds below this

_LIMITS = {  # field: (low, high), inclusive
    "steps": (1, 500), "cfg_scale": (0.0, 100.0), "width": (64, 4096), "height": (64, 4096),
    "batch_size": (1, 64), "n_iter": (1, 100), "hr_scale": (1.0, 4.0), "hr_second_pass_steps": (0, 500),
    "denoising_strength": (0.0, 1.0),
}


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
    def from_dict(cls, data: dict[str, Any]) -> GenerationRequest:
        """Validated request from JSON-like input; a bad field is one readable InvalidInput."""
        if not isinstance(data, dict):
            raise InvalidInput("a generation request must be an object")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInput(f"unsupported field(s): {', '.join(unknown)} (supported: {', '.join(known)})")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            if value is None and name in ("sampler_name", "hr_upscaler", "group", "label"):
                values[name] = None
                continue
            try:
                if isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise ValueError
                    values[name] = value
                elif isinstance(default, int):
                    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                        raise ValueError
                    values[name] = int(value)
                elif isinstance(default, float):
                    if isinstance(value, bool):
                        raise ValueError
                    values[name] = float(value)
                else:
                    if not isinstance(value, str):
                        raise ValueError
                    values[name] = value
            except (TypeError, ValueError):
                raise InvalidInput(f"{name}: expected {type(default).__name__ if default is not None else 'text'}, got {value!r}") from None
            if name in _LIMITS:
                low, high = _LIMITS[name]
                if not low <= values[name] <= high:
                    raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {values[name]:g}")
        return cls(**values)

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
    status: str  # SUCCEEDED, INTERRUPTED, FAILED, NO_MODEL
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

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationOutcome: ...

    def preview(self) -> Any:
        """The running generation's live preview (a PIL image) made now, for hosts that make
        one on request; None when there is none or it comes with the progress reports."""

    def interrupt(self) -> None: ...

    def skip(self) -> None: ...
