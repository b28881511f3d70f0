"""Two machines share one library database and mount the same LoRA folder at different paths.

Each "machine" is a Library with its own data folder (so its own machine id) over one database:
PostgreSQL as in real use, and a SQLite file opened by both as the same case on one disk. The
shared folder is copied with its file times, as a NAS looks from two mount points."""

from __future__ import annotations

import os
import shutil

import pytest
from factories import POSTGRES_URL, make_lora, reset_postgres

from lib_lora_manager.db import sqlite_url
from lib_lora_manager.library import Library

pytestmark = pytest.mark.faults


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request, tmp_path):
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "shared.db")
    if not POSTGRES_URL:
        pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def machines(tmp_path, shared_url, monkeypatch):
    """(open_a, open_b, folder_a, folder_b): the same LoRAs seen at two mount paths."""
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    monkeypatch.delenv("LORA_MANAGER_MACHINE_ID", raising=False)
    folder_a = tmp_path / "mnt" / "nas" / "loras"
    for i in range(6):
        make_lora(folder_a / ("styles" if i % 2 else ""), f"shared_{i}", seed=i)
    folder_b = tmp_path / "media" / "loras"
    shutil.copytree(folder_a, folder_b)  # copy2 keeps sizes and mtimes: one folder, two paths
    opened: list[Library] = []

    def open_as(name: str, *roots):
        library = Library.open(str(tmp_path / f"data-{name}"), roots=[str(r) for r in roots], database_url=shared_url,
                               hashing=False)
        opened.append(library)
        return library

    yield open_as, folder_a, folder_b
    for library in opened:
        library.close()


def _live_missing(library: Library) -> tuple[int, int]:
    return library.search("").total, library.search("missing:yes").total


def test_machines_with_different_mount_paths_never_mark_each_other_missing(machines):
    open_as, folder_a, folder_b = machines
    a = open_as("a", folder_a)
    first = a.indexer.scan()
    assert first.added == 6
    rated = a.find("shared_3")
    a.edit(rated.id, rating=5, tags=["nas"])

    b = open_as("b", folder_b)
    seen_by_b = b.indexer.scan()
    assert (seen_by_b.added, seen_by_b.missing) == (0, 0), seen_by_b.summary()
    assert _live_missing(b) == (6, 0)
    again = a.indexer.scan()
    assert (again.added, again.missing, again.unchanged) == (0, 0, 6), again.summary()
    assert _live_missing(a) == (6, 0)
    # one row per file, the user data shared; each machine sees the file at its own path
    detail_b = b.get(rated.id)
    assert detail_b.rating == 5 and detail_b.tags == ["nas"]
    assert detail_b.path == os.path.join(str(folder_b), "styles", "shared_3.safetensors")
    assert a.get(rated.id).path == os.path.join(str(folder_a), "styles", "shared_3.safetensors")


def test_each_machine_hashes_and_reads_the_files_at_its_own_path(machines):
    open_as, folder_a, folder_b = machines
    a = open_as("a", folder_a)
    a.indexer.scan()
    shutil.rmtree(folder_a)  # machine A is offline; B still sees the folder
    b = open_as("b", folder_b)
    b.indexer.scan()
    assert b.indexer.hash_pending() == 6
    assert b.search("hashed:no").total == 0
    lora = b.find("shared_0")
    assert b.files.raw_header(lora.id)["__metadata__"]


def test_a_folder_only_one_machine_mounts_is_judged_by_that_machine_alone(machines, tmp_path):
    open_as, folder_a, folder_b = machines
    own_b = tmp_path / "b-only"
    make_lora(own_b, "b_private", seed=40)
    b = open_as("b", folder_b, own_b)
    assert b.indexer.scan().added == 7
    a = open_as("a", folder_a)
    report = a.indexer.scan()
    assert (report.added, report.missing) == (0, 0), report.summary()
    assert a.search("missing:yes").total == 0

    os.remove(folder_b / "shared_0.safetensors")  # gone from the shared folder, as B sees it
    assert b.indexer.scan().missing == 1
    assert b.search("missing:yes").total == 1


def test_same_path_with_different_files_is_another_folder(machines, tmp_path):
    """Two machines each with their own local folder at the same path: not one folder."""
    open_as, folder_a, _folder_b = machines
    a = open_as("a", folder_a)
    a.indexer.scan()
    a.close()
    moved = tmp_path / "elsewhere"
    shutil.move(str(folder_a), moved)  # machine B's disk at that path holds other LoRAs
    make_lora(folder_a, "b_local_1", seed=50)
    make_lora(folder_a, "b_local_2", seed=51)
    b = open_as("b", folder_a)
    report = b.indexer.scan()
    assert (report.added, report.missing) == (2, 0), report.summary()
    assert b.search("").total == 8
