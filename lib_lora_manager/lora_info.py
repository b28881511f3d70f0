"""Everything we learn about a LoRA from its safetensors header alone.

Base model: the training metadata first (kohya ``ss_base_model_version``, ModelSpec
``modelspec.architecture``, ``ss_v2``), with the training checkpoint's name telling Pony and
Illustrious (SDXL architectures) apart from SDXL; then the tensor names and shapes. When the
keys prove another architecture than the metadata claims (some trainers write wrong values),
the keys win.

Runs once per file during scans, after the header parse, so key analysis never loops over the
keys in Python: two C-level passes collect the distinct heads and tails of the names, and the
few shapes it needs come from direct lookups of well-known names.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter

from .base_models import family_code
from .fields import split_trigger_words
from .safetensors_header import Header

try:
    import orjson
except ImportError:  # the standard library parses the JSON held in metadata values
    orjson = None

MAX_METADATA_VALUE_BYTES = 64 * 1024
MAX_METADATA_KEY_CHARS = 256
MAX_THUMBNAIL_BYTES = 2 * 1024 * 1024
MAX_SUGGESTIONS = 30
_MAX_TEXT = 1024  # single-line fields (title, names, …)
_MAX_TAG = 200

ADAPTER_TYPES = ("lora", "locon", "loha", "lokr", "dora", "ia3", "oft", "boft", "glora", "full", "unknown")


@dataclass
class LoraInfo:
    base_model: str = "unknown"  # family code from base_models
    base_model_source: str = "none"  # "metadata", "keys" or "none"
    adapter_type: str = "unknown"  # one of ADAPTER_TYPES
    network_module: str | None = None
    network_dim: int | None = None
    network_alpha: float | None = None
    title: str | None = None  # modelspec.title, else ss_output_name, else the file's stem
    output_name: str | None = None
    training_model: str | None = None
    resolution: str | None = None  # "WxH"
    epochs: int | None = None
    steps: int | None = None
    trigger_phrase: str | None = None
    trigger_suggestions: list[tuple[str, int]] = field(default_factory=list)
    architecture: str | None = None
    thumbnail: tuple[str, bytes] | None = None  # (mime, image bytes)
    has_text_encoder: bool = False
    tensor_count: int = 0
    metadata: dict[str, str] = field(default_factory=dict)  # bounded for storage


def extract(header: Header, filename: str = "") -> LoraInfo:
    """Derive a LoraInfo from a validated header; never raises for odd metadata values."""
    return extract_with(header.metadata, key_facts(header.tensors), filename)


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What the tensor names and shapes say: the same for every file holding these tensors, so a
    scan works them out once per layout (safetensors_header.Layouts) and reuses them."""

    proven_family: str | None  # a family the network proves (block names, context width)
    hinted_family: str | None  # weaker evidence, for files without cross-attention layers
    adapter: str  # from the keys alone; "unknown" when they do not say
    ranks: dict[tuple[str, ...], int | None]  # rank by the down-projection suffixes it was read from
    has_text_encoder: bool
    tensor_count: int


def key_facts(tensors: dict) -> KeyFacts:
    keys = _KeyIndex(tensors)
    adapter = _adapter_from_index(keys)
    # The metadata can name the adapter only when the keys do not (_adapter_type); then any
    # kind's rank may be asked for, else only that of the kind the keys show (locon: same names).
    wanted = set(_RANK_SUFFIXES.values()) if adapter == "unknown" else {_RANK_SUFFIXES.get(adapter)} - {None}
    proven = _proven_family(keys)
    return KeyFacts(
        proven_family=proven,
        hinted_family=None if proven else _hinted_family(keys),  # only read when nothing is proven
        adapter=adapter,
        ranks={suffixes: _rank_from_keys(tensors, suffixes) for suffixes in wanted},
        has_text_encoder=keys.has_text_encoder(),
        tensor_count=len(tensors),
    )


def extract_with(md: dict[str, str], keys: KeyFacts, filename: str = "") -> LoraInfo:
    """A LoraInfo from a header's metadata and the facts of its tensors (key_facts)."""
    family, source = _base_model(md, keys)
    adapter = _adapter_type(keys.adapter, md)
    # The tensors' rank is the truth; ss_network_dim goes stale when LoRAs are resized.
    dim = keys.ranks.get(_RANK_SUFFIXES.get(adapter)) or _int(md.get("ss_network_dim"))
    return LoraInfo(
        base_model=family,
        base_model_source=source,
        adapter_type=adapter,
        network_module=_text(md, "ss_network_module"),
        network_dim=dim,
        network_alpha=_float(md.get("ss_network_alpha")),
        title=_text(md, "modelspec.title") or _text(md, "ss_output_name") or _stem(filename),
        output_name=_text(md, "ss_output_name"),
        training_model=_text(md, "ss_sd_model_name"),
        resolution=_resolution(md.get("ss_resolution")) or _resolution(md.get("modelspec.resolution")),
        epochs=_int(md.get("ss_epoch")) or _int(md.get("ss_num_epochs")),
        steps=_int(md.get("ss_steps")) or _int(md.get("ss_max_train_steps")),
        trigger_phrase=_text(md, "modelspec.trigger_phrase"),
        trigger_suggestions=trigger_suggestions(md),
        architecture=_text(md, "modelspec.architecture"),
        thumbnail=decode_thumbnail(md.get("modelspec.thumbnail")),
        has_text_encoder=keys.has_text_encoder,
        tensor_count=keys.tensor_count,
        metadata=bounded_metadata(md),
    )


# --- key analysis -------------------------------------------------------------------------

_HEAD = itemgetter(slice(0, 24))
_TAIL = itemgetter(slice(-16, None))
_LONG_TAIL = itemgetter(slice(-40, None))
# Heads of kohya SD/SDXL UNet and text-encoder names: no transformer family can match these.
_KOHYA_SD_HEADS = ("lora_unet_down_b", "lora_unet_up_b", "lora_unet_mid_b", "lora_unet_input_b",
                   "lora_unet_output_b", "lora_unet_middle_b")


class _KeyIndex:
    """Distinct name heads (24 chars) and tails (16 chars), joined for fast ``in`` tests.

    Kohya/LyCORIS/PEFT names put the format and model part first and the adapter part last;
    an SDXL LoRA's 2,166 names reduce to 6 heads and ~30 tails, collected by C-level passes.
    The longer tails that tell transformer families apart are collected only when needed.
    """

    __slots__ = ("tensors", "heads", "tails", "_long")

    def __init__(self, tensors: dict):
        self.tensors = tensors
        self.heads = _joined(map(_HEAD, tensors))
        self.tails = _joined(map(_TAIL, tensors))
        self._long: str | None = None

    def head(self, *needles: str) -> bool:
        return any(n in self.heads for n in needles)

    def tail(self, *needles: str) -> bool:
        return any(n in self.tails for n in needles)

    def long_tail(self, *needles: str) -> bool:
        if self._long is None:
            self._long = _joined(map(_LONG_TAIL, self.tensors))
        return any(n in self._long for n in needles)

    def kohya_sd(self) -> bool:
        return self.head(*_KOHYA_SD_HEADS) or (self.head("lora_te") and not self.head("lora_unet_"))

    def has_text_encoder(self) -> bool:
        return self.head("lora_te", "text_encoder", "\nte_", "\nte1", "\nte2", "text_model")

    def shape(self, name: str) -> list[int] | None:
        entry = self.tensors.get(name)
        return entry["shape"] if entry else None

    def first_shape(self, names: Iterable[str]) -> list[int] | None:
        for name in names:
            entry = self.tensors.get(name)
            if entry:
                return entry["shape"]
        return None

    def find(self, suffixes: tuple[str, ...]) -> str | None:
        """First name ending with one of ``suffixes`` (a Python loop; only for rare layouts)."""
        for name in self.tensors:
            if name.endswith(suffixes):
                return name
        return None


def _joined(parts: Iterable[str]) -> str:
    return "\n" + "\n".join(set(parts)) + "\n"


def adapter_type_from_keys(keys: Iterable[str] | dict) -> str:
    """Adapter kind from tensor names (and, for a dict of header entries, shapes)."""
    tensors = keys if isinstance(keys, dict) else {k: {"shape": []} for k in keys}
    return _adapter_from_index(_KeyIndex(tensors))


def base_model_from_keys(tensors: dict) -> str | None:
    """Family code proven by tensor names and shapes (header entries), or None."""
    return _base_from_index(_KeyIndex(tensors))


_LORA_TAILS = ("lora_down.weight", "lora_up.weight", ".lora_A.", ".lora_B.", ".down.weight", ".up.weight")
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".down.weight")
# Convolutions with kernels over 1x1 live in ResNet and resampling layers: kohya's names for
# them (SD1/SD2 in diffusers naming, SDXL in SGM naming), looked up directly.
_KOHYA_CONVS = tuple(
    [f"lora_unet_{b}_resnets_{i}_{c}" for b in ("down_blocks_0", "down_blocks_1", "down_blocks_2",
                                               "down_blocks_3", "mid_block", "up_blocks_0", "up_blocks_1",
                                               "up_blocks_2", "up_blocks_3")
     for i in range(3) for c in ("conv1", "conv2")]
    + [f"lora_unet_down_blocks_{i}_downsamplers_0_conv" for i in range(3)]
    + [f"lora_unet_up_blocks_{i}_upsamplers_0_conv" for i in range(3)]
    + [f"lora_unet_{b}_{c}" for b in ("input_blocks_1_0", "input_blocks_2_0", "input_blocks_4_0",
                                      "input_blocks_5_0", "input_blocks_7_0", "input_blocks_8_0",
                                      "middle_block_0", "middle_block_2",
                                      *(f"output_blocks_{i}_0" for i in range(9)))
       for c in ("in_layers_2", "out_layers_3")]
    + ["lora_unet_input_blocks_3_0_op", "lora_unet_input_blocks_6_0_op",
       "lora_unet_output_blocks_2_2_conv", "lora_unet_output_blocks_5_2_conv"]
)
_CONV_HINTS = ("conv", "in_layers", "out_layers", "_op.", ".op.")


def _adapter_from_index(k: _KeyIndex) -> str:
    if k.tail("dora_scale", "magnitude"):
        return "dora"
    if k.tail(".lokr_w1", ".lokr_w2"):
        return "lokr"
    if k.tail(".hada_w1_a"):
        return "loha"
    if k.tail(".a1.weight") and k.tail(".b1.weight"):
        return "glora"
    if k.tail(".oft_blocks"):
        name = k.find((".oft_blocks",))
        shape = k.shape(name) if name else None
        return "boft" if shape is not None and len(shape) == 4 else "oft"
    if k.tail(".boft_R"):
        return "boft"
    if k.tail(".oft_diag", ".oft_r", ".oft_R"):
        return "oft"
    if k.tail(".on_input", ".ia3_l"):
        return "ia3"
    if k.tail(*_LORA_TAILS):
        return "locon" if _has_spatial_conv(k) else "lora"
    if k.tail(".diff\n", ".diff_b\n"):
        return "full"
    return "unknown"


# LyCORIS ``algo`` (ss_network_args) and kohya network modules -> adapter type.
_ALGOS = {"lora": "lora", "locon": "locon", "loha": "loha", "lokr": "lokr", "ia3": "ia3",
          "dylora": "lora", "glora": "glora", "full": "full", "diag-oft": "oft", "oft": "oft",
          "boft": "boft", "dora": "dora"}


def _adapter_type(from_keys: str, md: dict[str, str]) -> str:
    """The keys decide; the training metadata only names what they cannot show (a LyCORIS
    LoCon whose conv layers were left out still calls itself LoCon) or fills in for unknown."""
    declared = _declared_adapter(md)
    if from_keys == "lora" and declared == "locon":
        return "locon"
    return from_keys if from_keys != "unknown" else declared or "unknown"


def _declared_adapter(md: dict[str, str]) -> str | None:
    module = md.get("ss_network_module", "").strip().lower()
    if not module:
        return None
    if "lycoris" in module:
        raw_args = md.get("ss_network_args")
        args = _json_object(raw_args)
        if raw_args and not args:
            return None  # arguments we cannot read name no algorithm
        if str(args.get("dora_wd", "")).lower() == "true":
            return "dora"
        return _ALGOS.get(str(args.get("algo", "lora")).strip().lower())
    if module.endswith(".oft"):
        return "oft"
    if "lora" in module:  # networks.lora, networks.dylora, networks.lora_flux, …
        return "lora"
    return None


def _json_object(raw: str | None) -> dict:
    if raw is not None and len(raw) > MAX_METADATA_VALUE_BYTES:
        return {}
    return _json_object_unbounded(raw)


def _json_object_unbounded(raw: str | None, *, exact: bool = False) -> dict:
    """A JSON object held in a metadata string (bounded by the header limit), or {}.

    orjson first; what it refuses (NaN, lone surrogates, deep nesting) goes to ``json``, which
    accepts more. ``exact``: ``json`` only, for callers that must tell integers beyond 64 bits
    (orjson makes them floats) from floats."""
    if not raw or raw[:1] != "{":
        return {}
    if orjson is not None and not exact:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            return value if type(value) is dict else {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _has_spatial_conv(k: _KeyIndex) -> bool:
    """Whether some LoRA down projection is a convolution with a kernel over 1x1."""
    if k.kohya_sd():
        names: Iterable[str] = (m + ".lora_down.weight" for m in _KOHYA_CONVS)
    elif k.long_tail(*_CONV_HINTS):  # other namings: look through the names once
        names = (n for n in k.tensors if n.endswith(_DOWN_SUFFIXES) and any(h in n for h in _CONV_HINTS))
    else:
        return False
    for name in names:
        shape = k.shape(name)
        if shape is not None and len(shape) == 4 and (shape[2] > 1 or shape[3] > 1):
            return True
    return False


_RANK_SUFFIXES = {"lora": _DOWN_SUFFIXES, "locon": _DOWN_SUFFIXES, "dora": _DOWN_SUFFIXES,
                  "loha": (".hada_w1_b",), "glora": (".a1.weight",)}


def _rank_from_keys(tensors: dict, suffixes: tuple[str, ...]) -> int | None:
    """Rank of a low-rank file: rows of its last down projection (a name ending with one of
    ``suffixes``). Searched from the end, where weights sort after the F32 alphas, so this
    usually stops within three names."""
    for name in reversed(tensors):
        if name.endswith(suffixes):
            shape = tensors[name]["shape"]
            return shape[0] if shape and shape[0] > 0 else None
    return None


# Cross-attention context width -> family: CLIP-L (SD1), OpenCLIP-H (SD2), L+G (SDXL).
_CONTEXT_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_TE_HIDDEN_FAMILY = {768: "sd1", 1024: "sd2"}
_SD_ATTENTIONS = tuple(
    [f"{b}_attentions_{i}" for b in ("down_blocks_0", "down_blocks_1", "down_blocks_2", "up_blocks_1",
                                     "up_blocks_2", "up_blocks_3", "up_blocks_0") for i in range(3)]
    + ["mid_block_attentions_0"]
    + [f"input_blocks_{i}_1" for i in (1, 2, 4, 5, 7, 8)] + ["middle_block_1"]
    + [f"output_blocks_{i}_1" for i in range(12)]
)
# The cross-attention key projection (its input is the text context) in kohya naming.
_KOHYA_CTX = tuple(f"lora_unet_{a}_transformer_blocks_0_attn2_to_k" for a in _SD_ATTENTIONS)
# Other namings (PEFT, diffusers attention processors), found by a scan when present.
_CTX_SUFFIXES = ("attn2.to_k.lora_A.weight", "attn2.to_k.lora_down.weight", "attn2.to_k.lora.down.weight",
                 "attn2.processor.to_k_lora.down.weight", "attn2_to_k.lora_A.weight")
_TE_MODULES = tuple(f"{p}text_model_encoder_layers_{i}_self_attn_k_proj" for p in ("lora_te_",) for i in range(2))
# Tensors whose shape[1] is the wrapped layer's input width, per adapter kind.
_IN_WIDTH_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".hada_w1_b", ".a1.weight", ".diff",
                      ".lora.down.weight")


def _in_width(tensors: dict, module: str) -> int | None:
    """Input width of the layer ``module`` wraps, from whichever adapter tensors it has."""
    for suffix in _IN_WIDTH_SUFFIXES:
        entry = tensors.get(module + suffix)
        if entry:
            shape = entry["shape"]
            return shape[1] if len(shape) >= 2 else None
    w1 = tensors.get(module + ".lokr_w1")
    w2 = tensors.get(module + ".lokr_w2") or tensors.get(module + ".lokr_w2_b")
    if w1 and w2 and len(w1["shape"]) >= 2 and len(w2["shape"]) >= 2:
        return w1["shape"][1] * w2["shape"][1]  # a Kronecker product: widths multiply
    return None


def _out_width(tensors: dict, module: str) -> int | None:
    """Output width for kinds that only keep that side (IA3 scales, OFT rotations)."""
    entry = tensors.get(module + ".weight")
    if entry and len(entry["shape"]) == 1:
        return entry["shape"][0]
    entry = tensors.get(module + ".oft_blocks")
    if entry and len(entry["shape"]) >= 3:
        return entry["shape"][-3] * entry["shape"][-1]  # blocks x block size
    return None


def _base_from_index(k: _KeyIndex) -> str | None:
    return _proven_family(k) or _hinted_family(k)


def _proven_family(k: _KeyIndex) -> str | None:
    """A family the network itself proves: transformer block names, or the UNet's
    cross-attention context width (768 SD1, 1024 SD2, 2048 SDXL)."""
    dit = _dit_family(k)
    if dit:
        return dit
    if k.head("unet", "down_blocks", "up_blocks", "mid_block", "input_blocks", "output_blocks",
              "middle_block", "diffusion_model"):
        return _CONTEXT_FAMILY.get(_context_width(k) or 0)
    return None


def _hinted_family(k: _KeyIndex) -> str | None:
    """Weaker evidence, for files without cross-attention layers."""
    if k.head("lora_te2_", "text_encoder_2", "te2."):
        return "sdxl"  # two CLIP encoders and no transformer blocks
    if k.head("input_blocks", "output_blocks", "middle_block") and k.head("lora_unet_"):
        return "sdxl"  # kohya uses the SGM block names only for SDXL
    if k.head("lora_te_"):  # a lone CLIP encoder: its width tells SD1 from SD2
        for module in _TE_MODULES:
            width = _in_width(k.tensors, module) or _out_width(k.tensors, module)
            if width:
                return _TE_HIDDEN_FAMILY.get(width)
    return None


def _dit_family(k: _KeyIndex) -> str | None:
    """Transformer families, told apart by block names that only they use."""
    if k.kohya_sd():
        return None
    if k.head("double_b", "single_b"):
        if k.long_tail("img_mlp_fc1", "img_mod_linear", "txt_mlp_fc1", "individual_token_refiner"):
            return "hunyuan_video"  # same blocks as Flux, its own layer names
        return "flux"
    if k.head("joint_bl"):
        return "sd3"
    if k.head("single_trans"):
        return "flux"  # diffusers Flux
    if k.long_tail("img_mlp", "txt_mlp", "img_mod"):
        return "qwen"
    if k.long_tail("cross_attn_k", "cross_attn.k", "cross_attn_v", "cross_attn.v"):
        return "wan"
    if k.head("context_re", "noise_re") or k.long_tail("context_refiner", "noise_refiner"):
        return "zimage"
    if k.head("transformer", "lora_transformer") and k.long_tail("ff_context", "add_q_proj", "add_k_proj"):
        # diffusers MMDiT without single blocks: SD3 unless the width says Flux (3072)
        q = k.first_shape(("transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
                           "lora_transformer_transformer_blocks_0_attn_to_q.lora_down.weight"))
        return "flux" if q is not None and len(q) == 2 and q[1] == 3072 else "sd3"
    return None


def _context_width(k: _KeyIndex) -> int | None:
    for module in _KOHYA_CTX:
        width = _in_width(k.tensors, module)
        if width:
            return width
    if not k.kohya_sd() and k.long_tail("attn2"):
        name = k.find(_CTX_SUFFIXES)
        shape = k.shape(name) if name else None
        return shape[1] if shape is not None and len(shape) >= 2 else None
    return None


# --- metadata -----------------------------------------------------------------------------

# Prefix tables, tried in order; None stops the search (a known family we do not list).
_VERSION_PREFIXES = (
    ("sd_v1", "sd1"), ("sd_v2", "sd2"), ("sdxl", "sdxl"), ("sd3", "sd3"), ("sd_3", "sd3"),
    ("flux2", "flux2"), ("flux_2", "flux2"), ("flux", "flux"), ("chroma", "chroma"),
    ("stable_cascade", "sc"), ("hunyuan_video", "hunyuan_video"), ("hunyuan_image", None),
    ("wan", "wan"), ("qwen", "qwen"), ("zimage", "zimage"), ("z_image", "zimage"),
    ("lumina", None), ("anima", None),
)
_ARCH_PREFIXES = (
    ("stable-diffusion-v1", "sd1"), ("stable-diffusion-v2", "sd2"), ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-3", "sd3"), ("stable-diffusion-v3", "sd3"), ("flux-2", "flux2"),
    ("flux.2", "flux2"), ("flux2", "flux2"), ("flux", "flux"), ("chroma", "chroma"),
    ("stable-cascade", "sc"), ("hunyuan-video", "hunyuan_video"), ("wan", "wan"), ("qwen", "qwen"),
    ("z-image", "zimage"), ("zimage", "zimage"),
)
# Families that keys cannot tell apart from the one they report.
_KEY_ALIASES = {"sdxl": ("sdxl", "pony", "illustrious"), "flux": ("flux", "chroma", "flux2")}


def _base_model(md: dict[str, str], keys: KeyFacts) -> tuple[str, str]:
    meta = _family_from_metadata(md)
    hint = _checkpoint_family(md)
    if hint and meta in (None, "sdxl"):
        meta = hint
    proven = keys.proven_family
    if meta and (proven is None or meta in _KEY_ALIASES.get(proven, (proven,))):
        return meta, "metadata"
    family = proven or keys.hinted_family  # proven overrides metadata that contradicts it
    if family:
        return family, "keys"
    weak = _family_from_model_name(md)
    if weak:
        return weak, "metadata"
    return "unknown", "none"


def _family_from_metadata(md: dict[str, str]) -> str | None:
    version = md.get("ss_base_model_version", "").strip().lower()
    if version:
        found, code = _prefixed(version, _VERSION_PREFIXES)
        if found:
            return code
        if "klein" in version:
            return "flux2"
        code = family_code(version)
        if code and code != "unknown":
            return code
    arch = md.get("modelspec.architecture", "").strip().lower().split("/", 1)[0]
    if arch:
        found, code = _prefixed(arch, _ARCH_PREFIXES)
        if found:
            return code
    if md.get("ss_v2", "").strip() == "True":
        return "sd2"
    return None


def _prefixed(text: str, table: tuple[tuple[str, str | None], ...]) -> tuple[bool, str | None]:
    for prefix, code in table:
        if text.startswith(prefix):
            return True, code
    return False, None


def _model_basename(md: dict[str, str]) -> str:
    name = md.get("ss_sd_model_name", "")[:_MAX_TEXT]
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower()


def _checkpoint_family(md: dict[str, str]) -> str | None:
    """Pony and Illustrious/NoobAI are SDXL underneath; only the training checkpoint's name
    tells them apart (the path's folders are ignored: "/home/pony/…" says nothing)."""
    name = _model_basename(md)
    if "pony" in name:
        return "pony"
    if "illustrious" in name or "noob" in name:
        return "illustrious"
    return None


def _family_from_model_name(md: dict[str, str]) -> str | None:
    code = family_code(_model_basename(md).rsplit(".", 1)[0])
    return code if code and code != "unknown" else None


# --- fields -------------------------------------------------------------------------------


def _text(md: dict[str, str], key: str, limit: int = _MAX_TEXT) -> str | None:
    value = md.get(key)
    if value is None:
        return None
    value = " ".join(value[: limit * 2].split())[:limit]  # one line; kohya writes "None" for unset
    return value if value and value != "None" else None


def _stem(filename: str) -> str | None:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return stem[:_MAX_TEXT] or None


def _int(value: str | None) -> int | None:
    """A positive count from text like "8", "8.0"; None for "None", "", garbage or huge (2**31 and
    more is no rank, epoch or step count, and would not fit the column)."""
    if not value or len(value) > 30:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0 or number >= 2**31 or number != int(number):
        return None
    return int(number)


def _float(value: str | None) -> float | None:
    if not value or len(value) > 40:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _resolution(value: str | None) -> str | None:
    """"(512, 768)", "[1024,1024]", "1024x1024" or "768" -> "WxH"."""
    if not value or len(value) > 40:
        return None
    parts = [p for p in value.strip("()[] ").replace("x", ",").split(",") if p.strip()]
    numbers = [_int(p.strip()) for p in parts]
    if not numbers or None in numbers or len(numbers) > 2:
        return None
    w, h = numbers[0], numbers[-1]
    return f"{w}x{h}"


def trigger_suggestions(md: dict[str, str]) -> list[tuple[str, int]]:
    """Tags ranked by how often they captioned the training images (ss_tag_frequency, summed
    over dataset folders; top 30), the ModelSpec trigger phrase first if there is one."""
    counts = _tag_counts(md.get("ss_tag_frequency"))
    ranked = counts.items()
    if len(counts) > MAX_SUGGESTIONS:  # only tags counted as often as the 30th can rank: C-level passes
        cut = heapq.nlargest(MAX_SUGGESTIONS, counts.values())[-1]
        ranked = compress(ranked, map(cut.__le__, counts.values()))
    ranked = sorted(ranked)  # by tag, then (stable) by count, highest first
    ranked.sort(key=itemgetter(1), reverse=True)
    del ranked[MAX_SUGGESTIONS:]
    phrase = _text(md, "modelspec.trigger_phrase", _MAX_TAG)
    if phrase:  # split as trigger words are: "ryuu, dragon horns" suggests two words
        words = list(dict.fromkeys(split_trigger_words(phrase)))
        ranked = [(w, counts.get(w, 0)) for w in words] + [t for t in ranked if t[0] not in words]
        ranked = ranked[:MAX_SUGGESTIONS]
    return ranked


def _tag_counts(raw: str | None, *, exact: bool = False) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tags in _json_object_unbounded(raw, exact=exact).values():
        if not isinstance(tags, dict) or not tags:
            continue
        if _clean_counts(tags):  # the common case, checked by C-level passes
            if not counts:
                counts = dict(tags)
                continue
            for tag, n in tags.items():
                counts[tag] = counts.get(tag, 0) + n
            continue
        for tag, n in tags.items():
            if type(n) is float and not exact:  # maybe an integer too big for orjson: count as json reads it
                return _tag_counts(raw, exact=True)
            tag = " ".join(tag.split())
            if tag and len(tag) <= _MAX_TAG and type(n) is int and n > 0:
                counts[tag] = counts.get(tag, 0) + n
    return counts


def _clean_counts(tags: dict) -> bool:
    """Whether every tag is already one line of single-spaced text (as ``" ".join(tag.split())``
    leaves it) of 1 to _MAX_TAG characters, and every count a positive int."""
    counts = tags.values()
    if set(map(type, counts)) != {int} or min(counts) <= 0:
        return False
    if min(map(len, tags)) == 0 or max(map(len, tags)) > _MAX_TAG:
        return False
    joined = "\0".join(tags)  # NUL is no whitespace: a space next to it ends or starts a tag
    return " \0" not in joined and "\0 " not in joined and " ".join(joined.split()) == joined


_IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                     (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def decode_thumbnail(uri: str | None) -> tuple[str, bytes] | None:
    """(mime, bytes) from a ``data:image/…;base64,…`` URI; None if absent, malformed, not a
    PNG/JPEG/WebP/GIF image, or larger than MAX_THUMBNAIL_BYTES decoded."""
    if not uri or not uri.startswith("data:"):
        return None
    head, sep, payload = uri.partition(",")
    if not sep or ";base64" not in head.lower():
        return None
    if len(payload) > (MAX_THUMBNAIL_BYTES + 2) // 3 * 4 + 64:  # checked before decoding
        return None
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(data) > MAX_THUMBNAIL_BYTES:
        return None
    mime = _image_mime(data)
    return (mime, data) if mime else None


def _image_mime(data: bytes) -> str | None:
    for signature, mime in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def bounded_metadata(md: dict[str, str]) -> dict[str, str]:
    """A copy safe to store: the thumbnail dropped (kept as an image instead), absurdly long
    keys dropped, and each value cut to 64 KiB of UTF-8 with a marker saying so."""
    out: dict[str, str] = {}
    for key, value in md.items():
        if key == "modelspec.thumbnail" or len(key) > MAX_METADATA_KEY_CHARS:
            continue
        out[key] = value if len(value) * 4 <= MAX_METADATA_VALUE_BYTES else _cut(value)
    return out


def _cut(value: str) -> str:
    data = value.encode("utf-8")
    if len(data) <= MAX_METADATA_VALUE_BYTES:
        return value
    marker = f" …[cut: {len(data):,} bytes in the file]"
    keep = MAX_METADATA_VALUE_BYTES - len(marker.encode("utf-8"))
    return data[:keep].decode("utf-8", "ignore") + marker
