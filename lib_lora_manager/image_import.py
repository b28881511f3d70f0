"""Importing the images people made before into the history (``library.images``).

An import walks folders for PNG, JPEG and WebP files, reads each one's generation metadata
(image_params.read_generation: SDNext/A1111/Forge infotext, ComfyUI, InvokeAI; never the
pixels) and stores every image that has some as one generation with source ``imported``.

It is incremental: every file it looked at is remembered (``ImportedImage``: path, size,
modification time, what came of it), so a second run reads only new or changed files; a file
that moved keeps its size and modification time and is recognised by them, its path updated
without reading it. An image SDNext's recorder already stored (the same output path) is not
imported again. A remembered file that is gone marks its history image missing; no record is
ever deleted because a file vanished.

One bad file never stops an import: its reason is in the report (``problems``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

from sqlalchemy import insert, select, update

from . import naming
from .errors import Busy, InvalidInput, LoraManagerError
from .history import GeneratedImage, GenerationRecord, History, UsedLora
from .image_params import IMAGE_SUFFIXES, MAX_TEXT, ImageGeneration, UnreadableImage, read_generation
from .models import Generation, GenerationImage, ImportedImage
from .statuses import GenerationSource, GenerationStatus, StrEnum
from .store import Store
from .task_status import SharedStatus, TaskStatus
from .wording import plural

log = logging.getLogger("lora_manager")
BATCH = 500  # files per write transaction
MAX_PROBLEMS = 200  # per-file reasons kept in a report (the counts cover them all)


class Outcome(StrEnum):
    """What an import made of one file (``ImportedImage.outcome``)."""

    IMPORTED = "imported"  # it became a history record
    RECORDED = "recorded"  # SDNext's recorder stored it already
    SKIPPED = "skipped"  # no generation metadata
    ERROR = "error"  # unreadable or hostile (the reason is kept)


@dataclass
class ImportReport:
    found: int = 0  # image files in the folders
    read: int = 0  # files whose metadata was read this time
    imported: int = 0  # new history records
    skipped: int = 0  # read, but without generation metadata
    errors: int = 0  # could not be read (see problems)
    unchanged: int = 0  # imported or looked at before, not read again
    moved: int = 0  # known files at a new path (not read again)
    recorded: int = 0  # SDNext's recorder had stored them already
    missing: int = 0  # images of the history whose file vanished since
    recent: int = 0  # modified too recently, left for a later import (min_age)
    seconds: float = 0.0
    problems: dict[str, str] = field(default_factory=dict)  # path -> why it was skipped or unreadable

    def summary(self) -> str:
        parts = [f"{plural(self.imported, 'image')} imported", f"{self.read} read", f"{self.unchanged} unchanged"]
        for count, word in ((self.skipped, "without generation data"), (self.errors, "unreadable"),
                            (self.moved, "moved"), (self.recorded, "recorded already"), (self.missing, "gone"),
                            (self.recent, "saved too recently (left for later)")):
            if count:
                parts.append(f"{count} {word}")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


@dataclass
class ImportStatus(TaskStatus):
    message: str = "no import yet"


@dataclass
class _Known:
    id: int
    path: str
    size: int
    mtime_ns: int
    outcome: str
    reason: str | None
    generation_id: int | None


@dataclass
class _Pending:
    """One file of the batch being written: its remembered row (if any) and what it became."""

    path: str
    size: int
    mtime_ns: int
    outcome: Outcome
    reason: str | None = None
    known: _Known | None = None
    generation_id: int | None = None
    record: int | None = None  # index of its record in the batch


class ImageImporter:
    """Imports image folders into the history, one import at a time, with a status that every
    process sharing the database sees (as the scan's, indexing.py)."""

    def __init__(self, store: Store, history: History):
        self.store = store
        self.history = history
        self.status = ImportStatus()
        self._shared = SharedStatus(store, "image_import", elsewhere="an image import is running in another process",
                                    done="imported")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- running ----------------------------------------------------------------------------

    def run(self, folders: Iterable[str], progress: Callable[[float, str], None] | None = None, *,
            min_age: float = 0.0) -> ImportReport:
        """Import the images under ``folders`` now. Raises InvalidInput for a folder that is not
        there, Busy when an import is running.

        ``min_age``: files modified fewer seconds ago are passed over (a later import takes
        them): in SDNext, an image just saved is the recorder's to store, not the import's."""
        roots = _folders(folders)
        if not self._lock.acquire(blocking=False):
            raise Busy("an image import is already running")
        status = self.status
        status.running, status.fraction, status.started_at, status.error = True, 0.0, time.time(), None
        status.message = "looking for images"
        try:
            self._shared.started(status.started_at)

            def report(fraction: float, message: str) -> None:
                status.fraction, status.message = fraction, message
                if progress:
                    progress(fraction, message)
            result = self._import(roots, report, time.time() - min_age if min_age else None)
            status.last_report = asdict(result)
            status.message = "last import: " + result.summary()
            return result
        except Exception as e:  # recorded for the status (REST, UI), then raised as it was
            status.error = str(e) if isinstance(e, LoraManagerError) else f"{type(e).__name__}: {e}"
            status.message = f"import failed: {status.error}"
            raise
        finally:
            status.running, status.finished_at = False, time.time()
            try:
                self._shared.ended(status)
            finally:
                self._lock.release()

    def run_in_background(self, folders: Iterable[str], *, low_priority: bool = True, min_age: float = 0.0) -> bool:
        """Start an import on a thread (at low CPU priority); False if one is running. Folders are
        checked here, so a wrong one raises InvalidInput to the caller."""
        roots = _folders(folders)
        if self._lock.locked():
            return False
        thread = threading.Thread(target=self._background, args=(roots, low_priority, min_age), name="lora-manager-import",
                                  daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        return True

    def _background(self, roots: list[str], low_priority: bool, min_age: float) -> None:
        if low_priority:
            from .hashing import lower_thread_priority
            lower_thread_priority()
        try:
            self.run(roots, min_age=min_age)
        except Busy:
            pass
        except LoraManagerError as e:
            log.error("LoRA Manager: image import failed: %s", e)
        except Exception:  # noqa: BLE001 - thread top level: the status has it, the log shows the bug
            log.exception("LoRA Manager: image import failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._stop.clear()

    # --- the import -------------------------------------------------------------------------

    def _import(self, roots: list[str], report: Callable[[float, str], None], before: float | None) -> ImportReport:
        started = time.monotonic()
        result = ImportReport()
        known, recorded = self._remembered()
        by_identity: dict[tuple[int, int], list[_Known]] = {}
        for row in known.values():
            by_identity.setdefault((row.size, row.mtime_ns), []).append(row)
        files = list(_image_files(roots, skip=self.store.data_dir))
        result.found = len(files)
        if before is not None:
            newest = int(before * 1e9)
            result.recent = sum(1 for _p, _s, mtime_ns in files if mtime_ns > newest)
            files = [f for f in files if f[2] <= newest]
        seen = {path for path, _size, _mtime in files}
        names: dict[str, int | None] = {}
        batch: list[_Pending] = []
        records: list[GenerationRecord] = []
        for n, (path, size, mtime_ns) in enumerate(files):
            if self._stop.is_set():
                break
            row = known.get(path)
            if row is not None and row.size == size and row.mtime_ns == mtime_ns:
                result.unchanged += 1
                continue
            if row is None and path in recorded:
                result.recorded += 1
                batch.append(_Pending(path, size, mtime_ns, Outcome.RECORDED, generation_id=recorded[path]))
            elif row is None and (moved := _moved_from(by_identity.get((size, mtime_ns), []), seen)) is not None:
                result.moved += 1
                by_identity[(size, mtime_ns)].remove(moved)
                known.pop(moved.path)  # at its new path now: not gone
                batch.append(_Pending(path, size, mtime_ns, Outcome(moved.outcome), moved.reason,
                                      known=moved, generation_id=moved.generation_id))
            else:
                batch.append(self._read(path, size, mtime_ns, row, records, result))
            if len(batch) >= BATCH:
                self._write(batch, records, names)
                batch, records = [], []
                report((n + 1) / max(len(files), 1), f"{n + 1:,} of {len(files):,} images looked at, "
                       f"{result.imported:,} imported")
        if batch:
            self._write(batch, records, names)
        result.missing = self._mark_missing(roots, known, seen)
        result.seconds = round(time.monotonic() - started, 3)
        report(1.0, result.summary())
        return result

    def _read(self, path: str, size: int, mtime_ns: int, row: _Known | None, records: list[GenerationRecord],
              result: ImportReport) -> _Pending:
        result.read += 1
        try:
            found = read_generation(path)
        except UnreadableImage as e:
            found, reason = None, str(e)
        except OSError as e:
            found, reason = None, f"cannot be read: {e.strerror or e}"
        else:
            reason = None if found is not None else "no generation metadata"
        if found is None:
            is_error = reason != "no generation metadata"
            result.errors += is_error
            result.skipped += not is_error
            if len(result.problems) < MAX_PROBLEMS:
                result.problems[path] = reason or ""
            return _Pending(path, size, mtime_ns, Outcome.ERROR if is_error else Outcome.SKIPPED, reason, known=row)
        records.append(_record(found, path, mtime_ns))
        result.imported += 1
        return _Pending(path, size, mtime_ns, Outcome.IMPORTED, known=row, record=len(records) - 1)

    def _write(self, batch: list[_Pending], records: list[GenerationRecord], names: dict[str, int | None]) -> None:
        """One transaction: the batch's new records and what became of each file."""
        def remember(session, ids: list[int]) -> None:
            new = []
            for item in batch:
                generation_id = ids[item.record] if item.record is not None else item.generation_id
                values = dict(path=item.path, size=item.size, mtime_ns=item.mtime_ns, outcome=str(item.outcome),
                              reason=item.reason, generation_id=generation_id)
                if item.known is None:
                    new.append(values)
                    continue
                session.execute(update(ImportedImage).where(ImportedImage.id == item.known.id).values(**values))
                if item.known.path != item.path and item.known.generation_id is not None:
                    # moved: the history image follows its file
                    session.execute(update(GenerationImage).where(
                        GenerationImage.generation_id == item.known.generation_id,
                        GenerationImage.path == item.known.path).values(path=item.path, missing=False))
            if new:
                session.execute(insert(ImportedImage), new)
        self.history.record_many(records, names=names, also=remember)

    def _remembered(self) -> tuple[dict[str, _Known], dict[str, int]]:
        """The files imports looked at before, and the image paths SDNext's recorder stored."""
        with self.store.db.read() as session:
            known = {r.path: _Known(*r) for r in session.execute(select(
                ImportedImage.id, ImportedImage.path, ImportedImage.size, ImportedImage.mtime_ns, ImportedImage.outcome,
                ImportedImage.reason, ImportedImage.generation_id))}
            recorded = dict(session.execute(
                select(GenerationImage.path, GenerationImage.generation_id)
                .join(Generation, Generation.id == GenerationImage.generation_id)
                .where(GenerationImage.path.is_not(None),
                       (Generation.source.is_(None)) | (Generation.source != GenerationSource.IMPORTED))).all())
        return known, recorded

    def _mark_missing(self, roots: list[str], known: dict[str, _Known], seen: set[str]) -> int:
        """History images of remembered files under ``roots`` that are gone now are marked
        missing; those found again are not any more. Returns how many are gone."""
        under = tuple(os.path.join(root, "") for root in roots)
        gone = [row for path, row in known.items() if row.generation_id is not None and path.startswith(under)
                and path not in seen and not os.path.lexists(path)]
        with self.store.db.read() as session:
            marked = session.execute(select(GenerationImage.id, GenerationImage.path)
                                     .where(GenerationImage.missing.is_(True))).all()
        back = [image_id for image_id, path in marked if path in seen]

        def work(session) -> None:
            for row in gone:
                session.execute(update(GenerationImage).where(
                    GenerationImage.generation_id == row.generation_id, GenerationImage.path == row.path,
                    GenerationImage.missing.is_(False)).values(missing=True))
            if back:
                session.execute(update(GenerationImage).where(GenerationImage.id.in_(back)).values(missing=False))
        if gone or back:
            self.store.db.transaction(work)
        return len(gone)

    def shared_status(self) -> ImportStatus:
        """This process's import status, unless another process sharing the database imports now
        or imported since: then theirs."""
        return self._shared.seen(self.status)


# --- helpers ----------------------------------------------------------------------------------


def _folders(folders: Iterable[str]) -> list[str]:
    if isinstance(folders, str):
        folders = [folders]
    roots = []
    for folder in folders:
        folder = os.path.abspath(os.path.expanduser(str(folder).strip()))
        if not os.path.isdir(folder):
            raise InvalidInput(f"“{naming.display(folder)}” is not a folder")
        if folder not in roots:
            roots.append(folder)
    if not roots:
        raise InvalidInput("give at least one folder of images")
    return roots


def _image_files(roots: list[str], skip: str) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of the PNG, JPEG and WebP files under ``roots``, each once; our own
    data folder (thumbnails of the history) is left out. Unreadable folders are passed over."""
    skip = os.path.join(os.path.abspath(skip), "")
    done: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        folder = stack.pop()
        if os.path.join(folder, "").startswith(skip) or folder in done:
            continue
        done.add(folder)
        try:
            with os.scandir(folder) as entries:
                items = sorted(entries, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in items:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.path)
                elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                    st = entry.stat()
                    yield entry.path, st.st_size, st.st_mtime_ns
            except OSError:
                continue
        stack.extend(reversed(subfolders))


def _moved_from(candidates: list[_Known], seen: set[str]) -> _Known | None:
    """The remembered file this one is, moved: same size and modification time, and its old path
    is neither among the files found now nor on disk."""
    for row in candidates:
        if row.path not in seen and not os.path.lexists(row.path):
            return row
    return None


def _record(found: ImageGeneration, path: str, mtime_ns: int) -> GenerationRecord:
    return GenerationRecord(
        started_at=found.created_at if found.created_at is not None else mtime_ns / 1e9,
        status=GenerationStatus.SUCCEEDED, source=GenerationSource.IMPORTED,
        prompt=found.prompt[:MAX_TEXT], negative_prompt=found.negative_prompt[:MAX_TEXT],
        seeds=[found.seed] if found.seed is not None else [], width=found.width, height=found.height,
        steps=found.steps, sampler=found.sampler, cfg_scale=found.cfg_scale, model_name=found.model_name,
        model_hash=(found.model_hash or "")[:64] or None, infotext=found.infotext,
        loras=[UsedLora(lora.name, lora.te_weight, lora.unet_weight, hash=lora.hash) for lora in found.loras],
        images=[GeneratedImage(path=path, seed=found.seed)])
