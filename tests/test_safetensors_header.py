"""The safetensors header parser against real files: valid ones, the official library, hostile ones."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from safetensors import safe_open

from lib_lora_manager import synth
from lib_lora_manager.safetensors_header import (
    MAX_HEADER_BYTES,
    Header,
    HeaderError,
    parse_header,
    read_header,
    read_raw_header,
)

# every test here runs with orjson and with the standard library's json (conftest.json_parser)
pytestmark = pytest.mark.usefixtures("json_parser")

ENTRY = {"dtype": "F16", "shape": [2, 4], "data_offsets": [0, 16]}

# A word each message must contain, so a user can tell what is wrong.
EXPECTED_WORDS = {
    "empty": "too short", "short": "too short", "truncated": "truncated", "absurd_length": "exceeds",
    "invalid_json": "not valid JSON", "not_object": "expected a JSON object", "deep_nesting": "nested too deeply",
    "non_utf8": "UTF-8", "wrong_types": "expected a string", "bad_tensor_entry": "shape",
    "duplicate_keys": "duplicate key", "duplicate_metadata_keys": "duplicate key",
    "offsets_out_of_range": "past the data region",
}


def framed(header: bytes | str, data: bytes = b"") -> bytes:
    raw = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("kind", synth.HOSTILE_KINDS)
def test_every_hostile_file_gives_one_readable_header_error(tmp_path: Path, kind: str) -> None:
    path = synth.write_hostile(tmp_path / f"{kind}.safetensors", kind)
    with pytest.raises(HeaderError) as caught:
        read_header(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300
    assert EXPECTED_WORDS[kind] in message
    with pytest.raises(HeaderError):  # the display path applies the same checks
        read_raw_header(path)


def test_every_hostile_kind_has_an_expected_message() -> None:
    assert set(EXPECTED_WORDS) == set(synth.HOSTILE_KINDS)


def test_absurd_length_is_rejected_before_reading(tmp_path: Path) -> None:
    path = synth.write_hostile(tmp_path / "big.safetensors", "absurd_length")
    with pytest.raises(HeaderError, match=r"header length 9\.2 EB exceeds the 64 MiB limit"):
        read_header(path)
    # a length under the limit but past the end of the file is "truncated", also before reading
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(HeaderError, match="truncated"):
        read_header(path)


def test_custom_limit(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "a.safetensors", "sd1", rank=2)
    size = read_header(path).header_size
    with pytest.raises(HeaderError, match="exceeds"):
        read_header(path, max_header_bytes=size - 8)
    assert read_header(path, max_header_bytes=size).header_size == size


def test_os_errors_become_header_errors(tmp_path: Path) -> None:
    with pytest.raises(HeaderError, match="cannot open"):
        read_header(tmp_path / "missing.safetensors")
    with pytest.raises(HeaderError, match="not a regular file"):
        read_header(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(HeaderError, match="not a regular file"):
        read_header(fifo)


@pytest.mark.parametrize("family", ["sd1", "sdxl", "flux"])
@pytest.mark.parametrize("data", ["sparse", "random"])
def test_parse_matches_the_official_library(tmp_path: Path, family: str, data: str) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", family, rank=4, data=data, compact=data == "random")
    header = read_header(path)
    with safe_open(str(path), "numpy") as f:
        assert set(f.keys()) == set(header.tensors)
        assert f.metadata() == header.metadata
        for name in list(f.keys())[:40]:
            assert list(f.get_slice(name).get_shape()) == header.tensors[name]["shape"]
            assert f.get_slice(name).get_dtype() == header.tensors[name]["dtype"]


def test_valid_file_round_trips_metadata_and_sizes(tmp_path: Path) -> None:
    metadata = {"ss_output_name": "héllo wörld", "ss_tag_frequency": json.dumps({"5_x": {"a: b": 3}}),
                "modelspec.title": 'quotes " and \\ backslashes', "empty": ""}
    path = synth.write_lora(tmp_path / "x.safetensors", "sd1", rank=2, metadata=metadata)
    header = read_header(path)
    assert isinstance(header, Header)
    assert header.metadata == metadata
    raw = path.read_bytes()
    assert header.header_size == struct.unpack("<Q", raw[:8])[0]
    assert all(set(e) == {"dtype", "shape", "data_offsets"} for e in header.tensors.values())
    whole = read_raw_header(path)
    assert list(whole)[0] == "__metadata__" and whole["__metadata__"] == metadata
    assert set(whole) - {"__metadata__"} == set(header.tensors)


def test_no_metadata_and_null_metadata() -> None:
    assert parse_header(json.dumps({"t": ENTRY}).encode(), 16).metadata == {}
    assert parse_header(json.dumps({"__metadata__": None, "t": ENTRY}).encode(), 16).metadata == {}


def test_padding_spacing_and_metadata_placement_are_accepted() -> None:
    compact = json.dumps({"__metadata__": {"a": "1"}, "t": ENTRY}, separators=(",", ":"))
    spaced = json.dumps({"t": ENTRY, "__metadata__": {"a": "1"}}, indent=2)  # metadata last, pretty
    for text in (compact + " " * 13, spaced, "\n  " + compact + "\t\n "):
        header = parse_header(text.encode(), 16)
        assert header.metadata == {"a": "1"} and header.tensors == {"t": ENTRY}


def test_memoryview_input() -> None:
    raw = json.dumps({"t": ENTRY}).encode()
    assert parse_header(memoryview(raw)).tensors == {"t": ENTRY}


BAD_HEADERS = [
    (b"", "empty"),
    (b"   ", "empty"),
    (b'{"a":', "not valid JSON"),
    (b"null", "null, expected a JSON object"),
    (b'"text"', "a string, expected a JSON object"),
    (b'{"__metadata__":[]}', "__metadata__ is a list"),
    (b'{"__metadata__":{"k":null}}', "'k' is null"),
    (b'{"__metadata__":{"k":{"nested":"x"}}}', "'k' is an object"),
    (b'{"t":[]}', "tensor 't' is a list"),
    (b'{"t":"F16"}', "tensor 't' is a string"),
    (b'{"t":{"shape":[1],"data_offsets":[0,2]}}', "has no dtype"),
    (b'{"t":{"dtype":"F16","data_offsets":[0,2]}}', "has no shape"),
    (b'{"t":{"dtype":"F16","shape":[1]}}', "has no data_offsets"),
    (b'{"t":{"dtype":"","shape":[1],"data_offsets":[0,2]}}', "dtype"),
    (b'{"t":{"dtype":7,"shape":[1],"data_offsets":[0,2]}}', "dtype"),
    (b'{"t":{"dtype":"F16","shape":"12","data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":{},"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[1.5],"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[true],"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[-1],"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2,4]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[4,2]}}', "begin <= end"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[-2,2]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":["0","2"]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":"02"}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2e0]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,' + b"9" * 5000 + b"]}}", "number too long"),
    (b'{"t":{"dtype":"F16","shape":[NaN],"data_offsets":[0,2]}}', "shape"),
    (b'{"__metadata__":{"k":"\\ud800"}}', "lone UTF-16 surrogate"),
    (b'{"__metadata__":{},"\\udc00x\\\\":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', "surrogate"),
    (b'{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}', "duplicate key '__metadata__'"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2],"dtype":"F32"}}', "duplicate key 'dtype' in a tensor entry"),
    # an escaped colon in metadata must not hide a duplicate from the colon count
    (b'{"__metadata__":{"a":"x","a":"\\u003a"}}', "duplicate key 'a' in __metadata__"),
    # nor a key ending in an escaped backslash
    (b'{"a\\\\":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1],'
     b'"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', "duplicate key 'b'"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2],"x":{"y":1,"y":2}}}', "duplicate key 'y'"),
    (b'{"__metadata__":{"k":"v"}, "k:x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},'
     b'"k:x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', "duplicate key 'k:x'"),
    # where orjson and json differ, json's reading decides
    (b'{"__metadata__":{"k":NaN}}', "'k' is a number"),
    (b'{"__metadata__":{"k":1e400}}', "'k' is a number"),
    (b'{"__metadata__":{"k":18446744073709551616}}', "'k' is an integer"),  # orjson: a float
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,18446744073709551616]}}', "past the data region"),
    (b'{"t":{"dtype":"F16","shape":[-18446744073709551616],"data_offsets":[0,2]}}', "shape"),
    (b'{"__metadata__":{"k":"a\\tb\\u0000","k2":"a\\x01"}}', "not valid JSON: Invalid \\escape"),
    (b'{"__metadata__":{"k":"a\x01b"}}', "not valid JSON: Invalid control character"),
    (b'\xef\xbb\xbf{"__metadata__":{}}', "UTF-8 BOM"),
    (b'{"__metadata__":{"k":"\xed\xa0\x80"}}', "not valid UTF-8 (byte 0xed at offset 22)"),
    (b'{"__metadata__":{"k":"\\udfff\\ud800"}}', "surrogate"),
    (b'{"__metadata__":{"k":"v"},"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"__metadata__":{"k":"v"}}',
     "duplicate key '__metadata__'"),
    (b'{"__metadata__":{"k":"v"},"__metadata__":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}',
     "metadata value for 'shape' is a list"),  # the last value is kept, as json keeps it
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}',
     "duplicate key 't'"),
    (b'{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},'
     b'"a" : {"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', "duplicate key 'a'"),
    (b'{"t\\"":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"t\\"":{"dtype":"F16","shape":[1],'
     b'"data_offsets":[0,2]}}', "duplicate key 't\"'"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,101]}}', "past the data region"),
    (b'{"t":{"dtype":"F16","shape":[1, false],"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[[1]],"data_offsets":[0,2]}}', "shape"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2.0]}}', "data_offsets"),
    (b'{"t":{"dtype":"F16","shape":[1],"data_offsets":[true,2]}}', "data_offsets"),
    (b'{"t":{"dtype":["F16"],"shape":[1],"data_offsets":[0,2]}}', "dtype"),
    (b'{"t":null}', "tensor 't' is null"),
]


@pytest.mark.parametrize(("raw", "words"), BAD_HEADERS)
def test_bad_headers_are_explained(raw: bytes, words: str) -> None:
    with pytest.raises(HeaderError) as caught:
        parse_header(raw, 100)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_offsets_are_checked_only_when_the_data_size_is_known() -> None:
    raw = json.dumps({"t": {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}}).encode()
    assert parse_header(raw).tensors["t"]["data_offsets"] == [0, 16]
    assert parse_header(raw, 16).tensors
    with pytest.raises(HeaderError, match="past the data region"):
        parse_header(raw, 15)


GOOD_HEADERS = [
    # colons and escaped quotes inside strings, escaped colons, unicode: no false duplicates
    {"__metadata__": {"ss_tag_frequency": json.dumps({"1_a": {"b:c": 1, 'd"e': 2}}), "t\\u003a": "x:y"},
     "lora_unet_x:y.lora_down.weight": ENTRY},
    {"__metadata__": {"a": "\u00e9\u4e2d\U0001f600"}, "名前": ENTRY},
    {"t": {**ENTRY, "extra": {"nested": [1, 2, {"k": "v"}]}}},
    {"t\\": ENTRY, "u": ENTRY},
    {"__metadata__": {}},
    {},
    # integers beyond 64 bits stay integers (orjson would make them floats), infinities are kept
    {"t": {**ENTRY, "shape": [2**64, 1]}},
    {"t": {**ENTRY, "extra": 1e400, "more": 2**70}},
    {"__metadata__": {"k": "a:b", "k:c": ":", "\\": "\"x\":{\"dtype\":"}, 'n"a:{"dtype":"me': ENTRY},
]


@pytest.mark.parametrize("doc", GOOD_HEADERS)
def test_unusual_but_valid_headers_are_accepted(doc: dict) -> None:
    for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, separators=(",", ":"))):
        header = parse_header(text.encode(), 16)
        assert header.tensors == {k: v for k, v in doc.items() if k != "__metadata__"}
        assert header.metadata == doc.get("__metadata__", {})


def test_error_messages_bound_long_names() -> None:
    name = "x" * 10_000 + "\n<script>"
    raw = json.dumps({name: {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}).encode()
    with pytest.raises(HeaderError) as caught:
        parse_header(raw)
    assert len(str(caught.value)) < 200 and "\n" not in str(caught.value)


def test_header_error_is_one_line_even_from_odd_text() -> None:
    assert str(HeaderError("a\nb\t c")) == "a b c"
    assert HeaderError("x").reason == "x"


def test_limit_constant() -> None:
    assert MAX_HEADER_BYTES == 64 * 1024 * 1024


def test_file_shorter_than_declared_by_data_is_caught_by_offsets(tmp_path: Path) -> None:
    path = synth.write_lora(tmp_path / "x.safetensors", "sd1", rank=2, data="random", compact=True)
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])  # a download cut short in the data region
    with pytest.raises(HeaderError, match="truncated"):
        read_header(path)
    assert parse_header(raw[8:8 + read_header_size(raw)]).tensors  # the header itself is fine


def read_header_size(raw: bytes) -> int:
    return struct.unpack("<Q", raw[:8])[0]


def test_hand_framed_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "hand.safetensors"
    path.write_bytes(framed(json.dumps({"t": ENTRY}), bytes(16)))
    assert read_header(path).tensors == {"t": ENTRY}
