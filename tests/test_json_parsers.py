"""orjson and the standard library's json give the same headers, errors and metadata facts.

The header parser takes orjson's reading only when every check passes and leaves everything
else to json (safetensors_header's docstring says why that is exact); these tests throw many
mangled headers at both and compare what comes out."""

from __future__ import annotations

import json
import random

import pytest

from lib_lora_manager import lora_info, safetensors_header
from lib_lora_manager.safetensors_header import HeaderError, parse_header

pytestmark = pytest.mark.skipif(safetensors_header.orjson is None, reason="orjson is not installed")

ENTRY = '{"dtype":"F16","shape":[2,4],"data_offsets":[0,16]}'
SEEDS = [
    '{"__metadata__":{"ss_output_name":"x","k:y":"a:b","t":"{\\"a\\": {\\"b\\": 3}}"},"a.lora_down.weight":%s,'
    '"a.lora_up.weight":%s}' % (ENTRY, ENTRY),
    '{"t":%s,"u\\\\":%s,"v\\"":%s}' % (ENTRY, ENTRY, ENTRY),
    '{"__metadata__":{},"x":{"dtype":"BF16","shape":[],"data_offsets":[16,16],"extra":[1,{"k":null}]}}',
]
# what a mangled header may gain: JSON syntax, numbers orjson reads differently, escapes, bytes
PIECES = ['"', ":", ",", "{", "}", "[", "]", "\\", "\\\"", "\\u003a", "\\ud800", "\\udc00", "\\u0000", "-1", "1.5",
          "1e400", "NaN", "Infinity", "18446744073709551616", "-9223372036854775809", "true", "null", " ", "\t",
          '"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"t"', "\x01", "\xe9", "0", "99"]


def outcome(raw: bytes, data_size: int | None) -> tuple:
    try:
        header = parse_header(raw, data_size)
    except HeaderError as e:
        return ("error", str(e))
    return ("ok", header.header_size, repr(header.metadata), repr(header.tensors))


def both(raw: bytes, data_size: int | None, monkeypatch) -> tuple[tuple, tuple]:
    fast = outcome(raw, data_size)
    with monkeypatch.context() as m:
        m.setattr(safetensors_header, "orjson", None)
        reference = outcome(raw, data_size)
    return fast, reference


# members that repeat a key of some object of the seeds when put before its closing brace
REPEATS = [',"a.lora_up.weight":' + ENTRY, ',"t":' + ENTRY, ',"u\\\\":' + ENTRY, ',"v\\"":' + ENTRY,
           ',"ss_output_name":"y"', ',"k:y":"z"', ',"dtype":"F32"', ',"shape":[1]', ',"data_offsets":[0,2]',
           ',"__metadata__":{}', ',"k":1', ',"extra":2']


def mangled(rng: random.Random) -> bytes:
    text = rng.choice(SEEDS)
    if rng.random() < 0.4:
        closing = [i for i, c in enumerate(text) if c == "}"]
        at = rng.choice(closing)
        text = text[:at] + rng.choice(REPEATS) + text[at:]
    for _ in range(rng.randint(0 if rng.random() < 0.3 else 1, 4)):
        at = rng.randrange(len(text) + 1)
        cut = rng.choice((0, 0, 1, 2, 5))
        text = text[:at] + rng.choice(PIECES) + text[at + cut:]
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        data = data.replace(b"\xc3\xa9", b"\xe9")  # a lone Latin-1 byte: not UTF-8
    return data


def test_mangled_headers_read_the_same_with_both_parsers(monkeypatch):
    rng = random.Random(9)
    accepted = refused = 0
    for _ in range(20000):
        raw = mangled(rng)
        data_size = rng.choice((None, 16, 15, 10**6))
        fast, reference = both(raw, data_size, monkeypatch)
        assert fast == reference, raw
        accepted += fast[0] == "ok"
        refused += fast[0] == "error"
    assert accepted > 500 and refused > 10000  # both sides of the comparison were exercised


@pytest.mark.parametrize("raw", [
    b'{"t":{"dtype":"F16","shape":[18446744073709551616],"data_offsets":[0,2]}}',
    b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2],"x":1e400}}',
    b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2],"x":[' + b"[" * 1100 + b"]" * 1100 + b"]}}",
    # deeper than json goes from here, not as deep as orjson's limit
    b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2],"x":' + b"[" * 1000 + b"]" * 1000 + b"}}",
    b'{"__metadata__":{"k":"\\ud83d\\ude00"},"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}',
    b'{"__metadata__":{"k":"\\ud83d"},"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}',
])
def test_where_the_parsers_differ_json_decides(raw, monkeypatch):
    fast, reference = both(raw, None, monkeypatch)
    assert fast == reference


TAG_FREQUENCIES = [
    '{"1_a": {"x": 3, "y": 18446744073709551616, "z": 2}}',  # orjson: a float; json: a count
    '{"1_a": {"x": 3, "y": 2.0}}',
    '{"1_a": {"x": NaN, "y": 1}}',
    '{"1_a": {"x\\ud800": 3, "y": 1}}',
    '{"1_a": {"x  y": 3, " x y ": 4}, "2_b": {"x y": 1}}',
    '{"1_a": {"x": 3, "x": 5}}',
    '{"1_a": [1, 2]}',
    '{"1_a": {"x": -3, "y": true, "z": "4"}}',
]


@pytest.mark.parametrize("raw", TAG_FREQUENCIES)
def test_trigger_suggestions_are_the_same_with_both_parsers(raw, monkeypatch):
    md = {"ss_tag_frequency": raw, "ss_network_module": "lycoris.kohya", "ss_network_args": raw}
    fast = (lora_info.trigger_suggestions(md), lora_info._declared_adapter(md))
    monkeypatch.setattr(lora_info, "orjson", None)
    assert (lora_info.trigger_suggestions(md), lora_info._declared_adapter(md)) == fast


def test_stored_metadata_reads_back_the_same(tmp_path):
    from lib_lora_manager import reading

    md = {"ss_output_name": "out\0put", "a": "é中😀", "q": '"\\', "ctl": "\x01\x1f\x7f", "big": "x" * 70_000}
    stored = reading._dumps(lora_info.bounded_metadata(md))
    assert json.loads(stored) == lora_info.bounded_metadata(md)
