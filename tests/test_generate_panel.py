"""The Compose tab's generation panel: its handlers called as plain functions over the real job
queue and a real library, with a test Generator that paints small PNGs step by step (painting.py),
so queue positions, cancel, skip and the statuses are real."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import gradio as gr
import pytest
from browser import chromium_page, free_port, playwright_api, shot
from painting import PaintingGenerator
from PIL import Image

from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.generation import Progress
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.jobs import JobQueue
from lib_lora_manager.statuses import GenerationStatus
from lib_lora_manager.ui import generate_panel
from lib_lora_manager.ui.generate_panel import PARAMETERS, GeneratePanel, parse_weights

XSS = "<img src=x onerror=alert(1)>"
PROMPT = "a castle <lora:style_a:0.8>"


class PreviewPainter(PaintingGenerator):
    """Also hands a live preview with every step report, as SDNext does when previews are on."""

    def generate(self, request, progress):
        def report(p: Progress) -> None:
            p.preview = Image.new("RGB", (8, 8), (p.step * 10 % 255, 0, 0))
            progress(p)

        return super().generate(request, report)


class UpscalingPainter(PaintingGenerator):
    def upscalers(self):
        return ["Latent", "ESRGAN 4x"]


def make_panel(generator, library) -> tuple[GeneratePanel, JobQueue, gr.Blocks]:
    """The panel built inside Blocks as the Compose tab builds it, over a real job queue."""
    queue = JobQueue(library.store, generator)
    host = HostInfo(name="test", generator=generator, jobs=lambda: queue)
    with gr.Blocks() as blocks:
        prompt, negative = gr.Textbox(elem_id="test_prompt"), gr.Textbox(elem_id="test_negative")
        panel = generate_panel.build(host, prompt, negative)
    return panel, queue, blocks


@pytest.fixture
def painter(tmp_path):
    return PreviewPainter(tmp_path / "out", step_seconds=0.02)


@pytest.fixture(autouse=True)
def no_linger(monkeypatch, request):
    """Handler tests follow one job each: no waiting for a next one after it ends (the
    browser test keeps the real wait, which is what lets a second Run be followed)."""
    if "browser" not in request.node.name:
        monkeypatch.setattr(generate_panel, "LINGER_SECONDS", 0.0)


@pytest.fixture
def setup(painter, library):
    panel, queue, blocks = make_panel(painter, library)
    yield panel, queue, blocks
    queue.close()


@pytest.fixture
def panel(setup) -> GeneratePanel:
    return setup[0]


def values(**overrides) -> list:
    """The parameter components' values, in PARAMETERS order, as Gradio passes them."""
    base = {"seed": 7, "steps": 3, "cfg_scale": 6, "width": 64, "height": 64, "sampler_name": "Euler",
            "batch_size": 2, "n_iter": 1, "enable_hr": False, "hr_scale": 2, "hr_upscaler": None,
            "hr_second_pass_steps": 0, "denoising_strength": 0.5} | overrides
    return [base[name] for name in PARAMETERS]


def follow(panel: GeneratePanel, session: dict, limit: float = 30.0, stop_after: int | None = None) -> list[dict]:
    """Every update the follower yields, as dicts by output name."""
    out = []
    deadline = time.monotonic() + limit
    for update in panel.follow(session):
        out.append(dict(zip(GeneratePanel.FOLLOW_FIELDS, update)))
        if stop_after is not None and len(out) >= stop_after:
            break
        assert time.monotonic() < deadline, "the follower did not end"
    return out


def last(updates: list[dict], field: str):
    """The last value sent for ``field`` (gr.update() means unchanged)."""
    for update in reversed(updates):
        value = update[field]
        if not (isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value):
            return value
    raise AssertionError(f"{field} was never sent")


def status_of(html: str) -> str:
    return html.split('data-status="', 1)[1].split('"', 1)[0]


# --- layout -----------------------------------------------------------------------------------


def test_build_gives_the_parameters_and_unique_safe_ids(setup, painter):
    panel, _, blocks = setup
    assert set(panel.parameters) == set(PARAMETERS)
    assert panel.parameters["sampler_name"].choices == painter.samplers()
    config = blocks.get_config_file()
    ids = [c["props"]["elem_id"] for c in config["components"] if c["props"].get("elem_id")]
    assert len(ids) == len(set(ids))
    ours = [i for i in ids if not i.startswith("test_")]
    assert ours and all(i.startswith("lora_manager_gen") for i in ours)
    buttons = [c["props"]["elem_id"] for c in config["components"] if c["type"] == "button"]
    # SDNext's hotkeys click any button whose id ends like these
    assert buttons and not [b for b in buttons if b.endswith(("_generate", "_interrupt"))]
    # no upscalers: the hires group is hidden and a note says why
    hires = next(c for c in config["components"] if c["props"].get("elem_id") == "lora_manager_gen_hires")
    assert hires["props"]["visible"] is False
    assert "no upscalers" in next(c for c in config["components"]
                                  if c["props"].get("elem_id") == "lora_manager_gen_hires_note")["props"]["value"]


def test_hires_fix_is_offered_with_the_hosts_upscalers(library, tmp_path):
    panel, queue, blocks = make_panel(UpscalingPainter(tmp_path / "out"), library)
    try:
        config = blocks.get_config_file()
        hires = next(c for c in config["components"] if c["props"].get("elem_id") == "lora_manager_gen_hires")
        assert hires["props"]["visible"] is True
        assert panel.parameters["hr_upscaler"].choices == ["Latent", "ESRGAN 4x"]
        assert not [c for c in config["components"] if c["props"].get("elem_id") == "lora_manager_gen_hires_note"]
        session: dict = {}
        panel.run(session, "a cat", "", *values(enable_hr=True, hr_upscaler="ESRGAN 4x", hr_scale=1.5))
        job = queue.wait(session["job"], timeout=20)
        assert job["request"]["enable_hr"] is True and job["request"]["hr_upscaler"] == "ESRGAN 4x"
        assert job["request"]["hr_scale"] == 1.5
    finally:
        queue.close()


def slider_values(panel: GeneratePanel) -> tuple:
    return tuple(panel.parameters[name].value for name in ("width", "height", "steps"))


def test_the_sliders_start_at_the_models_native_size(library, tmp_path):
    """Standalone over the demo model (a real diffusers folder, read without loading it): 64×64
    at the demo's step count; a run sends what the sliders show; a user's values win."""
    pytest.importorskip("diffusers", reason="standalone generation needs diffusers (install.py --standalone)")
    from lib_lora_manager import demo_model
    from lib_lora_manager.hosts.diffusion import DiffusersGenerator

    model = demo_model.build_tiny_pipeline(tmp_path / "model")
    generator = DiffusersGenerator(model, str(tmp_path / "out"), resolve_lora=lambda name: name)
    panel, queue, _ = make_panel(generator, library)
    try:
        assert slider_values(panel) == (64, 64, demo_model.STEPS) and generator._pipe is None
        shown = [panel.parameters[name].value for name in PARAMETERS]
        session: dict = {}
        panel.run(session, "a red cat", "", *shown)
        job = queue.wait(session["job"], timeout=120)
        assert job["status"] == "succeeded", job
        assert (job["request"]["width"], job["request"]["height"], job["request"]["steps"]) == (64, 64, demo_model.STEPS)
        with Image.open(job["images"][0]["path"]) as image:
            assert image.size == (64, 64)
        chosen = dict(zip(PARAMETERS, shown)) | {"width": 128, "steps": 2}
        assert panel.request("x", "", *chosen.values()).width == 128
    finally:
        queue.close()


def test_without_model_defaults_the_sliders_keep_todays(library, tmp_path):
    """A host that reports no model defaults (SDNext, or no model) keeps 512×512 at 20 steps."""
    panel, queue, _ = make_panel(PaintingGenerator(tmp_path / "out"), library)
    queue.close()
    assert slider_values(panel) == (512, 512, 20)


# --- run, progress, results -----------------------------------------------------------------


def test_run_shows_progress_and_preview_then_the_gallery_with_infotexts(panel, painter):
    session: dict = {}
    notice = panel.run(session, PROMPT, "blurry", *values(steps=40))
    assert "queued" in notice and "lm-ok" in notice
    updates = follow(panel, session)
    running = [u["status"] for u in updates if isinstance(u["status"], str) and 'data-status="running"' in u["status"]]
    assert any("step " in s and "/40" in s and '<progress class="lm-progress"' in s for s in running), running
    previews = [u["preview"] for u in updates if u["preview"].get("value") is not None]
    assert previews and all(p["visible"] for p in previews)
    assert isinstance(previews[0]["value"], Image.Image)
    assert updates[-1]["preview"] == gr.update(value=None, visible=False)  # gone once the job ended

    final = last(updates, "status")
    assert status_of(final) == "succeeded" and "2 images" in final
    gallery = last(updates, "gallery")
    assert [caption for _, caption in gallery] == ["seed 7", "seed 8"]
    assert all(Path(path).is_file() for path, _ in gallery)
    infos = last(updates, "infos")
    assert infos[1] == "a castle <lora:style_a:0.8>\nSteps: 40, Seed: 8"
    assert last(updates, "infotext") == infos[0]
    assert GeneratePanel.select_image(infos, 1) == infos[1]
    assert GeneratePanel.select_image(infos, 5) == ""
    request = painter.requests[0]
    assert (request.prompt, request.negative_prompt, request.sampler_name, request.batch_size) == (PROMPT, "blurry", "Euler", 2)

    assert panel.reuse_seed(session)[0] == 7
    assert panel.random_seed() == -1
    # following it again (a Run that was refused restarts the follower) shows the same result once
    again = follow(panel, session)
    assert len(again) == 1 and again[0]["gallery"] == gallery


def test_reuse_seed_before_any_result_says_so(panel):
    seed, message = panel.reuse_seed({})
    assert seed == gr.update() and "No finished result" in message


def test_bad_parameters_are_refused_with_a_message(panel, setup):
    queue = setup[1]
    session: dict = {}
    assert "The queue is empty" in panel.queue_view(session)[0]
    message = panel.run(session, PROMPT, "", *values(steps=0))
    assert "lm-error" in message and "steps must be between 1 and 500" in message
    message = panel.run(session, PROMPT, "", *values(width="wide"))
    assert "width: expected int" in message
    assert queue.list() == [] and "job" not in session
    # an emptied seed box is a random seed, as in SDNext
    panel.run(session, PROMPT, "", *values(seed=None))
    assert queue.wait(session["job"], timeout=20)["request"]["seed"] == -1


def test_several_runs_queue_up_and_the_panel_follows_the_newest(panel, setup, library, tmp_path):
    queue = setup[1]
    session: dict = {}
    panel.run(session, "first", "", *values(steps=200))
    first = session["job"]
    old = panel.follow(session)
    assert "Job 1 · Generation" in next(old)[0]  # following the first job
    panel.run(session, "second", "", *values())
    second = session["job"]
    assert "Job 2 · Generation · queued" in next(old)[0]  # the newest job took the panel over
    panel.run(session, "third", "", *values())
    third = session["job"]
    update = follow(panel, session, stop_after=1)[0]
    with pytest.raises(StopIteration):  # a newer follower serves the session now
        next(old)
    assert status_of(update["status"]) == "queued" and "position 2 in the queue" in update["status"]
    queue_html = update["queue"]
    assert queue_html.count("<tr") == 4 and "first" in queue_html and 'class="lm-current"' in queue_html
    assert update["queue_pick"]["choices"] == [str(first), str(second), str(third)]
    # show the first job instead, then stop it: the rest run in order
    assert panel.show_picked(session, str(first)) == ""
    assert session["job"] == first
    assert "stopping" in panel.cancel(session)
    assert status_of(last(follow(panel, session), "status")) == "cancelled"
    assert queue.wait(third, timeout=20)["status"] == "succeeded"


def test_a_queued_job_cancelled_never_runs(panel, setup, painter):
    queue = setup[1]
    session: dict = {}
    panel.run(session, "long", "", *values(steps=60))
    long_job = session["job"]
    assert painter.started.wait(5)
    panel.run(session, "never", "", *values())
    queued = session["job"]
    message = panel.cancel(session)
    assert "cancelled before it started" in message
    updates = follow(panel, session)
    assert status_of(last(updates, "status")) == "cancelled"
    assert "cancelled before it started" in last(updates, "status")
    assert queue.wait(long_job, timeout=20)["status"] == "succeeded"
    time.sleep(0.3)
    assert [r.prompt for r in painter.requests] == ["long"]
    # a finished job cannot be cancelled; the queue view's picker says so
    message, html, pick = panel.cancel_picked(session, str(queued))
    assert "already finished" in message and "lm-error" in message
    assert "Choose a job" in panel.cancel_picked(session, None)[0]


def test_cancel_interrupts_the_running_job(panel, painter):
    session: dict = {}
    panel.run(session, PROMPT, "", *values(steps=300))
    assert painter.started.wait(5)
    assert "stopping at the next step" in panel.cancel(session)
    final = last(follow(panel, session), "status")
    assert status_of(final) == "cancelled" and "cancelled while running" in final


def test_skip_abandons_the_current_batch(panel, painter):
    session: dict = {}
    assert "run one first" in panel.skip(session)
    panel.run(session, PROMPT, "", *values(steps=40, n_iter=2, batch_size=1))
    assert painter.started.wait(5)
    time.sleep(0.1)
    assert "skipping the current batch" in panel.skip(session)
    updates = follow(panel, session)
    assert status_of(last(updates, "status")) == "succeeded"
    assert [caption for _, caption in last(updates, "gallery")] == ["seed 8"]
    assert "is not running" in panel.skip(session)


@pytest.mark.parametrize("status, message, shown", [
    (GenerationStatus.NO_MODEL, "No model is loaded in SDNext", "failed: No model is loaded in SDNext"),
    (GenerationStatus.FAILED, f"pipeline error: {XSS}", "failed: pipeline error: &lt;img src=x onerror=alert(1)&gt;"),
])
def test_failures_show_their_reason(library, tmp_path, status, message, shown):
    panel, queue, _ = make_panel(PaintingGenerator(tmp_path / "out", outcome_status=status, message=message), library)
    try:
        session: dict = {}
        panel.run(session, PROMPT, "", *values())
        final = last(follow(panel, session), "status")
        assert status_of(final) == "failed" and shown in final and XSS not in final
        assert "lm-error" in final
        assert last(follow(panel, session), "gallery") == []
    finally:
        queue.close()


def test_an_interrupt_from_outside_shows_interrupted(panel, painter):
    session: dict = {}
    panel.run(session, PROMPT, "", *values(steps=300))
    assert painter.started.wait(5)
    painter.interrupt()  # SDNext's own Interrupt button, not ours
    final = last(follow(panel, session), "status")
    assert status_of(final) == "interrupted" and "interrupted" in final


def test_the_queue_view_escapes_prompts(panel, setup):
    session: dict = {}
    panel.run(session, f"{XSS} <lora:x:1>", "", *values())
    setup[1].wait(session["job"], timeout=20)
    html, pick = panel.refresh_queue(session, None)
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert pick["choices"] == [str(session["job"])] and pick["value"] is None
    html, pick = panel.refresh_queue(session, str(session["job"]))
    assert pick["value"] == str(session["job"])


# --- LoRA testing ---------------------------------------------------------------------------


def test_weights_are_parsed_and_bad_ones_explained():
    assert parse_weights("0, 0.25, 0.5,0.75 1") == [0, 0.25, 0.5, 0.75, 1]
    assert parse_weights("-1; 1.5") == [-1, 1.5]
    for text, reason in [("0, abc", "“abc” is not a number"), ("", "Enter the weights"), (" , ", "Enter the weights"),
                         ("0, 0.5, 0.50", "Weight 0.5 is listed twice"), ("1, nan", "out of range"),
                         ("0, 9", "Weight 9 is out of range"), (", ".join(str(n / 10) for n in range(17)), "at most 16")]:
        with pytest.raises(InvalidInput, match=reason):
            parse_weights(text)


def test_a_strength_sweep_uses_one_seed_and_ends_in_a_labelled_grid(panel, painter):
    session: dict = {}
    notice = panel.sweep(session, PROMPT, "", "style_a", "0, 0.5, 1", *values(seed=-1, batch_size=1))
    assert "strength sweep of style_a over 0, 0.5, 1 at random seed" in notice
    seed = int(notice.split("random seed ", 1)[1].split(" ", 1)[0])
    updates = follow(panel, session)
    final = last(updates, "status")
    assert status_of(final) == "succeeded" and f"seed {seed}" in final and "Strength sweep" in final
    gallery = last(updates, "gallery")
    assert [caption for _, caption in gallery] == ["style_a 0", "style_a 0.5", "style_a 1"]
    # the labelled grid is shown on its own, large, from the REST route; a click opens it
    job_id = session["job"]
    view = last(updates, "grid")
    url = f"/lora-manager/v1/jobs/{job_id}/grid"
    assert f'<a class="lm-gen-grid-whole" href="{url}" target="_blank"' in view and f'<img src="{url}"' in view
    # and each image with its label as text, for a narrow panel
    assert view.count(f'/lora-manager/v1/jobs/{job_id}/images/') == 2 * 3
    assert "style_a 0, style_a 0.5, style_a 1" in view
    with Image.open(panel.jobs.get(job_id)["grid"]) as grid:
        assert grid.width == 3 * 256
    assert [r.seed for r in painter.requests] == [seed] * 3
    assert [r.prompt for r in painter.requests] == ["a castle <lora:style_a:0>", "a castle <lora:style_a:0.5>",
                                                    "a castle <lora:style_a:1>"]
    infos = last(updates, "infos")
    assert last(updates, "infotext") == infos[0] == f"a castle <lora:style_a:0>\nSteps: 3, Seed: {seed}"


def test_an_ab_run_compares_with_and_without_the_lora(panel, painter):
    session: dict = {}
    notice = panel.ab(session, "a castle <lora:style_a:0.8>, <lora:other:1>", "", "style_a", *values(seed=42, batch_size=1))
    assert "A/B test with and without style_a at seed 42" in notice
    updates = follow(panel, session)
    assert [caption for _, caption in last(updates, "gallery")] == ["with style_a", "without style_a"]
    assert "Labelled grid" in last(updates, "grid")
    with_it, without = [r.prompt for r in painter.requests]
    assert with_it == "a castle <lora:style_a:0.8>, <lora:other:1>"
    assert "style_a" not in without and "<lora:other:1>" in without
    assert {r.seed for r in painter.requests} == {42}


def test_lora_tests_refuse_bad_input_without_queueing(panel, setup):
    session: dict = {}
    assert "“abc” is not a number" in panel.sweep(session, PROMPT, "", "style_a", "0, abc", *values())
    assert "has no &lt;lora:NAME:weight&gt; token" in panel.sweep(session, "a castle", "", None, "0, 1", *values())
    assert "Choose a LoRA of the prompt to test (style_a)" in panel.ab(session, PROMPT, "", "gone", *values())
    assert "steps must be between" in panel.ab(session, PROMPT, "", "style_a", *values(steps=0))
    assert setup[1].list() == [] and "job" not in session


def test_the_lora_dropdown_follows_the_prompt(panel):
    update = panel.lora_choices("x <lora:a:1>, <lora:b:0.5> <lora:a:0.2> <hypernet:h:1>", None)
    assert (update["choices"], update["value"]) == (["a", "b"], "a")
    assert panel.lora_choices("x <lora:a:1>, <lora:b:0.5>", "b")["value"] == "b"
    assert panel.lora_choices("no tokens", "b") == gr.update(choices=[], value=None)


def test_gallery_skips_files_deleted_since(panel, setup):
    session: dict = {}
    panel.run(session, PROMPT, "", *values())
    job = setup[1].wait(session["job"], timeout=20)
    os.remove(job["images"][0]["path"])
    updates = follow(panel, session)  # shown again, e.g. picked in the queue view
    assert [caption for _, caption in last(updates, "gallery")] == ["seed 8"]
    assert "1 image file no longer exists" in last(updates, "status")


# --- in a real browser: the wiring (session state across events, the follower, select) -----


def test_the_panel_in_a_browser(library, tmp_path):
    expect = playwright_api().expect
    painter = PreviewPainter(tmp_path / "out", step_seconds=0.03)
    queue = JobQueue(library.store, painter)
    host = HostInfo(name="test", generator=painter, jobs=lambda: queue)
    css = (Path(__file__).resolve().parents[1] / "style.css").read_text(encoding="utf-8")
    with gr.Blocks(css=css, analytics_enabled=False) as blocks:
        prompt = gr.Textbox(label="Prompt", elem_id="test_prompt")
        negative = gr.Textbox(label="Negative", elem_id="test_negative")
        generate_panel.build(host, prompt, negative)
    blocks.queue(concurrency_count=4, api_open=False)
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with chromium_page(viewport=(1400, 1100), timeout_ms=20_000) as (page, _dialogs):
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#test_prompt textarea").fill(f"a castle {XSS} <lora:style_a:0.8>")
            page.locator("#test_prompt textarea").press("Tab")
            page.locator("#lora_manager_gen_steps input[type=number]").fill("30")
            page.locator("#lora_manager_gen_steps input[type=number]").press("Tab")
            page.locator("#lora_manager_gen_seed input").fill("7")
            page.locator("#lora_manager_gen_seed input").press("Tab")

            # run: progress while running, then the gallery; selecting an image shows its infotext
            page.locator("#lora_manager_gen_run").click()
            status = page.locator("#lora_manager_gen_status").first
            expect(status.locator("progress.lm-progress")).to_be_visible()
            expect(status).to_contain_text(re.compile(r"running · step \d+/30"))
            shot(page, "gen-1-running")
            expect(status.locator('[data-status="succeeded"]')).to_contain_text("succeeded · 1 image")
            gallery = page.locator("#lora_manager_gen_gallery")
            expect(gallery.locator("img")).to_have_count(1)
            infotext = page.locator("#lora_manager_gen_infotext textarea")
            expect(infotext).to_have_value(re.compile(r"Seed: 7$"))
            gallery.locator("button").first.click()
            expect(infotext).to_have_value(re.compile(r"^a castle <img src=x"))
            assert page.locator("img[src=x]").count() == 0  # the prompt's markup stayed text

            # the LoRA dropdown follows the prompt; a sweep ends in a labelled grid
            page.locator("#lora_manager_gen_testing").get_by_text("LoRA testing", exact=True).click()
            expect(page.locator("#lora_manager_gen_test_lora input")).to_have_value("style_a")
            page.locator("#lora_manager_gen_test_weights textarea, #lora_manager_gen_test_weights input").first.fill("0, abc")
            page.locator("#lora_manager_gen_sweep").click()
            expect(page.locator("#lora_manager_gen_notice .lm-error").first).to_contain_text("“abc” is not a number")
            page.locator("#lora_manager_gen_test_weights textarea, #lora_manager_gen_test_weights input").first.fill("0, 1")
            page.locator("#lora_manager_gen_sweep").click()
            expect(status.locator('[data-status="succeeded"]')).to_contain_text("Strength sweep")
            expect(gallery.locator("img")).to_have_count(2)  # the grid is shown on its own, large
            expect(gallery).to_contain_text("style_a 1")
            expect(page.locator("#lora_manager_gen_grid .lm-gen-grid-whole img")).to_be_visible()
            shot(page, "gen-2-sweep")

            # two runs: the second waits; cancelling it in the panel means it never runs
            page.locator("#lora_manager_gen_steps input[type=number]").fill("150")
            page.locator("#lora_manager_gen_steps input[type=number]").press("Tab")
            page.locator("#lora_manager_gen_run").click()
            expect(status).to_contain_text("running")
            page.locator("#lora_manager_gen_run").click()
            expect(status).to_contain_text("queued · position 1 in the queue")
            page.locator("#lora_manager_gen_queue_acc").get_by_text("Job queue", exact=True).click()
            expect(page.locator("#lora_manager_gen_queue tr.lm-current").first).to_contain_text("queued")
            shot(page, "gen-3-queue")
            page.locator("#lora_manager_gen_cancel").click()
            expect(status.locator('[data-status="cancelled"]')).to_contain_text("cancelled before it started")
            running_id = queue.list()[0]["id"]
            assert queue.get(running_id)["status"] == "running"
            queue.cancel(running_id)
            assert queue.wait(running_id, timeout=20)["status"] == "cancelled"
            assert len(painter.requests) == 4  # run, two sweep weights, the long run; never the cancelled one
    finally:
        blocks.close()
        queue.close()


def test_a_follower_takes_over_a_job_started_as_its_own_ended(panel, painter, monkeypatch):
    """The browser does not start a second follower while one runs: a Run clicked just as a job
    ends must be followed by the one still running."""
    monkeypatch.setattr(generate_panel, "LINGER_SECONDS", 5.0)
    session: dict = {}
    panel.run(session, PROMPT, "", *values(steps=2))
    updates = []
    for update in panel.follow(session):
        updates.append(dict(zip(GeneratePanel.FOLLOW_FIELDS, update)))
        if status_of(last(updates, "status")) == "succeeded" and len(painter.requests) == 1:
            panel.run(session, "a second prompt", "", *values(steps=2))  # while this follower lingers
    assert [r.prompt for r in painter.requests] == [PROMPT, "a second prompt"]
    assert "Job 2" in last(updates, "status") and status_of(last(updates, "status")) == "succeeded"


def click_handler(blocks, button):
    """(function, output components) of the first event a button's click starts."""
    index = next(i for i, d in enumerate(blocks.dependencies) if d["targets"] == [button._id] and d["trigger"] == "click")
    outputs = [blocks.blocks[i] for i in blocks.dependencies[index]["outputs"]]
    return blocks.fns[index].fn, outputs


def test_run_answers_with_the_new_jobs_status_at_once(setup, painter):
    """The status line shows the job just queued in Run's own answer, not the previous job's end
    until the follower next looks."""
    panel, queue, blocks = setup
    session: dict = {}
    panel.run(session, "first", "", *values())
    assert queue.wait(session["job"], timeout=20)["status"] == "succeeded"
    panel.run(session, "long", "", *values(steps=300))  # keeps the worker busy: the next one waits
    long_job = session["job"]
    fn, outputs = click_handler(blocks, panel.components["run"])
    assert outputs == [panel.components["notice"], panel.components["status"]]
    notice, status = fn(session, "second", "", *values())
    second = session["job"]
    assert second != long_job and f"Job {second} queued." in notice
    assert status_of(status) == "queued" and re.search(f"Job {second} · Generation · queued · position [12] in the queue", status)
    # a refused run leaves the panel on its job and says so in the notice
    notice, status = fn(session, "bad", "", *values(steps=0))
    assert "lm-error" in notice and session["job"] == second and f"Job {second}" in status
    for button in ("sweep", "ab"):
        assert click_handler(blocks, panel.components[button])[1][1] is panel.components["status"]
    queue.cancel(second)
    queue.cancel(long_job)


def test_without_a_model_the_panel_says_how_to_turn_generation_on(library):
    from lib_lora_manager.ui import compose_tab

    host = HostInfo(name="standalone")
    with gr.Blocks() as blocks:
        compose_tab.build_content(lambda: library, host)
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert "lora_manager_gen_run" not in ids and "lora_manager_gen_off" in ids
    hint = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "lora_manager_gen_off").value
    assert "serve --model PATH" in hint and "serve --demo" in hint
