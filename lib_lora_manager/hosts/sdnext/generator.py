"""Our jobs made by SDNext's own pipeline, in-process."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modules import call_queue, paths, processing, scripts_manager, sd_samplers, shared

from ... import base_models
from ...generation import GenerationOutcome, GenerationRequest, OutputImage, Progress, ProgressCallback
from ...statuses import GenerationSource, GenerationStatus
from .recording import JOB_ATTR, Capture, outputs, pipeline_error, saved_path, shorten, thread_errors, watch_sdnext_log

log = logging.getLogger("lora_manager")

JOB_TITLE = "LoRA Manager"  # our jobs' name in SDNext's job state and history
NO_MODEL_MESSAGE = "No model is loaded in SDNext; load one in SDNext first"
_POLL = 0.25  # seconds between progress reports
_PREVIEW_EVERY = 1.0  # seconds between live-preview decodes (SDNext's UI asks about once a second)
# SDNext model types (modules/modeldata.py get_model_type) -> our base-model families
_FAMILIES = {
    "sd": "sd1", "sdxl": "sdxl", "sd3": "sd3", "f1": "flux", "f2": "flux2", "sc": "sc", "chroma": "chroma",
    "qwen": "qwen", "zimage": "zimage", "wanai": "wan", "hunyuanvideo": "hunyuan_video",
}


@dataclass
class _Job:
    """One of our generations, from the job queue's call until it returns."""

    request: GenerationRequest
    stop: bool = False  # the user asked to interrupt it
    skipped: bool = False
    running: bool = False  # inside process_images: SDNext's state flags are ours to set
    done: threading.Event = field(default_factory=threading.Event)
    capture: Capture | None = None  # filled by Recording.after for our p


class SdnextGenerator:
    """Generation through SDNext's own ``process_images``, called as its txt2img tab calls it
    (modules/txt2img.py), one job at a time, holding SDNext's queue lock so the UI, the API and
    model switches wait for it (and it for them). Files land where SDNext saves txt2img images,
    with SDNext's infotext. The history record of a job comes from the recording hooks
    (``register``), completed here."""

    def __init__(self, submit: Callable[[Capture], None], output_dir: str):
        self._submit = submit
        self._output_dir = output_dir  # for images SDNext did not save
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._previewed_at = 0.0
        watch_sdnext_log()

    # -- what SDNext offers --
    def samplers(self) -> list[str]:
        return [s.name for s in sd_samplers.samplers if not str(s.name).startswith("\u2500")]  # "── Euler ──" rows divide the list

    def upscalers(self) -> list[str]:
        return [u.name for u in shared.sd_upscalers]

    def model_name(self) -> str | None:
        if not shared.sd_loaded:
            return None
        info = getattr(shared.sd_model, "sd_checkpoint_info", None)
        return getattr(info, "model_name", None)

    def defaults(self) -> dict[str, Any]:
        return {}  # SDNext's own request defaults stay as they are

    def model_family(self) -> str | None:
        if not shared.sd_loaded:
            return None
        family = _FAMILIES.get(shared.sd_model_type)
        if family is None:
            return None
        # the pipeline class tells the architecture only: Pony and Illustrious are SDXL, SD 2.x
        # uses SD 1.x's pipeline; the checkpoint's name may say which
        named = base_models.family_code(self.model_name())
        if named and (base_models.BY_CODE[named].arch == base_models.BY_CODE[family].arch or {named, family} == {"sd1", "sd2"}):
            return named
        return family

    # -- control from other threads --
    def interrupt(self) -> None:
        with self._lock:
            job = self._job
            if job is None:
                return
            job.stop = True
            if job.running:
                shared.state.interrupt()

    def skip(self) -> None:
        with self._lock:
            job = self._job
            if job is not None and job.running:
                job.skipped = True
                shared.state.skip()

    # -- generating --
    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationOutcome:
        job = _Job(request)
        with self._lock:
            self._job = job
        try:
            return self._generate(job, progress)
        finally:
            with self._lock:
                self._job = None

    def _generate(self, job: _Job, progress: ProgressCallback) -> GenerationOutcome:
        request = job.request
        if not shared.sd_loaded:  # never shared.sd_model: reading it loads a model
            self._submit(_request_capture(request, GenerationStatus.NO_MODEL, NO_MODEL_MESSAGE))
            return GenerationOutcome(GenerationStatus.NO_MODEL, message=NO_MODEL_MESSAGE)
        problem = self._check(request)
        if problem:
            return GenerationOutcome(GenerationStatus.FAILED, message=problem)
        p = self._processing(request)
        setattr(p, JOB_ATTR, job)
        waiting = Progress(batches=request.n_iter, steps=request.steps, text="waiting for SDNext to finish another generation")
        while not call_queue.queue_lock.acquire(timeout=_POLL):  # never nested: we run on the job worker
            if job.stop:
                return GenerationOutcome(GenerationStatus.INTERRUPTED, message="cancelled before it started")
            progress(waiting)
        result = exception = None
        interrupted = False
        messages: list[str] = []
        try:
            if job.stop:
                return GenerationOutcome(GenerationStatus.INTERRUPTED, message="cancelled before it started")
            if not shared.sd_loaded:  # unloaded while we waited
                self._submit(_request_capture(request, GenerationStatus.NO_MODEL, NO_MODEL_MESSAGE))
                return GenerationOutcome(GenerationStatus.NO_MODEL, message=NO_MODEL_MESSAGE)
            with self._lock:
                job.running = True
            jobid = shared.state.begin(JOB_TITLE)
            mark = thread_errors.begin()
            poller = threading.Thread(target=self._poll, args=(job, p, progress), name="lora-manager-progress", daemon=True)
            poller.start()
            try:
                result = processing.process_images(p)
            except Exception as e:  # noqa: BLE001
                # as SDNext's own UI wrapper does (call_queue.wrap_gradio_call), any exception of a
                # generation becomes that job's error; it is logged with its traceback
                log.exception("LoRA Manager: SDNext raised during a generation")
                exception = e
            finally:
                with self._lock:
                    job.running = False
                job.done.set()
                interrupted = bool(shared.state.interrupted)
                messages = thread_errors.end(mark)
                poller.join()
                p.close()
                shared.state.end(jobid)
        finally:
            call_queue.queue_lock.release()
        outcome = self._outcome(job, result, exception, interrupted, messages)
        self._finish_record(job, outcome)
        return outcome

    def _check(self, request: GenerationRequest) -> str | None:
        if request.sampler_name and request.sampler_name not in self.samplers():
            return f"SDNext has no sampler “{request.sampler_name}” (it has: {', '.join(self.samplers())})"
        if request.enable_hr and request.hr_upscaler and request.hr_upscaler not in self.upscalers():
            return f"SDNext has no upscaler “{request.hr_upscaler}” (it has: {', '.join(self.upscalers())})"
        return None

    def _default_upscaler(self) -> str:
        names = self.upscalers()
        latent = [n for n in names if n.lower().startswith("latent")]
        return (latent or [n for n in names if n != "None"] or ["None"])[0]

    def _processing(self, request: GenerationRequest):
        opts = shared.opts
        kwargs: dict[str, Any] = dict(
            prompt=request.prompt, negative_prompt=request.negative_prompt, seed=request.seed, steps=request.steps,
            cfg_scale=request.cfg_scale, width=request.width, height=request.height, sampler_name=request.sampler_name,
            batch_size=request.batch_size, n_iter=request.n_iter,
            # where SDNext's own txt2img tab saves (modules/txt2img.py); samples_save etc. apply
            outpath_samples=paths.resolve_output_path(opts.outdir_samples, opts.outdir_txt2img_samples),
            outpath_grids=paths.resolve_output_path(opts.outdir_grids, opts.outdir_txt2img_grids),
        )
        if request.enable_hr:
            # A1111's hires fix: upscale by hr_scale ("Fixed" resize mode), then always a second
            # pass at the denoising strength (SDNext runs it only for latent upscalers unless forced)
            kwargs.update(enable_hr=True, hr_scale=request.hr_scale, hr_upscaler=request.hr_upscaler or self._default_upscaler(),
                          hr_resize_mode=1, hr_force=True, hr_second_pass_steps=request.hr_second_pass_steps,
                          denoising_strength=request.denoising_strength, hr_denoising_strength=request.denoising_strength)
        p = processing.StableDiffusionProcessingTxt2Img(**kwargs)
        # an empty runner: no extension scripts run for our jobs, but with a runner SDNext puts
        # the <lora:…> tokens back into p.prompts before writing each image's infotext
        p.scripts = scripts_manager.ScriptRunner(JOB_TITLE)
        return p

    def _poll(self, job: _Job, p, progress: ProgressCallback) -> None:
        while not job.done.is_set():
            state = shared.state
            if job.stop and not state.interrupted:
                state.interrupt()  # SDNext's nested state.begin() calls reset the flag: ask again
            progress(Progress(step=state.sampling_step, steps=state.sampling_steps or p.steps, batch=p.iteration,
                              batches=p.n_iter, text=state.textinfo or state.job or ""))
            job.done.wait(_POLL)

    def preview(self):
        """The running job's live preview, decoded now from the current latent, on the asking
        thread, at most once a second: what SDNext's progress API does when its UI asks. Nobody
        watching (a REST client) costs the generation nothing."""
        with self._lock:
            job = self._job
            if job is None or not job.running:
                return None
            state = shared.state
            now = time.monotonic()
            if now - self._previewed_at >= _PREVIEW_EVERY and hasattr(state, "set_current_image"):
                self._previewed_at = now
                state.set_current_image()
            return state.current_image

    def _outcome(self, job: _Job, result, exception, interrupted: bool, messages: list[str]) -> GenerationOutcome:
        if exception is not None:
            return GenerationOutcome(GenerationStatus.FAILED, message=f"SDNext failed: {type(exception).__name__}: {exception}")
        if result is None:
            if not shared.sd_loaded:
                return GenerationOutcome(GenerationStatus.NO_MODEL, message=NO_MODEL_MESSAGE)
            return GenerationOutcome(GenerationStatus.FAILED, message="SDNext did not run the generation; see SDNext's log")
        images = self._images(result)
        error = pipeline_error(messages) or (shorten(messages[-1]) if messages else None)
        if interrupted:
            if job.stop:
                return GenerationOutcome(GenerationStatus.INTERRUPTED, images, "interrupted")
            if error:
                return GenerationOutcome(GenerationStatus.FAILED, images,
                                         f"the pipeline stopped with an error; see SDNext's log: {error}")
            return GenerationOutcome(GenerationStatus.INTERRUPTED, images, "stopped from SDNext (its Stop button or API)")
        if not images:
            if job.skipped:
                return GenerationOutcome(GenerationStatus.INTERRUPTED, message="skipped")
            return GenerationOutcome(GenerationStatus.FAILED,
                                     message=f"SDNext returned no images{f'; see its log: {error}' if error else ''}")
        return GenerationOutcome(GenerationStatus.SUCCEEDED, images, "some batches were skipped" if job.skipped else "")

    def _images(self, result) -> list[OutputImage]:
        out = []
        for image, text, seed in outputs(result):
            path = saved_path(image) or self._save(image, text)
            out.append(OutputImage(path=path, infotext=text, seed=seed))
        return out

    def _save(self, image, infotext: str) -> str:
        """A PNG with its infotext in our data folder, for images SDNext did not save."""
        from PIL import PngImagePlugin

        folder = os.path.join(self._output_dir, time.strftime("%Y-%m-%d"))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:8]}.png")
        info = PngImagePlugin.PngInfo()
        if infotext:
            info.add_text("parameters", infotext)
        image.save(path, "PNG", pnginfo=info)
        return path

    def _finish_record(self, job: _Job, outcome: GenerationOutcome) -> None:
        capture = job.capture or _request_capture(job.request, outcome.status, outcome.message, outcome.images)
        record = capture.record
        record.status = outcome.status
        record.error = outcome.message if outcome.status in (GenerationStatus.FAILED, GenerationStatus.NO_MODEL) else None
        record.group, record.label, record.source = job.request.group, job.request.label, GenerationSource.LORA_MANAGER
        saved = {n for n, _image in capture.unsaved if n < len(outcome.images)}
        for n in saved:  # we saved these ourselves: no thumbnails needed
            record.images[n].path = outcome.images[n].path
        capture.unsaved = [(n, image) for n, image in capture.unsaved if n not in saved]
        self._submit(capture)


def _request_capture(request: GenerationRequest, status: GenerationStatus, error: str, images: list[OutputImage] = ()) -> Capture:
    """A record of one of our jobs made from the request: it never reached process_images, or
    SDNext's after-process hook did not report it."""
    from ...history import GeneratedImage, GenerationRecord

    return Capture(GenerationRecord(
        started_at=time.time(), status=status, duration=0.0, source=GenerationSource.LORA_MANAGER, prompt=request.prompt,
        negative_prompt=request.negative_prompt, width=request.width, height=request.height, steps=request.steps,
        sampler=request.sampler_name, cfg_scale=request.cfg_scale, error=error, group=request.group,
        label=request.label, loras=GenerationRecord.loras_from_prompt(request.prompt),
        images=[GeneratedImage(path=i.path, seed=i.seed) for i in images]))
