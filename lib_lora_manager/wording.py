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


def human_size(size: int | None) -> str:
    """A size in binary units ("1.5 KB" is 1,536 bytes), the one wording of sizes everywhere
    (cards, the Library's trash, analytics figures and insights), so one screen agrees."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover
