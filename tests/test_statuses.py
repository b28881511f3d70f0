"""Status words (statuses.py): the strings the database holds and REST returns stay as they were,
and a member is stored as its plain string."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.history import GenerationRecord
from lib_lora_manager.statuses import FileOperationKind, GenerationSource, GenerationStatus, JobKind, JobStatus


def test_the_words_are_the_stored_ones():
    assert list(GenerationStatus) == ["succeeded", "interrupted", "failed", "no_model"]
    assert list(JobStatus) == ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
    assert list(JobKind) == ["generate", "sweep", "ab"]
    assert list(GenerationSource) == ["txt2img", "img2img", "control", "video", "api", "lora-manager", "imported"]
    assert list(FileOperationKind) == ["move", "trash", "restore"]
    assert f"{GenerationStatus.NO_MODEL}" == str(GenerationStatus.NO_MODEL) == "no_model"


def test_a_member_is_stored_as_its_string(library):
    generation_id = library.history.record(GenerationRecord(
        started_at=time.time(), status=GenerationStatus.NO_MODEL, source=GenerationSource.LORA_MANAGER, prompt="x"))
    with library.store.db.read() as session:
        row = session.execute(text("SELECT status, source FROM generations WHERE id = :id"), {"id": generation_id}).one()
    assert tuple(row) == ("no_model", "lora-manager") and type(row[0]) is str
    assert [i.id for i in library.history.search("status:nomodel source:lm").items] == [generation_id]
    known = "succeeded, interrupted, failed, no_model"
    with pytest.raises(InvalidInput, match=f"^unknown generation status “done” \\(known: {known}\\)$"):
        library.history.record(GenerationRecord(started_at=time.time(), status="done"))


def test_the_ui_imports_them_without_sqlalchemy():
    repo = Path(__file__).resolve().parents[1]
    code = ("import sys; import lib_lora_manager.statuses, lib_lora_manager.ui.history_cards; "
            "print(any(m.startswith('sqlalchemy') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["False"], proc.stderr
