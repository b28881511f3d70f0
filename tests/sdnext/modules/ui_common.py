"""modules.ui_common: create_refresh_button and HTML helpers."""
import html

import gradio as gr

from modules.ui_components import ToolButton


def plaintext_to_html(text, elem_classes=None):
    classes = f' class="{" ".join(elem_classes)}"' if elem_classes else ""
    return f"<p{classes}>" + "<br>\n".join([f"{html.escape(x)}" for x in text.split('\n')]) + "</p>"


def create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id):
    """A refresh button that calls ``refresh_method`` and updates the component with the
    (possibly callable) ``refreshed_args``."""
    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        for k, v in (args or {}).items():
            setattr(refresh_component, k, v)
        return gr.update(**(args or {}))

    refresh_button = ToolButton(value='\U0001f504', elem_id=elem_id)
    refresh_button.click(fn=refresh, inputs=[], outputs=[refresh_component])
    return refresh_button
