"""The Library tab: search, paged cards or table, detail panel with editing, bulk actions, tags,
duplicates and scanning.

``LibraryTab`` holds the handlers: small methods that call the Library (or ``bulk_actions.run``)
and return values or ``gr.update`` dicts in the order of their outputs. They are plain methods,
so tests call them without a browser. ``build_content`` lays out the components (gradio 3.43.2
API) and wires them. Server-side paging only: a response carries one page of cards.

Browser glue (javascript/lora_manager.js): a click on a card writes its id into the hidden
textbox ``lora_manager_open_id`` and clicks the hidden button ``lora_manager_open_btn``; the
selection checkboxes keep the hidden textbox ``lora_manager_selected`` ("3,17,42") up to date,
and the count and the bulk bar with it (the bar sticks above the cards while any is selected);
a click on a card's star writes "id:rating" into ``lora_manager_rate`` and clicks
``lora_manager_rate_btn`` (the card changes at once; the stored rating comes back to confirm it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import base_models, wording
from ..errors import Busy, LoraManagerError, NotFound
from ..fields import split_trigger_words
from ..hostinfo import HostInfo
from . import cards, filters, recommend_cards
from .components import gradio_module as _gr
from .components import no_config

if TYPE_CHECKING:  # the Library (and SQLAlchemy) load after startup: SDNext's startup budget
    from ..library import Library
    from ..results import LoraSummary, Page

VIEWS = ("Grid", "Table")
RATINGS = ("unrated", "1", "2", "3", "4", "5")
AUTO = "auto"
MAX_SELECTION = 20000
MAX_RAW_HEADER = 2_000_000  # characters of the raw header shown (a big LyCORIS header is ~1 MB)
SELECTED = "Selected cards"
EVERY_RESULT = "All search results"
RELATED = 5  # similar and used-with LoRAs listed in the detail

# label -> (bulk_actions action, fixed value or None when the value comes from the form)
BULK_ACTIONS: dict[str, tuple[str, Any]] = {
    "Add tags": ("add_tags", None),
    "Remove tags": ("remove_tags", None),
    "Mark favorite": ("favorite", None),
    "Unmark favorite": ("unfavorite", None),
    "Rate": ("rate", None),
    "Set base model": ("set_base_model", None),
    "Flag NSFW": ("nsfw", True),
    "Unflag NSFW": ("nsfw", False),
    "Move to folder": ("move", None),
    "Move to trash": ("trash", None),
}
# what "Keep the best of every group" keeps (fileops.best_copy_first, in words)
BEST_COPY = ("the favorite, else the highest rated, else the one with most of your own tags, notes and names, "
             "else one with a preview, else the most used, else the shortest path")
VALUE_LABELS = {"add_tags": "Tags (comma-separated)", "remove_tags": "Tags (comma-separated)",
                "rate": "Rating: 1 to 5, or 0 to clear", "move": "Subfolder (optional, created if needed)"}



def parse_ids(text: str | None) -> list[int]:
    """The hidden selection textbox ("3,17,42") as ids, in order, without repeats."""
    seen: dict[int, None] = {}
    for match in re.finditer(r"\d+", text or ""):
        seen.setdefault(int(match.group()), None)
        if len(seen) >= MAX_SELECTION:
            break
    return list(seen)


class LibraryTab:
    """Handlers of the Library tab, bound to one Library and host."""

    def __init__(self, open_library: Callable[[], Library], host: HostInfo):
        self._open_library = open_library
        self.host = host
        # the detail panel's "Add to composition" button and open LoRA id (build_tabs wires them)
        self.compose_button: Any = None
        self.detail_id: Any = None

    @property
    def library(self) -> Library:
        """The library, opened by the host on first use (not while the tab is built)."""
        return self._open_library()

    # --- results ------------------------------------------------------------------------------

    def show_nsfw(self) -> bool:
        return bool(self.host.setting("lora_manager_show_nsfw"))

    def _results(self, q: str, page: int, view: str, selected: str) -> tuple[str, str, str, dict[str, Any]]:
        """(results html, description html, pager html, state) for one page; raises QueryError."""
        result: Page[LoraSummary] = self.library.search(q, page=page, per_page=self.host.page_size())
        if result.page > result.pages and result.total:  # past the end (results shrank): show the last page
            result = self.library.search(q, page=result.pages, per_page=self.host.page_size())
        chosen = set(parse_ids(selected))
        copies = self.library.files.copies(i.sha256 for i in result.items)  # the duplicate badges
        if result.total == 0 and not q.strip():
            body = self._empty_library()
        elif view == "Table":
            body = cards.table(result.items, chosen, copies)
        else:
            body = cards.grid(result.items, self.host.api_base, self.show_nsfw(), chosen, copies)
        state = {"q": q, "page": result.page, "pages": result.pages, "total": result.total}
        return (f'<div class="lm-results-inner" data-page="{result.page}">{body}</div>',
                cards.description(result.description, q), cards.pager(result.page, result.pages, result.total), state)

    def _empty_library(self) -> str:
        roots = ", ".join(self.library.store.roots) or "no folder configured"
        if self.library.indexer.status.running:
            text = f"The first scan is running ({self.library.indexer.status.message}); LoRAs appear as it goes. Click Refresh."
        else:
            text = f"No LoRA files are indexed yet. Folders: {roots}. Add files there and click “Scan folders”."
        return f'<div class="lm-empty">{cards.esc(text)}</div>'

    @staticmethod
    def initial() -> tuple[str, str, str, dict[str, Any]]:
        """What the tab shows before its first refresh: the page script refreshes it as soon as
        the results are visible, so building the tab never touches the database."""
        q = filters.effective_query("", sort=filters.default_sort())
        loading = '<div class="lm-results-inner"><div class="lm-empty">Loading the library…</div></div>'
        return loading, "", "", {"q": q, "page": 1, "pages": 1, "total": 0}

    def search(self, text: str, base: str, adapter: str, favorites: bool, rating: str, tag: str,
               problems: str, sort: str, view: str, selected: str) -> tuple:
        """Run the search box plus quick filters; a bad query keeps the previous results."""
        gr = _gr()
        q = filters.effective_query(text, base, adapter, favorites, rating, tag, problems, sort)
        try:
            return self._results(q, 1, view, selected)
        except LoraManagerError as e:
            return gr.update(), cards.message(str(e), "error"), gr.update(), gr.update()

    def show_page(self, state: dict[str, Any] | None, page: int, view: str, selected: str) -> tuple:
        gr = _gr()
        state = state or {"q": "", "page": 1, "pages": 1}
        try:
            return self._results(state.get("q", ""), max(1, page), view, selected)
        except LoraManagerError as e:
            return gr.update(), cards.message(str(e), "error"), gr.update(), gr.update()

    def refresh(self, state, view, selected):
        return self.show_page(state, (state or {}).get("page", 1), view, selected)

    def first_page(self, state, view, selected):
        return self.show_page(state, 1, view, selected)

    def prev_page(self, state, view, selected):
        return self.show_page(state, (state or {}).get("page", 1) - 1, view, selected)

    def next_page(self, state, view, selected):
        state = state or {}
        return self.show_page(state, min(state.get("page", 1) + 1, state.get("pages", 1)), view, selected)

    def last_page(self, state, view, selected):
        return self.show_page(state, (state or {}).get("pages", 1), view, selected)

    # --- detail panel -------------------------------------------------------------------------

    DETAIL_FIELDS = ("column", "view", "token_row", "weight_row", "token", "name", "tags", "rating", "favorite", "nsfw", "notes",
                     "triggers", "suggestions", "add_suggestions", "weight", "weight_min", "weight_max",
                     "base", "candidates", "raw_header", "status", "id", "loaded_tags", "loaded_form")

    # form boxes -> the Library's edit fields
    EDITED = {"name": "display_name", "rating": "rating", "favorite": "favorite", "nsfw": "nsfw", "notes": "notes",
              "triggers": "trigger_words", "weight": "default_weight", "weight_min": "weight_min",
              "weight_max": "weight_max", "base": "base_model"}

    @staticmethod
    def _form_values(d) -> dict[str, Any]:
        """What the editable boxes show for a LoRA (the rating as its number)."""
        stem = (d.filename or "").rsplit(".", 1)[0]
        return {
            "name": d.name if d.name not in (d.title, stem) else "",  # the user's own name, if any
            "rating": d.rating if d.rating in range(1, 6) else 0,
            "favorite": bool(d.favorite), "nsfw": bool(d.nsfw), "notes": d.notes or "",
            "triggers": ", ".join(d.trigger_words or []),
            "weight": d.default_weight, "weight_min": d.weight_min, "weight_max": d.weight_max,
            "base": base_models.label(d.base_model_user) if d.base_model_user else AUTO,
        }

    def _related(self, lora_id: int) -> str:
        """Similar and used-with LoRAs for the detail; a failure leaves them out, never the detail."""
        rec = self.library.recommender
        try:
            return recommend_cards.detail_lists(rec.similar(lora_id, limit=RELATED), rec.used_with(lora_id, limit=RELATED))
        except LoraManagerError:
            return ""

    def _detail(self, lora_id: int, status: str = "") -> tuple:
        gr = _gr()
        d = self.library.get(lora_id)
        form = self._form_values(d)
        display_name = form["name"]
        chosen = {w.casefold() for w in d.trigger_words or []}
        suggestions = [w for w in cards.suggestion_words(d.trigger_suggestions or []) if w.casefold() not in chosen]
        candidates = [p.replace("\\", "/").rsplit("/", 1)[-1] for p in self.library.previews.candidates(lora_id)]
        loadable = not cards.unreadable(d)  # an unreadable file offers no token, composition or weights
        values = {
            "column": gr.update(visible=True),
            "view": cards.detail(d, self.host.api_base, self.show_nsfw())
            + cards.usage(self.library.analytics.lora_usage(lora_id), d.filename.rsplit(".", 1)[0], self.host.api_base)
            + self._related(lora_id),
            "token_row": gr.update(visible=loadable),
            "weight_row": gr.update(visible=loadable),
            "token": d.token or "",
            "name": gr.update(value=display_name or "", placeholder=d.name),
            "tags": ", ".join(d.tags or []),
            "rating": RATINGS[form["rating"]],
            "favorite": form["favorite"],
            "nsfw": form["nsfw"],
            "notes": form["notes"],
            "triggers": form["triggers"],
            "suggestions": gr.update(choices=suggestions, value=[], visible=bool(suggestions)),
            "add_suggestions": gr.update(visible=bool(suggestions)),
            "weight": d.default_weight,
            "weight_min": d.weight_min,
            "weight_max": d.weight_max,
            "base": form["base"],
            "candidates": gr.update(choices=candidates, value=candidates[0] if candidates else None, visible=bool(candidates)),
            "raw_header": "",
            "status": status,
            "id": int(d.id),
            "loaded_tags": list(d.tags or []),
            "loaded_form": form,
        }
        return tuple(values[k] for k in self.DETAIL_FIELDS)

    def _detail_error(self, message: str) -> tuple:
        gr = _gr()
        out = {k: gr.update() for k in self.DETAIL_FIELDS}
        out["status"] = cards.message(message, "error")
        return tuple(out[k] for k in self.DETAIL_FIELDS)

    def open_detail(self, lora_id: str | int | None) -> tuple:
        ids = parse_ids(str(lora_id or ""))
        if not ids:
            return self._detail_error("No LoRA chosen.")
        try:
            return self._detail(ids[0])
        except LoraManagerError as e:
            return self._detail_error(str(e))

    def close_detail(self) -> dict:
        return _gr().update(visible=False)

    def save(self, lora_id, display_name, tags, rating, favorite, nsfw, notes, triggers,
             weight, weight_min, weight_max, base, loaded_tags=None, loaded_form=None) -> tuple:
        """Save the form: only what was changed in it since it opened. Tags are saved as the
        changes made to them (``loaded_tags``), so tags another action added meanwhile are kept;
        every other box only when it differs from what it showed (``loaded_form``; without it,
        from what the stored LoRA shows), so saving a rating never rewrites the trigger words,
        nor notes another process changed meanwhile."""
        if lora_id is None:
            return self._detail_error("Open a LoRA first.")
        rating_value = RATINGS.index(rating) if rating in RATINGS else rating
        wanted = [t.strip().lower() for t in (tags or "").split(",") if t.strip()]
        try:
            shown = loaded_form if isinstance(loaded_form, dict) else self._form_values(self.library.get(int(lora_id)))
            given = {"name": display_name or "", "rating": rating_value, "favorite": bool(favorite), "nsfw": bool(nsfw),
                     "notes": notes or "", "triggers": triggers or "", "weight": weight, "weight_min": weight_min,
                     "weight_max": weight_max, "base": AUTO if base in (None, "", AUTO) else base}
            changes = {self.EDITED[key]: value for key, value in given.items() if value != shown.get(key)}
            if loaded_tags is None:
                changes["tags"] = tags or ""
            if changes:
                self.library.edit(int(lora_id), **changes)
            if loaded_tags is not None:
                added = [t for t in wanted if t not in loaded_tags]
                removed = [t for t in loaded_tags if t not in wanted]
                if added:
                    self.library.add_tags([int(lora_id)], added)
                if removed:
                    self.library.remove_tags([int(lora_id)], removed)
            return self._detail(int(lora_id), cards.message("Saved.", "ok"))
        except LoraManagerError as e:
            return self._detail_error(f"Not saved: {e}")

    def rate_card(self, request: str | None, detail_id: int | None, loaded_form: dict[str, Any] | None) -> tuple:
        """One click on a card's star: ``request`` is "id:rating" (0 clears). Returns the stored
        "id:rating" (the page script sets the card's stars to it, so a failure shows the truth),
        an error message or no change, and, when the detail panel shows this LoRA, its rating box
        and the form's loaded values (so a later Save does not send the old rating back)."""
        gr = _gr()
        unchanged = (gr.update(), gr.update())
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", request or "")
        if not match:
            return "", cards.message("No rating given.", "error"), *unchanged
        lora_id, rating = int(match.group(1)), int(match.group(2))
        try:
            self.library.set_rating([lora_id], rating or None)
            stored = self.library.get(lora_id).rating or 0
        except LoraManagerError as e:
            return "", cards.message(f"Not rated: {e}", "error"), *unchanged
        message = gr.update() if stored == rating else cards.message("The rating did not change.", "error")
        if detail_id is None or int(detail_id) != lora_id:
            return f"{lora_id}:{stored}", message, *unchanged
        form = dict(loaded_form or {}) | {"rating": stored}
        return f"{lora_id}:{stored}", message, RATINGS[stored], form

    def add_suggestions(self, triggers: str, chosen: list[str] | None) -> tuple:
        words = split_trigger_words(triggers or "")
        known = {w.casefold() for w in words}
        added = [w for w in dict.fromkeys(chosen or []) if w.casefold() not in known]
        text = ", ".join(words + added)
        note = f"Added {cards.plural(len(added), 'trigger word')}; click Save to keep them." if added else "Nothing to add."
        return text, cards.message(note, "info")

    def set_preview_upload(self, lora_id, upload) -> tuple:
        path = getattr(upload, "name", upload)
        if lora_id is None or not path:
            return self._detail_error("Open a LoRA and choose an image first.") + (None,)
        try:
            self.library.previews.use(int(lora_id), str(path))
            return self._detail(int(lora_id), cards.message("Preview updated.", "ok")) + (None,)
        except LoraManagerError as e:
            return self._detail_error(str(e)) + (_gr().update(),)

    def use_candidate(self, lora_id, name: str | None) -> tuple:
        if lora_id is None or not name:
            return self._detail_error("Choose one of the images next to the file.")
        try:
            match = [p for p in self.library.previews.candidates(int(lora_id)) if p.replace("\\", "/").rsplit("/", 1)[-1] == name]
            if not match:
                raise NotFound(f"{name} is not next to this LoRA any more")
            self.library.previews.use(int(lora_id), match[0])
            return self._detail(int(lora_id), cards.message(f"Preview set from {name}.", "ok"))
        except LoraManagerError as e:
            return self._detail_error(str(e))

    def clear_preview(self, lora_id) -> tuple:
        if lora_id is None:
            return self._detail_error("Open a LoRA first.")
        try:
            self.library.previews.clear(int(lora_id))
            return self._detail(int(lora_id), cards.message("Your preview was removed.", "ok"))
        except LoraManagerError as e:
            return self._detail_error(str(e))

    def raw_header(self, lora_id) -> tuple[str, str]:
        """The whole safetensors header as JSON text, only when asked for."""
        if lora_id is None:
            return "", cards.message("Open a LoRA first.", "error")
        try:
            header = self.library.files.raw_header(int(lora_id))
        except LoraManagerError as e:
            return "", cards.message(str(e), "error")
        text = json.dumps(header, indent=1, ensure_ascii=False, default=str)
        if len(text) > MAX_RAW_HEADER:
            text = text[:MAX_RAW_HEADER] + f"\n… cut: {len(text) - MAX_RAW_HEADER:,} more characters"
        return text, ""

    # --- bulk actions -------------------------------------------------------------------------

    def bulk_action_changed(self, action: str) -> tuple:
        gr = _gr()
        name = BULK_ACTIONS.get(action, ("", None))[0]
        roots = self.library.store.roots if name == "move" else []
        label = VALUE_LABELS.get(name, "Value")
        return (gr.update(visible=name in VALUE_LABELS, label=label, placeholder=label, value=""),
                gr.update(visible=name == "set_base_model"),
                gr.update(visible=name == "move", **({"choices": roots, "value": roots[0]} if roots else {})),
                gr.update(visible=False), None, "")

    def bulk_review(self, action, value, base, root, scope, selected, state) -> tuple:
        """Work out what Apply would do and to how many LoRAs; nothing changes yet."""
        gr = _gr()
        hidden = gr.update(visible=False)
        if action not in BULK_ACTIONS:
            return cards.message("Choose an action.", "error"), hidden, None
        name, fixed = BULK_ACTIONS[action]
        if scope == EVERY_RESULT:
            q = (state or {}).get("q", "")
            try:
                ids = self.library.ids(q)
            except LoraManagerError as e:
                return cards.message(str(e), "error"), hidden, None
            where = f"every result of “{q}”" if q.strip() else "every LoRA in the library"
        else:
            ids = parse_ids(selected)
            where = "the selected cards"
            if not ids:
                return (cards.message("No cards are selected: tick the box on cards, or choose “All search results”.", "error"),
                        hidden, None)
        if not ids:
            return cards.message("The query has no results: nothing to do.", "error"), hidden, None
        if fixed is not None:
            request_value: Any = fixed
        elif name in ("add_tags", "remove_tags"):
            request_value = (value or "").strip()
            if not request_value:
                return cards.message("Type the tags (comma-separated).", "error"), hidden, None
        elif name == "rate":
            request_value = (value or "").strip() or "0"
            if request_value not in ("0", "1", "2", "3", "4", "5"):
                return cards.message("Type a rating from 1 to 5, or 0 to clear it.", "error"), hidden, None
        elif name == "set_base_model":
            request_value = AUTO if base in (None, "", AUTO) else base
        elif name == "move":
            if root not in self.library.store.roots:
                return cards.message("Choose the library folder to move into.", "error"), hidden, None
            request_value = {"root": root, "subfolder": (value or "").strip()}
        else:
            request_value = None
        what = action.lower()
        if name in ("add_tags", "remove_tags"):
            what += f" “{request_value}”"
        elif name == "rate":
            what += f" {request_value}" if request_value not in ("0", 0) else " (clear the rating)"
        elif name == "set_base_model":
            what += f" to {request_value}"
        elif name == "move":
            what += f" {request_value['root']}/{request_value['subfolder']}".rstrip("/")
        pending = {"ids": ids, "action": name, "value": request_value, "label": what}
        text = f"{what[:1].upper()}{what[1:]} for {cards.plural(len(ids))} ({where}). Click Apply to do it."
        return (cards.message(text, "info"),
                gr.update(visible=True, value=f"Apply to {cards.plural(len(ids))}", variant="stop" if name == "trash" else "primary"),
                pending)

    def bulk_apply(self, pending: dict[str, Any] | None, selected: str) -> tuple:
        """Run the reviewed action through bulk_actions.run (the same checked request as REST)."""
        gr = _gr()
        hidden = gr.update(visible=False)
        if not pending:
            return cards.message("Review an action first.", "error"), hidden, None, selected
        request = {k: pending[k] for k in ("ids", "action", "value")}
        try:
            from .. import bulk_actions

            result = bulk_actions.run(self.library, request)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), hidden, None, selected
        done, errors = result["done"], result["errors"]
        text = f"{pending.get('label', request['action']).capitalize()}: done for {cards.plural(len(done))}."
        if errors:
            text += f" {cards.plural(len(errors), 'failure')}: " + "; ".join(list(errors.values())[:5])
        if request["action"] == "trash" and done:
            text += " “Undo last trash” puts them back."
        kind = "error" if errors and not done else "ok"
        if request["action"] == "trash":  # trashed cards leave the results: drop them from the selection
            return cards.message(text, kind), hidden, None, without(selected, done)
        return cards.message(text, kind), hidden, None, selected

    def undo_trash(self) -> str:
        try:
            result = self.library.files.undo_trash()
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        text = f"Restored {cards.plural(len(result.done))} from the trash."
        if result.errors:
            text += " Not restored: " + "; ".join(list(result.errors.values())[:5])
        return cards.message(text, "ok" if result.done else "error")

    # --- tags ---------------------------------------------------------------------------------

    def tag_updates(self, message: str = "") -> tuple:
        """(message, tag list html, rename-from, merge-from, filter tag) after tags changed."""
        gr = _gr()
        tags = self.library.tags()
        names = filters.tag_choices(tags)
        return (message, cards.tag_list(tags), gr.update(choices=names, value=None),
                gr.update(choices=names, value=[]), gr.update(choices=[filters.ANY] + names))

    def rename_tag(self, old: str | None, new: str | None) -> tuple:
        if not old or not (new or "").strip():
            return (cards.message("Choose a tag and type its new name.", "error"),) + (_gr().update(),) * 4
        try:
            count = self.library.rename_tag(old, new)
        except LoraManagerError as e:
            return (cards.message(str(e), "error"),) + (_gr().update(),) * 4
        return self.tag_updates(cards.message(f"Renamed “{old}” to “{new.strip().lower()}” on {cards.plural(count)}.", "ok"))

    def merge_tags(self, sources: list[str] | None, target: str | None) -> tuple:
        if not sources or not (target or "").strip():
            return (cards.message("Choose the tags to merge and type the tag to merge them into.", "error"),) + (_gr().update(),) * 4
        try:
            count = self.library.merge_tags(sources, target)
        except LoraManagerError as e:
            return (cards.message(str(e), "error"),) + (_gr().update(),) * 4
        return self.tag_updates(cards.message(f"Merged {cards.plural(len(sources), 'tag')} into “{target.strip().lower()}” on {cards.plural(count)}.", "ok"))

    # --- duplicates ---------------------------------------------------------------------------

    def find_duplicates(self, message: str = "", groups=None) -> tuple:
        """(groups html, keep-one choices, message, keep-best confirm button, its pending plan)."""
        gr = _gr()
        groups = self.library.files.duplicates() if groups is None else groups
        choices = [f"#{int(i.id)} {i.relpath}" for group in groups for i in group]
        summary = message or cards.message(
            f"{cards.plural(len(groups), 'group')} of identical files; keeping one file of a group moves the others to the trash."
            if groups else "No duplicates found.", "info")
        return cards.duplicates(groups), gr.update(choices=choices, value=None), summary, gr.update(visible=False), None

    def keep_best_review(self) -> tuple:
        """Show what "Keep the best of every group" would trash (files, bytes); nothing moves yet."""
        gr = _gr()
        groups = self.library.files.duplicates()  # each group's best copy first
        listing, choices, _message, hidden, _none = self.find_duplicates(groups=groups)
        if not groups:
            return listing, choices, cards.message("No duplicates found: nothing to do.", "info"), hidden, None
        drop = [i for group in groups for i in group[1:]]
        size = sum(i.size or 0 for i in drop)
        which = "the group" if len(groups) == 1 else f"each of the {len(groups):,} groups"
        text = (f"Keeps the best copy of {which} (marked “best” below) and moves {cards.plural(len(drop), 'file')} "
                f"({wording.human_size(size)}) to the trash; “Undo last trash” puts them back.")
        button = gr.update(visible=True, value=f"Trash {cards.plural(len(drop), 'file')} ({wording.human_size(size)})")
        return listing, choices, cards.message(text, "info"), button, {"keep": [int(g[0].id) for g in groups]}

    def keep_best_apply(self, pending: dict[str, Any] | None, selected: str) -> tuple:
        """Trash every copy but the reviewed best ones, in one batch (one undo)."""
        if not pending or not pending.get("keep"):
            return self.find_duplicates(cards.message("Click “Keep the best of every group” first.", "error")) + (selected,)
        try:
            result = self.library.files.keep_duplicates(pending["keep"])
        except LoraManagerError as e:
            return self.find_duplicates(cards.message(str(e), "error")) + (selected,)
        return self.find_duplicates(self._trashed_message(result, "Kept the best copy of every group")) + (without(selected, result.done),)

    @staticmethod
    def _trashed_message(result, done_text: str) -> str:
        text = f"{done_text}; moved {cards.plural(len(result.done), 'file')} to the trash (“Undo last trash” puts them back)."
        if result.errors:
            text += " Failed: " + "; ".join(list(result.errors.values())[:5])
        return cards.message(text, "ok" if result.done else "error")

    def keep_duplicate(self, choice: str | None, selected: str = "") -> tuple:
        gr = _gr()
        ids = parse_ids((choice or "").split(" ", 1)[0])
        if not ids:
            return (gr.update(), gr.update(), cards.message("Choose the file to keep.", "error"), gr.update(), gr.update(), selected)
        try:
            result = self.library.files.keep_duplicate(ids[0])
        except LoraManagerError as e:
            return (gr.update(), gr.update(), cards.message(str(e), "error"), gr.update(), gr.update(), selected)
        return self.find_duplicates(self._trashed_message(result, f"Kept #{ids[0]}")) + (without(selected, result.done),)

    def undo_duplicates(self) -> tuple:
        message = self.undo_trash()
        return self.find_duplicates(message)

    # --- scanning -----------------------------------------------------------------------------

    def stats(self) -> str:
        stats = self.library.stats()
        return cards.stats_line(stats, stats["scan"]["message"])

    def scan(self, progress=None) -> tuple[str, str]:
        """Sync the index now (progress goes to the gr.Progress bar); Busy is a message."""
        def report(fraction: float, message: str) -> None:
            if progress is not None:
                progress(fraction, desc=message)
        try:
            report_ = self.library.indexer.scan(progress=report)
        except Busy:
            return cards.message(f"A scan is already running: {self.library.indexer.status.message}", "info"), self.stats()
        except (LoraManagerError, OSError) as e:
            return cards.message(f"Scan failed: {e}", "error"), self.stats()
        return cards.message("Scan finished: " + report_.summary(), "ok"), self.stats()


def selection_html(count: int = 0) -> str:
    """Selection status and page-level selection buttons. The page script keeps the count (it
    owns the selection); the server renders this once."""
    text = f"{count:,} selected" if count else "No cards selected"
    return (f'<div class="lm-selection"><span class="lm-sel-count" aria-live="polite">{text}</span>'
            '<button type="button" class="lm-link lm-select-page">Select this page</button>'
            '<button type="button" class="lm-link lm-clear-selection">Clear selection</button></div>')


def without(selected: str | None, removed: list[int]) -> str:
    """The selection ("3,17,42") without the LoRAs an action removed from the library."""
    gone = set(removed)
    return ",".join(str(i) for i in parse_ids(selected) if i not in gone)


# --- layout ---------------------------------------------------------------------------------


def build_content(open_library: Callable[[], Library], host: HostInfo) -> LibraryTab:
    """Create the Library tab's components inside the current Blocks context and wire them.

    Nothing here reads the library: contents arrive with the first refresh."""
    import gradio as gr

    tab = LibraryTab(open_library, host)
    results0, description0, pager0, state0 = tab.initial()
    all_tags: list[tuple[str, int]] = []
    tag_names: list[str] = []

    with gr.Column(elem_classes=["lm-root"], elem_id="lora_manager_library"):
        # search and quick filters
        with gr.Row(elem_classes=["lm-searchbar"]):
            search_box = gr.Textbox(label="Search", show_label=False, elem_id="lora_manager_search", lines=1, max_lines=1,
                                    placeholder='Search: words, tag:anime base:sdxl rating:>=4 fav:yes sort:-added …',
                                    elem_classes=["lm-search"])
            search_btn = gr.Button("Search", variant="primary", elem_id="lora_manager_search_btn", elem_classes=["lm-btn"])
            scan_btn = gr.Button("Scan folders", elem_id="lora_manager_scan", elem_classes=["lm-btn"])
        gr.HTML(f'<div class="lm-help">{cards.esc(filters.HELP)}</div>', elem_id="lora_manager_query_help")
        with gr.Row(elem_classes=["lm-filters"]):
            f_base = gr.Dropdown(filters.BASE_CHOICES, value=filters.ANY, label="Base model", elem_id="lora_manager_filter_base")
            f_type = gr.Dropdown(filters.TYPE_CHOICES, value=filters.ANY, label="Type", elem_id="lora_manager_filter_type")
            f_rating = gr.Dropdown(list(filters.RATING_CHOICES), value=filters.ANY, label="Rating", elem_id="lora_manager_filter_rating")
            f_tag = gr.Dropdown([filters.ANY] + tag_names, value=filters.ANY, label="Tag", elem_id="lora_manager_filter_tag")
            f_problems = gr.Dropdown(list(filters.PROBLEM_CHOICES), value=filters.ANY, label="Problems", elem_id="lora_manager_filter_problems")
            f_sort = gr.Dropdown(list(filters.sort_choices()), value=filters.default_sort(), label="Sort", elem_id="lora_manager_sort")
            f_fav = gr.Checkbox(label="Favorites only", value=False, elem_id="lora_manager_filter_fav")
        no_config(f_tag)
        with gr.Row(elem_classes=["lm-status-row"]):
            description = gr.HTML(description0, elem_id="lora_manager_description")
            stats = gr.HTML("", elem_id="lora_manager_stats")
        scan_message = gr.HTML("", elem_id="lora_manager_scan_message")
        # tags and duplicates: above the results, not after a page of cards
        with gr.Accordion("Tags", open=False, elem_id="lora_manager_tags_acc"):
            tag_list = gr.HTML(cards.tag_list(all_tags), elem_id="lora_manager_tag_list")
            with gr.Row(elem_classes=["lm-bulk"]):
                t_rename_from = gr.Dropdown(tag_names, label="Rename tag", elem_id="lora_manager_tag_rename_from")
                t_rename_to = gr.Textbox(label="New name", lines=1, max_lines=1, elem_id="lora_manager_tag_rename_to")
                t_rename = gr.Button("Rename", elem_id="lora_manager_tag_rename", elem_classes=["lm-btn"])
            with gr.Row(elem_classes=["lm-bulk"]):
                t_merge_from = gr.Dropdown(tag_names, multiselect=True, label="Merge tags", elem_id="lora_manager_tag_merge_from")
                t_merge_into = gr.Textbox(label="Into", lines=1, max_lines=1, elem_id="lora_manager_tag_merge_into")
                t_merge = gr.Button("Merge", elem_id="lora_manager_tag_merge", elem_classes=["lm-btn"])
            t_msg = gr.HTML("", elem_id="lora_manager_tags_message")
            no_config(t_rename_from, t_rename_to, t_merge_from, t_merge_into)

        with gr.Accordion("Duplicates", open=False, elem_id="lora_manager_dupes_acc"):
            with gr.Row(elem_classes=["lm-bulk-buttons"]):
                d_find = gr.Button("Find duplicates", elem_id="lora_manager_find_dupes", elem_classes=["lm-btn"])
                d_best = gr.Button("Keep the best of every group", elem_id="lora_manager_keep_best", elem_classes=["lm-btn"])
                d_best_apply = gr.Button("Trash the other copies", variant="stop", visible=False,
                                         elem_id="lora_manager_keep_best_apply", elem_classes=["lm-btn"])
                d_undo = gr.Button("Undo last trash", elem_id="lora_manager_dupe_undo", elem_classes=["lm-btn"])
            gr.HTML(f'<div class="lm-help">The best copy of a group is {cards.esc(BEST_COPY)}. '
                    'A card whose file has copies shows “N copies”: click it to see them.</div>',
                    elem_id="lora_manager_best_rule")
            d_message = gr.HTML("", elem_id="lora_manager_dupes_message")
            d_list = gr.HTML("", elem_id="lora_manager_dupes")
            with gr.Row(elem_classes=["lm-bulk"]):
                d_keep = gr.Dropdown([], label="Keep this file, trash the others of its group", elem_id="lora_manager_dupe_keep")
                d_keep_btn = gr.Button("Keep it", variant="stop", elem_id="lora_manager_dupe_keep_btn", elem_classes=["lm-btn"])
            no_config(d_keep)
        d_pending = gr.State(None)


        # hidden glue driven by javascript/lora_manager.js (hidden by CSS: gradio 3 does not
        # render visible=False components, so the script could not reach them)
        with gr.Column(elem_classes=["lm-hidden"], elem_id="lora_manager_glue"):
            open_id = gr.Textbox(show_label=False, elem_id="lora_manager_open_id", elem_classes=["lm-hidden"])
            open_btn = gr.Button("open", elem_id="lora_manager_open_btn", elem_classes=["lm-hidden"])
            selected = gr.Textbox(show_label=False, elem_id="lora_manager_selected", elem_classes=["lm-hidden"])
            refresh_btn = gr.Button("refresh", elem_id="lora_manager_refresh_btn", elem_classes=["lm-hidden"])
            rate_request = gr.Textbox(show_label=False, elem_id="lora_manager_rate", elem_classes=["lm-hidden"])
            rate_btn = gr.Button("rate", elem_id="lora_manager_rate_btn", elem_classes=["lm-hidden"])
            rated = gr.Textbox(show_label=False, elem_id="lora_manager_rated", elem_classes=["lm-hidden"])
        no_config(open_id, open_btn, selected, refresh_btn, rate_request, rate_btn, rated)
        state = gr.State(state0)
        detail_id = gr.State(None)
        loaded_tags = gr.State(None)  # the tags shown when the detail opened: save sends changes only
        loaded_form = gr.State(None)  # and the other boxes (LibraryTab.save)
        pending = gr.State(None)

        with gr.Row(elem_classes=["lm-main"]):
            with gr.Column(elem_classes=["lm-results-col"]):
                with gr.Row(elem_classes=["lm-pager"]):
                    first_btn = gr.Button("« First", size="sm", elem_id="lora_manager_first", elem_classes=["lm-btn"])
                    prev_btn = gr.Button("‹ Prev", size="sm", elem_id="lora_manager_prev", elem_classes=["lm-btn"])
                    pager = gr.HTML(pager0, elem_id="lora_manager_pager")
                    next_btn = gr.Button("Next ›", size="sm", elem_id="lora_manager_next", elem_classes=["lm-btn"])
                    last_btn = gr.Button("Last »", size="sm", elem_id="lora_manager_last", elem_classes=["lm-btn"])
                    refresh_visible = gr.Button("Refresh", size="sm", elem_id="lora_manager_refresh", elem_classes=["lm-btn"])
                    view = gr.Radio(list(VIEWS), value=VIEWS[0], show_label=False, label="View", container=False,
                                    elem_id="lora_manager_view", elem_classes=["lm-view"])
                # the bulk bar: where the selection is, and stuck above the cards while any card
                # is selected (the page script sets lm-has-selection; style.css makes it sticky)
                with gr.Column(elem_id="lora_manager_bulkbar", elem_classes=["lm-bulkbar"]):
                    gr.HTML(selection_html(0), elem_id="lora_manager_selection")
                    with gr.Row(elem_classes=["lm-bulk", "lm-bulk-controls"]):
                        b_action = gr.Dropdown(list(BULK_ACTIONS), value="Add tags", label="Bulk action", show_label=False,
                                               container=False, elem_id="lora_manager_bulk_action")
                        b_value = gr.Textbox(label=VALUE_LABELS["add_tags"], show_label=False, container=False, lines=1, max_lines=1,
                                             placeholder=VALUE_LABELS["add_tags"], elem_id="lora_manager_bulk_value")
                        b_base = gr.Dropdown([AUTO] + [f.label for f in base_models.FAMILIES], value=AUTO, label="Base model",
                                             show_label=False, container=False, visible=False, elem_id="lora_manager_bulk_base")
                        b_root = gr.Dropdown([], value=None, label="Library folder", show_label=False, container=False,
                                             visible=False, elem_id="lora_manager_bulk_root")
                        b_scope = gr.Dropdown([SELECTED, EVERY_RESULT], value=SELECTED, label="Apply to", show_label=False,
                                              container=False, elem_id="lora_manager_bulk_scope")
                        b_review = gr.Button("Review", size="sm", elem_id="lora_manager_bulk_review", elem_classes=["lm-btn"])
                        b_apply = gr.Button("Apply", size="sm", variant="primary", visible=False, elem_id="lora_manager_bulk_apply",
                                            elem_classes=["lm-btn"])
                        b_undo = gr.Button("Undo last trash", size="sm", elem_id="lora_manager_undo_trash", elem_classes=["lm-btn"])
                    b_message = gr.HTML("", elem_id="lora_manager_bulk_message")
                    no_config(b_action, b_value, b_root, b_base, b_scope)
                results = gr.HTML(results0, elem_id="lora_manager_results")

            with gr.Column(visible=False, elem_classes=["lm-detail-col"], elem_id="lora_manager_detail") as detail_col:
                with gr.Row(elem_classes=["lm-detail-bar"]):
                    close_btn = gr.Button("Close", size="sm", elem_id="lora_manager_close_detail", elem_classes=["lm-btn"])
                # the token comes first: copying it is what the panel is opened for most
                with gr.Row(elem_classes=["lm-token-row"], elem_id="lora_manager_token_row") as token_row:
                    token = gr.Textbox(label="Prompt token", elem_id="lora_manager_token", lines=1, max_lines=1,
                                       elem_classes=["lm-token"])
                    copy_btn = gr.Button("Copy", size="sm", elem_id="lora_manager_copy_token", elem_classes=["lm-btn"])
                    compose_btn = gr.Button("Add to composition", size="sm", elem_id="lora_manager_add_to_compose",
                                            elem_classes=["lm-btn"])
                detail_status = gr.HTML("", elem_id="lora_manager_detail_status")
                detail_view = gr.HTML("", elem_id="lora_manager_detail_view")
                with gr.Group(elem_classes=["lm-edit"]):
                    e_name = gr.Textbox(label="Display name", elem_id="lora_manager_edit_name", lines=1, max_lines=1)
                    e_tags = gr.Textbox(label="Tags (comma-separated)", elem_id="lora_manager_edit_tags", lines=1)
                    e_rating = gr.Radio(list(RATINGS), value=RATINGS[0], label="Rating", elem_id="lora_manager_edit_rating")
                    with gr.Row(elem_classes=["lm-edit-row"]):
                        e_fav = gr.Checkbox(label="Favorite", elem_id="lora_manager_edit_favorite")
                        e_nsfw = gr.Checkbox(label="NSFW", elem_id="lora_manager_edit_nsfw")
                    e_triggers = gr.Textbox(label="Trigger words (comma-separated)", elem_id="lora_manager_edit_triggers", lines=1)
                    e_suggestions = gr.CheckboxGroup([], label="Suggested by the training captions", visible=False,
                                                     elem_id="lora_manager_trigger_suggestions")
                    add_sugg_btn = gr.Button("Add checked words to the trigger words", size="sm", visible=False,
                                             elem_id="lora_manager_add_triggers", elem_classes=["lm-btn"])
                    with gr.Row(elem_classes=["lm-edit-row"], elem_id="lora_manager_weight_row") as weight_row:
                        e_weight = gr.Number(label="Default weight", elem_id="lora_manager_edit_weight")
                        e_wmin = gr.Number(label="Min weight", elem_id="lora_manager_edit_weight_min")
                        e_wmax = gr.Number(label="Max weight", elem_id="lora_manager_edit_weight_max")
                    e_base = gr.Dropdown([AUTO] + [f.label for f in base_models.FAMILIES], value=AUTO,
                                         label="Base model (auto = detected)", elem_id="lora_manager_edit_base")
                    e_notes = gr.Textbox(label="Notes", elem_id="lora_manager_edit_notes", lines=3)
                    save_btn = gr.Button("Save", variant="primary", elem_id="lora_manager_save", elem_classes=["lm-btn"])
                with gr.Accordion("Preview image", open=False, elem_id="lora_manager_preview_acc"):
                    p_upload = gr.File(label="Upload an image as the preview", file_types=["image"], elem_id="lora_manager_preview_upload")
                    with gr.Row(elem_classes=["lm-edit-row"]):
                        p_candidates = gr.Dropdown([], label="Images next to the file", visible=False,
                                                   elem_id="lora_manager_preview_candidates")
                        p_use = gr.Button("Use this image", size="sm", elem_id="lora_manager_preview_use", elem_classes=["lm-btn"])
                        p_clear = gr.Button("Remove my preview", size="sm", elem_id="lora_manager_preview_clear", elem_classes=["lm-btn"])
                with gr.Accordion("Raw header", open=False, elem_id="lora_manager_raw_header_acc"):
                    load_header_btn = gr.Button("Load raw header", size="sm", elem_id="lora_manager_load_header", elem_classes=["lm-btn"])
                    raw_header = gr.Textbox(show_label=False, lines=12, max_lines=30, interactive=False,
                                            elem_id="lora_manager_raw_header", elem_classes=["lm-mono"])
                no_config(e_name, e_tags, e_rating, e_fav, e_nsfw, e_triggers, e_weight, e_wmin, e_wmax, e_base,
                           e_notes, token, p_candidates, raw_header)


    # --- wiring -----------------------------------------------------------------------------

    filter_inputs = [search_box, f_base, f_type, f_fav, f_rating, f_tag, f_problems, f_sort, view, selected]
    result_outputs = [results, description, pager, state]
    page_inputs = [state, view, selected]
    quiet = {"show_progress": False}

    search_box.submit(tab.search, filter_inputs, result_outputs)
    search_btn.click(tab.search, filter_inputs, result_outputs)
    for component in (f_base, f_type, f_fav, f_rating, f_tag, f_problems, f_sort):
        component.change(tab.search, filter_inputs, result_outputs, **quiet)
    view.change(tab.refresh, page_inputs, result_outputs, **quiet)
    first_btn.click(tab.first_page, page_inputs, result_outputs)
    prev_btn.click(tab.prev_page, page_inputs, result_outputs)
    next_btn.click(tab.next_page, page_inputs, result_outputs)
    last_btn.click(tab.last_page, page_inputs, result_outputs)
    refresh_visible.click(tab.refresh, page_inputs, result_outputs).then(tab.stats, None, [stats], **quiet)
    refresh_btn.click(tab.refresh, page_inputs, result_outputs, **quiet).then(tab.stats, None, [stats], **quiet).then(
        lambda: tab.tag_updates()[1:], None, [tag_list, t_rename_from, t_merge_from, f_tag], **quiet)

    detail_outputs_by_name = {
        "column": detail_col, "view": detail_view, "token_row": token_row, "weight_row": weight_row, "token": token, "name": e_name, "tags": e_tags,
        "rating": e_rating, "favorite": e_fav, "nsfw": e_nsfw, "notes": e_notes, "triggers": e_triggers,
        "suggestions": e_suggestions, "add_suggestions": add_sugg_btn, "weight": e_weight,
        "weight_min": e_wmin, "weight_max": e_wmax, "base": e_base, "candidates": p_candidates,
        "raw_header": raw_header, "status": detail_status, "id": detail_id, "loaded_tags": loaded_tags,
        "loaded_form": loaded_form,
    }
    detail_outputs = [detail_outputs_by_name[k] for k in LibraryTab.DETAIL_FIELDS]
    show_detail_js = "() => { if (window.loraManager) window.loraManager.showDetail(); return []; }"
    open_btn.click(tab.open_detail, [open_id], detail_outputs).then(None, None, None, _js=show_detail_js)
    close_btn.click(tab.close_detail, None, [detail_col], **quiet)
    copy_btn.click(None, [token], None, _js="(text) => { if (window.loraManager) window.loraManager.copy(text, 'lora_manager_copy_token'); return []; }")

    edit_inputs = [detail_id, e_name, e_tags, e_rating, e_fav, e_nsfw, e_notes, e_triggers, e_weight, e_wmin, e_wmax, e_base,
                   loaded_tags, loaded_form]
    save_btn.click(tab.save, edit_inputs, detail_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet).then(
        lambda: tab.tag_updates()[1:], None, [tag_list, t_rename_from, t_merge_from, f_tag], **quiet)
    add_sugg_btn.click(tab.add_suggestions, [e_triggers, e_suggestions], [e_triggers, detail_status], **quiet)
    p_upload.upload(tab.set_preview_upload, [detail_id, p_upload], detail_outputs + [p_upload]).then(
        tab.refresh, page_inputs, result_outputs, **quiet)
    p_use.click(tab.use_candidate, [detail_id, p_candidates], detail_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet)
    p_clear.click(tab.clear_preview, [detail_id], detail_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet)
    load_header_btn.click(tab.raw_header, [detail_id], [raw_header, detail_status])

    b_action.change(tab.bulk_action_changed, [b_action], [b_value, b_base, b_root, b_apply, pending, b_message], **quiet)
    b_scope.change(lambda: (_gr().update(visible=False), None, ""), None, [b_apply, pending, b_message], **quiet)
    b_review.click(tab.bulk_review, [b_action, b_value, b_base, b_root, b_scope, selected, state], [b_message, b_apply, pending])
    # the server prunes the selection (trashed cards); the page script shows it: count, boxes, bar.
    # A step without a Python function ends its chain in gradio 3 (no "then" follows it): last.
    sync_selection_js = "(ids) => { if (window.loraManager) window.loraManager.syncSelection(ids); return []; }"
    b_apply.click(tab.bulk_apply, [pending, selected], [b_message, b_apply, pending, selected]).then(
        tab.refresh, page_inputs, result_outputs, **quiet).then(
        lambda: tab.tag_updates()[1:], None, [tag_list, t_rename_from, t_merge_from, f_tag], **quiet).then(
        tab.stats, None, [stats], **quiet).then(None, [selected], None, _js=sync_selection_js)
    b_undo.click(tab.undo_trash, None, [b_message]).then(tab.refresh, page_inputs, result_outputs, **quiet).then(
        tab.stats, None, [stats], **quiet)

    tag_outputs = [t_msg, tag_list, t_rename_from, t_merge_from, f_tag]
    t_rename.click(tab.rename_tag, [t_rename_from, t_rename_to], tag_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet)
    t_merge.click(tab.merge_tags, [t_merge_from, t_merge_into], tag_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet)

    dupe_outputs = [d_list, d_keep, d_message, d_best_apply, d_pending]
    d_find.click(lambda: tab.find_duplicates(), None, dupe_outputs)
    d_best.click(tab.keep_best_review, None, dupe_outputs)
    d_best_apply.click(tab.keep_best_apply, [d_pending, selected], dupe_outputs + [selected]).then(
        tab.refresh, page_inputs, result_outputs, **quiet).then(tab.stats, None, [stats], **quiet).then(
        None, [selected], None, _js=sync_selection_js)
    d_keep_btn.click(tab.keep_duplicate, [d_keep, selected], dupe_outputs + [selected]).then(
        tab.refresh, page_inputs, result_outputs, **quiet).then(tab.stats, None, [stats], **quiet).then(
        None, [selected], None, _js=sync_selection_js)
    d_undo.click(tab.undo_duplicates, None, dupe_outputs).then(tab.refresh, page_inputs, result_outputs, **quiet).then(
        tab.stats, None, [stats], **quiet)

    # one click on a card's star; the stored rating comes back to the page script
    rate_btn.click(tab.rate_card, [rate_request, detail_id, loaded_form], [rated, b_message, e_rating, loaded_form], **quiet).then(
        None, [rated], None, _js="(r) => { if (window.loraManager) window.loraManager.showRating(r); return []; }")

    def scan(progress=gr.Progress()):
        return tab.scan(progress)

    # stats again at the end: an earlier chain (a bulk action's) may have read them mid-scan
    scan_btn.click(scan, None, [scan_message, stats]).then(tab.refresh, page_inputs, result_outputs, **quiet).then(
        lambda: tab.tag_updates()[1:], None, [tag_list, t_rename_from, t_merge_from, f_tag], **quiet).then(
        tab.stats, None, [stats], **quiet)
    tab.compose_button, tab.detail_id = compose_btn, detail_id
    return tab
