"""The generation job queue: FIFO order, persistence across restarts, cancel, skip, statuses,
strength sweeps and A/B runs with their labelled grids."""

from __future__ import annotations

import json
import time

import pytest
from painting import PaintingGenerator
from PIL import Image

from lib_lora_manager.errors import InvalidInput, NotFound
from lib_lora_manager.generation import GenerationRequest
from lib_lora_manager.jobs import JobQueue, left_over
from lib_lora_manager.library import Library
from lib_lora_manager.models import Job
from lib_lora_manager.statuses import GenerationStatus


@pytest.fixture
def painter(tmp_path):
    return PaintingGenerator(tmp_path / "out")


@pytest.fixture
def queue(library, painter):
    jobs = JobQueue(library.store, painter)
    yield jobs
    jobs.close()


@pytest.fixture
def slow_queue(library, tmp_path):
    """(queue, painter) whose painter takes ``step_seconds`` per step, so jobs can be watched,
    cancelled and skipped while they run; made with the given painter options."""
    made = []

    def make(step_seconds=0.05, **painter_options):
        painter = PaintingGenerator(tmp_path / "out", step_seconds=step_seconds, **painter_options)
        made.append(JobQueue(library.store, painter))
        return made[-1], painter

    yield make
    for jobs in made:
        jobs.close()


def request(prompt="a castle <lora:style_a:0.8>", **kw) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, steps=kw.pop("steps", 3), width=64, height=64, seed=kw.pop("seed", 7), **kw)


def test_a_job_runs_and_keeps_its_images(queue):
    job_id = queue.submit(request(batch_size=2))
    job = queue.wait(job_id, timeout=10)
    assert job["status"] == "succeeded", job
    assert [i["seed"] for i in job["images"]] == [7, 8]
    assert all(Image.open(i["path"]).size == (8, 8) for i in job["images"])
    assert job["progress"]["fraction"] == 1.0 and job["position"] is None
    assert (job["progress"]["step"], job["progress"]["steps"]) == (3, 3)  # where it ended, kept
    assert job["request"]["prompt"] == "a castle <lora:style_a:0.8>"


def test_jobs_run_first_in_first_out_and_show_their_position(slow_queue):
    jobs, painter = slow_queue()
    first = jobs.submit(request("first", steps=10))
    assert painter.started.wait(5)
    second, third = jobs.submit(request("second")), jobs.submit(request("third"))
    assert jobs.get(first)["status"] == "running"
    assert (jobs.get(second)["position"], jobs.get(third)["position"]) == (1, 2)
    listed = jobs.list()
    assert [j["id"] for j in listed[:3]] == [first, second, third]
    assert jobs.wait(third, timeout=20)["status"] == "succeeded"
    assert [r.prompt for r in painter.requests] == ["first", "second", "third"]


def test_progress_is_reported_while_running(slow_queue):
    jobs, painter = slow_queue()
    job_id = jobs.submit(request(steps=20, n_iter=2))
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        progress = jobs.get(job_id)["progress"]
        if progress["step"] >= 2:
            seen = progress
            break
        time.sleep(0.02)
    assert seen and seen["steps"] == 20 and seen["batches"] == 2 and 0 < seen["fraction"] < 1


def test_a_queued_job_cancelled_never_starts(slow_queue):
    jobs, painter = slow_queue()
    first = jobs.submit(request("first", steps=10))
    assert painter.started.wait(5)
    second = jobs.submit(request("second"))
    assert jobs.cancel(second)["status"] == "cancelled"
    jobs.wait(first, timeout=10)
    time.sleep(0.2)
    assert [r.prompt for r in painter.requests] == ["first"]
    with pytest.raises(InvalidInput, match="already finished"):
        jobs.cancel(second)
    with pytest.raises(NotFound):
        jobs.cancel(999)


def test_cancelling_the_running_job_interrupts_it(slow_queue):
    jobs, painter = slow_queue()
    job_id = jobs.submit(request(steps=200))
    assert painter.started.wait(5)
    jobs.cancel(job_id)
    job = jobs.wait(job_id, timeout=10)
    assert job["status"] == "cancelled" and job["message"] == "cancelled while running"


def test_skip_abandons_the_current_batch_only(slow_queue):
    jobs, painter = slow_queue()
    job_id = jobs.submit(request(steps=40, n_iter=2))
    assert painter.started.wait(5)
    time.sleep(0.2)
    jobs.skip(job_id)
    job = jobs.wait(job_id, timeout=20)
    assert job["status"] == "succeeded"
    assert [i["seed"] for i in job["images"]] == [8]  # batch 1 skipped, batch 2 made
    with pytest.raises(InvalidInput, match="not running"):
        jobs.skip(job_id)


@pytest.mark.parametrize("status, message, expected", [
    (GenerationStatus.NO_MODEL, "No model is loaded in SDNext", ("failed", "No model is loaded in SDNext")),
    (GenerationStatus.FAILED, "the pipeline stopped with an error", ("failed", "the pipeline stopped with an error")),
])
def test_outcomes_become_truthful_job_statuses(slow_queue, status, message, expected):
    jobs, _painter = slow_queue(0.0, outcome_status=status, message=message)
    job = jobs.wait(jobs.submit(request()), timeout=10)
    assert (job["status"], job["message"]) == expected


def test_an_interrupt_from_outside_is_not_a_cancel(slow_queue):
    jobs, painter = slow_queue()
    job_id = jobs.submit(request(steps=200))
    assert painter.started.wait(5)
    painter.interrupt()  # e.g. SDNext's own Interrupt button
    assert jobs.wait(job_id, timeout=10)["status"] == "interrupted"


def test_the_queue_survives_a_restart(tmp_path, lora_dir, database_url):
    data = str(tmp_path / "data")
    lib = Library.open(data, roots=[str(lora_dir)], database_url=database_url)
    with lib.store.db.write() as session:  # what a process that died mid-job leaves behind
        session.add(Job(kind="generate", status="running", request=json.dumps({"request": request("was running").to_dict()}),
                        created_at=time.time(), started_at=time.time()))
        session.add(Job(kind="generate", status="queued", request=json.dumps({"request": request("was waiting").to_dict()}),
                        created_at=time.time()))
    lib.close()

    lib = Library.open(data, database_url=database_url)
    assert left_over(lib.store.db) == 2  # the host starts a worker for them (App.resume_jobs)
    painter = PaintingGenerator(tmp_path / "out")
    jobs = JobQueue(lib.store, painter)
    try:
        running, waiting = jobs.list()[0], None
        assert running["status"] == "queued"  # only the waiting one is still queued
        waiting = running["id"]
        jobs.start()
        assert jobs.wait(waiting, timeout=10)["status"] == "succeeded"
        statuses = {j["request"]["prompt"]: (j["status"], j["message"]) for j in jobs.list()}
        assert statuses["was running"] == ("interrupted", "LoRA Manager stopped while this job was running")
        assert [r.prompt for r in painter.requests] == ["was waiting"]
        assert left_over(lib.store.db) == 0
    finally:
        jobs.close()
        lib.close()


def test_a_strength_sweep_runs_each_weight_at_one_seed_and_makes_a_grid(queue, painter):
    job_id = queue.submit_sweep(request("a castle <lora:style_a:0.8> <lora:other:1>", seed=-1), "style_a", [0, 0.5, 1])
    job = queue.wait(job_id, timeout=20)
    assert job["status"] == "succeeded", job
    prompts = [r.prompt for r in painter.requests]
    assert prompts == ["a castle <lora:style_a:0> <lora:other:1>", "a castle <lora:style_a:0.5> <lora:other:1>",
                       "a castle <lora:style_a:1> <lora:other:1>"]
    seeds = {r.seed for r in painter.requests}
    assert len(seeds) == 1 and -1 not in seeds
    assert {r.group for r in painter.requests} == {f"job-{job_id}"}
    assert [i["label"] for i in job["images"]] == ["style_a 0", "style_a 0.5", "style_a 1"]
    grid = Image.open(job["grid"])
    assert grid.width == 3 * 256  # the painter's 8 px images, scaled up to cells that read


def test_an_ab_run_compares_with_and_without_the_lora(queue, painter):
    job = queue.wait(queue.submit_ab(request("a castle, <lora:style_a:0.8>"), "style_a"), timeout=20)
    assert job["status"] == "succeeded"
    assert [r.prompt for r in painter.requests] == ["a castle, <lora:style_a:0.8>", "a castle"]
    assert [i["label"] for i in job["images"]] == ["with style_a", "without style_a"]
    assert job["grid"] and Image.open(job["grid"]).width == 2 * 256


def test_sweeps_refuse_bad_input(queue):
    with pytest.raises(InvalidInput, match="no <lora:missing"):
        queue.submit_sweep(request(), "missing", [0.5])
    with pytest.raises(InvalidInput, match=r"^weights has too few items \(0; at least 1\)$"):
        queue.submit_sweep(request(), "style_a", [])
    with pytest.raises(InvalidInput, match="^weight 1 must be a number, not “x”$"):
        queue.submit_sweep(request(), "style_a", ["x"])
    with pytest.raises(InvalidInput, match="^weight 2 must be a number, not true$"):
        queue.submit_sweep(request(), "style_a", [0.5, True])
    with pytest.raises(InvalidInput, match=r"^weights has too many items \(17; at most 16\)$"):
        queue.submit_sweep(request(), "style_a", [0.5] * 17)


def test_grid_labels_are_wrapped_whole_and_lose_only_the_folder(tmp_path):
    """A sweep's cells differ by weight: the label ends with it, so it must never be cut off."""
    from PIL import ImageDraw

    from lib_lora_manager import grids

    assert grids.short_label("styles/watercolor_dreamy_v2 0.25") == "watercolor_dreamy_v2 0.25"
    assert grids.short_label("without C:\\loras\\ink 1") == "without ink 1"
    assert grids.short_label("with detail") == "with detail"
    font = grids._font()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label = "a_very_long_watercolor_style_name_from_civitai_v3 0.25"
    lines = grids._wrap(draw, label, font, 120)
    assert len(lines) > 1 and "".join(lines).replace(" ", "") == label.replace(" ", "")
    assert lines[-1].endswith("0.25") and all(draw.textlength(x, font=font) <= 120 for x in lines)
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 64), "red").save(small)
    grid = grids.labelled_grid([(label, str(small)), ("other 1", str(small))])
    one_line = grids._line_height(font) + 8
    assert grid.width == 2 * grids.MIN_CELL and grid.height > grids.MIN_CELL + one_line  # the band grew for the lines
