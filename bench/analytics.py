"""Analytics benchmark: the history benchmark's synthetic history (bench/history.py, one
generation a minute), grown to ``--loras`` library entries, then the whole report timed per
window and query, each of its parts within it, and one LoRA's usage (a much used one and a
little used one).

    .venv/bin/python bench/analytics.py [--dir /tmp/lora-manager-history-bench] [--generations 100000]
                                        [--loras 50000] [--db URL] [--repeat 5]

The history's hourly rollups (rollups.py) are summed first, and timed, when hours are marked
(after the build or the migration that added them). Printed per report: p50 and p95 over ``--repeat`` runs (after one warm-up run) in ms, the CPU
time this process spent (with SQLite, all of the report's: on a busy machine the steadier figure)
and, with a PostgreSQL server on this machine, its server processes' CPU time for this database
besides, the parts' p50s (the LoRAs' parts, from "loras' scope" on, run on a second connection
beside the generations': their sum is more than the wall time), and the machine's load average. Targets: the report ≤ 500 ms, a LoRA's usage ≤ 50 ms (p95).
The exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

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


def server_cpu(library) -> float | None:
    """Milliseconds of CPU the PostgreSQL server processes of this database have used (None with
    SQLite, or a server whose processes this machine does not show)."""
    if library.store.db.is_sqlite:
        return None
    from sqlalchemy import text

    with library.store.db.engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars().all()
    ticks, seen = 0, False
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks, seen = ticks + int(fields[11]) + int(fields[12]), True  # utime, stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK") if seen else None


def timed(fn, repeat: int) -> tuple[list[float], list]:
    """Milliseconds of ``repeat`` runs of ``fn`` after a warm-up one, and what each returned."""
    fn()
    times, results = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        results.append(fn())
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def p50_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-history-bench")
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--loras", type=int, default=50_000)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in --dir)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from history import open_history
    from sqlalchemy import func, select

    from lib_lora_manager.models import GenerationLora

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    library = open_history(folder, args.db, args.generations)
    missed = False
    try:
        grow_library(library, args.loras)
        from lib_lora_manager import rollups

        started = time.perf_counter()
        summed = library.store.db.transaction(rollups.refresh)
        if summed:  # once after the history was written (or migrated): later writes mark a few hours
            print(f"summed {summed:,} marked hours of the history into its rollups in {time.perf_counter() - started:.1f} s")
        print(f"{library.store.db.engine.dialect.name}: {args.generations:,} generations, {args.loras:,} LoRAs")
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        for window, q in (("24h", ""), ("30d", ""), ("all", ""), ("30d", "model:dreamshaper"), ("all", "castle")):
            def run(window=window, q=q):
                parts: dict[str, float] = {}
                cpu, server = time.process_time(), server_cpu(library)
                library.analytics.report(window, q, timings=parts)
                parts["cpu"] = (time.process_time() - cpu) * 1000
                if server is not None:
                    parts["server"] = server_cpu(library) - server
                return parts
            times, parts = timed(run, args.repeat)
            p50, p95 = p50_p95(times)
            cpu = statistics.median(p.pop("cpu") for p in parts)
            server = statistics.median(p.pop("server") for p in parts) if "server" in parts[0] else None
            missed |= p95 > TARGET_REPORT_MS
            print(f"report window={window:<4} q={q!r:<22} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  this process's CPU p50 "
                  f"{cpu:7.1f} ms" + ("" if server is None else f"  server's CPU p50 {server:7.1f} ms")
                  + f"  (load {os.getloadavg()[0]:.2f})")
            print("    " + ", ".join(f"{name} {statistics.median(p[name] for p in parts):.0f}" for name in parts[0]))
        with library.store.db.read() as session:  # the most used LoRA and one used once or twice
            by_uses = select(GenerationLora.lora_id, func.count()).where(GenerationLora.lora_id.is_not(None)) \
                .group_by(GenerationLora.lora_id).order_by(func.count().desc())
            most = session.execute(by_uses.limit(1)).one()
            least = session.execute(by_uses.order_by(None).order_by(func.count(), GenerationLora.lora_id).limit(1)).one()
        for lora_id, uses in (most, least):
            times, _ = timed(lambda lora_id=lora_id: library.analytics.lora_usage(lora_id), args.repeat)
            p50, p95 = p50_p95(times)
            missed |= p95 > TARGET_USAGE_MS
            print(f"one LoRA's usage (id {lora_id}, {uses:,} uses)  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    finally:
        library.close()
    print("targets: report ≤ 500 ms, usage ≤ 50 ms: " + ("MISSED" if missed else "met"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
