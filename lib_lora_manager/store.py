"""The Store: where one library's data lives, on this machine.

It owns the database (engine, sessions, the write lock: db.py), the data folder (our thumbnails,
previews, trash, grids), this process's registration (processes.py) and the library folders as
this machine mounts them (roots.py). Every part of the library — reads and edits, files,
previews, history, recipes, jobs — is built over a Store, never over the Library, so the parts
do not depend on each other through the facade.

    store = Store.open(data_dir, roots=[lora_dir])
    with store.db.read() as session: ...
    store.local_path(lora)   # where a row's file is here
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

from sqlalchemy import and_, or_

from . import roots as roots_module
from .boundary import Boundary
from .db import Database, sqlite_url
from .models import Lora, State
from .processes import ProcessRegistry

log = logging.getLogger("lora_manager")


class Store:
    def __init__(self, db: Database, data_dir: str, roots: Iterable[str] = ()):
        self.db = db
        self.data_dir = os.path.abspath(data_dir)
        self.roots = unique_paths(roots)
        self.processes = ProcessRegistry(db)  # registered by open(): owners of jobs and file operations
        # this machine's mounts of the library folders (resolved by set_roots; see roots.py)
        self.machine = roots_module.machine_id(self.data_dir)
        self.mounts = roots_module.RootMap([], [])

    @classmethod
    def open(cls, data_dir: str, roots: Iterable[str] | None = None, database_url: str | None = None) -> Store:
        """Open (creating and migrating as needed) the store kept in ``data_dir``.

        The database is ``database_url``, else $LORA_MANAGER_DATABASE_URL, else a SQLite file
        in ``data_dir``. ``roots`` None means the folders remembered from the last time."""
        os.makedirs(data_dir, exist_ok=True)
        url = database_url or os.environ.get("LORA_MANAGER_DATABASE_URL") or sqlite_url(os.path.join(data_dir, "lora_manager.db"))
        db = Database(url)
        backup = db.migrate()
        if backup:
            log.info("LoRA Manager: database migrated; previous copy kept at %s", backup)
        store = cls(db, data_dir)
        with db.read() as session:
            # each machine remembers its own folders ("roots": from before machines had their own)
            saved = session.get(State, f"roots:{store.machine}") or session.get(State, "roots")
            saved_roots = json.loads(saved.value) if saved else []
        store.processes.register()
        store.set_roots(saved_roots if roots is None else roots)
        return store

    @property
    def primary_root(self) -> str | None:
        """SDNext's own LoRA folder (names there resolve without a path)."""
        return self.roots[0] if self.roots else None

    def set_roots(self, roots: Iterable[str]) -> None:
        """Change the library folders (remembered for the CLI and the next start on this machine)."""
        self.roots = unique_paths(roots)
        value = json.dumps(self.roots)
        self.db.transaction(lambda session: session.merge(State(key=f"roots:{self.machine}", value=value)))
        self.mounts = roots_module.resolve(self.db, self.machine, self.roots)

    def boundary(self) -> Boundary:
        """What may be read through links: the library folders (see boundary.py)."""
        return Boundary(self.roots)

    def local_path(self, lora: Lora) -> str:
        """Where a LoRA's file is on this machine: machines sharing the database may mount its
        library folder at another path than the one stored with the row."""
        return self.mounts.local_path(lora.root_id, lora.relpath) or lora.path

    def path_clause(self, path: str):
        """Rows whose file is ``path`` on this machine (stored path, or its folder and relative path)."""
        located = self.mounts.locate(path)
        if located is None:
            return Lora.path == path
        return or_(Lora.path == path, and_(Lora.root_id == located[0], Lora.relpath == located[1]))

    def close(self) -> None:
        self.processes.close()
        self.db.dispose()


def unique_paths(paths: Iterable[str]) -> list[str]:
    """Absolute paths, each once, in their first order."""
    out: list[str] = []
    for p in paths:
        if p:
            a = os.path.abspath(os.path.expanduser(str(p)))
            if a not in out:
                out.append(a)
    return out
