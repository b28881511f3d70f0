"""Sidecars of every supported format, valid and broken, written as real files on tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lib_lora_manager import sidecars
from lib_lora_manager.sidecars import (
    PREVIEW_EXTENSIONS,
    SidecarData,
    find_preview,
    read_sidecars,
    sidecar_names,
    sidecar_signature,
    split_trigger_words,
)

# --- realistic payloads, shaped like what each tool writes -------------------------------------

CIVITAI_MODEL = {  # SDNext's <stem>.json: /api/v1/models/{id}
    "id": 4201,
    "name": "Ink Sketch Style",
    "description": "<p>An <b>ink</b> style.</p><p>Use &amp; enjoy<br/>at 0.8</p><script>alert(1)</script>",
    "type": "LORA",
    "nsfw": False,
    "tags": ["Style", "ink", " Sketch "],
    "creator": {"username": "someone"},
    "modelVersions": [
        {
            "id": 9901,
            "name": "v2.0",
            "baseModel": "SDXL 1.0",
            "trainedWords": ["inksketch, monochrome", "line art"],
            "files": [{"name": "ink.safetensors", "hashes": {"AutoV2": "ABCDEF0123", "SHA256": "AB" * 32}}],
            "images": [{"url": "https://image.civitai.com/x.jpeg", "nsfwLevel": 1}],
        },
        {"id": 9800, "name": "v1.0", "baseModel": "SD 1.5", "trainedWords": ["old"]},
    ],
}

CIVITAI_VERSION = {  # <stem>.civitai.info (CH): /api/v1/model-versions/by-hash/{hash}
    "id": 9901,
    "modelId": 4201,
    "name": "v2.0",
    "baseModel": "Pony",
    "trainedWords": ["inksketch", "(ink, wash:1.2)"],
    "description": "<p>Version notes</p>",
    "model": {"name": "Ink Sketch Style", "type": "LORA", "nsfw": True, "poi": False},
    "files": [{"hashes": {"SHA256": "AB" * 32}}],
    "images": [{"url": "https://image.civitai.com/y.jpeg", "nsfw": "None"}],
}

A1111_USER = {  # A1111 Lora extension user metadata, also <stem>.json
    "description": "My favourite ink style",
    "sd version": "SDXL",
    "activation text": "inksketch, bold lines",
    "preferred weight": 0.7,
    "negative text": "color",
    "notes": "works best with euler a",
}

LORA_MANAGER = {  # ComfyUI-Lora-Manager <stem>.metadata.json
    "file_name": "ink",
    "model_name": "Ink Sketch (my copy)",
    "file_path": "/models/loras/ink.safetensors",
    "size": 123,
    "modified": 1700000000.0,
    "sha256": "ab" * 32,
    "base_model": "Illustrious",
    "preview_url": "/models/loras/ink.preview.png",
    "preview_nsfw_level": 1,
    "notes": "LM note",
    "from_civitai": True,
    "tags": ["style", "Monochrome"],
    "modelDescription": "<p>LM copy of the description</p>",
    "usage_tips": json.dumps({"strength_min": 0.4, "strength_max": 0.9, "strength": 0.65, "clip_strength": 1.0}),
    "favorite": True,
    "civitai": {
        "id": 9901,
        "modelId": 4201,
        "name": "v2.0",
        "baseModel": "Illustrious",
        "trainedWords": ["inksketch", "lm word"],
        "model": {"name": "Ink Sketch Style", "type": "LORA", "nsfw": False, "tags": ["anime"]},
    },
}

STABILITY_MATRIX = {  # Stability Matrix <stem>.cm-info.json
    "ModelId": 4201,
    "ModelName": "Ink Sketch Style",
    "ModelDescription": "<p>SM description</p>",
    "Nsfw": False,
    "Tags": ["style", "ink"],
    "ModelType": "LORA",
    "VersionId": 9901,
    "VersionName": "v2.0",
    "VersionDescription": None,
    "BaseModel": "SDXL 1.0",
    "ImportedAt": "2024-05-01T10:00:00+00:00",
    "Hashes": {"SHA256": "AB" * 32, "BLAKE3": "CD" * 32},
    "TrainedWords": ["inksketch", "sm word"],
    "UserTitle": "Ink (SM title)",
    "InferenceDefaults": {"Steps": 30, "CfgScale": 7.0, "Width": 1024, "Height": 1024},
    "Source": "Civitai",
}


def write(directory: Path, name: str, content: object) -> str:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return name


def read(directory: Path, stem: str = "ink", **kwargs: object) -> SidecarData:
    return read_sidecars(str(directory), stem, os.listdir(directory), **kwargs)


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    (tmp_path / "ink.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    return tmp_path


# --- one format at a time ----------------------------------------------------------------------


def test_no_sidecars(lora_dir: Path) -> None:
    data = read(lora_dir)
    assert data == SidecarData()


def test_sdnext_model_json(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", CIVITAI_MODEL)
    data = read(lora_dir)
    assert data.display_name == "Ink Sketch Style"
    assert data.description == "An ink style.\n\nUse & enjoy\nat 0.8"  # HTML stripped, script dropped
    assert data.trigger_words == ["inksketch", "monochrome", "line art"]  # first version only
    assert data.tags == ["style", "ink", "sketch"]
    assert (data.base_model, data.base_model_text) == ("sdxl", "SDXL 1.0")
    assert data.civitai == {
        "model_id": 4201, "version_id": 9901, "model_name": "Ink Sketch Style", "version_name": "v2.0",
        "nsfw": False, "url": "https://civitai.com/models/4201?modelVersionId=9901",
    }
    assert data.nsfw is False
    assert data.sources == ["ink.json"] and data.errors == []


def test_a1111_user_metadata(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", A1111_USER)
    data = read(lora_dir)
    assert data.description == "My favourite ink style"
    assert data.trigger_words == ["inksketch", "bold lines"]
    assert data.preferred_weight == 0.7
    assert data.notes == "works best with euler a"
    assert data.negative_text == "color"
    assert (data.base_model, data.base_model_text) == ("sdxl", "SDXL")
    assert data.civitai is None


def test_a1111_defaults_mean_no_preference(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", {"description": "", "sd version": "Unknown", "activation text": "",
                                 "preferred weight": 0, "negative text": "", "notes": ""})
    data = read(lora_dir)
    assert data.preferred_weight is None
    assert data.base_model is None and data.base_model_text is None
    assert data.trigger_words == [] and data.sources == [] and data.errors == []


def test_civitai_info(lora_dir: Path) -> None:
    write(lora_dir, "ink.civitai.info", CIVITAI_VERSION)
    data = read(lora_dir)
    assert data.trigger_words == ["inksketch", "(ink, wash:1.2)"]  # commas inside brackets kept
    assert (data.base_model, data.base_model_text) == ("pony", "Pony")
    assert data.description == "Version notes"
    assert data.display_name == "Ink Sketch Style"
    assert data.nsfw is True
    assert data.civitai["version_id"] == 9901 and data.civitai["model_id"] == 4201
    assert data.sources == ["ink.civitai.info"]


def test_lora_manager_metadata(lora_dir: Path) -> None:
    write(lora_dir, "ink.metadata.json", LORA_MANAGER)
    data = read(lora_dir)
    assert data.display_name == "Ink Sketch (my copy)"
    assert data.notes == "LM note"
    assert data.preferred_weight == 0.65
    assert data.weight_range == (0.4, 0.9)
    assert (data.base_model, data.base_model_text) == ("illustrious", "Illustrious")
    assert data.description == "LM copy of the description"
    assert data.tags == ["style", "monochrome", "anime"]
    assert data.trigger_words == ["inksketch", "lm word"]
    assert data.civitai["version_id"] == 9901 and data.nsfw is False


def test_lora_manager_strength_range_text_and_default_name(lora_dir: Path) -> None:
    write(lora_dir, "ink.metadata.json", {"file_name": "ink", "model_name": "ink", "civitai": {},
                                          "usage_tips": json.dumps({"strength_range": "0.5-1.1"})})
    data = read(lora_dir)
    assert data.weight_range == (0.5, 1.1)
    assert data.display_name is None  # LM's default model_name is just the file name
    assert data.civitai is None


def test_stability_matrix(lora_dir: Path) -> None:
    write(lora_dir, "ink.cm-info.json", STABILITY_MATRIX)
    data = read(lora_dir)
    assert data.display_name == "Ink (SM title)"
    assert data.trigger_words == ["inksketch", "sm word"]
    assert data.tags == ["style", "ink"]
    assert data.description == "SM description"
    assert (data.base_model, data.base_model_text) == ("sdxl", "SDXL 1.0")
    assert data.civitai["model_name"] == "Ink Sketch Style" and data.civitai["version_name"] == "v2.0"
    assert data.preferred_weight is None  # InferenceDefaults are checkpoint settings


def test_txt_description(lora_dir: Path) -> None:
    write(lora_dir, "ink.txt", "Plain words\r\nsecond line\n")
    assert read(lora_dir).description == "Plain words\nsecond line"


# --- merging -------------------------------------------------------------------------------------


def test_all_formats_merge_with_user_data_first(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", {**CIVITAI_MODEL, **A1111_USER})  # CBP-style: both shapes in one
    write(lora_dir, "ink.civitai.info", CIVITAI_VERSION)
    write(lora_dir, "ink.metadata.json", LORA_MANAGER)
    write(lora_dir, "ink.cm-info.json", STABILITY_MATRIX)
    write(lora_dir, "ink.txt", "the txt description")
    data = read(lora_dir)
    assert data.description == "the txt description"  # SDNext prefers the .txt
    assert data.trigger_words == ["inksketch", "bold lines"]  # the user's activation text wins whole
    assert data.preferred_weight == 0.7  # A1111 preferred weight over LM strength
    assert data.weight_range == (0.4, 0.9)
    assert data.notes == "works best with euler a"
    assert data.display_name == "Ink (SM title)"  # user titles over CivitAI names
    assert data.base_model_text == "Illustrious"  # LM's (editable) base model over CivitAI's
    assert data.tags[:2] == ["style", "monochrome"] and "anime" in data.tags and len(set(data.tags)) == len(data.tags)
    assert data.civitai["nsfw"] is True and data.nsfw is True  # .civitai.info is the best-ranked identity
    assert sorted(data.sources) == sorted(["ink.json", "ink.civitai.info", "ink.metadata.json", "ink.cm-info.json", "ink.txt"])
    assert data.errors == []


def test_civitai_words_are_a_deduplicated_union_without_user_text(lora_dir: Path) -> None:
    write(lora_dir, "ink.civitai.info", CIVITAI_VERSION)
    write(lora_dir, "ink.json", CIVITAI_MODEL)
    write(lora_dir, "ink.cm-info.json", {**STABILITY_MATRIX, "UserTitle": None, "TrainedWords": ["InkSketch", "sm word"]})
    data = read(lora_dir)
    assert data.trigger_words == ["inksketch", "(ink, wash:1.2)", "sm word", "monochrome", "line art"]
    assert data.display_name == "Ink Sketch Style"


def test_civitai_identity_ignores_other_models(lora_dir: Path) -> None:
    write(lora_dir, "ink.civitai.info", {**CIVITAI_VERSION, "name": None})
    write(lora_dir, "ink.json", {**CIVITAI_MODEL, "id": 777, "modelVersions": [{"id": 778, "name": "other"}]})
    civitai = read(lora_dir).civitai
    assert civitai["model_id"] == 4201 and civitai["version_name"] is None  # not filled from model 777


def test_unmapped_base_model_text_is_kept(lora_dir: Path) -> None:
    write(lora_dir, "ink.civitai.info", {**CIVITAI_VERSION, "baseModel": "AuraFlow"})
    data = read(lora_dir)
    assert (data.base_model, data.base_model_text) == (None, "AuraFlow")


# --- broken sidecars -----------------------------------------------------------------------------


def test_invalid_json_is_one_readable_error_and_others_still_read(lora_dir: Path) -> None:
    write(lora_dir, "ink.civitai.info", '{\n  "id": 1,\n  "name": oops\n}')
    write(lora_dir, "ink.txt", "still here")
    data = read(lora_dir)
    assert data.errors == ["ink.civitai.info: invalid JSON at line 3 column 11: Expecting value"]
    assert data.description == "still here" and data.sources == ["ink.txt"]


def test_not_utf8(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", b'{"notes": "caf\xe9"}')
    write(lora_dir, "ink.txt", b"caf\xe9 description")
    data = read(lora_dir)
    assert "ink.json: not UTF-8 text (invalid byte at offset 14)" in data.errors
    assert any(e.startswith("ink.txt: not UTF-8 text") for e in data.errors)
    assert data.description == "caf\ufffd description"  # like SDNext, the text is still shown


def test_utf8_bom_is_accepted(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", "\ufeff" + json.dumps(A1111_USER))
    assert read(lora_dir).notes == "works best with euler a"


def test_wrong_top_level_type(lora_dir: Path) -> None:
    write(lora_dir, "ink.metadata.json", [1, 2])
    assert read(lora_dir).errors == ["ink.metadata.json: expected a JSON object, found a list"]


def test_wrong_field_types_are_reported_and_skipped(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", {"activation text": ["a"], "preferred weight": "heavy", "notes": 5,
                                 "sd version": {"x": 1}})
    write(lora_dir, "ink.metadata.json", {"usage_tips": "{not json", "tags": "style", "civitai": []})
    write(lora_dir, "ink.cm-info.json", {"ModelId": "abc", "TrainedWords": [1, "ok"], "Nsfw": "no"})
    data = read(lora_dir)
    assert "ink.json: 'preferred weight' should be a finite number, found text" in data.errors
    assert "ink.json: 'sd version' should be text, found an object" in data.errors
    assert "ink.metadata.json: 'usage_tips' is not valid JSON" in data.errors
    assert "ink.metadata.json: 'tags' should be a list, found text" in data.errors
    assert "ink.metadata.json: 'civitai' should be an object, found a list" in data.errors
    assert "ink.cm-info.json: 'ModelId' should be a positive integer, found text" in data.errors
    assert "ink.cm-info.json: 'TrainedWords' should be a list of text, found a number" in data.errors
    assert "ink.cm-info.json: 'Nsfw' should be true or false, found text" in data.errors
    # What was valid still counts: a one-item list of text, a number given as text.
    assert data.trigger_words == ["a"]
    assert data.notes == "5"
    assert sorted(data.sources) == ["ink.cm-info.json", "ink.json"]


def test_non_finite_numbers_are_not_weights(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", '{"preferred weight": NaN, "activation text": "x"}')
    write(lora_dir, "ink.metadata.json", {"usage_tips": '{"strength": Infinity, "strength_min": "nan"}'})
    data = read(lora_dir)
    assert data.preferred_weight is None and data.weight_range is None
    assert "ink.metadata.json: 'usage_tips.strength_min' should be a finite number, found text" in data.errors


def test_text_is_storable_in_any_database(lora_dir: Path) -> None:
    # A half emoji escaped in JSON becomes a lone surrogate; NUL is valid JSON but not PostgreSQL text.
    write(lora_dir, "ink.json", '{"notes": "half \\ud83d emoji", "activation text": "a\\u0000b, c",'
                                ' "description": "nul\\u0000here"}')
    data = read(lora_dir)
    assert data.notes == "half ? emoji"
    assert data.trigger_words == ["ab", "c"]
    assert data.description == "nulhere"
    for text in (data.notes, data.description, *data.trigger_words):
        text.encode("utf-8")


def test_oversized_sidecar_is_skipped(lora_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sidecars, "MAX_SIDECAR_BYTES", 1024)
    write(lora_dir, "ink.civitai.info", {"id": 1, "modelId": 2, "description": "x" * 2000})
    write(lora_dir, "ink.txt", "small")
    data = read(lora_dir)
    assert data.errors == ["ink.civitai.info: 2,042 bytes is over the 1 KB limit for sidecars; skipped"]
    assert data.description == "small"


def test_real_size_limit_message(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", b"{" + b" " * sidecars.MAX_SIDECAR_BYTES + b"}")
    assert read(lora_dir).errors == ["ink.json: 8,388,610 bytes is over the 8 MB limit for sidecars; skipped"]


def test_deeply_nested_json(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", "[" * 100_000 + "]" * 100_000)
    [error] = read(lora_dir).errors
    assert error.startswith("ink.json: ") and ("nested" in error or "expected a JSON object" in error)


def test_directory_and_fifo_named_like_sidecars(lora_dir: Path) -> None:
    (lora_dir / "ink.json").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(lora_dir / "ink.txt")
    data = read(lora_dir)
    assert "ink.json: not a regular file" in data.errors or any(e.startswith("ink.json: cannot open") for e in data.errors)
    if hasattr(os, "mkfifo"):
        assert "ink.txt: not a regular file" in data.errors


def test_long_html_description_is_bounded(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", {"id": 1, "name": "n", "description": "<p>" + "word " * 50_000 + "</p>"})
    description = read(lora_dir).description
    assert len(description) == sidecars.MAX_DESCRIPTION_CHARS and description.endswith("…")


def test_read_sidecars_never_writes(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", CIVITAI_MODEL)
    write(lora_dir, "ink.metadata.json", LORA_MANAGER)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in lora_dir.iterdir()}
    read(lora_dir)
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in lora_dir.iterdir()}
    assert before == after


# --- which names belong to which LoRA ------------------------------------------------------------


def test_sidecar_names_for_one_lora() -> None:
    names = {"ink.safetensors", "ink.json", "ink.txt", "ink.civitai.info", "ink.metadata.json", "ink.cm-info.json",
             "ink.preview.png", "ink.thumb.jpg", "ink.mp4", "ink.api_info.json", "ink.backup.zip", "inky.json",
             "other.json"}
    assert sidecar_names("ink", names) == [
        "ink.metadata.json", "ink.civitai.info", "ink.cm-info.json", "ink.json", "ink.txt",
        "ink.thumb.jpg", "ink.preview.png", "ink.mp4", "ink.api_info.json",
    ]


def test_longer_lora_stems_keep_their_sidecars() -> None:
    names = ["a.safetensors", "a.json", "a.b.safetensors", "a.b.json", "a.preview.safetensors",
             "a.preview.png", "a.civitai.safetensors", "a.civitai.info", "a.png"]
    stems = {"a", "a.b", "a.preview", "a.civitai"}
    # a.preview.png is the plain preview of LoRA "a.preview"; a.civitai.info is "a"'s, because
    # ".info" alone is nobody's sidecar suffix.
    assert sidecar_names("a", names, lora_stems=stems) == ["a.civitai.info", "a.json", "a.png"]
    assert sidecar_names("a.b", names, lora_stems=stems) == ["a.b.json"]
    assert sidecar_names("a.preview", names, lora_stems=stems) == ["a.preview.png"]
    assert find_preview("a", names, lora_stems=stems) == "a.png"
    # Without the longer stems, "a" would claim a.preview.png (as SDNext does).
    assert "a.preview.png" in sidecar_names("a", names)


def test_read_sidecars_respects_lora_stems(tmp_path: Path) -> None:
    write(tmp_path, "a.metadata.json", {"notes": "belongs to a.metadata"})
    (tmp_path / "a.metadata.safetensors").write_bytes(b"")
    (tmp_path / "a.safetensors").write_bytes(b"")
    assert read(tmp_path, "a", lora_stems={"a", "a.metadata"}).notes is None
    assert read(tmp_path, "a").notes == "belongs to a.metadata"


def test_preview_order_follows_sdnext() -> None:
    # For each extension in turn: .thumb., plain, .preview.
    assert PREVIEW_EXTENSIONS == ("jpg", "jpeg", "png", "webp", "tiff", "jp2", "jxl")
    names = {"x.preview.jpg", "x.png", "x.thumb.png", "x.webp", "x.preview.webp"}
    assert find_preview("x", names) == "x.preview.jpg"  # jpg comes before png
    names.discard("x.preview.jpg")
    assert find_preview("x", names) == "x.thumb.png"
    names.discard("x.thumb.png")
    assert find_preview("x", names) == "x.png"
    names.discard("x.png")
    assert find_preview("x", names) == "x.webp"
    names.discard("x.webp")
    assert find_preview("x", names) == "x.preview.webp"  # Lora Manager's convention
    assert find_preview("x", {"x.preview.gif", "x.PNG"}) == "x.preview.gif"
    assert find_preview("x", {"x.PNG", "x.mp4"}) == "x.PNG"  # upper case after all exact matches
    assert find_preview("x", {"x.mp4", "xx.png", "x.json"}) is None
    assert find_preview("x", ["x.jxl"]) == "x.jxl"  # lists work too


def test_read_sidecars_reports_preview(lora_dir: Path) -> None:
    write(lora_dir, "ink.preview.png", b"\x89PNG\r\n\x1a\n")
    assert read(lora_dir).preview == "ink.preview.png"


# --- signature -----------------------------------------------------------------------------------


def test_signature_changes_when_a_sidecar_changes(lora_dir: Path) -> None:
    write(lora_dir, "ink.json", CIVITAI_MODEL)
    write(lora_dir, "ink.preview.png", b"png")
    names = sidecar_names("ink", os.listdir(lora_dir))
    first = sidecar_signature(str(lora_dir), names)
    assert sidecar_signature(str(lora_dir), list(reversed(names))) == first  # order-independent
    assert len(first) == 32

    path = lora_dir / "ink.json"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # touched, same size
    touched = sidecar_signature(str(lora_dir), names)
    assert touched != first

    write(lora_dir, "ink.txt", "new")
    added = sidecar_signature(str(lora_dir), sidecar_names("ink", os.listdir(lora_dir)))
    assert added != touched

    (lora_dir / "ink.preview.png").unlink()
    assert sidecar_signature(str(lora_dir), sidecar_names("ink", os.listdir(lora_dir))) != added
    # A name that vanished between listing and stat is part of the signature, not an error.
    assert sidecar_signature(str(lora_dir), ["ink.preview.png"]) != sidecar_signature(str(lora_dir), [])


# --- trigger words -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ("a, b c ,  d", ["a", "b c", "d"]),
    ("one\ntwo\r\nthree", ["one", "two", "three"]),
    ("(red, blue:1.2), <lora:x:1>, [a, b]", ["(red, blue:1.2)", "<lora:x:1>", "[a, b]"]),
    ("unbalanced (a, b", ["unbalanced (a", "b"]),  # a bracket never closed cannot swallow the list
    ("(a, b), c (d, e", ["(a, b)", "c (d", "e"]),
    (", ,  ,", []),
    ("x" * 201 + ", ok", ["ok"]),
])
def test_split_trigger_words(text: str, words: list[str]) -> None:
    assert split_trigger_words(text) == words


def test_a_narrower_base_model_wins_over_a_better_ranked_coarse_one(lora_dir: Path) -> None:
    """A1111's "Pony" refines Stability Matrix's "SDXL 1.0" though it ranks last; "SD1" does not."""
    write(lora_dir, "ink.cm-info.json", {"ModelId": 4201, "VersionId": 9901, "BaseModel": "SDXL 1.0"})
    write(lora_dir, "ink.json", {"sd version": "Pony", "activation text": ""})
    data = read(lora_dir)
    assert (data.base_model, data.base_model_text) == ("pony", "Pony")
    write(lora_dir, "ink.json", {"sd version": "SD1", "activation text": ""})
    assert read(lora_dir).base_model == "sdxl"
