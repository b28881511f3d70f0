"""Hostile files in the LoRA folders: names that are not UTF-8, NUL and lone surrogates in
metadata and sidecars, absurd values, links leaving the library, FIFOs, a failing background scan,
and Gradio's /file= route reaching the data folder. On SQLite and PostgreSQL (``library``): the
rest of the library is indexed, the bad file is indexed or has a readable per-file error, and
REST, CLI and UI output of the library still works."""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import sys
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import serving
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lib_lora_manager import api, catalog, cli, reading, scanner, settings
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.library import Library
from lib_lora_manager.results import LoraSummary, to_json

pytestmark = pytest.mark.faults

CAFE = os.fsdecode(b"caf\xe9")  # a Latin-1 name from a Windows archive: 'caf\udce9' in Python


def png_bytes(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


def rest_client(library) -> TestClient:
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    return TestClient(app)


def run_cli(library, capsys, *args) -> tuple[int, str]:
    """lib_lora_manager.cli.main on the same library (data folder and database)."""
    db = [] if library.store.db.is_sqlite else ["--db", library.store.db.url]
    code = cli.main([args[0], "--data-dir", library.store.data_dir, *db, *args[1:]])
    out = capsys.readouterr().out
    out.encode("utf-8")  # what a UTF-8 terminal or pipe gets: must be encodable
    return code, out


def by_file(library) -> dict[str, LoraSummary]:
    return {item.filename: item for item in library.search("", per_page=200).items}


def json_safe(data) -> None:
    """What REST sends (results.to_json, then ensure_ascii=False, UTF-8) must encode."""
    json.dumps(to_json(data), ensure_ascii=False).encode("utf-8")


# --- names that are not UTF-8 -------------------------------------------------------------------


@pytest.mark.usefixtures("json_parser")  # orjson, and the standard library where it is missing
def test_a_name_that_is_not_utf8_is_indexed_and_usable_everywhere(library, lora_dir, capsys, tmp_path):
    thumbnail = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    make_lora(lora_dir, "good", seed=1)
    bad = make_lora(lora_dir / f"{CAFE} pack", CAFE, seed=2,
                    metadata={"ss_output_name": "cafe", "modelspec.thumbnail": thumbnail})
    (bad.parent / f"{CAFE}.txt").write_text("a description", encoding="utf-8")
    assert os.fsencode(bad).endswith(b"caf\xe9 pack/caf\xe9.safetensors")

    report = library.indexer.scan()
    assert (report.files, report.added, report.errors, report.skipped) == (2, 2, 0, [])
    items = by_file(library)
    json_safe(items)
    item = items["caf\\xe9.safetensors"]
    assert item.relpath == "caf\\xe9 pack/caf\\xe9.safetensors" and item.folder == "caf\\xe9 pack"
    assert "not valid UTF-8" in item.token_problem
    detail = library.get(item.id)
    json_safe(detail)
    assert detail.path.endswith("caf\\xe9 pack/caf\\xe9.safetensors") and detail.description == "a description"
    # the real file behind the row: rescan, hash, header, preview
    assert catalog.row(library.store, item.id).path == str(bad)
    assert library.indexer.scan().unchanged == 2
    assert library.indexer.hash_pending() == 2 and library.get(item.id).sha256
    assert library.files.raw_header(item.id)["__metadata__"]["ss_output_name"] == "cafe"
    assert library.previews.thumbnail(item.id) is not None
    assert library.find(f"{CAFE}.safetensors").id == item.id  # as the CLI gets it from argv

    with rest_client(library) as client:
        body = client.get("/lora-manager/v1/loras", params={"q": "sort:name"})
        assert body.status_code == 200 and body.json()["total"] == 2
        assert client.get(f"/lora-manager/v1/loras/{item.id}").json()["filename"] == "caf\\xe9.safetensors"
        assert client.get(f"/lora-manager/v1/loras/{item.id}/preview").status_code == 200
        assert client.get("/lora-manager/v1/stats").status_code == 200
    code, out = run_cli(library, capsys, "search", "--json")
    assert code == 0 and json.loads(out)["total"] == 2
    code, out = run_cli(library, capsys, "show", str(item.id))
    assert code == 0 and "caf\\xe9.safetensors" in out

    # move, trash and undo take the real file (and its sidecar) and bring it back
    moved = library.files.move([item.id], str(lora_dir), f"{CAFE} pack/sub")
    assert not moved.errors and (bad.parent / "sub" / bad.name).exists() and (bad.parent / "sub" / f"{CAFE}.txt").exists()
    assert library.get(item.id).relpath == "caf\\xe9 pack/sub/caf\\xe9.safetensors"
    assert library.files.move([item.id], str(lora_dir), f"{CAFE} pack").done == [item.id] and bad.exists()
    batch = library.files.trash([item.id])
    assert not batch.errors and not bad.exists()
    assert not library.files.undo_trash(batch.batch).errors
    assert bad.exists() and catalog.row(library.store, item.id).path == str(bad)
    (lora_dir / "elsewhere").mkdir()
    (lora_dir / "elsewhere" / bad.name).write_bytes(b"")  # in the way: the error names the file, as JSON
    with rest_client(library) as client:
        response = client.post("/lora-manager/v1/bulk", json={"action": "move", "ids": [item.id],
                                                            "value": {"root": str(lora_dir), "subfolder": "elsewhere"}})
        assert response.status_code == 200 and "caf\\xe9.safetensors" in response.json()["errors"][str(item.id)]


def test_a_library_folder_whose_name_is_not_utf8_rescans_as_unchanged(library, tmp_path):
    root = tmp_path / f"{CAFE} loras"
    make_lora(root, "one", seed=1)
    library.store.set_roots([str(root)])
    assert library.indexer.scan().added == 1
    report = library.indexer.scan()
    assert (report.unchanged, report.updated, report.missing) == (1, 0, 0)
    json_safe(library.stats()["roots"])
    assert library.stats()["roots"] == [str(tmp_path / "caf\\xe9 loras")]


def test_a_name_holding_the_reserved_characters_is_reported_not_misread(library, lora_dir):
    make_lora(lora_dir, "good", seed=1)
    make_lora(lora_dir, "odd \U0010fee9 name", seed=2)  # valid UTF-8, but our stand-in for byte 0xE9
    report = library.indexer.scan()
    assert report.added == 1
    assert len(report.skipped) == 1 and "odd \U0010fee9 name.safetensors: its name holds characters" in report.skipped[0]
    assert library.indexer.scan().added == 0  # and no row that reads back as another name


# --- text from files ----------------------------------------------------------------------------


@pytest.mark.usefixtures("json_parser")  # orjson, and the standard library where it is missing
def test_nul_surrogates_and_huge_values_in_metadata_and_sidecars(library, lora_dir, capsys):
    make_lora(lora_dir, "good", seed=1)
    make_lora(lora_dir, "nul", seed=2, metadata={
        "ss_output_name": "out\0put", "modelspec.title": "ti\0tle", "ss_sd_model_name": "\0",
        "ss_tag_frequency": json.dumps({"set": {"a\0b": 3}}), "ss_network_module": "networks.lora\0",
    })
    make_lora(lora_dir, "huge", seed=3, metadata={
        "ss_network_dim": "9" * 25, "ss_epoch": "1e25", "ss_steps": "99999999999", "ss_network_alpha": "1e308",
        "ss_resolution": "(99999999999999999999, 1)",
    })
    make_lora(lora_dir, "lone", seed=4)
    (lora_dir / "lone.json").write_text('{"description": "half \\ud83d emoji\\u0000", "activation text": "x\\u0000y",'
                                        ' "notes": "n\\udc80", "sd version": "SDXL"}', encoding="utf-8")
    (lora_dir / "lone.txt").write_bytes("nul\0 in a description".encode())
    (lora_dir / "lone.civitai.info").write_text(json.dumps({
        "id": 7, "modelId": 8, "name": "v\0", "trainedWords": ["w\0rd", "\ud800"], "model": {"name": "m\0"},
        "baseModel": "SD 1.5\0"}), encoding="utf-8")
    surrogate = make_lora(lora_dir, "surrogate", seed=5, metadata={"ss_output_name": "PLACEHOLDER"})
    surrogate.write_bytes(surrogate.read_bytes().replace(b"PLACEHOLDER", b"\\ud800abcde"))  # same length

    report = library.indexer.scan()
    assert (report.files, report.added) == (5, 5)
    items = by_file(library)
    json_safe(items)
    assert items["nul.safetensors"].error is None
    nul = library.get(items["nul.safetensors"].id)
    assert nul.output_name == "output" and nul.title == "title" and nul.network_module == "networks.lora"
    assert nul.metadata["ss_output_name"] == "out\0put"  # the header as it is, JSON-escaped
    huge = library.get(items["huge.safetensors"].id)
    assert huge.error is None and huge.epochs is None and huge.steps is None and huge.network_dim == 2
    lone = library.get(items["lone.safetensors"].id)
    json_safe(lone)
    assert lone.description == "nul in a description" and lone.notes in ("n?", "n\ufffd")
    assert "w\0rd" not in lone.trigger_words and "xy" in lone.trigger_words
    assert items["surrogate.safetensors"].error  # a header the reader refuses: one error, one item
    assert library.search("output").total == 1
    with rest_client(library) as client:
        assert client.get(f"/lora-manager/v1/loras/{lone.id}").status_code == 200
        assert client.get("/lora-manager/v1/loras").json()["total"] == 5
    code, out = run_cli(library, capsys, "search", "--json")
    assert code == 0 and json.loads(out)["total"] == 5


@pytest.mark.usefixtures("json_parser")  # orjson, and the standard library where it is missing
def test_a_row_the_database_refuses_costs_only_that_row(library, lora_dir, monkeypatch):
    """Values out of a column's range (an inode of 2**64 - 1 from a network file system, a count
    over 2**63) fail the batch's transaction: the batch is written in pieces, the file with the
    bad header value is indexed with an error, and one whose file facts cannot be stored at all
    is reported."""
    for i in range(6):
        make_lora(lora_dir, f"ok{i}", seed=i)
    make_lora(lora_dir, "big_value", seed=8)
    make_lora(lora_dir, "big_inode", seed=9)
    files, headers = reading.file_columns, reading.header_columns

    def file_columns(found):
        return {**files(found), "inode": 2**64 - 1} if found.filename == "big_inode.safetensors" else files(found)

    def header_columns(found, thumbnail_dir=None, header_bytes=None):
        head, metadata, info = headers(found, thumbnail_dir, header_bytes)
        if found.filename == "big_value.safetensors":
            head = {**head, "network_dim": 2**70}
        return head, metadata, info

    monkeypatch.setattr(reading, "file_columns", file_columns)
    monkeypatch.setattr(reading, "header_columns", header_columns)
    report = library.indexer.scan()
    assert (report.files, report.added, report.errors) == (8, 7, 1)
    assert len(report.skipped) == 1
    assert report.skipped[0].startswith(f"{lora_dir / 'big_inode.safetensors'}: cannot be stored in the database (")
    errors = {i.filename: i.error for i in library.search("", per_page=50).items}
    assert errors.pop("big_value.safetensors").startswith("cannot store what the file holds")
    assert errors == {f"ok{i}.safetensors": None for i in range(6)}
    assert library.get(library.find("ok3").id).metadata  # the rest of the batch, complete


@pytest.mark.usefixtures("json_parser")  # orjson, and the standard library where it is missing
def test_a_file_whose_reading_raises_is_one_error(library, lora_dir, monkeypatch):
    make_lora(lora_dir, "good", seed=1)
    make_lora(lora_dir, "bad", seed=2)
    real = reading.sidecar_columns

    def sidecar_columns(found):
        if found.filename == "bad.safetensors":
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
        return real(found)

    monkeypatch.setattr(reading, "sidecar_columns", sidecar_columns)
    report = library.indexer.scan()
    assert (report.added, report.errors) == (2, 1)
    assert "cannot read the file" in by_file(library)["bad.safetensors"].error


# --- the symlink policy -------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "shadow").write_text("root:TOP-SECRET-HASH:19000::::::\n")
    (folder / "picture.png").write_bytes(png_bytes())
    make_lora(folder, "system", seed=7)
    return folder


def test_sidecars_and_previews_leading_outside_are_never_read_or_served(library, lora_dir, outside):
    make_lora(lora_dir, "good", seed=1)
    (lora_dir / "good.txt").symlink_to(outside / "shadow")
    (lora_dir / "good.png").symlink_to(outside / "picture.png")
    make_lora(lora_dir, "inner", seed=2)
    (lora_dir / "inner.txt").symlink_to(lora_dir / "good-description.md")  # inside: read
    (lora_dir / "good-description.md").write_text("inside the library")

    report = library.indexer.scan()
    item = by_file(library)["good.safetensors"]
    detail = library.get(item.id)
    assert detail.description is None and not item.has_preview
    assert any("good.txt: a link leading outside the library folders" in e for e in detail.sidecar_errors)
    assert sum("leading outside" in line for line in report.skipped) == 2
    assert library.get(by_file(library)["inner.safetensors"].id).description == "inside the library"
    assert library.previews.candidates(item.id) == []  # nor offered as a preview to choose
    with rest_client(library) as client:
        assert "TOP-SECRET" not in client.get(f"/lora-manager/v1/loras/{item.id}").text
        assert client.get(f"/lora-manager/v1/loras/{item.id}/preview").status_code == 404

    # a preview that becomes a link elsewhere after the scan is not served either
    (lora_dir / "good.png").unlink()
    (lora_dir / "good.png").write_bytes(png_bytes())
    library.indexer.scan()
    lora = catalog.row(library.store, item.id)
    assert library.previews.file(lora) == str(lora_dir / "good.png")
    (lora_dir / "good.png").unlink()
    (lora_dir / "good.png").symlink_to(outside / "picture.png")
    assert library.previews.file(lora) is None


def test_a_lora_linked_to_a_file_outside_is_not_indexed_or_hashed(library, lora_dir, outside):
    make_lora(lora_dir, "good", seed=1)
    (lora_dir / "evil.safetensors").symlink_to(outside / "system.safetensors")
    (lora_dir / "disk").symlink_to(outside)
    report = library.indexer.scan()
    assert report.files == 1 and library.search("").total == 1
    assert {line.split(": ", 1)[0] for line in report.skipped} == {str(lora_dir / "evil.safetensors"), str(lora_dir / "disk")}
    assert library.indexer.hash_pending() == 1
    # the same folder as a library folder of its own: indexed there, once
    library.store.set_roots([str(lora_dir), str(outside)])
    report = library.indexer.scan()
    assert report.files == 2 and library.search("").total == 2


def test_links_back_into_the_library_index_each_file_once(library, lora_dir):
    make_lora(lora_dir, "top", seed=1)
    make_lora(lora_dir / "sub", "deep", seed=2)
    make_lora(lora_dir / ".store", "hidden", seed=3)
    (lora_dir / "loop").symlink_to(lora_dir)  # back to the root
    (lora_dir / "sub" / "up").symlink_to(lora_dir / "sub")  # a loop below it
    (lora_dir / "alias").symlink_to(lora_dir / "sub")  # a second name for a folder
    (lora_dir / "again.safetensors").symlink_to(lora_dir / "top.safetensors")
    (lora_dir / "h1.safetensors").symlink_to(lora_dir / ".store" / "hidden.safetensors")
    (lora_dir / "h2.safetensors").symlink_to(lora_dir / ".store" / "hidden.safetensors")

    report = library.indexer.scan()
    first, *rest = sorted(i.relpath for i in library.search("", per_page=50).items)
    assert first in ("h1.safetensors", "h2.safetensors")  # whichever link the listing gives first
    assert rest == ["sub/deep.safetensors", "top.safetensors"]
    assert report.files == 3 and len(report.skipped) == 5
    assert library.indexer.scan().unchanged == 3


# --- entries that are not LoRA files ----------------------------------------------------------


def wait_for_scan(library, timeout=30.0) -> None:
    deadline = time.time() + timeout
    while library.indexer.status.running or library.indexer.status.finished_at is None:
        assert time.time() < deadline, "the background scan did not finish"
        time.sleep(0.05)
    for thread in library.indexer._threads:  # the thread logs after the status says it ended
        if thread.name == "lora-manager-scan":
            thread.join(timeout)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_folder_and_dangling_link_are_each_reported(library, lora_dir, capsys):
    make_lora(lora_dir, "good", seed=1)
    os.mkfifo(lora_dir / "pipe.safetensors")
    make_lora(lora_dir / "folder.safetensors", "inside", seed=2)
    (lora_dir / "gone.safetensors").symlink_to(lora_dir / "nothing.safetensors")

    done = threading.Event()
    reader = threading.Thread(target=lambda: (library.indexer.scan(), done.set()), daemon=True)
    reader.start()
    assert done.wait(60), "the scan blocked (a FIFO was opened)"
    report = library.indexer.scan()
    assert report.files == 2
    lines = dict(line.split(": ", 1) for line in report.skipped)
    assert "FIFO" in lines[str(lora_dir / "pipe.safetensors")]
    assert "folder" in lines[str(lora_dir / "folder.safetensors")]
    assert "not there" in lines[str(lora_dir / "gone.safetensors")]
    assert "3 skipped" in report.summary() and "pipe.safetensors" in report.summary()

    code, out = run_cli(library, capsys, "scan", "--json")
    assert code == 0 and len(json.loads(out)["skipped"]) == 3
    code, out = run_cli(library, capsys, "scan")
    assert "3 skipped" in out
    assert library.indexer.scan_in_background()
    wait_for_scan(library)
    with rest_client(library) as client:
        status = client.get("/lora-manager/v1/scan/status").json()
    assert len(status["last_report"]["skipped"]) == 3 and "3 skipped" in status["message"]


# --- a background scan that fails ---------------------------------------------------------------


def test_a_failed_background_scan_says_so(library, lora_dir, monkeypatch, caplog):
    from lib_lora_manager.ui.library_tab import LibraryTab

    make_lora(lora_dir, "good", seed=1)

    def broken(*_args, **_kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(scanner, "_load_index", broken)
    caplog.set_level(logging.ERROR, logger="lora_manager")
    assert library.indexer.scan_in_background()
    wait_for_scan(library)
    status = library.indexer.status
    assert status.error == "RuntimeError: the disk went away" and not status.running
    assert status.message == "scan failed: RuntimeError: the disk went away"
    assert any(r.exc_info and "scan failed" in r.getMessage() for r in caplog.records)
    with rest_client(library) as client:
        assert client.get("/lora-manager/v1/scan/status").json()["error"] == "RuntimeError: the disk went away"
    values = {s.key: s.default for s in settings.SETTINGS}
    tab = LibraryTab(lambda: library, HostInfo(name="test", setting=values.__getitem__))
    assert "scan failed: RuntimeError: the disk went away" in tab.stats()

    monkeypatch.undo()
    library.indexer.scan()
    assert library.indexer.status.error is None and library.indexer.status.message.startswith("last scan")


# --- the data folder over HTTP ----------------------------------------------------------------


@contextmanager
def serving_port(app):
    """The app's port on a real local server: requests go over real HTTP with their paths as
    written (clients like httpx would remove '..' first)."""
    with serving(app) as url:
        yield int(url.rsplit(":", 1)[1])


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", urllib.parse.quote(path, safe="/=:"))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def refused_everywhere(port: int, urls: list[str]) -> None:
    for url in urls:
        status, body = raw_get(port, url)
        assert status in (403, 404), f"{url} was served"
        assert b"SQLite" not in body and b"secret" not in body, url


def test_the_standalone_server_never_serves_the_data_folder(tmp_path, monkeypatch):
    from lib_lora_manager.hosts.standalone import build_app

    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # serve --data-dir ./data, run from here
    make_lora(tmp_path / "loras", "good", seed=1)
    (tmp_path / "sub").mkdir()
    (tmp_path / "style.css").write_text("body {}")
    lib = Library.open("data", roots=[str(tmp_path / "loras")], hashing=False)
    try:
        data = tmp_path / "data"
        (data / "trash").mkdir()
        (data / "trash" / "secret.txt").write_text("secret")
        (tmp_path / "innocent").symlink_to(data)
        values = {s.key: s.default for s in settings.SETTINGS}
        app = build_app(lib, HostInfo(name="standalone", setting=values.__getitem__))
        with serving_port(app) as port:
            assert raw_get(port, "/file=style.css")[0] == 200  # the route itself still works
            refused_everywhere(port, [
                "/file=data/lora_manager.db", f"/file={data}/lora_manager.db", f"/file={data}/../data/lora_manager.db",
                f"/file={tmp_path}/sub/../data/lora_manager.db", "/file=sub/../data/lora_manager.db",
                "/file=innocent/lora_manager.db", "/file=./data/trash/secret.txt", "/file/data/lora_manager.db",
                f"/file={data}/trash/secret.txt"])
    finally:
        lib.close()


def test_sdnext_never_serves_our_data_folder(sdnext):
    double = sdnext()
    host = sys.modules["lib_lora_manager.hosts.sdnext"]
    library = host.app.library()
    try:
        data = Path(library.store.data_dir)
        (data / "trash").mkdir(exist_ok=True)
        (data / "trash" / "secret.txt").write_text("secret")
        (double.data_dir / "params.txt").write_text("SDNext's own file")
        with serving_port(double.app) as port:
            # SDNext's data folder is served (its allowed path); ours inside it is not
            assert raw_get(port, f"/file={double.data_dir}/params.txt")[0] == 200
            refused_everywhere(port, [
                f"/file={data}/lora_manager.db", f"/file={data}/trash/secret.txt",
                f"/file={double.data_dir}/x/../data/lora-manager/lora_manager.db",
                f"/file/{data}/lora_manager.db"])
    finally:
        library.close()
