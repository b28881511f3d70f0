"""The standalone demo's first image: how long a generation of a request that gives only a
prompt takes on a fresh process, model loading included, and the next one after it.

    .venv/bin/python bench/first_image.py [--work DIR] [--size N] [--steps N] [--threads N]

The demo model is built in ``--work`` (a temporary folder by default) first, outside the timing,
as ``serve --demo`` builds it before the server starts. The request takes the host's defaults
(the model's native size and step count) unless ``--size``/``--steps`` set them (``--size 512
--steps 20`` are the defaults the demo had before). ``--threads`` sets torch's threads when the
model loads, as ``serve --demo`` does with 1 (0: torch's default). Prints wall and CPU seconds
and the load average: on a shared machine the wall time follows the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="folder for the demo model and the images (default: a temporary one)")
    parser.add_argument("--size", type=int, help="width and height (default: the model's native size)")
    parser.add_argument("--steps", type=int, help="steps (default: the model's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; serve --demo uses 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lm-first-image-") as temp:
        work = Path(args.work or temp)
        from lib_lora_manager.demo_model import build_tiny_pipeline

        model = build_tiny_pipeline(work / "model")
        wall, cpu = time.perf_counter(), time.process_time()
        from lib_lora_manager.generation import GenerationRequest
        from lib_lora_manager.hosts.diffusion import DiffusersGenerator

        generator = DiffusersGenerator(model, str(work / "out"), resolve_lora=lambda name: name,
                                       torch_threads=args.threads or None)
        given = {"prompt": "a red cat", "seed": 1}
        if args.size:
            given |= {"width": args.size, "height": args.size}
        if args.steps:
            given["steps"] = args.steps
        request = GenerationRequest.from_dict(given, generator.defaults())
        for label in ("first image (model loading included)", "next image"):
            outcome = generator.generate(request, lambda _progress: None)
            print(f"{label}: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU "
                  f"({request.width}x{request.height}, {request.steps} steps, {outcome.status})")
            wall, cpu = time.perf_counter(), time.process_time()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
