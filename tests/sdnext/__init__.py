"""A test double of SDNext: its ``modules`` package (``tests/sdnext/modules``) and its startup.

``start(extension_dir, lora_dir, data_dir, settings)`` imitates what SDNext does from launch to
a running server, in SDNext's order (webui.py), timing each phase:

  args        parse the command line (``cmd_args``), with ``settings`` saved as config.json
  shared      import ``modules.shared``: options, config loaded before any extension runs
  lora        hash cache load, LoRA registry scan of lora_dir
  scripts     ``load_scripts()``: callbacks cleared, every ``<ext>/scripts/*.py`` imported
  before_ui   ``on_before_ui`` callbacks
  ui          System tab: settings UI (fires ``on_ui_settings``, crashes on section=None like
              SDNext), then ``on_ui_tabs``, then the root Blocks rendering every tab
  launch      ``demo.queue(concurrency_count=64)`` and gradio's FastAPI app (no server), with
              SDNext's ``allowed_paths`` (its root, data and models folders) for ``/file=``
  api         ``shared.api`` (HTTP Basic auth with ``cmd_args={'auth': 'user:pw'}``)
  app_started ``on_app_started(demo, app)``
  after_ui    ``on_after_ui``; the model becomes loadable
  model       with ``model=``: a checkpoint is written and loaded (otherwise ``sd_loaded`` False)

Generation: ``modules.processing.process_images`` runs SDNext's flow over a stand-in pipeline
(``modules/sd_models.py``: real small images, per-step state, injectable pipeline errors and
exceptions); ``load_model``/``unload_model``/``pipeline`` control the model, ``txt2img`` and
``api_txt2img`` generate the way SDNext's Text tab and REST API do.

An exception SDNext would not survive (the settings UI crash) propagates out of ``start``;
everything SDNext catches and logs is recorded instead (``errors``, ``displayed``).
Only one double runs at a time: ``modules`` is a global package name. ``close()`` (or
``deactivate()``) takes ``tests/sdnext`` off sys.path and removes ``modules*`` from
sys.modules, together with every module that imported names from it (the extension's SDNext
adapter), so the next start imports them afresh against the new double.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

SDNEXT_DIR = Path(__file__).resolve().parent  # the double's "SDNext root": holds modules/
TESTS_DIR = SDNEXT_DIR.parent
_SECRET_SUFFIXES = ('_version', '_token', '_key', '_secret', '_password')

_active: SDNextDouble | None = None


def _is_double_name(name) -> bool:
    return isinstance(name, str) and (name == "modules" or name.startswith("modules."))


def _uses_double(module: ModuleType) -> bool:
    """Whether a module holds a double module, or an object defined in one, in its globals."""
    with warnings.catch_warnings():  # reading some libraries' deprecated globals warns
        warnings.simplefilter("ignore")
        return _holds_double(module)


def _holds_double(module: ModuleType) -> bool:
    for value in list(vars(module).values()):
        try:
            if isinstance(value, ModuleType):
                if _is_double_name(value.__name__):
                    return True
            elif _is_double_name(getattr(value, "__module__", None)):
                return True
        except Exception:  # pylint: disable=broad-except  # exotic lazy objects
            continue
    return False


def purge() -> list[str]:
    """Remove the double's modules, and the modules bound to them, from sys.modules.
    Test modules (under tests/) are left alone. Returns the names removed."""
    removed = [name for name in list(sys.modules) if _is_double_name(name)]
    for name in removed:
        del sys.modules[name]
    tests_dir = str(TESTS_DIR) + os.sep
    for name, module in list(sys.modules.items()):
        if module is None or name == __name__ or name.startswith(__name__ + "."):
            continue
        if str(getattr(module, "__file__", "") or "").startswith(tests_dir):
            continue
        if _uses_double(module):
            del sys.modules[name]
            removed.append(name)
            parent_name, _, child = name.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None and getattr(parent, child, None) is module:
                delattr(parent, child)
    return removed


def activate() -> None:
    """Make ``import modules`` find the double (fresh: stale copies are purged first)."""
    purge()
    if str(SDNEXT_DIR) not in sys.path:
        sys.path.insert(0, str(SDNEXT_DIR))


def deactivate() -> None:
    """Undo activate(): sys.path entry removed, double and dependent modules purged."""
    global _active  # pylint: disable=global-statement
    _active = None
    while str(SDNEXT_DIR) in sys.path:
        sys.path.remove(str(SDNEXT_DIR))
    purge()
    _reset_gradio_context()


def _reset_gradio_context() -> None:
    context = sys.modules.get("gradio.context")
    if context is not None:
        context.Context.root_block = None
        context.Context.block = None


def _write_config(data_dir: Path, settings: dict) -> None:
    """Save ``settings`` as SDNext would have: secret-pattern keys in secrets.json."""
    config = data_dir / "config.json"
    secrets = data_dir / "secrets.json"
    values = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    hidden = json.loads(secrets.read_text(encoding="utf-8")) if secrets.is_file() else {}
    for key, value in settings.items():
        (hidden if key.endswith(_SECRET_SUFFIXES) else values)[key] = value
    config.write_text(json.dumps(values, indent=2), encoding="utf-8")
    if hidden:
        secrets.write_text(json.dumps(hidden, indent=2), encoding="utf-8")


class SDNextDouble:
    """A started double: the SDNext objects an extension sees, plus what tests inspect."""

    def __init__(self, extension_dir: Path, lora_dir: Path, data_dir: Path):
        self.extension_dir = extension_dir
        self.lora_dir = lora_dir
        self.data_dir = data_dir
        self.timings: dict[str, float] = {}
        self.demo = None  # the root gr.Blocks
        self.app = None  # gradio's FastAPI app, as passed to on_app_started
        self.interfaces: list = []  # every rendered tab: (interface, title, elem_id)
        self.closed = False

    # -- the double's modules -------------------------------------------------------------
    @staticmethod
    def module(name: str) -> ModuleType:
        """``module('shared')`` -> the double's ``modules.shared``."""
        import importlib
        return importlib.import_module(f"modules.{name}")

    @property
    def shared(self):
        return self.module("shared")

    @property
    def opts(self):
        return self.shared.opts

    @property
    def cmd_opts(self):
        return self.shared.cmd_opts

    @property
    def state(self):
        return self.shared.state

    @property
    def script_callbacks(self):
        return self.module("script_callbacks")

    # -- what happened --------------------------------------------------------------------
    @property
    def tabs(self) -> list:
        """The extension tabs (interface, title, elem_id), i.e. all but SDNext's System tab."""
        return [t for t in self.interfaces if t[2] != "system"]

    @property
    def log_records(self) -> list[logging.LogRecord]:
        return self.module("logger").records

    @property
    def errors(self) -> list[str]:
        """Messages logged at error level or above (startup or later)."""
        return self.module("logger").errors()

    @property
    def warnings(self) -> list[str]:
        return self.module("logger").warnings()

    @property
    def displayed(self) -> list[tuple[str, BaseException]]:
        """Exceptions SDNext caught and displayed: (task, exception)."""
        return self.module("errors").displayed

    @property
    def script_modules(self) -> list[tuple[str, ModuleType]]:
        """(path, module) of every imported ``scripts/*.py``."""
        return self.module("scripts_manager").loaded_modules

    @property
    def settings_sections(self) -> list[tuple]:
        return list(self.module("ui_settings").sections_built)

    # -- the model ------------------------------------------------------------------------
    def load_model(self, name="sdxl_base", model_type="sdxl", *, step_time=0.0):
        """Write a checkpoint ``name`` of ``model_type`` ('sd', 'sdxl', 'f1'... SDNext's types),
        select and load it; returns the pipeline (``shared.sd_model``)."""
        sd_models = self.module("sd_models")
        info = sd_models.write_checkpoint(name, model_type)
        self.opts.data["sd_model_checkpoint"] = info.title
        pipeline = sd_models.load_model(info)
        pipeline.step_time = step_time
        return pipeline

    def unload_model(self):
        """No model loaded; the checkpoint stays selected, so reading shared.sd_model loads it."""
        self.module("sd_models").unload_model_weights()

    @property
    def pipeline(self):
        """The loaded DoublePipeline, or None (never triggers a load)."""
        return self.module("modeldata").model_data.sd_model

    @property
    def model_requests(self) -> list[str]:
        """Where shared.sd_model was read while no model was loaded ("file:function")."""
        return self.module("modeldata").model_data.requests

    @property
    def model_loads(self) -> list[str]:
        """The reads of shared.sd_model that started loading a model."""
        return self.module("modeldata").model_data.loads

    # -- SDNext's own generation paths (paraphrased from modules/txt2img.py and modules/api/generate.py) --
    def txt2img(self, prompt="", script_args=(0,), **kwargs):
        """A click on Generate in SDNext's Text tab: the handler runs behind
        wrap_gradio_gpu_call(name='Text') (queue lock, task id, state.begin/end, errors turned
        into an HTML message) and returns (images, generation info JSON, infotext, comments).
        ``script_args``: the tab's script inputs, [0] the Script dropdown (0: none selected)."""
        import uuid

        from modules import call_queue, processing, scripts_manager, shared
        from modules.paths import resolve_output_path

        def handler(id_task, prompt):  # pylint: disable=unused-argument
            if shared.sd_model is None:
                return [], '', '', 'Error: model not loaded'
            p = processing.StableDiffusionProcessingTxt2Img(
                sd_model=shared.sd_model, prompt=prompt,
                outpath_samples=resolve_output_path(shared.opts.outdir_samples, shared.opts.outdir_txt2img_samples),
                outpath_grids=resolve_output_path(shared.opts.outdir_grids, shared.opts.outdir_txt2img_grids), **kwargs)
            p.scripts = scripts_manager.scripts_txt2img
            p.script_args = list(script_args)
            processed = scripts_manager.scripts_txt2img.run(p, *p.script_args)
            if processed is None:
                processed = processing.process_images(p)
            processed = scripts_manager.scripts_txt2img.after(p, processed, *p.script_args)
            p.close()
            if processed is None:
                return [], '', '', 'Error: processing failed'
            return processed.images, processed.js(), processed.info, processed.comments

        wrapped = call_queue.wrap_gradio_gpu_call(handler, extra_outputs=[None, '', ''], name='Text')
        return wrapped(f"task({uuid.uuid4().hex[:15]})", prompt)

    def api_txt2img(self, prompt="", save_images=False, **kwargs):
        """POST /sdapi/v1/txt2img: samples and grids saved only with save_images (default
        False), state.begin('API-TXT', api=True) around the call; returns the Processed."""
        from modules import call_queue, processing, scripts_manager, shared
        from modules.paths import resolve_output_path

        with call_queue.queue_lock:
            p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, prompt=prompt, do_not_save_samples=not save_images,
                                                            do_not_save_grid=not save_images, **kwargs)
            p.scripts = scripts_manager.scripts_txt2img
            p.outpath_grids = resolve_output_path(shared.opts.outdir_grids, shared.opts.outdir_txt2img_grids)
            p.outpath_samples = resolve_output_path(shared.opts.outdir_samples, shared.opts.outdir_txt2img_samples)
            jobid = shared.state.begin('API-TXT', api=True)
            p.script_args = ()
            processed = processing.process_images(p)
            p.close()
            shared.state.end(jobid, api=False)
        return processed

    def client(self, **kwargs):
        """A starlette TestClient over the app (routes added with shared.api and gradio's)."""
        from fastapi.testclient import TestClient
        return TestClient(self.app, **kwargs)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if _active is self:
                deactivate()


def _allowed_paths(cmd_opts) -> list[str]:
    """The folders SDNext lets Gradio's /file= route serve (webui.py, before demo.launch): its
    root, --data-dir, --models-dir and --allowed-paths, each when it is a folder."""
    from modules import paths
    allowed = [paths.script_path]
    for folder in (cmd_opts.data_dir, cmd_opts.models_dir):
        if folder is not None and os.path.isdir(folder):
            allowed.append(folder)
    return allowed + [p for p in (cmd_opts.allowed_paths or []) if os.path.isdir(p)]


def start(extension_dir, lora_dir, data_dir, settings=None, *, cmd_args=None,
          queue=True, model=None) -> SDNextDouble:
    """Start the double with one extension folder (see the module docstring for the phases).

    ``settings`` are saved option values (config.json), read before extensions register
    options. ``lora_dir`` is saved as the ``lora_dir`` option, so ``cmd_opts.lora_dir`` follows
    it (set ``cmd_args={'lora_dir': ...}`` for SDNext's --lora-dir instead). ``cmd_args`` are
    other command-line values by their underscored names (``auth``, ``freeze``, ``no_hashing``...).
    ``model``: a model type ('sdxl', 'sd', 'f1'...) or (name, type) to load after startup, as
    SDNext loads its selected checkpoint; None (default): no model is loaded and none can be."""
    global _active  # pylint: disable=global-statement
    if _active is not None:
        _active.close()
    extension_dir, lora_dir, data_dir = Path(extension_dir), Path(lora_dir), Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    double = SDNextDouble(extension_dir, lora_dir, data_dir)
    _active = double
    clock = [time.perf_counter()]

    def done(phase):
        now = time.perf_counter()
        double.timings[phase] = now - clock[0]
        clock[0] = now

    activate()
    try:
        from modules import cmd_args as args_module
        args_module.configure(data_dir=str(data_dir), **(cmd_args or {}))
        _write_config(data_dir, {"lora_dir": str(lora_dir), **(settings or {})})
        done("args")

        from modules import shared
        done("shared")

        from modules import hashes
        from modules.lora import lora_load
        hashes.load_cache()
        lora_load.list_available_networks()
        done("lora")

        from modules import extra_networks, scripts, scripts_manager
        scripts_manager.load_scripts([str(extension_dir)])
        scripts.register_runners()
        extra_networks.initialize()
        extra_networks.register_default_extra_networks()
        done("scripts")

        from modules import script_callbacks
        script_callbacks.before_ui_callback()
        done("before_ui")

        from modules import ui
        double.demo = shared.demo = ui.create_ui()
        double.interfaces = list(ui.interfaces)
        done("ui")

        import gradio.routes
        if queue and not shared.cmd_opts.disable_queue:
            double.demo.queue(concurrency_count=64)
        double.demo.allowed_paths = _allowed_paths(shared.cmd_opts)  # what launch() is given
        double.app = gradio.routes.App.create_app(double.demo)
        done("launch")

        from modules import call_queue
        from modules.api.api import Api
        shared.api = Api(double.app, call_queue.queue_lock)
        shared.api.register()
        done("api")

        script_callbacks.app_started_callback(double.demo, double.app)
        done("app_started")

        script_callbacks.after_ui_callback()
        from modules.modeldata import model_data
        model_data.locked = False
        done("after_ui")

        if model is not None:  # SDNext loads the selected model after the UI is up
            name, model_type = model if isinstance(model, tuple) else ("sdxl_base" if model == "sdxl" else f"{model}_model", model)
            double.load_model(name, model_type)
            done("model")
    except BaseException:
        _reset_gradio_context()
        raise
    return double
