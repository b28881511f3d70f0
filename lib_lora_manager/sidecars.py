"""Other tools' sidecar files and previews next to a LoRA: found, read and merged, never written.

A LoRA ``<dir>/<stem>.safetensors`` may have files written by SDNext, AUTOMATIC1111 and peer
managers next to it. They are optional, often stale, sometimes broken; every problem becomes a
readable string in ``SidecarData.errors`` and the other sidecars are still read.

The formats (field names checked against each project's source):

``<stem>.json`` (SDNext, A1111 and forks)
    SDNext's networks page reads it as an "info" dict: usually the CivitAI *model* payload
    (``/api/v1/models/{id}``: ``id, name, description`` (HTML), ``tags, nsfw, modelVersions[{id,
    name, baseModel, trainedWords, files, images}]``) saved by its metadata scan, or whatever the
    user saved from the info editor. SDNext picks the version whose file hashes match; we do not
    hash here, so the first version is taken. A1111's Lora extension writes user metadata to the
    same name: ``description, "sd version", "activation text", "preferred weight", "negative
    text", notes``; Civitai Browser+ and a fork of CH (below) write that shape too. The
    two are told apart by their keys; a file with both is read as both.
``<stem>.txt`` (SDNext)
    Plain-text description; SDNext prefers it over the JSON's.
``<stem>.civitai.info`` (CH: butaixianran's Stable-Diffusion-Webui-Civitai-Helper and forks)
    The CivitAI model-*version* payload found by hash (``id, modelId, name, baseModel,
    trainedWords, description, model{name, type, nsfw}, files, images``).
``<stem>.metadata.json`` (ComfyUI-Lora-Manager)
    ``file_name, model_name, file_path, size, modified, sha256, base_model, preview_url,
    preview_nsfw_level, notes, from_civitai, civitai`` (the version payload, with user-edited
    ``trainedWords``), ``tags, modelDescription, usage_tips`` (a JSON *string* with ``strength,
    strength_min, strength_max, strength_range, clip_strength, clip_skip``), ``favorite`` …
``<stem>.cm-info.json`` (Stability Matrix)
    ``ModelId, ModelName, ModelDescription, Nsfw, Tags, ModelType, VersionId, VersionName,
    VersionDescription, BaseModel, TrainedWords, Hashes, UserTitle, InferenceDefaults`` (sampler,
    steps, size: checkpoint settings, not LoRA weights) …

Previews are looked up the way SDNext does (``modules/ui_extra_networks.py``): for each
extension in ``PREVIEW_EXTENSIONS``, ``<stem>.thumb.<ext>``, ``<stem>.<ext>``,
``<stem>.preview.<ext>``. That already covers the peers' ``.preview.png`` (CH),
``.webp`` and ``.preview.webp`` (Lora Manager) and ``.preview.jpeg`` conventions; GIF previews
(Lora Manager) come after, and upper-case extensions (``.PNG`` from Windows tools, which SDNext
misses) after all exact matches.

Precedence when several sidecars say different things: what a user typed (A1111 activation
text, preferred weight, notes; Lora Manager notes and usage tips; a ``.txt`` description) wins
over data fetched from CivitAI, and among CivitAI data the sources tied to this exact file
(CH and Stability Matrix looked it up by hash or downloaded it) win over SDNext's
model JSON, whose version is a guess.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from . import fields
from .base_models import family_code, refines

__all__ = [
    "MAX_SIDECAR_BYTES",
    "PREVIEW_EXTENSIONS",
    "SidecarData",
    "find_preview",
    "read_sidecars",
    "sidecar_names",
    "sidecar_signature",
    "split_trigger_words",
]

# SDNext's list and order (modules/ui_extra_networks.py find_preview_file / update_all_previews).
PREVIEW_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "tiff", "jp2", "jxl")
_PREVIEW_INFIXES = (".thumb.", ".", ".preview.")  # tried in this order within each extension
_EXTRA_PREVIEW_EXTENSIONS = ("gif",)  # Lora Manager shows animated previews; SDNext does not
_VIDEO_EXTENSIONS = ("mp4", "webm")  # Lora Manager previews: they belong to the LoRA, but are not images

# Data sidecars, in reading order.
METADATA_JSON = ".metadata.json"  # ComfyUI-Lora-Manager
CIVITAI_INFO = ".civitai.info"  # CH
CM_INFO = ".cm-info.json"  # Stability Matrix
INFO_JSON = ".json"  # SDNext info / A1111 user metadata
DESCRIPTION_TXT = ".txt"  # SDNext description
_DATA_SUFFIXES = (METADATA_JSON, CIVITAI_INFO, CM_INFO, INFO_JSON, DESCRIPTION_TXT)
# Files other tools keep with a LoRA that we do not read but that travel with it.
_OTHER_SUFFIXES = (".api_info.json", ".html", ".sha256")  # Civitai Browser+, hash files

MAX_SIDECAR_BYTES = 8 * 1024 * 1024
MAX_DESCRIPTION_CHARS = 20_000
_MAX_HTML_INPUT_CHARS = 400_000  # HTML parsed before cutting to text; keeps CPU bounded
_MAX_NOTES_CHARS = 20_000
_MAX_NEGATIVE_CHARS = 5_000
_MAX_NAME_CHARS = 300
_MAX_WORD_CHARS = 200
_MAX_TRIGGER_WORDS = 100
_MAX_TAG_CHARS = 100
_MAX_TAGS = 200
_MAX_ERRORS_PER_FILE = 5

# Priorities: lower wins. User-typed data first, then CivitAI data tied to this exact file,
# then SDNext's model JSON (first version, a guess), then coarse hints.
_USER = 0
_LM_USER = 5
_LM = 10
_CH = 20
_SM = 21
_LM_CIVITAI = 22
_SDNEXT = 30
_VERSION_TEXT = 40
_A1111_SD_VERSION = 50


def _preview_suffixes() -> tuple[str, ...]:
    sdnext = [infix + ext for ext in PREVIEW_EXTENSIONS for infix in _PREVIEW_INFIXES]
    extra = [infix + ext for ext in _EXTRA_PREVIEW_EXTENSIONS for infix in _PREVIEW_INFIXES]
    return tuple(sdnext + extra)


def _upper_extension(suffix: str) -> str:
    head, _, ext = suffix.rpartition(".")
    return f"{head}.{ext.upper()}"


_PREVIEW_SUFFIXES = _preview_suffixes()
_VIDEO_SUFFIXES = tuple(infix + ext for ext in _VIDEO_EXTENSIONS for infix in (".preview.", "."))
# Every suffix that makes a file part of a LoRA, in the order sidecar_names lists them.
_ALL_SUFFIXES = _DATA_SUFFIXES + _PREVIEW_SUFFIXES + _VIDEO_SUFFIXES + _OTHER_SUFFIXES
_ALL_SUFFIXES_LOWER = frozenset(_ALL_SUFFIXES)
# Exact (lower-case) suffixes first, then the same with an upper-case extension (".PNG").
_NAME_SUFFIX_PASSES = (_ALL_SUFFIXES, tuple(_upper_extension(s) for s in _ALL_SUFFIXES))
_PREVIEW_SUFFIX_PASSES = (_PREVIEW_SUFFIXES, tuple(_upper_extension(s) for s in _PREVIEW_SUFFIXES))


# --- which files belong to a LoRA ----------------------------------------------------------------


def sidecar_names(stem: str, names: Collection[str], *, lora_stems: Collection[str] = ()) -> list[str]:
    """The names in a directory listing that are this LoRA's sidecars or previews.

    Data sidecars come first (in reading order), then previews in SDNext's search order, then
    other known companions; lower-case suffixes before upper-case ones. A name that is another
    LoRA's sidecar is left out: with ``a.safetensors`` and ``a.preview.safetensors`` in
    ``lora_stems``, ``a.preview.png`` belongs to ``a.preview``. Only exact stems and known
    suffixes match, so ``a.backup.zip`` is nobody's. Sets make ``names``/``lora_stems`` lookups
    O(1); other collections are copied into one first.
    """
    if not stem:
        return []
    names = _as_set(names)
    lora_stems = _as_set(lora_stems)
    found: list[str] = []
    for suffixes in _NAME_SUFFIX_PASSES:
        for suffix in suffixes:
            name = stem + suffix
            if name in names and name not in found and not _owned_by_longer_stem(stem, suffix, lora_stems):
                found.append(name)
    return found


def find_preview(stem: str, names: Collection[str], *, lora_stems: Collection[str] = ()) -> str | None:
    """The file name of the preview SDNext would show for this LoRA, or a peer's preview.

    Order: SDNext's (``.thumb.``, ``.``, ``.preview.`` for each of ``PREVIEW_EXTENSIONS`` in
    turn), then GIFs, then the same with upper-case extensions. None when there is none.
    """
    if not stem:
        return None
    names = _as_set(names)
    lora_stems = _as_set(lora_stems)
    for suffixes in _PREVIEW_SUFFIX_PASSES:
        for suffix in suffixes:
            if stem + suffix in names and not _owned_by_longer_stem(stem, suffix, lora_stems):
                return stem + suffix
    return None


def _owned_by_longer_stem(stem: str, suffix: str, lora_stems: Collection[str]) -> bool:
    """Whether ``stem + suffix`` is really ``longer_stem + known_suffix`` for another LoRA."""
    cut = 0
    while (cut := suffix.find(".", cut + 1)) > 0:
        if stem + suffix[:cut] in lora_stems and suffix[cut:].lower() in _ALL_SUFFIXES_LOWER:
            return True
    return False


def _as_set(items: Collection[str]) -> Collection[str]:
    return items if isinstance(items, (set, frozenset, dict)) else frozenset(items)


def sidecar_signature(directory: str, names: Iterable[str]) -> str:
    """A short digest of the names, sizes and mtimes of ``names`` in ``directory``.

    One ``os.stat`` per name; the order of ``names`` does not matter. A rescan compares it with
    the stored one and re-reads sidecars only when it differs. Files that vanished or cannot be
    stat'ed are part of the signature as such, so their return is noticed too.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(set(names)):
        try:
            st = os.stat(os.path.join(directory, name))
            entry = f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n"
        except OSError as e:
            entry = f"{name}\0error {e.errno}\n"
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


# --- the merged result ------------------------------------------------------------------------


@dataclass
class SidecarData:
    """What this LoRA's sidecars say, merged; every field is optional."""

    description: str | None = None  # plain text, at most MAX_DESCRIPTION_CHARS
    trigger_words: list[str] = field(default_factory=list)
    preferred_weight: float | None = None
    weight_range: tuple[float, float] | None = None  # (min, max) suggested strength
    notes: str | None = None
    tags: list[str] = field(default_factory=list)  # lower case, deduplicated
    base_model: str | None = None  # family code (base_models), None when unknown
    base_model_text: str | None = None  # the string it came from, e.g. "Pony" or "SDXL 1.0"
    civitai: dict | None = None  # model_id, version_id, model_name, version_name, nsfw, url
    nsfw: bool | None = None
    display_name: str | None = None
    preview: str | None = None  # file name in the LoRA's directory
    sources: list[str] = field(default_factory=list)  # sidecar files that contributed
    errors: list[str] = field(default_factory=list)  # "name: problem", one per problem
    negative_text: str | None = None  # A1111 "negative text", added to negative prompts


def read_sidecars(directory: str, stem: str, names: Collection[str], *, lora_stems: Collection[str] = (),
                  refused: Mapping[str, str] | None = None) -> SidecarData:
    """Read and merge every sidecar of ``<directory>/<stem>.*`` found in ``names``.

    ``names`` is the directory listing (or the part of it the caller already grouped for this
    LoRA); nothing else is listed. Files over MAX_SIDECAR_BYTES, invalid JSON or UTF-8 and
    wrongly typed fields become ``errors`` entries; this never raises for file content or I/O.
    ``refused`` names (links leaving the library, see boundary.py) are neither read nor used as
    the preview; each is an error entry with its reason.
    """
    owned = sidecar_names(stem, names, lora_stems=lora_stems)
    merge = _Merge()
    if refused:
        merge.errors.extend(f"{name}: {refused[name]}" for name in owned if name in refused)
        owned = [name for name in owned if name not in refused]
    for suffix, reader in _READERS:
        name = _pick(stem, suffix, owned)
        if name is None:
            continue
        file = _File(name)
        reader(directory, file, merge)
        merge.errors.extend(file.problems[:_MAX_ERRORS_PER_FILE])
        if file.contributed:
            merge.sources.append(name)
    return merge.result(preview=find_preview(stem, owned))


def _pick(stem: str, suffix: str, owned: list[str]) -> str | None:
    for candidate in (stem + suffix, stem + _upper_extension(suffix)):
        if candidate in owned:
            return candidate
    return None


# --- reading files ------------------------------------------------------------------------------


class _File:
    """One sidecar being read: its name, the problems found, whether it gave anything."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []
        self.contributed = False

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.name}: {text}")


def _read_bytes(directory: str, file: _File) -> bytes | None:
    """The file's bytes, or None with a problem recorded (too large, unreadable, not a file)."""
    path = os.path.join(directory, file.name)
    try:
        # O_NONBLOCK: a FIFO named like a sidecar must not hang the scan.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        file.problem(f"cannot open: {e.strerror or e}")
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            file.problem("not a regular file")
            return None
        if st.st_size > MAX_SIDECAR_BYTES:
            file.problem(f"{st.st_size:,} bytes is over the {_size_text(MAX_SIDECAR_BYTES)} limit for sidecars; skipped")
            return None
        with open(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SIDECAR_BYTES + 1)  # bounded even if the file grows meanwhile
    except OSError as e:
        file.problem(f"cannot read: {e.strerror or e}")
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_SIDECAR_BYTES:
        file.problem(f"over the {_size_text(MAX_SIDECAR_BYTES)} limit for sidecars; skipped")
        return None
    return data


def _decode(data: bytes, file: _File) -> str | None:
    try:
        return data.decode("utf-8-sig")  # -sig: editors on Windows add a BOM
    except UnicodeDecodeError as e:
        file.problem(f"not UTF-8 text (invalid byte at offset {e.start})")
        return None


def _read_json(directory: str, file: _File) -> dict | None:
    data = _read_bytes(directory, file)
    text = _decode(data, file) if data is not None else None
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=lambda _name: None)  # NaN/Infinity are not data
    except json.JSONDecodeError as e:
        file.problem(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
        return None
    except RecursionError:
        file.problem("invalid JSON: nested too deeply")
        return None
    except ValueError as e:  # e.g. an integer literal with thousands of digits
        file.problem(f"invalid JSON: {str(e)[:200]}")
        return None
    if not isinstance(value, dict):
        file.problem(f"expected a JSON object, found {_kind(value)}")
        return None
    return value


def _read_lora_manager(directory: str, file: _File, merge: _Merge) -> None:
    doc = _read_json(directory, file)
    if doc is None:
        return
    f = _Fields(doc, file, merge)
    f.text("notes", "notes", _LM_USER, limit=_MAX_NOTES_CHARS)
    _read_usage_tips(f, doc.get("usage_tips"))
    name = f.get_text("model_name", limit=_MAX_NAME_CHARS)
    if name and name != doc.get("file_name"):  # LM defaults model_name to the file name
        merge.offer("display_name", name, _LM_USER, file)
    f.base_model("base_model", _LM)
    f.description("modelDescription", _LM)
    f.tags("tags", _LM)
    civitai = doc.get("civitai")
    if isinstance(civitai, dict):
        _read_version_payload(civitai, file, merge, _LM_CIVITAI)
    elif civitai is not None:
        file.problem(f"'civitai' should be an object, found {_kind(civitai)}")


def _read_usage_tips(f: _Fields, raw: Any) -> None:
    """Lora Manager's usage_tips: a JSON string (or, leniently, an object) of strengths."""
    if raw is None or raw == "":
        return
    tips = raw
    if isinstance(raw, str):
        try:
            tips = json.loads(raw, parse_constant=lambda _name: None)
        except (json.JSONDecodeError, RecursionError, ValueError):
            f.file.problem("'usage_tips' is not valid JSON")
            return
    if not isinstance(tips, dict):
        f.file.problem(f"'usage_tips' should be an object, found {_kind(tips)}")
        return
    sub = _Fields(tips, f.file, f.merge, label="usage_tips.")
    strength = sub.get_number("strength")
    if strength is not None:
        f.merge.offer("preferred_weight", strength, _LM_USER, f.file)
    low, high = sub.get_number("strength_min"), sub.get_number("strength_max")
    if low is None or high is None:
        low, high = _parse_range(tips.get("strength_range"))
    if low is not None and high is not None and low <= high:
        f.merge.offer("weight_range", (low, high), _LM_USER, f.file)


def _read_civitai_info(directory: str, file: _File, merge: _Merge) -> None:
    doc = _read_json(directory, file)
    if doc is not None:
        _read_version_payload(doc, file, merge, _CH)


def _read_stability_matrix(directory: str, file: _File, merge: _Merge) -> None:
    doc = _read_json(directory, file)
    if doc is None:
        return
    f = _Fields(doc, file, merge)
    f.text("display_name", "UserTitle", _USER, limit=_MAX_NAME_CHARS)
    f.base_model("BaseModel", _SM)
    f.trigger_words("TrainedWords", _SM)
    f.tags("Tags", _SM)
    f.description("ModelDescription", _SM)
    f.description("VersionDescription", _VERSION_TEXT + 1)
    f.flag("nsfw", "Nsfw", _SM)
    f.civitai(_SM, model_id="ModelId", version_id="VersionId", model_name="ModelName",
              version_name="VersionName", nsfw="Nsfw")
    f.text("display_name", "ModelName", _SM, limit=_MAX_NAME_CHARS)


_A1111_KEYS = ("sd version", "activation text", "preferred weight", "negative text", "notes")


def _read_info_json(directory: str, file: _File, merge: _Merge) -> None:
    """``<stem>.json``: A1111-style user metadata, a CivitAI model or version payload, or both."""
    doc = _read_json(directory, file)
    if doc is None:
        return
    f = _Fields(doc, file, merge)
    is_user_metadata = any(key in doc for key in _A1111_KEYS)
    if is_user_metadata:
        f.description("description", _USER + 1)
        f.trigger_words("activation text", _USER, user=True)
        weight = f.get_number("preferred weight")
        if weight:  # A1111 saves 0 for "no preference"
            merge.offer("preferred_weight", weight, _USER, file)
        f.text("notes", "notes", _USER, limit=_MAX_NOTES_CHARS)
        f.text("negative_text", "negative text", _USER, limit=_MAX_NEGATIVE_CHARS)
        f.base_model("sd version", _A1111_SD_VERSION)
    if isinstance(doc.get("modelVersions"), list) or ("id" in doc and "name" in doc and "modelId" not in doc):
        _read_model_payload(doc, file, merge, _SDNEXT, with_description=not is_user_metadata)
    elif "modelId" in doc:
        _read_version_payload(doc, file, merge, _SDNEXT)
    elif not is_user_metadata and "description" in doc:
        f.description("description", _SDNEXT)  # an info dict edited in SDNext


def _read_description_txt(directory: str, file: _File, merge: _Merge) -> None:
    data = _read_bytes(directory, file)
    if data is None:
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        # SDNext reads it with errors="replace"; keep the text and say why it looks odd.
        file.problem(f"not UTF-8 text (invalid byte at offset {e.start}); undecodable bytes replaced")
        text = data.decode("utf-8", errors="replace")
    merge.offer("description", _plain_text(_clean_text(text), MAX_DESCRIPTION_CHARS), _USER, file)


def _read_model_payload(doc: dict, file: _File, merge: _Merge, priority: int, *, with_description: bool = True) -> None:
    """A CivitAI ``/models/{id}`` payload; its first version stands for this file."""
    f = _Fields(doc, file, merge)
    f.text("display_name", "name", priority, limit=_MAX_NAME_CHARS)
    f.tags("tags", priority)
    f.flag("nsfw", "nsfw", priority)
    if with_description:
        f.description("description", priority)
    versions = doc.get("modelVersions")
    version = versions[0] if isinstance(versions, list) and versions else None
    if version is not None and not isinstance(version, dict):
        file.problem(f"'modelVersions' should hold objects, found {_kind(version)}")
        version = None
    v = _Fields(version or {}, file, merge, label="modelVersions[0].")
    v.base_model("baseModel", priority)
    v.trigger_words("trainedWords", priority)
    merge.offer_civitai({
        "model_id": f.get_id("id"),
        "version_id": v.get_id("id"),
        "model_name": f.get_text("name", limit=_MAX_NAME_CHARS),
        "version_name": v.get_text("name", limit=_MAX_NAME_CHARS),
        "nsfw": f.get_bool("nsfw"),
    }, priority, file)


def _read_version_payload(doc: dict, file: _File, merge: _Merge, priority: int) -> None:
    """A CivitAI ``/model-versions/…`` payload (CH's .civitai.info, Lora Manager's ``civitai``)."""
    f = _Fields(doc, file, merge, label="civitai." if priority == _LM_CIVITAI else "")
    f.base_model("baseModel", priority)
    f.trigger_words("trainedWords", priority)
    f.description("description", _VERSION_TEXT)
    model = doc.get("model")
    if model is not None and not isinstance(model, dict):
        file.problem(f"'{f.label}model' should be an object, found {_kind(model)}")
        model = None
    m = _Fields(model or {}, file, merge, label=f.label + "model.")
    m.text("display_name", "name", priority, limit=_MAX_NAME_CHARS)
    m.flag("nsfw", "nsfw", priority)
    m.tags("tags", priority)
    m.description("description", priority)
    merge.offer_civitai({
        "model_id": f.get_id("modelId"),
        "version_id": f.get_id("id"),
        "model_name": m.get_text("name", limit=_MAX_NAME_CHARS),
        "version_name": f.get_text("name", limit=_MAX_NAME_CHARS),
        "nsfw": m.get_bool("nsfw"),
    }, priority, file)


_READERS = (
    (METADATA_JSON, _read_lora_manager),
    (CIVITAI_INFO, _read_civitai_info),
    (CM_INFO, _read_stability_matrix),
    (INFO_JSON, _read_info_json),
    (DESCRIPTION_TXT, _read_description_txt),
)


# --- typed field access -----------------------------------------------------------------------


class _Fields:
    """Typed reads from one JSON object; a present value of the wrong type is a problem."""

    def __init__(self, doc: dict, file: _File, merge: _Merge, label: str = "") -> None:
        self.doc, self.file, self.merge, self.label = doc, file, merge, label

    def _wrong(self, key: str, expected: str, value: Any) -> None:
        self.file.problem(f"'{self.label}{key}' should be {expected}, found {_kind(value)}")

    def get_text(self, key: str, *, limit: int = _MAX_NAME_CHARS) -> str | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. a version named 2 or base model 1.5
        if not isinstance(value, str):
            self._wrong(key, "text", value)
            return None
        value = _clean_text(value).strip()
        return value[:limit] if value else None

    def get_number(self, key: str) -> float | None:
        raw = self.doc.get(key)
        if raw is None or raw == "":
            return None
        value = raw
        if isinstance(raw, str):
            try:
                value = float(raw)
            except ValueError:
                value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._wrong(key, "a finite number", raw)
            return None
        return float(value)

    def get_bool(self, key: str) -> bool | None:
        value = self.doc.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(key, "true or false", value)
        return None

    def get_id(self, key: str) -> int | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self._wrong(key, "a positive integer", value)
            return None
        return value

    def text(self, target: str, key: str, priority: int, *, limit: int = _MAX_NAME_CHARS) -> None:
        self.merge.offer(target, self.get_text(key, limit=limit), priority, self.file)

    def base_model(self, key: str, priority: int) -> None:
        text = self.get_text(key)
        if text and family_code(text) != "unknown":  # "Unknown", "Other": no information
            self.merge.offer("base_model_text", text, priority, self.file)

    def flag(self, target: str, key: str, priority: int) -> None:
        self.merge.offer(target, self.get_bool(key), priority, self.file)

    def description(self, key: str, priority: int) -> None:
        value = self.get_text(key, limit=_MAX_HTML_INPUT_CHARS)
        if value:
            self.merge.offer("description", _plain_text(value, MAX_DESCRIPTION_CHARS), priority, self.file)

    def trigger_words(self, key: str, priority: int, *, user: bool = False) -> None:
        value = self.doc.get(key)
        if value is None:
            return
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self._wrong(key, "a list of text", value)
            return
        not_text = [item for item in value if not isinstance(item, str)]
        if not_text:
            self._wrong(key, "a list of text", not_text[0])
        words = [w for item in value if isinstance(item, str) for w in split_trigger_words(_clean_text(item))]
        self.merge.extend("user_trigger_words" if user else "trigger_words", words, priority, self.file)

    def tags(self, key: str, priority: int) -> None:
        value = self.doc.get(key)
        if value is None:
            return
        if isinstance(value, dict):  # some saved infos map tag -> count
            value = list(value)
        if not isinstance(value, list):
            self._wrong(key, "a list", value)
            return
        tags = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item  # older payloads: [{"name": …}]
            if isinstance(name, str) and (tag := _normalize_tag(name)):
                tags.append(tag)
        self.merge.extend("tags", tags, priority, self.file)

    def civitai(self, priority: int, **keys: str) -> None:
        self.merge.offer_civitai({
            "model_id": self.get_id(keys["model_id"]),
            "version_id": self.get_id(keys["version_id"]),
            "model_name": self.get_text(keys["model_name"]),
            "version_name": self.get_text(keys["version_name"]),
            "nsfw": self.get_bool(keys["nsfw"]),
        }, priority, self.file)


# --- merging -------------------------------------------------------------------------------------


_CIVITAI_KEYS = ("model_id", "version_id", "model_name", "version_name", "nsfw")


class _Merge:
    """Collects offers from every sidecar; the lowest priority number wins each field."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, int, Any]]] = {}
        self.lists: dict[str, list[tuple[int, int, list[str]]]] = {}
        self.civitai: list[tuple[int, int, dict]] = []
        self.sources: list[str] = []
        self.errors: list[str] = []
        self._order = 0  # ties keep reading order

    def _next(self) -> int:
        self._order += 1
        return self._order

    def offer(self, name: str, value: Any, priority: int, file: _File) -> None:
        if value is None or value == "":
            return
        self.scalars.setdefault(name, []).append((priority, self._next(), value))
        file.contributed = True

    def extend(self, name: str, values: list[str], priority: int, file: _File) -> None:
        if values:
            self.lists.setdefault(name, []).append((priority, self._next(), values))
            file.contributed = True

    def offer_civitai(self, info: dict, priority: int, file: _File) -> None:
        if info.get("model_id") or info.get("version_id"):
            self.civitai.append((priority, self._next(), info))
            file.contributed = True

    def best(self, name: str) -> Any:
        offers = self.scalars.get(name)
        return min(offers)[2] if offers else None

    def union(self, name: str, limit: int) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        for _priority, _order, values in sorted(self.lists.get(name, []), key=lambda o: o[:2]):
            for value in values:
                if value.casefold() not in seen:
                    seen.add(value.casefold())
                    out.append(value)
        return out[:limit]

    def result(self, preview: str | None) -> SidecarData:
        # A user's activation text replaces CivitAI's trained words instead of adding to them:
        # it is what they chose to insert with the LoRA.
        words = self.union("user_trigger_words", _MAX_TRIGGER_WORDS) or self.union("trigger_words", _MAX_TRIGGER_WORDS)
        civitai = self._civitai()
        base_text, base_code = self._base_model()
        nsfw = civitai["nsfw"] if civitai and civitai["nsfw"] is not None else self.best("nsfw")
        return SidecarData(
            description=self.best("description"),
            trigger_words=words,
            preferred_weight=self.best("preferred_weight"),
            weight_range=self.best("weight_range"),
            notes=self.best("notes"),
            tags=self.union("tags", _MAX_TAGS),
            base_model=base_code,
            base_model_text=base_text,
            civitai=civitai,
            nsfw=nsfw,
            display_name=self.best("display_name"),
            preview=preview,
            sources=self.sources,
            errors=self.errors,
            negative_text=self.best("negative_text"),
        )

    def _base_model(self) -> tuple[str | None, str | None]:
        """The best base-model string that names a family, or a narrower family of it that a
        lesser source names (CivitAI's "Pony" over A1111's coarse "SDXL", whatever their
        order); else the best non-empty string."""
        offers = sorted(self.scalars.get("base_model_text", []), key=lambda o: o[:2])
        fallback = None
        best: tuple[str, str] | None = None
        for _priority, _order, text in offers:
            code = family_code(text)
            if code and code != "unknown":
                if best is None or refines(code, best[1]):
                    best = (text, code)
            elif fallback is None:
                fallback = text  # e.g. "AuraFlow": worth showing, no family of ours
        return best or (fallback, None)

    def _civitai(self) -> dict | None:
        """The best-ranked CivitAI identity, completed by sources that agree with it."""
        if not self.civitai:
            return None
        offers = sorted(self.civitai, key=lambda o: o[:2])
        merged = dict(offers[0][2])
        for _priority, _order, other in offers[1:]:
            if not _same_model(merged, other):
                continue
            for key in _CIVITAI_KEYS:
                if merged.get(key) is None and other.get(key) is not None:
                    merged[key] = other[key]
        merged = {key: merged.get(key) for key in _CIVITAI_KEYS}
        merged["url"] = _civitai_url(merged["model_id"], merged["version_id"])
        return merged


def _same_model(a: dict, b: dict) -> bool:
    if a.get("version_id") and b.get("version_id"):
        return a["version_id"] == b["version_id"]
    return bool(a.get("model_id")) and a.get("model_id") == b.get("model_id")


def _civitai_url(model_id: int | None, version_id: int | None) -> str | None:
    if not model_id:
        return None
    url = f"https://civitai.com/models/{model_id}"
    return f"{url}?modelVersionId={version_id}" if version_id else url


# --- text utilities --------------------------------------------------------------------------


def split_trigger_words(text: str) -> list[str]:
    """fields.split_trigger_words, without pieces too long to be a trigger word (a pasted
    paragraph in a sidecar is no trigger)."""
    return [w for w in fields.split_trigger_words(text) if len(w) <= _MAX_WORD_CHARS]


def _clean_text(text: str) -> str:
    """Text every database accepts: no NUL (PostgreSQL rejects it) and no lone surrogates, which
    JSON escapes like "\\ud83d" produce from a half emoji and which cannot be encoded as UTF-8."""
    if "\0" in text:
        text = text.replace("\0", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _normalize_tag(text: str) -> str | None:
    tag = " ".join(_clean_text(text).split()).lower()
    return tag[:_MAX_TAG_CHARS] if tag else None


_TAG_LIKE = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&[a-zA-Z]+;|&#\d+;")
_BLOCK_TAGS = frozenset({"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                         "blockquote", "pre", "tr", "table"})
_BREAK_TAGS = frozenset({"br", "hr"})  # void elements: one line break, whether written <br> or <br/>
_SKIPPED_TAGS = frozenset({"script", "style", "template"})


class _TextExtractor(HTMLParser):
    """HTML to plain text: block elements become line breaks, scripts and styles vanish."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCK_TAGS or tag in _BREAK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag not in _SKIPPED_TAGS:  # <script/> opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _plain_text(text: str, limit: int) -> str | None:
    """Plain text from a description that may be HTML (CivitAI's are), at most ``limit`` chars."""
    text = text[:_MAX_HTML_INPUT_CHARS]
    if _TAG_LIKE.search(text):
        parser = _TextExtractor()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts)
    lines = (" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or None


def _parse_range(value: Any) -> tuple[float | None, float | None]:
    """"0.3-0.8" / "0.3 ~ 0.8" → (0.3, 0.8); anything else → (None, None)."""
    if not isinstance(value, str):
        return None, None
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:-|–|~|to)\s*(-?\d+(?:\.\d+)?)\s*", value)
    if not match:
        return None, None
    return float(match[1]), float(match[2])


def _size_text(size: int) -> str:
    if size < 1 << 20:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1 << 20):.1f}".removesuffix(".0") + " MB"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
