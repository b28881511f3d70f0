"""Analytics benchmark: the history benchmark's synthetic history (bench/history.py, one
generation a minute), grown to ``--loras`` library entries, then the whole report and each of
its parts timed per window, and one LoRA's usage.

    .venv/bin/python bench/analytics.py [--dir /tmp/lora-manager-history-bench] [--generations 100000]
                                        [--loras 50000] [--db URL] [--repeat 3]

Printed: the best of ``--repeat`` runs of each, in ms. Targets: the report ≤ 500 ms, a LoRA's
usage ≤ 50 ms. The exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

PARTS = ("_kpis", "_series", "_top_loras", "_rising", "_never_used", "_lora_use", "_combinations", "_models",
         "_speed", "_errors", "_health")
TARGET_REPORT_MS, TARGET_USAGE_MS = 500.0, 50.0


def grow_library(library, loras: int) -> None:
    """Unused library entries up to ``loras`` in all (the history's LoRAs are the first)."""
    from sqlalchemy import func, insert, select

    from lib_lora_manager.models import Lora

    with library.store.db.read() as session:
        have = session.scalar(select(func.count(Lora.id)))
    if have >= loras:
        return
    print(f"adding {loras - have:,} LoRAs …", flush=True)
    for start in range(have, loras, 10_000):
        with library.store.db.write() as session:
            session.execute(insert(Lora), [dict(
                path=f"/bench/u{i}.safetensors", root="/bench", relpath=f"u{i}.safetensors", folder="unused", filename=f"u{i}.safetensors",
                stem=f"u{i}", sdnext_name=f"u{i}", sort_name=f"u{i}", format="safetensors", size=1 << 20, mtime_ns=1, mtime=0,
                added_at=time.time() - i, scanned_at=0, updated_at=0, search_text=f"u{i}") for i in range(start, min(loras, start + 10_000))])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-history-bench")
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--loras", type=int, default=50_000)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in --dir)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from history import open_history

    from lib_lora_manager import analytics

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    library = open_history(folder, args.db, args.generations)
    missed = False
    try:
        grow_library(library, args.loras)
        print(f"{library.store.db.engine.dialect.name}: {args.generations:,} generations, {args.loras:,} LoRAs")
        for window, q in (("24h", ""), ("30d", ""), ("all", ""), ("30d", "model:dreamshaper"), ("all", "castle")):
            total = best(lambda window=window, q=q: library.analytics.report(window, q), args.repeat)
            missed |= total > TARGET_REPORT_MS
            print(f"report window={window:<4} q={q!r:<22} {total:8.1f} ms")
            s = analytics.scope(window, q)
            parts = []
            for part in PARTS:
                def run(part=part, s=s):
                    with library.store.db.read() as session:
                        method = getattr(library.analytics, part)
                        return method(session) if part in ("_never_used", "_health") else method(session, s)
                parts.append(f"{part.strip('_')} {best(run, args.repeat):.0f}")
            print("    " + ", ".join(parts))
        usage = best(lambda: library.analytics.lora_usage(43), args.repeat)
        missed |= usage > TARGET_USAGE_MS
        print(f"one LoRA's usage {usage:8.1f} ms")
    finally:
        library.close()
    print("targets: report ≤ 500 ms, usage ≤ 50 ms: " + ("MISSED" if missed else "met"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
