"""Counts in words agree in number, in every message that words them."""

from __future__ import annotations

import pytest

from lib_lora_manager import wording
from lib_lora_manager.results import BulkResult
from lib_lora_manager.safetensors_header import HeaderError, read_header
from lib_lora_manager.scanner import ScanReport
from lib_lora_manager.ui import cards


@pytest.mark.parametrize("count, noun, text", [
    (0, "file", "0 files"), (1, "file", "1 file"), (2, "file", "2 files"), (1024, "byte", "1,024 bytes"),
    (1, "copy", "1 copy"), (3, "copy", "3 copies"), (1, "group", "1 group"), (2, "LoRA", "2 LoRAs"),
])
def test_plural(count, noun, text):
    assert wording.plural(count, noun) == text


def test_reports_and_messages_say_one_thing_in_the_singular(tmp_path):
    assert ScanReport(roots=[], files=1, errors=1).summary().startswith("1 file, 0 new")
    assert BulkResult(done=[7]).summary("tagged") == "tagged 1 LoRA"
    assert "1 LoRA ·" in cards.stats_line({"total": 1})
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"x")
    with pytest.raises(HeaderError, match=r"\(1 byte\)"):
        read_header(str(short))
