"""Counts in words, agreeing in number: "1 file", "2 files", "1 group of duplicates".

Every message that puts a count before a noun (CLI, UI, scan summaries, errors) goes through
``plural``, so none says "1 groups" or hedges with "file(s)".
"""

from __future__ import annotations

_IRREGULAR = {"copy": "copies", "LoRA copy": "LoRA copies", "entry": "entries"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is one ("1,024 bytes").
    ``many``: the plural when it is not the noun plus "s"."""
    return f"{count:,} {noun if count == 1 else many or _IRREGULAR.get(noun) or noun + 's'}"


def were(count: int) -> str:
    """The verb after a count: "1 file was", "2 files were"."""
    return "was" if count == 1 else "were"
