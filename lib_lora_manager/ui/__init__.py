"""Gradio tabs (gradio 3.43.2 API, as pinned by SDNext). Handlers are small named functions that
call the Library and return updates: no SQL and no HTTP here.

SDNext shows one tab per extension entry; ours holds its own ``gr.Tabs`` so that Library and
later sections sit side by side inside it."""

from __future__ import annotations

import contextlib

from ..hostinfo import HostInfo
from ..library import Library


@contextlib.contextmanager
def _detached():
    """Build our Blocks outside any Blocks the caller has open.

    SDNext calls on_ui_tabs outside its Blocks and renders ours later with ``render()``. A Blocks
    created inside an open one is also added to it on exit, so a caller that builds the tabs
    inside its own Blocks would get the whole tab twice (duplicate elem_ids)."""
    from gradio.context import Context

    saved = Context.block, Context.root_block
    Context.block = Context.root_block = None
    try:
        yield
    finally:
        Context.block, Context.root_block = saved


def build_tabs(library: Library, host: HostInfo) -> list[tuple[object, str, str]]:
    """(blocks, title, elem_id) for each tab, the shape SDNext's on_ui_tabs expects."""
    import gradio as gr

    from . import library_tab

    with _detached(), gr.Blocks(analytics_enabled=False) as blocks:
        with gr.Tabs(elem_id="lora_manager_tabs", elem_classes=["lm-tabs"]):
            with gr.Tab("Library", id="lora_manager_library_tab", elem_id="lora_manager_library_tab"):
                library_tab.build_content(library, host)
    return [(blocks, "LoRA Manager", "lora_manager")]
