"""Library folders with an identity of their own, whatever path each machine mounts them at.

Machines can share one library over PostgreSQL while mounting the same LoRA folder at different
paths (``/mnt/nas/loras`` here, ``D:\\loras`` there). A file is therefore located by its folder's
identity (``library_roots.id``) and its path relative to it; each machine maps its own mount
paths to those ids (``root_mounts``). A scan only judges the files of the folders this machine
has mounted, so machines never mark each other's files missing.

A machine is identified by a random id kept in its data folder (``$LORA_MANAGER_MACHINE_ID``
overrides it). When a machine meets a folder it has not mounted before, it is matched to a known
folder by content: most of a sample of that folder's files are found at the same relative
paths with the same sizes. An empty folder with the same path as a known one is that one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from .db import Database
from .models import LibraryRoot, Lora, RootMount

ANY_MACHINE = "*"  # mounts from before root ids: whichever machine has that path
MACHINE_FILE = "machine-id"
SAMPLE = 200  # files compared when matching a folder by content
MATCH = 0.5  # share of the sample that must be found for two folders to be one


def machine_id(data_dir: str) -> str:
    """This machine's id: $LORA_MANAGER_MACHINE_ID, else a random id kept in the data folder."""
    if os.environ.get("LORA_MANAGER_MACHINE_ID"):
        return os.environ["LORA_MANAGER_MACHINE_ID"][:64]
    path = os.path.join(data_dir, MACHINE_FILE)
    try:
        with open(path, encoding="ascii") as f:
            value = f.read().strip()
        if value:
            return value[:64]
    except (OSError, UnicodeDecodeError):
        pass
    value = uuid.uuid4().hex
    os.makedirs(data_dir, exist_ok=True)
    with open(path, "w", encoding="ascii") as f:
        f.write(value + "\n")
    return value


@dataclass(frozen=True)
class Mount:
    root_id: str
    path: str  # absolute, on this machine


class RootMap:
    """This machine's mounts: the library folders it uses now, and every folder it ever mounted
    (their rows are still this machine's to judge: a folder dropped from the library is gone)."""

    def __init__(self, current: list[Mount], known: list[Mount]):
        self.current = current
        self.known = known
        self._path_of = {m.root_id: m.path for m in known}
        self._path_of.update({m.root_id: m.path for m in current})
        self._id_of = {m.path: m.root_id for m in known + current}

    @property
    def root_ids(self) -> set[str]:
        return set(self._path_of)

    def root_id(self, path: str) -> str | None:
        """The id of the library folder mounted at ``path`` (exactly)."""
        return self._id_of.get(path)

    def local_path(self, root_id: str | None, relpath: str) -> str | None:
        """Where a file of that folder is on this machine; None when this machine has not mounted it."""
        root = self._path_of.get(root_id) if root_id else None
        if root is None:
            return None
        return os.path.join(root, *relpath.split("/")) if relpath else root

    def locate(self, path: str) -> tuple[str, str] | None:
        """(root id, relative path) of an absolute path under one of the current folders (the
        deepest folder wins when folders are nested)."""
        path = os.path.abspath(path)
        best: Mount | None = None
        for mount in self.current:
            root = mount.path.rstrip(os.sep)
            if path.startswith(root + os.sep) and (best is None or len(mount.path) > len(best.path)):
                best = mount
        if best is None:
            return None
        return best.root_id, path[len(best.path.rstrip(os.sep)) + 1:].replace(os.sep, "/")


def resolve(db: Database, machine: str, paths: Iterable[str]) -> RootMap:
    """Map each of this machine's library folders to a root id (adopting or creating roots as
    needed) and return the machine's mounts."""
    paths = list(paths)
    with db.write() as session:
        mine = dict(session.execute(select(RootMount.path, RootMount.root_id).where(RootMount.machine == machine)).all())
        current: list[Mount] = []
        for path in paths:
            root_id = mine.get(path)
            if root_id is None:
                taken = {m.root_id for m in current}  # a folder this machine had elsewhere may be this one, moved
                root_id = _match(session, path, taken) or _create(session, path)
                session.add(RootMount(machine=machine, path=path, root_id=root_id))
                session.flush()
                mine[path] = root_id
            current.append(Mount(root_id, path))
    known = [Mount(root_id, path) for path, root_id in mine.items()]
    return RootMap(current, known)


def _create(session, path: str) -> str:
    root_id = uuid.uuid4().hex
    name = os.path.basename(path.rstrip("/\\")) or path
    session.add(LibraryRoot(id=root_id, name=name, created_at=time.time()))
    session.flush()
    return root_id


def _match(session, path: str, taken: set[str]) -> str | None:
    """A known root (not already mounted by this machine) that is the folder at ``path``."""
    candidates = session.execute(select(RootMount.root_id, RootMount.path)).all()
    same_path = [r for r, p in candidates if p == path and r not in taken]
    others = [r for r, p in candidates if p != path and r not in taken]
    for root_id in dict.fromkeys(same_path + others):
        sample = session.execute(
            select(Lora.relpath, Lora.size).where(Lora.root_id == root_id, Lora.missing.is_(False))
            .order_by(Lora.id).limit(SAMPLE)).all()
        if not sample:
            if root_id in same_path:
                return root_id
            continue
        found = sum(1 for relpath, size in sample if _has_file(path, relpath, size))
        if found >= max(1, MATCH * len(sample)):
            return root_id
    return None


def _has_file(root: str, relpath: str, size: int) -> bool:
    try:
        return os.stat(os.path.join(root, *relpath.split("/"))).st_size == size
    except OSError:
        return False

