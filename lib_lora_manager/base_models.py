"""Base-model families: one table, used by detection, sidecars, the query language and the UI.

A family is what decides whether a LoRA fits a checkpoint. Pony and Illustrious are SDXL
architectures but users treat them as separate families (their LoRAs rarely transfer well),
so they are families here with ``arch`` pointing at SDXL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    code: str  # stored in the database and used in queries (base:sdxl)
    label: str  # shown on badges
    arch: str  # architecture family, for compatibility checks
    aliases: tuple[str, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family("sd1", "SD1.5", "sd1", ("sd15", "sd1.5", "sd 1.5", "sd1.4", "sd 1.4", "sd_v1", "v1", "stable-diffusion-v1")),
    Family("sd2", "SD2", "sd2", ("sd21", "sd2.1", "sd 2.1", "sd 2.0", "sd2.0", "sd_v2", "v2", "stable-diffusion-v2")),
    Family("sdxl", "SDXL", "sdxl", ("xl", "sdxl 1.0", "sdxl1.0", "sdxl_base_v1-0", "stable-diffusion-xl", "sdxl 0.9", "sdxl turbo", "sdxl lightning")),
    Family("pony", "Pony", "sdxl", ("pony diffusion", "ponyxl", "pony xl", "pdxl")),
    Family("illustrious", "Illustrious", "sdxl", ("il", "illustrious xl", "noobai", "noob")),
    Family("sd3", "SD3", "sd3", ("sd 3", "sd 3.5", "sd3.5", "sd 3.5 large", "sd 3.5 medium", "stable-diffusion-v3", "stable-diffusion-3")),
    Family("flux", "Flux.1", "flux", ("flux1", "flux.1", "flux.1 d", "flux.1 s", "flux.1 dev", "flux.1 schnell", "f1", "flux-1")),
    Family("flux2", "Flux.2", "flux2", ("flux.2", "flux2 klein", "f2", "klein")),
    Family("sc", "Cascade", "sc", ("stable cascade", "stable-cascade", "cascade")),
    Family("chroma", "Chroma", "chroma", ()),
    Family("hunyuan_video", "HunyuanVideo", "hunyuan_video", ("hunyuan video", "hv", "hunyuan-video")),
    Family("wan", "Wan", "wan", ("wan video", "wan 2.1", "wan 2.2", "wan video 14b")),
    Family("qwen", "Qwen-Image", "qwen", ("qwen image", "qwen-image")),
    Family("zimage", "Z-Image", "zimage", ("z-image", "z image", "zimage turbo", "z-image turbo")),
    Family("unknown", "Unknown", "unknown", ("other", "none", "?")),
)

BY_CODE: dict[str, Family] = {f.code: f for f in FAMILIES}
_LOOKUP: dict[str, str] = {}
for _f in FAMILIES:
    for _name in (_f.code, _f.label, *_f.aliases):
        _LOOKUP[_name.lower()] = _f.code


def label(code: str | None) -> str:
    family = BY_CODE.get(code or "unknown")
    return family.label if family else str(code)


def family_code(text: str | None) -> str | None:
    """Map a user- or file-supplied name ("SDXL 1.0", "Pony", "sd_v1", "Flux.1 D") to a family code.

    Exact aliases first, then a few well-known substrings; None when nothing matches.
    """
    if not text:
        return None
    key = str(text).strip().lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    for needle, code in _SUBSTRINGS:
        if needle.search(key):
            return code
    return None


# Order matters: the more specific name wins (pony/illustrious before sdxl, flux2 before flux).
_SUBSTRINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), c)
    for p, c in (
        (r"pony", "pony"),
        (r"illustrious|noob", "illustrious"),
        (r"flux\.?\s*2|klein", "flux2"),
        (r"flux", "flux"),
        (r"chroma", "chroma"),
        (r"cascade", "sc"),
        (r"hunyuan", "hunyuan_video"),
        (r"\bwan\b", "wan"),
        (r"qwen", "qwen"),
        (r"z-?image", "zimage"),
        (r"sd\s*3|stable-diffusion-v?3", "sd3"),
        (r"xl", "sdxl"),
        (r"sd\s*_?v?2|stable-diffusion-v2|768-v", "sd2"),
        (r"sd\s*_?v?1|v1-5|stable-diffusion-v1|1\.5", "sd1"),
    )
)


def compatible(lora_family: str | None, model_family: str | None) -> bool | None:
    """Whether a LoRA of one family fits a model of another; None when either is unknown.

    Families sharing an architecture (Pony, Illustrious, SDXL) are compatible with each other:
    they load and run, even though results vary.
    """
    a, b = BY_CODE.get(lora_family or ""), BY_CODE.get(model_family or "")
    if not a or not b or "unknown" in (a.code, b.code):
        return None
    return a.arch == b.arch


# Narrower families of a coarser one: (coarse, specific). A claim of the architecture itself
# ("SDXL") does not contradict a family built on it ("Pony"): it just says less.
REFINEMENTS: tuple[tuple[str, str], ...] = tuple(
    (f.arch, f.code) for f in FAMILIES if f.arch != f.code and f.arch in BY_CODE
)


def refines(specific: str | None, coarse: str | None) -> bool:
    """Whether ``specific`` is a narrower family of ``coarse`` (Pony of SDXL)."""
    return (coarse, specific) in REFINEMENTS


def effective(user: str | None, sidecar: str | None, detected: str | None) -> str:
    """The base model a LoRA is shown and filtered under: the user's choice, else a sidecar's,
    else the one detected from the file, except that a sidecar's coarser claim ("sd version:
    SDXL") does not hide a narrower family the file names (Pony). scanner.refresh_base_model
    is the same rule in SQL."""
    if user:
        return user
    if sidecar and not refines(detected, sidecar):
        return sidecar
    return detected or "unknown"


def conflict(sidecar: str | None, detected: str | None) -> str | None:
    """A sentence when a sidecar and the file name different families (SD1.5 and SDXL, Pony
    and Illustrious), None when they agree or one only says less than the other."""
    known = {code for code in (sidecar, detected) if code and code != "unknown"}
    if len(known) < 2 or refines(detected, sidecar) or refines(sidecar, detected):
        return None
    return f"the file says {label(detected)}, a sidecar says {label(sidecar)}"
