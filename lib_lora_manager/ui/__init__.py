"""Gradio tabs (gradio 3.43.2 API, as pinned by SDNext). Handlers are small named functions that
call the Library and return updates: no SQL and no HTTP here.

SDNext shows one tab per extension entry; ours holds its own ``gr.Tabs`` so that Library and
later sections sit side by side inside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..hostinfo import HostInfo

if TYPE_CHECKING:
    from ..library import Library


def build_tabs(open_library: Callable[[], Library], host: HostInfo) -> list[tuple[object, str, str]]:
    """(blocks, title, elem_id) for each tab, the shape SDNext's on_ui_tabs expects.

    ``open_library`` returns the Library, opening it on first use: building the tabs does not
    read the database (SDNext's startup budget)."""
    import gradio as gr

    from . import analytics_tab, compose_tab, history_tab, library_tab, recommend_tab

    # built outside any open Blocks (SDNext renders it into its own later, as the standalone host does)
    with gr.Blocks(analytics_enabled=False) as blocks:
        with gr.Tabs(elem_id="lora_manager_tabs", elem_classes=["lm-tabs"]) as tabs:
            with gr.Tab("Library", id="lora_manager_library_tab", elem_id="lora_manager_library_tab"):
                library = library_tab.build_content(open_library, host)
            with gr.Tab("Compose", id="lora_manager_compose_tab", elem_id="lora_manager_compose_tab"):
                compose = compose_tab.build_content(open_library, host)
            # after Compose: "Load into composer" writes into the Compose tab's inbox and shows that tab
            with gr.Tab("History", id="lora_manager_history_tab", elem_id="lora_manager_history_tab"):
                history_tab.build_content(open_library, host, compose_inbox=compose.inbox, tabs=tabs)
            with gr.Tab("Analytics", id="lora_manager_analytics_tab", elem_id="lora_manager_analytics_tab"):
                analytics_tab.build_content(open_library)
            with gr.Tab("Recommendations", id="lora_manager_recommend_tab", elem_id="lora_manager_recommend_tab"):
                recommend_tab.build_content(open_library, host)
            # standalone only: inside SDNext these are SDNext's own settings (Settings → LoRA Manager)
            if host.save_settings is not None:
                from . import settings_tab

                with gr.Tab("Settings", id="lora_manager_settings_tab", elem_id="lora_manager_settings_tab") as tab:
                    settings_tab.build_content(host, tab)
        # Library → Compose: the open LoRA goes into the composition and the Compose tab shows
        library.compose_button.click(
            lambda lora_id: (compose_tab.add_request(lora_id), gr.update(selected="lora_manager_compose_tab")),
            [library.detail_id], [compose.add_box, tabs], show_progress=False)
    return [(blocks, "LoRA Manager", "lora_manager")]
