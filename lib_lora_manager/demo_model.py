"""A tiny, randomly initialised Stable Diffusion 1.5 pipeline: the standalone demo's model.

The SD1.5 block layout (three cross-attention down blocks and a plain one, a mid block, the
mirror on the way up, a CLIP text encoder, a 4-block VAE that scales by 8) at toy width, so a
64x64 image takes about a tenth of a second on a CPU. Its pictures are noise-like, but prompts,
seeds, samplers and LoRAs change them the way they change a real model's, and the files are a
real diffusers folder that ``StableDiffusionPipeline.from_pretrained`` loads.

The module sizes below are the one source for anything that must fit this model: synth.py
derives the demo library's loadable SD1.5 LoRAs from them. Importing this module does not
import torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import InvalidInput

MARKER = "lora-manager-demo-model.json"
MODEL_NAME = "tiny-sd"  # what infotext and history call it
STEPS = 10  # standalone's default step count for this model (real models keep 20)
_VERSION = 1
_SEED = 1234

TEXT_ENCODER = {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "max_position_embeddings": 77, "projection_dim": 32}
UNET = {"sample_size": 8, "layers_per_block": 1, "block_out_channels": (32, 32, 64, 64), "norm_num_groups": 32,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 32, "attention_head_dim": 8}
VAE = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 32,
       "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
       "scaling_factor": 0.18215}
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
             "set_alpha_to_one": False, "steps_offset": 1}
# A few whole words as single tokens; every other text is spelled in byte-level characters.
_WORDS = ("cat", "dog", "red", "blue", "photo", "portrait", "style", "knight", "painting", "watercolor")


def build_tiny_pipeline(folder: str | os.PathLike) -> str:
    """Write the tiny pipeline into ``folder`` (a diffusers folder) and return its path.

    Idempotent: a folder that already holds this version of the model, complete, is left as it
    is. The weights are the same on every machine (seeded), and the folder appears whole or not
    at all (written next to it, then renamed)."""
    folder = Path(folder)
    if is_built(folder):
        return str(folder)
    if folder.exists() and not (folder / MARKER).exists() and any(folder.iterdir()):
        raise InvalidInput(f"{folder} is not empty and not the demo model; choose another folder for it.")
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tiny-sd-", dir=folder.parent))
    try:
        tokenizer = build_tokenizer(work / "tokenizer-source")
        torch.manual_seed(_SEED)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **TEXT_ENCODER, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id))
        torch.manual_seed(_SEED + 1)
        unet = UNet2DConditionModel(**UNET)
        torch.manual_seed(_SEED + 2)
        vae = AutoencoderKL(**VAE)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=DDIMScheduler(**SCHEDULER), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        model = work / "model"
        pipe.save_pretrained(model, safe_serialization=True)
        for path in model.rglob("*"):  # safetensors writes 0600; the folder is meant to be shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        (model / MARKER).write_text(json.dumps({"version": _VERSION, "seed": _SEED}), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)  # empty, or an older version of the demo model
        os.replace(model, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return str(folder)


def is_built(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds this version of the tiny model with all its parts."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("version") != _VERSION:
        return False
    needed = ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json",
              "text_encoder/config.json", "text_encoder/model.safetensors", "unet/config.json",
              "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors")
    return all((folder / rel).is_file() for rel in needed)


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte-level alphabet: printable bytes stand for themselves, the rest are shifted
    past 255 (the order CLIP's vocabulary lists them in)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    table = {}
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    for b in keep:
        chars.append(table[b])
    chars += [table[b] for b in range(256) if b not in keep]
    return chars


def build_tokenizer(folder: Path):
    """A CLIP tokenizer over a minimal vocabulary (its source files are written to ``folder``).
    transformers 5's tokenizers-backed
    CLIPTokenizer rejects merges whose parts are not in the vocabulary, so every merge's
    intermediate pieces are added as tokens too."""
    from transformers import CLIPTokenizer

    alphabet = _bytes_to_unicode()
    vocab = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for word in _WORDS:
        piece = word[0]
        for i, char in enumerate(word[1:], start=1):
            right = char + ("</w>" if i == len(word) - 1 else "")
            merge = f"{piece} {right}"
            if merge not in merges:
                merges.append(merge)
            piece = piece + right
            if piece not in vocab:
                vocab.append(piece)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")
