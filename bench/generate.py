"""Generation benchmarks inside the SDNext test double (tests/sdnext), printing each figure.

    .venv/bin/python bench/generate.py [--runs 40] [--steps 20] [--step-ms 10] [--size 512]
                                       [--records 1000] [--saved-records 300]

(a) overhead: wall time of ``SdnextGenerator.generate`` (queue lock, job state, progress
    polling, our recording and the image bookkeeping) against a bare ``process_images`` call
    with the same parameters, both on the double's pipeline sleeping ``--step-ms`` per step.
    The two are interleaved; medians and the difference are printed.
(b) recording cost on the generating thread: the time spent inside our before/after-process
    hooks per generation (2 LoRAs in the prompt, 4 images), median, p95 and max, once with
    images SDNext saved (txt2img tab) and once with images it did not save (the API's default),
    whose thumbnails the recorder thread makes. The recorder thread's backlog is drained and
    timed afterwards.

The double is a stand-in: these figures are our code's cost, not SDNext's.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]
PROMPT = "a knight in a castle, <lora:castle_style:0.8> <lora:knight:te=0.5:unet=1>"


def start(work: Path, step_ms: float):
    import sdnext

    from lib_lora_manager import synth

    lora_dir = work / "models" / "Lora"
    for n, name in enumerate(("castle_style", "knight")):
        synth.write_lora(lora_dir / f"{name}.safetensors", "sdxl", rank=2, data="random", seed=n,
                         metadata=synth.realistic_metadata("sdxl", name, seed=n))
    os.chdir(work)  # SDNext's output folders are relative to its working folder
    double = sdnext.start(REPO, lora_dir, work / "sdnext-data", {"lora_manager_scan_on_start": False}, model="sdxl")
    double.pipeline.step_time = step_ms / 1000
    host = sys.modules["lib_lora_manager.hosts.sdnext"]
    host.app.library().indexer.scan()
    return double, host


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_overhead(double, host, runs: int, steps: int, size: int) -> None:
    from lib_lora_manager.generation import GenerationRequest
    from lib_lora_manager.statuses import GenerationStatus

    processing = double.module("processing")
    paths = double.module("paths")
    opts = double.opts
    request = GenerationRequest(prompt=PROMPT, steps=steps, width=size, height=size, seed=1)
    generator = host.app.generator()

    def bare():
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt=PROMPT, steps=steps, width=size, height=size, seed=1,
            outpath_samples=paths.resolve_output_path(opts.outdir_samples, opts.outdir_txt2img_samples),
            outpath_grids=paths.resolve_output_path(opts.outdir_grids, opts.outdir_txt2img_grids))
        result = processing.process_images(p)
        p.close()
        assert len(result.images) == 1

    def ours():
        outcome = generator.generate(request, lambda _progress: None)
        assert outcome.status == GenerationStatus.SUCCEEDED, outcome.message

    for _ in range(3):  # warm up: imports, first hashes, the library's first writes
        bare()
        ours()
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(runs):
        for name, fn in (("bare", bare), ("ours", ours)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    host.app.recorder().flush(60)
    bare_ms, ours_ms = (statistics.median(times[k]) * 1000 for k in ("bare", "ours"))
    print(f"(a) generate() overhead, {runs} runs each, {steps} steps x {double.pipeline.step_time * 1000:g} ms, {size}x{size}:")
    print(f"    bare process_images  median {bare_ms:8.2f} ms  (p95 {percentile(times['bare'], 0.95) * 1000:.2f})")
    print(f"    SdnextGenerator      median {ours_ms:8.2f} ms  (p95 {percentile(times['ours'], 0.95) * 1000:.2f})")
    print(f"    overhead             {ours_ms - bare_ms:+8.2f} ms  ({(ours_ms - bare_ms) / bare_ms * 100:+.2f} %)")


def bench_recording(double, host, n: int, saved: bool, size: int) -> None:
    callbacks = double.module("script_callbacks").callback_map
    recording = host._recording  # noqa: SLF001
    spent: dict[int, float] = {}

    def timed(fn):
        def wrapper(p):
            t0 = time.perf_counter()
            fn(p)
            spent[id(p)] = spent.get(id(p), 0.0) + time.perf_counter() - t0
        return wrapper

    originals = {}
    for key, fn in (("callbacks_before_process", recording.before), ("callbacks_after_process", recording.after)):
        entries = callbacks[key]
        originals[key] = list(entries)
        entries[:] = [c._replace(callback=timed(fn)) if c.callback == fn else c for c in entries]
    double.pipeline.step_time = 0.0
    per_generation: list[float] = []
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            if saved:
                images, *_ = double.txt2img(PROMPT, steps=1, width=size, height=size, batch_size=4)
            else:
                images = double.api_txt2img(PROMPT, steps=1, width=size, height=size, batch_size=4).images
            assert len(images) == (5 if saved else 4)  # the API asks for no grid
            per_generation.append(spent.popitem()[1])
    finally:
        for key, entries in originals.items():
            callbacks[key][:] = entries
    loop_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    assert host.app.recorder().flush(600)
    drain_s = time.perf_counter() - t1
    ms = [x * 1000 for x in per_generation]
    what = "saved by SDNext (txt2img tab)" if saved else "not saved (API default; thumbnails on the recorder thread)"
    print(f"(b) recording on the generating thread, {n} generations x 4 images {size}x{size}, 2 LoRAs, {what}:")
    print(f"    before+after hooks   median {statistics.median(ms):.3f} ms  p95 {percentile(ms, 0.95):.3f} ms  max {max(ms):.3f} ms")
    print(f"    recorder thread: {drain_s:.2f} s still to store after the {loop_s:.1f} s loop "
          f"({n / (loop_s + drain_s):.0f} records/s end to end)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-ms", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--saved-records", type=int, default=300)
    args = parser.parse_args(argv)
    logging.getLogger("lora_manager").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lora-manager-bench-") as tmp:
        double, host = start(Path(tmp), args.step_ms)
        try:
            print(f"SDNext test double, load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
            bench_overhead(double, host, args.runs, args.steps, args.size)
            bench_recording(double, host, args.records, saved=False, size=args.size)
            bench_recording(double, host, args.saved_records, saved=True, size=args.size)
        finally:
            host.app.pause()
            host.app.library().close()
            os.chdir(REPO)
            double.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
