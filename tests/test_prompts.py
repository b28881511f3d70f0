"""Prompts in SDNext's syntax: tokens parsed and written back, compositions, infotext."""

from __future__ import annotations

import pytest
from factories import make_lora

from lib_lora_manager import prompts

INFOTEXT = (
    "a castle at dusk, <lora:anime_style:0.8>, watercolor <lora:detail:te=0.5:unet=1>\n"
    "Negative prompt: blurry, lowres\n"
    'Steps: 20, Size: 512x768, Sampler: Euler a, Seed: 1234, CFG scale: 6.5, Model: sd15, '
    'LoRA networks: "anime_style, detail", App: SD.Next'
)


def test_tokens_are_extracted_with_their_weights():
    text, refs = prompts.extract_loras("a cat, <lora:anime_style:0.8>, <style:cinematic> <lora:x>, <lora:b:te=0.5:unet=0.2@0,1@0.5>")
    assert text == "a cat, <style:cinematic>"
    assert [(r.name, r.weight, r.te, r.unet) for r in refs] == [
        ("anime_style", 0.8, None, None), ("x", None, None, None), ("b", None, 0.5, "0.2@0,1@0.5")]
    assert refs[0].te_weight == refs[0].unet_weight == 0.8
    assert refs[2].unet_weight == "0.2@0,1@0.5"


@pytest.mark.parametrize("name,weight,te,unet", [
    ("anime_style", 0.8, None, None), ("styles/water color", 1.25, None, None), ("x", 1.0, 0.5, None), ("y", 1.0, 0.3, 0.9)])
def test_format_and_parse_round_trip(name, weight, te, unet):
    token = prompts.format_lora(name, weight, te, unet)
    _, [ref] = prompts.extract_loras(token)
    assert ref.name == name
    assert ref.te_weight == (te if te is not None else weight)
    assert ref.unet_weight == (unet if unet is not None else (te if te is not None else weight))


def test_compose_adds_enabled_triggers_once_then_tokens():
    loras = [prompts.ComposedLora("anime_style", 0.8, triggers=["anime style", "cel shading"]),
             prompts.ComposedLora("off", 1.0, enabled=False, triggers=["never"]),
             prompts.ComposedLora("detail", 1.0, te=0.5, unet=1.0, triggers=["Anime Style"])]
    out = prompts.compose("a castle, cel shading", loras)
    assert out == "a castle, cel shading, anime style <lora:anime_style:0.8> <lora:detail:te=0.5:unet=1>"


def test_infotext_is_parsed():
    fields = prompts.parse_infotext(INFOTEXT)
    assert fields["Prompt"].startswith("a castle at dusk")
    assert fields["Negative prompt"] == "blurry, lowres"
    assert fields["Steps"] == 20 and fields["Seed"] == 1234 and fields["CFG scale"] == 6.5
    assert fields["Size"] == "512x768" and fields["Sampler"] == "Euler a"
    assert fields["LoRA networks"] == "anime_style, detail"


def test_library_reads_a_prompt_back_to_its_entries(library, lora_dir):
    make_lora(lora_dir / "styles", "anime_style", seed=1)
    make_lora(lora_dir, "detail", "sdxl", seed=2)
    library.indexer.scan()
    library.indexer.hash_pending()
    shorthash = library.search("detail").items[0].shorthash
    result = library.composer.read_prompt(INFOTEXT.replace("<lora:detail:", f"<lora:{shorthash}:") + "")
    assert result.text == "a castle at dusk, watercolor"
    assert result.negative == "blurry, lowres" and result.parameters["Steps"] == 20
    by_name = {item.name: item for item in result.loras}
    assert by_name["anime_style"].lora_id and by_name["anime_style"].weight == 0.8
    assert by_name[shorthash].lora_id and by_name[shorthash].te == 0.5
    missing = library.composer.read_prompt("<lora:not_here:1>").loras[0]
    assert missing.lora_id is None and "not_here" in missing.problem


def test_prompt_names_resolve_by_alias_and_title(library, lora_dir):
    from lib_lora_manager import synth

    metadata = synth.realistic_metadata("sd1", "inkv2", seed=4) | {"ss_output_name": "InkMaster", "modelspec.title": "Ink Master v2"}
    make_lora(lora_dir, "ink_master_v2_final", metadata=metadata, seed=4)
    library.indexer.scan()
    expected = library.find("ink_master_v2_final").id
    assert library.find("inkmaster").id == expected  # SDNext's alias: the training output name
    assert library.find("Ink Master v2").id == expected
    [item] = library.composer.read_prompt("a pond <lora:InkMaster:0.6>").loras
    assert item.lora_id == expected and item.problem is None
