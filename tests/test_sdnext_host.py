"""The extension inside SDNext (the test double in tests/sdnext): loaded the way SDNext loads it,
with its tab, settings section, routes, library folders and background sync."""

from __future__ import annotations

import sys
import time

from factories import make_lora


def sdnext_host():
    return sys.modules["lib_lora_manager.hosts.sdnext"]


def wait_for_scan(library, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if library.indexer.status.finished_at and not library.indexer.status.running:
            return
        time.sleep(0.05)
    raise AssertionError("background scan did not finish")


def test_loads_like_sdnext_loads_it(sdnext, tmp_path):
    lora_dir = tmp_path / "models" / "Lora"
    make_lora(lora_dir, "in_sdnext", "sdxl")
    extra = tmp_path / "more-loras"
    make_lora(extra, "elsewhere", "sd1")

    double = sdnext(lora_dir=lora_dir, settings={"lora_manager_extra_dirs": str(extra)})
    try:
        assert double.errors == [] and double.displayed == []
        # the scripts file was imported under SDNext's module name, not as a package module
        assert [m.__name__ for _p, m in double.script_modules] == ["lora_manager.py"]
        assert [(title, elem_id) for _i, title, elem_id in double.tabs] == [("LoRA Manager", "lora_manager")]
        assert ("lora_manager", "LoRA Manager") in double.settings_sections
        for key in ("lora_manager_extra_dirs", "lora_manager_database_secret", "lora_manager_hashing"):
            assert double.opts.data_labels[key].section == ("lora_manager", "LoRA Manager")

        # the database URL may hold a password: SDNext keeps "_secret" keys out of config.json
        double.opts.set("lora_manager_database_secret", "postgresql+psycopg://u:pw@db/lib")
        assert "lora_manager_database_secret" not in double.opts.data
        assert double.opts.secrets["lora_manager_database_secret"].endswith("@db/lib")
        double.opts.set("lora_manager_database_secret", "")
        library = sdnext_host().app.library()
        assert library.store.roots == [str(lora_dir), str(extra)]
        assert library.store.data_dir.endswith("data/lora-manager")
        wait_for_scan(library)
        with double.client() as client:
            body = client.get("/lora-manager/v1/loras", params={"q": "sort:name"}).json()
        tokens = {i["filename"]: i["token"] for i in body["items"]}
        assert tokens == {"in_sdnext.safetensors": "<lora:in_sdnext:1>",
                          "elsewhere.safetensors": f"<lora:{extra / 'elsewhere.safetensors'}:1>"}
    finally:
        sdnext_host().app.library().close()


def test_routes_are_behind_sdnext_auth(sdnext, tmp_path):
    double = sdnext(cmd_args={"auth": "user:secret"})
    try:
        with double.client() as client:
            assert client.get("/lora-manager/v1/loras").status_code == 401
            assert client.get("/lora-manager/v1/loras", auth=("user", "secret")).status_code == 200
    finally:
        sdnext_host().app.library().close()


def test_startup_does_no_synchronous_scan(sdnext, tmp_path):
    lora_dir = tmp_path / "models" / "Lora"
    for i in range(30):
        make_lora(lora_dir, f"f{i}", seed=i)
    double = sdnext(lora_dir=lora_dir, settings={"lora_manager_scan_on_start": False})
    try:
        library = sdnext_host().app.library()
        assert library.search("").total == 0  # nothing was read during startup
        assert library.indexer.status.started_at is None
        library.indexer.scan()
        assert library.search("").total == 30
        assert double.errors == []
    finally:
        sdnext_host().app.library().close()


def test_settings_changes_apply_without_restart(sdnext, tmp_path):
    extra = tmp_path / "later"
    make_lora(extra, "late_arrival")
    double = sdnext(settings={"lora_manager_scan_on_start": False})
    try:
        library = sdnext_host().app.library()
        assert double.opts.set("lora_manager_extra_dirs", str(extra))
        assert str(extra) in library.store.roots
        wait_for_scan(library)
        assert library.search("late_arrival").total == 1
    finally:
        sdnext_host().app.library().close()


STARTUP_PROBE = """
import sys
sys.path[:0] = [{tests!r}, {repo!r}]
import gradio  # SDNext has gradio loaded long before it imports extensions
import sdnext
sdnext.activate()
from modules import cmd_args
cmd_args.configure(data_dir={data!r})
from modules import shared
from lib_lora_manager.hosts import sdnext as host
host.register()
host.on_ui_settings()
host.on_ui_tabs()
print(any(m.startswith("sqlalchemy") for m in sys.modules), "lib_lora_manager.library" in sys.modules)
"""


def test_startup_path_loads_neither_sqlalchemy_nor_the_library(tmp_path):
    """Importing the scripts and building the tab must stay cheap: the library (and SQLAlchemy,
    a quarter of a second to import) load on a background thread after SDNext has started."""
    import subprocess
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    code = STARTUP_PROBE.format(tests=str(tests), repo=str(tests.parent), data=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_send_with_parameters_uses_sdnext_paste_bindings(sdnext):
    """Compose and History register their "Send with parameters" buttons with SDNext's paste
    mechanism, aimed at Control under ModernUI (its Text tab is hidden by default) and at the
    Text tab otherwise."""
    import gradio as gr

    sdnext()
    from modules import generation_parameters_copypaste as paste

    bindings = list(paste.registered_param_bindings)
    assert [b.tabname for b in bindings] == ["control", "control"]
    assert all(isinstance(b.paste_button, gr.Button) and isinstance(b.source_text_component, gr.Textbox) for b in bindings)
    sdnext_double_module = sys.modules["sdnext"]
    sdnext_double_module.deactivate()
    paste.registered_param_bindings.clear()

    sdnext(settings={"theme_type": "Standard"})
    from modules import generation_parameters_copypaste as paste

    assert [b.tabname for b in paste.registered_param_bindings] == ["txt2img", "txt2img"]


def test_only_the_sdnext_host_imports_sdnext_modules():
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "lib_lora_manager"
    host = package / "hosts" / "sdnext"
    importing = {str(path.relative_to(package)) for path in package.rglob("*.py")
                 if re.search(r"^\s*(from modules[ .]|import modules\b)", path.read_text(encoding="utf-8"), re.M)}
    assert importing and all(Path(package / p).is_relative_to(host) for p in importing), importing


def test_our_log_records_reach_sdnexts_log(sdnext):
    """SDNext silences the root logger; our records go through SDNext's own handlers."""
    import logging

    double = sdnext()
    try:
        logging.getLogger("lora_manager").warning("LoRA Manager: a preview is unreadable")
        assert "LoRA Manager: a preview is unreadable" in double.module("logger").warnings()
    finally:
        sdnext_host().app.library().close()


def test_a_ui_restart_stores_pending_records_and_stops_the_job_worker(sdnext):
    """SDNext fires script_unloaded when it restarts its UI."""
    sdnext()
    try:
        from modules import script_callbacks

        jobs = sdnext_host().app.jobs()
        assert jobs.started
        script_callbacks.script_unloaded_callback()
        assert not jobs.started
        assert sdnext_host().app.jobs() is jobs and jobs.started  # used again after the restart
    finally:
        sdnext_host().app.library().close()
