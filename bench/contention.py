"""Contention benchmark: writers in several processes at once, on SQLite and on PostgreSQL.

    .venv/bin/python bench/contention.py [--repo DIR] [--only sqlite,postgres] [--pg-url URL] [--seconds 20]
                                         [--files 1000] [--editors 2] [--threads 2] [--servers 2] [--clients 8]
                                         [--dir /tmp/lora-manager-contention] [--json]

SQLite: one process keeps changing a quarter of the files, re-scanning and hashing (SDNext's
background work), while ``--editors`` other processes (the CLI, a second SDNext) edit through the
Library API with ``--threads`` threads each: notes, ratings, tag sets, tags added in bulk (some
of them new tags that every editor creates at the same moment).
PostgreSQL (``--pg-url``, a database this benchmark may empty): ``--servers`` standalone servers
(``serve --no-scan --no-hashing``) on that one database, hammered over HTTP by ``--clients``
threads: tag sets of one LoRA, tags added to the same LoRAs, the same new tag created on
several LoRAs at once, notes and tags of one LoRA at once.

Printed for each: requests, errors (an exception, or an HTTP status ≥ 500), lost updates (an
acknowledged tag that is not there at the end, a last-writer-wins field whose final value was
never written, a search text that does not hold the LoRA's notes and tags), and the edit latency
p50 / p99. ``--repo`` runs the code of another checkout (the code before a change, say) under this
same harness. Everything stays on this machine and in ``--dir``; the run is bounded by
``--seconds`` per database.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve()
TAG_POOL = ("alpha", "beta", "gamma", "delta", "epsilon")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def use_repo(repo: str) -> None:
    """Import lib_lora_manager from ``repo`` (and nothing else from here on)."""
    sys.path.insert(0, os.path.abspath(repo))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


# --- files --------------------------------------------------------------------------------------


def write_files(folder: Path, names: list[str], seed: int) -> None:
    from lib_lora_manager import synth

    folder.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(names):
        synth.write_lora(folder / f"{name}.safetensors", "sd1", rank=2, data="sparse", seed=seed + n)


# --- workers (run in their own processes) -------------------------------------------------------


def scanner_worker(args) -> dict:
    """Change a quarter of the files, scan, hash; again until the time is up."""
    from lib_lora_manager.library import Library

    library = Library.open(args.data, roots=None, database_url=args.db, hashing=True)
    rng = random.Random(7)
    folder = Path(library.store.roots[0])
    names = sorted(p.stem for p in folder.glob("*.safetensors"))
    deadline = time.monotonic() + args.seconds
    scans, errors, durations = 0, Counter(), []
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        changed = rng.sample(names, max(1, len(names) // 4))
        write_files(folder, changed, seed=round_ * 100_000)
        started = time.perf_counter()
        try:
            library.indexer.scan()
            library.indexer.hash_pending(limit=200)
            scans += 1
        except Exception as e:  # noqa: BLE001 - counted, the run goes on
            errors[error_text(e)] += 1
        durations.append(time.perf_counter() - started)
    library.close()
    return {"scans": scans, "errors": dict(errors), "scan_seconds": durations}


def editor_worker(args) -> dict:
    """Edit through the Library API with a few threads; every acknowledged write is reported."""
    from lib_lora_manager.library import Library

    library = Library.open(args.data, roots=None, database_url=args.db, hashing=False)
    plan = json.loads(Path(args.plan).read_text())
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    out = {"latencies": [], "errors": Counter(), "added": [], "notes": {}, "tag_sets": {}}

    def record(kind: str, lora_id: int, value) -> None:
        with lock:
            if kind == "added":
                out["added"].append([lora_id, value])
            else:
                out[kind].setdefault(str(lora_id), []).append(value)

    def run(thread: int) -> None:
        rng = random.Random(args.seed * 100 + thread)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            token = f"w{args.seed}t{thread}n{n}"
            op = rng.random()
            started = time.perf_counter()
            try:
                if op < 0.25:  # notes, of LoRAs whose tags others set or add to meanwhile
                    lora_id = rng.choice(plan["notes"] + plan["lww"])
                    library.edit(lora_id, notes=f"note {token}")
                    record("notes", lora_id, f"note {token}")
                elif op < 0.45:  # tag sets (last writer wins)
                    lora_id = rng.choice(plan["lww"])
                    tags = sorted(rng.sample(TAG_POOL, rng.randint(1, 3)))
                    library.edit(lora_id, tags=tags)
                    record("tag_sets", lora_id, tags)
                elif op < 0.7:  # a tag of its own added (kept whatever else happens)
                    lora_id = rng.choice(plan["notes"] + plan["add"])
                    library.add_tags([lora_id], [token])
                    record("added", lora_id, token)
                elif op < 0.85:  # the same new tag, created by every editor at once (a new name every 250 ms)
                    lora_id = rng.choice(plan["add"])
                    tag = f"fresh{int(time.time() * 4)}"
                    library.add_tags([lora_id], [tag])
                    record("added", lora_id, tag)
                else:
                    lora_id = rng.choice(plan["all"])
                    library.edit(lora_id, rating=rng.randint(1, 5))
            except Exception as e:  # noqa: BLE001 - every failure is a figure of this benchmark
                with lock:
                    out["errors"][error_text(e)] += 1
                continue
            finally:
                with lock:
                    out["latencies"].append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    library.close()
    out["errors"] = dict(out["errors"])
    return out


def worker_main(args) -> int:
    use_repo(args.repo)
    result = scanner_worker(args) if args.worker == "scanner" else editor_worker(args)
    print(json.dumps(result))
    return 0


# --- checks ---------------------------------------------------------------------------------------


def lost_updates(library, added, notes, tag_sets) -> dict[str, int]:
    """What the final state lacks of the acknowledged writes, and search texts that are stale."""
    from lib_lora_manager.models import Lora

    lost = Counter()
    ids = {int(i) for i, _ in added} | {int(i) for i in notes} | {int(i) for i in tag_sets}
    with library.store.db.read() as session:
        rows = {i: session.get(Lora, i) for i in ids}
        final = {i: (row.notes, sorted(t.name for t in row.tags), row.search_text or "") for i, row in rows.items() if row}
    for lora_id, tag in added:
        if tag not in final[int(lora_id)][1]:
            lost["acknowledged tag missing"] += 1
    for lora_id, values in notes.items():
        if final[int(lora_id)][0] not in values:
            lost["notes not one that was written"] += 1
    for lora_id, sets in tag_sets.items():
        written = [sorted(s) for s in sets]
        if final[int(lora_id)][1] not in written:
            lost["tag set not one that was written"] += 1
    for note, tags, text in final.values():
        if (note and note.lower() not in text) or any(t not in text for t in tags):
            lost["search text stale"] += 1
    return dict(lost)


# --- SQLite -----------------------------------------------------------------------------------------


def run_sqlite(args, base: Path) -> dict:
    from lib_lora_manager.library import Library

    folder, data = base / "sqlite" / "loras", base / "sqlite" / "data"
    shutil.rmtree(base / "sqlite", ignore_errors=True)
    names = [f"lora {i:05d}" for i in range(args.files)]
    log(f"sqlite: writing {args.files} files")
    write_files(folder, names, seed=1)
    library = Library.open(str(data), roots=[str(folder)], hashing=True)
    library.indexer.scan()
    library.indexer.hash_pending()
    ids = library.ids("")
    library.close()
    rng = random.Random(3)
    hot = rng.sample(ids, 12)
    plan = {"notes": hot[:4], "lww": hot[4:8], "add": hot[8:], "all": ids}
    plan_file = base / "sqlite" / "plan.json"
    plan_file.write_text(json.dumps(plan))
    common = ["--repo", args.repo, "--data", str(data), "--seconds", str(args.seconds), "--plan", str(plan_file)]
    log(f"sqlite: 1 scanning process, {args.editors} editing processes × {args.threads} threads, {args.seconds} s")
    procs = [subprocess.Popen([sys.executable, str(HERE), "--worker", "scanner", *common], stdout=subprocess.PIPE, text=True)]
    time.sleep(1.0)  # the scan is under way when the edits start
    procs += [subprocess.Popen([sys.executable, str(HERE), "--worker", "editor", "--seed", str(n), "--threads", str(args.threads),
                                *common], stdout=subprocess.PIPE, text=True) for n in range(args.editors)]
    results = []
    for p in procs:
        stdout, _ = p.communicate(timeout=args.seconds + 600)
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    scanner, editors = results[0], results[1:]
    latencies = [x for e in editors for x in e["latencies"]]
    errors = Counter()
    for e in editors:
        errors.update(e["errors"])
    added = [a for e in editors for a in e["added"]]
    notes, tag_sets = {}, {}
    for e in editors:
        for k, v in e["notes"].items():
            notes.setdefault(k, []).extend(v)
        for k, v in e["tag_sets"].items():
            tag_sets.setdefault(k, []).extend(v)
    library = Library.open(str(data), roots=None, hashing=False)
    lost = lost_updates(library, added, notes, tag_sets)
    library.close()
    return {"database": "sqlite", "requests": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "scanner_errors": scanner["errors"], "scans": scanner["scans"],
            "scan_p50_s": round(statistics.median(scanner["scan_seconds"]), 2) if scanner["scan_seconds"] else None,
            "lost_updates": sum(lost.values()), "lost_kinds": lost,
            "edit_p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "edit_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "edit_max_ms": round(max(latencies, default=0) * 1000, 1)}


# --- PostgreSQL -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(repo: str, count: int, folder: Path, base: Path, url: str) -> list[tuple[subprocess.Popen, int]]:
    servers = []
    for n in range(count):
        port = free_port()
        data = base / f"server{n}"
        logf = open(base / f"server{n}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "lib_lora_manager", "serve", "--no-scan", "--no-hashing",
                                 "--lora-dir", str(folder), "--data-dir", str(data), "--db", url, "--port", str(port)],
                                cwd=repo, stdout=logf, stderr=subprocess.STDOUT)
        servers.append((proc, port))
    deadline = time.monotonic() + 120
    for proc, port in servers:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server on port {port} exited; see {base}/server*.log")
            try:
                status, _ = request(port, "GET", "/lora-manager/v1/stats")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on port {port} did not start")
            time.sleep(0.3)
    return servers


def stop_servers(servers) -> None:
    for proc, _ in servers:
        proc.terminate()
    for proc, _ in servers:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


_connections = threading.local()


def request(port: int, method: str, path: str, body=None) -> tuple[int, object]:
    """One HTTP request on this thread's keep-alive connection to ``port`` (reopened once if the
    server had closed it: a request that was never sent is not a server error)."""
    pool = _connections.__dict__.setdefault("pool", {})
    data = json.dumps(body).encode() if body is not None else None
    for attempt in (1, 2):
        conn = pool.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        pool[port] = conn
        try:
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            response = conn.getresponse()
            raw = response.read()
            break
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            conn.close()
            pool.pop(port, None)
            if attempt == 2:
                raise
        except (OSError, http.client.HTTPException):
            conn.close()
            pool.pop(port, None)
            raise
    if response.will_close:
        conn.close()
        pool.pop(port, None)
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    return response.status, payload


def hammer(ports: list[int], plan: dict, clients: int, seconds: float) -> dict:
    """``clients`` threads writing over HTTP to all servers in turn; returns what was acknowledged."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    out = {"latencies": [], "errors": Counter(), "added": [], "notes": {}, "tag_sets": {}}
    api = "/lora-manager/v1"

    def ok(status: int, payload, started: float) -> bool:
        with lock:
            out["latencies"].append(time.perf_counter() - started)
            if status >= 500:
                out["errors"][f"HTTP {status}: {str(payload)[:120]}"] += 1
            elif status >= 400:
                out["errors"][f"HTTP {status} (refused): {str(payload)[:120]}"] += 1
        return status < 400

    def patch_tags(port: int, lora_id: int, tags: list[str], started: float) -> None:
        if ok(*request(port, "PATCH", f"{api}/loras/{lora_id}", {"tags": tags}), started):
            with lock:
                out["tag_sets"].setdefault(str(lora_id), []).append(tags)

    def run(client: int) -> None:
        rng = random.Random(client)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            port = ports[(client + n) % len(ports)]
            token = f"c{client}n{n}"
            op = rng.random()
            started = time.perf_counter()
            try:
                if op < 0.2:  # the tag set of one LoRA, from every client at once
                    patch_tags(port, plan["lww"][0], sorted(rng.sample(TAG_POOL, rng.randint(1, 3))), started)
                elif op < 0.4:  # notes of LoRAs whose tags others are setting or adding to
                    lora_id = rng.choice(plan["pairs"] + plan["add"])
                    if ok(*request(port, "PATCH", f"{api}/loras/{lora_id}", {"notes": f"note {token}"}), started):
                        with lock:
                            out["notes"].setdefault(str(lora_id), []).append(f"note {token}")
                elif op < 0.55:  # the tags of those LoRAs, set while their notes change
                    patch_tags(port, rng.choice(plan["pairs"]), sorted(rng.sample(TAG_POOL, rng.randint(1, 3)) + [token]), started)
                elif op < 0.8:  # a tag of its own added to one of the same few LoRAs
                    lora_id = rng.choice(plan["add"])
                    body = {"ids": [lora_id], "action": "add_tags", "value": token}
                    if ok(*request(port, "POST", f"{api}/bulk", body), started):
                        with lock:
                            out["added"].append([lora_id, token])
                else:  # the same new tag, created at once on several LoRAs (a new name every 250 ms)
                    tag = f"fresh{int(time.time() * 4)}"
                    lora_id = rng.choice(plan["spread"])
                    body = {"ids": [lora_id], "action": "add_tags", "value": tag}
                    if ok(*request(port, "POST", f"{api}/bulk", body), started):
                        with lock:
                            out["added"].append([lora_id, tag])
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    out["errors"][error_text(e)] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["errors"] = dict(out["errors"])
    return out


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from lib_lora_manager.models import Base

    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def run_postgres(args, base: Path) -> dict:
    from lib_lora_manager.library import Library

    root = base / "postgres"
    shutil.rmtree(root, ignore_errors=True)
    folder = root / "loras"
    count = min(args.files, 200)
    write_files(folder, [f"lora {i:05d}" for i in range(count)], seed=1)
    reset_postgres(args.pg_url)
    library = Library.open(str(root / "data"), roots=[str(folder)], database_url=args.pg_url, hashing=False)
    library.indexer.scan()
    ids = library.ids("")
    library.close()
    rng = random.Random(5)
    hot = rng.sample(ids, 10)
    plan = {"lww": hot[:1], "pairs": hot[1:4], "add": hot[4:6], "spread": hot[6:]}
    log(f"postgres: starting {args.servers} servers")
    servers = start_servers(args.repo, args.servers, folder, root, args.pg_url)
    try:
        log(f"postgres: {args.clients} clients for {args.seconds} s")
        out = hammer([port for _, port in servers], plan, args.clients, args.seconds)
    finally:
        stop_servers(servers)
    library = Library.open(str(root / "data"), roots=None, database_url=args.pg_url, hashing=False)
    lost = lost_updates(library, out["added"], out["notes"], out["tag_sets"])
    library.close()
    latencies = out["latencies"]
    server_errors = {k: v for k, v in out["errors"].items() if not k.startswith("HTTP 4")}
    return {"database": "postgresql", "requests": len(latencies), "errors": sum(server_errors.values()),
            "error_kinds": out["errors"], "lost_updates": sum(lost.values()), "lost_kinds": lost,
            "edit_p50_ms": round(percentile(latencies, 0.5) * 1000, 1), "edit_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "edit_max_ms": round(max(latencies, default=0) * 1000, 1)}


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parents[1]), help="the checkout whose code runs (default: this one)")
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=os.environ.get("LORA_MANAGER_BENCH_POSTGRES_URL"),
                        help="PostgreSQL database to use (emptied); default $LORA_MANAGER_BENCH_POSTGRES_URL")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--editors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--dir", default="/tmp/lora-manager-contention")
    parser.add_argument("--json", action="store_true")
    # internal: one worker process
    parser.add_argument("--worker", choices=("scanner", "editor"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--db", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.repo = os.path.abspath(args.repo)
    if args.worker:
        return worker_main(args)
    use_repo(args.repo)
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    results = []
    only = set(args.only.split(","))
    if "sqlite" in only:
        results.append(run_sqlite(args, base))
    if "postgres" in only:
        if not args.pg_url:
            log("postgres: skipped (no --pg-url)")
        else:
            results.append(run_postgres(args, base))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"code: {args.repo}")
    print(f"{'database':<11} {'requests':>8} {'errors':>6} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(f"{r['database']:<11} {r['requests']:>8} {r['errors']:>6} {r['lost_updates']:>5} {r['edit_p50_ms']:>8} "
              f"{r['edit_p99_ms']:>8} {r['edit_max_ms']:>8}")
    for r in results:
        for key in ("error_kinds", "lost_kinds", "scanner_errors"):
            for kind, n in (r.get(key) or {}).items():
                print(f"  {r['database']} {key.replace('_', ' ')}: {n} × {kind}")
        if r.get("scans") is not None:
            print(f"  sqlite: {r['scans']} scans of changed files, p50 {r['scan_p50_s']} s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
