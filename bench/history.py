"""History search benchmark: a large synthetic generation history, then every query key timed.

    .venv/bin/python bench/history.py [--dir /tmp/lora-manager-history-bench] [--generations 100000]
                                      [--db URL] [--repeat 3] [--json]

The history (``--generations`` records with two LoRAs and one image each, 5,000 library
entries, realistic prompts, statuses, models, ratings and groups) is written once into
``--dir`` (SQLite) or the database at ``--db`` (PostgreSQL; emptied and refilled when its
size differs), then each query of ``QUERIES`` runs ``--repeat`` times for its first page and
a deep page (48 per page, the History tab's page), and the same deep page by cursor when the
history hands out cursors. First pages are timed as new searches (remembered counts forgotten
first); deep pages follow the page before them, whose count they reuse. Printed: the best time
of each (and the least CPU time this process spent on it: with SQLite, all of the search's; on a busy machine the steadier figure), and p50,
p95 and max over all of them; the target is p95 ≤ 50 ms on SQLite and ≤ 80 ms on PostgreSQL,
free text included. The exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ("castle forest girl knight city night neon portrait landscape dragon cat dog anime realistic "
         "photo sunset river mountain armor sword watercolor ink studio light rain snow").split()
QUERIES = ("", "castle", "-castle", '"neon sunset"', "castle dragon", "lora:l42", "lora:gone7", "model:dreamshaper",
           "status:failed", "-status:succeeded", "date:<7d", "date:2020-01-01..2030-01-01", "rating:>=4", "fav:yes",
           "source:api", "group:job-55", "sort:-rating", "sort:-duration", "castle sort:-rating", "fav:yes sort:-rating",
           "lora:l42 sort:-rating", "rating:none -fav:yes")
TARGET_P95_MS = {"sqlite": 50.0, "postgresql": 80.0}
LORAS = 5000


def build(library, count: int, seed: int = 1) -> float:
    """Fill an empty history with ``count`` generations; returns the seconds it took."""
    from sqlalchemy import insert

    from lib_lora_manager.models import Generation, GenerationImage, GenerationLora, Lora

    rng = random.Random(seed)
    started = time.perf_counter()
    now = time.time()
    with library.store.db.write() as session:
        session.execute(insert(Lora), [dict(
            path=f"/bench/l{i}.safetensors", root="/bench", relpath=f"l{i}.safetensors", folder="", filename=f"l{i}.safetensors",
            stem=f"l{i}", sdnext_name=f"l{i}", sort_name=f"l{i}", format="safetensors", size=1, mtime_ns=1, mtime=0,
            added_at=0, scanned_at=0, updated_at=0, search_text=f"l{i}") for i in range(LORAS)])
    for start in range(0, count, 10_000):
        generations, used, images = [], [], []
        for i in range(start + 1, min(count, start + 10_000) + 1):
            lora = i % LORAS
            prompt = " ".join(rng.choice(WORDS) for _ in range(30)) + f" <lora:l{lora}:0.8> <lora:gone{i % 300}:1>"
            generations.append(dict(
                id=i, started_at=now - (count - i) * 60, duration=rng.random() * 20,
                status=rng.choice(("succeeded",) * 20 + ("failed", "interrupted")), source=rng.choice(("txt2img", "img2img", "api")),
                prompt=prompt, negative_prompt="blurry, lowres, bad hands", seeds=json.dumps([rng.randrange(1 << 31)]),
                width=512, height=512, steps=20, sampler="Euler a", cfg_scale=6.0,
                model_name=rng.choice(("sdxl_base", "dreamshaper_8", "juggernaut")), infotext=prompt + "\nSteps: 20",
                rating=rng.choice((None,) * 8 + (1, 2, 3, 4, 5)), favorite=rng.random() < 0.02,
                group_key=None if rng.random() < 0.95 else f"job-{i // 10}", image_count=1, lora_count=2))
            used += [dict(generation_id=i, position=0, lora_id=lora + 1, name=f"l{lora}", te_weight=0.8, unet_weight=0.8),
                     dict(generation_id=i, position=1, lora_id=None, name=f"gone{i % 300}", te_weight=1.0, unet_weight=1.0)]
            images.append(dict(generation_id=i, position=0, path=f"/bench/out/{i}.png", seed=1))
        with library.store.db.write() as session:
            session.execute(insert(Generation), generations)
            session.execute(insert(GenerationLora), used)
            session.execute(insert(GenerationImage), images)
    if library.store.db.engine.dialect.name == "postgresql":
        # autovacuum vacuums and analyses the tables this changed within a minute or so: searches are
        # measured in that state, not in the seconds after a bulk load
        with library.store.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def open_history(folder: Path, url: str | None, count: int):
    from sqlalchemy import func, select

    from lib_lora_manager.library import Library
    from lib_lora_manager.models import Generation

    library = Library.open(str(folder), roots=[], database_url=url, hashing=False)
    with library.store.db.read() as session:
        have = session.scalar(select(func.count(Generation.id)))
    if have != count:
        if have:  # another size: start again from an empty database
            library.close()
            if url:
                from sqlalchemy import create_engine, text

                from lib_lora_manager import text_index
                from lib_lora_manager.models import Base

                engine = create_engine(url)
                with engine.begin() as conn:
                    Base.metadata.drop_all(conn)
                    text_index.drop_postgresql(conn)  # the copies of the text are not models
                    conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
                engine.dispose()
            else:
                for path in folder.glob("lora_manager.db*"):
                    path.unlink()
            library = Library.open(str(folder), roots=[], database_url=url, hashing=False)
        print(f"writing {count:,} generations …", flush=True)
        print(f"built in {build(library, count):.1f} s", flush=True)
    return library


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-history-bench")
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in --dir)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    library = open_history(folder, args.db, args.generations)
    deep = max(1, args.generations // 48 // 20)  # a page one twentieth of the way in
    rows, times, cpus = [], [], []
    engine = "postgresql" if args.db else "sqlite"
    target = TARGET_P95_MS[engine]
    load = [os.getloadavg()[0]]
    try:
        for q in QUERIES:
            before = library.history.search(q, page=deep - 1, per_page=48) if deep > 1 else None
            cursor = getattr(before, "next", None)  # the history pages by cursor too
            for page, kwargs in ((1, {"page": 1}), (deep, {"page": deep}), (f"{deep} by cursor", {"after": cursor})):
                if "after" in kwargs and not cursor:
                    continue
                best, cpu = float("inf"), float("inf")
                for _ in range(args.repeat):
                    if page == 1:  # a new search: its count is taken, not remembered from the page before
                        library.store.db.totals.clear()
                    started, started_cpu = time.perf_counter(), time.process_time()
                    result = library.history.search(q, per_page=48, **kwargs)
                    best = min(best, time.perf_counter() - started)
                    cpu = min(cpu, time.process_time() - started_cpu)
                times.append(best * 1000)
                cpus.append(cpu * 1000)
                rows.append({"query": q, "page": page, "ms": round(best * 1000, 1), "cpu_ms": round(cpu * 1000, 1),
                             "total": result.total})
    finally:
        library.close()
    load.append(os.getloadavg()[0])
    p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[-1]
    cpu_p50, cpu_p95 = statistics.median(cpus), statistics.quantiles(cpus, n=20)[-1]
    summary = {"generations": args.generations, "database": engine, "load": load,
               "p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "max_ms": round(max(times), 1), "target_p95_ms": target,
               "cpu_p50_ms": round(cpu_p50, 1), "cpu_p95_ms": round(cpu_p95, 1)}
    if args.json:
        print(json.dumps({"summary": summary, "queries": rows}, indent=2))
    else:
        for row in rows:
            print(f"  {row['query'] or '(all)':28} page {row['page']!s:<14} {row['ms']:7.1f} ms  {row['cpu_ms']:6.1f} ms CPU"
                  f"   {row['total']:>7,} found")
        print(f"{summary['database']}, {args.generations:,} generations, {len(times)} searches: "
              f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms (target p95 ≤ {target:.0f} ms); "
              f"load average (1 min) at start, end: {load[0]:.2f}, {load[1]:.2f}; "
              f"CPU of this process per search p50 {cpu_p50:.1f} ms, p95 {cpu_p95:.1f} ms"
              + (" (the database server's is not in it)" if args.db else ""))
    return 0 if p95 <= target else 1


if __name__ == "__main__":
    sys.exit(main())
