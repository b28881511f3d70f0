"""modules.ui_settings: the Settings page, built the way SDNext builds it.

``build_settings_ui()`` is the part of SDNext's ``create_ui()`` that extensions affect: it
creates the hidden settings-JSON textbox (whose value calls ``opts.dumpjson()`` at once, so an
option whose section is None already fails there), fires ``on_ui_settings``, collects the
sections with SDNext's exact loop (``len(item.section)``: TypeError for None; an other length
becomes a hidden section, reusing the previous item's label) and creates a real gradio
component for every visible option (ValueError for a default type without a component).
It must run inside a gr.Blocks, as in SDNext."""
import gradio as gr

from modules import script_callbacks, shared, ui_common
from modules.logger import log

text_settings = None
dummy_component = None
quicksettings_list = []
hidden_list = []
components = []
sections_built = []  # the double: (section_id, label) of every section, in order


def create_setting_component(key, is_quicksettings=False):
    def fun():
        return shared.opts.data[key] if key in shared.opts.data else shared.opts.data_labels[key].default

    info = shared.opts.data_labels[key]
    t = type(info.default)
    args = (info.component_args() if callable(info.component_args) else info.component_args) or {}
    if 'settings' in shared.opts.ui_disabled:
        args['visible'] = False
    if info.component is not None:
        comp = info.component
    elif t == str:
        comp = gr.Textbox
    elif t == int:
        comp = gr.Number
    elif t == bool:
        comp = gr.Checkbox
    else:
        raise ValueError(f'bad options item type: {t} for key {key}')
    elem_id = f"setting_{key}"
    dirty_indicator = None
    dirtyable_setting = None
    if not is_quicksettings:
        dirtyable_setting = gr.Group(elem_classes="dirtyable", visible=args.get("visible", True))
        dirtyable_setting.__enter__()
        dirty_indicator = gr.Button("", elem_classes="modification-indicator", elem_id=f"modification_indicator_{key}")
    if info.refresh is not None:
        if is_quicksettings:
            res = comp(label=info.label, value=fun(), elem_id=elem_id, **args)
            ui_common.create_refresh_button(res, info.refresh, info.component_args, f"settings_{key}_refresh")
        else:
            with gr.Row():
                res = comp(label=info.label, value=fun(), elem_id=elem_id, **args)
                ui_common.create_refresh_button(res, info.refresh, info.component_args, f"settings_{key}_refresh")
    elif info.folder:
        with gr.Row():
            res = comp(label=info.label, value=fun(), elem_id=elem_id, elem_classes="folder-selector", **args)
    else:
        try:
            res = comp(label=info.label, value=fun(), elem_id=elem_id, **args)
        except Exception as e:  # pylint: disable=broad-except
            log.error(f'Error creating setting: {key} {e}')
            res = None
    if res is not None and not is_quicksettings:
        try:
            res.change(fn=None, inputs=res, _js=f'(val) => markIfModified("{key}", val)')
        except Exception as e:  # pylint: disable=broad-except
            log.error(f'Quicksetting: component={res} {e}')
        if dirty_indicator is not None:
            dirty_indicator.click(fn=lambda: shared.opts.get_default(key), outputs=[res], show_progress='hidden')
    if dirtyable_setting is not None and res is not None:
        dirtyable_setting.__exit__()
    return res


def build_settings_ui():
    """Build the Settings tab content in the current gr.Blocks; returns the sections built."""
    global text_settings, dummy_component  # pylint: disable=global-statement
    quicksettings_names = {x: i for i, x in enumerate(shared.opts.quicksettings_list) if x != 'quicksettings'}
    dummy_component = gr.Textbox(visible=False, value='dummy')
    text_settings = gr.Textbox(elem_id="settings_json", elem_classes=["settings_json"], value=lambda: shared.opts.dumpjson(), visible=False)
    with gr.Tabs(elem_id="system"):
        with gr.TabItem("Settings", id="system_settings", elem_id="tab_settings"):
            gr.HTML(elem_id="settings_result")
            script_callbacks.ui_settings_callback()  # let extensions create settings
            sections = []
            options_count = len(shared.opts.data_labels)
            for item in shared.opts.data_labels.values():  # SDNext's loop, quirks included
                if len(item.section) == 2:
                    section_id, section_text = item.section
                elif len(item.section) == 3:
                    _category, section_id, section_text = item.section
                    item.section = section_id, section_text
                else:
                    section_id = None
                    item.section = None, 'Hidden'
                if (section_id, section_text) not in sections:  # pylint: disable=used-before-assignment
                    sections.append((section_id, section_text))
            with gr.Tabs(elem_id="settings"):
                quicksettings_list.clear()
                for (section_id, section_text) in sections:
                    items = [item for item in shared.opts.data_labels.items() if item[1].section[0] == section_id]
                    hidden = section_id is None or 'hidden' in section_id.lower() or 'hidden' in section_text.lower()
                    if hidden:
                        for (key, _item) in items:
                            hidden_list.append(key)
                            components.append(dummy_component)
                    else:
                        with gr.TabItem(elem_id=f"settings_section_tab_{section_id}", label=section_text):
                            for (key, item) in items:
                                if key in quicksettings_names:
                                    quicksettings_list.append((key, item))
                                    components.append(dummy_component)
                                else:
                                    with gr.Row(elem_id=f"settings_section_row_{section_id}", elem_classes=["settings_section"]):
                                        component = create_setting_component(key)
                                        shared.settings_components[key] = component
                                        components.append(component)
                if len(components) != options_count:
                    log.error(f'Settings: count mismatch: options={options_count} components={len(components)}')
            log.debug(f'Settings: sections={len(sections)} settings={len(shared.opts.list())}/{len(list(shared.opts.data_labels))} quicksettings={len(quicksettings_list)}')
    sections_built[:] = sections
    return sections


def create_quicksettings(interfaces):
    """The root Blocks: quicksettings row, then one TabItem per (interface, title, elem_id)
    with ``interface.render()`` inside, as SDNext renders every tab, extension tabs included."""
    shared.tab_names = [label for _interface, label, _ifid in interfaces]
    with gr.Blocks(analytics_enabled=False, title="SD.Next") as ui_app:
        with gr.Row(elem_id="quicksettings", variant="compact"):
            for k, _item in quicksettings_list:
                shared.settings_components[k] = create_setting_component(k, is_quicksettings=True)
        with gr.Tabs(elem_id="tabs"):
            for interface, label, ifid in interfaces:
                if interface is None:
                    continue
                with gr.TabItem(label, id=ifid, elem_id=f"tab_{ifid}"):
                    interface.render()
    return ui_app
