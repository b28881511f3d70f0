"""Processes that contend for one library, started by test_concurrent_writers.py.

    python tests/faults/contenders.py scan DATA SECONDS
    python tests/faults/contenders.py edit DATA ROLE IDS START_AT SECONDS
    python tests/faults/contenders.py own-job DATA URL

``scan`` keeps changing a quarter of the files, re-scanning and hashing (SDNext's background
work). ``edit`` edits the LoRAs ``IDS`` (a JSON list) through the Library API from ``START_AT``
(a wall-clock time, so that two editors start together) in passes until ``SECONDS`` have passed:
role ``notes`` writes each one's notes and adds a tag that the ``tags`` editor creates at the same
moment; role ``tags`` sets each one's tags. ``own-job`` opens the library, adds a running job that
this process owns, prints its id and waits until its stdin closes (or it is killed). ``scan`` and
``edit`` print one JSON line at the end: what was written, the latency of each call, the errors.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's lib_lora_manager

from lib_lora_manager import synth  # noqa: E402
from lib_lora_manager.library import Library  # noqa: E402


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def scan(data: str, seconds: float) -> dict:
    library = Library.open(data, hashing=True)
    folder = Path(library.store.roots[0])
    names = sorted(p.name for p in folder.glob("*.safetensors"))
    rng = random.Random(11)
    deadline = time.monotonic() + seconds
    scans, errors, round_ = 0, [], 0
    while time.monotonic() < deadline:
        round_ += 1
        for n, name in enumerate(rng.sample(names, max(1, len(names) // 4))):
            synth.write_lora(folder / name, "sd1", rank=2, data="sparse", seed=round_ * 10_000 + n)
        try:
            library.indexer.scan()
            library.indexer.hash_pending(limit=100)
            scans += 1
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on any
            errors.append(error_text(e))
    library.close()
    return {"scans": scans, "errors": errors}


def edit(data: str, role: str, ids: list[int], start_at: float, seconds: float) -> dict:
    library = Library.open(data, hashing=False)
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds
    out: dict = {"latencies": [], "errors": [], "notes": {}, "tag_sets": {}, "added": []}

    def timed(call, *args, **kwargs) -> bool:
        started = time.perf_counter()
        try:
            call(*args, **kwargs)
            return True
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails on any
            out["errors"].append(error_text(e))
            return False
        finally:
            out["latencies"].append(time.perf_counter() - started)

    done = 0
    while time.monotonic() < deadline or done == 0:
        done += 1
        for lora_id in ids:
            shared = f"new{done}x{lora_id // 4}"  # created by both editors at about the same moment
            if role == "notes":
                notes = f"notes{lora_id}pass{done}"
                if timed(library.edit, lora_id, notes=notes):
                    out["notes"][str(lora_id)] = notes
                if timed(library.add_tags, [lora_id], [shared]):
                    out["added"].append([lora_id, shared])
            else:
                tags = [f"b{lora_id}pass{done}", shared]
                if timed(library.edit, lora_id, tags=tags):
                    out["tag_sets"][str(lora_id)] = tags
    library.close()
    out["passes"] = done
    return out


def own_job(data: str, url: str) -> None:
    from lib_lora_manager.models import Job

    library = Library.open(data, database_url=url or None, hashing=False)
    with library.store.db.write() as session:
        job = Job(kind="generate", status="running", request=json.dumps({"request": {"prompt": "elsewhere"}}),
                  created_at=time.time(), started_at=time.time(), owner=library.store.processes.id)
        session.add(job)
        session.flush()
        job_id = job.id
    print(json.dumps({"job": job_id, "owner": library.store.processes.id, "pid": os.getpid()}), flush=True)
    sys.stdin.read()  # until the test closes our stdin, or kills us
    library.close()


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "scan":
        result = scan(argv[1], float(argv[2]))
    elif command == "edit":
        result = edit(argv[1], argv[2], json.loads(argv[3]), float(argv[4]), float(argv[5]))
    elif command == "own-job":
        own_job(argv[1], argv[2])
        return 0
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
