"""The History tab: every recorded generation as a paged gallery or table, searched with the
query language (``lora:NAME model: status: date: rating: fav: source: group:`` and prompt text),
and a detail panel to rate, favorite, reuse, re-run or delete one generation.

``HistoryTab`` holds the handlers (plain methods returning values or ``gr.update`` dicts in the
order of their outputs, so tests call them without a browser); ``build_content`` lays out the
components and wires them. Building the tab reads nothing: the page script refreshes the results
the first time they become visible.

Browser glue (javascript/lora_manager.js): a click on a card writes its id into the hidden
textbox ``lora_manager_history_open_id`` and clicks ``lora_manager_history_open_btn``; a LoRA
name in the detail view opens that LoRA in the Library tab.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import settings, wording
from ..errors import Busy, LoraManagerError, QueryError
from ..hostinfo import HostInfo
from ..results import GenerationDetail
from ..statuses import JobStatus
from ..vocabulary import HISTORY_HELP, HISTORY_SORT_WORDS
from . import cards, history_cards
from .components import gradio_module as _gr
from .components import no_config
from .library_tab import parse_ids

if TYPE_CHECKING:
    from ..history import History
    from ..library import Library

VIEWS = ("Gallery", "Table")
RATINGS = ("unrated", "1", "2", "3", "4", "5")
COMPOSE_TAB = "lora_manager_compose_tab"
HELP = HISTORY_HELP.line()


def sort_choices() -> dict[str, str]:
    """Label -> ``sort:`` term; the first is the default (newest first)."""
    out: dict[str, str] = {}
    for key, (ascending, descending) in HISTORY_SORT_WORDS.items():
        out[descending[:1].upper() + descending[1:]] = f"sort:-{key}"
        out[ascending[:1].upper() + ascending[1:]] = f"sort:{key}"
    return out


DEFAULT_SORT = next(iter(sort_choices()))


def effective_query(text: str | None, sort: str | None) -> str:
    """The sort term first (a ``sort:`` the user typed comes later and wins), then the text."""
    terms = []
    sort_term = sort_choices().get(sort or "", "")
    if sort_term and sort != DEFAULT_SORT:
        terms.append(sort_term)
    if text and text.strip():
        terms.append(text.strip())
    return " ".join(terms)


def parameters_text(d: GenerationDetail) -> str:
    """What another tab reads back: the infotext, or the prompts when the host recorded none."""
    return d.infotext or d.prompt + (f"\nNegative prompt: {d.negative_prompt}" if d.negative_prompt else "")


def _choice_id(choice: str | None, pattern: str) -> int | None:
    match = re.search(pattern, choice or "")
    return int(match.group(1)) if match else None


class HistoryTab:
    """Handlers of the History tab, bound to one Library and host."""

    def __init__(self, open_library: Callable[[], Library], host: HostInfo, can_compose: bool = False):
        self._open_library = open_library
        self.host = host
        self.can_compose = can_compose

    @property
    def history(self) -> History:
        return self._open_library().history

    # --- results ------------------------------------------------------------------------------

    def _results(self, q: str, page: int, view: str) -> tuple[str, str, str, dict[str, Any]]:
        per_page = self.host.page_size()
        result = self.history.search(q, page=page, per_page=per_page)
        if result.page > result.pages and result.total:  # past the end (records deleted): show the last page
            result = self.history.search(q, page=result.pages, per_page=per_page)
        if result.total == 0 and not q.strip():
            body = history_cards.empty_history()
        elif view == "Table":
            body = history_cards.table(result.items)
        else:
            body = history_cards.grid(result.items, self.host.api_base)
        state = {"q": q, "page": result.page, "pages": result.pages, "total": result.total}
        return (f'<div class="lm-results-inner" data-page="{result.page}">{body}</div>',
                cards.description(result.description, q), cards.pager(result.page, result.pages, result.total, "generation"), state)

    def _failed(self, q: str, error: LoraManagerError) -> tuple:
        """A bad query keeps the previous results and says what is wrong, and where."""
        gr = _gr()
        position = error.position if isinstance(error, QueryError) else None
        return gr.update(), history_cards.query_error(str(error), q, position), gr.update(), gr.update()

    @staticmethod
    def initial() -> tuple[str, str, str, dict[str, Any]]:
        loading = '<div class="lm-results-inner"><div class="lm-empty">Loading the history…</div></div>'
        return loading, "", "", {"q": "", "page": 1, "pages": 1, "total": 0}

    def search(self, text: str, sort: str, view: str) -> tuple:
        q = effective_query(text, sort)
        try:
            return self._results(q, 1, view)
        except LoraManagerError as e:
            return self._failed(q, e)

    def show_page(self, state: dict[str, Any] | None, page: int, view: str) -> tuple:
        q = (state or {}).get("q", "")
        try:
            return self._results(q, max(1, int(page)), view)
        except LoraManagerError as e:
            return self._failed(q, e)

    def refresh(self, state, view):
        return self.show_page(state, (state or {}).get("page", 1), view)

    def first_page(self, state, view):
        return self.show_page(state, 1, view)

    def prev_page(self, state, view):
        return self.show_page(state, (state or {}).get("page", 1) - 1, view)

    def next_page(self, state, view):
        state = state or {}
        return self.show_page(state, min(state.get("page", 1) + 1, state.get("pages", 1)), view)

    def last_page(self, state, view):
        return self.show_page(state, (state or {}).get("pages", 1), view)

    # --- detail panel -------------------------------------------------------------------------

    DETAIL_FIELDS = ("column", "view", "rating", "favorite", "prompt", "negative", "infotext", "preview_lora", "preview_image",
                     "preview_row", "rerun", "confirm", "cancel", "status", "id")

    def _detail(self, generation_id: int, status: str = "") -> tuple:
        gr = _gr()
        d = self.history.detail(generation_id)
        loras: list[str] = []
        for used in d.loras:
            if used.lora_id is not None:
                label = f"{used.library_name or used.name} (#{used.lora_id})"
                if label not in loras:
                    loras.append(label)
        images = [f"Image {i.index + 1}" + (f" · seed {i.seed}" if i.seed is not None else "")
                  for i in d.images if i.exists]
        values = {
            "column": gr.update(visible=True),
            "view": history_cards.detail(d, self.host.api_base),
            "rating": RATINGS[d.rating] if d.rating in range(1, 6) else RATINGS[0],
            "favorite": bool(d.favorite),
            "prompt": d.prompt,
            "negative": d.negative_prompt,
            "infotext": parameters_text(d),
            "preview_lora": gr.update(choices=loras, value=loras[0] if loras else None),
            "preview_image": gr.update(choices=images, value=images[0] if images else None, visible=len(images) > 1),
            "preview_row": gr.update(visible=bool(loras and images)),
            "rerun": gr.update(visible=self.host.jobs is not None and d.rerunnable),
            "confirm": gr.update(visible=False),
            "cancel": gr.update(visible=False),
            "status": status,
            "id": int(d.id),
        }
        return tuple(values[k] for k in self.DETAIL_FIELDS)

    def _detail_error(self, text: str) -> tuple:
        gr = _gr()
        out = {k: gr.update() for k in self.DETAIL_FIELDS}
        out["status"] = cards.message(text, "error")
        return tuple(out[k] for k in self.DETAIL_FIELDS)

    def open_detail(self, generation_id: str | int | None) -> tuple:
        ids = parse_ids(str(generation_id or ""))
        if not ids:
            return self._detail_error("No generation chosen.")
        try:
            return self._detail(ids[0])
        except LoraManagerError as e:
            return self._detail_error(str(e))

    @staticmethod
    def close_detail() -> dict:
        return _gr().update(visible=False)

    def rate(self, generation_id: int | None, choice: str | None) -> str:
        if generation_id is None:
            return cards.message("Open a generation first.", "error")
        rating = None if choice in (None, "", RATINGS[0]) else choice
        try:
            self.history.rate(generation_id, rating)
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        return cards.message(f"Rated {rating} of 5." if rating else "Rating cleared.", "ok")

    def set_favorite(self, generation_id: int | None, favorite: bool) -> str:
        if generation_id is None:
            return cards.message("Open a generation first.", "error")
        try:
            self.history.set_favorite(generation_id, bool(favorite))
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        return cards.message("Marked as a favorite." if favorite else "No longer a favorite.", "ok")

    @staticmethod
    def sent(prompt, negative, result) -> str:
        """Status after the page script tried to fill SDNext's txt2img prompts (``result`` is its message)."""
        text = str(result or "")
        return cards.message(text, "ok" if text.startswith("Sent") else "info") if text else ""

    def load_into_composer(self, generation_id: int | None) -> tuple:
        """(text for the Compose tab's inbox, status, tab switch): the infotext, or the prompts
        when the host recorded none."""
        gr = _gr()
        if generation_id is None:
            return gr.update(), cards.message("Open a generation first.", "error"), gr.update()
        try:
            d = self.history.detail(generation_id)
        except LoraManagerError as e:
            return gr.update(), cards.message(str(e), "error"), gr.update()
        text = parameters_text(d)
        if not text.strip():
            return gr.update(), cards.message("This generation has an empty prompt: nothing to load.", "error"), gr.update()
        return text, cards.message(f"Generation #{d.id} loaded into the composer.", "ok"), gr.update(selected=COMPOSE_TAB)

    def rerun(self, generation_id: int | None) -> tuple[str, int | None]:
        """Queue the same generation again (same seed); (status, job id to follow)."""
        if generation_id is None:
            return cards.message("Open a generation first.", "error"), None
        if self.host.jobs is None:
            return cards.message("This program cannot generate images.", "error"), None
        try:
            request = self.history.request(generation_id)
            job_id = self.host.jobs().submit(request)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), None
        return self.job_status(job_id, f"Queued job #{job_id} with seed {request.seed}."), job_id

    def job_status(self, job_id: int | None, prefix: str = "") -> str:
        if job_id is None or self.host.jobs is None:
            return cards.message("No job queued from here yet.", "info")
        try:
            job = self.host.jobs().get(job_id)
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        where = f" (position {job['position']} in the queue)" if job.get("position") else ""
        text = f"{prefix} Job #{job_id}: {job['status']}{where}."
        if job.get("message"):
            text += f" {job['message']}"
        if job["status"] in (JobStatus.SUCCEEDED, JobStatus.INTERRUPTED) and job.get("images"):
            text += " Its images are in the history (Refresh)."
        return cards.message(text.strip(), "error" if job["status"] in (JobStatus.FAILED, JobStatus.CANCELLED) else "ok")

    def set_preview(self, generation_id: int | None, lora_choice: str | None, image_choice: str | None) -> str:
        """Use a generated image as the preview of one of the LoRAs it used."""
        lora_id = _choice_id(lora_choice, r"\(#(\d+)\)$")
        index = (_choice_id(image_choice, r"^Image (\d+)") or 1) - 1
        if generation_id is None or lora_id is None:
            return cards.message("Choose the LoRA whose preview this image becomes.", "error")
        library = self._open_library()
        try:
            path = self.history.image_file(generation_id, index)
            item = library.previews.use(lora_id, path)
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        return cards.message(f"Image {index + 1} is now the preview of {item.name}.", "ok")

    def ask_delete(self, generation_id: int | None, delete_files: bool) -> tuple:
        """First click: say exactly what goes and show Confirm / Cancel."""
        gr = _gr()
        if generation_id is None:
            return cards.message("Open a generation first.", "error"), gr.update(), gr.update()
        try:
            d = self.history.detail(generation_id)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), gr.update(), gr.update()
        files = sum(1 for i in d.images if i.exists)
        what = f"Delete generation #{d.id} from the history"
        if delete_files:
            what += f" and its {cards.plural(files, 'image file')} from the disk" if files else " (its image files are already gone)"
        else:
            what += "; its image files stay on the disk"
        return (cards.message(what + ". This cannot be undone.", "info"),
                gr.update(visible=True, value="Delete" + (" record and files" if delete_files and files else " record")),
                gr.update(visible=True))

    def cancel_delete(self) -> tuple:
        gr = _gr()
        return "", gr.update(visible=False), gr.update(visible=False)

    def delete(self, generation_id: int | None, delete_files: bool) -> tuple:
        """(status, confirm, cancel, detail column, detail id) after deleting."""
        gr = _gr()
        hidden = gr.update(visible=False)
        if generation_id is None:
            return cards.message("Open a generation first.", "error"), hidden, hidden, gr.update(), gr.update()
        try:
            result = self.history.delete(generation_id, delete_files=bool(delete_files))
        except LoraManagerError as e:
            return cards.message(str(e), "error"), hidden, hidden, gr.update(), gr.update()
        text = f"Deleted generation #{result.id}"
        if result.deleted_files:
            text += f" and {cards.plural(len(result.deleted_files), 'image file')}"
        text += "."
        if result.missing_files:
            gone = len(result.missing_files)
            text += f" {cards.plural(gone, 'file')} {wording.were(gone)} already gone."
        if result.kept_files:
            text += " Kept: " + "; ".join(f"{path} ({why})" for path, why in list(result.kept_files.items())[:5])
        return cards.message(text, "ok"), hidden, hidden, gr.update(visible=False), None


# --- layout ---------------------------------------------------------------------------------


    # --- importing images made before -----------------------------------------------------------

    def import_images(self, folders_text: str | None) -> str:
        """Import the images under the folders (one per line) now; the report, or why not."""
        folders = settings.parse_dirs(folders_text)
        if not folders:
            return cards.message("Give the folders of images to import, one per line.", "error")
        images = self._open_library().images
        try:
            report = dataclasses.asdict(images.run(folders))
        except Busy:
            return self.import_status()
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        return history_cards.import_report(report, "Import finished: " + wording.plural(report["imported"], "image")
                                           + " imported.")

    def import_status(self) -> str:
        """The running or last import (the one after startup, another process's)."""
        status = self._open_library().images.shared_status()
        if status.running:
            return cards.message(f"Importing: {status.message} ({status.fraction:.0%})")
        if status.error:
            return cards.message(status.message, "error")
        return history_cards.import_report(status.last_report, status.message[:1].upper() + status.message[1:])


def build_content(open_library: Callable[[], Library], host: HostInfo, compose_inbox=None, tabs=None) -> HistoryTab:
    """Create the History tab's components inside the current Blocks context and wire them.

    ``compose_inbox``: the Compose tab's hidden inbox textbox; "Load into composer" writes the
    generation's infotext there (and selects the Compose tab when ``tabs`` is given). None hides
    the button. Nothing here reads the library."""
    import gradio as gr

    tab = HistoryTab(open_library, host, can_compose=compose_inbox is not None)
    results0, description0, pager0, state0 = tab.initial()

    with gr.Column(elem_classes=["lm-root"], elem_id="lora_manager_history"):
        with gr.Row(elem_classes=["lm-searchbar"]):
            search_box = gr.Textbox(label="Search the history", show_label=False, lines=1, max_lines=1,
                                    elem_id="lora_manager_history_search", elem_classes=["lm-search"],
                                    placeholder="Search: prompt words, lora:NAME status:failed date:<7d rating:>=4 fav:yes …")
            sort = gr.Dropdown(list(sort_choices()), value=DEFAULT_SORT, show_label=False, label="Sort", container=False,
                               elem_id="lora_manager_history_sort", elem_classes=["lm-sort"])
            search_btn = gr.Button("Search", variant="primary", elem_id="lora_manager_history_search_btn",
                                   elem_classes=["lm-btn"])
        gr.HTML(f'<div class="lm-help">{cards.esc(HELP)}</div>', elem_id="lora_manager_history_help")
        with gr.Accordion("Import images made before", open=False, elem_id="lora_manager_history_import",
                          elem_classes=["lm-import"]):
            import_folders = gr.Textbox(value="\n".join(host.image_folders()), label="Folders (one per line)",
                                        lines=2, max_lines=8, elem_id="lora_manager_history_import_folders")
            with gr.Row(elem_classes=["lm-edit-row"]):
                import_btn = gr.Button("Import images", variant="primary", size="sm",
                                       elem_id="lora_manager_history_import_btn", elem_classes=["lm-btn"])
                import_status_btn = gr.Button("Show progress", size="sm", elem_id="lora_manager_history_import_status",
                                              elem_classes=["lm-btn"])
            import_report = gr.HTML("", elem_id="lora_manager_history_import_report")
        description = gr.HTML(description0, elem_id="lora_manager_history_description")

        with gr.Column(elem_classes=["lm-hidden"], elem_id="lora_manager_history_glue"):
            open_id = gr.Textbox(show_label=False, elem_id="lora_manager_history_open_id", elem_classes=["lm-hidden"])
            open_btn = gr.Button("open", elem_id="lora_manager_history_open_btn", elem_classes=["lm-hidden"])
            refresh_btn = gr.Button("refresh", elem_id="lora_manager_history_refresh_btn", elem_classes=["lm-hidden"])
            prompt_box = gr.Textbox(show_label=False, elem_id="lora_manager_history_prompt", elem_classes=["lm-hidden"])
            negative_box = gr.Textbox(show_label=False, elem_id="lora_manager_history_negative", elem_classes=["lm-hidden"])
            send_result = gr.Textbox(show_label=False, elem_id="lora_manager_history_send_result", elem_classes=["lm-hidden"])
            infotext_box = gr.Textbox(show_label=False, elem_id="lora_manager_history_infotext", elem_classes=["lm-hidden"])
        no_config(search_box, sort, open_id, prompt_box, negative_box, send_result, infotext_box)
        state = gr.State(state0)
        detail_id = gr.State(None)
        job_id = gr.State(None)

        with gr.Row(elem_classes=["lm-main"]):
            with gr.Column(elem_classes=["lm-results-col"]):
                with gr.Row(elem_classes=["lm-pager"]):
                    first_btn = gr.Button("« First", size="sm", elem_id="lora_manager_history_first", elem_classes=["lm-btn"])
                    prev_btn = gr.Button("‹ Prev", size="sm", elem_id="lora_manager_history_prev", elem_classes=["lm-btn"])
                    pager = gr.HTML(pager0, elem_id="lora_manager_history_pager", elem_classes=["lm-pager-html"])
                    next_btn = gr.Button("Next ›", size="sm", elem_id="lora_manager_history_next", elem_classes=["lm-btn"])
                    last_btn = gr.Button("Last »", size="sm", elem_id="lora_manager_history_last", elem_classes=["lm-btn"])
                    refresh_visible = gr.Button("Refresh", size="sm", elem_id="lora_manager_history_refresh",
                                                elem_classes=["lm-btn"])
                    view = gr.Radio(list(VIEWS), value=VIEWS[0], show_label=False, label="View", container=False,
                                    elem_id="lora_manager_history_view", elem_classes=["lm-view"])
                notice = gr.HTML("", elem_id="lora_manager_history_notice")  # outlives a closed detail panel
                results = gr.HTML(results0, elem_id="lora_manager_history_results")

            with gr.Column(visible=False, elem_classes=["lm-detail-col"], elem_id="lora_manager_history_detail") as detail_col:
                # Close ends the actions row (a bar of its own left a blank band at the top)
                with gr.Row(elem_classes=["lm-hist-actions"]):
                    # standalone has no SDNext page to send to
                    send_btn = gr.Button("Send to txt2img", size="sm", visible=host.name == "sdnext",
                                         elem_id="lora_manager_history_send", elem_classes=["lm-btn"])
                    paste_btn = gr.Button("Send with parameters", size="sm", visible=host.bind_paste is not None,
                                          elem_id="lora_manager_history_send_params", elem_classes=["lm-btn"])
                    load_btn = gr.Button("Load into composer", size="sm", visible=compose_inbox is not None,
                                         elem_id="lora_manager_history_load", elem_classes=["lm-btn"])
                    rerun_btn = gr.Button("Re-run (same seed)", size="sm", visible=host.jobs is not None,
                                          elem_id="lora_manager_history_rerun", elem_classes=["lm-btn"])
                    job_btn = gr.Button("Job status", size="sm", visible=host.jobs is not None,
                                        elem_id="lora_manager_history_job", elem_classes=["lm-btn"])
                    close_btn = gr.Button("Close", size="sm", elem_id="lora_manager_history_close",
                                          elem_classes=["lm-btn", "lm-hist-close"])
                status = gr.HTML("", elem_id="lora_manager_history_status", elem_classes=["lm-hist-status-line"])
                with gr.Row(elem_classes=["lm-edit-row", "lm-hist-rate"]):
                    rating = gr.Radio(list(RATINGS), value=RATINGS[0], label="Rating", elem_id="lora_manager_history_rating")
                with gr.Row(elem_classes=["lm-edit-row"]):
                    favorite = gr.Checkbox(label="Favorite", elem_id="lora_manager_history_favorite")
                view_html = gr.HTML("", elem_id="lora_manager_history_view_html")
                with gr.Row(visible=False, elem_classes=["lm-edit-row"]) as preview_row:
                    preview_lora = gr.Dropdown([], label="Set as preview of", elem_id="lora_manager_history_preview_lora")
                    preview_image = gr.Dropdown([], label="Image", visible=False, elem_id="lora_manager_history_preview_image")
                    preview_btn = gr.Button("Set preview", size="sm", elem_id="lora_manager_history_preview_set",
                                            elem_classes=["lm-btn"])
                with gr.Row(elem_classes=["lm-edit-row", "lm-hist-delete"]):
                    delete_files = gr.Checkbox(label="Also delete the image files", value=False,
                                               elem_id="lora_manager_history_delete_files")
                    delete_btn = gr.Button("Delete record…", size="sm", elem_id="lora_manager_history_delete",
                                           elem_classes=["lm-btn"])
                    confirm_btn = gr.Button("Delete", variant="stop", size="sm", visible=False,
                                            elem_id="lora_manager_history_delete_confirm", elem_classes=["lm-btn"])
                    cancel_btn = gr.Button("Cancel", size="sm", visible=False, elem_id="lora_manager_history_delete_cancel",
                                           elem_classes=["lm-btn"])
                no_config(rating, favorite, preview_lora, preview_image, delete_files)

    # --- wiring -----------------------------------------------------------------------------

    quiet = {"show_progress": False}
    result_outputs = [results, description, pager, state]
    page_inputs = [state, view]
    search_box.submit(tab.search, [search_box, sort, view], result_outputs)
    search_btn.click(tab.search, [search_box, sort, view], result_outputs)
    sort.change(tab.search, [search_box, sort, view], result_outputs, **quiet)
    view.change(tab.refresh, page_inputs, result_outputs, **quiet)
    first_btn.click(tab.first_page, page_inputs, result_outputs)
    prev_btn.click(tab.prev_page, page_inputs, result_outputs)
    next_btn.click(tab.next_page, page_inputs, result_outputs)
    last_btn.click(tab.last_page, page_inputs, result_outputs)
    refresh_visible.click(tab.refresh, page_inputs, result_outputs)
    refresh_btn.click(tab.refresh, page_inputs, result_outputs, **quiet)
    import_btn.click(tab.import_images, [import_folders], [import_report]).then(
        tab.refresh, page_inputs, result_outputs, **quiet)
    import_status_btn.click(tab.import_status, None, [import_report], **quiet)

    by_name = {"column": detail_col, "view": view_html, "rating": rating, "favorite": favorite, "prompt": prompt_box,
               "negative": negative_box, "infotext": infotext_box, "preview_lora": preview_lora, "preview_image": preview_image,
               "preview_row": preview_row, "rerun": rerun_btn, "confirm": confirm_btn, "cancel": cancel_btn,
               "status": status, "id": detail_id}
    detail_outputs = [by_name[k] for k in HistoryTab.DETAIL_FIELDS]
    show_js = "() => { if (window.loraManager) window.loraManager.showDetail('lora_manager_history_detail'); return []; }"
    open_btn.click(tab.open_detail, [open_id], detail_outputs).then(None, None, None, _js=show_js).then(
        lambda: "", None, [notice], **quiet)
    close_btn.click(tab.close_detail, None, [detail_col], **quiet)

    rating.input(tab.rate, [detail_id, rating], [status], **quiet).then(tab.refresh, page_inputs, result_outputs, **quiet)
    favorite.input(tab.set_favorite, [detail_id, favorite], [status], **quiet).then(
        tab.refresh, page_inputs, result_outputs, **quiet)
    send_btn.click(HistoryTab.sent, [prompt_box, negative_box, send_result], [status],
                   _js="(prompt, negative) => (window.loraManagerSendToTxt2img"
                       " ? window.loraManagerSendToTxt2img(prompt, negative)"
                       " : [prompt, negative, 'Reload the page: the LoRA Manager page script is not loaded.'])")
    if host.bind_paste is not None:  # SDNext's own paste: every parameter of the infotext goes to txt2img
        host.bind_paste(paste_btn, infotext_box)
    if compose_inbox is not None and tabs is not None:
        load_btn.click(tab.load_into_composer, [detail_id], [compose_inbox, status, tabs], **quiet)
    elif compose_inbox is not None:
        load_btn.click(lambda gid: tab.load_into_composer(gid)[:2], [detail_id], [compose_inbox, status], **quiet)
    if host.jobs is not None:
        rerun_btn.click(tab.rerun, [detail_id], [status, job_id])
        job_btn.click(tab.job_status, [job_id], [status], **quiet)
    preview_btn.click(tab.set_preview, [detail_id, preview_lora, preview_image], [status])
    delete_btn.click(tab.ask_delete, [detail_id, delete_files], [status, confirm_btn, cancel_btn], **quiet)
    delete_files.input(tab.cancel_delete, None, [status, confirm_btn, cancel_btn], **quiet)
    cancel_btn.click(tab.cancel_delete, None, [status, confirm_btn, cancel_btn], **quiet)
    confirm_btn.click(tab.delete, [detail_id, delete_files], [notice, confirm_btn, cancel_btn, detail_col, detail_id]).then(
        tab.refresh, page_inputs, result_outputs, **quiet)
    return tab
