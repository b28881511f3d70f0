"""Generation history: what one generation used and made, as hosts report it.

A host (SDNext's before/after-process hooks, our own jobs, the standalone pipeline) fills a
``GenerationRecord``; ``Library.record_generation`` stores it, resolves its LoRAs to library
entries (unknown ones keep their name) and bumps each LoRA's use count and last use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("succeeded", "interrupted", "failed", "no_model")


@dataclass
class UsedLora:
    name: str  # as written in the prompt (SDNext name, relative path, absolute path or hash)
    te_weight: float | None = None
    unet_weight: float | None = None


@dataclass
class GeneratedImage:
    path: str | None = None  # where the host saved it
    thumbnail: str | None = None  # our own copy when the host did not save
    seed: int | None = None


@dataclass
class GenerationRecord:
    started_at: float
    status: str
    duration: float | None = None
    source: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    seeds: list[int] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    model_name: str | None = None
    model_hash: str | None = None
    infotext: str | None = None
    error: str | None = None
    loras: list[UsedLora] = field(default_factory=list)
    images: list[GeneratedImage] = field(default_factory=list)

    @classmethod
    def loras_from_prompt(cls, prompt: str) -> list[UsedLora]:
        """The LoRAs of a prompt's ``<lora:…>`` tokens, with SDNext's effective weights."""
        from .prompts import extract_loras

        _text, refs = extract_loras(prompt)
        out = []
        for ref in refs:
            te, unet = ref.te_weight, ref.unet_weight
            out.append(UsedLora(ref.name, te if isinstance(te, float) else None, unet if isinstance(unet, float) else None))
        return out
