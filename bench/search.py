"""Library search benchmark: every key of the query language over REST, at library scale.

    .venv/bin/python bench/search.py [--dir /tmp/lora-manager-search-bench] [--loras 50000]
                                     [--db URL] [--repeat 3] [--json]

The library (``--loras`` rows as the scanner writes them: names, folders, base models, hashes,
trigger words, tags, ratings, favourites, uses; no files) is written once into ``--dir``
(SQLite) or the database at ``--db`` (PostgreSQL; emptied and refilled when its size or
build differs). Then the standalone app (REST routes and UI) is served by uvicorn on a local
port, and each query of ``queries()`` — every filter key and sort key, with values that match
and values that do not, negated, combined — is fetched ``--repeat`` times through
``GET /lora-manager/v1/loras`` on a kept-alive HTTP connection: its first page, a deep page (the
middle of its results) by page number, and the same deep page by cursor when the server hands
out cursors. Every fetch is one sample. A first page is fetched as a new search (the library's
remembered counts are forgotten first); deeper pages count on the first page's, as when someone
pages through a result.

Printed per key: p50, p95 and max of the round trip, the median time the server spent in SQL
(the rest is Python: routing, the page of summaries, JSON) and the median and p95 CPU time of this
process per fetch (server and client: on a loaded machine, what the fetch itself cost; the
PostgreSQL server's CPU is not in it); then overall figures and the slowest fetches. Targets
(``TARGETS``): p95 ≤ 30 ms for every key on SQLite and ≤ 60 ms on PostgreSQL at 50,000 LoRAs,
≤ 60 ms on SQLite at 200,000; the exit status is 1 when a key misses its target.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(1, str(BENCH))

# p95 targets by engine: (up to this many LoRAs, ms); none is set for PostgreSQL past 50,000
TARGETS = {"sqlite": ((50_000, 30.0), (200_000, 60.0)), "postgresql": ((50_000, 60.0),)}


def target_p95(engine: str, loras: int) -> float | None:
    return next((ms for size, ms in TARGETS[engine] if loras <= size), None)
BUILD = "search-rows-1"  # bump when the rows change, so a kept database is rebuilt
ROOT = "/library/loras"
PER_PAGE = 48
DAY = 86400.0


# --- the library --------------------------------------------------------------------------


def plan_rows(count: int, seed: int = 3) -> tuple[list[dict], dict[int, list[str]]]:
    """``count`` LoRA rows (column -> value) and the tags of each (by position).

    Names and folders come from run.py's synthetic library (kohya, CivitAI and odd names, Zipf
    folders up to three deep); the rest in the proportions of real libraries: ~5 % renamed, 60 %
    with a training output name, 40 % with trigger words, 30 % tagged (200 tags, Zipf), 20 %
    rated, 5 % favourites and NSFW, 90 % hashed, 1 % duplicate files, 1 % missing, 0.1 %
    unreadable, 0.5 % in the trash, 15 % used."""
    import run  # the synthetic library's names and folders

    from lib_lora_manager import scanner

    rng = random.Random(seed)
    now = time.time()
    folders = run.make_folders(rng, "", max(20, count // 100))
    names, weights = zip(*folders)
    tags = run.tag_vocabulary()
    zipf = [1 / (k + 1) for k in range(len(tags))]
    taken: set[str] = set()
    rows, row_tags, hashes = [], {}, []
    for index, folder in enumerate(rng.choices(names, weights, k=count)):
        plan = run._plan_file(rng, folder, index, now, taken)
        relpath = plan.relpath
        filename = relpath.rsplit("/", 1)[-1]
        stem, _, ext = filename.rpartition(".")
        display_name = stem.replace("_", " ").title() if rng.random() < 0.05 else None
        title = f"{stem.split('_')[0].title()} ({plan.family.upper()})" if rng.random() < 0.15 else None
        output_name = stem.split(".")[0][:60] if rng.random() < 0.6 else None
        words = rng.sample(run.SUBJECTS + run.STYLES, rng.randint(1, 3)) if rng.random() < 0.4 else []
        mine = sorted(set(rng.choices(tags, zipf, k=rng.randint(1, 3)))) if rng.random() < 0.3 else []
        notes = rng.choice(("works best at 0.7", "retrained, use v2", "needs testing", "great with anime models")) \
            if rng.random() < 0.02 else None
        if hashes and rng.random() < 0.01:
            sha = rng.choice(hashes)  # the same file twice: a duplicate
        else:
            sha = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest() if rng.random() < 0.9 else None
            if sha:
                hashes.append(sha)
        missing = rng.random() < 0.01
        used = rng.random() < 0.15
        mtime = plan.mtime
        added = min(now, mtime + rng.uniform(0, 30 * DAY)) if rng.random() > 0.03 else now - rng.uniform(0, 20 * DAY)
        suggestions = [[w, rng.randint(1, 400)] for w in rng.sample(run.SUBJECTS + run.STYLES, rng.randint(5, 15))]
        rows.append(dict(
            path=f"{ROOT}/{relpath}", root=ROOT, relpath=relpath, folder=folder, filename=filename, stem=stem,
            sdnext_name=stem.replace(".", "_"), sort_name=scanner.sort_name(display_name, title, stem), format=ext,
            size=plan.rank * rng.randint(400_000, 1_200_000), mtime_ns=int(mtime * 1e9), mtime=mtime, inode=index + 1000,
            added_at=added, scanned_at=now, missing=missing, missing_since=now - DAY if missing else None,
            error="the header is cut short (interrupted download?)" if rng.random() < 0.001 else None,
            header_size=rng.randint(20_000, 400_000), base_model_detected=plan.family, base_model_source="header",
            adapter_type=plan.adapter, network_module="networks.lora", network_dim=plan.rank, network_alpha=plan.rank / 2,
            title=title, output_name=output_name, training_model=f"{plan.family}_base.safetensors",
            resolution="1024,1024" if plan.family != "sd1" else "512,512", epochs=rng.randint(1, 20),
            steps=rng.randint(500, 8000), architecture=None, trigger_suggestions=json.dumps(suggestions),
            sha256=sha, addnet_hash=hashlib.sha256((sha or "").encode()).hexdigest() if sha else None,
            hashed_mtime_ns=int(mtime * 1e9) if sha else None, base_model=plan.family, display_name=display_name,
            favorite=rng.random() < 0.05, rating=rng.randint(1, 5) if rng.random() < 0.2 else None, notes=notes,
            nsfw=rng.random() < 0.05, trigger_words=json.dumps(words) if words else None,
            trashed_at=now - DAY if rng.random() < 0.005 else None,
            search_text=scanner.search_text(stem, display_name, title, output_name, mine, words, notes),
            updated_at=now, use_count=rng.randint(1, 200) if used else 0,
            last_used_at=now - rng.uniform(0, 400 * DAY) if used else None))
        if mine:
            row_tags[index] = mine
    return rows, row_tags


def build(library, count: int) -> float:
    """Write ``count`` rows (and their tags) into an empty library; returns the seconds it took."""
    from sqlalchemy import insert, select

    from lib_lora_manager.models import Lora, LoraTag, Tag

    started = time.perf_counter()
    rows, row_tags = plan_rows(count)
    root_id = library.store.mounts.root_id(ROOT)
    for row in rows:
        row["root_id"] = root_id
    tag_names = sorted({t for names in row_tags.values() for t in names})
    for start in range(0, len(rows), 5000):
        with library.store.db.write() as session:
            session.execute(insert(Lora), rows[start:start + 5000])
    with library.store.db.write() as session:
        session.execute(insert(Tag), [{"name": n} for n in tag_names])
        tag_id = dict(session.execute(select(Tag.name, Tag.id)).all())
        lora_id = dict(session.execute(select(Lora.path, Lora.id)).all())
        links = [{"lora_id": lora_id[rows[i]["path"]], "tag_id": tag_id[n]} for i, names in row_tags.items() for n in names]
        for start in range(0, len(links), 10_000):
            session.execute(insert(LoraTag), links[start:start + 10_000])
    if library.store.db.engine.dialect.name == "postgresql":
        # autovacuum vacuums and analyses a table this changed within a minute or so: searches are measured
        # in that state, not in the seconds after a bulk load
        with library.store.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def open_library(folder: Path, url: str | None, count: int, reset=None):
    """The library of ``count`` rows in ``folder`` (SQLite) or at ``url``, written when it holds
    another size or build. ``reset`` empties the database for that (default: the SQLite file, or
    the URL's ``public`` schema)."""
    from sqlalchemy import func, select

    from lib_lora_manager.library import Library
    from lib_lora_manager.models import Lora, State

    library = Library.open(str(folder), roots=[ROOT], database_url=url, hashing=False)
    with library.store.db.read() as session:
        have = session.scalar(select(func.count(Lora.id)))
        built = session.get(State, "bench-build")
    if have != count or built is None or built.value != BUILD:
        if have:  # another size or build: start again from an empty database
            library.close()
            if reset is not None:
                reset()
            elif url:
                from sqlalchemy import create_engine, text

                engine = create_engine(url)
                with engine.begin() as conn:
                    conn.execute(text("DROP SCHEMA public CASCADE"))
                    conn.execute(text("CREATE SCHEMA public"))
                engine.dispose()
            else:
                for path in folder.glob("lora_manager.db*"):
                    path.unlink()
            library = Library.open(str(folder), roots=[ROOT], database_url=url, hashing=False)
        print(f"writing {count:,} LoRAs …", file=sys.stderr, flush=True)
        seconds = build(library, count)
        with library.store.db.write() as session:
            session.merge(State(key="bench-build", value=BUILD))
        print(f"built in {seconds:.1f} s", file=sys.stderr, flush=True)
    return library


# --- the queries --------------------------------------------------------------------------


def queries(library) -> list[tuple[str, str]]:
    """(key, query): every filter key and sort key of the query language, with values that
    match many, few and no LoRAs, negated, and combined."""
    from sqlalchemy import func, select

    from lib_lora_manager.models import Lora

    with library.store.db.read() as session:
        folders = [f for f, _ in session.execute(select(Lora.folder, func.count()).group_by(Lora.folder)
                                                  .order_by(func.count().desc(), Lora.folder)).all() if f]
        some_hash = session.scalar(select(Lora.sha256).where(Lora.sha256.is_not(None)).order_by(Lora.id).limit(1))
        some_stem = (session.scalar(select(Lora.stem).order_by(Lora.id).offset(777).limit(1))  # not the first rows
                     or session.scalar(select(Lora.stem).order_by(Lora.id).limit(1)))  # a small library
    some_hash = some_hash or "5eed" * 16  # a library scanned without hashing: the key is timed all the same
    big, small, deep = folders[0], folders[len(folders) // 2], max(folders, key=lambda f: f.count("/"))
    rare_word = max(some_stem.replace("_", " ").split(), key=len)
    return [
        ("(none)", ""),
        ("text", "style"), ("text", "miku"), ("text", rare_word), ("text", "xl"), ("text", '"detail tweaker"'),
        ("text", "anime style"), ("text", "初音ミク"), ("text", "zqxjkv"), ("text", "-style"), ("text", "-zqxjkv"),
        ("tag", "tag:anime"), ("tag", 'tag:"blue hair"'), ("tag", "tag:keep"), ("tag", "tag:no-such-tag"), ("tag", "-tag:anime"),
        ("base", "base:sd1"), ("base", "base:flux"), ("base", "base:sd3"), ("base", "-base:sd1"),
        ("type", "type:lora"), ("type", "type:loha"), ("type", "type:oft"), ("type", "-type:lora"),
        ("rating", "rating:>=4"), ("rating", "rating:5"), ("rating", "rating:2..3"), ("rating", "rating:none"),
        ("rating", "rating:>5"), ("rating", "-rating:none"),
        ("fav", "fav:yes"), ("fav", "fav:no"), ("favorite", "favorite:yes"),
        ("missing", "missing:yes"), ("missing", "missing:no"),
        ("hashed", "hashed:no"), ("hashed", "hashed:yes"),
        ("nsfw", "nsfw:yes"), ("nsfw", "nsfw:no"),
        ("error", "error:yes"), ("error", "error:no"),
        ("folder", f'folder:"{big}"'), ("folder", f'folder:"{small}"'), ("folder", f'folder:"{deep}"'),
        ("folder", "folder:no/such/folder"), ("folder", f'-folder:"{big}"'),
        ("dupe", "dupe:yes"), ("dupe", "dupe:no"),
        ("hash", f"hash:{some_hash[:10]}"), ("hash", "hash:0000000000"),
        ("used", "used:never"), ("used", "used:yes"), ("used", "used:<30d"), ("used", "used:>1y"),
        ("uses", "uses:>=1"), ("uses", "uses:>100"), ("uses", "uses:0"), ("uses", "uses:>100000"),
        ("added", "added:<30d"), ("added", "added:>1y"), ("added", "added:2000-01-01..2001-01-01"),
        ("modified", "modified:<30d"), ("modified", "modified:>1y"), ("modified", "modified:>2100-01-01"),
        *[("sort", f"sort:{d}{key}") for key in ("name", "added", "modified", "size", "rating", "used", "uses")
          for d in ("", "-")],
        ("combined", "style tag:anime base:sdxl rating:>=3 sort:-rating"),
        ("combined", "-tag:anime base:sd1 fav:no type:lora sort:-added"),
        ("combined", f'folder:"{big}" miku sort:size'),
        ("combined", "hashed:yes missing:no -nsfw:yes sort:-uses"),
    ]


# --- the server ---------------------------------------------------------------------------


class Server:
    """The standalone app served by uvicorn on a local port, and one kept-alive connection to it."""

    def __init__(self, library):
        import uvicorn

        from lib_lora_manager.hosts.standalone import build_app

        app = build_app(library)
        gc.collect()  # what startup built out of the collector's sight, as hosts.standalone.serve does
        gc.freeze()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-bench", daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, params: dict) -> tuple[int, dict]:
        self.connection.request("GET", f"{path}?{urlencode(params)}")
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.connection.close()
        self.server.should_exit = True
        self.thread.join(10)


class SqlClock:
    """Seconds the database driver spent executing statements (in any thread) since ``reset``."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.seconds, self._started = 0.0, threading.local()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.seconds = 0.0

    def _before(self, *_args) -> None:
        self._started.at = time.perf_counter()

    def _after(self, *_args) -> None:
        self.seconds += time.perf_counter() - self._started.at


# --- the run ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def run(library, repeat: int) -> list[dict]:
    """Fetch every query's pages ``repeat`` times; one dict per fetch."""
    from lib_lora_manager import api

    url = f"{api.PREFIX}/loras"
    server, clock = Server(library), SqlClock(library.store.db.engine)
    samples = []

    def fetch(key: str, q: str, page_name: str, params: dict) -> dict:
        for n in range(repeat + 1):  # the first fetch of each warms the statement caches, untimed
            if page_name == "1":  # a first page is a new search: its count is taken, not remembered
                library.store.db.totals.clear()
            clock.reset()
            started, cpu = time.perf_counter(), time.process_time()
            status, body = server.get(url, {"q": q, "per_page": PER_PAGE, **params})
            ms = (time.perf_counter() - started) * 1000
            cpu_ms = (time.process_time() - cpu) * 1000
            if status != 200:
                raise SystemExit(f"GET {url} q={q!r} {params}: {status} {body}")
            if n:
                samples.append({"key": key, "q": q, "page": page_name, "ms": ms, "cpu_ms": cpu_ms, "sql_ms": clock.seconds * 1000,
                                "total": body["total"]})
        return body

    try:
        for key, q in queries(library):
            first = fetch(key, q, "1", {"page": 1})
            pages = max(1, -(-first["total"] // PER_PAGE))
            if pages >= 4:
                middle = pages // 2
                fetch(key, q, f"{middle}", {"page": middle})
                before = fetch(key, q, f"{middle - 1} (for its cursor)", {"page": middle - 1})
                samples[:] = [s for s in samples if not s["page"].endswith("(for its cursor)")]
                if before.get("next"):  # the server pages by cursor too
                    fetch(key, q, f"{middle} by cursor", {"after": before["next"]})
    finally:
        server.close()
    return samples


def latency(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1)}


def summarise(samples: list[dict], engine: str, loras: int) -> dict:
    target = target_p95(engine, loras)
    by_key: dict[str, list[dict]] = {}
    for s in samples:
        by_key.setdefault(s["key"], []).append(s)
    def medians(group: list[dict]) -> dict[str, float]:
        return {"sql_p50": round(statistics.median(s["sql_ms"] for s in group), 1),
                "cpu_p50": round(statistics.median(s["cpu_ms"] for s in group), 1),
                "cpu_p95": round(percentile([s["cpu_ms"] for s in group], 95), 1)}

    keys = {key: {**latency([s["ms"] for s in group]), **medians(group)} for key, group in by_key.items()}
    return {"overall": {**latency([s["ms"] for s in samples]), **medians(samples)},
            "keys": keys, "target_p95_ms": target, "missed": sorted(k for k, v in keys.items() if target is not None and v["p95"] > target),
            "slowest": sorted(samples, key=lambda s: -s["ms"])[:8]}


def report(summary: dict, engine: str, count: int) -> str:
    lines = [f"{'key':<10} {'n':>4} {'p50':>7} {'p95':>7} {'max':>7} {'SQL p50':>8} {'CPU p50':>8} {'CPU p95':>8}   "
             "(ms, round trips over REST)"]
    for key, s in [*summary["keys"].items(), ("overall", summary["overall"])]:
        mark = "  MISS" if key in summary["missed"] else ""
        lines.append(f"{key:<10} {s['n']:>4} {s['p50']:>7.1f} {s['p95']:>7.1f} {s['max']:>7.1f} {s['sql_p50']:>8.1f} "
                     f"{s['cpu_p50']:>8.1f} {s['cpu_p95']:>8.1f}{mark}")
    lines.append("slowest:")
    lines += [f"  {s['ms']:7.1f} ms (SQL {s['sql_ms']:.1f})  page {s['page']:<14} {s['total']:>6} found  {s['q']!r}"
              for s in summary["slowest"]]
    o = summary["overall"]
    lines.append(f"{engine}, {count:,} LoRAs, {o['n']} fetches: p50 {o['p50']:.1f} ms, p95 {o['p95']:.1f} ms, "
                 + (f"max {o['max']:.1f} ms; no target at this size" if summary["target_p95_ms"] is None else
                    f"max {o['max']:.1f} ms; target p95 ≤ {summary['target_p95_ms']:.0f} ms for every key: "
                    + (f"missed by {', '.join(summary['missed'])}" if summary["missed"] else "met")))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-search-bench")
    parser.add_argument("--loras", type=int, default=50_000)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in --dir)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("lora_manager").setLevel(logging.WARNING)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    engine = "postgresql" if args.db else "sqlite"
    load = [os.getloadavg()[0]]
    library = open_library(folder, args.db, args.loras)
    try:
        samples = run(library, args.repeat)
    finally:
        library.close()
    load.append(os.getloadavg()[0])
    summary = summarise(samples, engine, args.loras)
    if args.json:
        print(json.dumps({"loras": args.loras, "database": engine, "load": load, **summary}, indent=2, ensure_ascii=False))
    else:
        print(report(summary, engine, args.loras))
        print(f"load average (1 min) at start, end: {load[0]:.2f}, {load[1]:.2f}")
    return 1 if summary["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
