"""Prompts in SDNext's syntax: ``<lora:NAME:W>`` tokens in, compositions out, and infotext.

SDNext's parser (modules/extra_networks.py) finds ``<type:args>`` with args split on ':'; an
argument with one '=' is named (``te=``, ``unet=``, ``in=``, ``mid=``, ``out=``, ``dyn=``), the
others are positional (NAME, then the weight). The text-encoder weight defaults to the weight,
the UNet weight to the text-encoder weight. Tokens stay in the prompt text SDNext records, so
parsing a prompt back gives the LoRAs and weights it used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .naming import format_weight

_NETWORK = re.compile(r"<(\w+):([^>]+)>")
_SPACES = re.compile(r"[ \t]{2,}")
_SEPARATORS = re.compile(r"\s*(,\s*){2,}")
_SPACE_BEFORE_COMMA = re.compile(r"\s+,")


@dataclass
class LoraRef:
    """One ``<lora:...>`` token as written in a prompt."""

    name: str
    weight: float | None = None  # None: SDNext's default multiplier
    te: float | str | None = None  # a float, or a step schedule such as "0.2@0,1@0.5"
    unet: float | str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # in=, mid=, out=, dyn=, module=
    text: str = ""

    @property
    def te_weight(self) -> float | str | None:
        return self.te if self.te is not None else self.weight

    @property
    def unet_weight(self) -> float | str | None:
        return self.unet if self.unet is not None else self.te_weight


def _number(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value.strip()  # a step schedule: kept as written


def parse_token(args: str, text: str = "") -> LoraRef | None:
    """The arguments of one ``<lora:ARGS>`` token; None when there is no name."""
    positional, named = [], {}
    for item in args.split(":"):
        parts = item.split("=", 2)
        if len(parts) == 2:
            named[parts[0].strip()] = parts[1].strip()
        else:
            positional.append(item.strip())
    if not positional or not positional[0]:
        return None
    weight = _number(positional[1]) if len(positional) > 1 and positional[1] else None
    return LoraRef(
        name=positional[0],
        weight=weight if isinstance(weight, float) else None,
        te=_number(named.pop("te")) if "te" in named else None,
        unet=_number(named.pop("unet")) if "unet" in named else None,
        extra=named,
        text=text,
    )


def extract_loras(prompt: str) -> tuple[str, list[LoraRef]]:
    """Split a prompt into its text without LoRA tokens and the tokens, in order."""
    refs: list[LoraRef] = []

    def take(match: re.Match) -> str:
        if match.group(1) != "lora":
            return match.group(0)  # other extra networks (styles) stay in the text
        ref = parse_token(match.group(2), match.group(0))
        if ref is None:
            return match.group(0)
        refs.append(ref)
        return ""

    text = _NETWORK.sub(take, prompt or "")
    return tidy(text), refs


def tidy(text: str) -> str:
    """Collapse the separators and spaces that removing tokens leaves behind."""
    text = _SEPARATORS.sub(", ", text)
    text = _SPACE_BEFORE_COMMA.sub(",", text)
    text = _SPACES.sub(" ", text)
    return text.strip().strip(",").strip()


def format_lora(name: str, weight: float = 1.0, te: float | None = None, unet: float | None = None) -> str:
    """A token SDNext parses back to the same weights (separate te/unet only when they differ)."""
    if te is None and unet is None:
        return f"<lora:{name}:{format_weight(weight)}>"
    te_value = weight if te is None else te
    unet_value = te_value if unet is None else unet
    return f"<lora:{name}:te={format_weight(te_value)}:unet={format_weight(unet_value)}>"


def set_lora_weight(prompt: str, name: str, weight: float | None) -> str:
    """The prompt with every ``<lora:NAME…>`` token of ``name`` set to ``weight`` (separate te/unet
    weights collapse to it), or removed when ``weight`` is None: strength sweeps and A/B runs."""
    found = False

    def swap(match: re.Match) -> str:
        nonlocal found
        ref = parse_token(match.group(2)) if match.group(1) == "lora" else None
        if ref is None or ref.name != name:
            return match.group(0)
        found = True
        return "" if weight is None else format_lora(name, weight)

    out = _NETWORK.sub(swap, prompt or "")
    if not found:
        raise ValueError(f"the prompt has no <lora:{name}:…> token")
    return tidy(out) if weight is None else out


@dataclass
class ComposedLora:
    """A LoRA in a composition: its prompt name, weights, and the trigger words switched on."""

    name: str
    weight: float = 1.0
    te: float | None = None
    unet: float | None = None
    enabled: bool = True
    triggers: list[str] = field(default_factory=list)
    lora_id: int | None = None


def compose(prompt: str, loras: list[ComposedLora]) -> str:
    """The base prompt, then the enabled LoRAs' trigger words, then their tokens.

    Trigger words already in the prompt are not repeated; tokens come last so the readable
    part of the prompt stays first, as SDNext's own networks panel writes them."""
    base = tidy(prompt or "")
    present = base.lower()
    words: list[str] = []
    tokens: list[str] = []
    for lora in loras:
        if not lora.enabled:
            continue
        for word in lora.triggers:
            word = word.strip()
            if word and word.lower() not in present and word.lower() not in (w.lower() for w in words):
                words.append(word)
        tokens.append(format_lora(lora.name, lora.weight, lora.te, lora.unet))
    text = ", ".join(part for part in [base, *words] if part)
    return " ".join(part for part in [text, *tokens] if part)


# --- infotext -----------------------------------------------------------------------------------

_PARAM = re.compile(r'\s*([\w][\w \-/+.()]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_infotext(text: str) -> dict:
    """SDNext/A1111 generation parameters: {"Prompt", "Negative prompt", and each "Key": value}.

    The last line holding ``Steps:`` (or any ``key: value`` list) carries the parameters; quoted
    values are JSON strings; numbers become int/float."""
    lines = (text or "").strip().splitlines()
    params: dict = {}
    if lines and _looks_like_params(lines[-1]):
        for key, value in _PARAM.findall(lines.pop()):
            params[key.strip()] = _param_value(value.strip())
    prompt_lines, negative_lines, target = [], [], None
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if target is negative_lines else prompt_lines).append(line)
    return {"Prompt": "\n".join(prompt_lines).strip(), "Negative prompt": "\n".join(negative_lines).strip(), **params}


def _looks_like_params(line: str) -> bool:
    return len(_PARAM.findall(line)) >= 2 and ("Steps:" in line or "Seed:" in line or "Sampler:" in line)


def _param_value(value: str):
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value[1:-1]
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


# GenerationRequest fields <-> the infotext keys SDNext's txt2img paste fields read
# (modules/ui_txt2img.py); Size and Batch carry two fields each
_INFOTEXT_KEYS = {"steps": "Steps", "sampler_name": "Sampler", "seed": "Seed", "cfg_scale": "CFG scale",
                  "hr_scale": "Hires scale", "hr_upscaler": "Hires upscaler", "hr_second_pass_steps": "Hires steps",
                  "denoising_strength": "Hires strength"}
_HIRES = ("hr_scale", "hr_upscaler", "hr_second_pass_steps", "denoising_strength")


def write_infotext(prompt: str, negative: str, fields: dict[str, object]) -> str:
    """An infotext as SDNext writes one (modules/processing_info.py): the prompt, "Negative
    prompt: …" when there is one, then the ``key: value`` line. None, empty values and numbers
    ≤ -1 are left out; values holding ',', ':' or a newline are JSON-quoted."""
    kept = [f"{name}: {_quoted(value)}" for name, value in fields.items() if _kept(value)]
    parts = [(prompt or "").strip()]
    if (negative or "").strip():
        parts.append(f"Negative prompt: {negative.strip()}")
    if kept:
        parts.append(", ".join(kept))
    return "\n".join(parts)


def format_infotext(prompt: str, negative: str, params: dict) -> str:
    """An SDNext infotext for a prompt and GenerationRequest fields (what "paste" reads back);
    hires settings only appear with the second pass on."""
    fields: dict[str, object] = {name: params.get(key) for key, name in _INFOTEXT_KEYS.items()
                                 if params.get("enable_hr") or key not in _HIRES}
    if params.get("width") and params.get("height"):
        fields["Size"] = f"{int(params['width'])}x{int(params['height'])}"
    if params.get("n_iter", 1) > 1 or params.get("batch_size", 1) > 1:
        fields["Batch"] = f"{int(params.get('n_iter', 1))}x{int(params.get('batch_size', 1))}"
    if params.get("enable_hr"):
        fields["Second pass"] = True
    return write_infotext(prompt, negative, fields)


def infotext_parameters(fields: dict) -> dict:
    """GenerationRequest fields from parsed infotext keys (``parse_infotext``); unknown keys are
    ignored, values are not validated here."""
    out: dict = {}
    for key, name in _INFOTEXT_KEYS.items():
        if name in fields:
            out[key] = fields[name]
    for name, (first, second) in (("Size", ("width", "height")), ("Batch", ("n_iter", "batch_size"))):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(fields.get(name, "")))
        if match:
            out[first], out[second] = int(match.group(1)), int(match.group(2))
    # AUTOMATIC1111's names for the same settings
    for name, key in (("Hires upscale", "hr_scale"), ("Denoising strength", "denoising_strength")):
        if name in fields and key not in out:
            out[key] = fields[name]
    second = fields.get("Second pass", fields.get("Refine"))
    if second is not None:
        out["enable_hr"] = second is True or str(second).lower() == "true"
    elif any(key in out for key in _HIRES):
        out["enable_hr"] = True
    return out


def _kept(value: object) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, (int, float)) and not isinstance(value, bool) and value <= -1)


def _quoted(value: object) -> str:
    text = str(value)
    if isinstance(value, float) and text.endswith(".0"):
        text = text[:-2]
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text
