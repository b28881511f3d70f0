"""What lora_info derives from a header: base model, adapter type, fields, triggers, thumbnail."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from lib_lora_manager import synth
from lib_lora_manager.lora_info import (
    MAX_METADATA_VALUE_BYTES,
    MAX_THUMBNAIL_BYTES,
    LoraInfo,
    adapter_type_from_keys,
    base_model_from_keys,
    bounded_metadata,
    decode_thumbnail,
    extract,
    trigger_suggestions,
)
from lib_lora_manager.safetensors_header import Header, read_header

KEY_FAMILIES = ["sd1", "sd2", "sdxl", "flux", "sd3"]


def info_of(path: Path) -> LoraInfo:
    return extract(read_header(path), path.name)


def header_of(tensors: dict, metadata: dict | None = None) -> Header:
    return Header(header_size=0, metadata=metadata or {}, tensors=tensors)


def entries(*specs: tuple[str, list[int]]) -> dict:
    return {name: {"dtype": "F16", "shape": shape, "data_offsets": [0, 0]} for name, shape in specs}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "pony", "illustrious", "flux", "sd3"])
def test_base_model_from_realistic_metadata(tmp_path: Path, family: str) -> None:
    info = info_of(synth.write_lora(tmp_path / "x.safetensors", family, rank=2, compact=True))
    assert (info.base_model, info.base_model_source) == (family, "metadata")


@pytest.mark.parametrize("family", KEY_FAMILIES)
@pytest.mark.parametrize("compact", [False, True])
def test_base_model_from_keys_only(tmp_path: Path, family: str, compact: bool) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", family, rank=2, metadata={}, compact=compact)
    info = info_of(path)
    assert (info.base_model, info.base_model_source) == (family, "keys")
    assert base_model_from_keys(read_header(path).tensors) == family


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_base_model_from_keys_without_text_encoder(tmp_path: Path, family: str) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", family, rank=2, metadata={}, text_encoder=False)
    assert info_of(path).base_model == family
    assert not info_of(path).has_text_encoder


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_text_encoder_only_lora_is_told_apart_by_width(family: str) -> None:
    width = {"sd1": 768, "sd2": 1024}[family]
    tensors = entries(*[(f"lora_te_text_model_encoder_layers_0_self_attn_{m}_proj.lora_down.weight", [4, width])
                        for m in "qkv"])
    assert base_model_from_keys(tensors) == family


@pytest.mark.parametrize("adapter", synth.ADAPTERS)
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_adapter_type_and_base_for_every_kind(tmp_path: Path, adapter: str, family: str) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", family, rank=4, adapter=adapter, metadata={})
    info = info_of(path)
    assert info.adapter_type == adapter
    if not (adapter == "full" and family == "sdxl"):  # its four TE1 layers also fit SD3 and Flux
        assert info.base_model == family


def test_adapter_type_from_names_only() -> None:
    assert adapter_type_from_keys(["a.lora_down.weight", "a.lora_up.weight", "a.alpha"]) == "lora"
    assert adapter_type_from_keys(["a.lora_A.weight", "a.lora_B.weight"]) == "lora"
    assert adapter_type_from_keys(["unet.x.to_q_lora.down.weight", "unet.x.to_q_lora.up.weight"]) == "lora"
    assert adapter_type_from_keys(["a.lora_A.weight", "a.lora_B.weight", "a.lora_magnitude_vector"]) == "dora"
    assert adapter_type_from_keys(["a.hada_w1_a", "a.hada_w1_b", "a.hada_w2_a", "a.hada_w2_b"]) == "loha"
    assert adapter_type_from_keys(["a.lokr_w1", "a.lokr_w2"]) == "lokr"
    assert adapter_type_from_keys(["a.weight", "a.on_input"]) == "ia3"
    assert adapter_type_from_keys(["a.oft_diag"]) == "oft"
    assert adapter_type_from_keys(["a.a1.weight", "a.a2.weight", "a.b1.weight", "a.b2.weight"]) == "glora"
    assert adapter_type_from_keys(["a.diff", "a.diff_b"]) == "full"
    assert adapter_type_from_keys(["a.lora_down.weight", "a.lora_up.weight", "b.diff_b"]) == "lora"
    assert adapter_type_from_keys(["model.weight"]) == "unknown"
    assert adapter_type_from_keys([]) == "unknown"


def test_locon_needs_a_spatial_kernel() -> None:
    one_by_one = entries(("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", [4, 320, 1, 1]),
                         ("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", [320, 4, 1, 1]))
    three = entries(("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", [4, 320, 3, 3]),
                    ("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", [320, 4, 1, 1]))
    peft = entries(("unet.down_blocks.0.resnets.0.conv1.lora_A.weight", [4, 320, 3, 3]),
                   ("unet.down_blocks.0.resnets.0.conv1.lora_B.weight", [320, 4, 1, 1]))
    assert adapter_type_from_keys(one_by_one) == "lora"
    assert adapter_type_from_keys(three) == "locon"
    assert adapter_type_from_keys(peft) == "locon"


def test_metadata_refines_or_fills_the_adapter_type() -> None:
    lora = entries(("a.lora_down.weight", [4, 8]), ("a.lora_up.weight", [8, 4]))
    locon = {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": "locon"})}
    assert extract(header_of(lora, locon)).adapter_type == "locon"
    lokr = {"ss_network_module": "lycoris.kohya", "ss_network_args": '{"algo": "lokr", "factor": "8"}'}
    assert extract(header_of(entries(("x.weight", [3])), lokr)).adapter_type == "lokr"
    assert extract(header_of(lora, lokr)).adapter_type == "lora"  # the keys say what is there
    assert extract(header_of({}, {"ss_network_module": "networks.lora"})).adapter_type == "lora"
    no_algo = {"ss_network_module": "lycoris.kohya", "ss_network_args": '{"conv_dim": "4"}'}
    assert extract(header_of({}, no_algo)).adapter_type == "lora"  # LyCORIS's default algorithm
    broken = {"ss_network_module": "lycoris.kohya", "ss_network_args": "{not json"}
    assert extract(header_of({}, broken)).adapter_type == "unknown"


@pytest.mark.parametrize(("metadata", "family"), [
    ({"ss_base_model_version": "sd_v1"}, "sd1"),
    ({"ss_base_model_version": "sd_v2_v"}, "sd2"),
    ({"ss_base_model_version": "sdxl_base_v1-0"}, "sdxl"),
    ({"ss_base_model_version": "sd3"}, "sd3"),
    ({"ss_base_model_version": "flux1"}, "flux"),
    ({"ss_base_model_version": "flux2_klein"}, "flux2"),
    ({"ss_base_model_version": "chroma"}, "chroma"),
    ({"ss_base_model_version": "hunyuan_video"}, "hunyuan_video"),
    ({"ss_base_model_version": "wan2.1_t2v_14B"}, "wan"),
    ({"ss_base_model_version": "qwen_image"}, "qwen"),
    ({"ss_base_model_version": "zimage_turbo"}, "zimage"),
    ({"ss_base_model_version": "hunyuan_image_2.1"}, "unknown"),  # a known non-family, not HunyuanVideo
    ({"modelspec.architecture": "stable-diffusion-v1/lora"}, "sd1"),
    ({"modelspec.architecture": "stable-diffusion-v2-768-v/lora"}, "sd2"),
    ({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}, "sdxl"),
    ({"modelspec.architecture": "stable-diffusion-3-medium/lora"}, "sd3"),
    ({"modelspec.architecture": "flux-1-dev/lora"}, "flux"),
    ({"modelspec.architecture": "Flux.1-schnell/lora"}, "flux"),
    ({"ss_v2": "True"}, "sd2"),
    ({"ss_v2": "False"}, "unknown"),
    ({"ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": "ponyDiffusionV6XL_v6.safetensors"}, "pony"),
    ({"ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": "C:\\models\\noobaiXL_eps11.safetensors"},
     "illustrious"),
    ({"ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": "/home/pony/sd_xl_base_1.0.safetensors"},
     "sdxl"),  # only the file name counts, not its folders
    ({"ss_sd_model_name": "Illustrious-XL-v0.1.safetensors"}, "illustrious"),
    ({"ss_base_model_version": "sd_v1", "ss_sd_model_name": "ponyDiffusionV6XL.safetensors"}, "sd1"),
    ({"ss_sd_model_name": "v1-5-pruned-emaonly.safetensors"}, "sd1"),
    ({"ss_sd_model_name": "juggernautXL_v9.safetensors"}, "sdxl"),
    ({"ss_sd_model_name": "model.safetensors"}, "unknown"),
    ({}, "unknown"),
])
def test_base_model_from_metadata_variants(metadata: dict, family: str) -> None:
    info = extract(header_of({}, metadata))
    assert info.base_model == family
    assert info.base_model_source == ("none" if family == "unknown" else "metadata")


def test_keys_overrule_metadata_that_names_another_architecture(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", "sdxl", rank=2, compact=True,
                            metadata={"ss_base_model_version": "sd_v1"})
    assert (info_of(path).base_model, info_of(path).base_model_source) == ("sdxl", "keys")
    # but metadata naming a family the keys cannot tell apart is kept
    for claimed in ("pony", "illustrious"):
        md = {"ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": f"{claimed}.safetensors"}
        path = synth.write_lora(tmp_path / "x.safetensors", "sdxl", rank=2, compact=True, metadata=md)
        assert (info_of(path).base_model, info_of(path).base_model_source) == (claimed, "metadata")
    path = synth.write_lora(tmp_path / "c.safetensors", "flux", rank=2, compact=True,
                            metadata={"ss_base_model_version": "chroma"})
    assert info_of(path).base_model == "chroma"


def test_pony_hint_does_not_override_keys_of_another_architecture(tmp_path: Path) -> None:
    md = {"ss_sd_model_name": "ponyDiffusionV6XL.safetensors"}
    path = synth.write_lora(tmp_path / "x.safetensors", "flux", rank=2, compact=True, metadata=md)
    assert (info_of(path).base_model, info_of(path).base_model_source) == ("flux", "keys")


@pytest.mark.parametrize(("names", "family"), [
    (["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"], None),
    (["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight"], "flux"),
    (["diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"], "flux"),
    (["lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight"], "hunyuan_video"),
    (["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight"], "sd3"),
    (["lora_unet_transformer_blocks_0_img_mlp_net_0_proj.lora_down.weight"], "qwen"),
    (["diffusion_model.blocks.0.cross_attn.k.lora_A.weight"], "wan"),
    (["diffusion_model.noise_refiner.0.attention.to_q.lora_A.weight"], "zimage"),
    (["model.weight"], None),
])
def test_transformer_families_from_names(names: list[str], family: str | None) -> None:
    assert base_model_from_keys(entries(*[(n, [4, 3072]) for n in names])) == family


def test_diffusers_unet_context_width_and_mmdit_width() -> None:
    sdxl = entries(("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight", [4, 2048]),
                   ("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight", [640, 4]))
    assert base_model_from_keys(sdxl) == "sdxl"
    sd1_compvis = entries(
        ("lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_down.weight", [4, 768]))
    assert base_model_from_keys(sd1_compvis) == "sd1"
    sd3 = entries(("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", [4, 1536]),
                  ("transformer.transformer_blocks.0.attn.add_q_proj.lora_A.weight", [4, 1536]))
    assert base_model_from_keys(sd3) == "sd3"
    flux = entries(("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", [4, 3072]),
                   ("transformer.transformer_blocks.0.ff_context.net.0.proj.lora_A.weight", [4, 3072]))
    assert base_model_from_keys(flux) == "flux"


def test_fields_from_realistic_metadata(tmp_path: Path) -> None:
    md = synth.realistic_metadata("sdxl", "neon_city", seed=3, modelspec_trigger_phrase="neon city",
                                  ss_resolution="(1024, 768)", ss_epoch="7", ss_steps="1400")
    path = synth.write_lora(tmp_path / "neon_city.safetensors", "sdxl", rank=8, metadata=md, compact=True)
    info = info_of(path)
    assert info.network_module == "networks.lora"
    assert info.network_dim == 8  # from the tensors
    assert info.network_alpha == float(md["ss_network_alpha"])
    assert info.title == "Neon City" and info.output_name == "neon_city"
    assert info.training_model == md["ss_sd_model_name"]
    assert info.resolution == "1024x768"
    assert (info.epochs, info.steps) == (7, 1400)
    assert info.trigger_phrase == "neon city"
    assert info.architecture == "stable-diffusion-xl-v1-base/lora"
    assert info.has_text_encoder
    assert info.tensor_count == len(read_header(path).tensors)
    assert info.metadata == md  # nothing large to cut


def test_missing_and_odd_values_degrade_to_none() -> None:
    md = {"ss_network_dim": "None", "ss_network_alpha": "nan", "ss_output_name": "None", "ss_epoch": "-3",
          "ss_num_epochs": "12", "ss_steps": "1e999", "ss_max_train_steps": "300", "ss_resolution": "huge",
          "modelspec.resolution": "768", "modelspec.title": "  two\nlines  "}
    info = extract(header_of({}, md), "dir/file.name.safetensors")
    assert info.network_dim is None and info.network_alpha is None and info.output_name is None
    assert (info.epochs, info.steps) == (12, 300)
    assert info.resolution == "768x768"
    assert info.title == "two lines"
    assert extract(header_of({}), "dir/file.name.safetensors").title == "file.name"
    assert extract(header_of({})).title is None


def test_rank_prefers_tensors_over_stale_metadata(tmp_path: Path) -> None:
    md = synth.realistic_metadata("sd1", "resized", ss_network_dim="128")
    assert info_of(synth.write_lora(tmp_path / "r.safetensors", "sd1", rank=4, metadata=md, compact=True)).network_dim == 4
    loha = synth.write_lora(tmp_path / "h.safetensors", "sd1", rank=6, adapter="loha", metadata={})
    assert info_of(loha).network_dim == 6
    lokr = synth.write_lora(tmp_path / "k.safetensors", "sd1", rank=6, adapter="lokr", metadata={"ss_network_dim": "6"})
    assert info_of(lokr).network_dim == 6  # no rank in LoKr tensors: the metadata's


def test_trigger_suggestions_are_summed_ranked_and_capped() -> None:
    freq = {"10_alice": {"alice": 40, "1girl": 30, " smile ": 5, "": 9, "bad": "x", "neg": -2},
            "2_alice extra": {"alice": 10, "smile": 30, "blue  sky": 30}}
    freq["10_alice"].update({f"tag{i:02d}": 1 for i in range(40)})
    md = {"ss_tag_frequency": json.dumps(freq)}
    ranked = trigger_suggestions(md)
    assert ranked[:4] == [("alice", 50), ("smile", 35), ("1girl", 30), ("blue sky", 30)]
    assert len(ranked) == 30 and ranked[4:6] == [("tag00", 1), ("tag01", 1)]
    with_phrase = trigger_suggestions({**md, "modelspec.trigger_phrase": "smile"})
    assert with_phrase[:2] == [("smile", 35), ("alice", 50)] and len(with_phrase) == 30
    assert trigger_suggestions({**md, "modelspec.trigger_phrase": "zzz"})[0] == ("zzz", 0)
    for broken in ("", "[1, 2]", "{", "{" * 100_000, json.dumps({"a": [1]}), "None"):
        assert trigger_suggestions({"ss_tag_frequency": broken}) == []


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def test_thumbnail_decoding_and_bounds(tmp_path: Path) -> None:
    png = png_bytes()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    assert decode_thumbnail(uri) == ("image/png", png)
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    # the bytes decide the type, not the declared one; whitespace in the payload is tolerated
    wrapped = base64.encodebytes(jpeg.getvalue()).decode()
    assert decode_thumbnail("data:image/png;base64," + wrapped) == ("image/jpeg", jpeg.getvalue())
    for bad in (None, "", "image/png;base64,AAAA", "data:image/png;base64", "data:image/png,"
                + base64.b64encode(png).decode(), "data:image/png;base64,@@@@",
                "data:text/plain;base64," + base64.b64encode(b"hello").decode()):
        assert decode_thumbnail(bad) is None
    big = b"\x89PNG\r\n\x1a\n" + bytes(MAX_THUMBNAIL_BYTES)
    assert decode_thumbnail("data:image/png;base64," + base64.b64encode(big).decode()) is None
    md = synth.realistic_metadata("sd1", "thumb", modelspec_thumbnail=uri)
    info = info_of(synth.write_lora(tmp_path / "t.safetensors", "sd1", rank=2, metadata=md, compact=True))
    assert info.thumbnail == ("image/png", png)
    assert "modelspec.thumbnail" not in info.metadata


def test_stored_metadata_is_bounded() -> None:
    md = {"small": "x", "big": "é" * 200_000, "k" * 300: "long key", "modelspec.thumbnail": "data:..."}
    out = bounded_metadata(md)
    assert set(out) == {"small", "big"}
    assert len(out["big"].encode()) <= MAX_METADATA_VALUE_BYTES
    assert out["big"].startswith("é" * 1000) and "cut" in out["big"] and "400,000 bytes" in out["big"]
    exact = "a" * MAX_METADATA_VALUE_BYTES
    assert bounded_metadata({"a": exact})["a"] == exact


def test_extract_is_total_on_hostile_metadata_values() -> None:
    md = {"ss_network_dim": "9" * 5000, "ss_network_alpha": "inf", "ss_resolution": "(" + "1," * 50 + ")",
          "ss_network_args": "[" * 10_000, "ss_network_module": "lycoris.kohya",
          "ss_tag_frequency": json.dumps({"a": {"x" * 500: 3}}), "modelspec.thumbnail": "data:" + "A" * 10,
          "ss_sd_model_name": "p" * 100_000}
    info = extract(header_of({}, md))
    assert info.network_dim is None and info.network_alpha is None and info.resolution is None
    assert info.trigger_suggestions == [] and info.thumbnail is None
    assert info.adapter_type == "unknown"  # a garbled argument list names no algorithm
    assert len(info.training_model or "") <= 1024


def _suggestions_as_specified(md: dict[str, str]) -> list[tuple[str, int]]:
    """trigger_suggestions written plainly: every tag normalised, summed, ranked by count then name."""
    counts: dict[str, int] = {}
    for tags in json.loads(md["ss_tag_frequency"]).values():
        if isinstance(tags, dict):
            for tag, n in tags.items():
                tag = " ".join(tag.split())
                if tag and len(tag) <= 200 and type(n) is int and n > 0:
                    counts[tag] = counts.get(tag, 0) + n
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:30]


def test_trigger_suggestions_match_the_plain_definition():
    """The counting takes shortcuts for clean tag lists; odd ones (spaces, tabs, empty or long
    tags, bad counts, tags repeated across folders) must rank exactly as the plain loop does."""
    rng = random.Random(3)
    words = ["solo", "1girl", "smile", " smile", "smile ", "blue  sky", "blue sky", "a\tb", "a b", "", "x" * 201,
             "red eyes", "long hair", "\u3000wide", "ab\0cd", "nul \0", "z"]
    for _ in range(400):
        folders = {}
        for f in range(rng.randint(1, 3)):
            folders[f"{f}_set"] = {rng.choice(words) + rng.choice(("", "", str(rng.randint(0, 40)))):
                                   rng.choice((1, 2, 3, 5, 8, 0, -1, True, 2.5, "4")) if rng.random() < 0.2
                                   else rng.randint(1, 9) for _ in range(rng.randint(0, 25))}
        md = {"ss_tag_frequency": json.dumps(folders)}
        assert trigger_suggestions(md) == _suggestions_as_specified(md)
