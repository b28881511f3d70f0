"""The standalone app's Settings tab: the settings SDNext shows under Settings → LoRA Manager,
with the same labels, edited here because standalone has no SDNext settings page. Saving checks
every value first (one bad value: a message, nothing saved), writes them (settings.json in the
data folder) and applies what can be applied at once (host.save_settings says what it did).

Built only where the host saves settings (``host.save_settings``); inside SDNext its own
Settings page does this."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput
from ..hostinfo import HostInfo
from ..settings import SETTINGS, Setting
from . import cards
from .components import gradio_module as _gr
from .components import no_config

INTRO = ("The settings SDNext shows under Settings → LoRA Manager. They are saved in the data folder "
         "(settings.json). Cards per page, NSFW previews, extra folders and hashing apply at once; "
         "“sync after startup” applies from the next start and the database after a restart. "
         "Command-line flags (--db, --no-scan, --no-hashing) win over these.")


def field_id(setting: Setting) -> str:
    return f"lora_manager_setting_{setting.key.removeprefix('lora_manager_')}"


class SettingsTab:
    """Handlers: the current values, and Save. Values travel in SETTINGS order."""

    def __init__(self, host: HostInfo):
        self.host = host

    def current(self) -> list[Any]:
        return [self.host.setting(s.key) for s in SETTINGS]

    def reload(self) -> tuple:
        """(values…, status): what is saved now (the page may show values from before a reload)."""
        return (*self.current(), "")

    def save(self, *values: Any) -> tuple:
        """(values…, status) after saving: the saved values, or the form as it was and the error."""
        if self.host.save_settings is None:
            return (*(_gr().update() for _ in SETTINGS), cards.message("This host has its own settings page.", "error"))
        try:
            notes = self.host.save_settings({s.key: v for s, v in zip(SETTINGS, values)})
        except InvalidInput as e:
            return (*(_gr().update() for _ in SETTINGS), cards.message(f"Nothing saved. {e}", "error"))
        text = "Saved. " + " ".join(notes) if notes else "Nothing changed."
        return (*self.current(), cards.message(text, "ok" if notes else "info"))


def _component(gr, setting: Setting, value: Any):
    common = {"label": setting.label, "info": setting.help or None, "elem_id": field_id(setting)}
    if isinstance(setting.default, bool):
        return gr.Checkbox(value=bool(value), **common)
    if isinstance(setting.default, int):
        return gr.Number(value=value, precision=0, **common)
    if setting.key == "lora_manager_extra_dirs":
        return gr.Textbox(value=value, lines=3, max_lines=12, placeholder="/path/to/more/loras", **common)
    # the database URL may carry a password: typed, not shown
    return gr.Textbox(value=value, lines=1, max_lines=1, type="password", **common)


def build_content(host: HostInfo, tab=None) -> SettingsTab:
    """Create the tab's content inside the current Blocks context; ``tab`` (its gr.Tab) reloads
    the saved values whenever it is opened."""
    import gradio as gr

    settings_tab = SettingsTab(host)
    with gr.Column(elem_classes=["lm-root", "lm-settings"], elem_id="lora_manager_settings"):
        gr.HTML(f'<div class="lm-help">{cards.esc(INTRO)}</div>')
        fields = [_component(gr, s, v) for s, v in zip(SETTINGS, settings_tab.current())]
        with gr.Row(elem_classes=["lm-settings-actions"]):
            save_btn = gr.Button("Save settings", variant="primary", elem_id="lora_manager_settings_save",
                                 elem_classes=["lm-btn"])
            reload_btn = gr.Button("Revert to saved", elem_id="lora_manager_settings_reload", elem_classes=["lm-btn"])
        status = gr.HTML("", elem_id="lora_manager_settings_status")
        no_config(*fields)
    outputs = [*fields, status]
    save_btn.click(settings_tab.save, fields, outputs, show_progress=False)
    reload_btn.click(settings_tab.reload, None, outputs, show_progress=False, queue=False)
    if tab is not None:
        tab.select(settings_tab.reload, None, outputs, show_progress=False, queue=False)
    return settings_tab
