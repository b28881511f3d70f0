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


@pytest.mark.parametrize("user, sidecar, detected, shown", [
    (None, None, "pony", "pony"),
    (None, "sdxl", "pony", "pony"),  # the sidecar says less than the file
    (None, "sdxl", "illustrious", "illustrious"),
    (None, "pony", "sdxl", "pony"),  # the sidecar says more
    (None, "sd1", "sdxl", "sd1"),  # a conflict: the sidecar wins, and the detail says so
    (None, "sdxl", "unknown", "sdxl"),
    ("flux", "sdxl", "pony", "flux"),  # the user's choice above all
    (None, None, None, "unknown"),
])
def test_effective_base_model(user, sidecar, detected, shown):
    assert base_models.effective(user, sidecar, detected) == shown


def test_conflicts_are_different_families_not_coarser_ones():
    assert base_models.conflict("sdxl", "pony") is None and base_models.conflict("pony", "sdxl") is None
    assert base_models.conflict("sdxl", "sdxl") is None and base_models.conflict("sdxl", "unknown") is None
    assert base_models.conflict("sd1", "sdxl") == "the file says SDXL, a sidecar says SD1.5"
    assert base_models.conflict("illustrious", "pony") == "the file says Pony, a sidecar says Illustrious"
