"""Alembic environment: always run by db.Database.migrate with an open connection."""

from alembic import context

from lib_lora_manager import text_index
from lib_lora_manager.models import Base


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate leaves the full-text tables and indexes alone: text_index.py keeps them."""
    return not (name and text_index.owns(name))


connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
