"""The base-model family table: names from files, sidecars and users, and compatibility."""

from __future__ import annotations

import pytest

from lib_lora_manager import base_models


@pytest.mark.parametrize("text,code", [
    ("SD 1.5", "sd1"), ("sd_v1", "sd1"), ("SDXL 1.0", "sdxl"), ("sdxl_base_v1-0", "sdxl"), ("Pony", "pony"),
    ("Illustrious", "illustrious"), ("NoobAI", "illustrious"), ("Flux.1 D", "flux"), ("flux2 klein", "flux2"),
    ("SD 3.5 Large", "sd3"), ("SD 2.1", "sd2"), ("Stable Cascade", "sc"), ("Wan Video 14B t2v", "wan"),
])
def test_names_map_to_families(text, code):
    assert base_models.family_code(text) == code


def test_unknown_names_map_to_nothing():
    assert base_models.family_code("") is None
    assert base_models.family_code("my own model") is None


def test_compatibility_follows_architecture():
    assert base_models.compatible("pony", "sdxl") is True  # same architecture, different family
    assert base_models.compatible("sd1", "sdxl") is False
    assert base_models.compatible("unknown", "sdxl") is None
    assert base_models.compatible("sd1", None) is None
