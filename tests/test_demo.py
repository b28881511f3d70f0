"""The demo library: the variety a new user should see, real files, idempotent creation."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from lib_lora_manager import sidecars
from lib_lora_manager.demo import MARKER, XSS_NAME, create_demo_library
from lib_lora_manager.lora_info import extract
from lib_lora_manager.safetensors_header import HeaderError, read_header


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("demo") / "Lora"
    return root, create_demo_library(root)


def infos(files: list[Path]) -> dict[Path, object]:
    out = {}
    for path in files:
        if path.suffix == ".safetensors":
            try:
                out[path] = extract(read_header(path), path.name)
            except HeaderError as e:
                out[path] = e
    return out


def test_a_few_dozen_small_real_loras(demo) -> None:
    root, files = demo
    assert all(p.is_file() and root in p.parents for p in files)
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    assert 30 <= len(safetensors) <= 40
    assert sum(p.stat().st_size for p in files) < 40 * 1024 * 1024
    assert sorted(files) == sorted(p for p in root.rglob("*") if p.suffix in (".safetensors", ".pt"))
    assert [p.suffix for p in files].count(".pt") == 1


def test_families_adapters_and_the_one_corrupt_file(demo) -> None:
    _, files = demo
    found = infos(files)
    errors = [p for p, i in found.items() if isinstance(i, HeaderError)]
    assert len(errors) == 1 and "truncated" in str(found[errors[0]])
    good = [i for i in found.values() if not isinstance(i, HeaderError)]
    assert {i.base_model for i in good} >= {"sd1", "sd2", "sdxl", "pony", "illustrious", "flux", "sd3"}
    assert "unknown" not in {i.base_model for i in good}
    assert any(i.base_model_source == "keys" and not i.metadata for i in good)
    assert {i.adapter_type for i in good} >= {"lora", "locon", "loha", "lokr", "dora"}
    assert {i.network_dim for i in good} <= {4, 8} and 8 in {i.network_dim for i in good}
    assert any(i.thumbnail and i.thumbnail[0] == "image/jpeg" for i in good)
    assert any(i.trigger_phrase and i.trigger_suggestions[0][0] == i.trigger_phrase for i in good)
    assert all(i.metadata.get("ss_network_module") for i in good if i.base_model_source == "metadata")


def test_nested_folders_collisions_and_awkward_names(demo) -> None:
    root, files = demo
    found = infos(files)
    folders = {p.parent.relative_to(root).as_posix() for p in files}
    assert {"characters", "styles", "concepts"} <= folders and len(folders) >= 6
    by_name = defaultdict(set)
    for path, info in found.items():
        if not isinstance(info, HeaderError):
            by_name[path.name].add((path.parent.name, info.base_model))
    collisions = {name: v for name, v in by_name.items() if len({f for f, _ in v}) > 1}
    assert len(collisions) >= 3
    assert any(len({family for _, family in v}) > 1 for v in collisions.values())
    assert any(not p.name.isascii() for p in files)
    titles = {i.title for i in found.values() if not isinstance(i, HeaderError)}
    assert XSS_NAME in titles
    if os.name != "nt":
        assert (root / "concepts" / f"{XSS_NAME}.safetensors").is_file()


def test_an_exact_duplicate(demo) -> None:
    root, _ = demo
    assert (root / "favorites/aria_knight_copy.safetensors").read_bytes() == \
        (root / "characters/aria_knight.safetensors").read_bytes()


def test_previews_are_real_images_named_as_sdnext_expects(demo) -> None:
    root, files = demo
    previews = [p for p in root.rglob("*") if p.suffix in (".png", ".jpg")]
    suffixes = {"".join(p.suffixes[-2:]) if p.name.count(".") > 1 else p.suffix for p in previews}
    assert {".png", ".preview.png", ".thumb.jpg"} <= suffixes
    stems = {p.with_suffix("").as_posix() for p in files}
    for preview in previews:
        owner = preview.as_posix().removesuffix(".preview.png").removesuffix(".thumb.jpg").removesuffix(".png")
        assert owner in stems
        with Image.open(preview) as image:
            image.verify()
    assert len(previews) >= 15


def test_sidecars_in_each_peer_format(demo) -> None:
    root, _ = demo
    sdnext = json.loads((root / "characters/aria_knight.json").read_text(encoding="utf-8"))
    assert {"id", "name", "description", "tags", "modelVersions"} <= set(sdnext)
    assert {"id", "name", "baseModel", "trainedWords"} <= set(sdnext["modelVersions"][0])
    assert (root / "characters/aria_knight.txt").read_text(encoding="utf-8").strip()
    a1111 = json.loads((root / "characters/ryuu_dragon.json").read_text(encoding="utf-8"))
    assert set(a1111) == {"description", "sd version", "activation text", "preferred weight", "negative text", "notes"}
    version = json.loads((root / "characters/captain_mira.civitai.info").read_text(encoding="utf-8"))
    assert {"id", "modelId", "name", "baseModel", "trainedWords", "model", "images", "files"} <= set(version)
    assert {"name", "type", "nsfw"} <= set(version["model"])
    manager = json.loads((root / "characters/hikari_student.metadata.json").read_text(encoding="utf-8"))
    assert {"file_name", "model_name", "file_path", "size", "modified", "sha256", "base_model", "civitai",
            "usage_tips", "tags", "favorite"} <= set(manager)
    assert json.loads(manager["usage_tips"])["strength"] == 0.7
    assert manager["size"] == (root / "characters/hikari_student.safetensors").stat().st_size
    matrix_text = (root / "characters/nova_pilot.cm-info.json").read_text(encoding="utf-8")
    matrix = json.loads(matrix_text)
    assert {"ModelId", "ModelName", "VersionId", "BaseModel", "TrainedWords", "Hashes", "ModelType"} <= set(matrix)
    assert "\n" not in matrix_text and "<" not in matrix_text  # System.Text.Json: compact, HTML-escaped


@pytest.mark.parametrize(("rel", "base", "word"), [
    ("characters/aria_knight", "sd1", "aria knight"),
    ("characters/ryuu_dragon", "sdxl", "ryuu"),  # A1111 only knows "SDXL" for Pony
    ("characters/captain_mira", "sdxl", "captain mira"),
    ("characters/hikari_student", "illustrious", "hikari"),
    ("characters/nova_pilot", "flux", "nova pilot"),
])
def test_our_sidecar_reader_understands_them(demo, rel: str, base: str, word: str) -> None:
    root, _ = demo
    path = root / f"{rel}.safetensors"
    data = sidecars.read_sidecars(str(path.parent), path.stem, os.listdir(path.parent))
    assert data.errors == []
    assert data.base_model == base
    assert word in data.trigger_words


def test_idempotent_and_deterministic(demo, tmp_path: Path) -> None:
    root, files = demo
    marker = root / MARKER
    before = {p: p.stat().st_mtime_ns for p in files}
    assert create_demo_library(root) == files
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert json.loads(marker.read_text(encoding="utf-8"))["files"]
    other = create_demo_library(tmp_path / "again")
    deleted = other.pop()
    deleted.unlink()  # a user's deletion is respected, not undone
    assert create_demo_library(tmp_path / "again") == other and not deleted.exists()
    other.append(deleted)
    assert [p.relative_to(tmp_path / "again") for p in other] == [p.relative_to(root) for p in files]
    for a, b in zip(files[:-1], other[:-1]):
        assert a.read_bytes() == b.read_bytes()
