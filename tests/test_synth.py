"""The synthetic LoRA writer: real kohya layouts, realistic sizes, files the official library loads."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from lib_lora_manager import synth
from lib_lora_manager.safetensors_header import HeaderError, read_header


def shapes(keys: list[tuple[str, str, tuple[int, ...]]]) -> dict[str, tuple[int, ...]]:
    return {k: s for k, _, s in keys}


def test_sd1_layout_matches_kohya() -> None:
    keys = synth.kohya_keys("sd1", 8)
    s = shapes(keys)
    assert len(keys) == 792  # 192 UNet + 72 text-encoder modules, three tensors each
    assert s["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"] == (8, 768)
    assert s["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight"] == (320, 8)
    assert s["lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_up.weight"] == (10240, 8)
    assert s["lora_unet_up_blocks_3_attentions_2_proj_in.lora_down.weight"] == (8, 320, 1, 1)  # 1x1 conv
    assert s["lora_te_text_model_encoder_layers_11_mlp_fc2.lora_down.weight"] == (8, 3072)
    assert s["lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"] == ()
    assert {d for _, d, _ in keys} == {"F16", "F32"}
    assert all((d == "F32") == k.endswith(".alpha") for k, d, _ in keys)


def test_sdxl_layout_matches_kohya() -> None:
    unet = synth.kohya_keys("sdxl", 8, text_encoder=False)
    assert len(unet) == 2166
    s = shapes(synth.kohya_keys("sdxl", 8))
    assert s["lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k.lora_down.weight"] == (8, 2048)
    assert s["lora_unet_middle_block_1_transformer_blocks_9_attn1_to_q.lora_up.weight"] == (1280, 8)
    assert s["lora_unet_output_blocks_5_1_proj_out.lora_down.weight"] == (8, 640)  # linear in SDXL
    assert s["lora_te1_text_model_encoder_layers_11_self_attn_k_proj.lora_down.weight"] == (8, 768)
    assert s["lora_te2_text_model_encoder_layers_31_mlp_fc1.lora_up.weight"] == (5120, 8)
    assert synth.kohya_keys("pony") == synth.kohya_keys("illustrious") == synth.kohya_keys("sdxl")


def test_other_layouts() -> None:
    sd2 = shapes(synth.kohya_keys("sd2", 4))
    assert sd2["lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v.lora_down.weight"] == (4, 1024)
    assert "lora_te_text_model_encoder_layers_22_mlp_fc1.lora_down.weight" in sd2
    flux = shapes(synth.kohya_keys("flux", 4, text_encoder=False))
    assert flux["lora_unet_double_blocks_18_img_attn_qkv.lora_up.weight"] == (9216, 4)
    assert flux["lora_unet_single_blocks_37_linear1.lora_up.weight"] == (21504, 4)
    sd3 = shapes(synth.kohya_keys("sd3", 4, text_encoder=False))
    assert sd3["lora_unet_joint_blocks_0_context_block_mlp_fc1.lora_up.weight"] == (6144, 4)
    assert "lora_unet_joint_blocks_23_context_block_attn_proj.lora_down.weight" not in sd3  # pre-only
    with pytest.raises(ValueError, match="unsupported family"):
        synth.kohya_keys("cascade")


def test_conv_and_compact_variants() -> None:
    conv = shapes(synth.kohya_keys("sd1", 4, conv=True))
    assert conv["lora_unet_down_blocks_1_resnets_0_conv1.lora_down.weight"] == (4, 320, 3, 3)
    assert conv["lora_unet_down_blocks_1_resnets_0_conv_shortcut.lora_down.weight"] == (4, 320, 1, 1)
    xl = shapes(synth.kohya_keys("sdxl", 4, conv=True))
    assert xl["lora_unet_output_blocks_0_0_in_layers_2.lora_down.weight"] == (4, 2560, 3, 3)
    compact = synth.kohya_keys("sdxl", 4, compact=True)
    full = shapes(synth.kohya_keys("sdxl", 4))
    assert len(compact) < 150 and all(full[k] == s for k, _, s in compact)


@pytest.mark.parametrize(("family", "text_encoder", "low", "high"), [
    ("sd1", True, 90_000, 130_000),  # 792 tensors
    ("sd1", False, 70_000, 95_000),
    ("sdxl", False, 250_000, 330_000),  # 2,166 tensors
    ("sdxl", True, 350_000, 450_000),
])
def test_header_sizes_are_realistic(tmp_path: Path, family: str, text_encoder: bool, low: int, high: int) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", family, rank=8, text_encoder=text_encoder)
    assert low < read_header(path).header_size < high


def test_sparse_file_is_header_plus_data_and_a_hole(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", "sdxl", rank=8, text_encoder=False)
    header = read_header(path)
    data = sum(np.prod(e["shape"], dtype=np.int64) * {"F16": 2, "F32": 4}[e["dtype"]] for e in header.tensors.values())
    assert path.stat().st_size == 8 + header.header_size + data
    assert max(e["data_offsets"][1] for e in header.tensors.values()) == data
    assert 40e6 < data < 46e6  # an SDXL rank-8 LoRA is ~43 MB
    if hasattr(os.stat_result, "st_blocks"):
        assert path.stat().st_blocks * 512 < 2 * (8 + header.header_size) + 65536  # no data blocks


def test_header_is_padded_like_the_official_writer(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", "sd1", rank=2, compact=True)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0 and raw[8:8 + n].rstrip(b" ").endswith(b"}")
    doc = json.loads(raw[8:8 + n])
    assert list(doc)[0] == "__metadata__" and list(doc["__metadata__"]) == sorted(doc["__metadata__"])
    names = [k for k in doc if k != "__metadata__"]
    alphas = [k for k in names if doc[k]["dtype"] == "F32"]
    assert names == alphas + sorted(set(names) - set(alphas)) and alphas == sorted(alphas)


@pytest.mark.parametrize("adapter", synth.ADAPTERS)
def test_every_adapter_kind_loads_in_the_official_library(tmp_path: Path, adapter: str) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", "sd1", rank=4, adapter=adapter, data="random")
    header = read_header(path)
    with safe_open(str(path), "numpy") as f:
        assert set(f.keys()) == set(header.tensors)
        assert f.metadata() == header.metadata
        for name in f.keys():
            tensor = f.get_tensor(name)
            assert list(tensor.shape) == header.tensors[name]["shape"]
            if tensor.dtype.kind == "f":
                assert np.isfinite(tensor).all()


def test_random_data_is_seeded_and_hashed_into_the_metadata(tmp_path: Path) -> None:
    a = synth.write_lora(tmp_path / "a.safetensors", "sd1", rank=2, data="random", seed=5, compact=True)
    b = synth.write_lora(tmp_path / "b.safetensors", "sd1", rank=2, data="random", seed=5, compact=True)
    c = synth.write_lora(tmp_path / "c.safetensors", "sd1", rank=2, data="random", seed=6, compact=True)
    body = lambda p: p.read_bytes()[8 + read_header(p).header_size:]  # noqa: E731
    assert body(a) == body(b) != body(c)
    header = read_header(a)
    assert header.metadata["sshs_model_hash"] == hashlib.sha256(body(a)).hexdigest()
    with safe_open(str(a), "numpy") as f:
        alpha = f.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha")
        assert float(alpha) == float(header.metadata["ss_network_alpha"]) == 1.0


def test_zeros_are_real_bytes_with_true_alphas(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "z.safetensors", "sd1", rank=4, data="zeros", compact=True)
    with safe_open(str(path), "numpy") as f:
        assert not f.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight").any()
        assert float(f.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha")) == 2.0
    with pytest.raises(ValueError):
        synth.write_lora(tmp_path / "bad.safetensors", data="ones")


def test_metadata_none_empty_and_extra_tensors(tmp_path: Path) -> None:
    none = synth.write_lora(tmp_path / "n.safetensors", "sd1", rank=2, metadata={}, compact=True)
    assert b"__metadata__" not in none.read_bytes()[:4096] and read_header(none).metadata == {}
    extra = synth.write_lora(tmp_path / "e.safetensors", "sd1", rank=2, compact=True,
                             extra_tensors={"lora_unet_extra.diff_b": ("F32", (320,)), "flag": ("BOOL", ())})
    header = read_header(extra)
    assert header.tensors["lora_unet_extra.diff_b"]["shape"] == [320]
    assert header.tensors["flag"]["dtype"] == "BOOL"


def test_realistic_metadata_is_complete_deterministic_and_overridable() -> None:
    md = synth.realistic_metadata("sdxl", "neon_city", seed=1)
    assert md == synth.realistic_metadata("sdxl", "neon_city", seed=1)
    assert md != synth.realistic_metadata("sdxl", "neon_city", seed=2)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
    for key in ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_base_model_version",
                "ss_sd_model_name", "ss_resolution", "ss_num_epochs", "ss_steps", "ss_max_train_steps",
                "ss_output_name", "ss_tag_frequency", "ss_training_started_at", "ss_learning_rate",
                "ss_clip_skip", "modelspec.architecture", "modelspec.title", "modelspec.sai_model_spec",
                "modelspec.date"):
        assert key in md
    assert md["ss_base_model_version"] == "sdxl_base_v1-0"
    assert md["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert md["ss_resolution"] == "(1024, 1024)"
    folders = json.loads(md["ss_tag_frequency"])
    first = next(iter(folders))
    assert first.endswith("_neon_city") and first in json.loads(md["ss_dataset_dirs"])
    assert max(folders[first].items(), key=lambda t: t[1])[0] == "neon_city"  # the trigger tags every image
    custom = synth.realistic_metadata("sd1", "x", modelspec_title="Mine", ss_clip_skip=None, extra=3)
    assert custom["modelspec.title"] == "Mine" and "ss_clip_skip" not in custom and custom["extra"] == "3"
    assert synth.realistic_metadata("pony", "p")["ss_sd_model_name"].startswith("pony")
    with pytest.raises(ValueError):
        synth.realistic_metadata("nope", "x")


@pytest.mark.parametrize("kind", synth.HOSTILE_KINDS)
def test_hostile_files_are_written_and_rejected(tmp_path: Path, kind: str) -> None:
    path = synth.write_hostile(tmp_path / "sub" / f"{kind}.safetensors", kind)
    assert path.exists()
    with pytest.raises(HeaderError):
        read_header(path)


def test_unknown_hostile_kind() -> None:
    with pytest.raises(ValueError):
        synth.write_hostile("x", "friendly")


def test_pickle_placeholder_looks_like_torch_and_is_not_safetensors(tmp_path: Path) -> None:
    path = synth.write_pickle_placeholder(tmp_path / "old.pt")
    assert path.read_bytes()[:4] == b"PK\x03\x04"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert names == ["old/data.pkl", "old/version"]
        assert z.read("old/data.pkl")[:2] == b"\x80\x02"  # a protocol-2 pickle (never loaded here)
    with pytest.raises(HeaderError):
        read_header(path)
