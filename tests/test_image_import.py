"""Importing images made before into the history: every format's metadata read from real files
written here (PNG text chunks, JPEG and WebP EXIF, ComfyUI, InvokeAI), hostile files, and the
importer's incremental runs on SQLite and PostgreSQL (the ``library`` fixture)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from factories import make_lora
from image_files import (
    A1111_INFOTEXT,
    SDNEXT_INFOTEXT,
    bomb_png,
    huge_text_chunk_png,
    png_bytes,
    write_comfyui_png,
    write_exif_image,
    write_invokeai_png,
    write_png,
)

from lib_lora_manager import cli, image_params
from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.image_params import UnreadableImage, read_generation

# --- reading metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("writer", [
    lambda p: write_png(p / "t.png", {"parameters": SDNEXT_INFOTEXT}),
    lambda p: write_png(p / "z.png", {"parameters": SDNEXT_INFOTEXT}, compressed="zTXt"),
    lambda p: write_png(p / "i.png", {"parameters": SDNEXT_INFOTEXT}, compressed="iTXt"),
    lambda p: write_png(p / "ip.png", {"parameters": SDNEXT_INFOTEXT}, compressed="iTXt-plain"),
    lambda p: write_png(p / "late.png", {"parameters": SDNEXT_INFOTEXT}, after_pixels=True),
    lambda p: write_exif_image(p / "le.jpg", SDNEXT_INFOTEXT),
    lambda p: write_exif_image(p / "be.jpg", SDNEXT_INFOTEXT, encoding="unicode-le", little_endian_tiff=False),
    lambda p: write_exif_image(p / "w.webp", SDNEXT_INFOTEXT),
    lambda p: write_exif_image(p / "wa.webp", SDNEXT_INFOTEXT, encoding="ascii", little_endian_tiff=False),
], ids=["tEXt", "zTXt", "iTXt", "iTXt-plain", "text-after-pixels", "jpeg-II", "jpeg-MM-utf16le", "webp", "webp-ascii"])
def test_an_sdnext_infotext_is_read_from_every_place_it_is_written(tmp_path, writer):
    found = read_generation(str(writer(tmp_path)))
    assert found.format == "infotext" and found.infotext == SDNEXT_INFOTEXT
    assert found.prompt.startswith("a castle on a hill") and found.negative_prompt == "blurry, lowres"
    assert (found.seed, found.steps, found.cfg_scale, found.sampler) == (1234, 20, 6.5, "DPM++ 2M")
    assert (found.width, found.height, found.model_name, found.model_hash) == (512, 768, "dreamshaper_8", "879db523c3")
    assert [(lora.name, lora.te_weight, lora.hash) for lora in found.loras] == [
        ("anime_style", 0.8, "aaaaaaaaaaaa"), ("detail_tweaker", 0.5, "bbbbbbbbbbbb")]  # LoRA hashes by LoRA networks


def test_a1111_lora_hashes_name_their_loras(tmp_path):
    found = read_generation(str(write_png(tmp_path / "a.png", {"parameters": A1111_INFOTEXT})))
    assert {lora.name: lora.hash for lora in found.loras} == {"unknown_lora": "0123456789ab", "anime_style": "ffffffffffff"}
    assert (found.model_name, found.model_hash, found.seed, found.width, found.height) == ("sd_xl_base_1.0", "31e35c80fc", 42, 768, 512)


def test_a_comfyui_graph_gives_its_loras_checkpoint_and_sampler(tmp_path):
    found = read_generation(str(write_comfyui_png(tmp_path / "c.png")))
    assert found.format == "comfyui"
    assert (found.prompt, found.negative_prompt) == ("a red fox in snow", "watermark")
    assert (found.seed, found.steps, found.cfg_scale, found.sampler) == (777, 25, 5.5, "euler")
    assert (found.width, found.height, found.model_name) == (1024, 1024, "sdxl/juggernaut.safetensors")
    assert [(lora.name, lora.unet_weight, lora.te_weight) for lora in found.loras] == [
        ("anime_style.safetensors", 0.9, 0.6), ("styles/ink_wash.safetensors", 0.4, 0.0)]


def test_a_comfyui_advanced_sampler_and_a_unet_loader(tmp_path):
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "flux/realism.safetensors", "strength_model": 0.8,
                                                             "model": ["1", 0]}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 12, "steps": 20, "cfg": 1.0, "sampler_name": "euler",
                                                          "positive": ["4", 0], "negative": ["5", 0], "model": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a harbour at night"}},
        "5": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["4", 0]}},
    }
    found = read_generation(str(write_comfyui_png(tmp_path / "flux.png", graph)))
    assert (found.model_name, found.seed, found.steps, found.prompt) == ("flux1-dev.safetensors", 12, 20, "a harbour at night")
    assert found.negative_prompt == ""  # zeroed conditioning, not the positive prompt it was made from
    assert [(lora.name, lora.unet_weight) for lora in found.loras] == [("flux/realism.safetensors", 0.8)]


def test_invokeai_metadata_gives_its_loras_and_model(tmp_path):
    found = read_generation(str(write_invokeai_png(tmp_path / "v.png")))
    assert found.format == "invokeai" and (found.prompt, found.negative_prompt) == ("a lighthouse at dusk", "people")
    assert (found.seed, found.steps, found.cfg_scale, found.model_name) == (99, 28, 4.5, "Juggernaut XL")
    assert [(lora.name, lora.te_weight, lora.unet_weight) for lora in found.loras] == [("detail_tweaker", 0.75, 0.75)]


def test_invokeai_3_names_its_loras_under_lora(tmp_path):
    metadata = {"positive_prompt": "a barn", "seed": 3, "model": {"model_name": "sd-1.5", "base_model": "sd-1"},
                "loras": [{"lora": {"model_name": "anime_style", "base_model": "sd-1"}, "weight": 0.5}],
                "created_at": "2024-05-01T12:30:00.123Z"}
    found = read_generation(str(write_invokeai_png(tmp_path / "v3.png", metadata)))
    assert (found.model_name, found.seed) == ("sd-1.5", 3)
    assert [(lora.name, lora.te_weight) for lora in found.loras] == [("anime_style", 0.5)]
    assert found.created_at == 1714566600.0  # 2024-05-01 12:30:00 UTC


def test_the_infotext_date_is_the_records_time(library, tmp_path):
    write_png(tmp_path / "imgs" / "a.png", {"parameters": "a barn\nSteps: 5, Seed: 1, Sampler: Euler, Date: 2024-05-01 12:30:00"})
    library.images.run([str(tmp_path / "imgs")])
    [generation] = _generations(library)
    assert generation.started_at == 1714566600.0


def test_an_image_without_metadata_has_no_generation(tmp_path):
    assert read_generation(str(write_png(tmp_path / "plain.png", {"Software": "GIMP"}))) is None
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.jpg")
    assert read_generation(str(tmp_path / "plain.jpg")) is None


@pytest.mark.parametrize("make, reason", [
    (lambda p: huge_text_chunk_png(p / "huge.png"), "100.0 MB is larger than"),
    (lambda p: bomb_png(p / "bomb.png"), "decompression bomb"),
    (lambda p: (p / "cut.png").write_bytes(png_bytes({"parameters": SDNEXT_INFOTEXT})[:60]), "truncated"),
    (lambda p: (p / "notes.png").write_text("hello"), "not a PNG, JPEG or WebP"),
    (lambda p: write_png(p / "bad.png", {"prompt": "{not json"}), "not valid JSON"),
    (lambda p: (p / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe1\x40\x00Exif\0\0II"), "truncated"),
    # 200,000 empty chunks (2.4 MB) before the pixels, the text after them
    (lambda p: (p / "chunks.png").write_bytes(png_bytes()[:33] + b"\0\0\0\0abCd\0\0\0\0" * 200_000 + png_bytes()[33:]),
     "more than 100,000 chunks"),
], ids=["100MB-chunk", "zTXt-bomb", "truncated-png", "text-as-png", "comfy-bad-json", "truncated-jpeg", "many-chunks"])
def test_hostile_files_raise_a_reason(tmp_path, make, reason):
    make(tmp_path)
    path = next(p for p in tmp_path.iterdir())
    with pytest.raises(UnreadableImage, match=reason):
        read_generation(str(path))


def test_the_compose_reader_still_reads_infotext_from_bytes(tmp_path):
    assert image_params.read_infotext(str(write_exif_image(tmp_path / "s.jpg", SDNEXT_INFOTEXT))) == SDNEXT_INFOTEXT
    with pytest.raises(InvalidInput, match="decompression bomb"):
        image_params.read_infotext(str(bomb_png(tmp_path / "b.png")))


# --- importing ----------------------------------------------------------------------------------


@pytest.fixture
def loras(library, lora_dir):
    """Two LoRAs in the library, indexed and hashed."""
    make_lora(lora_dir, "anime_style", seed=1)
    make_lora(lora_dir, "detail_tweaker", seed=2)
    library.indexer.scan()
    library.indexer.hash_pending()
    return {name: library.find(name) for name in ("anime_style", "detail_tweaker")}


def _generations(library):
    return sorted(library.history.search("", per_page=100).items, key=lambda g: g.id)


def test_images_become_imported_history_records_with_their_loras(library, loras, tmp_path):
    folder = tmp_path / "outputs"
    sdnext = write_png(folder / "text" / "00001.png", {"parameters": SDNEXT_INFOTEXT})
    os.utime(sdnext, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    write_exif_image(folder / "text" / "00002.jpg", A1111_INFOTEXT)
    write_comfyui_png(folder / "comfy" / "ComfyUI_0001.png")
    write_invokeai_png(folder / "invoke" / "a.png")
    # a LoRA known only by its hash: renamed since the image was made
    sha = loras["anime_style"].sha256
    write_png(folder / "renamed.png", {"parameters": "x <lora:old_name:0.6>\nSteps: 5, Seed: 3, "
                                                      f'Lora hashes: "old_name: {sha[:10]}"'})
    write_png(folder / "plain.png", {"Software": "GIMP"})

    report = library.images.run([str(folder)])
    assert (report.found, report.read, report.imported, report.skipped, report.errors) == (6, 6, 5, 1, 0)
    assert report.problems == {str(folder / "plain.png"): "no generation metadata"}

    items = {os.path.basename(g.images[0].path): g for g in _generations(library)}
    assert set(items) == {"00001.png", "00002.jpg", "ComfyUI_0001.png", "a.png", "renamed.png"}
    assert {g.source for g in items.values()} == {"imported"}
    first = items["00001.png"]
    assert first.started_at == 1_700_000_000.0  # the file's time (the infotext has none)
    assert (first.seed, first.steps, first.sampler, first.model, first.model_hash) == (1234, 20, "DPM++ 2M", "dreamshaper_8", "879db523c3")
    assert [(u.name, u.lora_id, u.te_weight) for u in first.loras] == [
        ("anime_style", loras["anime_style"].id, 0.8), ("detail_tweaker", loras["detail_tweaker"].id, 0.5)]
    a1111 = items["00002.jpg"]
    assert [(u.name, u.lora_id) for u in a1111.loras] == [("unknown_lora", None), ("anime_style", loras["anime_style"].id)]
    comfy = items["ComfyUI_0001.png"]
    assert [(u.name, u.lora_id, u.unet_weight, u.te_weight) for u in comfy.loras] == [
        ("anime_style.safetensors", loras["anime_style"].id, 0.9, 0.6), ("styles/ink_wash.safetensors", None, 0.4, 0.0)]
    assert [(u.name, u.lora_id) for u in items["a.png"].loras] == [("detail_tweaker", loras["detail_tweaker"].id)]
    assert [(u.name, u.lora_id) for u in items["renamed.png"].loras] == [("old_name", loras["anime_style"].id)]
    assert library.get(loras["anime_style"].id).use_count == 4
    detail = library.history.detail(first.id)
    assert detail.infotext == SDNEXT_INFOTEXT and detail.images[0].exists

    thumb = library.history.thumbnail(first.id)  # made when asked for, not at import
    assert os.path.isfile(thumb)


def test_a_second_run_reads_nothing_and_imports_nothing(library, tmp_path):
    folder = tmp_path / "imgs"
    for n in range(3):
        write_png(folder / f"{n}.png", {"parameters": SDNEXT_INFOTEXT})
    write_png(folder / "plain.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    first = library.images.run([str(folder)])
    assert (first.imported, first.skipped, first.errors) == (3, 1, 1)
    again = library.images.run([str(folder)])
    assert (again.found, again.read, again.imported, again.unchanged) == (5, 0, 0, 5)
    assert len(_generations(library)) == 3

    write_png(folder / "new.png", {"parameters": A1111_INFOTEXT})
    third = library.images.run([str(folder)])
    assert (third.read, third.imported) == (1, 1)


def test_a_moved_image_is_not_read_again_and_its_record_follows_it(library, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    old = write_png(folder / "day1" / "a.png", {"parameters": SDNEXT_INFOTEXT})
    library.images.run([str(folder)])
    (folder / "sorted").mkdir()
    new = folder / "sorted" / "a.png"
    shutil.move(old, new)
    read = []
    monkeypatch.setattr("lib_lora_manager.image_import.read_generation", lambda path: read.append(path))
    report = library.images.run([str(folder)])
    assert (report.moved, report.read, report.imported, report.missing) == (1, 0, 0, 0) and read == []
    [generation] = _generations(library)
    assert generation.images[0].path == str(new) and not generation.images[0].missing


def test_a_vanished_image_keeps_its_record_and_is_marked_missing(library, tmp_path):
    folder = tmp_path / "imgs"
    path = write_png(folder / "a.png", {"parameters": SDNEXT_INFOTEXT})
    kept, stat = path.read_bytes(), path.stat()
    library.images.run([str(folder)])
    path.unlink()
    report = library.images.run([str(folder)])
    assert report.missing == 1
    [generation] = _generations(library)
    assert generation.images[0].missing and not library.history.detail(generation.id).images[0].exists

    path.write_bytes(kept)  # back (restored from a backup): not missing any more, not imported twice
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = library.images.run([str(folder)])
    [generation] = _generations(library)
    assert (report.unchanged, report.imported, report.missing) == (1, 0, 0) and not generation.images[0].missing


def test_an_sdnext_output_the_recorder_stored_is_not_imported_twice(library, tmp_path):
    path = write_png(tmp_path / "outputs" / "text" / "00005-1234.png", {"parameters": SDNEXT_INFOTEXT})
    recorded = library.history.record(GenerationRecord(
        started_at=1.0, status="succeeded", source="txt2img", prompt="a castle",
        images=[GeneratedImage(path=str(path), seed=1234)]))
    report = library.images.run([str(tmp_path / "outputs")])
    assert (report.recorded, report.imported, report.read) == (1, 0, 0)
    assert [g.id for g in _generations(library)] == [recorded]
    assert library.images.run([str(tmp_path / "outputs")]).unchanged == 1


def test_hostile_files_are_reported_one_by_one_and_the_import_goes_on(library, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    huge_text_chunk_png(folder / "huge.png")
    bomb_png(folder / "bomb.png")
    (folder / "cut.png").write_bytes(png_bytes({"parameters": SDNEXT_INFOTEXT})[:60])
    (folder / "fake.jpg").write_text("<html>")
    xss = '<img src=x onerror=alert(1)> <lora:x:1>\nSteps: 5, Seed: 1, Sampler: Euler'
    write_png(folder / "xss.png", {"parameters": xss})
    report = library.images.run([str(folder)])
    assert (report.imported, report.errors) == (1, 4)
    assert set(report.problems) == {str(folder / n) for n in ("huge.png", "bomb.png", "cut.png", "fake.jpg")}
    assert "decompression bomb" in report.problems[str(folder / "bomb.png")]
    [generation] = _generations(library)
    assert generation.prompt_excerpt.startswith("<img src=x")  # stored as written; escaped where shown


def test_a_folder_that_is_not_there_is_an_error(library, tmp_path):
    with pytest.raises(InvalidInput, match="is not a folder"):
        library.images.run([str(tmp_path / "nope")])


def test_the_import_status_is_shared_through_the_database(library, tmp_path):
    write_png(tmp_path / "imgs" / "a.png", {"parameters": SDNEXT_INFOTEXT})
    library.images.run([str(tmp_path / "imgs")])
    status = library.images.shared_status()
    assert not status.running and status.last_report["imported"] == 1 and "1 image imported" in status.message


def test_another_process_sees_the_last_import(library, tmp_path, database_url):
    from lib_lora_manager.library import Library

    write_png(tmp_path / "imgs" / "a.png", {"parameters": SDNEXT_INFOTEXT})
    other = Library.open(library.store.data_dir, database_url=database_url)  # as the CLI opens it beside a server
    try:
        assert other.images.shared_status().last_report is None
        library.images.run([str(tmp_path / "imgs")])
        seen = other.images.shared_status()
        assert seen.last_report["imported"] == 1 and seen.message.startswith("last import: 1 image imported")
    finally:
        other.close()


def test_the_cli_prints_a_json_summary_and_a_second_run_imports_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    folder = tmp_path / "imgs"
    write_png(folder / "a.png", {"parameters": SDNEXT_INFOTEXT})
    write_png(folder / "b.png")
    args = ["import-images", str(folder), "--json", "--data-dir", str(tmp_path / "data")]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert {k: first[k] for k in ("read", "imported", "skipped", "errors")} == {"read": 2, "imported": 1, "skipped": 1, "errors": 0}
    assert cli.main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["read"], second["imported"], second["unchanged"]) == (0, 0, 2)
    assert cli.main(["import-images", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "data")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# --- REST -----------------------------------------------------------------------------------------


@pytest.fixture
def client(library):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_lora_manager import api

    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as c:
        yield c


def test_rest_starts_an_import_and_reports_its_status(client, library, tmp_path):
    import time

    folder = tmp_path / "imgs"
    write_png(folder / "a.png", {"parameters": SDNEXT_INFOTEXT})
    bomb_png(folder / "bomb.png")
    response = client.post("/lora-manager/v1/history/import", json={"paths": [str(folder)]})
    assert response.status_code == 202 and response.json()["started"] is True
    deadline = time.time() + 30
    while client.get("/lora-manager/v1/history/import/status").json()["running"] and time.time() < deadline:
        time.sleep(0.05)
    status = client.get("/lora-manager/v1/history/import/status").json()
    assert status["error"] is None and status["fraction"] == 1.0
    assert (status["last_report"]["imported"], status["last_report"]["errors"]) == (1, 1)
    assert "decompression bomb" in status["last_report"]["problems"][str(folder / "bomb.png")]
    assert client.get("/lora-manager/v1/history").json()["items"][0]["source"] == "imported"

    missing = client.post("/lora-manager/v1/history/import", json={"paths": [str(tmp_path / "nope")]})
    assert missing.status_code == 422 and "is not a folder" in missing.json()["error"]
    empty = client.post("/lora-manager/v1/history/import", json={"paths": []})
    assert empty.status_code == 422 and "too few" in empty.json()["error"]


# --- the History tab ------------------------------------------------------------------------------


def test_the_history_tab_imports_folders_and_escapes_what_files_say(library, tmp_path):
    from lib_lora_manager.hostinfo import HostInfo
    from lib_lora_manager.ui.history_tab import HistoryTab

    folder = tmp_path / "imgs"
    xss = '<img src=x onerror=alert(1)> castle\nSteps: 5, Seed: 1, Sampler: Euler'
    write_png(folder / "xss.png", {"parameters": xss})
    (folder / "<script>alert(2)<.script>.png").write_text("not an image")
    tab = HistoryTab(lambda: library, HostInfo("standalone"))

    html = tab.import_images(f"{folder}\n")
    assert "Import finished: 1 image imported." in html
    assert "<script>" not in html and "&lt;script&gt;alert(2)&lt;.script&gt;.png" in html
    assert "not a PNG, JPEG or WebP file" in html
    results = tab.search("", "", "Gallery")[0] + tab.search("", "", "Table")[0]
    assert "<img src=x" not in results and "&lt;img src=x onerror=alert(1)&gt;" in results
    assert "1 image imported" in tab.import_status()  # the last import, as a status

    assert "Give the folders" in tab.import_images("  ")
    assert "is not a folder" in tab.import_images(str(tmp_path / "nope"))
    assert "0 images imported" in tab.import_images(str(folder))  # nothing new


def test_the_default_folders_are_the_hosts_outputs_and_the_setting(tmp_path):
    from lib_lora_manager.hostinfo import HostInfo

    outputs, extra = tmp_path / "outputs" / "text", tmp_path / "old-a1111"
    outputs.mkdir(parents=True)
    values = {"lora_manager_image_folders": f"{extra};{outputs}"}
    host = HostInfo("sdnext", setting=values.get, output_folders=lambda: [str(outputs), str(tmp_path / "never-made")])
    assert host.image_folders() == [str(outputs), str(extra)]


def test_a_deleted_imported_record_is_not_imported_again(library, tmp_path):
    write_png(tmp_path / "imgs" / "a.png", {"parameters": SDNEXT_INFOTEXT})
    library.images.run([str(tmp_path / "imgs")])
    [generation] = _generations(library)
    library.history.delete(generation.id)  # the user removed it: the file stays remembered
    report = library.images.run([str(tmp_path / "imgs")])
    assert (report.unchanged, report.imported) == (1, 0) and _generations(library) == []


def test_a_file_name_that_is_not_utf8_is_imported_and_remembered(library, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9-latin1.png")  # as an old Windows share may hold it
    (folder / name).write_bytes(png_bytes({"parameters": SDNEXT_INFOTEXT}))
    assert library.images.run([str(folder)]).imported == 1
    [generation] = _generations(library)
    assert generation.images[0].path == str(folder / name)
    assert library.images.run([str(folder)]).unchanged == 1
