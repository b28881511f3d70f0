"""Small helpers every tab uses: gradio imported on demand, and components kept out of SDNext's
ui-config.json."""

from __future__ import annotations


def gradio_module():
    """gradio, imported when a tab is built or a handler runs (importing ui costs nothing)."""
    import gradio

    return gradio


def no_config(*components) -> None:
    """Keep SDNext's ui-config.json from saving or overriding these (per-item values, hidden glue)."""
    for component in components:
        component.do_not_save_to_config = True
