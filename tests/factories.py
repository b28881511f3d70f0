"""Test factories: real LoRA files on disk and libraries on real databases.

Every library test runs on SQLite, and on PostgreSQL too when LORA_MANAGER_TEST_POSTGRES_URL is
set (CI sets it). Import the fixtures into a test module: ``from factories import library``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lib_lora_manager import synth
from lib_lora_manager.library import Library
from lib_lora_manager.models import Base

POSTGRES_URL = os.environ.get("LORA_MANAGER_TEST_POSTGRES_URL")


def reset_postgres(url: str) -> None:
    """Drop everything our schema creates, so each test starts from an empty database."""
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return None  # Library.open puts a SQLite file in the data folder
    if not POSTGRES_URL:
        pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def lora_dir(tmp_path) -> Path:
    path = tmp_path / "Lora"
    path.mkdir()
    return path


@pytest.fixture
def library(tmp_path, lora_dir, database_url, monkeypatch):
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    lib = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=database_url)
    yield lib
    lib.close()


def make_lora(directory: Path, name: str, family: str = "sd1", *, metadata: dict | None = None,
              data: str = "random", seed: int = 0, **kwargs) -> Path:
    """A real tiny .safetensors LoRA (rank 2) at directory/name.safetensors."""
    path = Path(directory) / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is None:
        metadata = synth.realistic_metadata(family, name, seed=seed)
    return synth.write_lora(path, family, rank=2, metadata=metadata, data=data, seed=seed, **kwargs)
