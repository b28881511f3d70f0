"""Real image files carrying generation metadata the way each program writes it, and hostile
ones. PNGs are written chunk by chunk (so a test controls every byte: compressed text, huge
chunks, truncation); JPEG and WebP go through Pillow with an EXIF UserComment as SDNext writes it.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

SDNEXT_INFOTEXT = (
    "a castle on a hill, <lora:anime_style:0.8>, <lora:detail_tweaker:0.5:0.3>\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 20, Size: 512x768, Sampler: DPM++ 2M, Seed: 1234, CFG scale: 6.5, App: SD.Next, Version: 1.0, '
    'Model: dreamshaper_8, Model hash: 879db523c3, LoRA networks: "anime_style, detail_tweaker", '
    'LoRA hashes: "aaaaaaaaaaaa, bbbbbbbbbbbb"'
)
A1111_INFOTEXT = (
    "portrait of a knight <lora:unknown_lora:0.7> <lora:anime_style:1>\n"
    "Negative prompt: ugly\n"
    'Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 768x512, '
    'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "unknown_lora: 0123456789ab, anime_style: ffffffffffff", '
    'Version: v1.10.1'
)
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 777, "steps": 25, "cfg": 5.5, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1, "model": ["11", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl/juggernaut.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["10", 1]}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "anime_style.safetensors", "strength_model": 0.9,
                                                  "strength_clip": 0.6, "model": ["4", 0], "clip": ["4", 1]}},
    "11": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "styles/ink_wash.safetensors",
                                                           "strength_model": 0.4, "model": ["10", 0]}},
}
INVOKE_METADATA = {
    "generation_mode": "txt2img", "positive_prompt": "a lighthouse at dusk", "negative_prompt": "people",
    "width": 832, "height": 1216, "seed": 99, "cfg_scale": 4.5, "steps": 28, "scheduler": "dpmpp_2m",
    "model": {"key": "k1", "hash": "blake3:abc", "name": "Juggernaut XL", "base": "sdxl", "type": "main"},
    "loras": [{"model": {"key": "k2", "hash": "blake3:def", "name": "detail_tweaker", "base": "sdxl", "type": "lora"},
               "weight": 0.75}],
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(texts: dict[str, str] | None = None, *, compressed: str = "", after_pixels: bool = False,
              width: int = 8, height: int = 8) -> bytes:
    """A real PNG (RGB, plain grey) with these text chunks: tEXt, or zTXt/iTXt when
    ``compressed`` is "zTXt"/"iTXt" (iTXt uncompressed: "iTXt-plain")."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\0" + b"\x80" * (width * 3) for _ in range(height))
    text_chunks = b""
    for key, value in (texts or {}).items():
        if compressed == "zTXt":
            text_chunks += _chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(value.encode("latin-1")))
        elif compressed.startswith("iTXt"):
            flag = 0 if compressed == "iTXt-plain" else 1
            body = value.encode("utf-8") if flag == 0 else zlib.compress(value.encode("utf-8"))
            text_chunks += _chunk(b"iTXt", key.encode("latin-1") + b"\0" + bytes([flag, 0]) + b"\0\0" + body)
        else:
            text_chunks += _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    pixels = _chunk(b"IDAT", zlib.compress(raw))
    body = (pixels + text_chunks) if after_pixels else (text_chunks + pixels)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + body + _chunk(b"IEND", b"")


def write_png(path: Path, texts: dict[str, str] | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(texts, **kwargs))
    return path


def user_comment(text: str, encoding: str = "unicode-be") -> bytes:
    """An EXIF UserComment as SDNext (piexif: UNICODE, big-endian) or others write it."""
    if encoding == "unicode-be":
        return b"UNICODE\0" + text.encode("utf-16-be")
    if encoding == "unicode-le":
        return b"UNICODE\0" + text.encode("utf-16-le")
    return b"ASCII\0\0\0" + text.encode("ascii")


def write_exif_image(path: Path, text: str, *, encoding: str = "unicode-be", little_endian_tiff: bool = True) -> Path:
    """A JPEG or WebP (by suffix) whose EXIF UserComment holds ``text``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = user_comment(text, encoding)
    exif.endian = "<" if little_endian_tiff else ">"  # TIFF byte order inside the EXIF block
    fmt = "WEBP" if path.suffix.lower() == ".webp" else "JPEG"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path, format=fmt, exif=exif)
    return path


def write_comfyui_png(path: Path, prompt: dict | None = None) -> Path:
    graph = prompt if prompt is not None else COMFY_PROMPT
    return write_png(path, {"prompt": json.dumps(graph), "workflow": json.dumps({"nodes": []})})


def write_invokeai_png(path: Path, metadata: dict | None = None) -> Path:
    return write_png(path, {"invokeai_metadata": json.dumps(metadata if metadata is not None else INVOKE_METADATA)})


def huge_text_chunk_png(path: Path, megabytes: int = 100) -> Path:
    """A PNG whose "parameters" tEXt chunk claims (and holds) ``megabytes`` MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = megabytes * 1024 * 1024
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)))
        f.write(struct.pack(">I", size) + b"tEXt" + b"parameters\0")
        f.truncate(f.tell() + size - len(b"parameters\0"))  # sparse: no 100 MB written
        f.seek(0, 2)
        f.write(b"\0\0\0\0" + _chunk(b"IEND", b""))
    return path


def bomb_png(path: Path, megabytes: int = 200) -> Path:
    """A PNG whose zTXt "parameters" inflates to ``megabytes`` MB (about 200 KB on disk)."""
    inflater = zlib.compressobj(9)
    block = b"A" * (1024 * 1024)
    data = b"".join(inflater.compress(block) for _ in range(megabytes)) + inflater.flush()
    png = png_bytes()
    head, tail = png[:33], png[33:]  # after the signature and IHDR
    path.write_bytes(head + _chunk(b"zTXt", b"parameters\0\0" + data) + tail)
    return path
