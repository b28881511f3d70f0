"""Keep the index in step with the LoRA folders.

A scan lists every folder once (``os.scandir``), compares each LoRA's (size, mtime) and its
sidecars' signature with the index, and opens only what changed. It works a group of folders
(about ``BATCH`` files) at a time, reading just their rows, so its memory does not grow with the
library. New files whose (inode, size) match a vanished row are moves: the row follows the file
and keeps its user data. Files that vanished are marked missing, never deleted (NAS and offline
drives come back). Files are read with no transaction open (reading.py: in worker processes when
there are several cores), then written by this process in transactions of about
``WRITE_SECONDS`` each, so edits
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

from sqlalchemy import Text, and_, bindparam, case, func, insert, or_, select, type_coerce, update
from sqlalchemy.exc import DataError, IntegrityError

from . import base_models, naming, reading, sidecars
from .boundary import Boundary
from .db import Database, insert_missing
from .dbtypes import path_from_db, path_to_db, storable_path
from .models import Lora, LoraMetadata, LoraTag, Tag, count_unreadable, live
from .reading import Analysis, Found, Readers, no_sidecars, sidecar_columns, unreadable
from .roots import RootMap
from .wording import plural

log = logging.getLogger("lora_manager")

BATCH = 500
WRITE_AT = 100  # changed files read by the time the scan writes them (see _Sync._sync)
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
    errors: int = 0  # files in the index with a read error after the scan (models.count_unreadable)
    folder_errors: list[str] = field(default_factory=list)
    # "path: reason" for each entry that looks like a LoRA (or belongs to one) and was not
    # indexed or read: folders named like LoRA files, FIFOs, dangling links, links leaving the
    # library, names the database cannot hold
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0  # all of them (the list keeps the first MAX_SKIPPED)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [plural(self.files, "file"), f"{self.added} new", f"{self.updated} changed", f"{self.moved} moved",
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
    # the file's trigger phrase is split by the sidecars' rule ("ryuu, dragon horns" is two words)
    words: list[str] = []
    seen: set[str] = set()
    for word in list(data.trigger_words) + sidecars.split_trigger_words(trigger_phrase or ""):
        if word.casefold() not in seen:
            seen.add(word.casefold())
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
    # changed files are read in worker processes (reading.py) while this thread writes
    with Readers(thumbnail_dir) as readers:
        sync = _Sync(db, roots, _Index(db, mounts), report, progress, should_stop or (lambda: False), readers)
        sync.run()
    with db.read() as session:
        report.errors = count_unreadable(session)
    report.skipped_count += len(report.skipped)
    del report.skipped[MAX_SKIPPED:]
    report.seconds = time.perf_counter() - started
    progress(1.0, "done: " + report.summary())
    return report


class _Sync:
    """One scan, a group of folders at a time.

    The walk hands over folder listings; about ``BATCH`` files' worth of them are compared with
    the rows of just those folders (one query), their changed files read and written, and their
    vanished files marked missing before the walk goes on. Memory holds one group's listings and
    rows and the set of folders listed so far, whatever the size of the library. Rows of folders
    the walk never lists are found in the database at the end.

    A new file whose (inode, size) is that of a row whose file is gone is that row's file, moved:
    the row follows it and keeps its user data. "Gone" is judged whichever comes first in the
    walk: a row of a folder already listed is gone if this scan marked it missing; a row of a
    folder listed later is gone if its file is not there (or not where the walk will look)."""

    def __init__(self, db: Database, roots: list[str], index: _Index, report: ScanReport, progress: Progress,
                 should_stop: Callable[[], bool], readers: Readers):
        self.db, self.roots, self.index, self.report = db, roots, index, report
        self.progress, self.should_stop = progress, should_stop
        self.readers = readers
        self.pace = Pace(db.is_sqlite)  # one pace for all of this scan's writes
        self.listed: set[str] = set()  # folders whose files were compared in this scan
        self.roots_to_walk: list[str] = list(roots)  # the folder being walked and those after it
        self.marker = time.time()  # missing_since of the rows this scan finds gone
        self.expected = index.count()  # files the progress expects (the rows of the last scan)
        self.compared = 0  # files compared, read when they changed
        self.read = 0  # changed files read
        self.stopped = False

    def run(self) -> None:
        report = self.report
        walker = Walk(Boundary(self.roots), report.folder_errors, report.skipped)
        self.progress(0.0, "listing folders")
        for root in self.roots:
            if self.stopped:
                break
            if not os.path.isdir(root):
                report.folder_errors.append(f"library folder not found: {naming.display(root)}")
                self.roots_to_walk.remove(root)
                continue
            root_id = self.index.mounts.root_id(root) if self.index.mounts is not None else None
            group: list[Listing] = []
            files = 0
            for listing in walker.listings(root, root_id):
                if listing.directory in self.listed:
                    continue  # nested library folders: compared already, under the outer one
                self.listed.add(listing.directory)
                group.append(listing)
                files += len(listing.loras)
                if files >= BATCH:
                    self._sync(group, root, root_id)
                    group, files = [], 0
                    if self.stopped:
                        break
            if group and not self.stopped:
                self._sync(group, root, root_id)
            self.roots_to_walk.remove(root)
        if not self.stopped:  # a scan stopped half-way judges only what it listed
            self._mark_unlisted()

    def _report_progress(self, doing: str) -> None:
        expected = max(self.expected, self.report.files)
        fraction = min(0.99, self.compared / expected) if expected else 0.0
        self.progress(fraction, f"{plural(self.report.files, 'file')} in {plural(len(self.listed), 'folder')} listed, "
                                f"{plural(self.read, 'changed file')} read{doing}")

    def _sync(self, group: list[Listing], root: str, root_id: str | None) -> None:
        """Compare a group of listings with their rows, and write what differs."""
        if self.should_stop():
            self.stopped = True
            return
        report = self.report
        stored_root = path_to_db(root)  # as _Index gives row.root
        directories = {listing.directory for listing in group}
        rows = self.index.in_folders(directories)
        changed: list[Found] = []
        indexed: dict[str, Any] = {}  # path -> row of the changed files that have one
        sidecar_only: list[tuple[int, Found]] = []
        returned: list[int] = []
        files = 0
        for listing in group:
            files += len(listing.loras)
            for entry, st in listing.loras:
                path = entry.path
                row = rows.pop(path, None)  # what is left at the end is gone
                # a row found under another library folder (folders were re-arranged) is re-read
                # too, so its root and relative path follow
                if (row is None or row.size != st.st_size or row.mtime_ns != st.st_mtime_ns
                        or (row.root_id != root_id if root_id else row.root != stored_root)):
                    if row is None and not storable_path(path):
                        report.skipped.append(f"{naming.display(path)}: {UNSTORABLE}")
                        continue
                    if row is not None:
                        indexed[path] = row
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
        report.files += files
        self.compared += files - len(changed) - len(sidecar_only)
        # Rows of these folders whose file was not listed: vanished, or moved (see _match_moves).
        vanished = {path: row for path, row in rows.items() if not row.missing}
        del rows
        moves: dict[str, str] = {}  # new path -> old path
        marked_before: set[str] = set()  # new paths of moved files whose row this scan marked missing
        for new_path, (old_path, row) in self._match_moves([f for f in changed if f.path not in indexed],
                                                           vanished, directories).items():
            moves[new_path] = old_path
            indexed[old_path] = row
            vanished.pop(old_path, None)
            if row.missing:
                marked_before.add(new_path)

        # read in batches of about BATCH files (a group is one batch unless a folder is large),
        # not BATCH and a small remainder: each batch waits for its slowest file
        size = -(-len(changed) // max(1, round(len(changed) / BATCH))) or 1
        for start in range(0, len(changed), size):
            if self.should_stop():
                self.stopped = True
                break
            batch = changed[start:start + size]
            # written piece by piece as the readers finish them: writing overlaps reading
            for analysed in self.readers.pieces(batch, WRITE_AT):
                _write_changed(self.db, analysed, indexed, moves, report, self.pace)
            report.missing -= sum(1 for found in batch if found.path in marked_before)  # missing no more
            self.read += len(batch)
            self.compared += len(batch)
            self._report_progress("")
        for start in range(0, len(sidecar_only), BATCH):
            batch = sidecar_only[start:start + BATCH]
            _write_sidecars(self.db, batch, self.pace)
            report.updated += len(batch)
            self.compared += len(batch)
        # a file that moved here but was not read (the scan was stopped) keeps its row as it was
        gone = sorted(row.id for row in vanished.values())
        write_in_slices(self.db, gone, _mark({"missing": True, "missing_since": self.marker}), pace=self.pace)
        write_in_slices(self.db, sorted(returned), _mark({"missing": False, "missing_since": None}), pace=self.pace)
        report.missing += len(gone)
        report.returned += len(returned)
        if len(report.skipped) > MAX_SKIPPED:  # the report keeps the first lines and counts the rest
            report.skipped_count += len(report.skipped) - MAX_SKIPPED
            del report.skipped[MAX_SKIPPED:]
        self._report_progress("")

    def _match_moves(self, new: list[Found], vanished: dict[str, Any],
                     directories: set[str]) -> dict[str, tuple[str, Any]]:
        """New path -> (old path, row) for the new files that are indexed files moved or renamed
        (same inode and size).

        Rows of this group's folders first, then the database's rows with that identity whose
        file is gone: marked missing earlier in this scan, or in a folder not listed yet where
        the walk will not find it."""
        moves: dict[str, tuple[str, Any]] = {}
        if not new:
            return moves
        here = {(row.inode, row.size): (path, row) for path, row in vanished.items() if row.inode}
        wanted: list[Found] = []
        for found in new:
            old = here.pop((found.inode, found.size), None)
            if old is not None:
                moves[found.path] = old
            elif found.inode:
                wanted.append(found)
        if not wanted:
            return moves
        elsewhere: dict[tuple[int, int], list[tuple[str, Any]]] = {}
        for path, row in self.index.with_identity({(f.inode, f.size) for f in wanted}, self.marker):
            if not row.missing:  # not marked by this scan: is its file gone, or only not listed yet?
                folder = os.path.dirname(path)
                if folder in directories or folder in self.listed or self._listed_later(path):
                    continue
            elsewhere.setdefault((row.inode, row.size), []).append((path, row))
        for found in wanted:
            candidates = elsewhere.get((found.inode, found.size))
            if candidates:
                moves[found.path] = candidates.pop()
        return moves

    def _listed_later(self, path: str) -> bool:
        """Whether the walk will list this file later in this scan: a file (or a link to one) under
        a library folder not walked yet, or the one being walked, with no hidden folder on the way."""
        for root in self.roots_to_walk:
            prefix = root.rstrip(os.sep) + os.sep
            if path.startswith(prefix):
                folders = path[len(prefix):].split(os.sep)[:-1]
                if not any(part.startswith(".") for part in folders) and os.path.isfile(path):
                    return True
        return False

    def _mark_unlisted(self) -> None:
        """Rows of folders the walk did not list: vanished, or under a folder that is no longer a
        library folder. Either way the LoRA is not available; it is marked missing and keeps its
        user data. Found and marked a batch at a time."""
        for condition in self.index.unlisted(self.listed):
            last = 0
            while True:
                ids = self.index.not_missing(condition, after=last)
                if not ids:
                    break
                last = ids[-1]
                write_in_slices(self.db, ids, _mark({"missing": True, "missing_since": self.marker}), pace=self.pace)
                self.report.missing += len(ids)
                self._report_progress(f", {self.report.missing} missing")


def _mark(values: dict[str, Any]):
    def work(session, ids: list[int]) -> None:
        session.execute(update(Lora).where(Lora.id.in_(ids)).values(**values))
    return work


class _Index:
    """The indexed rows this machine judges, by folder: the live rows of every folder this
    machine ever mounted (all rows without ``mounts``), each under its path on this machine.

    Not only those of the current folders: a file may be indexed under a folder that is no
    longer a library folder of its own (an extra folder inside SDNext's, say). Rows of folders
    only other machines mount are left out: not ours to judge. A row of a mounted folder is
    found by (root id, folder); a row without a root id (or every row, without ``mounts``) by its
    stored root and folder. Core rows straight from the driver (a no-change rescan reads every
    row once): the path and root come in their stored form (dbtypes.FsPath; the same text for
    any UTF-8 name) and only paths that are not ASCII are turned back into real names.
    ``row.root`` stays stored: compare it with ``path_to_db(root)``."""

    COLUMNS = (type_coerce(Lora.path, Text).label("path"), Lora.id, Lora.size, Lora.mtime_ns,
               Lora.sidecar_signature.label("signature"), Lora.missing, Lora.inode,
               type_coerce(Lora.root, Text).label("root"), Lora.root_id, Lora.relpath)

    def __init__(self, db: Database, mounts: RootMap | None):
        self.db = db
        self.mounts = mounts
        # root id -> where this machine mounts it, real and stored
        self.local_roots = {root_id: mounts.local_path(root_id, "") for root_id in mounts.root_ids} if mounts else {}
        self.mounted_at = {root_id: path_to_db(path) for root_id, path in self.local_roots.items()}
        # which rows are found by their stored root and folder: all (None), those without a root
        # id (a condition; rows from before root ids, looked up only if there are any) or none
        self.by_stored_root: Any = None
        if mounts is not None:
            self.by_stored_root = Lora.root_id.is_(None)
            with db.engine.connect() as conn:
                if conn.execute(select(Lora.id).where(self.by_stored_root).limit(1)).first() is None:
                    self.by_stored_root = False

    def _scope(self) -> list:
        if self.mounts is None:
            return []
        return [or_(Lora.root_id.in_(sorted(self.mounts.root_ids)), Lora.root_id.is_(None))]

    def key(self, row) -> str:
        """The row's path on this machine."""
        root = self.mounted_at.get(row.root_id)
        # the common case first: the row was written by this machine (same folder path)
        if root is None or root == row.root:
            return path_from_db(row.path)
        return self.mounts.local_path(row.root_id, row.relpath)

    def count(self) -> int:
        """About how many files the scan will meet: the rows of this machine's folders, counted
        from the (root id, folder) index alone (trashed and missing rows too)."""
        with self.db.engine.connect() as conn:
            stmt = select(func.count()).select_from(Lora)
            if self.mounts is None:
                return conn.execute(stmt).scalar_one()
            mounted = conn.execute(stmt.where(Lora.root_id.in_(sorted(self.mounts.root_ids)))).scalar_one()
            return mounted + (conn.execute(stmt.where(self.by_stored_root)).scalar_one() if self.by_stored_root is not False else 0)

    def in_folders(self, directories: set[str]) -> dict[str, Any]:
        """path on this machine -> row, for the rows of these folders (absolute paths)."""
        conditions = []
        for root_id, base in self.local_roots.items():
            prefix = base.rstrip(os.sep) + os.sep
            folders = [("" if d == base else d[len(prefix):].replace(os.sep, "/"))
                       for d in directories if d == base or d.startswith(prefix)]
            if folders:
                conditions.append(and_(Lora.root_id == root_id, Lora.folder.in_(folders)))
        if self.by_stored_root is not False:
            # the folder of a row found by its stored root is the directory's path relative to
            # any of its ancestors; rows of other directories are dropped below
            relative = set()
            for directory in directories:
                parts = directory.split(os.sep)
                relative.update("/".join(parts[i:]) for i in range(1, len(parts) + 1))
            in_folder = Lora.folder.in_(sorted(relative))
            conditions.append(in_folder if self.by_stored_root is None else and_(self.by_stored_root, in_folder))
        if not conditions:
            return {}
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(*self.COLUMNS).where(or_(*conditions), live())).all()
        # the hot path of a no-change rescan: key() inlined
        mounted_at, mounts = self.mounted_at, self.mounts
        index = {}
        for row in rows:
            root = mounted_at.get(row.root_id)
            # the common case first: the row was written by this machine (same folder path)
            index[row.path if root is None or root == row.root else path_to_db(mounts.local_path(row.root_id, row.relpath))] = row
        for stored in [path for path in index if not path.isascii()]:
            real = path_from_db(stored)
            if real != stored:
                index[real] = index.pop(stored)
        if self.by_stored_root is not False:  # rows found by a folder of the same name elsewhere
            index = {key: row for key, row in index.items() if key[:key.rfind(os.sep)] in directories}
        return index

    def with_identity(self, identities: set[tuple[int, int]], marker: float) -> Iterator[tuple[str, Any]]:
        """(path on this machine, row) of the rows with one of these (inode, size) that are not
        missing, or were marked missing by the scan whose marker this is."""
        columns = (*self.COLUMNS, Lora.missing_since)
        stmt = select(*columns).where(
            Lora.inode.in_(sorted({inode for inode, _size in identities})), live(), *self._scope(),
            or_(Lora.missing.is_(False), Lora.missing_since == marker)).order_by(Lora.id.desc())
        with self.db.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        for row in rows:
            if (row.inode, row.size) in identities:
                yield self.key(row), row

    def unlisted(self, listed: set[str]) -> Iterator:
        """Conditions selecting the rows of the folders not in ``listed``, a chunk of folders each."""
        if self.local_roots:  # the (root id, folder) index alone answers
            stmt = select(Lora.root_id, Lora.folder).where(Lora.root_id.in_(sorted(self.local_roots))).distinct()
            yield from self._unlisted(stmt, self.local_roots.__getitem__, Lora.root_id, [], listed)
        if self.by_stored_root is not False:
            stmt = select(Lora.root, Lora.folder).distinct()
            only = [] if self.by_stored_root is None else [self.by_stored_root]
            yield from self._unlisted(stmt.where(*only), lambda root: root, Lora.root, only, listed)

    def _unlisted(self, places, local_root: Callable[[str], str], column, only: list, listed: set[str]) -> Iterator:
        by_root: dict[str, list[str]] = {}
        with self.db.engine.connect() as conn:
            for root, folder in conn.execute(places):
                base = local_root(root)
                if (os.path.join(base, *folder.split("/")) if folder else base) not in listed:
                    by_root.setdefault(root, []).append(folder)
        for root, folders in by_root.items():
            for start in range(0, len(folders), BATCH):
                yield and_(column == root, Lora.folder.in_(folders[start:start + BATCH]), *only)

    def not_missing(self, condition, after: int) -> list[int]:
        """Ids of the next batch of live, not missing rows meeting ``condition``, in id order."""
        with self.db.engine.connect() as conn:
            return list(conn.scalars(select(Lora.id).where(condition, Lora.id > after, live(), Lora.missing.is_(False))
                                     .order_by(Lora.id).limit(BATCH)))


# Failures caused by what one row holds. Lost connections, locks and constraint races are not
# among them: those fail the scan (or are retried and handled where they happen, see _insert_new).
_ROW_ERRORS = (DataError, ValueError, OverflowError, UnicodeError)


def _one_line(error: BaseException) -> str:
    """The first line of a driver's message, without the SQL and parameters SQLAlchemy adds."""
    text = str(getattr(error, "orig", None) or error)
    return " ".join(text.splitlines()[:1])[:300]


class Pace:
    """How a scan's writes share the database: transactions of about ``WRITE_SECONDS`` (the
    slice size adapts to what the rows take and carries over from one call to the next, so a
    scan does not start every piece again from the smallest slice), and on SQLite, whose one
    write lock is all or nothing, at least ``WRITE_PAUSE`` between two of them, so writers in
    other processes get their turn. PostgreSQL locks rows, not the database: no pause there."""

    def __init__(self, pause: bool):
        self.size = 16
        self.pause = pause
        self._ended = float("-inf")

    def wait(self) -> None:
        """Before a transaction: let the lock rest if the last one ended just now."""
        rest = self._ended + WRITE_PAUSE - time.perf_counter() if self.pause else 0
        if rest > 0:
            time.sleep(rest)

    def took(self, seconds: float) -> None:
        """After a transaction: the next slice's size follows how long this one held the lock."""
        self._ended = time.perf_counter()
        if seconds > WRITE_SECONDS:
            self.size = max(1, self.size // 2)
        elif seconds < WRITE_SECONDS / 3:
            self.size = min(BATCH, self.size * 2)


def write_in_slices(db: Database, items: list, work: Callable[[Any, list], Any],
                    refused: Callable[[Any, BaseException], None] | None = None, pace: Pace | None = None) -> list:
    """``work(session, slice)`` over ``items`` in transactions paced by ``pace`` (a new Pace
    unless the caller carries one over several calls).

    The slice size adapts to the time a slice takes (files with large metadata or tag lists take
    longer), so the write lock is released often whatever the files; each transaction is re-run
    on a conflict (Database.transaction), so ``work`` must not change its arguments. A slice the
    database refuses for what a row holds is halved until the row is found, which goes to
    ``refused(item, error)`` (without it the error is raised): the rest of the slice is written."""
    if pace is None:
        pace = Pace(db.is_sqlite)
    results, start = [], 0
    while start < len(items):
        part = items[start:start + pace.size]
        took = [0.0]

        def timed(session, part=part, took=took):
            began = time.perf_counter()
            out = work(session, part)
            session.flush()
            took[0] = time.perf_counter() - began
            return out
        pace.wait()
        try:
            results.append(db.transaction(timed))
        except _ROW_ERRORS as e:
            if refused is None:
                raise
            if len(part) > 1:
                pace.size = max(1, len(part) // 2)
                continue
            refused(part[0], e)
            start += 1
            continue
        start += len(part)
        pace.took(took[0])
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
                   moves: dict[str, str], report: ScanReport, pace: Pace | None = None, *, bare: bool = False) -> None:
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
            report.skipped.append(f"{path}: cannot be stored in the database ({_one_line(error)})")
            return
        error_text = f"cannot store what the file holds: {_one_line(error)}"
        _write_changed(db, [unreadable(row.found, error_text)], indexed, moves, report, pace, bare=True)

    # rows in id order before tags: the order every writer locks in (no deadlocks on PostgreSQL)
    write_in_slices(db, sorted(updates, key=lambda u: u.id), _update_rows, refused, pace)
    added = sum(write_in_slices(db, inserts, _insert_rows, refused, pace))
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
        old_path = moves.get(found.path)
        row = indexed.get(old_path or found.path)
        values = {**columns, **head, **side, "scanned_at": now, "missing": False, "missing_since": None}
        if row is None:
            seeded = seeded_user_data(analysis.trigger_phrase, data)
            words = json.loads(seeded["trigger_words"]) if seeded.get("trigger_words") else []
            values.update(seeded)
            values.update(
                added_at=now, updated_at=now, base_model=base_models.effective(None, data.base_model, head["base_model_detected"]),
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
        session.execute(_INSERT_METADATA, meta_rows)
    refresh_search_text(session, ids)
    refresh_base_model(session, ids)


def _insert_rows(session, rows: list[_NewRow]) -> int:
    """Insert new rows with their metadata and tags; returns how many were inserted."""
    ids, kept = _insert_new(session, rows)
    meta_rows = [{"lora_id": i, "metadata_json": row.metadata_json} for i, row in zip(ids, kept) if row.metadata_json]
    if meta_rows:
        session.execute(_INSERT_METADATA, meta_rows)
    link_tags(session, [(i, row.tags) for i, row in zip(ids, kept) if row.tags])
    return len(ids)


_INSERT_LORA = insert(Lora.__table__).returning(Lora.__table__.c.id, sort_by_parameter_order=True)
_INSERT_METADATA = insert(LoraMetadata.__table__)


def _insert_new(session, rows: list[_NewRow]) -> tuple[list[int], list[_NewRow]]:
    """Insert new rows; rows whose path another process indexed meanwhile are left to it.

    Several SDNext machines can share one PostgreSQL library (and two processes one SQLite
    file): between our index load and this insert, another scanner may have added a file."""
    while rows:
        try:
            with session.begin_nested():
                return _insert_grouped(session, rows), rows
        except IntegrityError:
            taken = set(session.scalars(select(Lora.path).where(Lora.path.in_([r.values["path"] for r in rows]))))
            if not taken:
                raise
            rows = [r for r in rows if r.values["path"] not in taken]
    return [], []


def _insert_grouped(session, rows: list[_NewRow]) -> list[int]:
    """The new ids of ``rows``, in order. Core inserts, not the ORM's bulk insert (the same SQL,
    less Python per row); one executemany per set of columns, since a Core executemany takes the
    columns of its first row (seeded user fields differ from file to file)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(tuple(row.values), []).append(index)
    ids: list[int] = [0] * len(rows)
    for indexes in groups.values():
        got = session.execute(_INSERT_LORA, [rows[i].values for i in indexes]).scalars().all()
        for index, lora_id in zip(indexes, got, strict=True):
            ids[index] = lora_id
    return ids


def _write_sidecars(db: Database, batch: list[tuple[int, Found]], pace: Pace | None = None) -> None:
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
        write_in_slices(db, [(found, {"b_id": values["b_id"], **side})], work, pace=pace)
    write_in_slices(db, rows, work, refused, pace)


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


def effective_base_model():
    """base_models.effective over the columns: the user's choice, else a sidecar's unless the
    file names a narrower family of it (Pony under a sidecar's "SDXL"), else the file's."""
    narrower = or_(*(and_(Lora.base_model_sidecar == coarse, Lora.base_model_detected == specific)
                     for coarse, specific in base_models.REFINEMENTS))
    return case((Lora.base_model_user.is_not(None), Lora.base_model_user),
                (and_(Lora.base_model_sidecar.is_not(None), ~narrower), Lora.base_model_sidecar),
                else_=Lora.base_model_detected)


def refresh_base_model(session, ids: list[int]) -> None:
    """Derive the effective base model again after one of its three sources changed."""
    effective = effective_base_model()
    for start in range(0, len(ids), BATCH):
        session.execute(update(Lora).where(Lora.id.in_(ids[start:start + BATCH])).values(base_model=effective))
