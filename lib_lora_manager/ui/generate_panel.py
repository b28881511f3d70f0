"""The generation panel of the Compose tab: parameters, Run / Cancel / Skip, live progress and
preview, results with their infotext, the job queue, and LoRA testing (strength sweep, A/B).

``GeneratePanel`` holds the handlers: plain methods over ``host.jobs()`` that return values or
``gr.update`` dicts in the order of their outputs, so tests call them without a browser.
``build`` lays the panel out (gradio 3.43.2 API) and wires it.

The panel shows one job at a time: the one this browser session started last, or the one picked
in the queue view with "Show". Every Run queues a new job and takes the panel over; ``follow``
(a Gradio generator on the queue) polls the shown job until it ends. Earlier jobs keep running
in order and stay listed in the queue view.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, LoraManagerError
from ..generation import MAX_SEED, GenerationRequest
from ..grids import short_label
from ..hostinfo import HostInfo
from ..naming import format_weight
from ..prompts import extract_loras
from ..statuses import ACTIVE_JOBS, FINISHED_JOBS, JobKind, JobStatus
from . import cards
from .components import gradio_module as _gr
from .components import no_config

if TYPE_CHECKING:
    import gradio

    from ..jobs import JobQueue

# the GenerationRequest fields the panel edits, in the order of their components
PARAMETERS = ("seed", "steps", "cfg_scale", "width", "height", "sampler_name", "batch_size", "n_iter",
              "enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "denoising_strength")
KINDS = {JobKind.GENERATE: "Generation", JobKind.SWEEP: "Strength sweep", JobKind.AB: "A/B test"}
POLL_SECONDS = 0.3
LINGER_SECONDS = 2.0  # a follower waits this long after its job ended for the next one
QUEUE_ROWS = 30
MAX_WEIGHTS = 16  # the job queue's limit for one sweep
WEIGHT_LIMIT = 5.0  # |weight|; beyond this a LoRA only burns the image
DEFAULT_WEIGHTS = "0, 0.25, 0.5, 0.75, 1"
IDLE = '<div class="lm-gen-status lm-muted">No job yet. Run queues a generation of the prompt above.</div>'
GRID_PATH = "/lora-manager/v1/jobs/{id}/grid"  # the REST route that serves a job's labelled grid
IMAGE_PATH = "/lora-manager/v1/jobs/{id}/images/{n}"  # one image of a job, from 0
# standalone without a model: what the panel's place says instead (SDNext always generates)
UNAVAILABLE = (
    '<div class="lm-gen-off lm-message lm-info" role="note"><strong>Generation is off:</strong> this app was started '
    'without a model. To generate here (with live progress, strength sweeps and A/B tests), start it again with '
    '<code>python -m lib_lora_manager serve --model PATH</code> (a diffusers folder or a single-file '
    '<code>.safetensors</code> checkpoint), or try it with a tiny demo model: '
    '<code>python -m lib_lora_manager serve --demo</code>.</div>')


def parse_weights(text: str | None) -> list[float]:
    """The sweep's weights from "0, 0.25, 0.5" (commas, semicolons or spaces); InvalidInput says
    which entry is wrong."""
    parts = [p for p in re.split(r"[,;\s]+", text or "") if p]
    if not parts:
        raise InvalidInput("Enter the weights to try, e.g. 0, 0.5, 1.")
    if len(parts) > MAX_WEIGHTS:
        raise InvalidInput(f"A sweep takes at most {MAX_WEIGHTS} weights; {len(parts)} were entered.")
    weights: list[float] = []
    for part in parts:
        try:
            weight = float(part)
        except ValueError:
            raise InvalidInput(f"“{part[:40]}” is not a number: enter weights like 0, 0.5, 1.") from None
        if not math.isfinite(weight) or abs(weight) > WEIGHT_LIMIT:
            raise InvalidInput(f"Weight {part[:40]} is out of range: use weights from -{WEIGHT_LIMIT:g} to {WEIGHT_LIMIT:g}.")
        if weight in weights:
            raise InvalidInput(f"Weight {format_weight(weight)} is listed twice.")
        weights.append(weight)
    return weights


def lora_names(prompt: str | None) -> list[str]:
    """Names of the ``<lora:NAME:…>`` tokens in a prompt, in order, without repeats."""
    return list(dict.fromkeys(ref.name for ref in extract_loras(prompt or "")[1]))


# --- HTML -----------------------------------------------------------------------------------


def _excerpt(text: str, limit: int = 90) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _seconds(job: dict[str, Any]) -> str:
    start, end = job.get("started_at"), job.get("finished_at")
    return f" in {end - start:.1f} s" if start and end and end >= start else ""


def progress_bar(fraction: float) -> str:
    """A native <progress> element: sized by CSS (lm-progress), no inline style for themes to strip."""
    percent = max(0.0, min(1.0, float(fraction or 0.0))) * 100
    return f'<progress class="lm-progress" max="100" value="{percent:.1f}">{percent:.0f}%</progress>'


def job_status(job: dict[str, Any], missing: int = 0) -> str:
    """One job's state for the status line, in words the user can act on."""
    status, message = job["status"], job.get("message") or ""
    head = f"Job {int(job['id'])} · {KINDS.get(job.get('kind'), job.get('kind') or 'job')}"
    request = job.get("request") or {}
    if job.get("kind") in (JobKind.SWEEP, JobKind.AB) and request.get("seed") not in (None, -1):
        head += f" · seed {request['seed']}"
    bar, kind = "", "info"
    if status == JobStatus.QUEUED:
        position = job.get("position")
        ahead = f" · position {position} in the queue" if position else ""
        text = f"{head} · queued{ahead}. It starts when the jobs before it are done; Cancel removes it."
    elif status == JobStatus.RUNNING:
        p = job.get("progress") or {}
        parts = [head, "running"]
        if p.get("steps"):
            parts.append(f"step {p.get('step', 0)}/{p['steps']}")
        if (p.get("batches") or 0) > 1:
            parts.append(f"batch {min(p.get('batch', 0) + 1, p['batches'])}/{p['batches']}")
        if p.get("text"):
            parts.append(str(p["text"]))
        text = " · ".join(parts)
        bar = progress_bar(p.get("fraction", 0.0))
    elif status == JobStatus.SUCCEEDED:
        count = len(job.get("images") or [])
        text = f"{head} · succeeded · {count} image{'' if count == 1 else 's'}{_seconds(job)}"
        if message:
            text += f" · {message}"
        kind = "ok"
    elif status == JobStatus.CANCELLED:
        text = f"{head} · cancelled" + (f": {message}" if message else "")
    elif status == JobStatus.INTERRUPTED:
        text = f"{head} · interrupted" + (f": {message}" if message else "")
        kind = "error"
    else:  # failed: the message says why (no model loaded, the pipeline's error, …)
        text = f"{head} · failed: {message or 'no reason given'}"
        kind = "error"
    if missing:
        text += f" · {missing} image file{'' if missing == 1 else 's'} no longer exist{'s' if missing == 1 else ''}"
    return (f'<div class="lm-gen-status lm-message lm-{kind}" role="status" data-status="{cards.esc(status)}">'
            f'{cards.esc(text)}{bar}</div>')


def queue_table(jobs: list[dict[str, Any]], current: int | None) -> str:
    if not jobs:
        return '<div class="lm-gen-queue lm-muted">The queue is empty.</div>'
    rows = []
    for job in jobs:
        prompt = (job.get("request") or {}).get("prompt") or ""
        css = ' class="lm-current"' if job["id"] == current else ""
        rows.append(
            f'<tr{css}><td class="lm-num">{int(job["id"])}</td><td>{cards.esc(KINDS.get(job.get("kind"), job.get("kind")))}</td>'
            f'<td class="lm-job-{cards.esc(job["status"])}">{cards.esc(job["status"])}</td>'
            f'<td class="lm-num">{job["position"] if job.get("position") else ""}</td>'
            f'<td class="lm-gen-prompt" title="{cards.esc(_excerpt(prompt, 600))}">{cards.esc(_excerpt(prompt))}</td>'
            f'<td>{cards.esc(cards.when(job.get("created_at")))}</td></tr>')
    return ('<div class="lm-gen-queue"><table class="lm-table lm-jobs"><thead><tr><th>Job</th><th>Kind</th>'
            '<th>Status</th><th>Position</th><th>Prompt</th><th>Queued at</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def results(job: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str], int]:
    """(gallery items, infotext per item, missing files): each image, captioned with its label
    (the LoRA's short name and weight in a sweep) or its seed. The labelled grid is shown on its
    own, large (grid_view)."""
    items, infos = [], []
    grid = job.get("grid")
    missing = 1 if grid and not os.path.isfile(grid) else 0
    for n, image in enumerate(job.get("images") or [], 1):
        path = image.get("path") or ""
        if not os.path.isfile(path):  # deleted since: a missing file would break the whole gallery
            missing += 1
            continue
        label = short_label(image.get("label") or "")
        caption = label or (f"seed {image['seed']}" if image.get("seed") is not None else f"image {n}")
        items.append((path, caption))
        infos.append(image.get("infotext") or "")
    return items, infos, missing


def grid_view(job: dict[str, Any], api_base: str = "") -> str:
    """A sweep's or A/B run's labelled grid, the width of the panel; a click opens it at full size."""
    grid = job.get("grid")
    if not grid or not os.path.isfile(grid):
        return ""
    url = cards.esc((api_base or "").rstrip("/") + GRID_PATH.format(id=int(job["id"])))
    labels = list(dict.fromkeys(short_label(i["label"]) for i in job.get("images") or [] if i.get("label")))
    what = cards.esc(", ".join(labels))
    # a narrow panel (ModernUI at 1024 px beside its Networks panel: ~420 px) shows the images a
    # few per row with their labels as text instead: the one-row grid was a 90 px strip there
    base = (api_base or "").rstrip("/") + IMAGE_PATH
    cells = "".join(
        f'<figure><a href="{cards.esc(base.format(id=int(job["id"]), n=n))}" target="_blank" rel="noopener noreferrer">'
        f'<img src="{cards.esc(base.format(id=int(job["id"]), n=n))}" alt="{cards.esc(short_label(image.get("label") or ""))}" '
        f'loading="lazy" decoding="async"></a><figcaption>{cards.esc(short_label(image.get("label") or ""))}</figcaption></figure>'
        for n, image in enumerate(job.get("images") or []) if image.get("label"))
    return (f'<figure class="lm-gen-grid" data-job="{int(job["id"])}"><a class="lm-gen-grid-whole" href="{url}" target="_blank" '
            f'rel="noopener noreferrer" title="Open the grid at full size"><img src="{url}" alt="Labelled grid: {what}" '
            f'decoding="async"></a><div class="lm-gen-grid-cells">{cells}</div>'
            f'<figcaption>Labelled grid of job {int(job["id"])}: {what}. Click it to open it at '
            f'full size; select an image in Results for its parameters.</figcaption></figure>')


# --- handlers ---------------------------------------------------------------------------------


class GeneratePanel:
    """Handlers of the generation panel. ``session`` is the browser session's gr.State dict (one
    object per session, shared by its events): ``job`` (the job shown), ``follower`` (the
    follower serving the session) and ``seed`` (of the last finished result)."""

    FOLLOW_FIELDS = ("status", "preview", "grid", "gallery", "infos", "infotext", "queue", "queue_pick")

    def __init__(self, host: HostInfo):
        self.host = host
        self.parameters: dict[str, Any] = {}  # GenerationRequest field -> component, set by build
        self.components: dict[str, Any] = {}  # the other components by name, set by build

    @property
    def jobs(self) -> JobQueue:
        return self.host.jobs()

    # --- requests -------------------------------------------------------------------------

    @staticmethod
    def request(prompt: str | None, negative: str | None, *values: Any) -> GenerationRequest:
        """The request from the prompt boxes and the parameter components (in PARAMETERS order)."""
        data: dict[str, Any] = {"prompt": prompt or "", "negative_prompt": negative or ""}
        data.update(zip(PARAMETERS, values))
        if data.get("seed") is None:  # an emptied seed box means random, as in SDNext
            data["seed"] = -1
        for name in ("sampler_name", "hr_upscaler"):
            if not data.get(name):
                data[name] = None
        return GenerationRequest.from_dict(data)

    def shown_status(self, session: dict[str, Any]) -> str | dict:
        """The status line of the job the panel shows now: sent with the answer of Run (and of
        sweep, A/B, Show), so it never lingers on the previous job until the follower looks."""
        job_id = session.get("job")
        if job_id is None:
            return _gr().update()
        try:
            return job_status(self.jobs.get(job_id))
        except LoraManagerError as e:
            return cards.message(str(e), "error")

    @staticmethod
    def _take(session: dict[str, Any], job_id: int) -> None:
        """Make ``job_id`` the job the panel shows (a running follower switches to it)."""
        session["job"] = job_id

    def run(self, session: dict[str, Any], prompt: str, negative: str, *values: Any) -> str:
        try:
            job_id = self.jobs.submit(self.request(prompt, negative, *values))
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        self._take(session, job_id)
        return cards.message(f"Job {job_id} queued.", "ok")

    def _lora_test(self, session, submit, what: str, prompt, negative, lora, *values) -> str:
        """Queue a sweep or an A/B run at one fixed seed (drawn here when the seed is -1, so it can be shown)."""
        try:
            request = self.request(prompt, negative, *values)
            names = lora_names(request.prompt)
            if not names:
                raise InvalidInput("The prompt has no <lora:NAME:weight> token to test: add a LoRA first.")
            if not lora or lora not in names:
                raise InvalidInput(f"Choose a LoRA of the prompt to test ({', '.join(names)}).")
            drawn = request.seed == -1
            if drawn:
                request = replace(request, seed=random.randrange(MAX_SEED))
            job_id = submit(request, lora)
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        self._take(session, job_id)
        seed = f"random seed {request.seed} (drawn for this test)" if drawn else f"seed {request.seed}"
        return cards.message(f"Job {job_id} queued: {what} at {seed}.", "ok")

    def sweep(self, session, prompt, negative, lora, weights_text, *values) -> str:
        try:
            weights = parse_weights(weights_text)
        except InvalidInput as e:
            return cards.message(str(e), "error")
        listed = ", ".join(format_weight(w) for w in weights)
        return self._lora_test(session, lambda request, name: self.jobs.submit_sweep(request, name, weights),
                               f"strength sweep of {lora} over {listed}", prompt, negative, lora, *values)

    def ab(self, session, prompt, negative, lora, *values) -> str:
        return self._lora_test(session, lambda request, name: self.jobs.submit_ab(request, name),
                               f"A/B test with and without {lora}", prompt, negative, lora, *values)

    # --- following the shown job --------------------------------------------------------------

    def follow(self, session: dict[str, Any]) -> Iterator[tuple]:
        """Yield the shown job's status, live preview, results and the queue view until it ends.
        The newest follower of a session serves it (older ones stop), and it switches to a job
        that takes the panel over meanwhile. Only changed outputs are sent."""
        gr = _gr()
        me = object()
        session["follower"] = me
        shown, sent, queue_key, preview = None, {}, None, None

        def changes(values: dict[str, Any]) -> list:
            out = []
            for name in self.FOLLOW_FIELDS:
                if name in values and (name not in sent or sent[name] != values[name]):
                    sent[name] = values[name]
                    out.append(values[name])
                else:
                    out.append(gr.update())
            return out

        while session.get("follower") is me and session.get("job") is not None:
            job_id = session["job"]
            if job_id != shown:  # another job took the panel: redraw everything
                shown, sent, queue_key, preview = job_id, {}, None, None
            try:
                job = self.jobs.get(job_id)
            except LoraManagerError as e:
                yield tuple(changes({"status": cards.message(str(e), "error"), "grid": "", "gallery": [], "infos": [],
                                     "infotext": ""}))
                return
            finished = job["status"] in FINISHED_JOBS
            # a sweep's images arrive one by one: the gallery shows them as they come
            items, infos, missing = results(job)
            values: dict[str, Any] = {"status": job_status(job, missing), "grid": grid_view(job, self.host.api_base),
                                      "gallery": items, "infos": infos, "infotext": infos[0] if infos else ""}
            if finished:
                seeds = [i.get("seed") for i in job.get("images") or [] if i.get("seed") is not None]
                if seeds:
                    session["seed"] = seeds[0]
            if (job["status"], job.get("position")) != queue_key:  # the queue moved: redraw its view
                queue_key = (job["status"], job.get("position"))
                values["queue"], values["queue_pick"] = self.queue_view(session)
            out = changes(values)
            image = self.jobs.preview(job_id) if job["status"] == JobStatus.RUNNING else None
            if image is not preview or "preview" not in sent:  # PIL images: compare by identity
                preview = sent["preview"] = image
                out[self.FOLLOW_FIELDS.index("preview")] = gr.update(value=image, visible=image is not None)
            yield tuple(out)
            if finished and self._stays_done(session, job_id, me):
                return
            if not finished:
                time.sleep(POLL_SECONDS)

    @staticmethod
    def _stays_done(session: dict[str, Any], job_id: int, me: object) -> bool:
        """After a job ends, linger a moment: the browser drops a new start of this follower
        while it still runs, so a Run clicked just then is followed from here."""
        deadline = time.monotonic() + LINGER_SECONDS
        while session.get("job") == job_id and session.get("follower") is me and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        return session.get("job") == job_id or session.get("follower") is not me

    @staticmethod
    def select_image(infos: list[str] | None, index: Any) -> str:
        """The infotext of the gallery image the user selected (``index`` from gr.SelectData)."""
        infos = infos or []
        return infos[index] if isinstance(index, int) and 0 <= index < len(infos) else ""

    # --- controls -----------------------------------------------------------------------------

    def cancel(self, session: dict[str, Any]) -> str:
        return self._cancel(session.get("job"), "No job to cancel: run one first.")

    def _cancel(self, job_id: int | None, nothing: str) -> str:
        if job_id is None:
            return cards.message(nothing, "error")
        try:
            job = self.jobs.cancel(int(job_id))
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        if job["status"] == JobStatus.RUNNING or job["started_at"] is not None:
            # a fast generator may already have stopped by the time we look
            return cards.message(f"Job {job_id}: stopping at the next step…", "info")
        return cards.message(f"Job {job_id} cancelled before it started: it will not run.", "ok")

    def skip(self, session: dict[str, Any]) -> str:
        job_id = session.get("job")
        if job_id is None:
            return cards.message("No job to skip: run one first.", "error")
        try:
            self.jobs.skip(int(job_id))
        except LoraManagerError as e:
            return cards.message(str(e), "error")
        return cards.message(f"Job {job_id}: skipping the current batch; the job goes on with the next.", "info")

    def reuse_seed(self, session: dict[str, Any]) -> tuple:
        seed = session.get("seed")
        if seed is None:
            return _gr().update(), cards.message("No finished result with a seed yet.", "error")
        return int(seed), cards.message(f"Seed {seed} from the last result.", "info")

    @staticmethod
    def random_seed() -> int:
        return -1

    # --- the queue view ---------------------------------------------------------------------

    def queue_view(self, session: dict[str, Any] | None, picked: str | None = None) -> tuple[str, dict]:
        """(queue table, job dropdown update); the pick is kept while its job is listed."""
        gr = _gr()
        try:
            listed = self.jobs.list(limit=QUEUE_ROWS)
        except LoraManagerError as e:
            return cards.message(str(e), "error"), gr.update()
        choices = [str(job["id"]) for job in listed]
        if picked not in choices:
            waiting = [str(job["id"]) for job in listed if job["status"] in ACTIVE_JOBS]
            picked = waiting[-1] if waiting else None
        return queue_table(listed, (session or {}).get("job")), gr.update(choices=choices, value=picked)

    def refresh_queue(self, session, picked) -> tuple:
        return self.queue_view(session, picked)

    def cancel_picked(self, session, picked) -> tuple:
        job_id = int(picked) if picked and str(picked).isdigit() else None
        message = self._cancel(job_id, "Choose a job to cancel.")
        return (message, *self.queue_view(session, picked))

    def show_picked(self, session, picked) -> str:
        if not picked or not str(picked).isdigit():
            return cards.message("Choose a job to show.", "error")
        self._take(session, int(picked))
        return ""

    def lora_choices(self, prompt: str | None, current: str | None) -> dict:
        """The LoRA testing dropdown follows the prompt's <lora:…> tokens."""
        names = lora_names(prompt)
        return _gr().update(choices=names, value=current if current in names else (names[0] if names else None))


# --- layout ---------------------------------------------------------------------------------


def build(host: HostInfo, prompt: gradio.Textbox, negative: gradio.Textbox) -> GeneratePanel:
    """Create the panel inside the current Blocks context and wire it to the prompt boxes.

    Sampler and upscaler names are read now (SDNext has them when tabs are built); no job is read."""
    import gradio as gr

    panel = GeneratePanel(host)
    generator = host.generator
    samplers = list(generator.samplers()) if generator else []
    upscalers = list(generator.upscalers()) if generator else []
    # the sliders start at the host's defaults for its model (standalone: the native size)
    defaults = GenerationRequest.from_dict({}, generator.defaults() if generator else None)

    with gr.Column(elem_id="lora_manager_gen", elem_classes=["lm-root", "lm-gen"]):
        with gr.Row(elem_classes=["lm-gen-actions"]):
            run_btn = gr.Button("Run", variant="primary", elem_id="lora_manager_gen_run", elem_classes=["lm-btn"])
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="lora_manager_gen_cancel", elem_classes=["lm-btn"])
            skip_btn = gr.Button("Skip batch", elem_id="lora_manager_gen_skip", elem_classes=["lm-btn"])
        notice = gr.HTML("", elem_id="lora_manager_gen_notice")
        status = gr.HTML(IDLE, elem_id="lora_manager_gen_status")
        with gr.Row(elem_classes=["lm-gen-main"]):
            with gr.Column(elem_classes=["lm-gen-params"]):
                with gr.Row(elem_classes=["lm-gen-row"]):
                    sampler = gr.Dropdown(samplers, value=samplers[0] if samplers else None, label="Sampler",
                                          elem_id="lora_manager_gen_sampler")
                    steps = gr.Slider(1, 150, value=defaults.steps, step=1, label="Steps", elem_id="lora_manager_gen_steps")
                with gr.Row(elem_classes=["lm-gen-row"]):
                    width = gr.Slider(64, 2048, value=defaults.width, step=8, label="Width", elem_id="lora_manager_gen_width")
                    height = gr.Slider(64, 2048, value=defaults.height, step=8, label="Height", elem_id="lora_manager_gen_height")
                with gr.Row(elem_classes=["lm-gen-row"]):
                    cfg = gr.Slider(0, 30, value=defaults.cfg_scale, step=0.5, label="CFG scale", elem_id="lora_manager_gen_cfg")
                    n_iter = gr.Slider(1, 100, value=defaults.n_iter, step=1, label="Batch count",
                                       elem_id="lora_manager_gen_batch_count")
                    batch_size = gr.Slider(1, 16, value=defaults.batch_size, step=1, label="Batch size",
                                           elem_id="lora_manager_gen_batch_size")
                with gr.Row(elem_classes=["lm-gen-row", "lm-gen-seed"]):
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id="lora_manager_gen_seed")
                    random_btn = gr.Button("Random", size="sm", elem_id="lora_manager_gen_seed_random", elem_classes=["lm-btn"])
                    reuse_btn = gr.Button("Reuse last", size="sm", elem_id="lora_manager_gen_seed_reuse", elem_classes=["lm-btn"])
                # hires fix needs an upscaler; without any the group stays hidden (its values still reach requests)
                with gr.Accordion("Hires fix", open=False, visible=bool(upscalers), elem_id="lora_manager_gen_hires"):
                    enable_hr = gr.Checkbox(value=False, label="Enable hires fix", elem_id="lora_manager_gen_hr_enable")
                    with gr.Row(elem_classes=["lm-gen-row"]):
                        hr_upscaler = gr.Dropdown(upscalers, value=upscalers[0] if upscalers else None, label="Upscaler",
                                                  elem_id="lora_manager_gen_hr_upscaler")
                        hr_scale = gr.Slider(1.0, 4.0, value=defaults.hr_scale, step=0.05, label="Upscale by",
                                             elem_id="lora_manager_gen_hr_scale")
                    with gr.Row(elem_classes=["lm-gen-row"]):
                        hr_steps = gr.Slider(0, 150, value=defaults.hr_second_pass_steps, step=1,
                                             label="Hires steps (0: same as steps)", elem_id="lora_manager_gen_hr_steps")
                        denoise = gr.Slider(0.0, 1.0, value=defaults.denoising_strength, step=0.01,
                                            label="Denoising strength", elem_id="lora_manager_gen_hr_denoise")
                if not upscalers:
                    gr.HTML('<div class="lm-help">Hires fix is not offered: this host reports no upscalers.</div>',
                            elem_id="lora_manager_gen_hires_note")
            with gr.Column(elem_classes=["lm-gen-output"]):
                preview = gr.Image(label="Live preview", type="pil", interactive=False, visible=False,
                                   elem_id="lora_manager_gen_preview")
                gallery = gr.Gallery(label="Results", columns=4, object_fit="contain", height="auto",
                                     elem_id="lora_manager_gen_gallery", elem_classes=["lm-gen-gallery"])
                # no show_copy_button: ModernUI leaves Gradio's copy button unsized, covering the box
                infotext = gr.Textbox(label="Parameters of the selected image", lines=4, max_lines=12,
                                      interactive=False, elem_id="lora_manager_gen_infotext")

        # a sweep's labelled grid, the panel's full width (empty otherwise)
        grid = gr.HTML("", elem_id="lora_manager_gen_grid")

        with gr.Accordion("LoRA testing", open=False, elem_id="lora_manager_gen_testing"):
            gr.HTML('<div class="lm-help">Compare one LoRA of the prompt at several strengths, or with and without it. '
                    'Every image uses one seed (a random one is drawn when the seed is -1) and the results end in a '
                    'labelled grid. The other parameters come from above.</div>')
            with gr.Row(elem_classes=["lm-gen-row"]):
                lora = gr.Dropdown([], value=None, label="LoRA (from the prompt)", elem_id="lora_manager_gen_test_lora")
                weights = gr.Textbox(DEFAULT_WEIGHTS, label=f"Weights (up to {MAX_WEIGHTS}, comma-separated)", lines=1,
                                     max_lines=1, elem_id="lora_manager_gen_test_weights")
            with gr.Row(elem_classes=["lm-gen-actions"]):
                sweep_btn = gr.Button("Strength sweep", elem_id="lora_manager_gen_sweep", elem_classes=["lm-btn"])
                ab_btn = gr.Button("A/B without it", elem_id="lora_manager_gen_ab", elem_classes=["lm-btn"])

        with gr.Accordion("Job queue", open=False, elem_id="lora_manager_gen_queue_acc"):
            gr.HTML('<div class="lm-help">Jobs run one at a time, first in first out, and survive restarts. The panel '
                    'above shows the job you started last; pick another here to show it, or to cancel it.</div>')
            queue = gr.HTML("", elem_id="lora_manager_gen_queue")
            with gr.Row(elem_classes=["lm-gen-actions"]):
                queue_pick = gr.Dropdown([], value=None, label="Job", elem_id="lora_manager_gen_queue_pick")
                show_btn = gr.Button("Show", elem_id="lora_manager_gen_queue_show", elem_classes=["lm-btn"])
                cancel_job_btn = gr.Button("Cancel job", variant="stop", elem_id="lora_manager_gen_queue_cancel",
                                           elem_classes=["lm-btn"])
                refresh_btn = gr.Button("Refresh", elem_id="lora_manager_gen_queue_refresh", elem_classes=["lm-btn"])
        session = gr.State({})
        infos = gr.State([])
        no_config(lora, queue_pick, infotext, hr_upscaler, sampler)

    panel.parameters = {
        "seed": seed, "steps": steps, "cfg_scale": cfg, "width": width, "height": height, "sampler_name": sampler,
        "batch_size": batch_size, "n_iter": n_iter, "enable_hr": enable_hr, "hr_scale": hr_scale,
        "hr_upscaler": hr_upscaler, "hr_second_pass_steps": hr_steps, "denoising_strength": denoise,
    }
    panel.components = {
        "run": run_btn, "cancel": cancel_btn, "skip": skip_btn, "notice": notice, "status": status, "preview": preview,
        "grid": grid, "gallery": gallery, "infotext": infotext, "lora": lora, "weights": weights, "sweep": sweep_btn, "ab": ab_btn,
        "queue": queue, "queue_pick": queue_pick, "session": session, "infos": infos,
    }

    # --- wiring -----------------------------------------------------------------------------
    # quick actions skip the queue (queue=False) so they answer even while followers hold workers
    quick = {"show_progress": False, "queue": False}
    values = [panel.parameters[name] for name in PARAMETERS]
    by_name = {"status": status, "preview": preview, "grid": grid, "gallery": gallery, "infos": infos,
               "infotext": infotext, "queue": queue, "queue_pick": queue_pick}
    follow_outputs = [by_name[name] for name in GeneratePanel.FOLLOW_FIELDS]
    queue_outputs = [queue, queue_pick]

    # Each of these queues or shows a job, then starts a follower. The browser does not start an
    # event again while its previous run is still going: then the running follower, which
    # follows whatever job the session shows, takes the new one over (no cancels: SDNext logs
    # every Gradio cancel as an error).
    sources = [
        (run_btn, panel.run, [session, prompt, negative, *values]),
        (sweep_btn, panel.sweep, [session, prompt, negative, lora, weights, *values]),
        (ab_btn, panel.ab, [session, prompt, negative, lora, *values]),
        (show_btn, panel.show_picked, [session, queue_pick]),
    ]
    for button, handler, inputs in sources:
        button.click(_with_status(panel, handler), inputs, [notice, status], **quick).then(
            panel.follow, [session], follow_outputs, show_progress=False)
    cancel_btn.click(panel.cancel, [session], [notice], **quick).then(
        panel.refresh_queue, [session, queue_pick], queue_outputs, **quick)
    skip_btn.click(panel.skip, [session], [notice], **quick)
    cancel_job_btn.click(panel.cancel_picked, [session, queue_pick], [notice, *queue_outputs], **quick)
    refresh_btn.click(panel.refresh_queue, [session, queue_pick], queue_outputs, **quick)
    random_btn.click(panel.random_seed, None, [seed], **quick)
    reuse_btn.click(panel.reuse_seed, [session], [seed, notice], **quick)
    def select(shown, evt):
        return panel.select_image(shown, evt.index)

    # Gradio finds the event-data parameter by its annotation, which must be the class itself
    # here (annotations in this module are strings, and gradio is not a module-level name)
    select.__annotations__ = {"evt": gr.SelectData}
    gallery.select(select, [infos], [infotext], **quick)
    prompt.change(panel.lora_choices, [prompt, lora], [lora], **quick)
    return panel


def _with_status(panel: GeneratePanel, handler):
    """``handler`` (its notice), then the status line of the job the panel shows now."""
    def queue_and_show(session, *args):
        return handler(session, *args), panel.shown_status(session)

    queue_and_show.__name__ = f"{handler.__name__}_and_show"
    return queue_and_show


def build_unavailable() -> None:
    """In the panel's place when the host cannot generate: how to turn generation on."""
    import gradio as gr

    gr.HTML(UNAVAILABLE, elem_id="lora_manager_gen_off")
