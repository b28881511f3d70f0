"""Paste-params bindings (modules/generation_parameters_copypaste.py): extensions register a
ParamBinding while tabs are built; SDNext connects them after every tab exists
(ui_settings.create_quicksettings → connect_paste_params_buttons), only for tabs that added
paste fields."""

from __future__ import annotations

from modules.infotext import parse

parse_generation_parameters = parse  # the A1111 name SDNext keeps
paste_fields: dict[str, dict] = {}
registered_param_bindings: list[ParamBinding] = []


class ParamBinding:
    def __init__(self, paste_button, tabname: str, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None,
                 skip_image: bool = False, only_prompt: bool = False):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []
        self.skip_image = skip_image
        self.only_prompt = only_prompt


def add_paste_fields(tabname: str, init_img, fields, override_settings_component=None) -> None:
    paste_fields[tabname] = {"init_img": init_img, "fields": fields, "override_settings_component": override_settings_component}


def register_paste_params_button(binding: ParamBinding) -> None:
    registered_param_bindings.append(binding)


def reset() -> None:
    paste_fields.clear()
