"""Generation history storage: records, LoRA resolution, use counts and the history query keys."""

from __future__ import annotations

import time

import pytest
from factories import make_lora, migrate_to

from lib_lora_manager.errors import InvalidInput, NotFound
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.models import Generation


def record(prompt: str, started_at: float, **kw) -> GenerationRecord:
    return GenerationRecord(started_at=started_at, status=kw.pop("status", "succeeded"), prompt=prompt,
                            loras=GenerationRecord.loras_from_prompt(prompt), **kw)


def test_generations_resolve_loras_and_count_uses(library, lora_dir):
    make_lora(lora_dir / "styles", "anime_style", seed=1)
    make_lora(lora_dir, "detail", "sdxl", seed=2)
    make_lora(lora_dir, "idle", seed=3)
    library.indexer.scan()
    now = time.time()
    first = library.history.record(record("a castle <lora:anime_style:0.8> <lora:detail:te=0.5:unet=1>", now - 86400 * 40,
                                             seeds=[1, 2], width=512, height=512, steps=20, sampler="Euler a",
                                             cfg_scale=6.0, images=[GeneratedImage(path="/out/1.png", seed=1)]))
    library.history.record(record("again <lora:anime_style:1> <lora:gone_lora:0.5>", now - 60))

    with library.store.db.read() as session:
        gen = session.get(Generation, first)
        assert [(u.name, u.te_weight, u.unet_weight, bool(u.lora_id)) for u in gen.loras] == [
            ("anime_style", 0.8, 0.8, True), ("detail", 0.5, 1.0, True)]
        assert [i.path for i in gen.images] == ["/out/1.png"] and gen.seeds == "[1, 2]"
        second = session.query(Generation).order_by(Generation.id.desc()).first()
        assert [(u.name, u.lora_id) for u in second.loras][1] == ("gone_lora", None)  # unknown: kept by name

    assert [i.filename for i in library.search("sort:-uses").items][0] == "anime_style.safetensors"
    assert [i.filename for i in library.search("used:never").items] == ["idle.safetensors"]
    assert [i.filename for i in library.search("used:<7d").items] == ["anime_style.safetensors"]
    assert [i.filename for i in library.search("used:>30d").items] == ["detail.safetensors"]
    assert [i.filename for i in library.search("uses:>=2").items] == ["anime_style.safetensors"]
    assert [i.filename for i in library.search("sort:-used").items][:2] == ["anime_style.safetensors", "detail.safetensors"]
    assert library.search("sort:-used").items[-1].filename == "idle.safetensors"  # never used: last
    assert "never used" in library.search("used:never").description


def test_record_rejects_unknown_status(library):
    with pytest.raises(InvalidInput):
        library.history.record(GenerationRecord(started_at=time.time(), status="exploded"))


def test_upgrading_a_0001_database_keeps_the_library(tmp_path, lora_dir):
    """A library made by the first schema migrates to the history schema with its data."""
    from lib_lora_manager.db import Database, sqlite_url
    from lib_lora_manager.library import Library

    data = tmp_path / "data"
    data.mkdir()
    db = Database(sqlite_url(data / "lora_manager.db"))
    migrate_to(db, "0001")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO loras (path, root, relpath, folder, filename, stem, sdnext_name, sort_name, format, size, "
            "mtime_ns, mtime, added_at, scanned_at, missing, base_model_detected, base_model_source, adapter_type, "
            "base_model, favorite, nsfw, search_text, updated_at, rating) VALUES ('/x/old.safetensors', '/x', "
            "'old.safetensors', '', 'old.safetensors', 'old', 'old', 'old', 'safetensors', 1, 1, 0, 0, 0, 0, 'sd1', "
            "'metadata', 'lora', 'sd1', 1, 0, 'old', 0, 5)")
    db.dispose()

    library = Library.open(str(data), roots=[str(lora_dir)])
    try:
        item = library.search("").items[0]
        assert (item.filename, item.rating, item.favorite) == ("old.safetensors", 5, True)
        assert library.search("used:never").total == 1
        assert list(data.glob("lora_manager.db.before-0001-*.bak"))
    finally:
        library.close()


def test_recorder_hands_records_to_its_own_thread(library, lora_dir):
    import threading

    from lib_lora_manager.history import Recorder

    make_lora(lora_dir, "busy", seed=1)
    library.indexer.scan()
    stored_on = []

    def store(rec):
        stored_on.append(threading.current_thread().name)
        return library.history.record(rec)

    recorder = Recorder(store)
    now = time.time()
    workers = [threading.Thread(target=lambda: [recorder.submit(record("x <lora:busy:1>", now)) for _ in range(10)])
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert recorder.flush()
    recorder.close()
    assert library.search("busy").items[0].filename == "busy.safetensors"
    assert library.search("uses:30").total == 1
    assert set(stored_on) == {"lora-manager-history"}


def test_recorder_logs_a_failed_record_and_goes_on(library, caplog):
    from lib_lora_manager.history import Recorder

    recorder = Recorder(library.history.record)
    recorder.submit(GenerationRecord(started_at=time.time(), status="exploded"))  # refused by the store
    recorder.submit(GenerationRecord(started_at=time.time(), status="succeeded", prompt="fine"))
    assert recorder.flush()
    recorder.close()
    assert "could not be recorded" in caplog.text
    with library.store.db.read() as session:
        assert [g.prompt for g in session.query(Generation)] == ["fine"]


def test_recorder_survives_a_bug_in_its_store(caplog):
    from lib_lora_manager.history import Recorder

    stored = []

    def store(item):
        if item == "bug":
            raise KeyError("a bug")
        stored.append(item)

    recorder = Recorder(store)
    for item in ("first", "bug", "after"):
        recorder.submit(item)
    assert recorder.flush(5)
    recorder.close()
    assert stored == ["first", "after"]
    assert "KeyError" in caplog.text


def test_recorder_waits_out_a_database_another_process_keeps_busy(tmp_path, lora_dir, monkeypatch):
    """A write that stays busy past the retry bound is tried again later, not dropped."""
    import sqlite3
    import threading

    from lib_lora_manager import db as db_module
    from lib_lora_manager.history import Recorder
    from lib_lora_manager.library import Library

    monkeypatch.setattr(db_module, "BUSY_TIMEOUT", 0.2)
    monkeypatch.setattr(db_module, "RETRY_FOR", 0.5)
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    lib = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)])
    other = sqlite3.connect(tmp_path / "data" / "lora_manager.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writes for longer than a write is retried
    threading.Timer(1.2, lambda: other.execute("COMMIT")).start()
    recorder = Recorder(lib.history.record)
    try:
        recorder.submit(GenerationRecord(started_at=time.time(), status="succeeded", prompt="kept"))
        assert recorder.flush(20)
        with lib.store.db.read() as session:
            assert [g.prompt for g in session.query(Generation)] == ["kept"]
    finally:
        recorder.close()
        other.close()
        lib.close()


# --- History: images, deletion and re-run requests -------------------------------------------


def _png(path, colour=(255, 0, 0), size=(300, 200)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_thumbnails_are_cached_by_file_state(library, tmp_path):
    import os

    image = _png(tmp_path / "out" / "one.png")
    gid = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded",
                                                     images=[GeneratedImage(path=image, seed=1)]))
    first = library.history.thumbnail(gid, 0, 64)
    assert first.startswith(library.store.data_dir) and first.endswith(".jpg")
    assert library.history.thumbnail(gid, 0, 64) == first
    os.utime(image, ns=(1, 1))  # the file changed: a new thumbnail, the stale one goes
    second = library.history.thumbnail(gid, 0, 64)
    assert second != first and os.path.exists(second) and not os.path.exists(first)
    with pytest.raises(NotFound):
        library.history.thumbnail(gid, 1, 64)
    with pytest.raises(InvalidInput, match="^image number must be between 0 and 100000, not -1$"):  # as REST says it
        library.history.image_file(gid, -1)
    (tmp_path / "out" / "bad.png").write_bytes(b"not an image")
    bad = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded",
                                                     images=[GeneratedImage(path=str(tmp_path / "out" / "bad.png"))]))
    with pytest.raises(InvalidInput, match="cannot be read"):
        library.history.thumbnail(bad, 0, 64)


def test_delete_spares_shared_files_and_non_images_and_drops_our_copies(library, tmp_path):
    import os

    shared = _png(tmp_path / "out" / "shared.png")
    own = _png(tmp_path / "out" / "own.png")
    notes = tmp_path / "out" / "notes.txt"
    notes.write_text("keep me")
    copy = _png(tmp_path / "data" / "history-copies" / "copy.png")  # our own copy (host did not save)
    gid = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", images=[
        GeneratedImage(path=shared), GeneratedImage(path=own), GeneratedImage(path=str(notes)),
        GeneratedImage(path=None, thumbnail=copy)]))
    other = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded",
                                                       images=[GeneratedImage(path=shared)]))
    thumb = library.history.thumbnail(gid, 1, 64)
    assert library.history.image_file(gid, 3) == copy  # no host file: our copy is served

    result = library.history.delete(gid, delete_files=True)
    assert result.deleted_files == [own, copy]
    assert result.kept_files == {shared: f"generation {other} records it too", str(notes): "not an image file"}
    assert os.path.exists(shared) and notes.exists() and not os.path.exists(own) and not os.path.exists(thumb)
    with pytest.raises(NotFound):
        library.history.detail(gid)
    assert library.history.detail(other).images[0].exists


def test_rerun_request_comes_from_fields_then_the_infotext(library):
    infotext = ("a knight <lora:x:1>\nNegative prompt: ugly\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 99, "
                "Size: 768x512, Second pass: True, Hires upscale: 1.5, Hires upscaler: Latent, Hires steps: 12, "
                "Denoising strength: 0.4")
    from_infotext = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded",
                                                               prompt="a knight <lora:x:1>", infotext=infotext))
    request = library.history.request(from_infotext)
    assert (request.seed, request.steps, request.sampler_name, request.cfg_scale, request.width, request.height) == (
        99, 30, "Euler a", 7.0, 768, 512)
    assert (request.enable_hr, request.hr_scale, request.hr_upscaler, request.hr_second_pass_steps,
            request.denoising_strength) == (True, 1.5, "Latent", 12, 0.4)
    assert request.negative_prompt == "ugly"
    batch = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="p",
                                                       seeds=[7, 8, 9], steps=10))
    assert (library.history.request(batch).seed, library.history.request(batch).n_iter) == (7, 3)
    seedless = library.history.record(GenerationRecord(started_at=time.time(), status="failed", prompt="p"))
    with pytest.raises(InvalidInput, match="no recorded seed"):
        library.history.request(seedless)
    odd = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="p",
                                                     seeds=[1], steps=0))
    assert library.history.request(odd).steps == 20  # 0 means not recorded: the request's default
    huge = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="p",
                                                      seeds=[1], width=9000, height=512))
    with pytest.raises(InvalidInput, match="cannot be repeated: width"):
        library.history.request(huge)


def test_upgrading_a_0003_database_makes_old_prompts_searchable(tmp_path, lora_dir):
    from lib_lora_manager.db import Database, sqlite_url
    from lib_lora_manager.library import Library

    data = tmp_path / "data"
    data.mkdir()
    db = Database(sqlite_url(data / "lora_manager.db"))
    migrate_to(db, "0003")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO generations (started_at, status, prompt, negative_prompt, favorite) "
            "VALUES (1, 'succeeded', 'An ÉLAN of Castles', 'Blurry', 0)")
    db.dispose()

    library = Library.open(str(data), roots=[str(lora_dir)])
    try:
        assert library.history.search("élan castle").total == 1
        assert library.history.search("blurry").total == 1
        new = library.history.record(GenerationRecord(started_at=2, status="succeeded", prompt="ÉLAN again"))
        assert [i.id for i in library.history.search("élan").items] == [new, 1]
    finally:
        library.close()
