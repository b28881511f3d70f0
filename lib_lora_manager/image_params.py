"""The generation parameters stored inside an image file, read from its bytes.

SDNext, A1111 and Forge write an infotext as the PNG text chunk "parameters", and as the EXIF
UserComment of JPEG and WebP files (SDNext saves JPEG by default). ComfyUI stores its graph as the
PNG text "prompt" (JSON), InvokeAI its parameters as "invokeai_metadata" (JSON).

Only the metadata is read, never the pixels: the PNG chunks, JPEG segments and WebP chunks are
walked by hand (Pillow would be several times slower and inflates text chunks without a bound).
Every length in a file is bounded before it is trusted, so a hostile file (a 100 MB text chunk, a
compressed chunk that inflates to gigabytes, a truncated file) costs at most ``MAX_CHUNK`` bytes
and ends in ``UnreadableImage`` with a reason for that one file.

``read_generation`` turns what a file holds into an ``ImageGeneration`` (format-neutral: what
the history records), or None when the file has no generation metadata.
"""

from __future__ import annotations

import calendar
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .errors import InvalidInput

MAX_FILE = 100 * 1024 * 1024
MAX_TEXT = 200_000  # characters kept: far more than any real infotext
MAX_CHUNK = 4 * 1024 * 1024  # a text chunk or EXIF block read at most (ComfyUI graphs reach ~1 MB)
MAX_INFLATED = 4 * 1024 * 1024  # what a compressed text chunk may inflate to (decompression bombs)
MAX_CHUNKS = 100_000  # chunks or segments walked in one file (a real one has a few hundred at most)
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the PNG text keywords that carry generation metadata; other text chunks are skipped unread
GENERATION_KEYS = ("parameters", "prompt", "invokeai_metadata")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class UnreadableImage(InvalidInput):
    """A file whose metadata cannot be read: the reason is for that one file."""


def read_infotext(path: str) -> str:
    """The infotext of the image at ``path``; InvalidInput when it is not an image or has none."""
    name = os.path.basename(path)
    try:
        if os.path.getsize(path) > MAX_FILE:
            raise InvalidInput(f"{name} is larger than {MAX_FILE // (1024 * 1024)} MB")
        text = read_texts(path).get("parameters")
    except OSError as e:
        raise InvalidInput(f"{name} is not an image that can be read: {e.strerror or e}") from None
    except UnreadableImage as e:
        raise InvalidInput(f"{name} is not an image that can be read: {e}") from None
    if not text or not text.strip():
        raise InvalidInput(f"{name} holds no generation parameters (no “parameters” text in the file)")
    return text.strip()[:MAX_TEXT]


# --- the bytes: PNG chunks, JPEG segments, WebP chunks --------------------------------------


def read_texts(path: str) -> dict[str, str]:
    """The generation texts of one image file: PNG text chunks by keyword (those in
    ``GENERATION_KEYS``), and for JPEG and WebP the EXIF UserComment as "parameters".
    Raises UnreadableImage (not an image we read, truncated, hostile) or OSError."""
    with open(path, "rb", buffering=16384) as f:
        head = f.read(12)
        if head[:8] == _PNG_SIGNATURE:
            f.seek(8)
            return _png_texts(f)
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            return _jpeg_texts(f)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_texts(f)
    raise UnreadableImage("not a PNG, JPEG or WebP file")


def _png_texts(f: BinaryIO) -> dict[str, str]:
    texts: dict[str, str] = {}
    for _ in range(MAX_CHUNKS):
        header = f.read(8)
        if len(header) < 8:
            if texts:  # cut off after its text: what was read stands
                return texts
            raise UnreadableImage("the PNG file is truncated (it ends before its last chunk)")
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            data = _read_chunk(f, length, "a PNG text chunk", "the PNG file is truncated inside a text chunk")
            f.seek(4, os.SEEK_CUR)  # CRC: a damaged text shows as a parse error later, if at all
            keyword, text = _png_text(kind, data)
            if keyword in GENERATION_KEYS and keyword not in texts:
                texts[keyword] = text
        elif kind == b"IEND" or (kind == b"IDAT" and texts):
            return texts  # writers put their text before the pixels; look past them only when none came
        else:
            f.seek(length + 4, os.SEEK_CUR)
    raise UnreadableImage(f"the PNG file has more than {MAX_CHUNKS:,} chunks")


def _png_text(kind: bytes, data: bytes) -> tuple[str, str]:
    """(keyword, text) of one tEXt, zTXt or iTXt chunk; a compressed text is inflated only up to
    ``MAX_INFLATED`` (a decompression bomb raises UnreadableImage)."""
    keyword, _, rest = data.partition(b"\0")
    name = keyword.decode("latin-1")
    if name not in GENERATION_KEYS:
        return name, ""
    if kind == b"tEXt":
        return name, rest.decode("latin-1")  # PNG's tEXt is Latin-1 (A1111 falls back to iTXt for more)
    if kind == b"zTXt":
        return name, _inflate(rest[1:]).decode("latin-1")
    if len(rest) < 2:
        raise UnreadableImage("a PNG iTXt chunk is cut short")
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, body = rest.partition(b"\0")
    return name, (_inflate(body) if compressed else body).decode("utf-8", errors="replace")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as e:
        raise UnreadableImage(f"a compressed PNG text cannot be inflated ({e})") from None
    if inflater.unconsumed_tail:
        raise UnreadableImage(f"a compressed PNG text inflates beyond {MAX_INFLATED // 1048576} MB "
                              "(a decompression bomb?)")
    return out


def _jpeg_texts(f: BinaryIO) -> dict[str, str]:
    for _ in range(MAX_CHUNKS):
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise UnreadableImage("the JPEG file is truncated or damaged before its image data")
        kind = marker[1]
        if kind == 0xFF:  # fill byte
            f.seek(-1, os.SEEK_CUR)
            continue
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            continue
        if kind in (0xDA, 0xD9):  # start of scan / end: the metadata segments are all before
            return {}
        size = f.read(2)
        if len(size) < 2:
            raise UnreadableImage("the JPEG file is truncated")
        length = struct.unpack(">H", size)[0] - 2
        if kind == 0xE1 and length > 6:
            data = f.read(length)
            if len(data) < length:
                raise UnreadableImage("the JPEG file is truncated inside its EXIF block")
            if data.startswith(b"Exif\0\0"):
                text = _user_comment(_exif_user_comment(data[6:]))
                return {"parameters": text} if text and text.strip() else {}
        else:
            f.seek(max(length, 0), os.SEEK_CUR)
    raise UnreadableImage(f"the JPEG file has more than {MAX_CHUNKS:,} segments before its image data")


def _webp_texts(f: BinaryIO) -> dict[str, str]:
    f.seek(12)
    for _ in range(MAX_CHUNKS):
        header = f.read(8)
        if len(header) < 8:
            return {}
        kind, length = struct.unpack("<4sI", header)
        if kind == b"EXIF":
            data = _read_chunk(f, length, "a WebP EXIF chunk", "the WebP file is truncated inside its EXIF chunk")
            if data.startswith(b"Exif\0\0"):
                data = data[6:]
            text = _user_comment(_exif_user_comment(data))
            return {"parameters": text} if text and text.strip() else {}
        f.seek(length + (length & 1), os.SEEK_CUR)
    raise UnreadableImage(f"the WebP file has more than {MAX_CHUNKS:,} chunks")


def _exif_user_comment(tiff: bytes) -> bytes | None:
    """The raw UserComment of a TIFF-structured EXIF block (either byte order), looked up in the
    EXIF sub-IFD and, for writers that put it there, in IFD0; every offset is bounds-checked."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"

    def entries(offset: int):
        if offset < 8 or offset + 2 > len(tiff):
            return
        count = struct.unpack_from(order + "H", tiff, offset)[0]
        for n in range(min(count, 512)):
            at = offset + 2 + 12 * n
            if at + 12 > len(tiff):
                return
            tag, kind, number = struct.unpack_from(order + "HHI", tiff, at)
            yield tag, kind, number, at + 8

    def comment(offset: int) -> bytes | None:
        for tag, kind, number, value_at in entries(offset):
            if tag == _USER_COMMENT and kind in (1, 2, 7) and 0 < number <= len(tiff):
                start = value_at if number <= 4 else struct.unpack_from(order + "I", tiff, value_at)[0]
                return tiff[start:start + number] if start + number <= len(tiff) else None
        return None

    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    for tag, _kind, _number, value_at in entries(ifd0):
        if tag == _EXIF_IFD:
            found = comment(struct.unpack_from(order + "I", tiff, value_at)[0])
            if found is not None:
                return found
    return comment(ifd0)


def _user_comment(raw: object) -> str | None:
    """EXIF UserComment: an 8-byte character-code prefix, then the text."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) <= 8:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", errors="replace").strip("\x00")
        # UTF-16 without a byte-order mark; ASCII text has its zero bytes on one side
        big_endian = body[:1] == b"\x00" or body[1:2] != b"\x00"
        return body.decode("utf-16-be" if big_endian else "utf-16-le", errors="replace").strip("\x00")
    return body.decode("utf-8", errors="replace").strip("\x00")


# --- what the texts say: one generation, whichever program wrote it -------------------------


@dataclass
class FoundLora:
    name: str
    te_weight: float | None = None
    unet_weight: float | None = None
    hash: str | None = None  # as the file names it (a SHA-256 prefix or AutoV3)


@dataclass
class ImageGeneration:
    format: str  # "infotext" (SDNext, A1111, Forge), "comfyui" or "invokeai"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    sampler: str | None = None
    width: int | None = None
    height: int | None = None
    model_name: str | None = None
    model_hash: str | None = None
    created_at: float | None = None  # when the metadata says it was made
    infotext: str | None = None  # the infotext as written (infotext format only)
    app: str | None = None  # "SD.Next", … when the infotext says
    loras: list[FoundLora] = field(default_factory=list)


def read_generation(path: str) -> ImageGeneration | None:
    """The generation an image file records, or None when it holds no generation metadata.
    Raises UnreadableImage (with the reason) or OSError."""
    texts = read_texts(path)
    if texts.get("invokeai_metadata"):
        return from_invokeai(texts["invokeai_metadata"])
    if texts.get("prompt") and not texts.get("parameters"):
        return from_comfyui(texts["prompt"])
    if texts.get("parameters") and texts["parameters"].strip():
        return from_infotext(texts["parameters"])
    return None


def from_infotext(text: str) -> ImageGeneration:
    from .prompts import extract_loras, infotext_parameters, parse_infotext

    text = text.strip()[:MAX_TEXT]
    fields = parse_infotext(text)
    values = infotext_parameters(fields)
    prompt = str(fields.get("Prompt", ""))
    hashes = _lora_hashes(fields)
    loras = []
    for ref in extract_loras(prompt)[1]:
        te, unet = ref.te_weight, ref.unet_weight
        loras.append(FoundLora(ref.name, te if isinstance(te, float) else None, unet if isinstance(unet, float) else None,
                               hashes.get(ref.name.lower())))
    return ImageGeneration(
        format="infotext", prompt=prompt, negative_prompt=str(fields.get("Negative prompt", "")),
        seed=_integer(values.get("seed")), steps=_integer(values.get("steps")), cfg_scale=_real(values.get("cfg_scale")),
        sampler=_text(values.get("sampler_name")), width=_integer(values.get("width")), height=_integer(values.get("height")),
        model_name=_text(fields.get("Model")), model_hash=_text(fields.get("Model hash")),
        created_at=_timestamp(fields.get("Date") or fields.get("Created") or fields.get("Timestamp")),
        infotext=text, app=_text(fields.get("App")), loras=loras)


def _lora_hashes(fields: dict) -> dict[str, str]:
    """LoRA name (lower case) -> hash: A1111/Forge write ``Lora hashes: "name: hash, …"``, SDNext
    ``LoRA hashes: "h1, h2"`` in the order of ``LoRA networks: "a, b"``."""
    out: dict[str, str] = {}
    for key in ("Lora hashes", "LoRA hashes"):
        raw = fields.get(key)
        if not isinstance(raw, str):
            continue
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if all(":" in item for item in items):
            for item in items:
                name, _, value = item.rpartition(":")
                out[name.strip().lower()] = value.strip()
        else:
            names = [n.strip() for n in str(fields.get("LoRA networks", "")).split(",") if n.strip()]
            out.update({name.lower(): value for name, value in zip(names, items)})
    return out


def from_comfyui(text: str) -> ImageGeneration:
    """ComfyUI's API graph ("prompt"): node id -> {"class_type", "inputs"}. The sampler's links
    lead to its prompts; loaders of LoRAs and checkpoints are read wherever they sit."""
    graph = _json_object(text, "ComfyUI prompt")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict) and isinstance(v.get("inputs"), dict)}
    out = ImageGeneration(format="comfyui")
    sampler = None
    for node in nodes.values():
        kind, inputs = str(node.get("class_type", "")), node["inputs"]
        if kind in ("LoraLoader", "LoraLoaderModelOnly") and isinstance(inputs.get("lora_name"), str):
            unet = _real(inputs.get("strength_model"))
            te = _real(inputs.get("strength_clip")) if kind == "LoraLoader" else 0.0
            out.loras.append(FoundLora(_comfy_name(inputs["lora_name"]), te, unet))
        elif out.model_name is None and isinstance(inputs.get("ckpt_name", inputs.get("unet_name")), str) and (
                "CheckpointLoader" in kind or kind == "UNETLoader"):  # UNETLoader: Flux and other bare models
            out.model_name = _comfy_name(inputs.get("ckpt_name", inputs.get("unet_name")))
        elif kind.startswith(("KSampler", "SamplerCustom")) and sampler is None:
            sampler = inputs
        elif kind == "EmptyLatentImage" and out.width is None:
            out.width, out.height = _integer(inputs.get("width")), _integer(inputs.get("height"))
    if sampler is not None:
        out.seed = _integer(sampler.get("seed", sampler.get("noise_seed")))
        out.steps, out.cfg_scale = _integer(sampler.get("steps")), _real(sampler.get("cfg"))
        out.sampler = _text(sampler.get("sampler_name"))
        out.prompt = _linked_text(nodes, sampler.get("positive"))
        out.negative_prompt = _linked_text(nodes, sampler.get("negative"))
    return out


def _linked_text(nodes: dict, link: Any, depth: int = 0) -> str:
    """The text a sampler input is wired to: [node id, output] links, followed a few steps
    (through conditioning combiners) to a text encoder's ``text``."""
    if not (isinstance(link, list) and link and depth < 8):
        return ""
    node = nodes.get(str(link[0]))
    if node is None or node.get("class_type") == "ConditioningZeroOut":  # an empty prompt (Flux's negative)
        return ""
    inputs = node["inputs"]
    for key in ("text", "text_g", "prompt"):
        if isinstance(inputs.get(key), str):
            return inputs[key]
    for key in ("conditioning", "conditioning_1", "conditioning_to", "positive"):
        found = _linked_text(nodes, inputs.get(key), depth + 1)
        if found:
            return found
    return ""


def from_invokeai(text: str) -> ImageGeneration:
    """InvokeAI's ``invokeai_metadata`` (3.x-5.x): prompts, model, seed, steps, cfg and the LoRAs
    with their weights (the LoRA under "model" in 4.x+, under "lora" in 3.x)."""
    data = _json_object(text, "InvokeAI metadata")
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    out = ImageGeneration(
        format="invokeai", prompt=_text(data.get("positive_prompt")) or "",
        negative_prompt=_text(data.get("negative_prompt")) or "", seed=_integer(data.get("seed")),
        steps=_integer(data.get("steps")), cfg_scale=_real(data.get("cfg_scale")),
        sampler=_text(data.get("scheduler")), width=_integer(data.get("width")), height=_integer(data.get("height")),
        model_name=_text(model.get("name") or model.get("model_name")), model_hash=_text(model.get("hash")),
        created_at=_timestamp(data.get("created_at")))
    for item in data.get("loras") or []:
        if not isinstance(item, dict):
            continue
        lora = item.get("model") if isinstance(item.get("model"), dict) else item.get("lora")
        if not isinstance(lora, dict):
            continue
        name = _text(lora.get("name") or lora.get("model_name"))
        if name:
            weight = _real(item.get("weight"))
            out.loras.append(FoundLora(name, weight, weight, _text(lora.get("hash"))))
    return out


def _json_object(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise UnreadableImage(f"its {what} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UnreadableImage(f"its {what} is not a JSON object")
    return data


def _comfy_name(name: str) -> str:
    """ComfyUI names files with their folder and extension ("style/ink.safetensors"): the
    library resolves the relative path, and a bare stem when that fails."""
    return name.replace("\\", "/").strip()


def _text(value: Any) -> str | None:
    return str(value)[:1000] if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value) else None


def _integer(value: Any) -> int | None:
    try:
        number = int(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and -2**63 <= number < 2**63 else None


def _real(value: Any) -> float | None:
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number == number and abs(number) < 1e12 else None


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an ISO date ("2024-05-01T12:30:00Z", "2024-05-01 12:30:00")."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("T", " ").rstrip("Z").split(".")[0].split("+")[0]
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(text, pattern)))
        except ValueError:
            continue
    return None


def _read_chunk(f, length: int, what: str, truncated: str) -> bytes:
    """A chunk's bytes, bounded: a declared length past MAX_CHUNK or past the file's end is an
    UnreadableImage saying which."""
    if length > MAX_CHUNK:
        raise UnreadableImage(f"{what} of {length / 1048576:.1f} MB is larger than the {MAX_CHUNK // 1048576} MB read at most")
    data = f.read(length)
    if len(data) < length:
        raise UnreadableImage(truncated)
    return data
