"""Recording every generation SDNext makes.

SDNext calls ``on_before_process``/``on_after_process`` around every ``process_images`` call: its
tabs, its REST API, scripts such as xyz-grid, and our own jobs. ``Recording`` keeps a frame per
call (calls nest), reads what the call made, and hands a ``Capture`` to the history recorder; the
generating thread only builds the record. ``ThreadErrors`` notes the errors SDNext logs on a
generating thread, because SDNext turns pipeline errors into an "interrupted" flag and logs them
instead of raising.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules import processing, shared
from modules.lora import lora_common

from ...statuses import GenerationSource, GenerationStatus

if TYPE_CHECKING:
    from ...history import GenerationRecord

log = logging.getLogger("lora_manager")

JOB_ATTR = "lora_manager_job"  # set on the ``p`` of our own jobs (generator.py)
_SEED = re.compile(r"(?:^|, )Seed: (-?\d+)(?:,|$)", re.MULTILINE)


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
        if record.name.split(".")[0] == "lora_manager":
            return  # ours share SDNext's handlers: they are not SDNext's errors
        entry = self._threads.get(record.thread)
        if entry is not None:
            entry[1].append(record.getMessage())


thread_errors = ThreadErrors()


def watch_sdnext_log() -> None:
    if thread_errors not in shared.log.handlers:
        shared.log.addHandler(thread_errors)


def pipeline_error(messages: list[str]) -> str | None:
    """SDNext's pipeline catch logs "Processing: …" (modules/processing_diffusers.py process_base,
    hires and refine passes); other errors (a LoRA that did not load…) do not stop a run."""
    return next((shorten(m) for m in messages if m.startswith("Processing")), None)


def shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:100]} … {text[-(limit - 103):]}"


# --- what a generation made ---------------------------------------------------------------------


def outputs(result) -> list[tuple[Any, str, int | None]]:
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


def saved_path(image) -> str | None:
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
        source = GenerationSource.LORA_MANAGER if getattr(p, JOB_ATTR, None) is not None else (outer[0] if outer else _source(p))
        self._sources.setdefault(ident, []).append(source)
        frame = _Frame(time.time(), time.perf_counter(), processing.processed, thread_errors.begin(), source)
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
        messages = thread_errors.end(frame.errors_mark)
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
        job = getattr(p, JOB_ATTR, None)
        if job is not None:
            job.capture = capture  # the generator completes it with what only it knows
        else:
            self._submit(capture)

    @staticmethod
    def capture(p, frame: _Frame, messages: list[str], raised: BaseException | None) -> Capture:
        from ...history import GeneratedImage, GenerationRecord

        result = processing.processed
        if result is frame.result_before or result is None or getattr(result, "extra_generation_params", None) is not p.extra_generation_params:
            result = None
        made = outputs(result) if result is not None else []
        error = None
        if raised is not None:
            status, error = GenerationStatus.FAILED, f"{type(raised).__name__}: {raised}"
        elif result is None:
            status, error = GenerationStatus.FAILED, "SDNext returned no result"
        elif shared.state.interrupted:
            error = pipeline_error(messages)
            status = GenerationStatus.FAILED if error else GenerationStatus.INTERRUPTED
        elif not made:
            status = GenerationStatus.INTERRUPTED if shared.state.skipped else GenerationStatus.FAILED
            error = None if shared.state.skipped else (pipeline_error(messages) or "SDNext returned no images")
        else:
            status = GenerationStatus.SUCCEEDED
        prompt = _first_prompt(p.all_prompts, p.prompt)
        model_name = model_hash = None
        if shared.sd_loaded:  # never shared.sd_model otherwise: reading it loads a model
            model = shared.sd_model
            info = getattr(model, "sd_checkpoint_info", None)
            model_name = getattr(info, "model_name", None)
            model_hash = getattr(info, "shorthash", None) or getattr(model, "sd_model_hash", None)
        images, unsaved = [], []
        for n, (image, _text, seed) in enumerate(made):
            path = saved_path(image)
            images.append(GeneratedImage(path=path, seed=seed))
            if path is None:
                unsaved.append((n, image))
        record = GenerationRecord(
            started_at=frame.started_at, status=status, duration=time.perf_counter() - frame.clock,
            source=frame.source, prompt=prompt, negative_prompt=_first_prompt(p.all_negative_prompts, p.negative_prompt),
            seeds=[int(s) for s in (p.all_seeds or [])], width=p.width, height=p.height, steps=p.steps,
            sampler=p.sampler_name, cfg_scale=_given(p.cfg_scale), model_name=model_name, model_hash=model_hash,
            infotext=(made[0][1] if made else None) or (getattr(result, "info", None) or None), error=error,
            loras=GenerationRecord.loras_from_prompt(prompt), images=images,
        )
        files = _loaded_files()
        for used in record.loras:
            used.path = files.get(used.name)

        return Capture(record, unsaved)


def _loaded_files() -> dict[str, str]:
    """Name as written in the prompt -> file, for the LoRAs SDNext loaded (its last batch): a
    name several library files share resolves to the one SDNext picked."""
    files: dict[str, str] = {}
    for net in list(lora_common.loaded_networks):
        filename = getattr(getattr(net, "network_on_disk", None), "filename", None)
        for name in (getattr(net, "mentioned_name", None), getattr(net, "name", None)):
            if name and filename:
                files.setdefault(str(name), os.path.abspath(filename))
    return files


def _given(value: float | None) -> float | None:
    """SDNext's tabs pass -1 for "the model's default"; the record leaves it unknown."""
    return value if isinstance(value, (int, float)) and value >= 0 else None


def _raised_in(error: BaseException, p) -> bool:
    """Whether ``error`` is propagating out of the process_images call of ``p`` (and not one
    handled further up while someone calls process_images)."""
    tb = error.__traceback__
    return tb is not None and tb.tb_frame.f_locals.get("p") is p


_SOURCES = (("Control", GenerationSource.CONTROL), ("Img2Img", GenerationSource.IMG2IMG), ("Video", GenerationSource.VIDEO),
            ("Txt2Img", GenerationSource.TXT2IMG))  # by SDNext's processing class names


def _source(p) -> str:
    if shared.state.api or str(shared.state.job).startswith("API-"):
        return GenerationSource.API
    name = type(p).__name__
    for marker, source in _SOURCES:
        if marker in name:
            return source
    return name[:40]
