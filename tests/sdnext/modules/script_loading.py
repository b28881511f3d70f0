"""modules.script_loading: how SDNext imports one ``scripts/*.py`` file.

The module is named after the file ("lora_manager.py"), is never put in sys.modules, and its
stdout during import is captured and re-logged at info level (unless the path contains
"sd-extension-" or "Lora"); an exception while importing is displayed, not raised, and the
partly executed module is returned."""
import contextlib
import importlib.util
import io
import os
import re

from modules import errors
from modules.logger import log

loaded = []  # the double: every path given to load_module, in order


def load_module(path):
    loaded.append(path)
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        if 'sd-extension-' in path or 'Lora' in path:
            module_spec.loader.exec_module(module)
        else:
            with contextlib.redirect_stdout(io.StringIO()) as stdout:
                module_spec.loader.exec_module(module)
            for line in stdout.getvalue().splitlines():
                if len(line) > 0:
                    clean = re.sub(r'\x1b\[[0-9;]*m', '', line)
                    log.info(f"Extension: script='{os.path.relpath(path)}' {clean.strip()}")
    except Exception as e:  # pylint: disable=broad-except
        errors.display(e, f'Module load: {path}')
    return module
