"""modules.options: OptionInfo and options_section, with SDNext's signature and behaviour.

The positional order differs from A1111 after ``refresh`` (folder, submit, comment_before...),
unknown keyword arguments are accepted and ignored, and ``section`` defaults to None, which
the settings UI cannot render (see ui_settings.build_settings_ui)."""
from dataclasses import dataclass

from modules.logger import log


def options_section(section_identifier, options_dict):
    """Set ``section`` on every item; a 3-tuple (A1111's category, id, label) keeps its first two."""
    if len(section_identifier) > 2:
        section_identifier = section_identifier[:2]
    for v in options_dict.values():
        v.section = section_identifier
    return options_dict


class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                 section=None, refresh=None, folder=False, submit=None, comment_before='',
                 comment_after='', category_id=None, *args, **kwargs):  # pylint: disable=unused-argument,keyword-arg-before-vararg
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.refresh = refresh
        self.folder = folder
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.submit = submit
        self.exclude = ['sd_model_checkpoint', 'sd_model_refiner', 'sd_vae', 'sd_unet', 'sd_text_encoder']
        self.dynamic = callable(component_args)
        args = {} if self.dynamic else (component_args or {})
        self.visible = args.get('visible', True) and len(self.label) > 2

    def needs_reload_ui(self):
        return self

    def link(self, label, uri):
        self.comment_before += f"[<a href='{uri}' target='_blank'>{label}</a>]"
        return self

    def js(self, label, js_func):
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, info):
        self.comment_after += f"<span class='info'>{info}</span>"
        return self

    def needs_restart(self):
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def validate(self, opt, value):
        """False only for a number outside component_args' minimum/maximum (logged as an error);
        a value outside ``choices`` is only logged at debug level, as in SDNext."""
        if opt in self.exclude:
            return True
        args = self.component_args if self.component_args is not None else {}
        if callable(args):
            try:
                args = args()
            except Exception:  # pylint: disable=broad-except
                args = {}
        choices = args.get("choices", [])
        if callable(choices):
            try:
                choices = choices()
            except Exception:  # pylint: disable=broad-except
                choices = []
        if len(choices) > 0:
            for v in (value if isinstance(value, list) else [value]):
                if v not in choices:
                    log.debug(f'Setting validation: "{opt}"="{v}" default="{self.default}" choices={choices}')
        minimum = args.get("minimum", None)
        maximum = args.get("maximum", None)
        try:
            if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
                log.error(f'Setting validation: "{opt}"={value} default={self.default} minimum={minimum} maximum={maximum}')
                return False
        except Exception as err:  # pylint: disable=broad-except
            log.error(f'Setting validation: "{opt}"={value} default={self.default} minimum={minimum} maximum={maximum} error={err}')
            return False
        return True

    def __str__(self):
        return f'OptionInfo: label="{self.label}" section="{self.section}" default="{self.default}"'


@dataclass
class OptionsCategory:
    id: str
    label: str


class OptionsCategories:
    def __init__(self):
        self.mapping = {}

    def register_category(self, category_id, label):
        if category_id not in self.mapping:
            self.mapping[category_id] = OptionsCategory(category_id, label)
        return category_id


categories = OptionsCategories()
