"""Keep the index in step with the LoRA folders.

A scan lists every folder once (``os.scandir``), compares each LoRA's (size, mtime) and its
sidecars' signature with the index, and opens only what changed. New files whose (inode, size)
match a vanished row are moves: the row follows the file and keeps its user data. Files that
vanished are marked missing, never deleted (NAS and offline drives come back). Files are read
with no transaction open (reading.py: in worker processes when there are several cores), then
written by this process in transactions of about ``WRITE_SECONDS`` each, so edits
in this process and in others (SDNext and the CLI on one SQLite file) wait for one short slice,
never for a batch or a whole scan.

Links are followed as boundary.py says. Whatever a file holds is one item's problem: a file that
cannot be read, or a row the database refuses, gets an error of its own, and an entry that looks
like a LoRA but is not indexed (a FIFO, a dangling link...) gets a line in the report.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, bindparam, func, insert, or_, select, type_coerce, update
from sqlalchemy.exc import DataError, IntegrityError

from . import naming, reading, sidecars
from .boundary import Boundary
from .db import Database, insert_missing
from .dbtypes import path_from_db, path_to_db, storable_path
from .models import Lora, LoraMetadata, LoraTag, Tag, live
from .reading import Analysis, Found, Readers, no_sidecars, sidecar_columns, unreadable
from .roots import RootMap

log = logging.getLogger("lora_manager")

BATCH = 500
SUMMARY_LINES = 5  # skipped entries named in a one-line summary (the report lists more)
MAX_SKIPPED = 1000  # lines kept in a report (a folder of 100,000 dangling links must not bloat it)
UNSTORABLE = "its name holds characters (U+10FE80..U+10FEFF) reserved for names that are not valid UTF-8; rename it"
WRITE_SECONDS = 0.1  # a scan's write transaction holds the write lock about this long at most
WRITE_PAUSE = 0.015  # and then leaves it free this long, for writers waiting in other processes

Progress = Callable[[float, str], None]


@dataclass
class ScanReport:
    roots: list[str]
    files: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    missing: int = 0
    returned: int = 0  # missing files that came back
    errors: int = 0  # files indexed with a read error
    folder_errors: list[str] = field(default_factory=list)
    # "path: reason" for each entry that looks like a LoRA (or belongs to one) and was not
    # indexed or read: folders named like LoRA files, FIFOs, dangling links, links leaving the
    # library, names the database cannot hold
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0  # all of them (the list keeps the first MAX_SKIPPED)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{self.files} files", f"{self.added} new", f"{self.updated} changed", f"{self.moved} moved",
                 f"{self.missing} missing", f"{self.errors} unreadable"]
        if self.returned:
            parts.append(f"{self.returned} back")
        if self.skipped:
            parts.append(f"{max(self.skipped_count, len(self.skipped))} skipped")
        text = ", ".join(parts) + f" in {self.seconds:.1f} s"
        if self.folder_errors:
            text += "; " + "; ".join(self.folder_errors)
        if self.skipped:
            more = max(self.skipped_count, len(self.skipped)) - SUMMARY_LINES
            text += "; skipped: " + "; ".join(self.skipped[:SUMMARY_LINES]) + (f"; and {more} more" if more > 0 else "")
        return text


# --- walking ----------------------------------------------------------------------------------


def lora_format(name: str) -> str | None:
    """'safetensors', 'pt' or 'ckpt' for a LoRA file name, else None (hot path: no splitext)."""
    dot = name.rfind(".")
    return naming.LORA_FORMATS.get(name[dot:].lower()) if dot > 0 else None


def group_sidecars(names: list[str], lora_stems: set[str]) -> dict[str, list[str]]:
    """Assign each non-LoRA file of a folder to the LoRA whose stem is its longest prefix.

    ``a.json`` belongs to ``a.safetensors`` and ``a.b.json`` to ``a.b.safetensors`` when both
    exist. Linear in the folder size (folders can hold thousands of LoRAs)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        if lora_format(name):
            continue
        cut = len(name)
        while (cut := name.rfind(".", 0, cut)) > 0:
            stem = name[:cut]
            if stem in lora_stems:
                groups.setdefault(stem, []).append(name)
                break
    return groups


@dataclass
class Listing:
    """One folder's LoRA files (with their stat) and the sidecars of each, by stem."""

    root: str
    directory: str
    loras: list[tuple[os.DirEntry, os.stat_result]]
    sidecars: dict[str, list[str]]
    refused: dict[str, str] = field(default_factory=dict)  # sidecar name -> why it is not read
    root_id: str | None = None

    def sidecars_of(self, filename: str) -> list[str]:
        return self.sidecars.get(filename[:filename.rfind(".")], []) if self.sidecars else []

    def found(self, entry: os.DirEntry, st: os.stat_result) -> Found:
        name = entry.name
        relpath = entry.path[len(self.root.rstrip(os.sep)) + 1:]
        if os.sep != "/":
            relpath = relpath.replace(os.sep, "/")
        sidecar_names = self.sidecars_of(name)
        return Found(
            path=entry.path, root=self.root, relpath=relpath, directory=self.directory, filename=name,
            size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, sidecar_names=sidecar_names,
            refused={n: self.refused[n] for n in sidecar_names if n in self.refused} if self.refused else {},
            root_id=self.root_id,
        )


class Walk:
    """Lists the folders under the library folders (one walk per scan, so a link is followed once
    whichever folder it is met in), following links only as boundary.py says.

    Entries that are not indexed although they look like LoRAs or belong to one (folders named
    like LoRA files, FIFOs, dangling links, links leaving the library) each get a line in
    ``skipped``: nothing is left out without a word. A FIFO is never opened."""

    def __init__(self, boundary: Boundary, errors: list[str], skipped: list[str]):
        self.boundary = boundary
        self.errors = errors
        self.skipped = skipped
        self.followed: set[str] = set()  # real paths of the linked folders and files taken

    def listings(self, root: str, root_id: str | None = None) -> Iterator[Listing]:
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except OSError as e:
                self.errors.append(f"cannot read folder {naming.display(directory)}: {e.strerror or e}")
                continue
            loras: list[tuple[os.DirEntry, os.stat_result]] = []
            outside: dict[str, str] = {}  # links that leave the library: name -> reason
            for entry in entries:
                try:
                    # the hot path: plain files and folders are told apart without a system call
                    if lora_format(entry.name):
                        if entry.is_file(follow_symlinks=False):
                            loras.append((entry, entry.stat()))
                            continue
                    elif entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith("."):  # hidden folders: VCS data, other tools' trash
                            stack.append(entry.path)
                        continue
                    elif not entry.is_symlink():
                        continue  # a sidecar, or any other file
                    self._odd(entry, stack, loras, outside)
                except OSError as e:
                    self.errors.append(f"cannot read {naming.display(entry.path)}: {e.strerror or e}")
            if loras:
                stems = {e.name[:e.name.rfind(".")] for e, _ in loras}
                groups = group_sidecars([e.name for e in entries], stems)
                refused = {}
                for names in groups.values():
                    for name in names:
                        if name in outside:
                            refused[name] = outside[name]
                            self._skip(os.path.join(directory, name), outside[name])
                yield Listing(root, directory, loras, groups, refused, root_id)

    def _skip(self, path: str, reason: str) -> None:
        self.skipped.append(f"{naming.display(path)}: {reason}")

    def _odd(self, entry: os.DirEntry, stack: list[str], loras: list, outside: dict[str, str]) -> None:
        """A link, or an entry named like a LoRA file that is not a regular file."""
        is_lora = lora_format(entry.name) is not None
        if not entry.is_symlink():
            if entry.is_dir(follow_symlinks=False):
                self._skip(entry.path, "a folder named like a LoRA file, not a LoRA (its contents are scanned)")
                if not entry.name.startswith("."):
                    stack.append(entry.path)
            else:
                self._skip(entry.path, f"not a regular file ({_kind(entry.stat(follow_symlinks=False))}); not read")
            return
        real = os.path.realpath(entry.path)
        try:
            st = entry.stat()
        except OSError as e:
            self._skip(entry.path, f"a link to something that is not there ({naming.display(real)}: {e.strerror or e})")
            return
        if not self.boundary.contains(real):
            reason = f"a link leading outside the library folders (to {naming.display(real)}); not followed"
            if is_lora or stat.S_ISDIR(st.st_mode):
                self._skip(entry.path, reason)
            else:
                outside[entry.name] = reason  # reported if it is some LoRA's sidecar
            return
        if stat.S_ISDIR(st.st_mode):
            if entry.name.startswith("."):
                return
            if self.boundary.reached_directly(real, is_dir=True):
                self._skip(entry.path, f"a link to the folder {naming.display(real)}, scanned under its own path")
            elif real in self.followed:
                self._skip(entry.path, f"a link to the folder {naming.display(real)}, already scanned through another link")
            else:
                self.followed.add(real)
                stack.append(entry.path)
            return
        if not is_lora:
            return  # a sidecar linked from inside the library: read as any other
        if not stat.S_ISREG(st.st_mode):
            self._skip(entry.path, f"a link to something that is not a regular file ({_kind(st)}); not read")
        elif lora_format(os.path.basename(real)) and self.boundary.reached_directly(real, is_dir=False):
            self._skip(entry.path, f"a link to {naming.display(real)}, indexed under its own path")
        elif real in self.followed:
            self._skip(entry.path, f"a link to {naming.display(real)}, already indexed through another link")
        else:
            self.followed.add(real)
            loras.append((entry, st))


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a file"


def seeded_user_data(trigger_phrase: str | None, data: sidecars.SidecarData) -> dict[str, Any]:
    """First values of user-editable fields for a new row, from metadata and sidecars."""
    words: list[str] = []
    for word in list(data.trigger_words) + ([trigger_phrase] if trigger_phrase else []):
        if word and word not in words:
            words.append(word)
    seeded: dict[str, Any] = {"trigger_words": json.dumps(words) if words else None}
    if data.preferred_weight is not None:
        seeded["default_weight"] = data.preferred_weight
    if data.weight_range:
        seeded["weight_min"], seeded["weight_max"] = data.weight_range
    if data.notes:
        seeded["notes"] = data.notes
    if data.nsfw:
        seeded["nsfw"] = True
    if data.display_name:
        seeded["display_name"] = data.display_name
    return seeded


def search_text(*parts: Any) -> str:
    """The lower-cased haystack free-text queries search (one LIKE over one column)."""
    out = []
    for part in parts:
        if not part:
            continue
        if isinstance(part, (list, tuple)):
            out.extend(str(p) for p in part if p)
        else:
            out.append(str(part))
    return "\n".join(out).lower()


def sort_name(display_name: str | None, title: str | None, stem: str) -> str:
    """The name cards show (display name, else title, else file name), lower-cased for sorting."""
    return (display_name or title or stem).lower()


# --- the scan ---------------------------------------------------------------------------------


@contextmanager
def _postponed_collections():
    """Run the cyclic garbage collector rarely while scanning.

    Parsing one SDXL header allocates some 10,000 objects; at the default threshold (700) the
    collector runs a dozen times per file, and in a process as large as SDNext its full passes
    cost more than the parsing itself (measured: half the CPU time of a cold scan). Headers hold
    no reference cycles, so nothing is lost by collecting later."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 100_000), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def scan(db: Database, roots: list[str], progress: Progress | None = None,
         should_stop: Callable[[], bool] | None = None, thumbnail_dir: str | None = None,
         mounts: RootMap | None = None) -> ScanReport:
    """Synchronise the index with ``roots``. Safe to run while the UI reads and edits.

    With ``mounts`` (this machine's, see roots.py) only the files of folders this machine has
    mounted are judged: machines sharing a database never mark each other's files missing."""
    with _postponed_collections():
        return _scan(db, roots, progress, should_stop, thumbnail_dir, mounts)


def _scan(db: Database, roots: list[str], progress: Progress | None,
          should_stop: Callable[[], bool] | None, thumbnail_dir: str | None, mounts: RootMap | None) -> ScanReport:
    started = time.perf_counter()
    roots = [os.path.abspath(r) for r in roots]
    report = ScanReport(roots=[naming.display(r) for r in roots])
    progress = progress or (lambda _f, _m: None)
    walker = Walk(Boundary(roots), report.folder_errors, report.skipped)

    indexed = _load_index(db, mounts)
    seen: set[str] = set()
    changed: list[Found] = []
    sidecar_only: list[tuple[int, Found]] = []
    returned: list[int] = []
    progress(0.0, "listing folders")
    for root in roots:
        if not os.path.isdir(root):
            report.folder_errors.append(f"library folder not found: {naming.display(root)}")
            continue
        root_id = mounts.root_id(root) if mounts is not None else None
        stored_root = path_to_db(root)  # as _load_index gives row.root
        for listing in walker.listings(root, root_id):
            for entry, st in listing.loras:
                path = entry.path
                if path in seen:  # nested roots
                    continue
                seen.add(path)
                row = indexed.get(path)
                # a row found under another library folder (folders were re-arranged) is re-read
                # too, so its root and relative path follow
                if (row is None or row.size != st.st_size or row.mtime_ns != st.st_mtime_ns
                        or (row.root_id != root_id if root_id else row.root != stored_root)):
                    if row is None and not storable_path(path):
                        report.skipped.append(f"{naming.display(path)}: {UNSTORABLE}")
                        continue
                    changed.append(listing.found(entry, st))
                    continue
                if row.missing:
                    returned.append(row.id)
                if row.signature is None and not listing.sidecars_of(entry.name):
                    report.unchanged += 1  # the common case, decided without building a Found
                    continue
                found = listing.found(entry, st)
                if reading.signature(found) != row.signature:
                    sidecar_only.append((row.id, found))
                else:
                    report.unchanged += 1
            report.files = len(seen)
            progress(0.0, f"listing folders: {report.files} files")

    # Not seen: vanished, or under a folder that is no longer a library folder. Either way the
    # LoRA is not available; it is marked missing and keeps its user data.
    vanished = {path: row for path, row in indexed.items() if path not in seen and not row.missing}
    moves = _match_moves(changed, indexed, vanished)
    total = len(changed) + len(sidecar_only)
    done = 0
    # Read in worker processes (or threads here) while this thread writes the batch before.
    with Readers(thumbnail_dir) as readers:
        for analysed in readers.analysed(changed[start:start + BATCH] for start in range(0, len(changed), BATCH)):
            if should_stop and should_stop():
                break
            _write_changed(db, analysed, indexed, moves, report)
            done += len(analysed)
            progress(done / max(total, 1), f"reading {done}/{total} changed files")
    for start in range(0, len(sidecar_only), BATCH):
        batch = sidecar_only[start:start + BATCH]
        _write_sidecars(db, batch)
        report.updated += len(batch)
        done += len(batch)
        progress(done / max(total, 1), f"reading sidecars {done}/{total}")

    moved_from = {indexed_path for indexed_path in moves.values()}
    gone = sorted(row.id for path, row in vanished.items() if path not in moved_from)
    now = time.time()

    def mark(values: dict[str, Any]):
        def work(session, ids: list[int]) -> None:
            session.execute(update(Lora).where(Lora.id.in_(ids)).values(**values))
        return work
    write_in_slices(db, gone, mark({"missing": True, "missing_since": now}))
    write_in_slices(db, sorted(returned), mark({"missing": False, "missing_since": None}))
    report.missing = len(gone)
    report.returned = len(returned)
    report.skipped_count = len(report.skipped)
    del report.skipped[MAX_SKIPPED:]
    report.seconds = time.perf_counter() - started
    progress(1.0, "done: " + report.summary())
    return report


def _load_index(db: Database, mounts: RootMap | None = None) -> dict[str, Any]:
    """path on this machine -> (id, size, mtime_ns, signature, missing, inode, root, root_id) of
    the live rows of every folder this machine ever mounted (all rows without ``mounts``).

    Not only those of the current folders: a file may be indexed under a folder that is no
    longer a library folder of its own (an extra folder inside SDNext's, say). Rows of folders
    only other machines mount are left out: not ours to judge. Core rows straight from the
    driver: at 50,000 files this load is half of a no-change rescan. So the path and root come
    in their stored form (dbtypes.FsPath; the same text for any UTF-8 name) and only the keys
    that are not ASCII are turned back into real names: converting every value costs a tenth of
    the load. ``row.root`` stays stored: compare it with ``path_to_db(root)``."""
    columns = (type_coerce(Lora.path, Text).label("path"), Lora.id, Lora.size, Lora.mtime_ns,
               Lora.sidecar_signature.label("signature"), Lora.missing, Lora.inode,
               type_coerce(Lora.root, Text).label("root"), Lora.root_id, Lora.relpath)
    where = [live()]
    if mounts is not None:
        where.append(or_(Lora.root_id.in_(sorted(mounts.root_ids)), Lora.root_id.is_(None)))
    with db.engine.connect() as conn:
        rows = conn.execute(select(*columns).where(*where))
        if mounts is None:
            index = {row.path: row for row in rows}
        else:
            mounted_at = {root_id: path_to_db(mounts.local_path(root_id, "")) for root_id in mounts.root_ids}
            index = {}
            for row in rows:
                root = mounted_at.get(row.root_id)
                # the common case first: the row was written by this machine (same folder path)
                key = row.path if root is None or root == row.root else path_to_db(mounts.local_path(row.root_id, row.relpath))
                index[key] = row
    for stored in [path for path in index if not path.isascii()]:
        real = path_from_db(stored)
        if real != stored:
            index[real] = index.pop(stored)
    return index


def _match_moves(changed: list[Found], indexed: dict[str, Any], vanished: dict[str, Any]) -> dict[str, str]:
    """New path -> old path for files that were moved or renamed (same inode and size)."""
    by_identity = {(row.inode, row.size): path for path, row in vanished.items() if row.inode}
    moves = {}
    for found in changed:
        if found.path in indexed:
            continue
        old = by_identity.pop((found.inode, found.size), None)
        if old is not None:
            moves[found.path] = old
    return moves


# Failures caused by what one row holds. Lost connections, locks and constraint races are not
# among them: those fail the scan (or are retried and handled where they happen, see _insert_new).
_ROW_ERRORS = (DataError, ValueError, OverflowError, UnicodeError)


def _one_line(error: BaseException) -> str:
    """The first line of a driver's message, without the SQL and parameters SQLAlchemy adds."""
    text = str(getattr(error, "orig", None) or error)
    return " ".join(text.splitlines()[:1])[:300]


def write_in_slices(db: Database, items: list, work: Callable[[Any, list], Any],
                    refused: Callable[[Any, BaseException], None] | None = None) -> list:
    """``work(session, slice)`` over ``items`` in transactions of about ``WRITE_SECONDS`` each.

    The slice size adapts to the time a slice takes (files with large metadata or tag lists take
    longer), so the write lock is released often whatever the files; each transaction is re-run
    on a conflict (Database.transaction), so ``work`` must not change its arguments. A slice the
    database refuses for what a row holds is halved until the row is found, which goes to
    ``refused(item, error)`` (without it the error is raised): the rest of the slice is written."""
    results, size, start = [], 16, 0
    while start < len(items):
        part = items[start:start + size]
        took = [0.0]

        def timed(session, part=part, took=took):
            began = time.perf_counter()
            out = work(session, part)
            session.flush()
            took[0] = time.perf_counter() - began
            return out
        try:
            results.append(db.transaction(timed))
        except _ROW_ERRORS as e:
            if refused is None:
                raise
            if len(part) > 1:
                size = max(1, len(part) // 2)
                continue
            refused(part[0], e)
            start += 1
            continue
        start += len(part)
        if start < len(items):
            time.sleep(WRITE_PAUSE)
        if took[0] > WRITE_SECONDS:
            size = max(1, size // 2)
        elif took[0] < WRITE_SECONDS / 3:
            size = min(BATCH, size * 2)
    return results


@dataclass
class _NewRow:
    found: Found
    values: dict[str, Any]
    metadata_json: str | None
    tags: list[str]


@dataclass
class _ChangedRow:
    found: Found
    id: int
    values: dict[str, Any]
    metadata_json: str | None


def _write_changed(db: Database, batch: list[Analysis], indexed: dict[str, Any],
                   moves: dict[str, str], report: ScanReport, *, bare: bool = False) -> None:
    """Write a batch of changed files; a row the database refuses does not lose the batch: it is
    stored with only its file facts and the error, or, if even that fails, reported as skipped."""
    inserts, updates = _plan_changed(batch, indexed, moves, report)
    refused_inserts = 0

    def refused(row: _NewRow | _ChangedRow, error: BaseException) -> None:
        nonlocal refused_inserts
        path = naming.display(row.found.path)
        log.warning("LoRA Manager: cannot store what %s holds: %s", path, error)
        if isinstance(row, _NewRow):
            report.added -= 1
            refused_inserts += 1
        else:
            report.updated -= 1
        if bare:  # even its file facts alone: the file cannot be indexed at all
            report.errors -= 1
            report.skipped.append(f"{path}: cannot be stored in the database ({_one_line(error)})")
            return
        error_text = f"cannot store what the file holds: {_one_line(error)}"
        _write_changed(db, [unreadable(row.found, error_text)], indexed, moves, report, bare=True)

    # rows in id order before tags: the order every writer locks in (no deadlocks on PostgreSQL)
    write_in_slices(db, sorted(updates, key=lambda u: u.id), _update_rows, refused)
    added = sum(write_in_slices(db, inserts, _insert_rows, refused))
    report.added -= len(inserts) - refused_inserts - added  # paths another process indexed meanwhile


def _plan_changed(batch: list[Analysis], indexed: dict[str, Any], moves: dict[str, str],
                  report: ScanReport) -> tuple[list[_NewRow], list[_ChangedRow]]:
    """The rows to insert and the rows to update for a batch of changed files (no database)."""
    now = time.time()
    inserts: list[_NewRow] = []
    updates: list[_ChangedRow] = []
    for analysis in batch:
        found, columns, head, metadata_json, side, data = (
            analysis.found, analysis.columns, analysis.head, analysis.metadata_json, analysis.side, analysis.data)
        if head["error"]:
            report.errors += 1
        old_path = moves.get(found.path)
        row = indexed.get(old_path or found.path)
        values = {**columns, **head, **side, "scanned_at": now, "missing": False, "missing_since": None}
        if row is None:
            seeded = seeded_user_data(analysis.trigger_phrase, data)
            words = json.loads(seeded["trigger_words"]) if seeded.get("trigger_words") else []
            values.update(seeded)
            values.update(
                added_at=now, updated_at=now, base_model=data.base_model or head["base_model_detected"],
                sort_name=sort_name(seeded.get("display_name"), head["title"], columns["stem"]),
                search_text=search_text(columns["stem"], seeded.get("display_name"), head["title"], head["output_name"],
                                        data.tags, words, seeded.get("notes")),
            )
            inserts.append(_NewRow(found, values, metadata_json, data.tags))
            report.added += 1
        else:
            # user data stays untouched; hashes only go when the content may have changed (a
            # move or a re-arranged library folder keeps size and mtime)
            if row.size != found.size or row.mtime_ns != found.mtime_ns:
                values.update(sha256=None, addnet_hash=None, hashed_mtime_ns=None, hash_error=None)
            if old_path is not None and row.size == found.size:
                report.moved += 1
            else:
                report.updated += 1
            updates.append(_ChangedRow(found, row.id, values, metadata_json))
    return inserts, updates


def _update_rows(session, rows: list[_ChangedRow]) -> None:
    for row in rows:  # ORM-free column updates keep user data intact
        session.execute(update(Lora).where(Lora.id == row.id).values(**row.values))
    ids = [row.id for row in rows]
    session.execute(LoraMetadata.__table__.delete().where(LoraMetadata.lora_id.in_(ids)))
    meta_rows = [{"lora_id": row.id, "metadata_json": row.metadata_json} for row in rows if row.metadata_json]
    if meta_rows:
        session.execute(insert(LoraMetadata), meta_rows)
    refresh_search_text(session, ids)
    refresh_base_model(session, ids)


def _insert_rows(session, rows: list[_NewRow]) -> int:
    """Insert new rows with their metadata and tags; returns how many were inserted."""
    ids, kept = _insert_new(session, rows)
    meta_rows = [{"lora_id": i, "metadata_json": row.metadata_json} for i, row in zip(ids, kept) if row.metadata_json]
    if meta_rows:
        session.execute(insert(LoraMetadata), meta_rows)
    link_tags(session, [(i, row.tags) for i, row in zip(ids, kept) if row.tags])
    return len(ids)


def _insert_new(session, rows: list[_NewRow]) -> tuple[list[int], list[_NewRow]]:
    """Insert new rows; rows whose path another process indexed meanwhile are left to it.

    Several SDNext machines can share one PostgreSQL library (and two processes one SQLite
    file): between our index load and this insert, another scanner may have added a file."""
    while rows:
        try:
            with session.begin_nested():
                ids = session.execute(insert(Lora).returning(Lora.id, sort_by_parameter_order=True),
                                      [row.values for row in rows]).scalars().all()
            return list(ids), rows
        except IntegrityError:
            taken = set(session.scalars(select(Lora.path).where(Lora.path.in_([r.values["path"] for r in rows]))))
            if not taken:
                raise
            rows = [r for r in rows if r.values["path"] not in taken]
    return [], []


def _write_sidecars(db: Database, batch: list[tuple[int, Found]]) -> None:
    """Store re-read sidecars; a row the database refuses gets the error instead (see _write_changed)."""
    rows = []
    for lora_id, found in batch:  # read before any transaction begins
        try:
            side, _data = sidecar_columns(found)
        except (OSError, ValueError, UnicodeError) as e:
            side = no_sidecars(found, f"cannot read the sidecars: {e}")
        rows.append((found, {"b_id": lora_id, **side}))
    rows.sort(key=lambda r: r[1]["b_id"])

    def work(session, part: list[tuple[Found, dict[str, Any]]]) -> None:
        stmt = update(Lora.__table__).where(Lora.__table__.c.id == bindparam("b_id"))
        session.connection().execute(stmt, [values for _found, values in part])
        refresh_base_model(session, [values["b_id"] for _found, values in part])

    def refused(row: tuple[Found, dict[str, Any]], error: BaseException) -> None:
        found, values = row
        log.warning("LoRA Manager: cannot store the sidecars of %s: %s", naming.display(found.path), error)
        side = no_sidecars(found, f"cannot store what the sidecars hold: {_one_line(error)}")
        write_in_slices(db, [(found, {"b_id": values["b_id"], **side})], work)
    write_in_slices(db, rows, work, refused)


def link_tags(session, pairs: list[tuple[int, list[str]]]) -> None:
    """Give each LoRA id its tags (by name), creating tags as needed; links that exist are kept."""
    names = {tag_name(t) for _, tags in pairs for t in tags if t and t.strip()}
    if not names:
        return
    tag_ids = ensure_tags(session, names)
    links = set()
    for lora_id, tags in pairs:
        for t in tags:
            name = tag_name(t)
            if name:
                links.add((lora_id, tag_ids[name]))
    insert_missing(session, LoraTag.__table__, [{"lora_id": a, "tag_id": b} for a, b in sorted(links)], ["lora_id", "tag_id"])


def tag_name(text: str) -> str:
    """Tags are compared and stored lower-cased and trimmed ("Anime " and "anime" are one tag)."""
    return str(text).strip().lower()[:200]


def ensure_tags(session, names: set[str]) -> dict[str, int]:
    """Tag ids by name, creating the missing tags.

    Another process may create the same tag at the same moment: the insert skips names that
    exist by then (on PostgreSQL it waits for the other transaction to end) and the second read
    finds them. Names are inserted in sorted order, so two creators never wait on each other in
    opposite orders."""
    names = set(names)
    if not names:
        return {}
    existing = dict(session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
    missing = sorted(names - existing.keys())
    if missing:
        insert_missing(session, Tag.__table__, [{"name": n} for n in missing], ["name"])
        existing.update(session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(missing))).all())
    return existing


def refresh_search_text(session, ids: list[int]) -> None:
    """Recompute ``search_text`` and ``sort_name`` after names, tags, trigger words or notes changed."""
    for start in range(0, len(ids), BATCH):
        for lora in session.scalars(select(Lora).where(Lora.id.in_(ids[start:start + BATCH]))):
            words = json.loads(lora.trigger_words) if lora.trigger_words else []
            lora.search_text = search_text(lora.stem, lora.display_name, lora.title, lora.output_name,
                                           [t.name for t in lora.tags], words, lora.notes)
            lora.sort_name = sort_name(lora.display_name, lora.title, lora.stem)


def refresh_base_model(session, ids: list[int]) -> None:
    """Effective base model = the user's choice, else a sidecar's, else the header's."""
    effective = func.coalesce(Lora.base_model_user, Lora.base_model_sidecar, Lora.base_model_detected)
    for start in range(0, len(ids), BATCH):
        session.execute(update(Lora).where(Lora.id.in_(ids[start:start + BATCH])).values(base_model=effective))
