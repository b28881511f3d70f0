"""Read and validate safetensors headers without touching tensor data.

Layout: an 8-byte little-endian length N, N bytes of UTF-8 JSON (maybe right-padded with
spaces), then the data region. The JSON maps tensor names to
``{"dtype", "shape", "data_offsets"}`` (offsets relative to the data region) plus an optional
``"__metadata__"`` object of string values.

Every file is untrusted. Anything wrong with one becomes a single :class:`HeaderError` whose
text is one line a user can act on; nothing else escapes, and nothing is allocated before the
declared length has been checked against the limit and the file size.

The scanner runs this for tens of thousands of files, so the happy path is one ``orjson``
parse (SDNext ships orjson; the standard library's ``json`` is used where it is missing), one
tight loop over the tensors and a colon count (see _check_duplicates); the slower duplicate-key
parse covers only the metadata unless the count looks wrong.

The standard library is the reference: orjson accepts a subset of what ``json`` accepts and
gives the same values for it, except integers beyond 64 bits (orjson makes them floats) and
nesting between json's depth limit (about 1000, less the caller's stack) and orjson's (1024).
orjson's reading is taken only for headers whose metadata values are strings and whose entries
hold exactly a dtype, a shape and offsets of the right types: nothing there can be a float or
nested, so it is the reference's reading. Any other header is parsed again with ``json`` and
judged by it: the errors are the same words for the same file whichever parser is installed.
Lone surrogates (which ``json`` accepts) never get past orjson, so only the ``json`` path looks
for them.

A scan meets the same tensor part again and again (one trainer, one setting: the same bytes);
``Layouts`` remembers parts found valid, and a header ending with one needs only its metadata
parsed and checked.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .wording import plural

try:
    import orjson
except ImportError:  # everything is parsed by the standard library: slower, same results
    orjson = None

MAX_HEADER_BYTES = 64 * 1024 * 1024
_PREFIX = 8
_MIB = 1024 * 1024
_NO_LIMIT = float("inf")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
_JSON_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}


class HeaderError(Exception):
    """The file is not a usable safetensors file; ``str(e)`` is one readable line."""

    def __init__(self, reason: str):
        self.reason = " ".join(str(reason).split())  # one line, whatever went in
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class Header:
    header_size: int  # N: the data region starts at 8 + N
    metadata: dict[str, str]  # __metadata__, or {}
    tensors: dict[str, dict]  # name -> {"dtype", "shape", "data_offsets", ...}, validated


def read_header(path: str | os.PathLike, *, max_header_bytes: int = MAX_HEADER_BYTES) -> Header:
    """Read and validate the header of ``path``; raises HeaderError for any problem, I/O included."""
    return parse_header(*read_header_bytes(path, max_header_bytes=max_header_bytes))


def read_header_bytes(path: str | os.PathLike, *, max_header_bytes: int = MAX_HEADER_BYTES) -> tuple[bytes, int]:
    """(the N header bytes, the data region's size) for ``parse_header``: the I/O part of
    read_header, for callers that read ahead while parsing. Raises HeaderError as it does."""
    return _read_raw(path, max_header_bytes)


def read_raw_header(path: str | os.PathLike, *, max_header_bytes: int = MAX_HEADER_BYTES) -> dict:
    """The whole header JSON (``__metadata__`` first when present) for display; same checks."""
    raw, data_size = _read_raw(path, max_header_bytes)
    header, has_metadata = _parse_reference(raw, data_size)  # shown as the file holds it, big numbers too
    if not has_metadata:
        return dict(header.tensors)
    return {"__metadata__": header.metadata, **header.tensors}


def parse_header(raw: bytes, data_size: int | None = None) -> Header:
    """Validate the N header bytes ``raw``; ``data_size`` (when known) bounds the offsets."""
    return _parse(raw, data_size)[0]


def _parse(raw: bytes, data_size: int | None) -> tuple[Header, bool]:
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    if orjson is not None:
        parsed = _parse_fast(raw, data_size)
        if parsed is not None:
            return parsed
    return _parse_reference(raw, data_size)


def _parse_fast(raw: bytes, data_size: int | None) -> tuple[Header, bool] | None:
    """The header parsed by orjson and found valid, or None: then the reference parse judges it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    has_metadata = "__metadata__" in obj
    metadata = obj.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        return None
    for value in metadata.values():
        if type(value) is not str:
            return None
    entry_keys = _check_tensors(obj, data_size)
    if entry_keys != 3 * len(obj):  # a bad entry, or one with more than dtype, shape and offsets
        return None
    text = str(raw, "utf-8")  # valid: orjson checked it
    try:
        _check_duplicates(text, len(obj) + entry_keys, has_metadata)
    except HeaderError:
        return None
    return Header(header_size=len(raw), metadata=metadata, tensors=obj), has_metadata


def _parse_reference(raw: bytes, data_size: int | None) -> tuple[Header, bool]:
    """The standard library's parse and every check, in the order that picks the error shown."""
    text, obj = _decode(raw)
    has_metadata = "__metadata__" in obj
    metadata = obj.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        raise HeaderError(f"__metadata__ is {_kind(metadata)}, expected an object")
    _check_metadata(metadata)
    entry_keys = _check_tensors(obj, data_size)
    if entry_keys is None:
        raise HeaderError(_first_tensor_problem(obj, data_size))
    tensors_start = _check_duplicates(text, len(obj) + entry_keys, has_metadata)
    _check_unicode(text, tensors_start, metadata, obj)
    return Header(header_size=len(raw), metadata=metadata, tensors=obj), has_metadata


# --- layouts seen before --------------------------------------------------------------------


class Layouts:
    """Tensor parts of headers already read and found valid, each with what the caller
    derived from its tensors.

    Files written by one trainer with one setting (architecture, rank, modules, dtype) share
    their tensor part byte for byte: only the metadata object in front of it differs. A header
    that ends with a part seen here needs only that metadata parsed and checked (with the
    reference parser, duplicate keys included); its tensors are the earlier file's, valid
    again as long as their last offset lies within this file's data region. Anything else
    (metadata not first, a part not seen, a problem anywhere) gets ``None`` from ``match`` and
    the whole parse, whose errors are therefore the only ones users see.

    Bounded by the bytes of the parts held; the least recently matched go first. Safe to share
    between threads."""

    def __init__(self, max_bytes: int = 8 * _MIB):
        self.max_bytes = max_bytes
        self._parts: OrderedDict[bytes, tuple[int, object]] = OrderedDict()  # part -> (last offset, value)
        self._held = 0
        self._lock = threading.Lock()
        self.matched = 0  # headers read by a layout seen before

    def __len__(self) -> int:
        return len(self._parts)

    def match(self, raw: bytes, data_size: int) -> tuple[dict[str, str], object] | None:
        """(the checked metadata, the value added with the part) if ``raw`` ends with a part
        seen before whose tensors fit ``data_size``; else None."""
        end = _content_end(raw)
        with self._lock:  # a part may end another (the same last tensors): each is a candidate
            candidates = [(part, *self._parts[part]) for part in reversed(self._parts)
                          if len(part) < end and raw.endswith(part, 0, end)]
        for part, last_offset, value in sorted(candidates, key=lambda c: -len(c[0])):
            if last_offset > data_size:
                continue
            metadata = _leading_metadata(raw[:end - len(part)])
            if metadata is None:
                continue
            with self._lock:
                if part in self._parts:
                    self._parts.move_to_end(part)
                self.matched += 1
            return metadata, value
        return None

    def add(self, raw: bytes, header: Header, value: object) -> None:
        """Remember the tensor part of ``raw`` (read as ``header``, so valid) with ``value``."""
        start = _tensor_part_start(raw, header)
        if start is None:
            return
        part = raw[start:_content_end(raw)]
        if len(part) > self.max_bytes:
            return
        last_offset = max((entry["data_offsets"][1] for entry in header.tensors.values()), default=0)
        with self._lock:
            if part in self._parts:
                return
            self._parts[part] = (last_offset, value)
            self._held += len(part)
            while self._held > self.max_bytes:
                dropped, _ = self._parts.popitem(last=False)
                self._held -= len(dropped)


def _tensor_part_start(raw: bytes, header: Header) -> int | None:
    """Where the tensors of a valid header whose metadata comes first begin: at ``,"name":{``
    for its first tensor's name. Outside strings, valid JSON has ``:{`` only before an object
    value, and the metadata holds none, so the first such bytes are that place. None when the
    metadata is not first or the name would be written with escapes."""
    if not raw.startswith(_METADATA_FIRST_BYTES):
        return None
    first = next(iter(header.tensors), None)
    if first is None or not (first.isascii() and first.isprintable()) or '"' in first or "\\" in first:
        return None
    start = raw.find(b',"' + first.encode("ascii") + b'":{', len(_METADATA_FIRST_BYTES))
    return start if start > 0 else None


def _content_end(raw: bytes) -> int:
    """Where ``raw`` ends without the whitespace writers pad headers with."""
    end = len(raw)
    while end and raw[end - 1] in b" \t\r\n":
        end -= 1
    return end


def _leading_metadata(prefix: bytes) -> dict[str, str] | None:
    """The metadata of a header that is ``prefix`` followed by a tensor part already checked:
    ``prefix`` must be exactly ``{"__metadata__":`` and one object of strings, checked as the
    reference parse checks it. None for anything else."""
    try:
        text = str(prefix, "utf-8")
    except UnicodeDecodeError:
        return None
    if not text.startswith(_METADATA_FIRST):
        return None
    try:
        metadata, end = _PAIRS_DECODER.raw_decode(text, _SPACE.match(text, len(_METADATA_FIRST)).end())
    except (_Duplicate, ValueError, RecursionError):
        return None
    if _SPACE.match(text, end).end() != len(text) or type(metadata) is not dict:
        return None
    for key, value in metadata.items():
        if type(value) is not str:
            return None
        if not (key.isascii() and value.isascii()):
            try:
                _encodable(key, "a metadata key")
                _encodable(value, "a metadata value")
            except HeaderError:
                return None
    return metadata


# --- reading ------------------------------------------------------------------------------


def _read_raw(path: str | os.PathLike, limit: int) -> tuple[bytes, int]:
    """Return (header bytes, data region size), checking the length before reading it."""
    try:
        # O_NONBLOCK so a FIFO named *.safetensors cannot hang the scan; plain os.read so no
        # buffer pulls st_blksize bytes (MBs on some NAS mounts) to get the first 8.
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise HeaderError(f"cannot open file: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HeaderError("not a regular file")
        size = st.st_size
        if size < _PREFIX:
            raise HeaderError(f"file is too short to be safetensors ({plural(size, 'byte')})")
        (length,) = struct.unpack("<Q", _read_exact(fd, _PREFIX))
        if length > limit:
            raise HeaderError(f"header length {_size(length)} exceeds the {_limit(limit)} limit")
        if _PREFIX + length > size:
            raise HeaderError(
                f"file is truncated: the header needs {plural(length, 'byte')} but only {size - _PREFIX:,} follow"
            )
        raw = _read_exact(fd, length)
    except OSError as e:
        raise HeaderError(f"cannot read file: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return raw, size - _PREFIX - length


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:  # the file shrank since fstat
            raise HeaderError(f"file is truncated: expected {n:,} more bytes, got {got:,}")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- decoding -----------------------------------------------------------------------------


def _decode(raw: bytes) -> tuple[str, dict]:
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as e:
        raise HeaderError(
            f"header is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})"
        ) from None
    if not text.strip():
        raise HeaderError("header is empty")
    obj = _loads(text)
    if type(obj) is not dict:
        raise HeaderError(f"header is {_kind(obj)}, expected a JSON object")
    return text, obj


def _loads(text: str, hook=None):
    try:
        return json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as e:
        raise HeaderError(f"header is not valid JSON: {e.msg} at character {e.pos}") from None
    except RecursionError:
        raise HeaderError("header JSON is nested too deeply") from None
    except ValueError:  # e.g. an integer literal longer than Python's digit limit
        raise HeaderError("header JSON holds a number too long to read") from None


# --- validation ---------------------------------------------------------------------------


def _check_metadata(metadata: dict) -> None:
    for key, value in metadata.items():
        if type(value) is not str:
            raise HeaderError(f"metadata value for {_name(key)} is {_kind(value)}, expected a string")


def _check_tensors(tensors: dict, data_size: int | None) -> int | None:
    """Fast validity check of every entry: the number of keys the entries hold, or None if any
    entry is malformed (then _first_tensor_problem says which and why)."""
    # Runs once per tensor (~2,200 for SDXL): locals and early breaks, no per-entry calls.
    limit = data_size if data_size is not None else _NO_LIMIT
    _str, _list, _int, _type = str, list, int, type
    try:
        for entry in tensors.values():
            dtype, shape = entry["dtype"], entry["shape"]
            begin, end = entry["data_offsets"]  # anything but two items raises
            if (_type(dtype) is not _str or not dtype or _type(shape) is not _list
                    or _type(begin) is not _int or _type(end) is not _int
                    or not 0 <= begin <= end <= limit):
                return None
            for dim in shape:
                if _type(dim) is not _int or dim < 0:
                    return None
    except (KeyError, TypeError, ValueError):  # not an object, a missing field, bad offsets
        return None
    return sum(map(len, tensors.values()))


def _first_tensor_problem(tensors: dict, data_size: int | None) -> str:
    for name, entry in tensors.items():
        problem = _tensor_problem(name, entry, data_size)
        if problem:
            return problem
    return "a tensor entry is malformed"  # unreachable when both checks agree


def _tensor_problem(name: str, entry, data_size: int | None) -> str | None:
    where = f"tensor {_name(name)}"
    if type(entry) is not dict:
        return f"{where} is {_kind(entry)}, expected an object"
    for field in ("dtype", "shape", "data_offsets"):
        if field not in entry:
            return f"{where} has no {field}"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if type(dtype) is not str or not dtype:
        return f"{where}: dtype must be a non-empty string"
    if type(shape) is not list or any(type(d) is not int or d < 0 for d in shape):
        return f"{where}: shape must be a list of non-negative integers"
    if (type(offsets) is not list or len(offsets) != 2
            or any(type(o) is not int or o < 0 for o in offsets) or offsets[0] > offsets[1]):
        return f"{where}: data_offsets must be two integers [begin, end] with begin <= end"
    if data_size is not None and offsets[1] > data_size:
        return (f"{where}: data_offsets {offsets} reach past the data region "
                f"({plural(data_size, 'byte')}); the file is probably truncated")
    return None


# --- duplicate keys -----------------------------------------------------------------------


def _check_duplicates(text: str, tensor_keys: int, has_metadata: bool) -> int:
    """Raise HeaderError if any object in the header repeats a key.

    json.loads silently keeps the last of repeated keys, and a pairs hook over the whole
    header costs ~50% more parse time, so the exact parse covers only the small metadata
    object (first in every file the official writer produces). For the tensor part a count
    suffices: outside strings a colon only ends a key, so its colons equal the keys parsed
    there unless a key was swallowed by a duplicate (or a string holds a colon; both send
    the header to the exact parse, which accepts it if nothing repeats).
    Returns where the tensor part of ``text`` starts (0 when unknown).
    """
    start = 0
    if has_metadata:
        end = _metadata_end(text) if text.startswith(_METADATA_FIRST) else None
        if end is None:  # metadata not first: exact parse of everything
            _find_duplicate(text)
            return 0
        start = end
    if text.count(":", start) != tensor_keys:
        _find_duplicate(text)
    return start


def _check_unicode(text: str, tensors_start: int, metadata: dict[str, str], tensors: dict) -> None:
    """Reject lone surrogates (``\\ud800`` escapes): json accepts them, but such strings cannot
    be stored or shown later. Escapes are rare outside metadata, so names are only looked at
    when the tensor part holds a backslash."""
    for key, value in metadata.items():
        if not (key.isascii() and value.isascii()):  # isascii is O(1) on str
            _encodable(key, "a metadata key")
            _encodable(value, f"metadata value for {_name(key)}")
    if text.find("\\", tensors_start) != -1:
        for name in tensors:
            if not name.isascii():
                _encodable(name, "a tensor name")


def _encodable(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HeaderError(f"{what} holds an invalid escape (a lone UTF-16 surrogate)") from None


def _metadata_end(text: str) -> int | None:
    """End of the leading metadata object, parsed with the duplicate-key hook; None if unsure."""
    start = _SPACE.match(text, len(_METADATA_FIRST)).end()
    try:
        _, end = _PAIRS_DECODER.raw_decode(text, start)
    except _Duplicate as dup:
        raise HeaderError(f"duplicate key {_name(dup.key)} in {dup.where}") from None
    except (ValueError, RecursionError):  # cannot happen after a full parse; be safe anyway
        return None
    return end


class _Duplicate(Exception):
    def __init__(self, key: str, where: str):
        super().__init__(key)
        self.key, self.where = key, where


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key, _where(pairs))
            seen.add(key)
    return result


def _where(pairs: list[tuple[str, object]]) -> str:
    # The hook cannot see nesting; judge the object by what it holds.
    keys = {k for k, _ in pairs}
    if "dtype" in keys or "data_offsets" in keys:
        return "a tensor entry"
    if all(type(v) is str for _, v in pairs):
        return "__metadata__"
    return "the header"


def _find_duplicate(text: str) -> None:
    """Exact (slower) parse; raises HeaderError naming a duplicate key, returns if there is none."""
    try:
        _loads(text, hook=_no_duplicates)
    except _Duplicate as dup:
        raise HeaderError(f"duplicate key {_name(dup.key)} in {dup.where}") from None


_METADATA_FIRST = '{"__metadata__":'
_METADATA_FIRST_BYTES = _METADATA_FIRST.encode("ascii")
_SPACE = re.compile(r"[ \t\n\r]*")
_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


# --- wording ------------------------------------------------------------------------------


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _name(key: str, limit: int = 80) -> str:
    """A key as users see it in a message: quoted, escaped, one line, bounded."""
    return repr(key if len(key) <= limit else key[:limit] + "…")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000:
            return plural(n, "byte") if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} EB"


def _limit(n: int) -> str:
    return f"{n // _MIB} MiB" if n >= _MIB and n % _MIB == 0 else _size(n)
