"""Headers whose tensor part was seen before (safetensors_header.Layouts): the scan parses only
their metadata, and must learn exactly what the whole parse would, errors included.

Each case reads a file twice through reading.read_info: once with no layout known (the whole
parse) and once after another file with the same tensor part was read (only the metadata);
both must give the same facts or the same error as parse_header + lora_info.extract."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lib_lora_manager import reading, synth
from lib_lora_manager.lora_info import extract
from lib_lora_manager.safetensors_header import HeaderError, Layouts, parse_header, read_header_bytes


def make_lora(directory, name: str, family: str = "sd1", *, adapter: str = "lora", rank: int = 2, seed: int = 0):
    """A real LoRA with realistic metadata whose tensor region is a file hole (no disk used)."""
    return synth.write_lora(directory / f"{name}.safetensors", family, adapter=adapter, rank=rank, seed=seed,
                            metadata=synth.realistic_metadata(family, name, seed=seed))


def facts(raw: bytes, data_size: int, layouts: Layouts | None = None) -> tuple:
    """What read_info learns from a header, as comparable data, or the error it raises."""
    try:
        info = reading.read_info(raw, data_size, "x.safetensors", Layouts() if layouts is None else layouts)
    except HeaderError as e:
        return ("error", str(e))
    return ("ok", json.dumps(dataclasses.asdict(info), default=repr, sort_keys=True))


def whole_parse(raw: bytes, data_size: int) -> tuple:
    try:
        info = extract(parse_header(raw, data_size), "x.safetensors")
    except HeaderError as e:
        return ("error", str(e))
    return ("ok", json.dumps(dataclasses.asdict(info), default=repr, sort_keys=True))


@pytest.mark.parametrize("adapter", synth.ADAPTERS)
@pytest.mark.parametrize("family", synth.FAMILIES)
def test_a_known_layout_gives_what_the_whole_parse_gives(tmp_path, family, adapter):
    first = read_header_bytes(make_lora(tmp_path, "first", family, adapter=adapter, rank=8, seed=1))
    second = read_header_bytes(make_lora(tmp_path, "second", family, adapter=adapter, rank=8, seed=2))
    layouts = Layouts()
    assert facts(*first, layouts) == whole_parse(*first)
    assert facts(*second, layouts) == whole_parse(*second)  # only its metadata parsed
    assert layouts.matched == 1  # the second file was read by its layout


def test_other_ranks_and_families_are_other_layouts(tmp_path):
    layouts = Layouts()
    for i, (family, rank) in enumerate((("sd1", 8), ("sd1", 16), ("sdxl", 8), ("sd1", 8))):
        raw = read_header_bytes(make_lora(tmp_path, f"l{i}", family, rank=rank, seed=i))
        assert facts(*raw, layouts) == whole_parse(*raw)
    assert (len(layouts), layouts.matched) == (3, 1)


def seen_and_changed(tmp_path, change) -> tuple[tuple[bytes, int], Layouts]:
    """A valid file's header after ``change(text)`` (its metadata part), with the layout of the
    unchanged file known."""
    raw, data_size = read_header_bytes(make_lora(tmp_path, "seen", "sd1", seed=3))
    layouts = Layouts()
    assert facts(raw, data_size, layouts)[0] == "ok"
    text = raw.decode("utf-8").rstrip(" ")
    changed = change(text)
    return (changed if isinstance(changed, bytes) else changed.encode("utf-8"), data_size), layouts


META = '{"__metadata__":{'
HOSTILE_METADATA = {
    "duplicate metadata key": lambda t: t.replace(META, META + '"ss_output_name":"a","ss_output_name":"b",', 1),
    "a number as a value": lambda t: t.replace(META, META + '"k_num":3,', 1),
    "an object as a value": lambda t: t.replace(META, META + '"k":{"a":"b"},', 1),
    "a lone surrogate in a value": lambda t: t.replace(META, META + '"k":"\\ud800",', 1),
    "a lone surrogate in a key": lambda t: t.replace(META, META + '"\\udc00":"v",', 1),
    "bytes that are not UTF-8": lambda t: t.encode().replace(META.encode(), META.encode() + b'"k":"\xff",', 1),
    "metadata not an object": lambda t: '{"__metadata__":"text"' + t[t.index("}", len(META)) + 1:],
    "metadata not first": lambda t: '{"a.alpha":{"dtype":"F32","shape":[],"data_offsets":[0,4]},' + t[1:],
    "another entry before the known part": lambda t: t.replace(
        '"},"', '"},"extra.alpha":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"', 1),
    "a key repeating a tensor name": lambda t: t.replace(
        '"},"', '"},' + t[t.index('"', t.index('"},"') + 3):t.index('":{', t.index('"},"'))] + '":{}, "', 1),
    "unbalanced metadata": lambda t: t.replace(META, META + '"k":"v"},', 1),
    "escapes and unicode that are fine": lambda t: t.replace(META, META + '"k\\n":"caf\\u00e9 \u00e9 \\"q\\"",', 1),
    "whitespace inside the metadata": lambda t: t.replace(META, '{ "__metadata__" : {\n "k" : "v" ,', 1),
}


@pytest.mark.parametrize("change", HOSTILE_METADATA.values(), ids=HOSTILE_METADATA.keys())
def test_a_changed_metadata_part_is_judged_as_the_whole_parse_judges_it(tmp_path, change):
    (raw, data_size), layouts = seen_and_changed(tmp_path, change)
    assert facts(raw, data_size, layouts) == whole_parse(raw, data_size)


def test_a_harmless_metadata_change_is_read_by_its_layout(tmp_path):
    (raw, data_size), layouts = seen_and_changed(tmp_path, HOSTILE_METADATA["escapes and unicode that are fine"])
    assert facts(raw, data_size, layouts) == whole_parse(raw, data_size)
    assert layouts.matched == 1


def test_a_truncated_copy_of_a_known_layout_is_refused(tmp_path):
    raw, data_size = read_header_bytes(make_lora(tmp_path, "seen", "sdxl", seed=3))
    layouts = Layouts()
    facts(raw, data_size, layouts)
    outcome = facts(raw, data_size - 1, layouts)  # the last tensor reaches past the data region
    assert outcome == whole_parse(raw, data_size - 1)
    assert outcome[0] == "error" and "past the data region" in outcome[1]


@pytest.mark.parametrize("kind", synth.HOSTILE_KINDS)
def test_hostile_files_after_a_known_layout(tmp_path, kind):
    layouts = Layouts()
    for family in ("sd1", "sdxl"):  # the layouts the hostile files are built from, most likely
        facts(*read_header_bytes(make_lora(tmp_path, f"seen {family}", family, seed=5)), layouts)
    path = synth.write_hostile(tmp_path / f"{kind}.safetensors", kind)
    try:
        raw = read_header_bytes(path)
    except HeaderError:
        return  # refused before any parse: the layouts are never asked
    assert facts(*raw, layouts) == whole_parse(*raw)


def test_the_parts_held_are_bounded(tmp_path):
    raws = [read_header_bytes(make_lora(tmp_path, f"r{rank}", "sd1", rank=rank)) for rank in (4, 8, 16, 32)]
    part = len(raws[0][0]) - 2000  # about one part: metadata is a few KB
    layouts = Layouts(max_bytes=2 * part + 1000)
    for raw in raws:
        facts(*raw, layouts)
    assert len(layouts) == 2
    facts(*raws[0], layouts)
    assert layouts.matched == 0  # the oldest went first
    facts(*raws[3], layouts)
    assert layouts.matched == 1  # the newest is there


def test_a_first_tensor_name_written_with_escapes_is_read_whole_every_time(tmp_path):
    raw, data_size = read_header_bytes(make_lora(tmp_path, "seen", "sd1", seed=3))
    text = raw.decode("utf-8")
    first = text.index('"},"') + 3  # the first tensor's name, after the metadata
    escaped = (text[:first + 1] + "\\u006c" + text[first + 2:]).encode("utf-8")  # its "l" as an escape
    assert escaped != raw and parse_header(escaped, data_size).tensors == parse_header(raw, data_size).tensors
    layouts = Layouts()
    for _ in range(2):
        assert facts(escaped, data_size, layouts) == whole_parse(escaped, data_size)
    assert (len(layouts), layouts.matched) == (0, 0)


def test_whitespace_between_the_metadata_and_the_tensors(tmp_path):
    layouts = Layouts()
    for seed in (1, 2):
        raw, data_size = read_header_bytes(make_lora(tmp_path, f"s{seed}", "sd1", seed=seed))
        spaced = raw.replace(b'"},"', b'"} \n,"', 1)
        assert facts(spaced, data_size, layouts) == whole_parse(spaced, data_size)
    assert layouts.matched == 1


def test_a_layout_that_ends_another_does_not_hide_it():
    def header(metadata: str, *names_offsets: tuple[str, int]) -> tuple[bytes, int]:
        entries = ",".join(f'"{n}.weight":{{"dtype":"F16","shape":[2],"data_offsets":[{o},{o + 4}]}}'
                           for n, o in names_offsets)
        return f'{{"__metadata__":{{"k":"{metadata}"}},{entries}}}'.encode(), 12

    longer = header("1", ("c", 8), ("a", 0), ("b", 4))  # ends with every byte of the shorter part
    shorter = header("2", ("a", 0), ("b", 4))
    again = header("3", ("c", 8), ("a", 0), ("b", 4))
    layouts = Layouts()
    for raw in (longer, shorter, again):
        assert facts(*raw, layouts) == whole_parse(*raw)
    assert layouts.matched == 1  # the third read by the longer part, though the shorter was seen last
