"""Moving, trashing and restoring LoRA files with their sidecars, journalled so that a crash at
any point leaves every file exactly once somewhere and its row pointing at it.

Each LoRA is one operation:

1. plan: each file (the LoRA and its sidecars) and its destination; every check that can refuse
   the item runs now, before anything is touched;
2. journal: a ``file_operations`` row holding the plan and the row values to write on completion,
   committed before the first file moves;
3. the files move: one rename each; across file systems a copy to a hidden name beside the
   destination, renamed into place, then the source removed (so a destination name never holds
   half a file);
4. one transaction writes the row change (and the trash records) and deletes the journal row.

A process killed anywhere leaves a journal row. The next process to open the library reconciles
the rows whose owner is gone (never a live process's: servers share one PostgreSQL database):
every file at its destination, the operation is completed (a trash stays undoable); every file
at its source, it is dropped; some of each, the moved ones go back and it is dropped.

Writes never leave their folder: a move stays inside the target library folder, the trash inside
the data folder, an undo inside the LoRA's library folder, judged by real paths (symlinks resolved).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, false, func, or_, select, update
from sqlalchemy.orm import Session

from . import catalog, fields, naming, scanner
from .db import insert_missing
from .errors import FileOperationError, InvalidInput, NotFound
from .merging import holder_of, merge_into
from .models import FileOperation, Lora, LoraHashCopies, State, TrashItem, live
from .results import BulkResult, DuplicateFile
from .safetensors_header import HeaderError, read_raw_header
from .statuses import FileOperationKind, StrEnum
from .store import Store

log = logging.getLogger("lora_manager")

TRASH_FOLDER = "trash"
LAST_BATCH = "last_trash_batch"

Pair = tuple[str, str]


class Settled(StrEnum):
    """What became of an operation a dead process left in the journal (the log says it)."""

    COMPLETED = "completed"
    ROLLED_BACK = "rolled back"
    UNSEEN = "unseen"  # a file is on a folder not mounted here: left for later


@dataclass
class Operation:
    """One LoRA's move, trash or restore: the files to move and the row values once they have."""

    kind: FileOperationKind
    lora_id: int | None
    batch: str | None
    files: list[Pair]  # (source, destination), the LoRA file first
    row: dict[str, Any]  # the LoRA's new column values
    trash_items: list[int] = field(default_factory=list)  # restore: the trash records it uses up
    inside: tuple[str, ...] = ()  # folders the destinations must stay in (judged by real paths)
    journal_id: int | None = None

    def plan(self) -> str:
        return json.dumps({"files": self.files, "row": self.row, "trash_items": self.trash_items})

    @classmethod
    def from_journal(cls, entry: FileOperation) -> Operation:
        plan = json.loads(entry.plan)
        return cls(kind=FileOperationKind(entry.kind), lora_id=entry.lora_id, batch=entry.batch,
                   files=[(str(src), str(dst)) for src, dst in plan["files"]], row=dict(plan["row"]),
                   trash_items=[int(i) for i in plan.get("trash_items", [])], journal_id=entry.id)


class FileOperations:
    """The LoRA files (``library.files``): moves, trash and undo over one database, its library
    folders and its data folder; duplicates; the raw header of a file."""

    def __init__(self, store: Store):
        self.store = store  # its library folders can change while we run: read them at each call

    # --- moving -----------------------------------------------------------------------------

    def move(self, selection: Iterable[int] | str, target_root: str, subfolder: str = "") -> BulkResult:
        """Move LoRAs (ids, or every result of a query) with their sidecars into ``subfolder``
        of the library folder ``target_root``."""
        ids = catalog.select_ids(self.store, selection)
        target_root, subfolder = fields.ROOT.parse(target_root), fields.SUBFOLDER.parse(subfolder)
        root = os.path.abspath(target_root)
        if root not in self.store.roots:
            raise InvalidInput(f"{root} is not one of the library folders ({', '.join(self.store.roots)})")
        destination = _destination_in(root, subfolder)
        result = BulkResult()
        for lora_id in ids:
            try:
                lora = self._live(lora_id)
                if lora.missing:
                    raise FileOperationError(lora.path, "the file is not there")
                files = _plan_files(lora, destination)
                relpath = os.path.relpath(files[0][1], root).replace(os.sep, "/")
                self._run(Operation(FileOperationKind.MOVE, lora.id, None, files, {
                    "path": files[0][1], "root": root, "root_id": self.store.mounts.root_id(root), "relpath": relpath,
                    "folder": posixpath.dirname(relpath), "updated_at": time.time()}, inside=(root,)))
                result.done.append(lora.id)
            except (FileOperationError, NotFound) as e:
                result.errors[lora_id] = str(e)
        return result

    # --- reading -----------------------------------------------------------------------------

    def raw_header(self, lora_id: int) -> dict[str, Any]:
        """The whole safetensors header, re-read from the file (shown collapsed in the UI)."""
        lora = catalog.row(self.store, lora_id)
        if lora.format != "safetensors":
            raise InvalidInput(f"{naming.display(lora.filename)} is a {lora.format} file: it has no safetensors header")
        path = self.store.local_path(lora)
        if not self.store.boundary().allows(path):
            raise InvalidInput(f"{naming.display(lora.filename)} is a link leading outside the library folders; not read")
        try:
            return read_raw_header(path)
        except HeaderError as e:
            raise InvalidInput(f"{naming.display(lora.filename)}: {e}") from None

    # --- duplicates ---------------------------------------------------------------------------

    def duplicates(self) -> list[list[DuplicateFile]]:
        """Groups of present files with the same SHA-256, largest groups first; each group's
        best copy first (``best_copy_first``: the one ``keep_duplicates`` of every group keeps)."""
        with self.store.db.read() as session:
            shas = select(Lora.sha256).where(
                Lora.sha256.is_not(None), Lora.missing.is_(False), live()
            ).group_by(Lora.sha256).having(func.count() > 1)
            loras = list(session.scalars(select(Lora).where(Lora.sha256.in_(shas), Lora.missing.is_(False), live())
                                         .order_by(Lora.sha256, Lora.added_at, Lora.id)))
            groups: dict[str, list[tuple[Lora, DuplicateFile]]] = {}
            for lora, file in zip(loras, catalog.duplicate_files(self.store, session, loras)):
                groups.setdefault(lora.sha256, []).append((lora, file))
            ranked = [[file for _, file in sorted(group, key=lambda pair: best_copy_first(*pair))]
                      for group in groups.values()]
        return sorted(ranked, key=lambda g: (-len(g), g[0].relpath))

    def copies(self, shas: Iterable[str | None]) -> dict[str, int]:
        """How many present files outside the trash hold each of ``shas``, for the hashes held
        more than once (a card's duplicate badge). One indexed read of a small table."""
        wanted = sorted({s for s in shas if s})
        if not wanted:
            return {}
        with self.store.db.read() as session:
            rows = session.execute(select(LoraHashCopies.sha256, LoraHashCopies.copies).where(
                LoraHashCopies.sha256.in_(wanted), LoraHashCopies.copies > 1))
            return {sha: int(count) for sha, count in rows}

    def keep_duplicate(self, keep_id: int) -> BulkResult:
        """Keep one file of a duplicate group and trash the others."""
        return self.keep_duplicates([keep_id])

    def keep_duplicates(self, keep_ids: Iterable[int]) -> BulkResult:
        """Keep each of ``keep_ids`` and trash the other copies of its group, all in one trash
        batch (so one undo puts every file back). A file another of ``keep_ids`` names is kept.
        Raises InvalidInput when a kept file is not hashed, or when nothing has a copy left."""
        keep = [catalog.row(self.store, fields.LORA_ID.parse(i)) for i in dict.fromkeys(keep_ids)]
        for lora in keep:
            if not lora.sha256:
                raise InvalidInput(f"{naming.display(lora.filename)} is not hashed yet, so its duplicates are unknown")
        kept = {lora.id for lora in keep}
        shas = sorted({lora.sha256 for lora in keep if not lora.missing and lora.trashed_at is None})
        others: list[int] = []
        if shas:
            with self.store.db.read() as session:
                others = list(session.scalars(select(Lora.id).where(
                    Lora.sha256.in_(shas), Lora.id.not_in(kept), Lora.missing.is_(False), live()).order_by(Lora.id)))
        if not others:
            names = ", ".join(naming.display(lora.filename) for lora in keep[:3])
            raise InvalidInput(f"{names} {'has' if len(keep) == 1 else 'have'} no duplicates")
        return self.trash(others)

    # --- trash --------------------------------------------------------------------------------

    def trash(self, selection: Iterable[int] | str) -> BulkResult:
        """Move LoRAs (ids, or every result of a query) and their sidecars to
        ``<data>/trash/<batch>/<n>-<library folder>/<relpath>``; ``undo_trash`` puts them back. Same relative paths from two library folders do not meet."""
        ids = catalog.select_ids(self.store, selection)
        batch = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        result = BulkResult(batch=batch)
        folders: dict[str, str] = {}  # library folder -> its folder in this batch
        for lora_id in ids:
            try:
                lora = self._live(lora_id)
                now = time.time()
                if lora.missing:  # nothing on disk to move: the row is hidden, and can come back
                    with self.store.db.write() as session:
                        _apply(session, Operation(FileOperationKind.TRASH, lora.id, batch, [], {
                            "trashed_at": now, "path": f"{lora.path}#trashed-{batch}", "updated_at": now}))
                else:
                    folder = folders.setdefault(lora.root, f"{len(folders) + 1}-{_folder_name(lora.root)}")
                    destination = os.path.join(self.store.data_dir, TRASH_FOLDER, batch, folder,
                                               *[p for p in posixpath.dirname(lora.relpath).split("/") if p])
                    if not _inside(destination, self.store.data_dir):
                        raise FileOperationError(lora.path, f"the trash folder {destination} is outside the data folder "
                                                            f"{self.store.data_dir}; nothing was moved")
                    files = _plan_files(lora, destination)
                    self._run(Operation(FileOperationKind.TRASH, lora.id, batch, files,
                                        {"trashed_at": now, "path": files[0][1], "updated_at": now}, inside=(self.store.data_dir,)))
                result.done.append(lora.id)
            except (FileOperationError, NotFound) as e:
                result.errors[lora_id] = str(e)
        return result

    def undo_trash(self, batch: str | None = None) -> BulkResult:
        """Restore a trash batch (default: the latest) to where the files were.

        The database is checked before any file moves: a path that another LoRA holds now is
        refused while that LoRA's file is there; if its file is gone, the two rows are merged so
        the user data of both follows the restored file."""
        batch = fields.TRASH_BATCH.parse(batch)
        with self.store.db.read() as session:
            if batch is None:
                state = session.get(State, LAST_BATCH)
                batch = state.value if state else None
            if not batch:
                raise NotFound("nothing to undo: the trash is empty")
            items = session.scalars(select(TrashItem).where(TrashItem.batch == batch).order_by(TrashItem.id)).all()
        if not items:
            raise NotFound(f"no trash batch {batch}")
        result = BulkResult(batch=batch)
        by_lora: dict[int | None, list[TrashItem]] = {}
        for item in items:
            by_lora.setdefault(item.lora_id, []).append(item)
        for lora_id, group in by_lora.items():
            try:
                self._restore(batch, lora_id, group)
                if lora_id is not None:
                    result.done.append(lora_id)
            except FileOperationError as e:
                result.errors[lora_id or 0] = str(e)
        with self.store.db.write() as session:
            state = session.get(State, LAST_BATCH)
            if state and state.value == batch and not result.errors:
                session.delete(state)
        return result

    def _restore(self, batch: str, lora_id: int | None, group: list[TrashItem]) -> None:
        files = [(i.trash_path, i.original_path) for i in group if i.trash_path]
        originals = [i.original_path for i in group]
        with self.store.db.read() as session:
            lora = session.get(Lora, lora_id) if lora_id is not None else None
            # the same place on any machine: the row's library folder and relative path
            place = (and_(Lora.root_id == lora.root_id, Lora.relpath == lora.relpath)
                     if lora is not None and lora.root_id else false())
            holders = list(session.scalars(select(Lora).where(or_(Lora.path.in_(originals), place), Lora.id != (lora_id or 0))))
        for holder in holders:
            here = self.store.mounts.local_path(holder.root_id, holder.relpath) or holder.path
            if os.path.lexists(here):
                raise FileOperationError(here, f"another LoRA (“{holder.display_name or holder.stem}”, id {holder.id}) "
                                               "is at that path now; move or trash it first, then undo again")
        for source, original in files:
            if os.path.lexists(original):
                raise FileOperationError(original, "a file with that name exists again; move it away first")
            if not os.path.lexists(source):
                raise FileOperationError(source, "the file is no longer in the trash")
        row: dict[str, Any] = {}
        if lora is not None:
            main = next((o for t, o in files if t == lora.path), None)
            row = {"path": main or next((i.original_path for i in group if not i.trash_path), originals[0]),
                   "trashed_at": None, "updated_at": time.time()}
            if main:
                row.update(missing=False, missing_since=None)
        inside = tuple(self.store.roots) + ((lora.root,) if lora is not None else ())
        operation = Operation(FileOperationKind.RESTORE, lora_id, batch, files, row, trash_items=[i.id for i in group],
                              inside=inside)
        if files:
            self._run(operation)
        else:
            with self.store.db.write() as session:
                _apply(session, operation)

    # --- the journal --------------------------------------------------------------------------

    def _run(self, op: Operation) -> None:
        """Journal, move the files, record the result; on an error put back what moved."""
        with self.store.db.write() as session:
            entry = FileOperation(owner=self.store.processes.id, kind=op.kind, batch=op.batch, lora_id=op.lora_id,
                                  plan=op.plan(), created_at=time.time())
            session.add(entry)
            session.flush()
            op.journal_id = entry.id
        done: list[Pair] = []
        try:
            for source, destination in op.files:
                folder = os.path.dirname(destination)
                os.makedirs(folder, exist_ok=True)
                # checked again after creating it: a folder swapped for a symlink meanwhile is refused
                if op.inside and not any(_inside(folder, allowed) for allowed in op.inside):
                    raise FileOperationError(destination, f"{os.path.realpath(folder)} is outside {' or '.join(op.inside)}; "
                                                          "nothing was moved")
                move_file(source, destination)
                done.append((source, destination))
        except (OSError, FileOperationError) as e:
            self._undo_partial(op, done)
            if isinstance(e, FileOperationError):
                raise
            raise FileOperationError(op.files[0][0], e.strerror or str(e)) from None
        with self.store.db.write() as session:
            _apply(session, op)

    def _undo_partial(self, op: Operation, done: list[Pair]) -> None:
        """Put back the files an operation that failed had moved, then forget it."""
        try:
            for source, destination in reversed(done):
                move_file(destination, source)
        except OSError as e:  # the journal stays: the next start after this process finishes the job
            log.error("LoRA Manager: could not put %s back after a failed %s: %s", op.files[0][0], op.kind, e)
            raise FileOperationError(op.files[0][0], f"failed half way and could not be put back ({e.strerror or e}); "
                                                      "it will be put right when the library is next opened") from None
        with self.store.db.write() as session:
            session.execute(delete(FileOperation).where(FileOperation.id == op.journal_id))

    def reconcile(self) -> int:
        """Finish or undo the operations of processes that died; returns how many were settled."""
        with self.store.db.read() as session:
            entries = session.scalars(select(FileOperation).order_by(FileOperation.id)).all()
        if not entries:
            return 0
        gone = self.store.processes.gone({e.owner for e in entries})
        settled = 0
        for entry in entries:
            if entry.owner not in gone:
                continue
            with self.store.db.write() as session:  # claim it: two processes starting at once settle it once
                claimed = session.execute(update(FileOperation).where(
                    FileOperation.id == entry.id, FileOperation.owner == entry.owner).values(owner=self.store.processes.id)).rowcount
            if not claimed:
                continue
            try:
                outcome = self._settle(Operation.from_journal(entry))
            except (OSError, ValueError, KeyError, TypeError) as e:  # one bad entry must not stop the others
                log.error("LoRA Manager: could not settle the interrupted %s #%s: %s", entry.kind, entry.id, e)
                continue
            if outcome == Settled.UNSEEN:
                log.warning("LoRA Manager: an interrupted %s (LoRA %s) waits until all its files can be seen",
                            entry.kind, entry.lora_id)
                with self.store.db.write() as session:
                    session.execute(update(FileOperation).where(FileOperation.id == entry.id).values(owner=entry.owner))
                continue
            log.warning("LoRA Manager: an interrupted %s (LoRA %s) was %s", entry.kind, entry.lora_id, outcome)
            settled += 1
        return settled

    def _settle(self, op: Operation) -> Settled:
        """Complete or roll back one interrupted operation, by where its files are now."""
        where = {}
        for source, destination in op.files:
            # interrupted copies across file systems (either way): never renamed into place, so incomplete
            _remove(_partial_name(destination))
            _remove(_partial_name(source))
            where[(source, destination)] = (os.path.lexists(source), os.path.lexists(destination))
        if not all(any(w) for w in where.values()):
            # our moves never lose a file: one seen nowhere is on a folder not mounted here (now, or
            # on this machine at all), so the operation is left for when every file can be seen
            return Settled.UNSEEN
        if all(at_destination for _at_source, at_destination in where.values()):
            for (source, _destination), (at_source, _at_destination) in where.items():
                if at_source:  # copied across file systems, the source not yet removed
                    _remove(source)
            with self.store.db.write() as session:
                _apply(session, op)
            return Settled.COMPLETED
        for (source, destination), (at_source, at_destination) in where.items():
            if at_destination and at_source:
                _remove(destination)
            elif at_destination:
                os.makedirs(os.path.dirname(source), exist_ok=True)
                move_file(destination, source)
        with self.store.db.write() as session:
            session.execute(delete(FileOperation).where(FileOperation.id == op.journal_id))
        return Settled.ROLLED_BACK

    # --- helpers ------------------------------------------------------------------------------

    def _live(self, lora_id: int) -> Lora:
        with self.store.db.read() as session:
            lora = session.get(Lora, int(lora_id))
        if lora is None:
            raise NotFound(f"no LoRA with id {lora_id}")
        # the row as this machine sees it: its folder may be mounted elsewhere than where the row
        # was last written (the instance is detached; rows change through _apply only)
        local = self.store.mounts.local_path(lora.root_id, lora.relpath)
        if local is not None and local != lora.path:
            lora.path, lora.root = local, self.store.mounts.local_path(lora.root_id, "")
        if lora.trashed_at:
            raise FileOperationError(lora.path, "already in the trash")
        return lora


def best_copy_first(lora: Lora, file: DuplicateFile) -> tuple:
    """Sort key putting the copy to keep of a duplicate group first: the favorite, else the
    highest rated, else the one carrying most of the user's own data (tags, notes, a display
    name, a chosen preview or base model), else one with a preview, else the most used in
    generations, else the shortest path, else the oldest. The UI says this in words
    (library_tab.BEST_COPY)."""
    own = len(file.tags or []) + sum(bool(v) for v in (lora.notes, lora.display_name, lora.preview_user, lora.base_model_user))
    return (not lora.favorite, -(lora.rating or 0), -own, not file.has_preview, -(lora.use_count or 0),
            len(lora.relpath), lora.added_at or 0, lora.id)


def _apply(session: Session, op: Operation) -> None:
    """The database side of a finished operation, in the caller's transaction, which also
    deletes its journal row: the row change and the trash records are written exactly once."""
    lora = session.get(Lora, op.lora_id) if op.lora_id is not None else None
    if op.kind == FileOperationKind.TRASH:
        records = op.files or ([(lora.path, "")] if lora is not None else [])
        for original, trashed in records:
            session.add(TrashItem(batch=op.batch, lora_id=lora.id if lora else None, original_path=original,
                                  trash_path=trashed, trashed_at=op.row["trashed_at"]))
        # the latest batch (names start with their time); an upsert: another process may be
        # recording the first trash batch of this database at the same moment
        insert_missing(session, State.__table__, [{"key": LAST_BATCH, "value": op.batch}], ["key"])
        session.execute(update(State).where(State.key == LAST_BATCH, State.value < op.batch).values(value=op.batch))
    elif op.kind == FileOperationKind.RESTORE and op.trash_items:
        session.execute(delete(TrashItem).where(TrashItem.id.in_(op.trash_items)))
    if lora is not None and op.row:
        # a trashed row gives its place up; a moved or restored one takes its new place
        place = ((op.row.get("root_id", lora.root_id), op.row.get("relpath", lora.relpath))
                 if op.kind != FileOperationKind.TRASH else (None, None))
        holder = holder_of(session, op.row["path"], lora.id, *place)
        if holder is not None:  # a vanished row at the path, or a concurrent scan's: one LoRA, merged
            merge_into(session, lora, holder)
        session.execute(update(Lora).where(Lora.id == lora.id).values(**op.row))
    if op.journal_id is not None:
        session.execute(delete(FileOperation).where(FileOperation.id == op.journal_id))


def _plan_files(lora: Lora, destination: str) -> list[Pair]:
    """The LoRA file and its sidecars, each with its path in ``destination``; refuses (touching
    nothing) when a name is taken there or the LoRA is already in that folder."""
    directory = os.path.dirname(lora.path)
    if os.path.abspath(destination) == os.path.abspath(directory):
        raise FileOperationError(lora.path, "it is already in that folder")
    try:
        names = os.listdir(directory)
    except OSError as e:
        raise FileOperationError(lora.path, e.strerror or str(e)) from None
    if not os.path.lexists(lora.path):
        raise FileOperationError(lora.path, "the file is not there")
    stems = {os.path.splitext(n)[0] for n in names if scanner.lora_format(n)}
    files = [lora.path] + [os.path.join(directory, n) for n in sorted(scanner.group_sidecars(names, stems).get(lora.stem, []))]
    plan = [(source, os.path.join(destination, os.path.basename(source))) for source in files]
    for _source, target in plan:
        if os.path.lexists(target):
            raise FileOperationError(target, "a file with that name already exists there")
    return plan


def _destination_in(root: str, subfolder: str) -> str:
    """``subfolder`` of library folder ``root``; refused if its real path leaves ``root``
    (``..``, an absolute path, a symlink to elsewhere)."""
    relative = (subfolder or "").strip().strip("/\\")
    destination = os.path.normpath(os.path.join(root, relative)) if relative else root
    if not _inside(destination, root):
        raise InvalidInput(f"the subfolder “{subfolder}” leads outside the library folder {root} "
                           f"(to {os.path.realpath(destination)}); choose a folder inside it")
    return destination


def _inside(path: str, folder: str) -> bool:
    """Whether ``path``'s real path is ``folder``'s real path or below it."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _folder_name(root: str) -> str:
    return os.path.basename(root.rstrip("/\\")) or "root"


# --- moving one file --------------------------------------------------------------------------


def _partial_name(destination: str) -> str:
    """Where a copy across file systems is written before it is renamed into place."""
    return os.path.join(os.path.dirname(destination), f".{os.path.basename(destination)}.lm-partial")


def move_file(source: str, destination: str) -> None:
    """Move one file, folder or symlink (never following it); never overwrites.

    Within a file system this is one rename. Across file systems the copy goes to a hidden name
    beside the destination, is flushed to disk and renamed into place before the source is
    removed: whenever the process dies, the destination name is absent or complete."""
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, "a file with that name already exists there", destination)
    try:
        os.rename(source, destination)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    partial = _partial_name(destination)
    _remove(partial)
    if os.path.isdir(source) and not os.path.islink(source):
        shutil.copytree(source, partial, symlinks=True)
    else:
        shutil.copy2(source, partial, follow_symlinks=False)
        if not os.path.islink(partial):
            _flush(partial)
    os.rename(partial, destination)
    _remove(source)


def _flush(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    """Remove a file, symlink or folder if it is there."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
