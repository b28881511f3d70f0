"""CPU per file of each stage of a reading process's work, against the orjson parse floor.

    python bench/parse.py [--dir FOLDER] [--files 500] [--min-kb 0] [--repeat 3]

Reads the safetensors files under FOLDER (page cache warm: every header is read once first) and
prints, per file, the CPU time (``time.process_time``, best of --repeat runs, one thread) of:

- floor: open, read the header, ``orjson.loads`` it: the least a scan does per file;
- each stage a reading process runs for a file (reading.analyse): the header's I/O, its parse
  and checks, lora_info.extract, the whole analysis without and with the I/O, and pickling the
  reply both ways (the worker's dumps, the scan's loads);
- the whole analysis when every file's tensor part is new (the whole parse for each) and when
  the layouts are known (safetensors_header.Layouts: only the metadata is parsed), with how many
  distinct layouts the files hold.

The garbage collector is tuned as in a reading process. ``--min-kb 300`` keeps SDXL headers only.
CPU seconds are reliable on a busy machine where wall seconds are not; the load is printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from lib_lora_manager import lora_info, reading  # noqa: E402
from lib_lora_manager.safetensors_header import HeaderError, Layouts, parse_header, read_header_bytes  # noqa: E402


def files(folder: Path, count: int, min_bytes: int) -> list[reading.Found]:
    """Up to ``count`` readable safetensors files under ``folder`` with headers of ``min_bytes`` or more."""
    out = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in sorted(names):
            if not name.endswith(".safetensors"):
                continue
            path = os.path.join(dirpath, name)
            try:
                raw, _ = read_header_bytes(path)
            except HeaderError:
                continue
            if len(raw) < min_bytes:
                continue
            st = os.stat(path)
            out.append(reading.Found(path, str(folder), os.path.relpath(path, folder), dirpath, name,
                                     st.st_size, st.st_mtime_ns, st.st_ino, []))
            if len(out) >= count:
                return out
    return out


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp/lora-manager-bench/loras/cold"))
    p.add_argument("--files", type=int, default=500)
    p.add_argument("--min-kb", type=int, default=0, help="only headers of at least this many KB")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    found = files(args.dir, args.files, args.min_kb * 1000)
    if not found:
        sys.exit(f"no readable safetensors files under {args.dir}")
    paths = [f.path for f in found]
    raws = [read_header_bytes(path) for path in paths]  # the page cache is warm from here on
    gc.set_threshold(100_000, 50, 100)  # as in a reading process (reading.serve)

    def floor() -> None:
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                try:
                    orjson.loads(f.read(int.from_bytes(f.read(8), "little")))
                except orjson.JSONDecodeError:  # a broken file costs its parse, as in bench/run.py
                    pass

    def read() -> None:
        for path in paths:
            read_header_bytes(path)

    def parse() -> None:
        for raw, data_size in raws:
            try:
                parse_header(raw, data_size)
            except HeaderError:
                pass

    def extract() -> None:
        for (raw, data_size), f in zip(raws, found):
            try:
                header = parse_header(raw, data_size)
            except HeaderError:
                continue
            lora_info.extract(header, f.filename)

    def analyse_given_bytes() -> None:
        for f, raw in zip(found, raws):
            reading.analyse(f, None, raw)

    def analyse() -> None:
        for f in found:
            reading.analyse(f, None)

    def analyse_new_layouts() -> None:
        reading.LAYOUTS = Layouts(max_bytes=0)  # holds nothing: every header parsed whole
        try:
            analyse()
        finally:
            reading.LAYOUTS = known

    known = reading.LAYOUTS
    analyse()  # learns the layouts
    layouts = len(known)

    def workers_cpu(batch: list[reading.Found]) -> float:
        """CPU seconds of two reading processes (reading.Readers) reading ``batch``, their start included."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with reading.Readers(None, processes=2, min_files=1) as readers:
            for _analysed in readers.analysed([batch]):
                pass
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # counted once they have ended
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    replies = [reading.analyse(f, None, raw) for f, raw in zip(found, raws)]
    reply = pickle.dumps(replies, protocol=pickle.HIGHEST_PROTOCOL)

    floor_s = best_cpu(floor, args.repeat)
    stages = [
        ("floor: open + read + orjson.loads", floor_s),
        ("read_header_bytes (the I/O)", best_cpu(read, args.repeat)),
        ("parse_header (parse and checks)", best_cpu(parse, args.repeat)),
        ("parse_header + lora_info.extract", best_cpu(extract, args.repeat)),
        ("reading.analyse, every layout new", best_cpu(analyse_new_layouts, args.repeat)),
        ("reading.analyse, header bytes given", best_cpu(analyse_given_bytes, args.repeat)),
        ("reading.analyse, layouts known (a worker's work)", best_cpu(analyse, args.repeat)),
        ("reply: pickle.dumps", best_cpu(lambda: pickle.dumps(replies, protocol=pickle.HIGHEST_PROTOCOL),
                                          args.repeat)),
        ("reply: pickle.loads", best_cpu(lambda: pickle.loads(reply), args.repeat)),
        # the same files through the pipes, less the processes' start (two started for one file)
        ("2 reading processes (reading.Readers), all in", min(workers_cpu(found) for _ in range(args.repeat))
         - min(workers_cpu(found[:1]) for _ in range(args.repeat))),
    ]
    n = len(found)
    mean_kb = sum(len(raw) for raw, _ in raws) / n / 1000
    print(f"{n} files under {args.dir}, headers {mean_kb:.0f} KB on average; load average {os.getloadavg()[0]:.2f}; "
          f"{layouts} distinct tensor layouts; CPU per file, best of {args.repeat}")
    for name, seconds in stages:
        print(f"  {name:45s} {seconds / n * 1000:7.3f} ms  {seconds / floor_s:5.2f} × floor")
    print(f"  reply size: {len(reply) / n / 1000:.1f} KB per file")


if __name__ == "__main__":
    main()
