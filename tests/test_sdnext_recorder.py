"""The history of every SDNext generation (the test double in tests/sdnext): SDNext's own tabs,
its API, scripts nesting process_images, failures, and our jobs, recorded through the
before/after-process hooks and stored off the generating thread."""

from __future__ import annotations

import logging
import os
import sys

import pytest
from factories import make_lora
from PIL import Image
from sqlalchemy.exc import OperationalError

from lib_lora_manager.generation import GenerationRequest
from lib_lora_manager.models import Generation


def host():
    return sys.modules["lib_lora_manager.hosts.sdnext"]


@pytest.fixture
def double(sdnext, tmp_path, monkeypatch):
    """SDNext (double) with an SDXL model, two LoRAs in its LoRA folder, scanned into our library."""
    monkeypatch.chdir(tmp_path)
    lora_dir = tmp_path / "models" / "Lora"
    make_lora(lora_dir, "castle_style", "sdxl", seed=1)
    make_lora(lora_dir / "people", "knight", "sdxl", seed=2)
    started = sdnext(settings={"lora_manager_scan_on_start": False}, model="sdxl")
    host().app.library().indexer.scan()
    yield started
    host().app.pause()
    host().app.library().close()


def generations():
    """Every stored generation, oldest first (after the recorder stored what was pending)."""
    assert host().app.recorder().flush(10)
    with host().app.library().store.db.read() as session:
        rows = session.query(Generation).order_by(Generation.id).all()
        return [{
            "status": g.status, "source": g.source, "prompt": g.prompt, "error": g.error, "seeds": g.seeds,
            "model": g.model_name, "hash": g.model_hash, "infotext": g.infotext, "group": g.group_key, "label": g.label,
            "loras": [(u.name, u.te_weight, u.lora_id) for u in g.loras],
            "images": [(i.path, i.thumbnail, i.seed) for i in g.images],
        } for g in rows]


PROMPT = "a knight <lora:knight:0.7>, castle <lora:castle_style:te=0.5:unet=1>"


def test_txt2img_tab_generation_is_recorded_with_files_model_and_loras(double, tmp_path):
    images, _js, _info, _comments = double.txt2img(PROMPT, steps=3, width=64, height=64, seed=11, batch_size=2)
    assert len(images) == 3  # the grid, then two images
    [record] = generations()
    assert record["status"] == "succeeded" and record["source"] == "txt2img" and record["prompt"] == PROMPT
    ids = {n: host().app.library().find(n).id for n in ("knight", "castle_style")}
    assert record["loras"] == [("knight", 0.7, ids["knight"]), ("castle_style", 0.5, ids["castle_style"])]
    info_obj = double.shared.sd_model.sd_checkpoint_info
    assert record["model"] == "sdxl_base" and record["hash"] == info_obj.shorthash
    assert record["seeds"] == "[11, 12]" and record["infotext"] == images[1].info["parameters"]  # the first image's, not the grid's
    assert [(os.path.dirname(p), thumb, seed) for p, thumb, seed in record["images"]] == [
        (str(tmp_path / "outputs" / "text"), None, 11), (str(tmp_path / "outputs" / "text"), None, 12)]
    assert all(os.path.isfile(p) for p, _t, _s in record["images"])


def test_use_counts_follow_recorded_generations(double):
    double.txt2img("a knight <lora:knight:1>", steps=2, width=64, height=64)
    generations()
    assert host().app.library().find("knight").use_count == 1
    assert host().app.library().find("castle_style").use_count == 0


def test_api_generation_without_saving_gets_our_thumbnails(double):
    processed = double.api_txt2img("api castle <lora:castle_style:1>", steps=2, width=96, height=64, seed=5, n_iter=2)
    assert len(processed.images) == 2 and not hasattr(processed.images[0], "already_saved_as")
    [record] = generations()
    assert record["source"] == "api" and record["status"] == "succeeded"
    assert [(p, s) for p, _t, s in record["images"]] == [(None, 5), (None, 6)]
    thumbnails = [t for _p, t, _s in record["images"]]
    assert all(t.startswith(os.path.join(host().data_dir(), "thumbnails")) for t in thumbnails)
    with Image.open(thumbnails[0]) as thumb:
        assert thumb.size == (96, 64)  # small images stay as they are
    with Image.open(thumbnails[0]) as a, Image.open(thumbnails[1]) as b:
        assert a.tobytes() != b.tobytes()


def test_a_thumbnail_that_cannot_be_written_still_leaves_the_record(double):
    """Our thumbnails folder cannot be made (a file is in its place): the generation is recorded
    without a thumbnail, and the log says why."""
    with open(os.path.join(host().data_dir(), "thumbnails"), "w") as blocker:
        blocker.write("not a folder")
    double.api_txt2img("api castle", steps=2, width=64, height=64, seed=5)
    [record] = generations()
    assert record["status"] == "succeeded" and record["images"] == [(None, None, 5)]
    assert any("no thumbnail for a generated image" in w for w in double.module("logger").warnings())


def nesting_script(double, crash=None):
    """An AlwaysVisible script whose process_images hook runs a generation of its own first
    (face fixers and similar extensions do this); ``crash`` makes the inner one raise."""
    from modules import processing, shared

    class Nesting(double.module("scripts_manager").Script):
        args_from, args_to, filename = 1, 2, "nesting.py"

        def title(self):
            return "Nesting"

        def process_images(self, p, enabled):  # pylint: disable=arguments-differ
            if not enabled or getattr(p, "inner", False):
                return None
            inner = processing.StableDiffusionProcessingTxt2Img(prompt="inner <lora:knight:0.3>", steps=2, width=64, height=64,
                                                                do_not_save_samples=True)
            inner.inner = True
            shared.sd_model.crash = crash
            try:
                processing.process_images(inner)
            finally:
                shared.sd_model.crash = None
            return None  # the outer generation goes on with its own pipeline run

    return Nesting()


@pytest.mark.parametrize("crash, inner_status", [(None, "succeeded"), (KeyError("detector"), "failed")])
def test_nested_process_images_calls_are_two_records(double, crash, inner_status):
    runner = double.module("scripts_manager").scripts_txt2img
    runner.alwayson_scripts.append(nesting_script(double, crash))
    images, *_ = double.txt2img("outer <lora:castle_style:1>", steps=2, width=64, height=64, script_args=(0, True))
    runner.alwayson_scripts.clear()
    assert len(images) == 1
    inner, outer = generations()
    assert (inner["prompt"], inner["status"], inner["source"]) == ("inner <lora:knight:0.3>", inner_status, "txt2img")
    assert (outer["prompt"], outer["status"]) == ("outer <lora:castle_style:1>", "succeeded")
    assert len(outer["images"]) == 1 and outer["images"][0][0] is not None
    if crash is not None:
        assert inner["error"] == "KeyError: 'detector'" and inner["images"] == []
    else:
        assert len(inner["images"]) == 1 and inner["images"][0][1] is not None  # not saved: thumbnail


def test_exception_in_a_generation_is_recorded_as_failed(double):
    double.pipeline.crash = RuntimeError("VAE decode exploded")
    with pytest.raises(RuntimeError):
        double.api_txt2img("boom", steps=2, width=64, height=64)
    [record] = generations()
    assert record["status"] == "failed" and record["error"] == "RuntimeError: VAE decode exploded"
    assert record["source"] == "api" and record["images"] == []


def test_pipeline_error_in_a_tab_is_failed_and_a_stop_is_interrupted(double):
    double.pipeline.failure = ValueError("shape mismatch")
    double.txt2img("broken", steps=3, width=64, height=64)
    double.pipeline.failure = None
    double.pipeline.step_time = 0.01

    from modules import shared
    original = shared.sd_model.__class__.__call__

    def stopped_by_user(pipe, *args, **kwargs):
        shared.state.interrupt()  # the Stop button, while sampling
        return original(pipe, *args, **kwargs)

    shared.sd_model.__class__.__call__ = stopped_by_user
    try:
        double.txt2img("stopped", steps=3, width=64, height=64)
    finally:
        shared.sd_model.__class__.__call__ = original
    broken, stopped = generations()
    assert broken["status"] == "failed" and "shape mismatch" in broken["error"] and broken["images"] == []
    assert stopped["status"] == "interrupted" and stopped["error"] is None


def test_no_generation_is_recorded_when_sdnext_has_no_model(sdnext, tmp_path, monkeypatch):
    """process_images returns before its callbacks without a model; our own job records it."""
    monkeypatch.chdir(tmp_path)
    double = sdnext(settings={"lora_manager_scan_on_start": False})
    try:
        assert double.txt2img("x")[3].startswith("Error: model not loaded")
        host().app.generator().generate(GenerationRequest(prompt="ours <lora:knight:1>", group="g1", label="w=1"),
                                        lambda _p: None)
        [record] = generations()
        assert (record["status"], record["source"], record["group"], record["label"]) == ("no_model", "lora-manager", "g1", "w=1")
        assert record["loras"] == [("knight", 1.0, None)]
    finally:
        host().app.pause()
        host().app.library().close()


def test_our_jobs_are_recorded_once_with_their_group_label_and_status(double):
    generator = host().app.generator()
    outcome = generator.generate(GenerationRequest(prompt="ours <lora:knight:0.4>", steps=2, width=64, height=64, seed=3,
                                                   group="sweep-1", label="knight 0.4"), lambda _p: None)
    double.pipeline.failure = RuntimeError("out of memory")
    generator.generate(GenerationRequest(prompt="ours again", steps=2, width=64, height=64, group="sweep-1", label="b"), lambda _p: None)
    first, second = generations()
    assert (first["status"], first["source"], first["group"], first["label"]) == ("succeeded", "lora-manager", "sweep-1", "knight 0.4")
    assert first["images"] == [(outcome.images[0].path, None, 3)]
    assert second["status"] == "failed" and "out of memory" in second["error"]


def test_a_failing_store_never_reaches_process_images(double, monkeypatch, caplog):
    def broken_store(_record):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(host().app.library().history, "record", broken_store)
    with caplog.at_level(logging.ERROR, logger="lora_manager"):
        images, *_ = double.txt2img("still fine", steps=2, width=64, height=64)
        assert host().app.recorder().flush(10)
    assert len(images) == 1
    assert "could not be recorded" in caplog.text and "database is locked" in caplog.text


def test_an_unrecordable_generation_is_logged_not_raised(double, caplog):
    """A script leaving odd values on p breaks our record, never SDNext's generation."""
    class Odd(double.module("scripts_manager").Script):
        args_from, args_to, filename = 1, 2, "odd.py"

        def title(self):
            return "Odd"

        def postprocess(self, p, processed, enabled):  # pylint: disable=arguments-differ,unused-argument
            p.all_seeds = ["not a seed"]

    runner = double.module("scripts_manager").scripts_txt2img
    runner.alwayson_scripts.append(Odd())
    with caplog.at_level(logging.ERROR, logger="lora_manager"):
        images, *_ = double.txt2img("odd", steps=2, width=64, height=64, script_args=(0, True))
    runner.alwayson_scripts.clear()
    assert len(images) == 1 and double.displayed == []
    assert "could not be recorded" in caplog.text and "ValueError" in caplog.text
    assert generations() == []


def test_recording_hooks_never_read_an_unloaded_model(double):
    double.unload_model()
    double.load_model("sd15", "sd")  # loaded again, then the hooks read it freely
    double.txt2img("fine", steps=2, width=64, height=64)
    double.unload_model()
    requests_before = list(double.model_requests)
    recording = host()._recording  # noqa: SLF001  (the hooks themselves, outside process_images)
    p = double.module("processing").StableDiffusionProcessingTxt2Img(prompt="never ran")
    recording.before(p)
    recording.after(p)
    assert double.model_requests == requests_before
    records = generations()
    assert [r["model"] for r in records] == ["sd15", None]


def test_a_name_two_files_share_resolves_to_the_file_sdnext_loaded(sdnext, tmp_path, monkeypatch):
    """Two files named knight: our library cannot tell which one "<lora:knight>" means, SDNext
    picks one; the record points at the one SDNext loaded."""
    monkeypatch.chdir(tmp_path)
    lora_dir = tmp_path / "models" / "Lora"
    make_lora(lora_dir / "people", "knight", "sdxl", seed=2)
    make_lora(lora_dir / "old", "knight", "sdxl", seed=3)
    double = sdnext(settings={"lora_manager_scan_on_start": False}, model="sdxl")
    try:
        host().app.library().indexer.scan()
        double.txt2img("a knight <lora:knight:0.7>", steps=2, width=64, height=64, seed=1)
        from modules.lora import lora_common

        [loaded] = lora_common.loaded_networks
        expected = next(lora.id for lora in host().app.library().search("knight").items
                        if os.path.join(lora_dir, lora.relpath) == os.path.abspath(loaded.network_on_disk.filename))
        [record] = generations()
        assert record["loras"] == [("knight", 0.7, expected)]
    finally:
        host().app.pause()
        host().app.library().close()
