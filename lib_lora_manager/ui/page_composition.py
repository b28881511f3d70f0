"""One page's composition in the Compose tab, kept on the server and changed one event at a time.

Gradio hands every event the value of a ``gr.State`` as the event's handler starts, and stores
what the handler returns: two composition events running at once (SDNext's queue runs several
events of a page concurrently) each started from the same list, and the one that finished last
erased the other's change. A ``PageComposition`` is instead one mutable object per page load (a
``gr.State`` holds it, Gradio keeps one per page and deep-copies the initial value for each new
page, see ``__deepcopy__``): every event applies its one change to the current entries under the
composition's lock.

Rows are positional in the page (row 0, row 1 …), and an event may have been fired from a page
that had not yet shown an earlier change (a click on row 0 while an ↑ is on its way). Every entry
therefore carries a ``key``, the page holds the keys in the order it shows them (``order``), and
an event's row index or slider values are mapped through the page's order to the entries they
were meant for.
"""

from __future__ import annotations

import threading
from typing import Any

KEY = "key"  # the entry field that identifies it within its page (never saved in drafts or recipes)


class PageComposition:
    """The entries of one page, the lock that serializes their changes, and the keys that name them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self._next_key = 1

    def __deepcopy__(self, memo: dict) -> PageComposition:
        # Gradio deep-copies a State's initial value for each new page: a fresh, empty composition
        return PageComposition()

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the entries for a handler to work on (it returns the changed list)."""
        return [dict(e) for e in self.entries]

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """Keep ``entries`` (a handler's result); entries new to the page get a key."""
        kept = []
        for entry in entries or []:
            entry = dict(entry)
            if not isinstance(entry.get(KEY), int):
                entry[KEY] = self._next_key
                self._next_key += 1
            kept.append(entry)
        self.entries = kept

    def order(self) -> str:
        """The keys in row order, as the page holds them ("3 1 4")."""
        return " ".join(str(e[KEY]) for e in self.entries if isinstance(e.get(KEY), int))

    def shown(self, order: Any) -> bool:
        """Whether the page's ``order`` is the current one (its rows show the current entries)."""
        return str(order or "").split() == self.order().split()

    def index(self, order: Any, row: int) -> int | None:
        """The current index of the entry shown in ``row`` when the page had ``order``, or None
        when that entry was removed meanwhile. Without an order (a page that never got one) the
        row is taken as it is."""
        keys = view_keys(order)
        if keys is None:
            return row if 0 <= row < len(self.entries) else None
        if not 0 <= row < len(keys):
            return None
        for index, entry in enumerate(self.entries):
            if entry.get(KEY) == keys[row]:
                return index
        return None

    def weights(self, order: Any, values: tuple, per_row: int, rows: int) -> tuple:
        """Slider ``values`` (``per_row`` for each of ``rows`` rows, in the page's row order)
        rearranged into the current order; an entry the page did not show yet gets None (its
        weights stay as they are)."""
        keys = view_keys(order)
        if keys is None:
            return tuple(values)
        by_key = {key: tuple(values[per_row * row:per_row * row + per_row]) for row, key in enumerate(keys[:rows])}
        out: list[Any] = []
        for entry in self.entries[:rows]:
            out.extend(by_key.get(entry.get(KEY), (None,) * per_row))
        return tuple(out)


def view_keys(order: Any) -> list[int] | None:
    """The keys of a page's order box, or None when it holds none (before the first change)."""
    text = str(order or "").strip()
    if not text:
        return None
    try:
        return [int(part) for part in text.split()]
    except ValueError:
        return None


def plain(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries without their page keys (what recipes store)."""
    return [{k: v for k, v in e.items() if k != KEY} for e in entries or []]
