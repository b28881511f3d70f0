"""Our jobs inside SDNext (the test double in tests/sdnext): SdnextGenerator over SDNext's own
process_images, under its queue lock, with its files, infotext, progress and stop buttons."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from factories import make_lora
from PIL import Image

from lib_lora_manager.generation import GenerationRequest
from lib_lora_manager.statuses import GenerationStatus


def host():
    return sys.modules["lib_lora_manager.hosts.sdnext"]


@pytest.fixture
def sdnext_with_model(sdnext, tmp_path, monkeypatch):
    """SDNext (double) with an SDXL model loaded and its working folder in tmp_path, so its
    relative output folders (outputs/text...) land there."""
    monkeypatch.chdir(tmp_path)
    make_lora(tmp_path / "models" / "Lora", "castle_style", "sdxl", seed=1)
    double = sdnext(settings={"lora_manager_scan_on_start": False}, model="sdxl")
    yield double
    host().app.pause()
    host().app.library().close()


def request(**kw) -> GenerationRequest:
    values = dict(prompt="a castle <lora:castle_style:0.8>", steps=4, width=64, height=64, seed=7)
    values.update(kw)
    return GenerationRequest(**values)


def generate_in_thread(req, progress=None):
    """Start a generation on its own thread (as the job worker does); returns (thread, box)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("outcome", host().app.generator().generate(req, progress or (lambda _p: None))))
    thread.start()
    return thread, box


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def read_infotext(double, path):
    with Image.open(path) as image:
        return double.module("images").read_info_from_image(image)[0]


def test_generation_saves_where_sdnext_saves_txt2img_with_its_infotext(sdnext_with_model, tmp_path):
    double = sdnext_with_model
    outcome = host().app.generator().generate(request(batch_size=2, n_iter=2), lambda _p: None)
    assert outcome.status == GenerationStatus.SUCCEEDED, outcome.message
    assert [i.seed for i in outcome.images] == [7, 8, 9, 10]  # the grid SDNext puts first is left out
    txt2img = tmp_path / "outputs" / "text"
    for image in outcome.images:
        assert os.path.dirname(image.path) == str(txt2img) and os.path.isfile(image.path)
        text = read_infotext(double, image.path)
        assert text == image.infotext
        fields = double.module("infotext").parse(text)
        assert fields["Prompt"] == "a castle <lora:castle_style:0.8>"  # tokens kept for "send to txt2img"
        assert fields["LoRA networks"] == "castle_style" and fields["Seed"] == image.seed
        assert fields["Model"] == "sdxl_base" and fields["Size-1"] == 64
    pixels = {Image.open(i.path).convert("RGB").tobytes() for i in outcome.images}
    assert len(pixels) == 4  # four seeds, four different images
    assert (tmp_path / "outputs" / "grids").is_dir()  # SDNext saved the grid with its txt2img grids
    assert not double.module("call_queue").queue_lock.locked()
    assert double.state.job == "" and double.errors == []


def test_lora_weight_changes_the_image(sdnext_with_model):
    generator = host().app.generator()
    first = generator.generate(request(prompt="a castle <lora:castle_style:0.2>"), lambda _p: None)
    second = generator.generate(request(prompt="a castle <lora:castle_style:1.0>"), lambda _p: None)
    with Image.open(first.images[0].path) as a, Image.open(second.images[0].path) as b:
        assert a.tobytes() != b.tobytes()


def test_without_a_model_no_model_is_loaded_or_even_asked_for(sdnext, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    double = sdnext(settings={"lora_manager_scan_on_start": False})
    try:
        generator = host().app.generator()
        outcome = generator.generate(request(), lambda _p: None)
        assert outcome.status == GenerationStatus.NO_MODEL and "load one in SDNext" in outcome.message
        assert generator.model_family() is None and generator.model_name() is None
        # a loadable checkpoint, not loaded: reading shared.sd_model would load it
        double.load_model("sd15", "sd")
        double.unload_model()
        assert host().app.generator().generate(request(), lambda _p: None).status == GenerationStatus.NO_MODEL
        assert host().app.generator().model_family() is None
        assert double.model_requests == [] and double.model_loads == []
    finally:
        host().app.pause()
        host().app.library().close()


def test_user_interrupt_is_interrupted(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.step_time = 0.02
    seen = []
    thread, box = generate_in_thread(request(steps=200), seen.append)
    wait_until(lambda: any(p.step >= 3 for p in seen))
    assert host().app.generator().preview() is not None  # someone watches: SDNext decodes the latent
    host().app.generator().interrupt()
    thread.join(10)
    outcome = box["outcome"]
    assert outcome.status == GenerationStatus.INTERRUPTED and outcome.message == "interrupted"
    # SDNext keeps the last live preview as the incomplete image (keep_incomplete), and saves it
    assert len(outcome.images) == 1 and os.path.isfile(outcome.images[0].path) and "Seed: 7" in outcome.images[0].infotext
    assert double.pipeline.calls == 1 and not double.module("call_queue").queue_lock.locked()


def test_interrupt_lost_by_sdnext_state_reset_is_asked_again(sdnext_with_model):
    """SDNext's nested state.begin() calls reset the interrupt flag; the request must still win."""
    double = sdnext_with_model
    double.pipeline.step_time = 0.02
    seen = []
    thread, box = generate_in_thread(request(steps=100, n_iter=3), seen.append)
    wait_until(lambda: any(p.step >= 2 for p in seen))
    host().app.generator().interrupt()
    double.state.begin("Hash")  # what a background hash does meanwhile: the flag is gone
    double.state.end()
    thread.join(10)
    assert box["outcome"].status == GenerationStatus.INTERRUPTED
    assert double.pipeline.calls == 1  # no further batch ran


def test_pipeline_error_is_a_failure_not_an_interrupt(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.failure = RuntimeError("CUDA out of memory")
    double.pipeline.fail_at_step = 2
    outcome = host().app.generator().generate(request(), lambda _p: None)
    assert outcome.status == GenerationStatus.FAILED
    assert "the pipeline stopped with an error" in outcome.message and "CUDA out of memory" in outcome.message
    assert outcome.images == []
    assert any("CUDA out of memory" in e for e in double.errors)  # SDNext logged it, did not raise


def test_exception_from_sdnext_is_a_failure(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.crash = KeyError("vae")
    outcome = host().app.generator().generate(request(), lambda _p: None)
    assert outcome.status == GenerationStatus.FAILED and "KeyError" in outcome.message and "vae" in outcome.message
    assert not double.module("call_queue").queue_lock.locked() and double.state.job == ""
    double.pipeline.crash = None
    assert host().app.generator().generate(request(), lambda _p: None).status == GenerationStatus.SUCCEEDED  # nothing left stuck


def test_skip_moves_on_to_later_batches(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.step_time = 0.02
    seen = []
    thread, box = generate_in_thread(request(steps=40, n_iter=4), seen.append)
    wait_until(lambda: any(p.step >= 2 for p in seen))
    host().app.generator().skip()
    thread.join(20)
    outcome = box["outcome"]
    assert outcome.status == GenerationStatus.SUCCEEDED and outcome.message == "some batches were skipped"
    assert 1 <= len(outcome.images) < 4
    assert outcome.images[-1].seed == 10  # the last batch ran


def test_progress_reports_steps_and_batches(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.step_time = 0.05
    seen, previews = [], []

    def report(progress):
        seen.append(progress)
        if progress.step >= 2 and not previews:
            previews.append(host().app.generator().preview())  # as a watching UI asks

    outcome = host().app.generator().generate(request(steps=16, n_iter=2), report)
    assert outcome.status == GenerationStatus.SUCCEEDED
    assert len(seen) >= 4
    assert {p.steps for p in seen if p.step} == {16} and {p.batches for p in seen} == {2}
    assert max(p.step for p in seen) >= 6 and {p.batch for p in seen} >= {0, 1}
    # SDNext's live preview is decoded when asked, never by the progress reports themselves
    assert previews and isinstance(previews[0], Image.Image) and all(p.preview is None for p in seen)
    assert host().app.generator().preview() is None  # nothing runs
    assert all(0.0 <= p.fraction <= 1.0 for p in seen)


def test_queue_lock_is_held_while_generating_and_released_after(sdnext_with_model):
    double = sdnext_with_model
    double.pipeline.step_time = 0.03
    lock = double.module("call_queue").queue_lock
    held = []
    outcome = host().app.generator().generate(request(steps=12), lambda _p: held.append(lock.locked()))
    assert outcome.status == GenerationStatus.SUCCEEDED and held and all(held)
    assert not lock.locked()


def test_another_tab_holding_the_lock_makes_ours_wait(sdnext_with_model):
    double = sdnext_with_model
    lock = double.module("call_queue").queue_lock
    seen = []
    lock.acquire()  # SDNext's txt2img tab is generating
    try:
        thread, box = generate_in_thread(request(), seen.append)
        wait_until(lambda: seen)
        time.sleep(0.3)
        assert thread.is_alive() and double.pipeline.calls == 0
        assert "waiting" in seen[-1].text
    finally:
        lock.release()
    thread.join(10)
    assert box["outcome"].status == GenerationStatus.SUCCEEDED and double.pipeline.calls == 1


def test_cancel_while_waiting_for_the_lock_does_not_touch_the_other_generation(sdnext_with_model):
    double = sdnext_with_model
    lock = double.module("call_queue").queue_lock
    lock.acquire()
    try:
        seen = []
        thread, box = generate_in_thread(request(), seen.append)
        wait_until(lambda: seen)
        host().app.generator().interrupt()
        thread.join(5)
        assert box["outcome"].status == GenerationStatus.INTERRUPTED and box["outcome"].message == "cancelled before it started"
        assert double.state.interrupted is False  # the running tab's generation was left alone
    finally:
        lock.release()


def test_hires_fix_upscales_and_runs_a_second_pass(sdnext_with_model):
    double = sdnext_with_model
    outcome = host().app.generator().generate(request(enable_hr=True, hr_scale=2.0, hr_second_pass_steps=3,
                                                  denoising_strength=0.4, hr_upscaler="Resize Lanczos"), lambda _p: None)
    assert outcome.status == GenerationStatus.SUCCEEDED, outcome.message
    with Image.open(outcome.images[0].path) as image:
        assert image.size == (128, 128)
    fields = double.module("infotext").parse(outcome.images[0].infotext)
    assert fields["Hires upscaler"] == "Resize Lanczos" and fields["Hires strength"] == 0.4 and fields["Hires steps"] == 3
    assert double.pipeline.calls == 2


def test_bad_sampler_or_upscaler_is_a_readable_failure(sdnext_with_model):
    generator = host().app.generator()
    outcome = generator.generate(request(sampler_name="Eular a"), lambda _p: None)
    assert outcome.status == GenerationStatus.FAILED and "Eular a" in outcome.message and "Euler a" in outcome.message
    outcome = generator.generate(request(enable_hr=True, hr_upscaler="Nope 4x"), lambda _p: None)
    assert outcome.status == GenerationStatus.FAILED and "Nope 4x" in outcome.message
    assert sdnext_with_model.pipeline.calls == 0


def test_samplers_upscalers_and_model(sdnext_with_model):
    generator = host().app.generator()
    samplers = generator.samplers()
    assert samplers[:3] == ["Default", "Euler", "Euler a"] and not [s for s in samplers if s.startswith("\u2500")]
    assert "Latent Nearest" in generator.upscalers() and "None" in generator.upscalers()
    assert generator.model_name() == "sdxl_base" and generator.model_family() == "sdxl"
    # SDNext keeps its own request defaults: no native size is put in
    assert generator.defaults() == {}
    plain = GenerationRequest.from_dict({"prompt": "x"}, generator.defaults())
    assert (plain.width, plain.height, plain.steps) == (512, 512, 20)
    assert generator.generate(request(sampler_name="DPM++ 2M"), lambda _p: None).status == GenerationStatus.SUCCEEDED


@pytest.mark.parametrize("name, model_type, family", [
    ("ponyDiffusionV6XL", "sdxl", "pony"), ("v1-5-pruned", "sd", "sd1"), ("flux1-dev", "f1", "flux"),
    ("wan22", "wanai", "wan"), ("something", "sana", None),
])
def test_model_family_from_sdnext_model_type(sdnext, tmp_path, monkeypatch, name, model_type, family):
    monkeypatch.chdir(tmp_path)
    double = sdnext(settings={"lora_manager_scan_on_start": False}, model=(name, model_type))
    try:
        assert host().app.generator().model_family() == family
        assert double.model_requests == []
    finally:
        host().app.library().close()


def test_images_sdnext_does_not_save_are_saved_in_our_folder(sdnext_with_model):
    double = sdnext_with_model
    double.opts.set("samples_save", False)
    outcome = host().app.generator().generate(request(), lambda _p: None)
    assert outcome.status == GenerationStatus.SUCCEEDED
    path = outcome.images[0].path
    assert path.startswith(os.path.join(host().data_dir(), "outputs")) and path.endswith(".png")
    assert read_infotext(double, path) == outcome.images[0].infotext and "Seed: 7" in outcome.images[0].infotext


# --- through the job queue the UI and REST use -----------------------------------------------

def test_sweep_job_runs_in_sdnext_and_lands_in_the_history(sdnext_with_model, tmp_path):
    jobs = host().host_info().jobs()
    job_id = jobs.submit_sweep(request(seed=-1), "castle_style", [0.2, 1.0])
    job = jobs.wait(job_id, 30)
    assert job["status"] == "succeeded", job["message"]
    assert [i["label"] for i in job["images"]] == ["castle_style 0.2", "castle_style 1"]
    assert all(os.path.dirname(i["path"]) == str(tmp_path / "outputs" / "text") for i in job["images"])
    assert len({i["seed"] for i in job["images"]}) == 1 and os.path.isfile(job["grid"])
    assert host().app.recorder().flush(10)
    from lib_lora_manager.models import Generation
    with host().app.library().store.db.read() as session:
        rows = session.query(Generation).order_by(Generation.id).all()
        assert [(g.source, g.group_key, g.label, g.status) for g in rows] == [
            ("lora-manager", f"job-{job_id}", "castle_style 0.2", "succeeded"),
            ("lora-manager", f"job-{job_id}", "castle_style 1", "succeeded")]
        assert [g.prompt for g in rows] == ["a castle <lora:castle_style:0.2>", "a castle <lora:castle_style:1>"]


def test_jobs_left_by_the_previous_run_go_on_after_a_restart(sdnext, tmp_path, monkeypatch):
    import json

    from lib_lora_manager.library import Library
    from lib_lora_manager.models import Job

    monkeypatch.chdir(tmp_path)
    previous = Library.open(str(tmp_path / "sdnext-data" / "data" / "lora-manager"))  # what the last run left
    with previous.store.db.write() as session:
        left = [Job(kind="generate", status=status, request=json.dumps({"request": request().to_dict()}), created_at=time.time())
                for status in ("running", "queued")]
        session.add_all(left)
        session.flush()
        running_id, queued_id = (j.id for j in left)
    previous.close()
    sdnext(settings={"lora_manager_scan_on_start": False}, model="sdxl")  # restarted, the model loads
    try:
        def status(job_id):  # read from the table: asking the queue would start its worker
            with host().app.library().store.db.read() as session:
                return session.get(Job, job_id).status

        wait_until(lambda: status(queued_id) == "succeeded", 30)  # started by the app-start thread
        assert status(running_id) == "interrupted"
    finally:
        host().app.pause()
        host().app.library().close()


def test_rest_generate_runs_a_job_inside_sdnext_behind_its_auth(sdnext, tmp_path, monkeypatch):
    """POST /lora-manager/v1/generate is mounted through SDNext's API (its auth applies) and runs
    the job in-process; the job's images are served back."""
    monkeypatch.chdir(tmp_path)
    make_lora(tmp_path / "models" / "Lora", "castle_style", "sdxl", seed=1)
    double = sdnext(settings={"lora_manager_scan_on_start": False}, model="sdxl", cmd_args={"auth": "user:secret"})
    try:
        host().app.library().indexer.scan()
        with double.client() as client:
            body = {"prompt": "a castle", "loras": [{"name": "castle_style", "weight": 0.7}], "steps": 3,
                    "width": 64, "height": 64, "seed": 3}
            assert client.post("/lora-manager/v1/generate", json=body).status_code == 401
            auth = ("user", "secret")
            started = client.post("/lora-manager/v1/generate", json=body, auth=auth)
            assert started.status_code == 200, started.text
            job_id = started.json()["job"]
            assert started.json()["prompt"].endswith("<lora:castle_style:0.7>")
            deadline = time.monotonic() + 20
            while (job := client.get(f"/lora-manager/v1/jobs/{job_id}", auth=auth).json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            assert job["status"] == "succeeded", job
            assert os.path.dirname(job["images"][0]["path"]) == str(tmp_path / "outputs" / "text")
            image = client.get(f"/lora-manager/v1/jobs/{job_id}/images/0", auth=auth)
            assert image.status_code == 200 and image.content[:4] in (b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"\x89PNG")
    finally:
        host().app.pause()
        host().app.library().close()
