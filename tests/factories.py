"""Test factories: real LoRA files on disk, and the PostgreSQL test database.

The fixtures built on these (``library``, ``lora_dir``, ``database_url``) are in conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

from lib_lora_manager import synth, text_index
from lib_lora_manager.db import MIGRATIONS_DIR, Database
from lib_lora_manager.models import Base

POSTGRES_URL = os.environ.get("LORA_MANAGER_TEST_POSTGRES_URL")


def reset_postgres(url: str) -> None:
    """Drop everything our schema creates, so each test starts from an empty database."""
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        text_index.drop_postgresql(conn)  # the copies of the text are not models
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def migrate_to(db: Database, revision: str) -> None:
    """Bring an empty database to ``revision`` only, as a database made by an older release has it."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db._write_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def make_lora(directory: Path, name: str, family: str = "sd1", *, metadata: dict | None = None,
              data: str = "random", seed: int = 0, **kwargs) -> Path:
    """A real tiny .safetensors LoRA (rank 2) at directory/name.safetensors."""
    path = Path(directory) / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is None:
        metadata = synth.realistic_metadata(family, name, seed=seed)
    return synth.write_lora(path, family, rank=2, metadata=metadata, data=data, seed=seed, **kwargs)
