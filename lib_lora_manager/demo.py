"""A small demo library for a brand-new user: real LoRA files with everything a real folder has.

Three dozen tiny but real ``.safetensors`` LoRAs (kohya key names and shapes, compact module
sets, rank 4–8) across SD1.5, SD2, SDXL, Pony, Illustrious, Flux and SD3; nested folders;
the same file name in two folders; non-ASCII names and an HTML-injection name; previews the
way SDNext looks for them; sidecars of SDNext, AUTOMATIC1111, CH (butaixianran's
Stable-Diffusion-Webui-Civitai-Helper: ``.civitai.info``), ComfyUI-Lora-Manager and Stability
Matrix in their own formats; LyCORIS LoCon/LoHa/LoKr and
DoRA files; an exact duplicate; a pickle ``.pt`` and one corrupt file. Deterministic for a seed.

The plain SD1.5 LoRAs marked ``tiny`` have the module set and widths of the standalone demo
model (demo_model.py) under real SD1.5 key names, so ``serve --demo`` can generate with them
and they visibly change its pictures; the other SD1.5 files keep real SD1.5 shapes, and the
demo model reports them as LoRAs for another model, as a real one would.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import synth

MARKER = ".lora-manager-demo.json"
XSS_NAME = "<img src=x onerror=alert(1)>"
_VERSION = 2  # 2: the tiny SD1.5 LoRAs that load into the demo model
_EPOCH = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
_CIVITAI_BASE = {"sd1": "SD 1.5", "sd2": "SD 2.1", "sdxl": "SDXL 1.0", "pony": "Pony",
                 "illustrious": "Illustrious", "flux": "Flux.1 D", "sd3": "SD 3"}
_A1111_VERSION = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "pony": "SDXL", "illustrious": "SDXL"}


@dataclass
class _Entry:
    rel: str  # path under the root, without extension
    family: str
    rank: int = 4
    adapter: str = "lora"
    metadata: bool = True  # False: no metadata at all, detection falls back to the keys
    text_encoder: bool = True
    data: str = "random"
    sidecars: tuple[str, ...] = ()  # sdnext, txt, a1111, civitai_info, lora_manager, stability_matrix
    previews: tuple[str, ...] = ()  # suffixes such as ".png", ".preview.png", ".thumb.jpg"
    thumbnail: bool = False  # embed a modelspec.thumbnail
    title: str | None = None
    trigger: str | None = None
    tags: tuple[str, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)
    tiny: bool = False  # shaped for the demo model (synth.kohya_keys(tiny=True)); plain SD1.5 LoRAs only


_ENTRIES = (
    _Entry("characters/aria_knight", "sd1", sidecars=("sdnext", "txt"), previews=(".png",),
           trigger="aria knight", tags=("character", "fantasy", "armor"), tiny=True),
    _Entry("characters/captain_mira", "sdxl", sidecars=("civitai_info",), previews=(".preview.png",),
           trigger="captain mira", tags=("character", "sci-fi")),
    _Entry("characters/ryuu_dragon", "pony", sidecars=("a1111",), previews=(".thumb.jpg",),
           trigger="ryuu, dragon horns", tags=("character", "furry")),
    _Entry("characters/hikari_student", "illustrious", sidecars=("lora_manager",), previews=(".preview.png",),
           trigger="hikari", tags=("character", "anime")),
    _Entry("characters/café_owner", "sd1", previews=(".png",), trigger="café owner", tags=("character",),
           tiny=True),
    _Entry("characters/夜桜_yozakura", "sdxl", previews=(".thumb.jpg",), trigger="yozakura",
           tags=("character", "anime")),
    _Entry("characters/old_wizard", "sd2", trigger="old wizard", tags=("character",)),
    _Entry("characters/nova_pilot", "flux", sidecars=("stability_matrix",), previews=(".preview.png",),
           trigger="nova pilot", tags=("character", "sci-fi")),
    _Entry("styles/watercolor", "sd1", sidecars=("a1111",), previews=(".png",), trigger="watercolor style",
           tags=("style", "painting"), tiny=True),
    _Entry("styles/ink_sketch", "sd2", previews=(".preview.png",), trigger="ink sketch", tags=("style",)),
    _Entry("styles/neon_noir", "flux", sidecars=("stability_matrix", "txt"), previews=(".thumb.jpg",),
           trigger="neon noir", tags=("style", "cinematic")),
    _Entry("styles/film_grain", "sd3", previews=(".png",), trigger="film grain", tags=("style", "photo")),
    _Entry("styles/pastel_dream", "illustrious", sidecars=("civitai_info",), trigger="pastel dream",
           tags=("style", "anime")),
    _Entry("styles/pixel_art", "sdxl", thumbnail=True, trigger="pixel art", tags=("style", "retro")),
    _Entry("styles/oil_painting", "sd1", rank=8, sidecars=("sdnext",), previews=(".png",),
           trigger="oil painting", tags=("style", "painting"), tiny=True),
    _Entry("styles/ukiyo-e", "pony", sidecars=("lora_manager",), previews=(".png",), trigger="ukiyo-e",
           tags=("style", "japanese")),
    _Entry("concepts/detail_tweaker", "sd1", adapter="locon", previews=(".png",), tags=("concept", "detail")),
    _Entry("concepts/glowing_eyes", "sdxl", adapter="loha", trigger="glowing eyes", tags=("concept",)),
    _Entry("concepts/rainy_window", "sd1", adapter="lokr", previews=(".thumb.jpg",), trigger="rainy window",
           tags=("concept", "weather")),
    _Entry("concepts/dora_lighting", "sdxl", adapter="dora", trigger="rim lighting", tags=("concept", "lighting")),
    _Entry("concepts/mystery_keys_only", "sdxl", metadata=False),
    _Entry("concepts/unlabelled_sd15", "sd1", metadata=False, data="zeros"),
    _Entry(f"concepts/{XSS_NAME}", "sd1", title=XSS_NAME, trigger="<b>bold</b>", tags=("<script>",), tiny=True),
    _Entry("concepts/floating_islands", "flux", trigger="floating islands", tags=("concept", "landscape")),
    _Entry("sdxl/watercolor", "sdxl", sidecars=("sdnext",), previews=(".preview.png",),
           trigger="watercolor style", tags=("style", "painting")),
    _Entry("sdxl/cinematic_light", "sdxl", rank=8, text_encoder=False, previews=(".png",),
           trigger="cinematic lighting", tags=("photo", "lighting")),
    _Entry("sdxl/clay_figures", "sdxl", sidecars=("lora_manager",), trigger="clay figure", tags=("style", "3d")),
    _Entry("flux/detail_tweaker", "flux", text_encoder=False, sidecars=("civitai_info",),
           previews=(".png",), tags=("concept", "detail")),
    _Entry("flux/realism_boost", "flux", rank=8, text_encoder=False, trigger="realistic photo",
           tags=("photo",)),
    _Entry("pony/aria_knight", "pony", sidecars=("a1111",), previews=(".png",), trigger="aria knight",
           tags=("character", "fantasy")),
    _Entry("pony/pony_style_mix", "pony", trigger="style mix", tags=("style",)),
    _Entry("illustrious/maid_outfit", "illustrious", previews=(".thumb.jpg",), trigger="maid outfit",
           tags=("clothing", "anime")),
    _Entry("sd3/sd3_product_shot", "sd3", sidecars=("txt",), trigger="product shot", tags=("photo",)),
    _Entry("sd2/sd2_landscapes", "sd2", rank=8, trigger="vast landscape", tags=("landscape",)),
)
# The LoRAs (paths under the root, without extension) that load into the demo model.
DEMO_MODEL_LORAS = tuple(e.rel for e in _ENTRIES if e.tiny)
_DUPLICATE = ("favorites/aria_knight_copy", "characters/aria_knight")  # byte-for-byte copy
_PICKLE = "legacy/old_hypernetwork_style.pt"
_CORRUPT = "legacy/broken_download.safetensors"


def create_demo_library(root: Path, *, seed: int = 0) -> list[Path]:
    """Write the demo library under ``root`` and return its LoRA files (.safetensors and .pt).

    Idempotent: a marker file written last records the files; when it is present nothing is
    written again and the recorded files that still exist are returned.
    """
    root = Path(root)
    done = _read_marker(root)
    if done is not None:
        return done
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for index, entry in enumerate(_ENTRIES):
        files.append(_write_entry(root, entry, seed * 1000 + index))
    copy = root / f"{_DUPLICATE[0]}.safetensors"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes((root / f"{_DUPLICATE[1]}.safetensors").read_bytes())
    files.append(copy)
    files.append(synth.write_pickle_placeholder(root / _PICKLE))
    files.append(synth.write_hostile(root / _CORRUPT, "truncated"))
    rels = [p.relative_to(root).as_posix() for p in files]
    (root / MARKER).write_text(json.dumps({"version": _VERSION, "seed": seed, "files": rels}, ensure_ascii=False,
                                          indent=1), encoding="utf-8")
    return files


def _read_marker(root: Path) -> list[Path] | None:
    try:
        doc = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != _VERSION or not isinstance(doc.get("files"), list):
        return None
    # Files the user deleted since stay deleted: the demo is not recreated behind their back.
    return [root / rel for rel in doc["files"] if isinstance(rel, str) and (root / rel).is_file()]


# --- one LoRA -----------------------------------------------------------------------------


def _write_entry(root: Path, entry: _Entry, seed: int) -> Path:
    path = _lora_path(root, entry.rel)
    stem = path.stem
    name = entry.title or stem.replace("_", " ").title()
    metadata = _metadata(entry, name, entry.title or stem, seed) if entry.metadata else {}
    synth.write_lora(path, entry.family, rank=entry.rank, metadata=metadata, adapter=entry.adapter,
                     text_encoder=entry.text_encoder, data=entry.data, seed=seed, compact=True, tiny=entry.tiny)
    rng = random.Random(f"demo:{entry.rel}:{seed}")
    for suffix in entry.previews:
        _write_preview(path.with_name(stem + suffix), name, rng)
    if entry.sidecars:
        info = _Civitai(entry, name, path, rng)
        for kind in entry.sidecars:
            _SIDECAR_WRITERS[kind](path, info)
    return path


def _lora_path(root: Path, rel: str) -> Path:
    """``rel``.safetensors, or a sanitised name where the filesystem refuses the characters
    (``<``, ``>`` on Windows); the metadata keeps the original as the title."""
    path = root / f"{rel}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.touch()
    except OSError:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.stem).strip("_") or "unnamed"
        path = path.with_name(f"{safe}.safetensors")
    return path


def _metadata(entry: _Entry, title: str, output_name: str, seed: int) -> dict[str, str]:
    overrides: dict[str, object] = {"ss_network_dim": entry.rank, "ss_network_alpha": float(max(1, entry.rank // 2)),
                                    "modelspec_title": title, "ss_output_name": output_name, **entry.overrides}
    if entry.trigger:
        overrides["modelspec_trigger_phrase"] = entry.trigger
    if entry.adapter != "lora":
        algo = {"locon": "locon", "loha": "loha", "lokr": "lokr", "dora": "lora"}[entry.adapter]
        args = {"algo": algo, "conv_dim": "4", "conv_alpha": "1"}
        if entry.adapter == "dora":
            args["dora_wd"] = "True"
        overrides.update(ss_network_module="lycoris.kohya", ss_network_args=json.dumps(args))
    md = synth.realistic_metadata(entry.family, output_name, seed=seed, **overrides)
    if entry.trigger:  # captions that really contain the trigger, so suggestions agree with it
        md["ss_tag_frequency"] = _tag_frequency(entry, seed)
    if entry.thumbnail:
        md["modelspec.thumbnail"] = "data:image/jpeg;base64," + base64.b64encode(
            _image_bytes(title, random.Random(seed), (128, 128), "JPEG")).decode("ascii")
    return md


def _tag_frequency(entry: _Entry, seed: int) -> str:
    rng = random.Random(f"tags:{entry.rel}:{seed}")
    images = rng.randint(20, 60)
    tags = {entry.trigger: images}
    for tag in rng.sample(("1girl", "solo", "smile", "outdoors", "portrait", "detailed background",
                           "looking at viewer", "upper body", "night", "blue sky", "masterpiece"), 6):
        tags[tag] = rng.randint(1, images - 1)
    for tag in entry.tags:
        tags.setdefault(tag, rng.randint(1, images // 2))
    return json.dumps({f"10_{entry.trigger}": tags}, ensure_ascii=False)


# --- previews -----------------------------------------------------------------------------


def _write_preview(path: Path, text: str, rng: random.Random) -> None:
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    path.write_bytes(_image_bytes(text, rng, (256, 320), fmt))


def _image_bytes(text: str, rng: random.Random, size: tuple[int, int], fmt: str) -> bytes:
    """A small real picture: a two-colour gradient, a few shapes and the LoRA's name."""
    from PIL import Image, ImageDraw  # imported here: only demo creation needs Pillow

    w, h = size
    top = tuple(rng.randint(30, 220) for _ in range(3))
    bottom = tuple(rng.randint(30, 220) for _ in range(3))
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    for _ in range(6):
        x, y, r = rng.randint(0, w), rng.randint(0, h), rng.randint(8, w // 4)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=3)
    label = text.encode("ascii", "replace").decode("ascii")[:28]  # the default font is ASCII-only
    draw.rectangle([0, h - 28, w, h], fill=(0, 0, 0))
    draw.text((8, h - 22), label, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 80} if fmt == "JPEG" else {"optimize": True}))
    return out.getvalue()


# --- sidecars in other tools' formats -----------------------------------------------------


class _Civitai:
    """Plausible CivitAI identifiers and texts for one demo LoRA (deterministic)."""

    def __init__(self, entry: _Entry, name: str, path: Path, rng: random.Random):
        self.entry, self.name, self.path = entry, name, path
        self.model_id = 100_000 + zlib.crc32(entry.rel.encode()) % 800_000
        self.version_id = self.model_id * 3 + 7
        self.base = _CIVITAI_BASE[entry.family]
        self.words = [w.strip() for w in (entry.trigger or "").split(",") if w.strip()]
        self.tags = list(entry.tags)
        self.created = _EPOCH + timedelta(days=rng.randint(0, 500), seconds=rng.randint(0, 86_399))
        self.downloads = rng.randint(50, 90_000)
        data = path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.crc32 = f"{zlib.crc32(data):08X}"
        self.size = len(data)
        self.title = name
        self.description = f"<p>{self.title}: a demo LoRA for {self.base}.</p><p>Use weight 0.6–0.9.</p>"

    def iso(self) -> str:
        return self.created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def file(self) -> dict:
        return {"id": self.version_id * 2, "name": self.path.name, "type": "Model", "sizeKB": round(self.size / 1024, 4),
                "metadata": {"format": "SafeTensor", "size": None, "fp": "fp16"}, "primary": True,
                "hashes": {"AutoV2": self.sha256[:10].upper(), "SHA256": self.sha256.upper(), "CRC32": self.crc32},
                "downloadUrl": f"https://civitai.com/api/download/models/{self.version_id}"}

    def images(self) -> list[dict]:
        return [{"url": f"https://image.civitai.com/demo/{self.version_id}/{i}.jpeg", "nsfwLevel": 1, "width": 832,
                 "height": 1216, "hash": "U5F~Oy00_3of_NRjWBt7~q%M4nWB", "type": "image",
                 "meta": {"prompt": f"{', '.join(self.words) or self.title}, masterpiece",
                          "negativePrompt": "lowres, blurry", "steps": 28, "cfgScale": 6.5,
                          "sampler": "DPM++ 2M Karras", "seed": 1000 + i}} for i in range(2)]

    def version(self) -> dict:
        """A ``/api/v1/model-versions/{id}`` payload."""
        return {"id": self.version_id, "modelId": self.model_id, "name": "v1.0", "createdAt": self.iso(),
                "updatedAt": self.iso(), "status": "Published", "publishedAt": self.iso(),
                "trainedWords": self.words, "baseModel": self.base, "baseModelType": "Standard",
                "description": "<p>First release.</p>", "stats": {"downloadCount": self.downloads, "ratingCount": 0,
                                                                  "rating": 0, "thumbsUpCount": self.downloads // 40},
                "model": {"name": self.title, "type": "LORA", "nsfw": False, "poi": False},
                "files": [self.file()], "images": self.images(),
                "downloadUrl": f"https://civitai.com/api/download/models/{self.version_id}"}

    def model(self) -> dict:
        """A ``/api/v1/models/{id}`` payload (what SDNext saves as ``<stem>.json``)."""
        version = {k: v for k, v in self.version().items() if k not in ("model", "modelId")}
        return {"id": self.model_id, "name": self.title, "description": self.description, "type": "LORA",
                "poi": False, "nsfw": False, "allowNoCredit": True, "allowCommercialUse": ["Image"],
                "allowDerivatives": True, "stats": {"downloadCount": self.downloads, "favoriteCount": 0,
                                                    "commentCount": 0, "ratingCount": 0, "rating": 0},
                "creator": {"username": "demo_artist", "image": None}, "tags": self.tags,
                "modelVersions": [version]}


def _write_json(path: Path, doc: object, *, indent: int = 2) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=indent), encoding="utf-8")


def _dotnet_json(doc: object) -> str:
    """JSON as System.Text.Json writes it by default: compact, non-ASCII and HTML-sensitive
    characters escaped as \\uXXXX (only possible inside strings, so replacing is safe)."""
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    for char, escape in (("<", "\\u003C"), (">", "\\u003E"), ("&", "\\u0026"), ("'", "\\u0027"), ("+", "\\u002B")):
        text = text.replace(char, escape)
    return text


def _sdnext(path: Path, info: _Civitai) -> None:
    _write_json(path.with_suffix(".json"), info.model(), indent=4)


def _description_txt(path: Path, info: _Civitai) -> None:
    text = (f"{info.title}\n\nA demo LoRA for {info.base}. Trigger: {', '.join(info.words) or 'none'}.\n"
            "Works best at weight 0.7.\n")
    path.with_suffix(".txt").write_text(text, encoding="utf-8")


def _a1111(path: Path, info: _Civitai) -> None:
    """AUTOMATIC1111's Lora user metadata (the networks page's edit dialog)."""
    _write_json(path.with_suffix(".json"), {
        "description": f"{info.title}, trained for {info.base}.",
        "sd version": _A1111_VERSION.get(info.entry.family, "Unknown"),
        "activation text": ", ".join(info.words),
        "preferred weight": 0.8,
        "negative text": "lowres, bad anatomy",
        "notes": "Strong at 1.0; 0.8 keeps the style of the checkpoint.",
    }, indent=4)


def _civitai_info(path: Path, info: _Civitai) -> None:
    """CH's ``.civitai.info``: the model-version payload it found by hash."""
    _write_json(path.with_name(path.stem + ".civitai.info"), info.version(), indent=4)


def _lora_manager(path: Path, info: _Civitai) -> None:
    """ComfyUI-Lora-Manager's ``.metadata.json``, as its schema describes it
    (https://github.com/willmiao/ComfyUI-Lora-Manager/blob/HEAD/docs/metadata-json-schema.md)."""
    preview = next((path.with_name(path.stem + s) for s in info.entry.previews), None)
    _write_json(path.with_name(path.stem + ".metadata.json"), {
        "file_name": path.stem,
        "model_name": info.title,
        "file_path": path.as_posix(),
        "size": info.size,
        "modified": info.created.timestamp(),
        "sha256": info.sha256,
        "base_model": info.base,
        "preview_url": preview.as_posix() if preview else "",
        "preview_nsfw_level": 1,
        "notes": "Pairs well with a low CFG.",
        "from_civitai": True,
        "civitai": info.version(),
        "tags": info.tags,
        "modelDescription": info.description,
        "civitai_deleted": False,
        "favorite": True,
        "exclude": False,
        "db_checked": False,
        "skip_metadata_refresh": False,
        "metadata_source": "civitai_api",
        "last_checked_at": info.created.timestamp() + 3600,
        "hash_status": "completed",
        "usage_tips": json.dumps({"strength_min": 0.5, "strength_max": 0.9, "strength_range": "0.5-0.9",
                                  "strength": 0.7, "clip_strength": 1.0, "clip_skip": 2}),
    })


def _stability_matrix(path: Path, info: _Civitai) -> None:
    """Stability Matrix's ``.cm-info.json`` (ConnectedModelInfo, System.Text.Json defaults:
    PascalCase, compact, enums by name where a converter says so, ``Source`` as a number)."""
    path.with_name(path.stem + ".cm-info.json").write_text(_dotnet_json({
        "ModelId": info.model_id, "ModelName": info.title, "ModelDescription": info.description,
        "Nsfw": False, "Tags": info.tags, "ModelType": "LORA", "VersionId": info.version_id,
        "VersionName": "v1.0", "VersionDescription": "<p>First release.</p>", "BaseModel": info.base,
        "FileMetadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
        "ImportedAt": info.created.isoformat(timespec="microseconds").replace("+00:00", "0+00:00"),
        "Hashes": {"SHA256": info.sha256.upper(), "CRC32": info.crc32, "BLAKE3": None},
        "TrainedWords": info.words,
        "Stats": {"favoriteCount": 0, "commentCount": 0, "thumbsUpCount": info.downloads // 40,
                  "downloadCount": info.downloads, "ratingCount": 0, "rating": 0},
        "UserTitle": None, "ThumbnailImageUrl": None, "InferenceDefaults": None, "Source": 0,
    }), encoding="utf-8")


_SIDECAR_WRITERS = {"sdnext": _sdnext, "txt": _description_txt, "a1111": _a1111,
                    "civitai_info": _civitai_info, "lora_manager": _lora_manager,
                    "stability_matrix": _stability_matrix}
