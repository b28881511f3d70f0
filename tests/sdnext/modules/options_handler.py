"""modules.options_handler: the Options object behind ``shared.opts``.

Attribute reads go secrets -> data -> the registered default -> AttributeError, but only
after normal attribute lookup, so instance attributes and methods (``get``, ``set``, ``list``,
``save``...) shadow options of the same name. Writes of keys ending in _version, _token,
_key, _secret or _password go to ``secrets`` (saved to secrets.json), all other known keys to
``data``; an unknown key becomes a plain attribute. ``set()`` calls the option's onchange and
reverts the value if it raises; plain assignment calls nothing and is ignored under --freeze.
The config file is read before extensions register their options, so their saved values sit
in ``data`` unvalidated."""
import json
import os

from modules import cmd_args, errors
from modules.json_helpers import readfile, writefile
from modules.logger import log

cmd_opts = cmd_args.parse_args()
compatibility_opts = ['clip_skip', 'uni_pc_lower_order_final', 'uni_pc_order']
secrets_pattern = ['_version', '_token', '_key', '_secret', '_password']


class Options:
    typemap = {int: float}

    def __init__(self, options_templates=None, restricted=None, *, filename='', secrets=''):
        if options_templates is None:
            options_templates = {}
        if restricted is None:
            restricted = set()
        super().__setattr__('data_labels', options_templates)
        super().__setattr__('data', {k: v.default for k, v in options_templates.items()})
        super().__setattr__('secrets', {})
        self.filename = filename or cmd_opts.config
        self.secretsfn = secrets or cmd_opts.secrets
        self.restricted = restricted
        self.legacy = []
        self._saves = 0  # the double: how many times save() ran
        self.load()

    def __getattr__(self, item):
        if item == 'secrets':
            return super().__getattribute__('secrets')
        if item == 'data':
            return super().__getattribute__('data')
        if item in self.secrets:
            return self.secrets[item]
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        return super().__getattribute__(item)

    def get(self, item):
        if item in self.secrets:
            return self.secrets[item]
        if item in self.data:
            return self.data[item]
        if item in self.data_labels:
            return self.data_labels[item].default
        return super().__getattribute__(item)

    def __setattr__(self, key, value):
        if (key in self.data_labels) or (key in self.data) or (key in self.secrets):
            if cmd_opts.freeze:
                log.warning(f"Settings are frozen: {key}")
                return
            if cmd_opts.hide_ui_dir_config and key in self.restricted:
                log.warning(f"Settings key is restricted: {key}")
                return
            if any(key.endswith(pattern) for pattern in secrets_pattern):
                self.secrets[key] = value
            else:
                self.data[key] = value
            return
        super().__setattr__(key, value)

    def set(self, key, value, force=False):
        """Set an option and call its onchange; True if it changed. On an onchange error the
        old value is put back, the error is logged, and False is returned."""
        if key in self.secrets:
            oldval = self.secrets.get(key, None)
        else:
            oldval = self.data.get(key, None)
        if oldval is None:
            if key in self.data_labels:
                oldval = self.data_labels[key].default
            else:
                log.warning(f'Settings: key={key} value={value} unknown')
                return False
        if oldval == value and not force:
            return False
        try:
            setattr(self, key, value)
        except RuntimeError:
            return False
        func = self.data_labels[key].onchange if key in self.data_labels else None
        if func is not None:
            try:
                func()
            except Exception as err:  # pylint: disable=broad-except
                log.error(f'Error in onchange callback: {key} {value} {err}')
                errors.display(err, 'Error in onchange callback')
                setattr(self, key, oldval)
                return False
        return True

    def get_default(self, key):
        data_label = self.data_labels.get(key)
        return data_label.default if data_label is not None else None

    def list(self):
        return [k for k, v in self.data_labels.items() if v.visible]

    def save_atomic(self, silent=False):
        if cmd_opts.freeze:
            log.warning(f'Setting: fn="{self.filename}" save disabled')
            return
        diff = {}
        for k, v in (self.data | self.secrets).items():
            if k in self.data_labels:
                default = self.data_labels[k].default
                if isinstance(v, list):
                    if len(default) != len(v) or set(default) != set(v):
                        diff[k] = v
                elif default != v:
                    diff[k] = v
            elif k not in compatibility_opts:
                diff[k] = v
        options = {k: v for k, v in diff.items() if not any(k.endswith(p) for p in secrets_pattern)}
        secrets = {k: v for k, v in diff.items() if any(k.endswith(p) for p in secrets_pattern)}
        writefile(options, os.path.abspath(self.filename), silent=silent)
        writefile(secrets, os.path.abspath(self.secretsfn), silent=silent)

    def save(self, silent=False):
        """SDNext saves in a background thread; the double saves at once (deterministic tests)."""
        self._saves += 1
        self.save_atomic(silent)

    def same_type(self, x, y):
        if x is None or y is None:
            return True
        return self.typemap.get(type(x), type(x)) == self.typemap.get(type(y), type(y))

    def load(self):
        filename = os.path.abspath(self.filename)
        if not os.path.isfile(filename):
            log.debug(f'Settings: config="{filename}" secrets="{os.path.abspath(self.secretsfn)}" created')
            self.save()
            return
        super().__setattr__('data', readfile(filename, lock=True, as_type="dict"))
        super().__setattr__('secrets', readfile(os.path.abspath(self.secretsfn), lock=True, as_type="dict"))
        unknown_settings = []
        for k, v in self.data.items():
            info = self.data_labels.get(k, None)
            if info is not None and not info.validate(k, v):
                self.data[k] = info.default
            if info is not None and not self.same_type(info.default, v):
                log.warning(f"Setting validation: {k}={v} ({type(v).__name__} expected={type(info.default).__name__})")
                self.data[k] = info.default
            if info is None and k not in compatibility_opts and not k.startswith('uiux_'):
                unknown_settings.append(k)
        if len(unknown_settings) > 0:
            log.warning(f"Setting validation: unknown={unknown_settings}")

    def onchange(self, key, func, call=True):
        item = self.data_labels.get(key)
        item.onchange = func  # AttributeError for an unregistered key, as in SDNext
        if call:
            func()

    def dumpjson(self):
        """The settings JSON the UI and /sdapi/v1/options use; ``v.section[0]`` fails for section None."""
        d = {k: self.data.get(k, self.data_labels.get(k).default) for k in self.data_labels.keys()}
        metadata = {
            k: {"is_stored": k in self.data and self.data[k] != self.data_labels[k].default, "tab_name": v.section[0]}
            for k, v in self.data_labels.items()
        }
        return json.dumps({"values": d, "metadata": metadata}, default=str)

    def add_option(self, key, info):
        self.data_labels[key] = info

    def reorder(self):
        """Group items by section (in first-seen order), as SDNext does after the settings UI."""
        section_ids = {}
        settings_items = self.data_labels.items()
        for _k, item in settings_items:
            if item.section not in section_ids:
                section_ids[item.section] = len(section_ids)
        super().__setattr__('data_labels', dict(sorted(settings_items, key=lambda x: section_ids[x[1].section])))

    def cast_value(self, key, value):
        if value is None:
            return None
        default_value = self.data_labels[key].default
        if default_value is None:
            default_value = getattr(self, key, None)
        if default_value is None:
            return None
        expected_type = type(default_value)
        if expected_type == bool and value == "False":
            value = False
        elif expected_type != type(value):
            value = expected_type(value)
        return value
