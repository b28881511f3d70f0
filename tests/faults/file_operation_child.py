"""A process that opens a library and runs one bulk trash or move, to be killed with SIGKILL.

    python file_operation_child.py '<spec as JSON>'

spec: ``data_dir``, ``roots``, ``database_url`` (None: SQLite in the data folder), ``operation``
("trash" or "move"), ``ids``, ``target_root``, ``subfolder`` and ``kill``: None (the parent kills
us at a moment of its choosing), or ``{"call": "rename" | "copyfile" | "unlink" | "commit", "when":
"before" | "after", "n": k}`` (the k-th such call) or ``{..., "path": p}`` (the call whose first
argument is p): we SIGKILL ourselves there, which is exactly kill -9 from outside. The calls are
the standard library's and SQLAlchemy's, so the same kill points exist whatever code moves the
files.

Prints "ready" before the operation starts and "done <seconds>" after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time


def install_kill(spec: dict) -> None:
    if spec["call"] == "commit":  # the database commit: every statement sent, the COMMIT not yet
        from sqlalchemy.engine.default import DefaultDialect

        module, name = DefaultDialect, "do_commit"
    else:
        module, name = (shutil if spec["call"] == "copyfile" else os), spec["call"]
    real = getattr(module, name)
    calls = {"n": 0}

    def fire(first) -> bool:
        if "path" in spec:
            return first is not None and os.fspath(first) == spec["path"]
        return calls["n"] == spec["n"]

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        hit = fire(args[0] if name != "do_commit" else None)
        if hit and spec["when"] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(*args, **kwargs)
        if hit and spec["when"] == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(module, name, wrapper)


def main() -> None:
    spec = json.loads(sys.argv[1])
    from lib_lora_manager.library import Library

    library = Library.open(spec["data_dir"], roots=spec["roots"], database_url=spec["database_url"], hashing=False)
    if spec.get("kill"):
        install_kill(spec["kill"])
    print("ready", flush=True)
    started = time.perf_counter()
    if spec["operation"] == "trash":
        library.files.trash(spec["ids"])
    else:
        library.files.move(spec["ids"], spec["target_root"], spec["subfolder"])
    print(f"done {time.perf_counter() - started:.3f}", flush=True)
    library.close()


if __name__ == "__main__":
    main()
