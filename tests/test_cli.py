"""The command line, run as users run it: a subprocess with --data-dir and --lora-dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import make_lora

from lib_lora_manager import synth

REPO = Path(__file__).resolve().parents[1]


def run(*args, data_dir, check=True):
    """The command with ``--data-dir`` (None: without, as a user types it after serve)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    where = ["--data-dir", str(data_dir)] if data_dir is not None else []
    proc = subprocess.run([sys.executable, "-m", "lib_lora_manager", *args, *where],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def serving(data, lib_dir):
    """``serve`` started as a user starts it, once its first scan has finished: (process, port).
    The caller stops it (SIGINT) and waits."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "lib_lora_manager", "serve", "--data-dir", str(data), "--lora-dir",
                               str(lib_dir), "--port", str(port), "--no-hashing"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise AssertionError(server.communicate()[1])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/lora-manager/v1/scan/status", timeout=5) as response:
                if json.load(response).get("finished_at"):
                    return server, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("the server did not come up")
        time.sleep(0.2)


@pytest.fixture
def lib_dir(tmp_path):
    loras = tmp_path / "loras"
    make_lora(loras, "first", "sd1", seed=1)
    make_lora(loras / "xl", "second", "sdxl", seed=2)
    synth.write_hostile(loras / "bad.safetensors", "invalid_json")
    return loras


def test_scan_search_show_tag_stats(tmp_path, lib_dir):
    data = tmp_path / "data"
    out = run("scan", "--lora-dir", str(lib_dir), "--hash", "--json", data_dir=data).stdout
    report = json.loads(out)
    assert report["added"] == 3 and report["errors"] == 1 and report["hashed"] == 3

    result = json.loads(run("search", "", "--json", data_dir=data).stdout)  # roots remembered
    assert result["total"] == 3 and set(result) == {"total", "page", "per_page", "items", "description", "sort", "next"}
    first = json.loads(run("search", "", "--per-page", "2", "--json", data_dir=data).stdout)
    following = json.loads(run("search", "", "--per-page", "2", "--after", first["next"], "--json", data_dir=data).stdout)
    assert following["page"] == 2 and [i["id"] for i in following["items"]] == [i["id"] for i in result["items"][2:]]
    bad = next(i for i in result["items"] if i["filename"] == "bad.safetensors")
    assert "JSON" in bad["error"] or "json" in bad["error"]
    assert all(i["token"].startswith("<lora:") for i in result["items"])

    result = json.loads(run("search", "base:sdxl", "--json", data_dir=data).stdout)
    assert [i["filename"] for i in result["items"]] == ["second.safetensors"]

    run("tag", "first", "second", "--add", "keep,best", data_dir=data)
    assert json.loads(run("search", "tag:best", "--json", data_dir=data).stdout)["total"] == 2
    run("tag", "--rename", "best", "top", data_dir=data)
    tags = json.loads(run("tag", "--list", "--json", data_dir=data).stdout)
    assert tags == {"keep": 2, "top": 2}

    shown = json.loads(run("show", "first", "--json", "--raw-header", data_dir=data).stdout)
    assert shown["token"] == "<lora:first:1>" and "__metadata__" in shown["raw_header"]
    stats = json.loads(run("stats", "--json", data_dir=data).stdout)
    assert stats["total"] == 3 and stats["hashed"] == 3 and stats["errors"] == 1
    text = run("search", "tag:keep", data_dir=data).stdout
    assert "first.safetensors" in text and "2 LoRAs" in text


def test_errors_are_one_line_and_nonzero(tmp_path, lib_dir):
    data = tmp_path / "data"
    run("scan", "--lora-dir", str(lib_dir), data_dir=data)
    proc = run("search", "rating:>>1", data_dir=data, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    proc = run("show", "does-not-exist", data_dir=data, check=False)
    assert proc.returncode == 2 and "no LoRA named" in proc.stderr


def test_duplicates_keep(tmp_path, lib_dir):
    data = tmp_path / "data"
    (lib_dir / "copy.safetensors").write_bytes((lib_dir / "first.safetensors").read_bytes())
    run("scan", "--lora-dir", str(lib_dir), "--hash", data_dir=data)
    groups = json.loads(run("duplicates", "--json", data_dir=data).stdout)
    assert len(groups) == 1 and len(groups[0]) == 2
    assert run("duplicates", data_dir=data).stdout.endswith("\n1 group of duplicates\n")
    keep = groups[0][0]["id"]
    run("duplicates", "--keep", str(keep), data_dir=data)
    assert json.loads(run("duplicates", "--json", data_dir=data).stdout) == []


def registered_processes(data_dir) -> int:
    """Processes that have the library in ``data_dir`` open (a closed library unregisters)."""
    import sqlite3

    with sqlite3.connect(data_dir / "lora_manager.db") as db:
        return db.execute("SELECT count(*) FROM processes").fetchone()[0]


def test_serve_without_a_lora_folder_says_so_and_closes_the_library(tmp_path):
    data = tmp_path / "data"
    proc = run("serve", data_dir=data, check=False)
    assert proc.returncode == 2 and "No LoRA folder" in proc.stderr
    assert registered_processes(data) == 0


def test_serve_answers_until_interrupted_then_closes_everything(tmp_path, lib_dir):
    data = tmp_path / "data"
    server, port = serving(data, lib_dir)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lora-manager/v1/loras?q=sort:name", timeout=5) as response:
            assert [i["filename"] for i in json.load(response)["items"]] == ["bad.safetensors", "first.safetensors",
                                                                              "second.safetensors"]
        assert registered_processes(data) == 1
        # the command line, without --data-dir, reads the library just served and says so
        assert json.loads(run("search", "", "--json", data_dir=None).stdout)["total"] == 3
        text = run("stats", data_dir=None).stdout
        assert text.startswith(f"Library: {data} (the library last served") and "total: 3" in text
        assert "scan: last scan: 3 files, 3 new" in text  # the server's scan, read from the database
        server.send_signal(signal.SIGINT)
        _out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert registered_processes(data) == 0


def test_demo_on_every_command_and_a_hint_where_the_library_is_empty(tmp_path):
    home = Path(os.environ["XDG_DATA_HOME"]) / "lora-manager"
    scanned = json.loads(run("scan", "--demo", "--json", data_dir=None).stdout)
    assert scanned["added"] > 30 and (home / "demo" / "loras").is_dir()
    pony = json.loads(run("search", "base:pony", "--demo", "--json", data_dir=None).stdout)
    assert pony["total"] == 4
    text = run("search", "base:pony", "--demo", data_dir=None).stdout
    assert text.splitlines()[0] == f"Library: {home / 'demo'} (--demo)" and "4 LoRAs" in text
    # nothing served, no --demo: the default folder, named, with what to do
    text = run("stats", data_dir=None).stdout
    assert text.startswith(f"Library: {home} (the default folder)\n  No LoRA folder yet: scan --lora-dir DIR")
    assert "total: 0" in text


def test_the_library_last_served_is_remembered_without_a_password(tmp_path):
    from lib_lora_manager import settings

    data = tmp_path / "served"
    data.mkdir()
    settings.remember_served(settings.LibraryChoice(str(data), "postgresql+psycopg://me:secret@db/loras", ""))
    record = (Path(os.environ["XDG_DATA_HOME"]) / "lora-manager" / "last-served.json").read_text()
    assert "secret" not in record
    chosen = settings.choose_library()
    assert (chosen.data_dir, chosen.database_url) == (str(data), None) and "last served" in chosen.why
    settings.remember_served(settings.LibraryChoice(str(data), "postgresql+psycopg://me@db/loras", ""))
    assert settings.choose_library().database_url == "postgresql+psycopg://me@db/loras"
    assert settings.choose_library(str(tmp_path / "other")).why == "--data-dir"
    assert settings.choose_library(demo=True).data_dir.endswith(os.path.join("lora-manager", "demo"))
    data.rmdir()  # a folder that is gone is not chosen
    assert settings.choose_library().why == "the default folder"


def test_serve_reads_the_settings_tab_s_saved_values(tmp_path, lib_dir):
    """settings.json in the data folder (the Settings tab writes it): its extra folder is indexed
    next to --lora-dir, and the page has the Settings tab."""
    extra = tmp_path / "extra"
    make_lora(extra, "from_the_extra_folder", seed=3)
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text(json.dumps({"lora_manager_extra_dirs": str(extra), "lora_manager_page_size": 24}),
                                        encoding="utf-8")
    server, port = serving(data, lib_dir)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lora-manager/v1/loras?q=sort:name", timeout=5) as response:
            names = [i["filename"] for i in json.load(response)["items"]]
        assert "from_the_extra_folder.safetensors" in names and "first.safetensors" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
            assert "lora_manager_settings_tab" in response.read().decode()
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()


def test_serve_puts_what_startup_built_out_of_the_collectors_sight(tmp_path, lora_dir, monkeypatch):
    """The app serve builds (Gradio's and FastAPI's objects: ~280,000) is frozen before the server
    runs: a full collection during a request walks only what came after (it took 190 ms)."""
    import gc

    import uvicorn

    from lib_lora_manager import cli
    from lib_lora_manager.hosts import standalone

    make_lora(lora_dir, "one", seed=1)
    seen = {}

    def run(app, **_options):
        tracked = {id(o) for o in gc.get_objects()}  # every generation the collector walks
        seen.update(frozen=gc.get_freeze_count(), app_walked=id(app) in tracked)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    monkeypatch.setattr(standalone.settings, "remember_served", lambda _choice: None)
    try:
        assert cli.main(["serve", "--data-dir", str(tmp_path / "data"), "--lora-dir", str(lora_dir), "--no-scan",
                         "--no-hashing"], serve=standalone.serve) == 0
    finally:
        gc.unfreeze()  # the rest of the tests' objects are collected as usual
    assert seen == {"frozen": seen["frozen"], "app_walked": False} and seen["frozen"] > 10_000, seen
