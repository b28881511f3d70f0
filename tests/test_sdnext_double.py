"""Fidelity of the SDNext test double (tests/sdnext), with throwaway extensions on tmp_path.

Each test pins a behaviour of the real SDNext (vladmandic/sdnext) that our extension must
survive."""
import json
import sys
import textwrap
import threading

import pytest
from PIL import Image


def make_extension(root, scripts, files=None):
    """An extension folder: ``scripts`` maps file name -> code for scripts/, ``files`` maps a
    relative path -> content for anything else."""
    (root / "scripts").mkdir(parents=True, exist_ok=True)
    for name, code in scripts.items():
        (root / "scripts" / name).write_text(textwrap.dedent(code), encoding="utf-8")
    for relative, content in (files or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


PROBE = """
    import sys
    import gradio as gr
    from modules import script_callbacks, scripts, shared

    events = []
    SYS_PATH_AT_IMPORT = list(sys.path)
    SYS_PATH_OBJECT = sys.path
    BASEDIR = scripts.basedir()
    sys.path.append("/added/by/probe")
    print("probe imported")

    def on_settings():
        events.append("ui_settings")
        section = ("probe", "Probe")
        shared.opts.add_option("probe_enabled", shared.OptionInfo(True, "Probe enabled", section=section))
        shared.opts.add_option("probe_api_key", shared.OptionInfo("", "Probe API key", section=section))

    def on_tabs():
        events.append("ui_tabs")
        with gr.Blocks(analytics_enabled=False) as tab:
            gr.Textbox(label="Probe query", elem_id="probe_query")
        return [(tab, "Probe", "probe")]

    def on_started(demo, app):
        events.append("app_started")
        shared.api.add_api_route("/probe/ping", lambda: {"ok": True}, methods=["GET"])
        shared.api.add_api_route("/probe/open", lambda: {"open": True}, methods=["GET"], auth=False)

    script_callbacks.on_ui_settings(on_settings)
    script_callbacks.on_ui_tabs(on_tabs)
    script_callbacks.on_app_started(on_started)
"""


@pytest.fixture
def probe(tmp_path):
    return make_extension(tmp_path / "extensions" / "probe-ext", {"probe.py": PROBE})


def probe_module(double):
    [(path, module)] = double.script_modules
    assert path.endswith("probe.py")
    return module


# --- startup ---------------------------------------------------------------------------------

def test_clean_extension_starts_without_errors_in_sdnext_order(sdnext, probe):
    double = sdnext(probe)
    assert double.errors == []
    assert probe_module(double).events == ["ui_settings", "ui_tabs", "app_started"]
    assert [(title, elem_id) for _, title, elem_id in double.tabs] == [("Probe", "probe")]
    assert ("probe", "Probe") in double.settings_sections
    assert set(double.timings) == {"args", "shared", "lora", "scripts", "before_ui", "ui",
                                   "launch", "api", "app_started", "after_ui"}
    assert double.shared.sd_loaded is False


def test_tab_is_rendered_in_a_tabitem_like_sdnext(sdnext, probe):
    double = sdnext(probe)
    components = double.demo.config["components"]
    by_elem_id = {c["props"].get("elem_id"): c for c in components if c["props"].get("elem_id")}
    tabitem = by_elem_id["tab_probe"]
    assert tabitem["type"] == "tabitem"
    assert tabitem["props"]["label"] == "Probe"
    assert "probe_query" in by_elem_id
    assert "setting_probe_enabled" in by_elem_id  # the settings UI made a component


def test_script_stdout_is_captured_and_logged(sdnext, probe):
    double = sdnext(probe)
    messages = [r.getMessage() for r in double.log_records]
    assert any(m.startswith("Extension: script=") and m.endswith("probe imported") for m in messages)


# --- script loading ----------------------------------------------------------------------------

def test_script_module_is_named_after_the_file_and_not_in_sys_modules(sdnext, probe):
    module = probe_module(sdnext(probe))
    assert module.__name__ == "probe.py"
    assert "probe.py" not in sys.modules
    assert module.BASEDIR == str(probe)


def test_sys_path_is_the_original_list_again_after_each_script(sdnext, probe):
    before = sys.path
    double = sdnext(probe)
    module = probe_module(double)
    assert module.SYS_PATH_AT_IMPORT[0] == str(probe)  # extension root first during import
    assert module.SYS_PATH_OBJECT is not before  # a new list while importing
    assert sys.path is before
    assert str(probe) not in sys.path
    assert "/added/by/probe" not in sys.path  # edits made at import time are lost


def test_package_in_extension_root_is_importable_and_stays_cached(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"uses_pkg.py": """
        import probe_pkg
        VALUE = probe_pkg.VALUE
    """}, {"probe_pkg/__init__.py": "VALUE = 42\n"})
    double = sdnext(ext)
    assert probe_module_value(double) == 42
    assert "probe_pkg" in sys.modules  # cached: later imports work without the path entry
    del sys.modules["probe_pkg"]


def probe_module_value(double):
    [(_, module)] = double.script_modules
    return module.VALUE


def test_load_scripts_clears_every_callback_first(sdnext, probe):
    double = sdnext(probe)
    callbacks = double.script_callbacks
    callbacks.on_app_started(lambda demo, app: None)
    callbacks.on_before_process(lambda p: None)
    assert len(callbacks.callback_map["callbacks_app_started"]) == 2
    double.module("scripts_manager").load_scripts([str(probe)])
    assert len(callbacks.callback_map["callbacks_app_started"]) == 1  # the probe's, registered again
    assert callbacks.callback_map["callbacks_before_process"] == []


def test_import_error_in_a_script_is_displayed_and_startup_goes_on(sdnext, tmp_path, probe):
    ext = make_extension(probe, {"broken.py": "raise RuntimeError('broken at import')\n"})
    double = sdnext(ext)
    assert [(task.split(":")[0], str(e)) for task, e in double.displayed] == [("Module load", "broken at import")]
    assert any("Module load" in m for m in double.errors)
    assert [t[2] for t in double.tabs] == ["probe"]


# --- callbacks -----------------------------------------------------------------------------------

def test_callback_registration_rejects_a1111_name_keyword(sdnext, probe):
    callbacks = sdnext(probe).script_callbacks
    with pytest.raises(TypeError):
        callbacks.on_ui_tabs(lambda: [], name="lora_manager")


def test_on_extra_noise_raises_key_error(sdnext, probe):
    callbacks = sdnext(probe).script_callbacks
    with pytest.raises(KeyError):
        callbacks.on_extra_noise(lambda params: None)
    assert "callbacks_extra_noise" not in callbacks.callback_map


def test_callback_exceptions_are_swallowed_and_recorded(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"fails.py": """
        from modules import script_callbacks
        def started(demo, app):
            raise ValueError("app_started failed")
        script_callbacks.on_app_started(started)
    """})
    double = sdnext(ext)  # does not raise
    [(task, error)] = double.displayed
    assert task.startswith("Executing callback: ") and task.endswith("fails.py app_started_callback")
    assert str(error) == "app_started failed"
    assert double.errors


def test_callback_records_the_registering_file(sdnext, probe):
    callbacks = sdnext(probe).script_callbacks
    [entry] = callbacks.callback_map["callbacks_ui_tabs"]
    assert entry.script == str(probe / "scripts" / "probe.py")


# --- settings ------------------------------------------------------------------------------------

def test_option_without_section_crashes_the_settings_ui(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"nosection.py": """
        from modules import script_callbacks, shared
        def settings():
            shared.opts.add_option("nosection_flag", shared.OptionInfo(True, "No section"))
        script_callbacks.on_ui_settings(settings)
    """})
    with pytest.raises(TypeError, match="NoneType"):
        sdnext(ext)


def test_option_without_section_added_at_import_crashes_even_earlier(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"early.py": """
        from modules import shared
        shared.opts.add_option("early_flag", shared.OptionInfo(True, "Early"))
    """})
    with pytest.raises(TypeError, match="not subscriptable"):  # opts.dumpjson(): section[0]
        sdnext(ext)


def test_a1111_three_tuple_section_is_converted_and_hidden_sections_get_no_component(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"sections.py": """
        from modules import script_callbacks, shared
        def settings():
            shared.opts.add_option("a1111_style", shared.OptionInfo(1, "A1111 style", section=("cat", "a1111", "A1111")))
            shared.opts.add_option("hidden_thing", shared.OptionInfo("x", "Hidden thing", section=("my_hidden", "Mine")))
        script_callbacks.on_ui_settings(settings)
    """})
    double = sdnext(ext)
    assert double.opts.data_labels["a1111_style"].section == ("a1111", "A1111")
    assert "setting_a1111_style" in str(double.demo.config)
    assert "hidden_thing" not in double.shared.settings_components


def test_float_option_without_component_fails_like_sdnext(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"floaty.py": """
        from modules import script_callbacks, shared
        def settings():
            shared.opts.add_option("floaty_weight", shared.OptionInfo(0.5, "Weight", section=("floaty", "Floaty")))
        script_callbacks.on_ui_settings(settings)
    """})
    with pytest.raises(ValueError, match="bad options item type"):
        sdnext(ext)


@pytest.mark.parametrize("suffix", ["_key", "_token", "_secret", "_password", "_version"])
def test_secret_suffixes_are_routed_to_secrets(sdnext, probe, suffix):
    double = sdnext(probe)
    opts = double.opts
    key = f"probe_thing{suffix}"
    opts.add_option(key, double.shared.OptionInfo("", "Thing", section=("probe", "Probe")))
    assert opts.set(key, "s3cret") is True
    assert opts.secrets[key] == "s3cret"
    assert key not in opts.data
    assert getattr(opts, key) == "s3cret" and opts.get(key) == "s3cret"
    opts.save()
    saved_config = json.loads((double.data_dir / "config.json").read_text())
    saved_secrets = json.loads((double.data_dir / "secrets.json").read_text())
    assert key not in saved_config and saved_secrets[key] == "s3cret"


def test_saved_secret_is_read_from_secrets_json(sdnext, probe):
    double = sdnext(probe, settings={"probe_api_key": "from-secrets-file"})
    assert double.opts.secrets == {"probe_api_key": "from-secrets-file"}
    assert double.opts.probe_api_key == "from-secrets-file"


def test_lookup_order_secrets_data_default_then_attribute_error(sdnext, probe):
    double = sdnext(probe, settings={"probe_enabled": False, "list": "an option named list"})
    opts = double.opts
    assert opts.probe_enabled is False  # saved value (data) before the default True
    assert opts.data_labels["probe_enabled"].default is True
    opts.data["probe_api_key"] = "in data"
    opts.secrets["probe_api_key"] = "in secrets"
    assert opts.probe_api_key == "in secrets"
    assert opts.samples_format == "jpg"  # not saved: the registered default
    with pytest.raises(AttributeError):
        _ = opts.no_such_option
    # normal attribute lookup comes first: methods shadow options of the same name
    assert callable(opts.list)
    assert opts.get("list") == "an option named list"


def test_saved_values_of_unregistered_options_sit_in_data_unvalidated(sdnext, probe):
    double = sdnext(probe, settings={"probe_later": 12})
    assert double.opts.data["probe_later"] == 12
    assert any("unknown=['probe_later']" in w for w in double.warnings)


def test_set_calls_onchange_and_reverts_when_it_raises(sdnext, probe):
    double = sdnext(probe)
    opts = double.opts
    calls = []
    opts.onchange("probe_enabled", lambda: calls.append(opts.probe_enabled))
    assert calls == [True]  # call=True by default: called at once
    assert opts.set("probe_enabled", False) is True
    assert calls == [True, False]
    assert opts.set("probe_enabled", False) is False  # unchanged: no call
    assert calls == [True, False]

    def refuse():
        raise RuntimeError("refused")
    opts.onchange("probe_enabled", refuse, call=False)
    assert opts.set("probe_enabled", True) is False
    assert opts.probe_enabled is False  # reverted
    assert any("Error in onchange callback: probe_enabled True refused" in m for m in double.errors)

    opts.probe_enabled = True  # plain assignment: no onchange
    assert opts.probe_enabled is True
    assert opts.set("never_registered", 1) is False


def test_freeze_ignores_writes(sdnext, probe):
    double = sdnext(probe, cmd_args={"freeze": True})
    double.opts.probe_enabled = False
    assert double.opts.probe_enabled is True
    assert any("Settings are frozen: probe_enabled" in w for w in double.warnings)


def test_cmd_opts_lora_dir_follows_the_option(sdnext, probe, tmp_path):
    double = sdnext(probe)
    assert double.cmd_opts.lora_dir == str(double.lora_dir)
    double.opts.set("lora_dir", str(tmp_path / "elsewhere"))
    assert double.cmd_opts.lora_dir == str(tmp_path / "elsewhere")


def test_lora_dir_argument_wins_over_the_option(sdnext, probe, tmp_path):
    double = sdnext(probe, cmd_args={"lora_dir": str(tmp_path / "cli")})
    assert double.cmd_opts.lora_dir == str(tmp_path / "cli")
    assert double.opts.lora_dir == str(double.lora_dir)


# --- REST routes -----------------------------------------------------------------------------

def test_add_api_route_applies_basic_auth_when_configured(sdnext, probe):
    double = sdnext(probe, cmd_args={"auth": "alice:wonder"})
    with double.client() as client:
        assert client.get("/probe/ping").status_code == 401
        assert client.get("/probe/ping", auth=("alice", "wrong")).status_code == 401
        assert client.get("/probe/ping", auth=("alice", "wonder")).json() == {"ok": True}
        assert client.get("/probe/open").json() == {"open": True}  # auth=False
    assert ("/probe/ping", True) in double.shared.api.routes


def test_add_api_route_is_open_without_auth_and_mounted_under_subpath(sdnext, probe):
    double = sdnext(probe, settings={"subpath": "/sd"})
    with double.client() as client:
        assert client.get("/probe/ping").json() == {"ok": True}
        assert client.get("/sd/probe/ping").json() == {"ok": True}


# --- state, queue, model ---------------------------------------------------------------------

def test_state_is_global_not_a_stack(sdnext, probe):
    state = sdnext(probe).state
    outer = state.begin("Generate")
    state.interrupt()
    state.begin("Hash")  # nested, as SDNext does: the interrupt is lost
    assert state.interrupted is False
    state.end()
    assert state.job == "" and state.job_count == 0
    state.end(outer)
    state.begin("Generate")
    state.interrupt()
    state.begin("Save image")  # a "Save" title keeps the flag
    assert state.interrupted is True


def test_queue_lock_is_not_reentrant_and_wrappers_never_raise(sdnext, probe):
    double = sdnext(probe)
    call_queue = double.module("call_queue")
    assert call_queue.queue_lock.acquire(blocking=False)
    try:
        assert not call_queue.queue_lock.acquire(blocking=False)
    finally:
        call_queue.queue_lock.release()
    assert isinstance(call_queue.queue_lock, type(threading.Lock()))

    def fails(task_id, value):
        raise ValueError(f"bad {value}")
    extra = [None]
    result = call_queue.wrap_gradio_gpu_call(fails, extra_outputs=extra)("task(abc)", 1)
    assert result[0] is None and "ValueError" not in result[1] and "bad 1" in result[1]
    assert result[1].startswith("<div class='error'>")
    assert call_queue.wrap_gradio_call(lambda: "ab")() == ("a", "b")  # list(res) of a string


def test_reading_sd_model_while_unloaded_is_recorded(sdnext, probe):
    double = sdnext(probe)
    assert double.shared.sd_loaded is False
    assert double.shared.sd_model is None
    assert double.module("modeldata").model_data.requests
    assert double.shared.sd_model_type == "none"


# --- LoRA registry ---------------------------------------------------------------------------

def test_lora_registry_names_and_aliases(sdnext, probe, tmp_path):
    lora_dir = tmp_path / "loras"
    (lora_dir / "style").mkdir(parents=True)
    header = json.dumps({"__metadata__": {"ss_output_name": "pretty", "ss_base_model_version": "sdxl_base_v1-0"}}).encode()
    (lora_dir / "style" / "my.lora.v2.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (lora_dir / "notes.txt").write_text("not a model")
    double = sdnext(probe, lora_dir=lora_dir)
    lora_load = double.module("lora.lora_load")
    assert list(lora_load.available_networks) == ["my_lora_v2"]
    entry = lora_load.available_networks["my_lora_v2"]
    assert entry.fullname == "style/my.lora.v2"
    assert entry.alias == "pretty" and entry.sd_version == "xl"
    assert set(lora_load.available_network_aliases) == {"my_lora_v2", "style/my.lora.v2", "my.lora.v2"}


# --- isolation between starts ----------------------------------------------------------------

def test_modules_bound_to_the_double_are_reimported_on_the_next_start(sdnext, tmp_path):
    ext = make_extension(tmp_path / "ext", {"adapter_user.py": """
        import probe_adapter
        probe_adapter.register()
    """}, {"probe_adapter.py": """
        from modules import script_callbacks, shared
        def register():
            script_callbacks.on_app_started(lambda demo, app: shared.api.add_api_route("/adapter", lambda: {"id": id(shared)}, methods=["GET"]))
    """})
    first = sdnext(ext)
    first_shared = first.shared
    with first.client() as client:
        assert client.get("/adapter").json() == {"id": id(first_shared)}
    second = sdnext(ext)  # closes the first
    assert second.shared is not first_shared
    with second.client() as client:
        assert client.get("/adapter").json() == {"id": id(second.shared)}
    second.close()
    assert "probe_adapter" not in sys.modules
    assert not [name for name in sys.modules if name == "modules" or name.startswith("modules.")]


# --- generation: processing.process_images and what surrounds it ----------------------------

RECORDER = """
    from modules import processing, script_callbacks, shared

    events = []

    def before(p):
        events.append(("before", p.prompt, list(p.all_prompts), processing.processed))

    def after(p):
        events.append(("after", p.prompt, list(p.all_prompts), processing.processed))

    def saved(params):
        events.append(("saved", params.filename, params.pnginfo.get("parameters")))

    script_callbacks.on_before_process(before)
    script_callbacks.on_after_process(after)
    script_callbacks.on_image_saved(saved)
"""


@pytest.fixture
def gen(sdnext, tmp_path, monkeypatch):
    """The double with a loaded SDXL model, a LoRA "detail" in its registry, a probe that logs
    process callbacks and saved images, and its working folder (relative outputs) in tmp_path."""
    monkeypatch.chdir(tmp_path)
    lora_dir = tmp_path / "Lora"
    header = json.dumps({"__metadata__": {"ss_base_model_version": "sdxl_base_v1-0"}}).encode()
    lora_dir.mkdir()
    (lora_dir / "detail.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    ext = make_extension(tmp_path / "extensions" / "rec", {"rec.py": RECORDER})
    double = sdnext(ext, lora_dir=lora_dir, model="sdxl")
    [(_path, module)] = double.script_modules
    return double, module.events


def txt2img(double, **kw):
    values = dict(prompt="a cat <lora:detail:0.6>", steps=3, width=64, height=64, seed=100,
                  outpath_samples="outputs/text", outpath_grids="outputs/grids")
    values.update(kw)
    return double.module("processing").StableDiffusionProcessingTxt2Img(**values)


def test_processing_object_is_keyword_only_with_sdnext_defaults(gen):
    double, _events = gen
    processing = double.module("processing")
    with pytest.raises(TypeError):
        processing.StableDiffusionProcessingTxt2Img("a cat")
    p = processing.StableDiffusionProcessingTxt2Img(prompt="a cat", my_extension_flag=3)
    assert (p.width, p.height, p.steps, p.cfg_scale, p.seed, p.batch_size, p.n_iter) == (1024, 1024, 20, 6.0, -1, 1, 1)
    assert (p.sampler_name, p.denoising_strength, p.hr_denoising_strength, p.hr_upscaler) == ("Default", 0.3, 0.0, None)
    assert p.my_extension_flag == 3 and p.all_prompts == [] and p.all_seeds == [] and p.extra_generation_params == {}
    assert p.network_data["lora"] == [] and p.ops == [] and p.is_api is False
    import dataclasses
    assert isinstance(p.scripts, dataclasses.Field)  # neither None nor a runner until set
    p.close()
    assert p.scripts is None
    lost = processing.StableDiffusionProcessingTxt2Img(prompt="x", sd_model_checkpoint="no such model")
    assert lost.abort is True and processing.process_images(lost) is None  # SDNext switches models in the constructor


def test_process_images_without_a_model_returns_none_fires_nothing_and_asks_for_one(sdnext, probe):
    double = sdnext(probe)
    p = double.module("processing").StableDiffusionProcessingTxt2Img(prompt="x")
    assert double.module("processing").process_images(p) is None
    assert double.model_requests  # it read shared.sd_model, which would load a model
    double.load_model("sd15", "sd")
    double.unload_model()
    assert double.shared.sd_loaded is False
    result = double.module("processing").process_images(double.module("processing").StableDiffusionProcessingTxt2Img(prompt="x", steps=1, width=64, height=64))
    assert result is not None and len(result.images) == 1  # ... and here it did load one
    assert double.model_loads and double.shared.sd_loaded and double.shared.sd_model_type == "sd"


def test_process_images_fills_prompts_seeds_callbacks_infotext_and_files(gen, tmp_path):
    double, events = gen
    processing = double.module("processing")
    p = txt2img(double, batch_size=2, n_iter=2)
    result = processing.process_images(p)
    assert events[0] == ("before", p.prompt, [], None)  # before: prompts and seeds not filled yet
    assert events[-1][0] == "after" and events[-1][3] is result is processing.processed
    assert p.all_prompts == [p.prompt] * 4 and p.all_seeds == [100, 101, 102, 103]
    assert result.index_of_first_image == 1 and len(result.images) == 5  # the grid first
    assert result.extra_generation_params is p.extra_generation_params
    assert json.loads(result.js())["all_seeds"] == [100, 101, 102, 103]
    lora_common = double.module("lora.lora_common")
    assert [(n.name, n.te_multiplier, n.network_on_disk.name) for n in lora_common.loaded_networks] == [("detail", 0.6, "detail")]
    saved = [e for e in events if e[0] == "saved"]
    assert len(saved) == 5 and saved[0][1].startswith("outputs/text/00001-") and saved[-1][1].startswith("outputs/grids/")
    for image in result.images[1:]:
        assert image.already_saved_as.startswith("outputs/text/") and (tmp_path / image.already_saved_as).is_file()
        fields = double.module("infotext").parse(image.info["parameters"])
        assert fields["LoRA networks"] == "detail" and fields["Pipeline"] == "StableDiffusionXLPipeline"
    with Image.open(tmp_path / result.images[2].already_saved_as) as jpeg:  # EXIF UserComment, as SDNext writes it
        assert double.module("images").read_info_from_image(jpeg)[0] == result.images[2].info["parameters"]
    assert len({i.tobytes() for i in result.images[1:]}) == 4
    assert double.state.job == "" and double.errors == []


def test_infotext_quotes_lora_networks_and_parses_back(gen):
    double, _events = gen
    p = txt2img(double, prompt="x <lora:detail:1> <lora:missing:1>, y", negative_prompt="bad, ugly")
    p.extra_generation_params["LoRA networks"] = "detail, other"
    text = double.module("processing_info").create_infotext(p)
    assert text.splitlines()[1] == "Negative prompt: bad, ugly" and 'LoRA networks: "detail, other"' in text
    fields = double.module("infotext").parse(text)
    assert fields["Prompt"] == "x <lora:detail:1> <lora:missing:1>, y" and fields["LoRA networks"] == "detail, other"
    assert fields["Steps"] == 3 and fields["CFG scale"] == 6.0 and fields["Size-2"] == 64


def test_extra_network_tokens_reach_the_infotext_only_with_a_script_runner(gen):
    """SDNext cuts <lora:…> out of p.prompts and puts them back only in the ScriptRunner branch."""
    double, _events = gen
    processing = double.module("processing")
    bare = processing.process_images(txt2img(double))
    assert bare.images[0].info["parameters"].startswith("a cat \n")
    p = txt2img(double)
    p.scripts = double.module("scripts_manager").ScriptRunner("mine")
    kept = processing.process_images(p)
    assert kept.images[0].info["parameters"].startswith("a cat <lora:detail:0.6>\n")


def test_unknown_lora_is_logged_not_loaded_and_hashes_are_opt_in(gen):
    double, _events = gen
    double.opts.set("lora_add_hashes_to_infotext", True)
    p = txt2img(double, prompt="a <lora:detail:1> <lora:nowhere:1>")
    double.module("processing").process_images(p)
    assert p.extra_generation_params["LoRA networks"] == "detail"
    assert len(p.extra_generation_params["LoRA hashes"]) == 8
    assert any('name="nowhere"' in e and "not loaded" in e for e in double.errors)


def test_pipeline_error_sets_interrupted_logs_and_returns_no_images(gen):
    double, events = gen
    double.pipeline.failure = ValueError("bad shape")
    result = double.module("processing").process_images(txt2img(double))
    assert result is not None and result.images == [] and double.state.interrupted is True
    assert any(e.startswith("Processing: step=base") and "bad shape" in e for e in double.errors)
    assert [e[0] for e in events] == ["before", "after"]


def test_exception_propagates_after_the_after_callback_and_processed_stays(gen):
    double, events = gen
    processing = double.module("processing")
    first = processing.process_images(txt2img(double))
    double.pipeline.crash = KeyError("boom")
    with pytest.raises(KeyError):
        processing.process_images(txt2img(double))
    assert events[-1][0] == "after" and processing.processed is first


def test_interrupt_keeps_the_live_preview_only_when_one_was_decoded(gen, tmp_path):
    double, _events = gen
    processing = double.module("processing")
    pipeline = double.pipeline
    original = type(pipeline).__call__

    def interrupt_midway(preview):
        def call(pipe, *args, **kwargs):
            steps = kwargs["steps"]
            kwargs["steps"] = 2
            original(pipe, *args, **kwargs)  # two steps, then the Stop button
            if preview:
                double.state.set_current_image()  # what the progress API does for the browser
            double.state.interrupt()
            kwargs["steps"] = steps
            return original(pipe, *args, **kwargs)
        return call

    type(pipeline).__call__ = interrupt_midway(preview=False)
    try:
        assert processing.process_images(txt2img(double, n_iter=2)).images == []
        type(pipeline).__call__ = interrupt_midway(preview=True)
        result = processing.process_images(txt2img(double, n_iter=2))
    finally:
        type(pipeline).__call__ = original
    assert len(result.images) == 1 and pipeline.calls == 4  # the second batch never ran
    assert (tmp_path / result.images[0].already_saved_as).is_file()  # keep_incomplete saves it


def test_interrupt_before_a_nested_begin_is_lost(gen):
    double, _events = gen
    double.state.interrupt()  # too early: process_images' own state.begin() calls reset it
    result = double.module("processing").process_images(txt2img(double))
    assert len(result.images) == 1


def test_skip_in_one_batch_also_skips_the_next_like_sdnext(gen):
    double, _events = gen
    pipeline = double.pipeline
    original = type(pipeline).__call__
    calls = []

    def skip_first(pipe, *args, **kwargs):
        calls.append(kwargs["seeds"])
        if len(calls) == 1:
            double.state.skip()
        return original(pipe, *args, **kwargs)

    type(pipeline).__call__ = skip_first
    try:
        result = double.module("processing").process_images(txt2img(double, n_iter=3))
    finally:
        type(pipeline).__call__ = original
    assert calls == [[100], [102]] and [i.info["parameters"].count("Seed: 102") for i in result.images] == [1]


def test_api_request_saves_nothing_by_default(gen, tmp_path):
    double, events = gen
    result = double.api_txt2img("api cat", steps=2, width=64, height=64, n_iter=2)
    assert len(result.images) == 2 and not any(hasattr(i, "already_saved_as") for i in result.images)
    assert [e for e in events if e[0] == "saved"] == [] and not (tmp_path / "outputs").exists()


def test_process_images_nests_inside_a_script_hook(gen):
    double, events = gen
    processing = double.module("processing")
    scripts_manager = double.module("scripts_manager")

    class Refiner(scripts_manager.Script):
        args_from, args_to = 0, 1

        def title(self):
            return "Refiner"

        def postprocess(self, p, processed, enabled):  # pylint: disable=arguments-differ
            if enabled:
                inner = txt2img(double, prompt="inner", do_not_save_samples=True)
                processing.process_images(inner)

    runner = scripts_manager.ScriptRunner("txt2img")
    runner.alwayson_scripts.append(Refiner())
    p = txt2img(double, prompt="outer")
    p.scripts = runner
    p.script_args = [True]
    outer = processing.process_images(p)
    assert [(e[0], e[1]) for e in events if e[0] in ("before", "after")] == [
        ("before", "outer"), ("before", "inner"), ("after", "inner"), ("after", "outer")]
    assert processing.processed is not outer and processing.processed.prompt == "inner"  # the last one made


def test_save_image_returns_three_values_and_callbacks_can_rename(gen, tmp_path):
    double, _events = gen
    from modules import images, script_callbacks

    script_callbacks.on_before_image_saved(lambda params: setattr(params, "filename", params.filename.replace(".png", "-x.png")))
    image = Image.new("RGB", (16, 16), "red")
    filename, txt, exifinfo = images.save_image(image, str(tmp_path / "saved"), "", 1, "red", "png", info="red square")
    assert filename.endswith("-x.png") and txt is None and exifinfo == "red square"
    assert image.already_saved_as == filename
    with Image.open(filename) as png:
        assert png.info["parameters"] == "red square"


def test_samplers_and_upscalers_lists(gen):
    double, _events = gen
    names = [s.name for s in double.module("sd_samplers").samplers]
    assert names[0] == "Default" and "Euler a" in names and any(n.startswith("\u2500") for n in names)
    upscalers = [u.name for u in double.shared.sd_upscalers]
    assert upscalers[0] == "None" and "Latent Nearest" in upscalers
    checkpoint = double.shared.sd_model.sd_checkpoint_info
    assert checkpoint.title == f"sdxl_base [{checkpoint.shorthash}]" and len(checkpoint.shorthash) == 10
    assert len(checkpoint.sha256) == 64 and checkpoint.filename.endswith("sdxl_base.safetensors")
