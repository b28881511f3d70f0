"""SDNext host: the only module that imports SDNext's ``modules``.

Registered from scripts/lora_manager.py while SDNext imports extension scripts. Startup stays
cheap: importing this module loads neither SQLAlchemy nor the library; the tab is built without
reading the database; the library opens on a background thread once the app has started (or on
the first request that needs it), then syncs the index and hashes in the background.

Three things run inside SDNext's generations (research/sdnext-contract.md §3.6, §5):
- ``SdnextGenerator`` makes our jobs with ``processing.process_images`` under SDNext's queue lock;
- ``Recording`` watches every ``process_images`` call (tabs, API, scripts, our jobs) through
  ``on_before_process``/``on_after_process`` and hands a history record to a ``history.Recorder``,
  which stores it on its own thread: the generating thread only fills a record;
- ``ThreadErrors`` notes the errors SDNext logs on a generating thread, because SDNext turns
  pipeline errors into an "interrupted" flag and logs them instead of raising.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules import call_queue, paths, processing, script_callbacks, scripts_manager, sd_samplers, shared

from .. import base_models, settings
from ..generation import (
    FAILED, INTERRUPTED, NO_MODEL, SUCCEEDED, GenerationOutcome, GenerationRequest, OutputImage, Progress,
    ProgressCallback,
)
from ..hostinfo import HostInfo

if TYPE_CHECKING:
    from ..history import GenerationRecord, Recorder
    from ..jobs import JobQueue
    from ..library import Library

log = logging.getLogger("lora_manager")
_library: Library | None = None
_library_lock = threading.Lock()

JOB_TITLE = "LoRA Manager"  # our jobs' name in SDNext's job state and history
NO_MODEL_MESSAGE = "No model is loaded in SDNext; load one in SDNext first"
_JOB_ATTR = "lora_manager_job"  # set on the ``p`` of our own jobs
_POLL = 0.25  # seconds between progress reports
_PREVIEW_EVERY = 1.0  # seconds between live-preview decodes (SDNext's UI asks about once a second)
_THUMBNAIL = 512
_SEED = re.compile(r"(?:^|, )Seed: (-?\d+)(?:,|$)", re.MULTILINE)
# SDNext model types (modules/modeldata.py get_model_type) -> our base-model families
_FAMILIES = {
    "sd": "sd1", "sdxl": "sdxl", "sd3": "sd3", "f1": "flux", "f2": "flux2", "sc": "sc", "chroma": "chroma",
    "qwen": "qwen", "zimage": "zimage", "wanai": "wan", "hunyuanvideo": "hunyuan_video",
}


def setting(key: str):
    """Current value of one of our settings (saved values sit in opts.data before registration)."""
    default = settings.BY_KEY[key].default
    value = shared.opts.data.get(key, default)
    return default if value is None else value


def data_dir() -> str:
    return os.path.join(paths.data_path, "data", "lora-manager")


def library_roots() -> list[str]:
    """SDNext's LoRA folder first (names there resolve without a path), then our extra folders."""
    lora_dir = getattr(shared.cmd_opts, "lora_dir", None) or shared.opts.data.get("lora_dir")
    return [p for p in [lora_dir, *settings.parse_dirs(setting("lora_manager_extra_dirs"))] if p]


def database_url() -> str | None:
    return os.environ.get("LORA_MANAGER_DATABASE_URL") or setting("lora_manager_database_secret") or None


def library() -> Library:
    """The library, opened (and migrated) on first use; later calls return the same object."""
    global _library
    with _library_lock:
        if _library is None:
            from ..library import Library

            _library = Library.open(data_dir(), roots=library_roots(), database_url=database_url(),
                                    hashing=bool(setting("lora_manager_hashing")) and not getattr(shared.cmd_opts, "no_hashing", False))
        return _library


# --- errors SDNext logs while generating --------------------------------------------------------


class ThreadErrors(logging.Handler):
    """Error records logged on the threads where a generation is being watched.

    SDNext catches pipeline errors, sets ``state.interrupted`` and logs them; from outside that
    looks like a user's interrupt, except in the log. ``begin()`` starts watching the current
    thread (watches nest) and returns a mark; ``end(mark)`` returns what was logged since."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self._threads: dict[int, list] = {}  # thread id -> [open watches, messages]

    def begin(self) -> int:
        entry = self._threads.setdefault(threading.get_ident(), [0, []])
        entry[0] += 1
        return len(entry[1])

    def end(self, mark: int) -> list[str]:
        ident = threading.get_ident()
        entry = self._threads.get(ident)
        if entry is None:
            return []
        messages = entry[1][mark:]
        entry[0] -= 1
        if entry[0] <= 0:
            del self._threads[ident]
        return messages

    def emit(self, record: logging.LogRecord) -> None:
        entry = self._threads.get(record.thread)
        if entry is not None:
            entry[1].append(record.getMessage())


_errors = ThreadErrors()


def _watch_sdnext_log() -> None:
    if _errors not in shared.log.handlers:
        shared.log.addHandler(_errors)


def _pipeline_error(messages: list[str]) -> str | None:
    """SDNext's pipeline catch logs "Processing: …" (processing_diffusers.py process_base,
    hires and refine passes); other errors (a LoRA that did not load…) do not stop a run."""
    return next((_shorten(m) for m in messages if m.startswith("Processing")), None)


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:100]} … {text[-(limit - 103):]}"


# --- what a generation made ---------------------------------------------------------------------


def _outputs(result) -> list[tuple[Any, str, int | None]]:
    """(image, infotext, seed) of a Processed's images: the grid and extra images (detailer
    annotations, masks: they carry no infotext) left out."""
    images = list(result.images or [])[result.index_of_first_image:]
    with_text = [i for i in images if "parameters" in (getattr(i, "info", None) or {})]
    out = []
    for n, image in enumerate(with_text or images):
        text = (getattr(image, "info", None) or {}).get("parameters") or ""
        match = _SEED.search(text)
        seed = int(match.group(1)) if match else (result.all_seeds[n] if n < len(result.all_seeds or []) else None)
        out.append((image, text, seed))
    return out


def _saved_path(image) -> str | None:
    path = getattr(image, "already_saved_as", None)
    return os.path.abspath(path) if path else None  # SDNext's output folders are relative to its root


def _first_prompt(all_values, value) -> str:
    if all_values:
        return str(all_values[0])
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


@dataclass
class Capture:
    """A finished generation for the recorder thread: its record, and the images SDNext did
    not save as (index in ``record.images``, PIL image), to be thumbnailed there."""

    record: GenerationRecord
    unsaved: list[tuple[int, Any]] = field(default_factory=list)


@dataclass
class _Frame:
    started_at: float
    clock: float
    result_before: Any  # processing.processed when the call began
    errors_mark: int
    source: str


@dataclass
class _Job:
    """One of our generations, from the job queue's call until it returns."""

    request: GenerationRequest
    stop: bool = False  # the user asked to interrupt it
    skipped: bool = False
    running: bool = False  # inside process_images: SDNext's state flags are ours to set
    done: threading.Event = field(default_factory=threading.Event)
    capture: Capture | None = None  # filled by Recording.after for our p


class Recording:
    """The before/after-process hooks that put every SDNext generation into the history.

    Calls nest (a script's hook may call process_images again), so frames are stacked per ``p``;
    the result is ``processing.processed`` if it changed during the call and belongs to ``p``
    (SDNext gives Processed the very ``extra_generation_params`` dict of its ``p``)."""

    def __init__(self, submit):
        self._submit = submit
        self._frames: dict[int, list[_Frame]] = {}
        self._sources: dict[int, list[str]] = {}  # thread id -> sources of its open frames

    def before(self, p) -> None:
        ident = threading.get_ident()
        outer = self._sources.get(ident)
        # an inner call inherits its source: SDNext's state.begin('Process') of the outer call
        # already reset the API flag, and a script's inner p is a plain Txt2Img
        source = "lora-manager" if getattr(p, _JOB_ATTR, None) is not None else (outer[0] if outer else _source(p))
        self._sources.setdefault(ident, []).append(source)
        frame = _Frame(time.time(), time.perf_counter(), processing.processed, _errors.begin(), source)
        self._frames.setdefault(id(p), []).append(frame)

    def after(self, p) -> None:
        stack = self._frames.get(id(p))
        if not stack:
            return  # began before we were registered
        frame = stack.pop()
        if not stack:
            del self._frames[id(p)]
        sources = self._sources.get(threading.get_ident())
        if sources:
            sources.pop()
            if not sources:
                del self._sources[threading.get_ident()]
        messages = _errors.end(frame.errors_mark)
        raised = sys.exc_info()[1]  # after_process runs in process_images' finally
        if raised is not None and not _raised_in(raised, p):
            raised = None
        # SDNext runs this hook in the generating thread and shows anything it raises as a
        # callback error; a record that cannot be built from an odd ``p`` is ours to report
        try:
            capture = self.capture(p, frame, messages, raised)
        except (AttributeError, TypeError, ValueError, LookupError) as e:
            log.error("LoRA Manager: a generation could not be recorded: %s: %s", type(e).__name__, e)
            return
        job = getattr(p, _JOB_ATTR, None)
        if job is not None:
            job.capture = capture  # the generator completes it with what only it knows
        else:
            self._submit(capture)

    @staticmethod
    def capture(p, frame: _Frame, messages: list[str], raised: BaseException | None) -> Capture:
        from ..history import GeneratedImage, GenerationRecord

        result = processing.processed
        if result is frame.result_before or result is None or getattr(result, "extra_generation_params", None) is not p.extra_generation_params:
            result = None
        outputs = _outputs(result) if result is not None else []
        error = None
        if raised is not None:
            status, error = "failed", f"{type(raised).__name__}: {raised}"
        elif result is None:
            status, error = "failed", "SDNext returned no result"
        elif shared.state.interrupted:
            error = _pipeline_error(messages)
            status = "failed" if error else "interrupted"
        elif not outputs:
            status = "interrupted" if shared.state.skipped else "failed"
            error = None if shared.state.skipped else (_pipeline_error(messages) or "SDNext returned no images")
        else:
            status = "succeeded"
        prompt = _first_prompt(p.all_prompts, p.prompt)
        model_name = model_hash = None
        if shared.sd_loaded:  # never shared.sd_model otherwise: reading it loads a model
            model = shared.sd_model
            info = getattr(model, "sd_checkpoint_info", None)
            model_name = getattr(info, "model_name", None)
            model_hash = getattr(info, "shorthash", None) or getattr(model, "sd_model_hash", None)
        images, unsaved = [], []
        for n, (image, _text, seed) in enumerate(outputs):
            path = _saved_path(image)
            images.append(GeneratedImage(path=path, seed=seed))
            if path is None:
                unsaved.append((n, image))
        record = GenerationRecord(
            started_at=frame.started_at, status=status, duration=time.perf_counter() - frame.clock,
            source=frame.source, prompt=prompt, negative_prompt=_first_prompt(p.all_negative_prompts, p.negative_prompt),
            seeds=[int(s) for s in (p.all_seeds or [])], width=p.width, height=p.height, steps=p.steps,
            sampler=p.sampler_name, cfg_scale=p.cfg_scale, model_name=model_name, model_hash=model_hash,
            infotext=(outputs[0][1] if outputs else None) or (getattr(result, "info", None) or None), error=error,
            loras=GenerationRecord.loras_from_prompt(prompt), images=images,
        )
        return Capture(record, unsaved)


def _raised_in(error: BaseException, p) -> bool:
    """Whether ``error`` is propagating out of the process_images call of ``p`` (and not one
    handled further up while someone calls process_images)."""
    tb = error.__traceback__
    return tb is not None and tb.tb_frame.f_locals.get("p") is p


def _source(p) -> str:
    if shared.state.api or str(shared.state.job).startswith("API-"):
        return "api"
    name = type(p).__name__
    for marker, source in (("Control", "control"), ("Img2Img", "img2img"), ("Video", "video"), ("Txt2Img", "txt2img")):
        if marker in name:
            return source
    return name[:40]


# --- storing records ----------------------------------------------------------------------------

_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def recorder() -> Recorder:
    """The history recorder (and its thread), made on first use."""
    global _recorder
    with _recorder_lock:
        if _recorder is None:
            from ..history import Recorder

            _recorder = Recorder(_store)
        return _recorder


def _submit(capture: Capture) -> None:
    recorder().submit(capture)


def _store(capture: Capture) -> int:
    """On the recorder's thread: thumbnails of the images SDNext did not save, then the record."""
    if capture.unsaved:
        from PIL import Image

        folder = os.path.join(data_dir(), "thumbnails", time.strftime("%Y-%m", time.localtime(capture.record.started_at)))
        os.makedirs(folder, exist_ok=True)
        for index, image in capture.unsaved:
            path = os.path.join(folder, f"{uuid.uuid4().hex}.jpg")
            try:
                thumb = image.convert("RGB")  # a copy: SDNext may still be encoding the original
                thumb.thumbnail((_THUMBNAIL, _THUMBNAIL), Image.Resampling.LANCZOS)
                thumb.save(path, "JPEG", quality=85)
            except (OSError, ValueError) as e:  # an odd image mode, a full disk: the record still counts
                log.warning("LoRA Manager: no thumbnail for a generated image: %s", e)
                continue
            capture.record.images[index].thumbnail = path
    return library().record_generation(capture.record)


_recording = Recording(_submit)


# --- our own generations ------------------------------------------------------------------------


class SdnextGenerator:
    """Generation through SDNext's own ``process_images`` (contract §5.1), one job at a time,
    holding SDNext's queue lock so the UI, the API and model switches wait for it (and it for
    them). Files land where SDNext saves txt2img images, with SDNext's infotext. The history
    record of a job comes from the recording hooks (``register``), completed here."""

    def __init__(self, submit=_submit):
        self._submit = submit
        self._lock = threading.Lock()
        self._job: _Job | None = None
        _watch_sdnext_log()

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
            self._submit(_request_capture(request, NO_MODEL, NO_MODEL_MESSAGE))
            return GenerationOutcome(NO_MODEL, message=NO_MODEL_MESSAGE)
        problem = self._check(request)
        if problem:
            return GenerationOutcome(FAILED, message=problem)
        p = self._processing(request)
        setattr(p, _JOB_ATTR, job)
        waiting = Progress(batches=request.n_iter, steps=request.steps, text="waiting for SDNext to finish another generation")
        while not call_queue.queue_lock.acquire(timeout=_POLL):  # never nested: we run on the job worker
            if job.stop:
                return GenerationOutcome(INTERRUPTED, message="cancelled before it started")
            progress(waiting)
        result = exception = None
        interrupted = False
        messages: list[str] = []
        try:
            if job.stop:
                return GenerationOutcome(INTERRUPTED, message="cancelled before it started")
            if not shared.sd_loaded:  # unloaded while we waited
                self._submit(_request_capture(request, NO_MODEL, NO_MODEL_MESSAGE))
                return GenerationOutcome(NO_MODEL, message=NO_MODEL_MESSAGE)
            with self._lock:
                job.running = True
            jobid = shared.state.begin(JOB_TITLE)
            mark = _errors.begin()
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
                messages = _errors.end(mark)
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
        last_preview = 0.0
        while not job.done.is_set():
            state = shared.state
            if job.stop and not state.interrupted:
                state.interrupt()  # SDNext's nested state.begin() calls reset the flag: ask again
            now = time.monotonic()
            # what SDNext's progress API does for its live preview: decode the current latent
            if now - last_preview >= _PREVIEW_EVERY and hasattr(state, "set_current_image") and state.set_current_image():
                last_preview = now
            progress(Progress(step=state.sampling_step, steps=state.sampling_steps or p.steps, batch=p.iteration,
                              batches=p.n_iter, text=state.textinfo or state.job or "", preview=state.current_image))
            job.done.wait(_POLL)

    def _outcome(self, job: _Job, result, exception, interrupted: bool, messages: list[str]) -> GenerationOutcome:
        if exception is not None:
            return GenerationOutcome(FAILED, message=f"SDNext failed: {type(exception).__name__}: {exception}")
        if result is None:
            if not shared.sd_loaded:
                return GenerationOutcome(NO_MODEL, message=NO_MODEL_MESSAGE)
            return GenerationOutcome(FAILED, message="SDNext did not run the generation; see SDNext's log")
        images = self._images(result)
        error = _pipeline_error(messages) or (_shorten(messages[-1]) if messages else None)
        if interrupted:
            if job.stop:
                return GenerationOutcome(INTERRUPTED, images, "interrupted")
            if error:
                return GenerationOutcome(FAILED, images, f"the pipeline stopped with an error; see SDNext's log: {error}")
            return GenerationOutcome(INTERRUPTED, images, "stopped from SDNext (its Stop button or API)")
        if not images:
            if job.skipped:
                return GenerationOutcome(INTERRUPTED, message="skipped")
            return GenerationOutcome(FAILED, message=f"SDNext returned no images{f'; see its log: {error}' if error else ''}")
        return GenerationOutcome(SUCCEEDED, images, "some batches were skipped" if job.skipped else "")

    def _images(self, result) -> list[OutputImage]:
        out = []
        for image, text, seed in _outputs(result):
            path = _saved_path(image) or self._save(image, text)
            out.append(OutputImage(path=path, infotext=text, seed=seed))
        return out

    @staticmethod
    def _save(image, infotext: str) -> str:
        """A PNG with its infotext in our data folder, for images SDNext did not save."""
        from PIL import PngImagePlugin

        folder = os.path.join(data_dir(), "outputs", time.strftime("%Y-%m-%d"))
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
        record.error = outcome.message if outcome.status in (FAILED, NO_MODEL) else None
        record.group, record.label, record.source = job.request.group, job.request.label, "lora-manager"
        saved = {n for n, _image in capture.unsaved if n < len(outcome.images)}
        for n in saved:  # we saved these ourselves: no thumbnails needed
            record.images[n].path = outcome.images[n].path
        capture.unsaved = [(n, image) for n, image in capture.unsaved if n not in saved]
        self._submit(capture)


def _request_capture(request: GenerationRequest, status: str, error: str, images: list[OutputImage] = ()) -> Capture:
    """A record of one of our jobs made from the request: it never reached process_images, or
    SDNext's after-process hook did not report it."""
    from ..history import GeneratedImage, GenerationRecord

    return Capture(GenerationRecord(
        started_at=time.time(), status=status, duration=0.0, source="lora-manager", prompt=request.prompt,
        negative_prompt=request.negative_prompt, width=request.width, height=request.height, steps=request.steps,
        sampler=request.sampler_name, cfg_scale=request.cfg_scale, error=error, group=request.group,
        label=request.label, loras=GenerationRecord.loras_from_prompt(request.prompt),
        images=[GeneratedImage(path=i.path, seed=i.seed) for i in images]))


_generator: SdnextGenerator | None = None
_jobs: JobQueue | None = None
_jobs_lock = threading.Lock()


def generator() -> SdnextGenerator:
    global _generator
    if _generator is None:
        _generator = SdnextGenerator()
    return _generator


def job_queue() -> JobQueue:
    """The job queue over our generator, made and started on first use (jobs a previous run
    left queued go on)."""
    global _jobs
    with _jobs_lock:
        if _jobs is None:
            from ..jobs import JobQueue

            _jobs = JobQueue(library(), generator(), grid_dir=os.path.join(data_dir(), "grids"))
            _jobs.start()
        return _jobs


def shutdown(timeout: float = 5.0) -> None:
    """Stop the job worker and store the pending history records (tests, and restarts)."""
    if _jobs is not None:
        _jobs.close(timeout)
    if _recorder is not None:
        _recorder.flush(timeout)


def host_info() -> HostInfo:
    # behind a reverse proxy SDNext serves under --subpath; our routes are mounted there too
    subpath = (getattr(shared.cmd_opts, "subpath", None) or shared.opts.data.get("subpath") or "").strip("/")
    return HostInfo(name="sdnext", api_base=f"/{subpath}" if subpath else "", setting=setting,
                    generator=generator(), jobs=job_queue, bind_paste=bind_paste)


def paste_target() -> str:
    """The SDNext tab that takes pasted parameters: ModernUI hides the legacy Text tab by default
    (``uiux_hide_legacy``), and then Control is where txt2img happens."""
    modern = shared.opts.data.get("theme_type", "Modern") == "Modern"
    return "control" if modern and shared.opts.data.get("uiux_hide_legacy", True) else "txt2img"


def bind_paste(button, infotext) -> None:
    """SDNext's own paste: the button sends every parameter of the infotext component to the
    generation tab and switches to it. Bindings registered while tabs are built are connected
    by SDNext once all tabs exist."""
    from modules import generation_parameters_copypaste

    generation_parameters_copypaste.register_paste_params_button(generation_parameters_copypaste.ParamBinding(
        paste_button=button, tabname=paste_target(), source_text_component=infotext))


# --- callbacks ---------------------------------------------------------------------------------


def on_ui_settings() -> None:
    for s in settings.SETTINGS:
        info = shared.OptionInfo(default=s.default, label=s.label, section=settings.SECTION)
        if s.help:
            info = info.info(s.help)
        if s.restart:
            info = info.needs_restart()
        shared.opts.add_option(s.key, info)
    shared.opts.onchange("lora_manager_extra_dirs", _roots_changed, call=False)
    shared.opts.onchange("lora_dir", _roots_changed, call=False)
    shared.opts.onchange("lora_manager_hashing", _hashing_changed, call=False)


def on_ui_tabs():
    from ..ui import build_tabs

    return build_tabs(library, host_info())


def on_app_started(_demo, _app) -> None:
    from .. import api

    for path, endpoint, methods in api.routes(library):
        shared.api.add_api_route(path, endpoint, methods=methods)
    threading.Thread(target=_open_and_sync, name="lora-manager-start", daemon=True).start()


def _open_and_sync() -> None:
    lib = library()
    lib.start_background(scan=bool(setting("lora_manager_scan_on_start")))
    _resume_jobs(lib)


def _resume_jobs(lib: Library) -> None:
    """Start the job worker now if the previous run left jobs queued (they go on) or running
    (they are marked interrupted); otherwise it starts when someone first uses the queue."""
    from sqlalchemy import func, select

    from ..jobs import QUEUED, RUNNING
    from ..models import Job

    with lib.db.read() as session:
        left = session.scalar(select(func.count(Job.id)).where(Job.status.in_((QUEUED, RUNNING))))
    if left:
        job_queue()


def _roots_changed() -> None:
    lib = library()
    lib.set_roots(library_roots())
    lib.scan_in_background()


def _hashing_changed() -> None:
    lib = library()
    lib.hashing = bool(setting("lora_manager_hashing"))
    if lib.hashing:
        lib.start_background(scan=False)


def register() -> None:
    _watch_sdnext_log()
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_ui_tabs(on_ui_tabs)
    script_callbacks.on_app_started(on_app_started)
    script_callbacks.on_before_process(_recording.before)
    script_callbacks.on_after_process(_recording.after)
