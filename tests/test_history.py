"""Generation history storage: records, LoRA resolution, use counts and the history query keys."""

from __future__ import annotations

import time

import pytest
from factories import database_url, library, lora_dir, make_lora  # noqa: F401

from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.models import Generation


def record(prompt: str, started_at: float, **kw) -> GenerationRecord:
    return GenerationRecord(started_at=started_at, status=kw.pop("status", "succeeded"), prompt=prompt,
                            loras=GenerationRecord.loras_from_prompt(prompt), **kw)


def test_generations_resolve_loras_and_count_uses(library, lora_dir):
    make_lora(lora_dir / "styles", "anime_style", seed=1)
    make_lora(lora_dir, "detail", "sdxl", seed=2)
    make_lora(lora_dir, "idle", seed=3)
    library.scan()
    now = time.time()
    first = library.record_generation(record("a castle <lora:anime_style:0.8> <lora:detail:te=0.5:unet=1>", now - 86400 * 40,
                                             seeds=[1, 2], width=512, height=512, steps=20, sampler="Euler a",
                                             cfg_scale=6.0, images=[GeneratedImage(path="/out/1.png", seed=1)]))
    library.record_generation(record("again <lora:anime_style:1> <lora:gone_lora:0.5>", now - 60))

    with library.db.read() as session:
        gen = session.get(Generation, first)
        assert [(u.name, u.te_weight, u.unet_weight, bool(u.lora_id)) for u in gen.loras] == [
            ("anime_style", 0.8, 0.8, True), ("detail", 0.5, 1.0, True)]
        assert [i.path for i in gen.images] == ["/out/1.png"] and gen.seeds == "[1, 2]"
        second = session.query(Generation).order_by(Generation.id.desc()).first()
        assert [(u.name, u.lora_id) for u in second.loras][1] == ("gone_lora", None)  # unknown: kept by name

    assert [i["filename"] for i in library.search("sort:-uses").items][0] == "anime_style.safetensors"
    assert [i["filename"] for i in library.search("used:never").items] == ["idle.safetensors"]
    assert [i["filename"] for i in library.search("used:<7d").items] == ["anime_style.safetensors"]
    assert [i["filename"] for i in library.search("used:>30d").items] == ["detail.safetensors"]
    assert [i["filename"] for i in library.search("uses:>=2").items] == ["anime_style.safetensors"]
    assert [i["filename"] for i in library.search("sort:-used").items][:2] == ["anime_style.safetensors", "detail.safetensors"]
    assert library.search("sort:-used").items[-1]["filename"] == "idle.safetensors"  # never used: last
    assert "never used" in library.search("used:never").description


def test_record_rejects_unknown_status(library):
    with pytest.raises(InvalidInput):
        library.record_generation(GenerationRecord(started_at=time.time(), status="exploded"))


def test_upgrading_a_0001_database_keeps_the_library(tmp_path, lora_dir):
    """A library made by the first schema migrates to the history schema with its data."""
    from alembic import command
    from alembic.config import Config

    from lib_lora_manager.db import MIGRATIONS_DIR, Database, sqlite_url
    from lib_lora_manager.library import Library

    data = tmp_path / "data"
    data.mkdir()
    db = Database(sqlite_url(data / "lora_manager.db"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
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
        assert (item["filename"], item["rating"], item["favorite"]) == ("old.safetensors", 5, True)
        assert library.search("used:never").total == 1
        assert list(data.glob("lora_manager.db.before-0001-*.bak"))
    finally:
        library.close()


def test_recorder_hands_records_to_its_own_thread(library, lora_dir):
    import threading

    from lib_lora_manager.history import Recorder

    make_lora(lora_dir, "busy", seed=1)
    library.scan()
    stored_on = []

    def store(rec):
        stored_on.append(threading.current_thread().name)
        return library.record_generation(rec)

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
    assert library.search("busy").items[0]["filename"] == "busy.safetensors"
    assert library.search("uses:30").total == 1
    assert set(stored_on) == {"lora-manager-history"}


def test_recorder_logs_a_failed_record_and_goes_on(library, caplog):
    from lib_lora_manager.history import Recorder

    recorder = Recorder(library.record_generation)
    recorder.submit(GenerationRecord(started_at=time.time(), status="exploded"))  # refused by the store
    recorder.submit(GenerationRecord(started_at=time.time(), status="succeeded", prompt="fine"))
    assert recorder.flush()
    recorder.close()
    assert "could not be recorded" in caplog.text
    with library.db.read() as session:
        assert [g.prompt for g in session.query(Generation)] == ["fine"]
