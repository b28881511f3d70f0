"""Words of the query language that need no database.

The Library tab's menus are built while SDNext starts, before SQLAlchemy is imported, so the
sort keys and their words live here rather than next to their SQL in query.py."""

from __future__ import annotations

# sort key -> (ascending words, descending words); query.SORTS maps the same keys to columns
SORT_WORDS: dict[str, tuple[str, str]] = {
    "name": ("name (A to Z)", "name (Z to A)"),
    "added": ("date added (oldest first)", "date added (newest first)"),
    "modified": ("file date (oldest first)", "file date (newest first)"),
    "size": ("size (smallest first)", "size (largest first)"),
    "rating": ("rating (lowest first)", "rating (highest first)"),
    "used": ("last used (longest ago first)", "last used (most recent first)"),
    "uses": ("use count (fewest first)", "use count (most first)"),
}

# the generation history's sort keys (history.GENERATIONS maps them to columns); newest first by default
HISTORY_SORT_WORDS: dict[str, tuple[str, str]] = {
    "date": ("date (oldest first)", "date (newest first)"),
    "rating": ("rating (lowest first)", "rating (highest first)"),
    "duration": ("duration (shortest first)", "duration (longest first)"),
}
