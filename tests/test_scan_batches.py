"""The scan works a group of folders at a time: the index it leaves does not depend on the group
size, and what it holds in memory does not grow with the library."""

from __future__ import annotations

import gc
import json
import os
import shutil
from pathlib import Path

import pytest
from factories import make_lora, reset_postgres
from sqlalchemy import select
from sqlalchemy.engine import Row

from lib_lora_manager import scanner
from lib_lora_manager.library import Library
from lib_lora_manager.models import Lora

FOLDERS = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3", "back"], "z": ["z1", "z2"], "gone": ["g1", "g2"],
           "nested": ["n1", "n2"], "nested/deep": ["d1", "d2"]}


def _play(base: Path, database_url: str | None) -> tuple[list[dict], list[dict]]:
    """A library through moves both ways between folders, a rename, a vanished folder and file,
    a file that comes back, a sidecar-only change, a rewritten file, a folder dropped from the
    library (one of its files moved into the library) and a library folder nested in another.
    Returns each scan's counts and every row at the end."""
    if database_url:
        reset_postgres(database_url)
    outer, extra = base / "Lora", base / "Extra"
    inner = outer / "nested"
    for n, (folder, stems) in enumerate(FOLDERS.items()):
        for i, stem in enumerate(stems):
            make_lora(outer / folder, stem, seed=10 * n + i)
    make_lora(extra, "x1", seed=90)
    make_lora(extra, "x2", seed=91)
    library = Library.open(str(base / "data"), roots=[str(outer), str(inner), str(extra)], database_url=database_url,
                           hashing=False)
    try:
        reports = [library.indexer.scan()]
        for rating, stem in enumerate(("a1", "a2", "z1", "n1", "x1", "back", "b2"), start=1):
            library.edit(library.find(stem).id, rating=rating % 5 + 1, tags=[stem])

        os.rename(outer / "a" / "a1.safetensors", outer / "a" / "a1_renamed.safetensors")
        os.rename(outer / "a" / "a2.safetensors", outer / "z" / "a2.safetensors")  # a -> z
        os.rename(outer / "z" / "z1.safetensors", outer / "a" / "z1.safetensors")  # z -> a: one of the two is met first
        os.rename(inner / "n1.safetensors", outer / "b" / "n1.safetensors")  # out of the nested library folder
        os.rename(extra / "x1.safetensors", outer / "z" / "x1.safetensors")  # from a folder about to leave the library
        shutil.rmtree(outer / "gone")
        os.rename(outer / "b" / "back.safetensors", base / "back.safetensors")
        (outer / "b" / "b2.civitai.info").write_text(json.dumps({"id": 1, "modelId": 2, "baseModel": "SDXL 1.0",
                                                                 "trainedWords": ["bee"]}))
        make_lora(outer / "b", "b3", "sdxl", seed=99)  # rewritten in place
        library.store.set_roots([str(outer), str(inner)])
        reports.append(library.indexer.scan())

        os.rename(base / "back.safetensors", outer / "b" / "back.safetensors")
        reports.append(library.indexer.scan())
        reports.append(library.indexer.scan())

        with library.store.db.read() as session:
            rows = session.scalars(select(Lora).order_by(Lora.id)).all()
            index = [{"id": r.id, "root": os.path.relpath(r.root, base), "relpath": r.relpath, "folder": r.folder,
                      "missing": r.missing, "rating": r.rating, "tags": [t.name for t in r.tags],
                      "base_model": r.base_model, "sidecars": r.sidecar_signature is not None, "size": r.size}
                     for r in rows]
    finally:
        library.close()
    counts = [{k: v for k, v in vars(r).items() if k not in ("seconds", "roots", "skipped", "folder_errors")}
              for r in reports]
    return counts, index


def test_a_tiny_batch_leaves_the_same_index(tmp_path, database_url, monkeypatch):
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    monkeypatch.setenv("LORA_MANAGER_MACHINE_ID", "one-machine")
    counts, index = _play(tmp_path / "default", database_url)
    monkeypatch.setattr(scanner, "BATCH", 2)  # every folder a group of its own
    tiny_counts, tiny_index = _play(tmp_path / "tiny", database_url)

    assert tiny_counts == counts
    assert tiny_index == index
    # and that index is the right one
    moves, back, again = counts[1:]
    assert (moves["moved"], moves["missing"], moves["added"]) == (5, 4, 0), moves  # gone/g1, g2, back, x2
    assert (back["returned"], back["missing"]) == (1, 0) and again["unchanged"] == again["files"] == 14
    rows = {row["relpath"]: row for row in index}
    assert len(rows) == len(index) == 17

    def user_view(relpath: str) -> tuple:
        row = rows[relpath]
        return row["folder"], row["missing"], row["rating"], row["tags"]
    assert user_view("a/a1_renamed.safetensors") == ("a", False, 2, ["a1"])
    assert user_view("z/a2.safetensors") == ("z", False, 3, ["a2"])
    assert user_view("a/z1.safetensors") == ("a", False, 4, ["z1"])
    assert user_view("b/n1.safetensors") == ("b", False, 5, ["n1"])
    assert user_view("z/x1.safetensors") == ("z", False, 1, ["x1"])
    assert user_view("b/back.safetensors") == ("b", False, 2, ["back"])
    assert rows["gone/g1.safetensors"]["missing"] and rows["gone/g2.safetensors"]["missing"]
    assert rows["x2.safetensors"]["missing"]  # its folder left the library
    assert rows["b/b2.safetensors"]["base_model"] == "sdxl" and rows["b/b2.safetensors"]["sidecars"]
    assert rows["b/b3.safetensors"]["base_model"] == "sdxl"


def _alive(kind: type) -> int:
    """Instances of ``kind`` made since gc.freeze() and still alive: the frozen objects (all
    that earlier tests left in this process) are neither collected again nor listed, so a
    count costs what the scan holds, not the whole test session's heap."""
    gc.collect()  # garbage the scan's postponed collector has not freed yet is not held
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


@pytest.mark.parametrize("scan", ["cold", "rescan"])
def test_a_scan_holds_a_batch_of_files_and_rows_not_the_library(library, lora_dir, monkeypatch, scan):
    """Found (a file to read) and rows of the index alive at any progress report, as the scan
    walks 40 folders of 2 files in groups of about 4 files: a group's worth, not 80."""
    monkeypatch.setattr(scanner, "BATCH", 4)
    for folder in range(40):
        for i in range(2):
            make_lora(lora_dir / f"f{folder:02}", f"l{folder}_{i}", seed=i)
    if scan == "rescan":
        library.indexer.scan()
    peaks = {"files": 0, "rows": 0, "reports": 0}

    def progress(_fraction: float, _message: str) -> None:
        peaks["files"] = max(peaks["files"], _alive(scanner.Found))
        peaks["rows"] = max(peaks["rows"], _alive(Row))
        peaks["reports"] += 1

    gc.collect()
    gc.freeze()  # what is alive now is not this scan's (and is not counted again at each report)
    try:
        report = library.indexer.scan(progress)
    finally:
        gc.unfreeze()

    assert report.files == 80 and (report.added if scan == "cold" else report.unchanged) == 80
    assert peaks["reports"] >= 20  # it was looked at all along the scan
    assert peaks["files"] <= 2 * scanner.BATCH, peaks
    assert peaks["rows"] <= 2 * scanner.BATCH, peaks


def test_the_report_keeps_the_first_skipped_lines_and_counts_them_all(library, lora_dir, monkeypatch):
    monkeypatch.setattr(scanner, "BATCH", 2)
    monkeypatch.setattr(scanner, "MAX_SKIPPED", 3)
    for folder in range(5):
        make_lora(lora_dir / f"f{folder}", "real", seed=folder)
        for i in range(2):
            (lora_dir / f"f{folder}" / f"dangling{i}.safetensors").symlink_to(lora_dir / "nowhere" / f"{folder}{i}")

    report = library.indexer.scan()

    assert report.added == 5 and report.skipped_count == 10 and len(report.skipped) == 3
    assert all("a link to something that is not there" in line for line in report.skipped)
    assert "10 skipped" in report.summary()


def test_a_stopped_scan_marks_nothing_it_did_not_list_missing(library, lora_dir, monkeypatch):
    monkeypatch.setattr(scanner, "BATCH", 2)
    for folder in range(4):
        make_lora(lora_dir / f"f{folder}", "one", seed=folder)
        make_lora(lora_dir / f"f{folder}", "two", seed=folder + 10)
    library.indexer.scan()
    asked = []

    def should_stop() -> bool:  # after the first group of folders
        asked.append(True)
        return len(asked) > 1

    report = scanner.scan(library.store.db, library.store.roots, mounts=library.store.mounts, should_stop=should_stop)

    assert report.unchanged == 2 and report.missing == 0
    assert library.search("missing:yes").total == 0 and library.search("").total == 8


def test_new_files_seeded_with_different_fields_in_one_write_keep_each_its_own(library, lora_dir):
    """New rows are inserted together whatever user fields their sidecars seed: each row keeps
    exactly its own values, and columns a file does not seed keep their defaults."""
    seeded = {
        "notes_only": {"notes": "only notes here"},
        "weight_only": {"preferred weight": 0.6},
        "everything": {"notes": "all of it", "preferred weight": 0.8, "activation text": "shiny armor"},
    }
    for name in ["plain1", *seeded, "plain2"]:
        make_lora(lora_dir, name, metadata={}, seed=len(name))  # no trigger phrase to seed
    for name, sidecar in seeded.items():
        (lora_dir / f"{name}.json").write_text(json.dumps(sidecar), encoding="utf-8")

    report = library.indexer.scan()

    assert report.added == 5 and report.errors == 0
    with library.store.db.read() as session:
        rows = {r.stem: r for r in session.execute(
            select(Lora.stem, Lora.notes, Lora.default_weight, Lora.trigger_words, Lora.path))}
    assert {stem: (r.notes, r.default_weight, r.trigger_words) for stem, r in rows.items()} == {
        "plain1": (None, None, None), "plain2": (None, None, None),
        "notes_only": ("only notes here", None, None),
        "weight_only": (None, 0.6, None),
        "everything": ("all of it", 0.8, json.dumps(["shiny armor"])),
    }
    assert all(r.path.endswith(f"{stem}.safetensors") for stem, r in rows.items())


class _Counted:
    """A Database whose transactions are counted (and run at once)."""

    def __init__(self, is_sqlite: bool):
        self.is_sqlite = is_sqlite
        self.transactions = 0

    def transaction(self, work):
        self.transactions += 1
        return work(_NoSession())


class _NoSession:
    def flush(self) -> None:
        pass


def test_a_scans_writes_keep_their_slice_size_from_piece_to_piece(monkeypatch):
    """The scan writes each piece of read files as it comes; starting every piece again at the
    smallest slice cost it two extra transactions and two pauses per piece."""
    monkeypatch.setattr(scanner.time, "sleep", lambda seconds: None)
    db = _Counted(is_sqlite=True)
    pace = scanner.Pace(pause=True)
    scanner.write_in_slices(db, list(range(100)), lambda session, part: len(part), pace=pace)
    first = db.transactions
    scanner.write_in_slices(db, list(range(100)), lambda session, part: len(part), pace=pace)
    assert first == 3 and db.transactions - first == 1  # 16 + 32 + 52, then all 100 at once


def test_the_pause_between_writes_is_for_sqlite_and_only_when_no_gap_was_left(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(scanner.time, "sleep", slept.append)
    sqlite = scanner.Pace(pause=True)
    sqlite.wait()
    assert slept == []  # nothing written yet
    sqlite.took(0.01)
    sqlite.wait()
    assert len(slept) == 1 and 0 < slept[0] <= scanner.WRITE_PAUSE  # back to back: the lock rests first
    postgres = scanner.Pace(pause=False)
    postgres.took(0.01)
    postgres.wait()
    assert len(slept) == 1  # rows are locked, not the database
    monkeypatch.setattr(scanner.time, "perf_counter", lambda: 1e9)  # long after the last write
    sqlite.wait()
    assert len(slept) == 1
