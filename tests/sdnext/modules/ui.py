"""modules.ui: create_ui() builds the System (settings) tab, then the extension tabs from
``on_ui_tabs`` (called outside any Blocks, after the settings), then the root Blocks that
renders them all. The core generation tabs are not imitated."""
import gradio as gr

from modules import script_callbacks, shared, ui_settings
from modules.logger import log

interfaces = []


def create_ui(disabled=None):
    interfaces.clear()
    ui_disabled = [x.strip().lower() for x in (disabled or shared.cmd_opts.disable or '').split(',') if x.strip()]
    shared.opts.ui_disabled = ui_disabled
    if ui_disabled:
        log.info(f'UI disabled: {ui_disabled}')
    with gr.Blocks(analytics_enabled=False) as settings_interface:
        ui_settings.build_settings_ui()
        shared.opts.reorder()
    interfaces.append((settings_interface, "System", "system"))
    interfaces.extend(script_callbacks.ui_tabs_callback())
    return ui_settings.create_quicksettings(interfaces)
