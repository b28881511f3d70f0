"""Standalone image generation: a diffusers Stable Diffusion pipeline, in-process, on the CPU.

``DiffusersGenerator`` is the standalone host's ``generation.Generator``. It loads the model on
the first generation (SD 1.x/2.x and SDXL diffusers folders; single-file checkpoints with a
local config), applies the prompt's ``<lora:NAME:W>`` tokens through diffusers' PEFT adapters
(kept loaded, keyed by file and mtime), samples with the user's sampler, optionally runs a
latent hires pass, and saves PNGs with SDNext-style infotext. torch and diffusers are imported
on first use only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import os
import random
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import demo_model
from ..errors import InvalidInput, NotFound
from ..generation import FIELDS, GenerationOutcome, GenerationRequest, OutputImage, Progress, ProgressCallback
from ..history import GeneratedImage, GenerationRecord
from ..naming import format_weight
from ..prompts import LoraRef, extract_loras, write_infotext
from ..safetensors_header import HeaderError, read_header
from ..statuses import GenerationSource, GenerationStatus
from ..wording import plural

log = logging.getLogger("lora_manager")

APP = "LoRA Manager"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

# Sampler names SDNext and A1111 users know -> (diffusers scheduler class, config overrides).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),  # needs scipy
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": False}),
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
}
# Hires fix: the first pass's latents are resized with torch's interpolation, then img2img.
UPSCALERS: dict[str, str] = {"Latent": "bilinear", "Latent (bicubic)": "bicubic", "Latent (nearest)": "nearest",
                             "Latent (nearest-exact)": "nearest-exact"}
_PIPELINES = {"StableDiffusionPipeline": "sd", "StableDiffusionXLPipeline": "sdxl"}
# The repositories diffusers' from_single_file takes configs from (single_file_utils), per family.
_DEFAULT_CONFIGS = {"sd1": "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd2": "stabilityai/stable-diffusion-2-1",
                    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0"}
_CONTEXT_FAMILY = {768: "sd1", 1024: "sd2", demo_model.UNET["cross_attention_dim"]: "sd1"}
_MAX_ADAPTERS = 8  # LoRAs kept loaded between generations (beyond those a prompt uses)
# Errors a LoRA file can make diffusers/PEFT/torch raise while it is read or injected: the
# LoRA is reported and left out, the generation goes on.
_LORA_ERRORS = (RuntimeError, ValueError, LookupError, OSError, TypeError, EOFError)
# Errors a broken model folder or checkpoint can raise while loading.
_MODEL_ERRORS = (OSError, ValueError, RuntimeError, LookupError, TypeError, EOFError)
# Errors the pipeline itself can raise during sampling (bad sizes, out of memory, …).
_PIPELINE_ERRORS = (RuntimeError, ValueError, TypeError, LookupError, OSError, ArithmeticError, MemoryError)
# Latent -> RGB approximations for live previews (SD1/SD2 VAE, SDXL VAE).
_PREVIEW_FACTORS = {
    "sd": ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)),
    "sdxl": ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
             (-0.3165, -0.2492, -0.2188)),
}
_SEQUENCE = re.compile(r"^(\d+)-")


class _NoModel(Exception):
    """The model cannot be had; ``str(e)`` says why and what to pass."""


class _LoraProblem(Exception):
    """One LoRA could not be used; ``str(e)`` is one readable line."""


class _Stop(Exception):
    """Raised from the step callback to end the running batch (interrupt or skip)."""


@dataclass
class _Adapter:
    name: str  # the diffusers adapter name
    components: list[str]  # pipeline components it has layers in ("unet", "text_encoder", …)


@dataclass
class _Plan:
    """What one generate() call does, worked out before the first step."""

    request: GenerationRequest
    text: str  # the prompt without LoRA tokens
    width: int
    height: int
    seeds: list[int]
    sampler: str
    model: str | None = None  # the model's name for infotext and history
    loras: list[str] = field(default_factory=list)  # names (as written) of the LoRAs applied
    notes: list[str] = field(default_factory=list)
    upscaler: str | None = None  # set when the hires pass runs
    hr_steps: int = 0


class DiffusersGenerator:
    """In-process generation over a diffusers Stable Diffusion pipeline (CPU, float32).

    ``model_path``: a diffusers folder (``model_index.json``), or a ``.safetensors``/``.ckpt``
    checkpoint, which needs ``model_config`` offline (a diffusers folder, or a Hub repository
    already in the local cache, of the same architecture). ``torch_threads`` sets torch's
    threads when the model loads (None leaves torch's default). ``resolve_lora(name)`` returns the
    file of a ``<lora:NAME:…>`` token or raises NotFound/InvalidInput. ``record`` receives one
    GenerationRecord per generate() call.

    ``generate`` runs on one thread at a time (calls are serialised); ``interrupt`` and ``skip``
    may come from any thread while it runs.
    """

    def __init__(self, model_path: str, output_dir: str, *, resolve_lora: Callable[[str], str],
                 record: Callable[[GenerationRecord], None] | None = None, model_config: str | None = None,
                 torch_threads: int | None = None):
        self.model_path = str(model_path or "")
        self.torch_threads = torch_threads  # set for the process when the model loads; None: torch's choice
        self.output_dir = Path(output_dir)
        self.model_config = model_config
        self._resolve_lora = resolve_lora
        self._record = record
        self._pipe: Any = None
        self._kind: str | None = None  # "sd" or "sdxl" once loaded
        self._family: str | None = None
        self._family_known = False
        self._defaults: dict[str, Any] | None = None
        self._default_scheduler: Any = None
        self._img2img: Any = None
        self._adapters: OrderedDict[tuple[str, int, int], _Adapter] = OrderedDict()
        self._unusable: dict[tuple[str, int, int], str] = {}  # files that failed, until they change
        self._adapter_numbers = itertools.count(1)
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._interrupted = threading.Event()
        self._skipped = threading.Event()

    # --- what the host offers -----------------------------------------------------------------

    def samplers(self) -> list[str]:
        scipy = importlib.util.find_spec("scipy") is not None
        return [name for name in SAMPLERS if name != "LMS" or scipy]

    def upscalers(self) -> list[str]:
        return list(UPSCALERS)

    def model_name(self) -> str | None:
        if not self.model_path:
            return None
        path = Path(self.model_path)
        if path.is_dir() and demo_model.is_built(path):
            return demo_model.MODEL_NAME
        return path.stem if path.suffix.lower() in CHECKPOINT_SUFFIXES else path.name

    def model_family(self) -> str | None:
        """The model's base_models family, from its configs or checkpoint header (no weights
        are loaded to find out); None when there is no model or it cannot be told."""
        if not self._family_known:
            self._family = _peek_family(self.model_path)
            self._family_known = True
        return self._family

    def defaults(self) -> dict[str, Any]:
        """The model's native width and height (its UNet's sample size times the VAE's scale,
        as diffusers itself defaults), from the loaded pipeline or else from the model's configs
        without loading weights; for the demo model also a step count that fits it. {} when
        there is no model or its configs cannot be read (GenerationRequest's defaults hold)."""
        if self._defaults is None:
            self._defaults = self._steps() | _peek_native_size(self.model_path, self.model_config)
        return dict(self._defaults)

    def _steps(self) -> dict[str, Any]:
        path = Path(self.model_path) if self.model_path else None
        return {"steps": demo_model.STEPS} if path and path.is_dir() and demo_model.is_built(path) else {}

    def preview(self) -> None:
        return None  # a latent preview comes with every progress report

    def interrupt(self) -> None:
        self._interrupted.set()

    def skip(self) -> None:
        self._skipped.set()

    # --- generation ---------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, progress: ProgressCallback) -> GenerationOutcome:
        with self._run_lock:
            self._interrupted.clear()
            self._skipped.clear()
            started = time.time()
            plan: _Plan | None = None
            try:
                pipe = self._loaded(progress, request)
                plan = self._plan(pipe, request, progress)
                outcome = self._run(pipe, plan, progress)
            except _NoModel as e:
                outcome = GenerationOutcome(GenerationStatus.NO_MODEL, [], str(e))
            self._send_record(request, plan, outcome, started)
            return outcome

    def _loaded(self, progress: ProgressCallback, request: GenerationRequest) -> Any:
        if self._pipe is None:
            progress(Progress(0, request.steps, 0, request.n_iter, "Loading model"))
        with self._load_lock:
            if self._pipe is None:
                if self.torch_threads:
                    import torch

                    torch.set_num_threads(self.torch_threads)
                pipe, kind = _load_pipeline(self.model_path, self.model_config)
                pipe.set_progress_bar_config(disable=True)
                self._pipe, self._kind = pipe, kind
                self._default_scheduler = pipe.scheduler
                self._family = _loaded_family(pipe, kind)
                self._family_known = True
                self._defaults = self._steps() | _native_size(pipe.unet.config.sample_size,
                                                              getattr(pipe, "vae_scale_factor", 8))
            return self._pipe

    def _plan(self, pipe: Any, request: GenerationRequest, progress: ProgressCallback) -> _Plan:
        text, refs = extract_loras(request.prompt)
        scale = getattr(pipe, "vae_scale_factor", 8)
        first = request.seed if request.seed >= 0 else random.randrange(4294967294)
        count = request.batch_size * request.n_iter
        plan = _Plan(request, text, request.width // scale * scale, request.height // scale * scale,
                     [first + i for i in range(count)], self._use_sampler(pipe, request.sampler_name),
                     self.model_name())
        if request.sampler_name and request.sampler_name != plan.sampler:
            plan.notes.append(f"Sampler {request.sampler_name!r} is not available here; used {plan.sampler}.")
        if refs:
            progress(Progress(0, request.steps, 0, request.n_iter, "Loading LoRAs"))
        self._apply_loras(pipe, refs, plan)
        if request.enable_hr:
            upscaler = request.hr_upscaler or "Latent"
            if upscaler not in UPSCALERS:
                plan.notes.append(f"Upscaler {upscaler!r} is not available standalone; used Latent "
                                  f"(available: {', '.join(UPSCALERS)}).")
                upscaler = "Latent"
            plan.upscaler = upscaler
            plan.hr_steps = request.hr_second_pass_steps or request.steps
        return plan

    def _use_sampler(self, pipe: Any, name: str | None) -> str:
        """Set the scheduler for ``name`` and return the name in effect (the model's own
        scheduler for None or a name this host does not know)."""
        import diffusers

        base = self._default_scheduler
        if name in SAMPLERS and name in self.samplers():
            cls_name, overrides = SAMPLERS[name]
            pipe.scheduler = getattr(diffusers, cls_name).from_config(base.config, **overrides)
            return name
        pipe.scheduler = base
        return _sampler_name(base)

    # --- LoRAs --------------------------------------------------------------------------------

    def _apply_loras(self, pipe: Any, refs: list[LoraRef], plan: _Plan) -> None:
        names: list[str] = []
        weights: list[dict[str, float]] = []
        for ref in refs:
            te, unet = _weights(ref, plan.notes)
            if te == 0 and unet == 0:
                continue  # SDNext skips a LoRA whose weights are all zero
            try:
                adapter = self._adapter(pipe, self._resolve_lora(ref.name))
            except (NotFound, InvalidInput) as e:
                plan.notes.append(f"LoRA {ref.name!r} was not used: {e}")
                continue
            except _LoraProblem as e:
                plan.notes.append(f"LoRA {ref.name!r} could not be loaded: {e}")
                continue
            if adapter.name in names:
                plan.notes.append(f"LoRA {ref.name!r} is in the prompt twice; the first token's weights were used.")
                continue
            names.append(adapter.name)
            weights.append({c: unet if c in ("unet", "transformer") else te for c in adapter.components})
            plan.loras.append(ref.name)
        if names:
            pipe.enable_lora()
            pipe.set_adapters(names, weights)
        elif self._adapters:
            pipe.disable_lora()
        self._evict(pipe, keep=set(names))

    def _adapter(self, pipe: Any, path: str) -> _Adapter:
        """The loaded adapter for the LoRA file at ``path``, loading it when new or changed."""
        try:
            stat = os.stat(path)
        except OSError as e:
            raise _LoraProblem(f"cannot read {path}: {e.strerror or e}") from e
        real = os.path.realpath(path)
        key = (real, stat.st_mtime_ns, stat.st_size)
        if key in self._adapters:
            self._adapters.move_to_end(key)
            return self._adapters[key]
        if key in self._unusable:
            raise _LoraProblem(self._unusable[key])
        for old in [k for k in self._adapters if k[0] == real]:  # the file changed since
            self._drop(pipe, old)
        try:
            adapter = self._load_adapter(pipe, path)
        except _LoraProblem as e:
            log.warning("LoRA Manager: LoRA %s could not be loaded: %s", Path(path).name, e)
            self._unusable = {k: v for k, v in self._unusable.items() if k[0] != real}
            self._unusable[key] = str(e)
            raise
        self._adapters[key] = adapter
        return adapter

    def _load_adapter(self, pipe: Any, path: str) -> _Adapter:
        state = _read_lora(path)
        if self._pipe_has_flat_text_encoder(pipe):
            state = _flat_text_encoder_keys(state)
        name = f"lora_{next(self._adapter_numbers)}"
        try:
            with _quiet_adapter_load(name):
                pipe.load_lora_weights(state, adapter_name=name)
        except _LORA_ERRORS as e:
            self._delete_adapter(pipe, name)
            if "size mismatch" in str(e):
                raise _LoraProblem("its layer sizes do not fit this model (a LoRA for another base model?): "
                                   + _one_line(e)) from e
            raise _LoraProblem(_one_line(e)) from e
        components = [c for c, adapters in pipe.get_list_adapters().items() if name in adapters]
        if not components:
            self._delete_adapter(pipe, name)
            raise _LoraProblem("no layer of this model matched the file's keys (a LoRA for another "
                               "architecture, or a format diffusers does not read)")
        counts = {c: _layer_count(getattr(pipe, c, None), name) for c in components}
        log.info("LoRA Manager: LoRA %s applies to %s", Path(path).name,
                 ", ".join(f"{n} {c} layer{'' if n == 1 else 's'}" for c, n in counts.items()))
        return _Adapter(name, components)

    @staticmethod
    def _pipe_has_flat_text_encoder(pipe: Any) -> bool:
        """transformers 5 flattened CLIPTextModel (no ``text_model``); real LoRA files name
        their text-encoder layers the old way and diffusers 0.40 fails on them (diffusers#13984)."""
        encoder = getattr(pipe, "text_encoder", None)
        return encoder is not None and not hasattr(encoder, "text_model")

    def _evict(self, pipe: Any, keep: set[str]) -> None:
        idle = [k for k, a in self._adapters.items() if a.name not in keep]
        for key in idle[: max(0, len(idle) - _MAX_ADAPTERS)]:
            self._drop(pipe, key)

    def _drop(self, pipe: Any, key: tuple[str, int, int]) -> None:
        adapter = self._adapters.pop(key)
        self._delete_adapter(pipe, adapter.name)

    @staticmethod
    def _delete_adapter(pipe: Any, name: str) -> None:
        """Remove what a (possibly half-done) load left of adapter ``name``."""
        present = any(name in adapters for adapters in pipe.get_list_adapters().values())
        if present:
            pipe.delete_adapters(name)

    # --- sampling -----------------------------------------------------------------------------

    def _run(self, pipe: Any, plan: _Plan, progress: ProgressCallback) -> GenerationOutcome:
        import torch

        request = plan.request
        images: list[OutputImage] = []
        status, problem = GenerationStatus.SUCCEEDED, ""
        skipped: list[int] = []
        sequence = _Sequence(self.output_dir)
        for batch in range(request.n_iter):
            self._skipped.clear()
            if self._interrupted.is_set():
                status = GenerationStatus.INTERRUPTED
                break
            seeds = plan.seeds[batch * request.batch_size:(batch + 1) * request.batch_size]
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
            try:
                pictures = self._sample(pipe, plan, batch, generators, progress)
            except _Stop:
                if self._interrupted.is_set():
                    status = GenerationStatus.INTERRUPTED
                    break
                skipped.append(batch + 1)
                continue
            except _PIPELINE_ERRORS as e:
                status, problem = GenerationStatus.FAILED, f"Generation failed: {_one_line(e)}"
                log.warning("LoRA Manager: generation failed", exc_info=True)
                break
            try:
                for picture, seed in zip(pictures, seeds):
                    infotext = _infotext(plan, seed)
                    images.append(OutputImage(sequence.save(picture, seed, infotext), infotext, seed))
            except OSError as e:
                status, problem = GenerationStatus.FAILED, f"An image could not be saved in {self.output_dir}: {e.strerror or e}"
                break
        notes = list(plan.notes)
        if skipped:
            notes.append(f"Skipped batch {', '.join(map(str, skipped))} of {request.n_iter}.")
        if status == GenerationStatus.INTERRUPTED:
            notes.insert(0, f"Interrupted after {len(images)} of {plural(len(plan.seeds), 'image')}.")
        message = " ".join(_sentence(text) for text in ([problem] if problem else []) + notes)
        return GenerationOutcome(status, images, message)

    def _sample(self, pipe: Any, plan: _Plan, batch: int, generators: list, progress: ProgressCallback) -> list:
        request = plan.request
        hires = plan.upscaler is not None
        hr_pass = min(int(plan.hr_steps * request.denoising_strength), plan.hr_steps) if hires else 0
        common = {"prompt": plan.text, "negative_prompt": request.negative_prompt or None,
                  "guidance_scale": request.cfg_scale, "num_images_per_prompt": request.batch_size,
                  "generator": generators}
        first = self._callback(plan, batch, 0, hr_pass, "Generating", progress)
        result = pipe(**common, num_inference_steps=request.steps, width=plan.width, height=plan.height,
                      output_type="latent" if hires else "pil", callback_on_step_end=first)
        if not hires:
            return result.images
        import torch.nn.functional as F

        latents = result.images
        scale = getattr(pipe, "vae_scale_factor", 8)
        size = (int(plan.height * request.hr_scale) // scale, int(plan.width * request.hr_scale) // scale)
        latents = F.interpolate(latents, size=size, mode=UPSCALERS[plan.upscaler])
        if hr_pass < 1:  # a denoising strength too low for one step: the upscaled latents are the picture
            return _decode(pipe, latents)
        second = self._callback(plan, batch, request.steps, 0, "Hires pass", progress)
        return self._image_to_image(pipe)(
            **common, image=latents, strength=request.denoising_strength, num_inference_steps=plan.hr_steps,
            output_type="pil", callback_on_step_end=second).images

    def _image_to_image(self, pipe: Any) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = AutoPipelineForImage2Image.from_pipe(pipe)
            self._img2img.set_progress_bar_config(disable=True)
        self._img2img.scheduler = pipe.scheduler
        return self._img2img

    def _callback(self, plan: _Plan, batch: int, before: int, after: int, text: str,
                  progress: ProgressCallback) -> Callable:
        """The pipeline's step-end callback: progress with a latent preview, and the place
        where interrupt and skip take effect."""
        batches = plan.request.n_iter
        factors = _PREVIEW_FACTORS["sdxl" if self._kind == "sdxl" else "sd"]

        def on_step_end(pipe: Any, index: int, _timestep: Any, tensors: dict) -> dict:
            if self._interrupted.is_set() or self._skipped.is_set():
                raise _Stop
            total = before + int(getattr(pipe, "num_timesteps", 0) or plan.request.steps) + after
            preview = _preview(tensors.get("latents"), factors, (plan.width, plan.height))
            label = f"{text}: batch {batch + 1}/{batches}" if batches > 1 else text
            progress(Progress(before + index + 1, total, batch, batches, label, preview))
            return tensors

        return on_step_end

    # --- history ------------------------------------------------------------------------------

    def _send_record(self, request: GenerationRequest, plan: _Plan | None, outcome: GenerationOutcome,
                     started: float) -> None:
        if self._record is None:
            return
        record = GenerationRecord(
            started_at=started, status=outcome.status, duration=time.time() - started,
            source=GenerationSource.LORA_MANAGER, prompt=request.prompt, negative_prompt=request.negative_prompt,
            seeds=plan.seeds if plan else ([request.seed] if request.seed >= 0 else []),
            width=plan.width if plan else request.width, height=plan.height if plan else request.height,
            steps=request.steps, sampler=plan.sampler if plan else request.sampler_name, cfg_scale=request.cfg_scale,
            model_name=self.model_name(),
            infotext=outcome.images[0].infotext if outcome.images else (
                _infotext(plan, plan.seeds[0]) if plan and plan.seeds else None),
            error=outcome.message if outcome.status in (GenerationStatus.FAILED, GenerationStatus.NO_MODEL) else None,
            group=request.group, label=request.label, loras=GenerationRecord.loras_from_prompt(request.prompt),
            images=[GeneratedImage(path=image.path, seed=image.seed) for image in outcome.images])
        self._record(record)


# --- model loading ----------------------------------------------------------------------------


def _load_pipeline(model_path: str, model_config: str | None) -> tuple[Any, str]:
    """(pipeline, "sd" | "sdxl") for a diffusers folder or a single-file checkpoint; raises
    _NoModel with what to do when there is none."""
    if not model_path:
        raise _NoModel("No model is set: start with --model PATH (a diffusers folder or a .safetensors "
                       "checkpoint) or with --demo for the tiny demo model.")
    path = Path(model_path)
    if not path.exists():
        raise _NoModel(f"Model not found: {model_path}")
    if path.is_dir():
        kind = _folder_kind(path)
        return _from_folder(path, kind), kind
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise _NoModel(f"{path.name} is not a model: expected a diffusers folder, a .safetensors or a .ckpt file.")
    kind = "sdxl" if _checkpoint_family(path) == "sdxl" else "sd"
    return _from_single_file(path, kind, model_config), kind


def _folder_kind(path: Path) -> str:
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except OSError:
        raise _NoModel(f"{path} is not a diffusers model folder (it has no model_index.json).") from None
    except ValueError as e:
        raise _NoModel(f"{path}/model_index.json is not valid JSON: {e}") from None
    name = index.get("_class_name") if isinstance(index, dict) else None
    if name not in _PIPELINES:
        raise _NoModel(f"{path}: {name or 'this'} models are not supported standalone; Stable Diffusion 1.x/2.x "
                       "(StableDiffusionPipeline) and SDXL (StableDiffusionXLPipeline) folders are.")
    return _PIPELINES[name]


def _pipeline_class(kind: str) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if kind == "sdxl" else StableDiffusionPipeline


def _from_folder(path: Path, kind: str) -> Any:
    extra = {"safety_checker": None, "requires_safety_checker": False} if kind == "sd" else {}
    try:
        return _pipeline_class(kind).from_pretrained(str(path), local_files_only=True, **extra)
    except _MODEL_ERRORS as e:
        raise _NoModel(f"The model at {path} could not be loaded: {_one_line(e)}") from e


def _from_single_file(path: Path, kind: str, model_config: str | None) -> Any:
    """A single-file checkpoint. diffusers needs the architecture's configs to build the
    pipeline and would download them; here they come from ``model_config`` (a local diffusers
    folder of the same architecture, or a Hub repository id already in the local cache), else
    from diffusers' default repository for the family if that is in the local cache."""
    config = model_config or _cached_default_config(_checkpoint_family(path))
    if config is None:
        raise _NoModel(
            f"The checkpoint {path.name} needs its model configuration, which cannot be downloaded here: pass "
            "--model-config PATH, a diffusers folder of the same architecture (for an SD1.5 checkpoint any SD1.5 "
            "diffusers folder; only its configs and tokenizer are used), or use a diffusers folder as --model.")
    options: dict[str, Any] = {"config": config, "local_files_only": True}
    if kind == "sd":
        options.update(safety_checker=None, requires_safety_checker=False)
    try:
        return _pipeline_class(kind).from_single_file(str(path), **options)
    except _MODEL_ERRORS as e:
        raise _NoModel(f"The checkpoint {path.name} could not be loaded with the configuration {config}: "
                       f"{_one_line(e)}") from e


def _cached_default_config(family: str | None) -> str | None:
    """diffusers' default config repository for ``family`` when it is in the local Hub cache."""
    repo = _DEFAULT_CONFIGS.get(family or "")
    if repo is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    return repo if isinstance(try_to_load_from_cache(repo, "model_index.json"), str) else None


def _peek_family(model_path: str) -> str | None:
    """The family from configs or a checkpoint header, without loading weights."""
    if not model_path:
        return None
    path = Path(model_path)
    if path.is_dir():
        try:
            kind = _folder_kind(path)
        except _NoModel:
            return None
        if kind == "sdxl":
            return "sdxl"
        try:
            unet = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        width = unet.get("cross_attention_dim") if isinstance(unet, dict) else None
        return _CONTEXT_FAMILY.get(width) if isinstance(width, int) else None
    if path.suffix.lower() == ".safetensors":
        return _checkpoint_family(path)
    return None


def _peek_native_size(model_path: str, model_config: str | None) -> dict[str, int]:
    """{"width", "height"} from the UNet and VAE configs of a diffusers folder, or of the
    configuration a checkpoint loads with (--model-config, or diffusers' default repository in
    the local cache); {} when they cannot be read."""
    if not model_path:
        return {}
    path = Path(model_path)
    if path.is_dir():
        source: str | None = str(path)
    elif path.suffix.lower() in CHECKPOINT_SUFFIXES:
        source = model_config or _cached_default_config(_checkpoint_family(path))
    else:
        return {}
    if source is None:
        return {}
    unet, vae = _component_config(source, "unet"), _component_config(source, "vae")
    channels = vae.get("block_out_channels")
    if not isinstance(channels, list) or not channels:
        return {}
    return _native_size(unet.get("sample_size"), 2 ** (len(channels) - 1))


def _component_config(source: str, component: str) -> dict:
    """``<component>/config.json`` of a local diffusers folder or of a Hub repository in the
    local cache (never downloaded); {} when absent or unreadable."""
    file: Any = Path(source) / component / "config.json"
    if not Path(source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        file = try_to_load_from_cache(source, f"{component}/config.json")
        if not isinstance(file, str):
            return {}
    try:
        config = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _native_size(sample_size: Any, scale: Any) -> dict[str, int]:
    """{"width", "height"} for a UNet sample size (one number, or [height, width]) at a VAE
    scale; {} when they make no size a request accepts."""
    sizes = sample_size if isinstance(sample_size, (list, tuple)) and len(sample_size) == 2 else (sample_size,) * 2
    if not isinstance(scale, int) or not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
        return {}
    height, width = (n * scale for n in sizes)
    bounds = FIELDS["width"]
    if not all(bounds.low <= n <= bounds.high for n in (width, height)):
        return {}
    return {"width": width, "height": height}


def _checkpoint_family(path: Path) -> str | None:
    """SD1/SD2/SDXL from an original-layout checkpoint's tensor names (safetensors only)."""
    try:
        names = read_header(path).tensors
    except HeaderError:
        return None
    if any(n.startswith("conditioner.embedders.1.") for n in names):
        return "sdxl"
    if any(n.startswith("cond_stage_model.model.") for n in names):
        return "sd2"
    if any(n.startswith("cond_stage_model.transformer.") for n in names):
        return "sd1"
    return None


def _loaded_family(pipe: Any, kind: str) -> str | None:
    if kind == "sdxl":
        return "sdxl"
    width = getattr(pipe.unet.config, "cross_attention_dim", None)
    return _CONTEXT_FAMILY.get(width) if isinstance(width, int) else None


def _sampler_name(scheduler: Any) -> str:
    """The user's name for a scheduler instance (the model's default sampler)."""
    cls_name = type(scheduler).__name__
    config = dict(scheduler.config)
    for name, (candidate, overrides) in SAMPLERS.items():
        if candidate == cls_name and all(config.get(k) == v for k, v in overrides.items()):
            return name
    return cls_name.removesuffix("Scheduler")


# --- LoRA files -------------------------------------------------------------------------------


def _read_lora(path: str) -> dict:
    """The tensors of a LoRA file; _LoraProblem with one readable line when it is not one."""
    if path.lower().endswith(".safetensors"):
        try:
            read_header(path)  # our own checks give a clear reason for a broken file
        except HeaderError as e:
            raise _LoraProblem(f"not a valid safetensors file: {e}") from e
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise _LoraProblem(f"cannot read {Path(path).name}: {_one_line(e)}") from e
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as e:
        raise _LoraProblem(f"cannot read {Path(path).name} as a torch file: {_one_line(e)}") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _LoraProblem(f"{Path(path).name} holds no LoRA tensors")
    return state


# transformers 5 loads a text encoder's adapter expecting the parameters of every adapter the
# model holds, so from the second LoRA on it logs a "LOAD REPORT" table listing the earlier
# adapters' weights as MISSING ("newly initialized"), although nothing was missing or reset.
_ADAPTER_NAME = re.compile(r"\blora_\d+\b")  # our adapter names (see _load_adapter)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REPORT_LOGGER = "transformers.integrations.peft"


class _OtherAdaptersReport(logging.Filter):
    """Drops that report while adapter ``adapter`` loads when every row is a MISSING weight of
    another adapter; a report with anything else (a key of this adapter, a size mismatch, an
    unexpected key, a row it cannot read) is let through."""

    def __init__(self, adapter: str):
        super().__init__()
        self.adapter = adapter

    def filter(self, record: logging.LogRecord) -> bool:
        text = _ANSI.sub("", record.getMessage())
        if "LOAD REPORT" not in text:
            return True
        rows = [line.split("|") for line in text.splitlines()[1:] if "|" in line]
        rows = [cells for cells in rows if cells[0].strip() not in ("Key", "") and not set(cells[0].strip()) <= {"-", "+"}]
        for cells in rows:
            names = set(_ADAPTER_NAME.findall(cells[0]))
            if len(cells) < 2 or cells[1].strip() != "MISSING" or not names or self.adapter in names:
                return True
        return not rows


class _NoTextEncoderPart(logging.Filter):
    """Drops diffusers' warning that a LoRA has no text-encoder weights: many have none, and
    our own line says which parts a LoRA applies to."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No LoRA keys associated to")


_NO_TEXT_ENCODER_LOGGER = "diffusers.loaders.lora_base"


@contextlib.contextmanager
def _quiet_adapter_load(adapter: str):
    """While diffusers loads adapter ``adapter``: no report of other adapters' weights (above),
    no warning for a LoRA without text-encoder weights, no weight-loading progress bar per LoRA.
    Real problems still log, and raise."""
    from transformers.utils import logging as transformers_logging

    # PEFT warns once that a model with an adapter gets another: holding several is our intent
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute in the model",
                            category=UserWarning)
    filters = [(logging.getLogger(_REPORT_LOGGER), _OtherAdaptersReport(adapter)),
               (logging.getLogger(_NO_TEXT_ENCODER_LOGGER), _NoTextEncoderPart())]
    bars = transformers_logging.is_progress_bar_enabled()
    for logger, quiet in filters:
        logger.addFilter(quiet)
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        for logger, quiet in filters:
            logger.removeFilter(quiet)
        if bars:
            transformers_logging.enable_progress_bar()


def _layer_count(model: Any, adapter: str) -> int:
    """How many of ``model``'s layers carry ``adapter`` (PEFT LoRA layers keep one lora_A each)."""
    if model is None:
        return 0
    return sum(1 for module in model.modules() if adapter in (getattr(module, "lora_A", None) or {}))


def _flat_text_encoder_keys(state: dict) -> dict:
    """Rename real-world text-encoder keys to transformers 5's flattened CLIP module names
    (``lora_te_text_model_…`` → ``lora_te_…``, ``text_encoder.text_model.…`` → ``text_encoder.…``);
    kohya alphas stay with their modules."""
    def rename(key: str) -> str:
        for old, new in (("lora_te_text_model_", "lora_te_"), ("lora_te1_text_model_", "lora_te1_"),
                         ("lora_te2_text_model_", "lora_te2_"), ("text_encoder.text_model.", "text_encoder."),
                         ("text_encoder_2.text_model.", "text_encoder_2.")):
            if key.startswith(old):
                return new + key[len(old):]
        return key

    return {rename(k): v for k, v in state.items()}


def _weights(ref: LoraRef, notes: list[str]) -> tuple[float, float]:
    """(text encoder, UNet) multipliers of a token. A step schedule (``0.2@0,1@0.5``) is not
    supported standalone: its first value is used, with a note."""
    def number(value: float | str | None) -> float:
        if value is None:
            return 1.0
        if isinstance(value, float):
            return value
        first = re.split(r"[@~,;]", value, maxsplit=1)[0].strip()
        try:
            result = float(first)
        except ValueError:
            note = f"LoRA {ref.name!r}: weight {value!r} is not a number; used 1."
            result = 1.0
        else:
            note = (f"LoRA {ref.name!r}: step schedules such as {value!r} work in SDNext only; "
                    f"standalone used {format_weight(result)} for all steps.")
        if note not in notes:
            notes.append(note)
        return result

    return number(ref.te_weight), number(ref.unet_weight)


# --- images -----------------------------------------------------------------------------------


class _Sequence:
    """Saves images as ``<output>/YYYY-MM-DD/NNNNN-SEED.png``, NNNNN counting on from the
    highest number in that folder, as SDNext numbers its files."""

    def __init__(self, root: Path):
        self.root = root
        self.folder: Path | None = None
        self.next = 0

    def save(self, image: Any, seed: int, infotext: str) -> str:
        from PIL.PngImagePlugin import PngInfo

        folder = self.root / time.strftime("%Y-%m-%d")
        if folder != self.folder:
            folder.mkdir(parents=True, exist_ok=True)
            self.folder, self.next = folder, self._highest(folder) + 1
        info = PngInfo()
        info.add_text("parameters", infotext)
        while True:
            path = folder / f"{self.next:05d}-{seed}.png"
            self.next += 1
            try:
                with open(path, "xb") as f:
                    image.save(f, "PNG", pnginfo=info)
                return str(path)
            except FileExistsError:
                continue

    @staticmethod
    def _highest(folder: Path) -> int:
        numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := _SEQUENCE.match(name))]
        return max(numbers, default=-1)


def _infotext(plan: _Plan, seed: int) -> str:
    """SDNext's infotext: prompt (with its LoRA tokens), negative prompt, then ``key: value``."""
    request = plan.request
    params: dict[str, Any] = {
        "Steps": request.steps, "Size": f"{plan.width}x{plan.height}", "Sampler": plan.sampler, "Seed": seed,
        "CFG scale": request.cfg_scale,
        "Batch": f"{request.n_iter}x{request.batch_size}" if request.batch_size * request.n_iter > 1 else None,  # count x size
        "Model": plan.model,
    }
    if plan.upscaler:
        params.update({"Hires upscaler": plan.upscaler, "Hires upscale": request.hr_scale,
                       "Hires steps": plan.hr_steps, "Denoising strength": request.denoising_strength})
    params["LoRA networks"] = ", ".join(plan.loras)
    params["App"] = APP
    return write_infotext(request.prompt, request.negative_prompt, params)


def _decode(pipe: Any, latents: Any) -> list:
    import torch

    with torch.no_grad():
        images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(images, output_type="pil")


def _preview(latents: Any, factors: tuple, size: tuple[int, int]) -> Any:
    """A rough RGB picture of the first image's latents (a fixed linear map, no VAE)."""
    if latents is None or latents.ndim != 4 or latents.shape[1] != len(factors):
        return None
    import torch
    from PIL import Image

    matrix = torch.tensor(factors, dtype=latents.dtype)
    rgb = torch.einsum("chw,cr->hwr", latents[0].detach(), matrix)
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB").resize(size, Image.Resampling.BILINEAR)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _one_line(error: BaseException) -> str:
    """The first line of an error, bounded (diffusers' messages can be pages long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text if len(text) <= 300 else text[:297] + "..."
