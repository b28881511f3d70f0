"""modules.scripts_manager: Script, AlwaysVisible and the script loader.

``load_scripts()`` clears every callback, then for each ``scripts/*.py`` of the active
extensions (in SDNext's priority order) puts the extension root first on a *new* sys.path
list, imports the file with script_loading.load_module, registers its Script classes, and in
``finally`` puts back the original sys.path list object: path edits made by a script are lost.
Errors are displayed and recorded (``errors.displayed``), never raised."""
import os
import re
import sys
import time
from typing import NamedTuple

from modules import errors, extensions, paths, script_callbacks, script_loading, scripts_postprocessing, timer
from modules.logger import log

AlwaysVisible = object()
control_extensions = []  # titles of user-extension scripts allowed on the Control tab
time_component = {}
time_setup = {}


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


class Script:
    parent = None
    name = None
    filename = None
    args_from = 0
    args_to = 0
    alwayson = False
    is_txt2img = False
    is_img2img = False
    api_info = None
    group = None
    infotext_fields = None
    paste_field_names = None
    section = None
    standalone = False
    external = False
    on_before_component_elem_id = []
    on_after_component_elem_id = []

    def title(self):
        raise NotImplementedError

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):  # pylint: disable=unused-argument
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        """Exists in SDNext but is never called."""

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def process_images(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp, *args):
        pass

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def describe(self):
        return ""

    def elem_id(self, item_id):
        title = re.sub(r'[^a-z_0-9]', '', re.sub(r'\s', '_', self.title().lower()))
        return f'script_{self.parent}_{title}_{item_id}'


current_basedir = paths.script_path


def basedir():
    """The folder of the extension whose script is being imported (SDNext's root otherwise)."""
    return current_basedir


class ScriptFile(NamedTuple):
    basedir: str
    filename: str
    path: str
    priority: str


class ScriptClassData(NamedTuple):
    script_class: type
    path: str
    basedir: str
    module: object


scripts_data = []
postprocessing_scripts_data = []
loaded_modules = []  # the double: (path, module) of every imported script file


def list_scripts(scriptdirname, extension):
    """Script files of SDNext's own folder and of the active extensions, in SDNext's order:
    a priority prefix (core 0, scripts 1, builtin 2, extensions 3, else 9) plus the path."""
    tmp_list = []
    base = os.path.join(paths.script_path, scriptdirname)
    if os.path.exists(base):
        for filename in sorted(os.listdir(base)):
            tmp_list.append(ScriptFile(paths.script_path, filename, os.path.join(base, filename), '50'))
    for ext in extensions.active():
        tmp_list += ext.list_files(scriptdirname, extension)
    priority_list = []
    for script in tmp_list:
        if os.path.splitext(script.path)[1].lower() == extension and os.path.isfile(script.path):
            if script.basedir == paths.script_path:
                priority = '0'
            elif script.basedir.startswith(os.path.join(paths.script_path, 'scripts')) or script.basedir.startswith('scripts'):
                priority = '1'
            elif script.basedir.startswith(os.path.join(paths.script_path, 'extensions-builtin')) or script.basedir.startswith('extensions-builtin'):
                priority = '2'
            elif script.basedir.startswith(paths.extensions_dir) or script.basedir.startswith('extensions'):
                priority = '3'
            else:
                priority = '9'
            priority_list.append(ScriptFile(script.basedir, script.filename, script.path, priority + script.priority))
    return sorted(priority_list, key=lambda item: item.priority + item.path.lower())


def load_scripts(extension_dirs=None):
    """Import every ``scripts/*.py`` of the active extensions, as SDNext does at startup.
    With ``extension_dirs`` (folders), those become the installed extensions first."""
    global current_basedir  # pylint: disable=global-statement
    if extension_dirs is not None:
        extensions.extensions[:] = [extensions.Extension(os.path.basename(os.path.normpath(d)), d) for d in extension_dirs]
    t = timer.Timer()
    t0 = time.time()
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()
    scripts_list = list_scripts('scripts', '.py')
    syspath = sys.path

    def register_scripts_from_module(module, scriptfile):
        for script_class in module.__dict__.values():
            if type(script_class) != type:  # pylint: disable=unidiomatic-typecheck
                continue
            if issubclass(script_class, Script):
                scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))
            elif issubclass(script_class, scripts_postprocessing.ScriptPostprocessing):
                postprocessing_scripts_data.append(ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module))

    for scriptfile in scripts_list:
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            script_module = script_loading.load_module(scriptfile.path)
            loaded_modules.append((scriptfile.path, script_module))
            register_scripts_from_module(script_module, scriptfile)
        except Exception as e:  # pylint: disable=broad-except
            errors.display(e, f'Load script: {scriptfile.filename}')
        finally:
            current_basedir = paths.script_path
            t.record(os.path.basename(scriptfile.basedir) if scriptfile.basedir != paths.script_path else scriptfile.filename)
            sys.path = syspath

    global scripts_txt2img, scripts_img2img, scripts_control  # pylint: disable=global-statement
    scripts_txt2img = ScriptRunner('txt2img')
    scripts_img2img = ScriptRunner('img2img')
    scripts_control = ScriptRunner('control')
    return t, time.time() - t0


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
        errors.display(e, f'Calling script: {filename}/{funcname}')
    return default


class ScriptRunner:
    def __init__(self, name=''):
        self.name = name
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.infotext_fields = []
        self.paste_field_names = []
        self.is_img2img = False
        self.inputs = [None]

    def add_script(self, script_class, path, is_img2img, is_control):
        try:
            script = script_class()
            script.filename = path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            if path.startswith(paths.extensions_dir) and not path.startswith(paths.extensions_builtin_dir):
                script.external = True
            if is_control and script.external:
                title = script.title()
                if title not in control_extensions:
                    log.debug(f'Script: fn="{script.filename}" type=control title="{title}" skip')
                    return
            if is_control:
                v1 = script.show(script.is_txt2img)
                v2 = script.show(script.is_img2img)
                visibility = AlwaysVisible if AlwaysVisible in (v1, v2) else (v1 or v2)
            else:
                visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)
        except Exception as e:  # pylint: disable=broad-except
            log.error(f'Script initialize: {path} {e}')
            errors.display(e, 'script')

    def initialize_scripts(self, is_img2img=False, is_control=False):
        self.scripts.clear()
        self.selectable_scripts.clear()
        self.alwayson_scripts.clear()
        self.is_img2img = is_img2img
        try:
            sorted_scripts = sorted(scripts_data, key=lambda x: x.script_class().title().lower())
        except Exception:  # pylint: disable=broad-except
            sorted_scripts = scripts_data
        for script_class, path, _basedir, _module in sorted_scripts:
            self.add_script(script_class, path, is_img2img, is_control)

    # --- hooks process_images calls; an AlwaysVisible script takes part once its UI was set up
    # (args_to > 0), with its slice of p.script_args (or p.per_script_args[title]); an exception
    # in one script is displayed and the others go on

    def _alwayson(self, p, hook, *args, **kwargs):
        results = []
        for script in self.alwayson_scripts:
            try:
                if script.args_to > 0 and script.args_to >= script.args_from:
                    script_args = p.per_script_args.get(script.title(), p.script_args[script.args_from:script.args_to])
                    results.append(getattr(script, hook)(p, *args, *script_args, **kwargs))
            except Exception as e:  # pylint: disable=broad-except
                errors.display(e, f'Running script {hook}: {script.filename}')
        return results

    def before_process(self, p, **kwargs):
        self._alwayson(p, 'before_process', **kwargs)

    def process(self, p, **kwargs):
        self._alwayson(p, 'process', **kwargs)

    def process_images(self, p, **kwargs):
        found = [r for r in self._alwayson(p, 'process_images', **kwargs) if r is not None]
        return found[-1] if found else None

    def before_process_batch(self, p, **kwargs):
        self._alwayson(p, 'before_process_batch', **kwargs)

    def process_batch(self, p, **kwargs):
        self._alwayson(p, 'process_batch', **kwargs)

    def postprocess_batch(self, p, images, **kwargs):
        self._alwayson(p, 'postprocess_batch', images=images, **kwargs)

    def postprocess_batch_list(self, p, pp, **kwargs):
        self._alwayson(p, 'postprocess_batch_list', pp, **kwargs)

    def postprocess_image(self, p, pp):
        self._alwayson(p, 'postprocess_image', pp)

    def postprocess(self, p, processed):
        self._alwayson(p, 'postprocess', processed)

    def run(self, p, *args):
        """The selected script (args[0] = its 1-based index in selectable_scripts) or None."""
        index = args[0] if args else 0
        if not index:
            return None
        script = self.selectable_scripts[index - 1]
        return script.run(p, *p.per_script_args.get(script.title(), args[script.args_from:script.args_to]))

    def after(self, p, processed, *args):
        index = args[0] if args else 0
        if not index:
            return processed
        script = self.selectable_scripts[index - 1]
        result = script.after(p, processed, *args[script.args_from:script.args_to]) if hasattr(script, 'after') else None
        return result if result is not None else processed


scripts_txt2img = None
scripts_img2img = None
scripts_control = None
scripts_current = None
