"""Column types that let any file name and any text from a file reach the database.

File names are bytes on POSIX. Python hands a name that is not valid UTF-8 (common in LoRA packs
unzipped from Windows archives) over as a ``str`` with surrogate escapes (U+DC80..U+DCFF, one per
undecodable byte); such a string cannot be encoded for SQLite or PostgreSQL. ``FsPath`` maps
those escapes to a private-use range (U+10FE80..U+10FEFF) on the way in and back on the way out,
so Python always holds the real file name and the database always gets valid UTF-8. A real name
that already holds one of those reserved characters could not be told apart: the scanner refuses
it with a per-file report (``storable_path``).

Text read from files (header metadata, sidecars) may hold NUL, which PostgreSQL text rejects,
and lone surrogates from JSON escapes such as "\\ud83d". ``SafeText``/``SafeString`` drop NUL and
replace lone surrogates, so the same text is stored on SQLite and PostgreSQL and nothing from a
file can fail a write. The fast paths (``str.isascii`` is O(1), ``in`` is a memchr) keep them
invisible in the scan's profile.
"""

from __future__ import annotations

import re

from sqlalchemy import String, Text
from sqlalchemy.types import TypeDecorator

_ESCAPE_BASE = 0xDC00  # surrogateescape: byte b -> U+DC00 + b (b >= 0x80)
_PRIVATE_BASE = 0x10FE00  # our stand-ins: byte b -> U+10FE00 + b
_ESCAPES = re.compile("[\udc80-\udcff]")
_STAND_INS = re.compile("[\U0010fe80-\U0010feff]")
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
_TO_DB = {c: _PRIVATE_BASE + c - _ESCAPE_BASE for c in range(0xDC80, 0xDD00)}
_FROM_DB = {v: k for k, v in _TO_DB.items()}


def path_to_db(value: str) -> str:
    """A file name as stored: surrogate escapes become their private-use stand-ins."""
    if value.isascii() or not _ESCAPES.search(value):
        return value
    return value.translate(_TO_DB)


def path_from_db(value: str) -> str:
    """The real file name back from its stored form."""
    if value.isascii() or not _STAND_INS.search(value):
        return value
    return value.translate(_FROM_DB)


def storable_path(value: str) -> bool:
    """False for a real name holding one of the reserved stand-in characters: stored as it is,
    it would read back as a different name."""
    return value.isascii() or not _STAND_INS.search(value)


def clean_text(value: str) -> str:
    """Text every database accepts: NUL dropped, lone surrogates replaced by U+FFFD."""
    if value.isascii():
        return value.replace("\0", "") if "\0" in value else value
    if not _UNSAFE_TEXT.search(value):
        return value
    return _LONE_SURROGATES.sub("\ufffd", value.replace("\0", ""))


class FsPath(TypeDecorator):
    """TEXT holding a file-system path or name (see the module docstring)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return path_to_db(value) if isinstance(value, str) else value

    def process_result_value(self, value, dialect):
        return path_from_db(value) if value is not None else None

    def result_processor(self, dialect, coltype):
        """One plain function per value instead of TypeDecorator's three nested calls: a rescan
        loads the path and root of every row (100,000 values at 50,000 LoRAs)."""
        inner = self.impl_instance.result_processor(dialect, coltype)
        if inner is not None:  # no driver we support converts TEXT, but keep its conversion if one does
            return super().result_processor(dialect, coltype)
        return _path_from_db_or_none


def _path_from_db_or_none(value):
    if value is None or value.isascii():
        return value
    return value.translate(_FROM_DB) if _STAND_INS.search(value) else value


class SafeText(TypeDecorator):
    """TEXT that never fails a write for what it holds (see the module docstring)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return clean_text(value) if isinstance(value, str) else value


class SafeString(TypeDecorator):
    """VARCHAR(n) with SafeText's cleaning."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return clean_text(value) if isinstance(value, str) else value
