"""A Generator for tests of the job queue and the UI: it paints real small PNGs whose colour
depends on the prompt, seed and LoRA weights, steps with a short sleep, and honours interrupt
and skip from other threads like a host does. Hosts' real generators have their own tests."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from PIL import Image

from lib_lora_manager.generation import GenerationOutcome, GenerationRequest, OutputImage, Progress
from lib_lora_manager.statuses import GenerationStatus


class PaintingGenerator:
    def __init__(self, output_dir, step_seconds=0.0, outcome_status=None, message=""):
        self.output_dir = str(output_dir)
        self.step_seconds = step_seconds
        self.outcome_status = outcome_status  # force NO_MODEL / FAILED, as a host would report
        self.message = message
        self.requests: list[GenerationRequest] = []
        self.started = threading.Event()  # set when a generate() call begins
        self._interrupted = threading.Event()
        self._skipped = threading.Event()
        self.family = "sd1"
        self.model_defaults: dict = {}  # what defaults() reports, as a host does for its model

    def samplers(self):
        return ["Euler", "DDIM"]

    def upscalers(self):
        return []

    def model_family(self):
        return self.family

    def model_name(self):
        return "painting"

    def defaults(self):
        return dict(self.model_defaults)

    def preview(self):
        return None  # previews, if any, come with the progress reports

    def interrupt(self):
        self._interrupted.set()

    def skip(self):
        self._skipped.set()

    def generate(self, request: GenerationRequest, progress) -> GenerationOutcome:
        self.requests.append(request)
        self._interrupted.clear()
        self.started.set()
        if self.outcome_status in (GenerationStatus.NO_MODEL, GenerationStatus.FAILED):
            return GenerationOutcome(self.outcome_status, message=self.message)
        os.makedirs(self.output_dir, exist_ok=True)
        images = []
        for batch in range(request.n_iter):
            self._skipped.clear()
            for step in range(1, request.steps + 1):
                if self._interrupted.is_set():
                    return GenerationOutcome(GenerationStatus.INTERRUPTED, images, "interrupted")
                if self._skipped.is_set():
                    break
                time.sleep(self.step_seconds)
                progress(Progress(step=step, steps=request.steps, batch=batch, batches=request.n_iter))
            else:
                for index in range(request.batch_size):
                    seed = request.seed + batch * request.batch_size + index
                    colour = hashlib.sha256(f"{request.prompt}|{seed}".encode()).digest()[:3]
                    path = os.path.join(self.output_dir, f"{len(os.listdir(self.output_dir)):05d}-{seed}.png")
                    Image.new("RGB", (request.width // 8, request.height // 8), tuple(colour)).save(path)
                    images.append(OutputImage(path, f"{request.prompt}\nSteps: {request.steps}, Seed: {seed}", seed))
        return GenerationOutcome(GenerationStatus.SUCCEEDED, images)
