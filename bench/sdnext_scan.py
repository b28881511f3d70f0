"""Our first scan of a LoRA folder against SDNext's own, side by side in one run.

    .venv/bin/python bench/sdnext_scan.py --sdnext /path/to/sdnext --library DIR
                                          [--sdnext-python PY] [--runs 2] [--json]

SDNext lists LoRAs at every start (``modules/lora/lora_load.list_available_networks``: a thread
pool reading each file's safetensors metadata, cached in ``<data>/metadata.json``). Its first
scan of a folder is measured in a fresh interpreter of SDNext's own venv, with a fresh data
folder (so nothing is cached), from process start to the end of the listing; ours is
``python -m lib_lora_manager scan`` in a fresh interpreter with a fresh data folder (indexing
only, no hashing: SDNext does not hash at listing either). Both are printed whole (process start
included) and as the scan alone (SDNext's own timer; our ScanReport). Runs alternate which goes
first, so a drifting machine load or page cache favours neither; page cache warm (the folder is
read once before the first run).

SDNext is not part of this repository: point ``--sdnext`` at a checkout whose venv can start it
(``shared/tools/sdnext`` builds one). Exit status 1 when ours is not at least 3 × faster whole.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 3.0

# Runs in SDNext's venv with SDNext's folder as the working directory: the same import and call
# SDNext's startup makes (webui.initialize), and nothing else.
SDNEXT_PROBE = """
import json, sys, time
started = time.perf_counter()
sys.argv = ["launch.py", "--data-dir", sys.argv[1], "--lora-dir", sys.argv[2]]
sys.path.insert(0, ".")
from modules import shared
from modules.lora import lora_load
imported = time.perf_counter()
networks = lora_load.list_available_networks()
done = time.perf_counter()
print("PROBE " + json.dumps({"import_s": imported - started, "scan_s": done - imported, "items": len(networks)}))
"""


def run(command: list[str], cwd: str | None = None) -> tuple[float, str]:
    """(wall seconds from process start to exit, stdout); raises on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, done.stdout


def sdnext_scan(sdnext: Path, python: str, library: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="sdnext-data-") as data:
        wall, out = run([python, "-c", SDNEXT_PROBE, data, str(library)], cwd=str(sdnext))
    line = next(line for line in out.splitlines() if line.startswith("PROBE "))
    return {"wall_s": wall, **json.loads(line[len("PROBE "):])}


def our_scan(library: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="lora-manager-data-") as data:
        wall, out = run([sys.executable, "-m", "lib_lora_manager", "scan", "--data-dir", data,
                         "--lora-dir", str(library), "--json"], cwd=str(REPO))
    report = json.loads(out[out.index("{"):])
    return {"wall_s": wall, "scan_s": report["seconds"], "items": report["files"]}


def warm(library: Path) -> int:
    """Read every file's first bytes once, so both sides start from a warm page cache."""
    count = 0
    for folder, _dirs, names in os.walk(library):
        for name in names:
            if name.endswith((".safetensors", ".pt", ".ckpt")):
                with open(os.path.join(folder, name), "rb") as f:
                    head = f.read(8)
                    if len(head) == 8:
                        f.read(min(int.from_bytes(head, "little"), 64 << 20))
                count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdnext", type=Path, required=True, help="SDNext's folder (holds launch.py)")
    parser.add_argument("--sdnext-python", help="its venv's python (default: ../sdnext-venv/bin/python next to it)")
    parser.add_argument("--library", type=Path, required=True, help="the LoRA folder both scan")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    python = args.sdnext_python or str(args.sdnext.resolve().parent / "sdnext-venv" / "bin" / "python")
    files = warm(args.library)
    print(f"{files} LoRA files in {args.library}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    ours, theirs = [], []
    for n in range(args.runs):
        order = (our_scan, sdnext_scan) if n % 2 == 0 else (sdnext_scan, our_scan)
        for fn in order:
            result = our_scan(args.library) if fn is our_scan else sdnext_scan(args.sdnext, python, args.library)
            (ours if fn is our_scan else theirs).append(result)
            print(f"run {n + 1}: {'ours' if fn is our_scan else 'SDNext'} {result}", file=sys.stderr)
    median = {side: {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "scan_s")}
              for side, runs in (("ours", ours), ("sdnext", theirs))}
    whole = median["sdnext"]["wall_s"] / median["ours"]["wall_s"]
    alone = median["sdnext"]["scan_s"] / median["ours"]["scan_s"]
    summary = {"files": files, "runs": args.runs, "median": median, "faster_whole": whole, "faster_scan_alone": alone,
               "target": f"ours ≥ {TARGET} × faster whole", "passed": whole >= TARGET, "load": os.getloadavg()[0]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"first scan of {files} files, median of {args.runs} runs each, page cache warm")
        print(f"  SDNext: {median['sdnext']['wall_s']:.1f} s whole (process start included), "
              f"{median['sdnext']['scan_s']:.1f} s listing alone")
        print(f"  ours:   {median['ours']['wall_s']:.1f} s whole (process start included), "
              f"{median['ours']['scan_s']:.1f} s scan alone")
        print(f"  ours is {whole:.1f} × faster whole, {alone:.1f} × faster scan alone "
              f"(target ≥ {TARGET} × whole: {'met' if whole >= TARGET else 'MISSED'})")
    return 0 if whole >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
