"""Importing images inside SDNext (the test double): SDNext's output folders from its settings,
the import after startup, and images the recorder stored not imported a second time."""

from __future__ import annotations

import os
import sys
import time

from image_files import A1111_INFOTEXT, SDNEXT_INFOTEXT, write_png


def host():
    return sys.modules["lib_lora_manager.hosts.sdnext"]


def wait_for_import(library, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = library.images.shared_status()
        if status.finished_at and not status.running:
            return status
        time.sleep(0.05)
    raise AssertionError("the startup import did not finish")


def test_output_folders_follow_sdnexts_settings(sdnext, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SDNext's folders are relative to its own folder, its working directory
    double = sdnext(settings={"lora_manager_scan_on_start": False, "lora_manager_import_images_on_start": False})
    try:
        assert host().output_folders() == [str(tmp_path / "outputs" / d) for d in ("text", "image", "control", "extras", "save")]
        double.opts.set("outdir_samples", str(tmp_path / "all"))  # a base folder: the others go inside it
        double.opts.set("outdir_save", str(tmp_path / "saved"))  # an absolute one stays where it is
        assert host().output_folders() == [
            *(str(tmp_path / "all" / "outputs" / d) for d in ("text", "image", "control", "extras")), str(tmp_path / "saved")]
    finally:
        host().app.library().close()


def test_images_are_imported_in_the_background_after_startup(sdnext, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = write_png(tmp_path / "outputs" / "text" / "00001-1234.png", {"parameters": SDNEXT_INFOTEXT})
    old = write_png(tmp_path / "a1111" / "outputs" / "txt2img-images" / "00007.png", {"parameters": A1111_INFOTEXT})
    an_hour_ago = time.time() - 3600
    for path in (made, old):
        os.utime(path, (an_hour_ago, an_hour_ago))
    # saved a moment ago: the recorder's to store (it may still be queued), left for a later import
    write_png(tmp_path / "outputs" / "text" / "00002-1235.png", {"parameters": SDNEXT_INFOTEXT})
    sdnext(settings={"lora_manager_scan_on_start": False, "lora_manager_image_folders": str(tmp_path / "a1111")})
    try:
        library = host().app.library()
        status = wait_for_import(library)
        assert status.error is None and status.last_report["imported"] == 2 and status.last_report["recent"] == 1
        paths = sorted(g.images[0].path for g in library.history.search("source:imported").items)
        assert paths == sorted([str(made), str(old)])
    finally:
        host().app.library().close()


def test_no_import_after_startup_when_turned_off(sdnext, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "outputs" / "text" / "00001.png", {"parameters": SDNEXT_INFOTEXT})
    sdnext(settings={"lora_manager_scan_on_start": False, "lora_manager_import_images_on_start": False})
    try:
        library = host().app.library()
        time.sleep(0.5)
        assert library.images.shared_status().started_at is None and library.history.search("").total == 0
    finally:
        host().app.library().close()


def test_images_the_recorder_stored_are_not_imported_again(sdnext, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    double = sdnext(settings={"lora_manager_scan_on_start": False, "lora_manager_import_images_on_start": False},
                    model="sdxl")
    try:
        images, *_ = double.txt2img("a castle", steps=2, width=64, height=64, seed=5, batch_size=2)
        assert host().app.recorder().flush(10)
        library = host().app.library()
        saved = [os.path.abspath(i.already_saved_as) for i in images[1:]]
        assert all(os.path.isfile(p) for p in saved)
        report = library.images.run(host().output_folders()[:1])
        assert (report.recorded, report.imported, report.read) == (2, 0, 0)
        assert library.history.search("").total == 1
    finally:
        host().app.pause()
        host().app.library().close()
