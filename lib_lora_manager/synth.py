"""Write real ``.safetensors`` LoRA files (and broken ones) for tests, the demo and benchmarks.

Files follow kohya sd-scripts: module names ``lora_unet_…``/``lora_te…_…`` with the real
layer shapes of each architecture, ``lora_down.weight``/``lora_up.weight`` in F16 and an F32
scalar ``alpha`` per module, ``ss_*`` and ``modelspec.*`` metadata, and the byte layout the
official ``safetensors`` library writes (sorted metadata, tensors ordered by alignment then
name, header padded with spaces to 8 bytes). ``data="sparse"`` leaves the data region as a
file hole, so thousands of realistically sized files cost almost no disk or time.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

# (module name without prefix, in features, out features, kind); kind: linear, conv1x1, conv3x3
Module = tuple[str, int, int, str]
TensorSpec = tuple[str, str, tuple[int, ...]]

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
FAMILIES = ("sd1", "sd2", "sdxl", "pony", "illustrious", "flux", "sd3")
ADAPTERS = ("lora", "locon", "loha", "lokr", "dora", "ia3", "oft", "boft", "glora", "full")
HOSTILE_KINDS = (
    "empty", "short", "truncated", "absurd_length", "invalid_json", "not_object", "deep_nesting",
    "non_utf8", "wrong_types", "bad_tensor_entry", "duplicate_keys", "duplicate_metadata_keys",
    "offsets_out_of_range",
)

# --- architectures ------------------------------------------------------------------------

_SD_DOWN = (("down_blocks_0", 320, 2), ("down_blocks_1", 640, 2), ("down_blocks_2", 1280, 2))
_SD_UP = (("up_blocks_1", 1280, 3), ("up_blocks_2", 640, 3), ("up_blocks_3", 320, 3))
# SDXL in the SGM names kohya uses: (block, channels, transformer depth)
_XL_ATTN = (("input_blocks_4_1", 640, 2), ("input_blocks_5_1", 640, 2),
            ("input_blocks_7_1", 1280, 10), ("input_blocks_8_1", 1280, 10),
            ("middle_block_1", 1280, 10),
            ("output_blocks_0_1", 1280, 10), ("output_blocks_1_1", 1280, 10),
            ("output_blocks_2_1", 1280, 10), ("output_blocks_3_1", 640, 2),
            ("output_blocks_4_1", 640, 2), ("output_blocks_5_1", 640, 2))
# SDXL res blocks: (block, in channels, out channels)
_XL_RES = (("input_blocks_1_0", 320, 320), ("input_blocks_2_0", 320, 320),
           ("input_blocks_4_0", 320, 640), ("input_blocks_5_0", 640, 640),
           ("input_blocks_7_0", 640, 1280), ("input_blocks_8_0", 1280, 1280),
           ("middle_block_0", 1280, 1280), ("middle_block_2", 1280, 1280),
           ("output_blocks_0_0", 2560, 1280), ("output_blocks_1_0", 2560, 1280),
           ("output_blocks_2_0", 1920, 1280), ("output_blocks_3_0", 1920, 640),
           ("output_blocks_4_0", 1280, 640), ("output_blocks_5_0", 960, 640),
           ("output_blocks_6_0", 960, 320), ("output_blocks_7_0", 640, 320),
           ("output_blocks_8_0", 640, 320))
_XL_RESAMPLE = (("input_blocks_3_0_op", 320), ("input_blocks_6_0_op", 640),
                ("output_blocks_2_2_conv", 1280), ("output_blocks_5_2_conv", 640))
# SD1/SD2 res blocks in diffusers names: (block, in channels, out channels)
_SD_RES = (("down_blocks_0_resnets_0", 320, 320), ("down_blocks_0_resnets_1", 320, 320),
           ("down_blocks_1_resnets_0", 320, 640), ("down_blocks_1_resnets_1", 640, 640),
           ("down_blocks_2_resnets_0", 640, 1280), ("down_blocks_2_resnets_1", 1280, 1280),
           ("down_blocks_3_resnets_0", 1280, 1280), ("down_blocks_3_resnets_1", 1280, 1280),
           ("mid_block_resnets_0", 1280, 1280), ("mid_block_resnets_1", 1280, 1280),
           ("up_blocks_0_resnets_0", 2560, 1280), ("up_blocks_0_resnets_1", 2560, 1280),
           ("up_blocks_0_resnets_2", 2560, 1280), ("up_blocks_1_resnets_0", 2560, 1280),
           ("up_blocks_1_resnets_1", 2560, 1280), ("up_blocks_1_resnets_2", 1920, 1280),
           ("up_blocks_2_resnets_0", 1920, 640), ("up_blocks_2_resnets_1", 1280, 640),
           ("up_blocks_2_resnets_2", 960, 640), ("up_blocks_3_resnets_0", 960, 320),
           ("up_blocks_3_resnets_1", 640, 320), ("up_blocks_3_resnets_2", 640, 320))
_SD_RESAMPLE = (("down_blocks_0_downsamplers_0_conv", 320), ("down_blocks_1_downsamplers_0_conv", 640),
                ("down_blocks_2_downsamplers_0_conv", 1280), ("up_blocks_0_upsamplers_0_conv", 1280),
                ("up_blocks_1_upsamplers_0_conv", 1280), ("up_blocks_2_upsamplers_0_conv", 640))

# text encoders: (kohya prefix, hidden size, MLP size, layers)
_CLIP_L = (768, 3072, 12)
_CLIP_H = (1024, 4096, 23)  # SD2 runs OpenCLIP ViT-H with its last layer dropped
_CLIP_G = (1280, 5120, 32)


def _transformer(base: str, ch: int, ctx: int, depth: int, proj: str, compact: bool) -> Iterator[Module]:
    """Modules kohya wraps in one Transformer2DModel (attention, feed-forward, projections)."""
    if not compact:
        yield f"{base}_proj_in", ch, ch, proj
    for d in range(1 if compact else depth):
        tb = f"{base}_transformer_blocks_{d}"
        if not compact:
            for m in ("to_q", "to_k", "to_v", "to_out_0"):
                yield f"{tb}_attn1_{m}", ch, ch, "linear"
        yield f"{tb}_attn2_to_q", ch, ch, "linear"
        yield f"{tb}_attn2_to_k", ctx, ch, "linear"
        yield f"{tb}_attn2_to_v", ctx, ch, "linear"
        yield f"{tb}_attn2_to_out_0", ch, ch, "linear"
        if not compact:
            yield f"{tb}_ff_net_0_proj", ch, ch * 8, "linear"  # GEGLU: two halves of 4*ch
            yield f"{tb}_ff_net_2", ch * 4, ch, "linear"
    if not compact:
        yield f"{base}_proj_out", ch, ch, proj


def _text_encoder(prefix: str, spec: tuple[int, int, int], compact: bool) -> Iterator[Module]:
    hidden, mlp, layers = spec
    for i in range(1 if compact else layers):
        base = f"{prefix}text_model_encoder_layers_{i}"
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield f"{base}_self_attn_{m}", hidden, hidden, "linear"
        if not compact:
            yield f"{base}_mlp_fc1", hidden, mlp, "linear"
            yield f"{base}_mlp_fc2", mlp, hidden, "linear"


def _sd_unet(ctx: int, proj: str, conv: bool, compact: bool) -> Iterator[Module]:
    for block, ch, n in _SD_DOWN:
        for i in range(n):
            yield from _transformer(f"{block}_attentions_{i}", ch, ctx, 1, proj, compact)
    yield from _transformer("mid_block_attentions_0", 1280, ctx, 1, proj, compact)
    for block, ch, n in () if compact else _SD_UP:
        for i in range(n):
            yield from _transformer(f"{block}_attentions_{i}", ch, ctx, 1, proj, compact)
    if conv:
        for name, cin, cout in _SD_RES[: 2 if compact else None]:
            yield from _res_block(name, cin, cout, ("conv1", "time_emb_proj", "conv2", "conv_shortcut"))
        for name, ch in _SD_RESAMPLE[: 1 if compact else None]:
            yield name, ch, ch, "conv3x3"


def _xl_unet(conv: bool, compact: bool) -> Iterator[Module]:
    for block, ch, depth in _XL_ATTN:
        if not (compact and block.startswith("output")):
            yield from _transformer(block, ch, 2048, depth, "linear", compact)
    if conv:
        for name, cin, cout in _XL_RES[: 2 if compact else None]:
            yield from _res_block(name, cin, cout, ("in_layers_2", "emb_layers_1", "out_layers_3", "skip_connection"))
        for name, ch in _XL_RESAMPLE[: 1 if compact else None]:
            yield name, ch, ch, "conv3x3"


def _res_block(name: str, cin: int, cout: int, names: tuple[str, str, str, str]) -> Iterator[Module]:
    conv1, emb, conv2, skip = names
    yield f"{name}_{conv1}", cin, cout, "conv3x3"
    yield f"{name}_{emb}", 1280, cout, "linear"
    yield f"{name}_{conv2}", cout, cout, "conv3x3"
    if cin != cout:
        yield f"{name}_{skip}", cin, cout, "conv1x1"


def _flux(compact: bool) -> Iterator[Module]:
    h = 3072
    for i in range(1 if compact else 19):
        for side in ("img", "txt"):
            yield f"double_blocks_{i}_{side}_attn_qkv", h, 3 * h, "linear"
            yield f"double_blocks_{i}_{side}_attn_proj", h, h, "linear"
            if not compact:
                yield f"double_blocks_{i}_{side}_mlp_0", h, 4 * h, "linear"
                yield f"double_blocks_{i}_{side}_mlp_2", 4 * h, h, "linear"
    for i in range(1 if compact else 38):
        if not compact:
            yield f"single_blocks_{i}_linear1", h, 3 * h + 4 * h, "linear"
        yield f"single_blocks_{i}_linear2", h + 4 * h, h, "linear"


def _sd3(compact: bool) -> Iterator[Module]:
    h, depth = 1536, 24  # SD3 medium
    for i in range(1 if compact else depth):
        for side in ("x_block", "context_block"):
            base = f"joint_blocks_{i}_{side}"
            yield f"{base}_attn_qkv", h, 3 * h, "linear"
            if side == "context_block" and i == depth - 1:
                continue  # the last context block only projects qkv (pre-only)
            yield f"{base}_attn_proj", h, h, "linear"
            if not compact:
                yield f"{base}_mlp_fc1", h, 4 * h, "linear"
                yield f"{base}_mlp_fc2", 4 * h, h, "linear"


def _tiny_sd1(text_encoder: bool) -> list[Module]:
    """Every module of the demo model (demo_model.py: SD1.5's layout at toy width) that kohya
    would train, named as in a real SD1.5 file, so the file loads into that pipeline."""
    from .demo_model import TEXT_ENCODER, UNET  # plain numbers; no torch

    ctx, channels, per_block = UNET["cross_attention_dim"], UNET["block_out_channels"], UNET["layers_per_block"]
    out: list[Module] = []
    if text_encoder:
        spec = (TEXT_ENCODER["hidden_size"], TEXT_ENCODER["intermediate_size"], TEXT_ENCODER["num_hidden_layers"])
        out.extend(_text_encoder("lora_te_", spec, False))
    unet: list[Module] = []
    for i, kind in enumerate(UNET["down_block_types"]):
        if kind.startswith("CrossAttn"):
            for j in range(per_block):
                unet.extend(_transformer(f"down_blocks_{i}_attentions_{j}", channels[i], ctx, 1, "conv1x1", False))
    unet.extend(_transformer("mid_block_attentions_0", channels[-1], ctx, 1, "conv1x1", False))
    for i, (kind, ch) in enumerate(zip(UNET["up_block_types"], reversed(channels))):
        if kind.startswith("CrossAttn"):
            for j in range(per_block + 1):
                unet.extend(_transformer(f"up_blocks_{i}_attentions_{j}", ch, ctx, 1, "conv1x1", False))
    out.extend((f"lora_unet_{n}", i, o, k) for n, i, o, k in unet)
    return out


def _modules(family: str, text_encoder: bool, conv: bool, compact: bool, tiny: bool = False) -> list[Module]:
    """Every module kohya attaches a LoRA to, with the prefix it writes, in training order."""
    if tiny:
        if family != "sd1" or conv:
            raise ValueError("the tiny layout is the demo model's SD1.5 UNet and text encoder: family 'sd1', no conv")
        return _tiny_sd1(text_encoder)
    fam = {"pony": "sdxl", "illustrious": "sdxl"}.get(family, family)
    te: list[tuple[str, tuple[int, int, int]]]
    if fam == "sd1":
        unet, te = _sd_unet(768, "conv1x1", conv, compact), [("lora_te_", _CLIP_L)]
    elif fam == "sd2":
        unet, te = _sd_unet(1024, "linear", conv, compact), [("lora_te_", _CLIP_H)]
    elif fam == "sdxl":
        unet, te = _xl_unet(conv, compact), [("lora_te1_", _CLIP_L), ("lora_te2_", _CLIP_G)]
    elif fam == "flux":
        unet, te = _flux(compact), [("lora_te1_", _CLIP_L)]
    elif fam == "sd3":
        unet, te = _sd3(compact), [("lora_te1_", _CLIP_L), ("lora_te2_", _CLIP_G)]
    else:
        raise ValueError(f"unsupported family {family!r}; expected one of {', '.join(FAMILIES)}")
    out: list[Module] = []
    if text_encoder:
        for prefix, spec in te:
            out.extend(_text_encoder(prefix, spec, compact))
    out.extend((f"lora_unet_{n}", i, o, k) for n, i, o, k in unet)
    return out


def kohya_keys(family: str, rank: int = 8, *, text_encoder: bool = True, conv: bool = False,
               compact: bool = False, tiny: bool = False) -> list[TensorSpec]:
    """(key, dtype, shape) for every tensor of a kohya LoRA: lora_down, lora_up, alpha per module.

    ``conv`` adds ResNet/resample convolutions (3x3 kernels: LoCon; UNets only). ``compact``
    keeps a small subset with the same names and shapes, for small demo files: UNet
    cross-attention on the down and middle path (first transformer block of each), the
    attention of the first transformer blocks, the first text-encoder layer's attention.
    ``tiny`` (family "sd1" only) has every module of the standalone demo model with its toy
    widths, under real SD1.5 names (``lora_te_text_model_encoder_layers_0_self_attn_q_proj``…),
    so the file loads into that model and changes its pictures.
    """
    keys: list[TensorSpec] = []
    for name, fin, fout, kind in _modules(family, text_encoder, conv, compact, tiny):
        if kind == "linear":
            down, up = (rank, fin), (fout, rank)
        else:
            k = 3 if kind == "conv3x3" else 1
            down, up = (rank, fin, k, k), (fout, rank, 1, 1)
        keys += [(f"{name}.lora_down.weight", "F16", down), (f"{name}.lora_up.weight", "F16", up),
                 (f"{name}.alpha", "F32", ())]
    return keys


def adapter_keys(adapter: str, family: str, rank: int = 8, *, text_encoder: bool = True) -> list[TensorSpec]:
    """Tensor list for a LoRA of kind ``adapter`` (see ADAPTERS) in kohya/LyCORIS naming.

    Plain LoRA uses the full module set; the LyCORIS kinds use the compact set, which is
    enough for detection and loading tests.
    """
    if adapter == "lora":
        return kohya_keys(family, rank, text_encoder=text_encoder)
    if adapter == "locon":
        return kohya_keys(family, rank, text_encoder=text_encoder, conv=True, compact=True)
    if adapter == "dora":
        keys = kohya_keys(family, rank, text_encoder=text_encoder, compact=True)
        mods = _modules(family, text_encoder, False, True)
        return keys + [(f"{n}.dora_scale", "F16", (1, fin)) for n, fin, _, _ in mods]
    if adapter not in ADAPTERS:
        raise ValueError(f"unknown adapter {adapter!r}; expected one of {', '.join(ADAPTERS)}")
    mods = _modules(family, text_encoder, False, True)
    if adapter == "full":
        mods = mods[:4]  # full weight deltas are large; a few modules show the kind
    out: list[TensorSpec] = []
    for name, fin, fout, _ in mods:
        out += _lycoris_module(adapter, name, fin, fout, rank)
    return out


def _lycoris_module(adapter: str, name: str, fin: int, fout: int, rank: int) -> list[TensorSpec]:
    alpha = (f"{name}.alpha", "F32", ())
    if adapter == "loha":
        return [(f"{name}.hada_w1_a", "F16", (fout, rank)), (f"{name}.hada_w1_b", "F16", (rank, fin)),
                (f"{name}.hada_w2_a", "F16", (fout, rank)), (f"{name}.hada_w2_b", "F16", (rank, fin)), alpha]
    if adapter == "lokr":
        (o1, o2), (i1, i2) = _factor(fout), _factor(fin)
        return [(f"{name}.lokr_w1", "F16", (o1, i1)), (f"{name}.lokr_w2_a", "F16", (o2, rank)),
                (f"{name}.lokr_w2_b", "F16", (rank, i2)), alpha]
    if adapter == "ia3":
        return [(f"{name}.weight", "F16", (fout,)), (f"{name}.on_input", "BOOL", ())]
    if adapter in ("oft", "boft"):
        block = _factor(fout)[0]
        shape = (fout // block, block, block) if adapter == "oft" else (2, fout // block, block, block)
        return [(f"{name}.oft_blocks", "F16", shape), alpha]
    if adapter == "glora":
        return [(f"{name}.a1.weight", "F16", (rank, fin)), (f"{name}.a2.weight", "F16", (fout, rank)),
                (f"{name}.b1.weight", "F16", (rank, fin)), (f"{name}.b2.weight", "F16", (fout, rank)), alpha]
    return [(f"{name}.diff", "F16", (fout, fin)), (f"{name}.diff_b", "F16", (fout,))]  # full


def _factor(n: int) -> tuple[int, int]:
    """Split n into (a, b), a <= b, a as close to sqrt(n) as divides it (LyCORIS-style)."""
    a = int(n**0.5)
    while n % a:
        a -= 1
    return a, n // a


# --- metadata -----------------------------------------------------------------------------

_SPECS: dict[str, dict[str, object]] = {
    "sd1": {"version": "sd_v1", "arch": "stable-diffusion-v1", "impl": "diffusers", "res": 512,
            "models": ("v1-5-pruned-emaonly.safetensors", "realisticVisionV60B1_v51VAE.safetensors",
                       "dreamshaper_8.safetensors", "animefull-final-pruned.ckpt")},
    "sd2": {"version": "sd_v2", "arch": "stable-diffusion-v2-768-v", "impl": "diffusers", "res": 768,
            "models": ("v2-1_768-ema-pruned.safetensors", "wd-1-4-anime_e2.ckpt"), "v2": True},
    "sdxl": {"version": "sdxl_base_v1-0", "arch": "stable-diffusion-xl-v1-base", "res": 1024,
             "impl": "https://github.com/Stability-AI/generative-models",
             "models": ("sd_xl_base_1.0.safetensors", "juggernautXL_v9Rdphoto2Lightning.safetensors",
                        "animagine-xl-3.1.safetensors")},
    "pony": {"version": "sdxl_base_v1-0", "arch": "stable-diffusion-xl-v1-base", "res": 1024,
             "impl": "https://github.com/Stability-AI/generative-models",
             "models": ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors",)},
    "illustrious": {"version": "sdxl_base_v1-0", "arch": "stable-diffusion-xl-v1-base", "res": 1024,
                    "impl": "https://github.com/Stability-AI/generative-models",
                    "models": ("Illustrious-XL-v0.1.safetensors", "noobaiXLNAIXL_epsilonPred11Version.safetensors")},
    "flux": {"version": "flux1", "arch": "flux-1-dev", "res": 1024,
             "impl": "https://github.com/black-forest-labs/flux", "models": ("flux1-dev.safetensors",)},
    "sd3": {"version": "sd3", "arch": "stable-diffusion-3-medium", "res": 1024,
            "impl": "https://github.com/Stability-AI/generative-models", "models": ("sd3_medium.safetensors",)},
}
_TAGS = ("1girl", "solo", "looking at viewer", "smile", "outdoors", "simple background", "portrait",
         "upper body", "blue sky", "cityscape", "night", "detailed background", "long hair",
         "masterpiece", "watercolor", "sketch", "monochrome", "scenery", "flower", "red eyes")
_OPTIMIZERS = ("bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1)",
               "prodigyopt.prodigy.Prodigy(decouple=True,weight_decay=0.01,use_bias_correction=True)",
               "torch.optim.adamw.AdamW")


def realistic_metadata(family: str, name: str, *, seed: int = 0, **overrides: object) -> dict[str, str]:
    """kohya-style ``ss_*`` plus ``modelspec.*`` metadata for a LoRA called ``name``.

    Deterministic for (family, name, seed). Keyword overrides replace or add keys (dots are
    not valid in keywords, so ``modelspec_title=`` means ``modelspec.title``); a value of None
    removes the key. Every value is a string, as in real files.
    """
    if family not in _SPECS:
        raise ValueError(f"no metadata template for family {family!r}")
    spec = _SPECS[family]
    rng = random.Random(f"{family}:{name}:{seed}")
    res = int(spec["res"])  # type: ignore[arg-type]
    rank = rng.choice((4, 8, 16, 32))
    images, repeats, epochs = rng.randint(12, 60), rng.choice((2, 5, 10)), rng.randint(4, 16)
    batches = images * repeats
    started = 1_690_000_000 + rng.randint(0, 60_000_000) + rng.random()
    trigger = _slug(name)
    model = rng.choice(spec["models"])  # type: ignore[arg-type]
    md: dict[str, object] = {
        "ss_session_id": rng.randint(10**8, 10**10),
        "ss_training_started_at": started,
        "ss_output_name": name,
        "ss_learning_rate": "0.0001",
        "ss_text_encoder_lr": "5e-05",
        "ss_unet_lr": "0.0001",
        "ss_num_train_images": images * repeats,
        "ss_num_reg_images": 0,
        "ss_num_batches_per_epoch": batches,
        "ss_num_epochs": epochs,
        "ss_epoch": epochs,
        "ss_steps": batches * epochs,
        "ss_max_train_steps": batches * epochs,
        "ss_gradient_checkpointing": True,
        "ss_gradient_accumulation_steps": 1,
        "ss_lr_warmup_steps": 0,
        "ss_lr_scheduler": rng.choice(("cosine", "constant", "cosine_with_restarts")),
        "ss_network_module": "networks.lora",
        "ss_network_dim": rank,
        "ss_network_alpha": float(rank // 2 or 1),
        "ss_network_dropout": None,
        "ss_mixed_precision": rng.choice(("fp16", "bf16")),
        "ss_full_fp16": False,
        "ss_v2": bool(spec.get("v2", False)),
        "ss_base_model_version": spec["version"],
        "ss_clip_skip": 2 if family in ("sd1", "pony") else None,
        "ss_max_token_length": 225,
        "ss_cache_latents": True,
        "ss_seed": rng.randint(0, 2**31),
        "ss_lowram": False,
        "ss_noise_offset": rng.choice((None, 0.0357, 0.1)),
        "ss_min_snr_gamma": 5.0,
        "ss_optimizer": rng.choice(_OPTIMIZERS),
        "ss_max_grad_norm": 1.0,
        "ss_sd_model_name": model,
        "ss_sd_model_hash": rng.randbytes(4).hex(),
        "ss_new_sd_model_hash": rng.randbytes(32).hex(),
        "ss_vae_name": None,
        "ss_resolution": f"({res}, {res})",
        "ss_enable_bucket": True,
        "ss_min_bucket_reso": res // 2,
        "ss_max_bucket_reso": res * 2,
        "ss_bucket_no_upscale": False,
        "ss_keep_tokens": 1,
        "ss_caption_dropout_rate": 0.0,
        "ss_shuffle_caption": True,
        "ss_flip_aug": False,
        "ss_color_aug": False,
        "ss_random_crop": False,
        "ss_prior_loss_weight": 1.0,
        "ss_dataset_dirs": json.dumps({f"{repeats}_{trigger}": {"n_repeats": repeats, "img_count": images}}),
        "ss_tag_frequency": json.dumps(_tag_frequency(rng, trigger, repeats, images)),
        "ss_bucket_info": json.dumps({"buckets": {"0": {"resolution": [res, res], "count": batches}},
                                      "mean_img_ar_error": 0.0}),
        "ss_training_comment": None,
        "ss_sd_scripts_commit_hash": rng.randbytes(20).hex(),
        "ss_training_finished_at": started + rng.randint(600, 20_000),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{spec['arch']}/lora",
        "modelspec.implementation": spec["impl"],
        "modelspec.title": name.replace("_", " ").title(),
        "modelspec.resolution": f"{res}x{res}",
        "modelspec.date": datetime.fromtimestamp(int(started), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.prediction_type": "v" if spec.get("v2") else "epsilon",
    }
    if rng.random() < 0.5:
        md["modelspec.trigger_phrase"] = trigger
    for key, value in overrides.items():
        key = "modelspec." + key[len("modelspec_"):] if key.startswith("modelspec_") else key
        if value is None:
            md.pop(key, None)
        else:
            md[key] = value
    return {k: _as_text(v) for k, v in md.items()}


def _as_text(value: object) -> str:
    # kohya writes str(value): True -> "True", None -> "None", 0.1 -> "0.1"
    return value if isinstance(value, str) else str(value)


def _slug(name: str) -> str:
    kept = "".join(c if c.isalnum() else " " for c in name.lower())
    return "_".join(kept.split()) or "concept"


# Captioning tools (WD14 taggers, BLIP) give each image a few dozen tags: a kohya dataset of 12-60
# images names 60-300 distinct ones, so ss_tag_frequency is typically 2-10 KB of the header.
_TAG_COLORS = ("black", "white", "blonde", "brown", "red", "blue", "green", "pink", "purple", "grey",
               "silver", "orange", "yellow", "aqua", "multicolored")
_TAG_ITEMS = ("hair", "eyes", "shirt", "skirt", "dress", "jacket", "gloves", "thighhighs", "footwear",
              "ribbon", "bow", "hat", "background", "flower", "nails", "bikini", "kimono", "sweater",
              "scarf", "necktie")
_TAG_WORDS = ("open mouth", "closed mouth", "blush", "bangs", "short hair", "very long hair", "twintails",
              "ponytail", "braid", "hair between eyes", "sidelocks", "ahoge", "large breasts", "collarbone",
              "bare shoulders", "jewelry", "earrings", "holding", "standing", "sitting", "full body",
              "cowboy shot", "from side", "from behind", "indoors", "day", "sky", "cloud", "tree", "water",
              "sunlight", "depth of field", "blurry", "lens flare", "light particles", "signature",
              "artist name", "english text", "1boy", "multiple girls", "2girls", "hand up", "arms up",
              "outstretched arm", "v", "one eye closed", "teeth", "tongue out", "parted lips", "looking back")
_TAG_VOCABULARY = _TAGS + _TAG_WORDS + tuple(f"{c} {i}" for c in _TAG_COLORS for i in _TAG_ITEMS)


def _tag_frequency(rng: random.Random, trigger: str, repeats: int, images: int) -> dict[str, dict[str, int]]:
    dirs = {f"{repeats}_{trigger}": images}
    if rng.random() < 0.4:
        dirs[f"1_{trigger} extra"] = max(2, images // 4)
    out: dict[str, dict[str, int]] = {}
    for folder, count in dirs.items():
        tags = {trigger: count}
        for tag in rng.sample(_TAGS, rng.randint(4, 10)):
            tags[tag] = rng.randint(1, count - 1)
        out[folder] = tags
    # the long tail from a generator of its own, so every other value stays as it was
    extra = random.Random(f"{trigger}:{repeats}:{images}")
    for folder, count in dirs.items():
        tags = out[folder]
        for tag in extra.sample(_TAG_VOCABULARY, extra.randint(80, 300)):
            tags.setdefault(tag, extra.randint(1, max(1, count - 1)))
    return out


# --- writing ------------------------------------------------------------------------------


def write_lora(path: str | Path, family: str = "sd1", *, rank: int = 8, metadata: dict[str, str] | None = None,
               adapter: str = "lora", text_encoder: bool = True, data: str = "sparse", seed: int = 0,
               extra_tensors: dict[str, tuple[str, tuple[int, ...]]] | None = None,
               compact: bool = False, tiny: bool = False) -> Path:
    """Write a LoRA that the official safetensors library loads; return its path.

    ``metadata=None`` writes realistic kohya metadata (plus ``sshs_model_hash`` when the data is
    real), ``{}`` writes none. ``data``: "sparse" (a file hole: all zeros, no bytes written),
    "zeros" (real bytes: zero weights, true alphas) or "random" (seeded small normal weights).
    ``extra_tensors`` maps name -> (dtype, shape). ``compact`` uses kohya_keys(compact=True).
    ``tiny`` writes a plain LoRA for the demo model (kohya_keys(tiny=True)); its random weights
    are strong enough to change that model's pictures visibly at weight 1.
    """
    path = Path(path)
    if data not in ("sparse", "zeros", "random"):
        raise ValueError(f"data must be 'sparse', 'zeros' or 'random', not {data!r}")
    if tiny and adapter != "lora":
        raise ValueError("the tiny layout is for plain LoRAs only")
    if adapter == "lora" and (compact or tiny):
        specs = kohya_keys(family, rank, text_encoder=text_encoder, compact=compact and not tiny, tiny=tiny)
    else:
        specs = adapter_keys(adapter, family, rank, text_encoder=text_encoder)
    specs += [(name, dtype, tuple(shape)) for name, (dtype, shape) in (extra_tensors or {}).items()]
    ordered = _file_order(specs)
    alpha = float(max(1, rank // 2))
    scale = _TINY_SCALE if tiny else 0.02
    chunks = None if data == "sparse" else [_tensor_bytes(s, data, alpha, seed, i, scale) for i, s in enumerate(ordered)]
    if metadata is None:
        family_md = family if family in _SPECS else "sd1"
        metadata = realistic_metadata(family_md, path.stem, seed=seed, ss_network_dim=rank,
                                      ss_network_alpha=alpha, **_adapter_metadata(adapter))
        if chunks is not None:
            digest = hashlib.sha256()
            for chunk in chunks:
                digest.update(chunk)
            metadata["sshs_model_hash"] = digest.hexdigest()
    header, data_size = _header_bytes(ordered, metadata)
    _write(path, header, data_size, chunks)
    return path


def _adapter_metadata(adapter: str) -> dict[str, object]:
    if adapter == "lora":
        return {}
    if adapter == "dora":
        return {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "lora", "dora_wd": "True"})}
    algo = {"full": "full", "ia3": "ia3", "oft": "diag-oft", "boft": "boft"}.get(adapter, adapter)
    return {"ss_network_module": "lycoris.kohya",
            "ss_network_args": json.dumps({"algo": algo, "conv_dim": "4", "conv_alpha": "1"})}


# Standard deviation of the tiny layout's random weights: each LoRA delta is then about the size of
# the demo model's own (randomly initialised) weights, so weight 1 changes a picture clearly.
_TINY_SCALE = 0.5


def _file_order(specs: list[TensorSpec]) -> list[TensorSpec]:
    """Order the safetensors library writes: larger dtype alignment first, then by name."""
    return sorted(specs, key=lambda s: (-DTYPE_SIZES[s[1]], s[0]))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _header_bytes(ordered: list[TensorSpec], metadata: dict[str, str]) -> tuple[bytes, int]:
    """Header JSON as the official writer lays it out, padded with spaces to 8 bytes."""
    obj: dict[str, object] = {}
    if metadata:
        obj["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name, dtype, shape in ordered:
        end = offset + _numel(shape) * DTYPE_SIZES[dtype]
        obj[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return raw + b" " * (-len(raw) % 8), offset


def _tensor_bytes(spec: TensorSpec, data: str, alpha: float, seed: int, index: int, scale: float = 0.02) -> bytes:
    import numpy as np  # only needed for real data; kept out of import time

    name, dtype, shape = spec
    n = _numel(shape)
    if name.endswith(".alpha") and dtype == "F32":
        return np.full(n, alpha, np.float32).tobytes()
    if data == "zeros":
        return bytes(n * DTYPE_SIZES[dtype])
    rng = np.random.default_rng([seed, index])
    if dtype in ("F16", "F32", "F64", "BF16"):
        values = rng.standard_normal(n, dtype=np.float32) * scale
        if dtype == "BF16":  # the top half of each float32
            return (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        return values.astype({"F16": np.float16, "F32": np.float32, "F64": np.float64}[dtype]).tobytes()
    if dtype == "BOOL":
        return rng.integers(0, 2, n, dtype=np.uint8).tobytes()
    return rng.integers(0, 256, n * DTYPE_SIZES[dtype], dtype=np.uint8).tobytes()


def _write(path: Path, header: bytes, data_size: int, chunks: list[bytes] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        if chunks is None:
            f.truncate(8 + len(header) + data_size)  # a hole: reads as zeros, costs no blocks
        else:
            for chunk in chunks:
                f.write(chunk)


# --- hostile files ------------------------------------------------------------------------


def write_hostile(path: str | Path, kind: str) -> Path:
    """Write a broken file of ``kind`` (one of HOSTILE_KINDS); the reader must reject each."""
    if kind not in HOSTILE_KINDS:
        raise ValueError(f"unknown hostile kind {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_hostile_bytes(kind))
    return path


def _framed(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _small_valid() -> tuple[bytes, int]:
    ordered = _file_order(kohya_keys("sd1", 4, compact=True)[:6])
    return _header_bytes(ordered, {"ss_output_name": "broken", "ss_network_dim": "4"})


def _hostile_bytes(kind: str) -> bytes:
    entry = '{"dtype":"F16","shape":[4,320],"data_offsets":[0,2560]}'
    if kind == "empty":
        return b""
    if kind == "short":
        return b"\x10\x00\x00\x00\x00"
    if kind == "truncated":
        header, _ = _small_valid()
        return struct.pack("<Q", len(header)) + header[: len(header) // 2]
    if kind == "absurd_length":
        return struct.pack("<Q", 2**63) + b'{"a":1}'
    if kind == "offsets_out_of_range":
        header, data_size = _small_valid()
        return _framed(header, bytes(data_size // 2))
    texts = {
        "invalid_json": '{"__metadata__":{"ss_output_name":"x",},"t":' + entry,
        "not_object": "[" + entry + "]",
        "deep_nesting": '{"__metadata__":' + "[" * 100_000 + "]" * 100_000 + "}",
        "wrong_types": '{"__metadata__":{"ss_output_name":"x","ss_network_dim":8},"t":' + entry + "}",
        "bad_tensor_entry": '{"t.lora_down.weight":{"dtype":"F16","shape":[4,-320],"data_offsets":[0,2560]}}',
        "duplicate_keys": '{"t.lora_down.weight":' + entry + ',"t.lora_down.weight":' + entry + "}",
        "duplicate_metadata_keys": '{"__metadata__":{"ss_output_name":"a","ss_output_name":"b"},"t":' + entry + "}",
    }
    if kind == "non_utf8":
        raw = b'{"__metadata__":{"ss_output_name":"caf\xe9"},"t":' + entry.encode() + b"}"
    else:
        raw = texts[kind].encode()
    return _framed(raw, bytes(2560))


def write_pickle_placeholder(path: str | Path) -> Path:
    """A small torch-style zip (``.pt``/``.ckpt``) holding a harmless pickle; for scanners that
    must list such files without ever unpickling them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem.replace(" ", "_") or "archive"
    payload = pickle.dumps({"note": "placeholder network weights"}, protocol=2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in ((f"{stem}/data.pkl", payload), (f"{stem}/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)  # fixed: reproducible
    return path
