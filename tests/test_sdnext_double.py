"""Fidelity of the SDNext test double (tests/sdnext), with throwaway extensions on tmp_path.

Each test pins a behaviour of the real SDNext (vladmandic/sdnext) that our extension must
survive; see research/sdnext-contract.md."""
import json
import sys
import textwrap
import threading

import pytest


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
        opts.no_such_option  # pylint: disable=pointless-statement
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
