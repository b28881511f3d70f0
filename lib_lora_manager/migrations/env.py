"""Alembic environment: always run by db.Database.migrate with an open connection."""

from alembic import context

from lib_lora_manager import text_index
from lib_lora_manager.models import Base, on_dialect


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate leaves the full-text tables and indexes alone: text_index.py keeps them."""
    return not (name and text_index.owns(name))


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate leaves another dialect's indexes alone (models.on_dialect)."""
    return type_ != "index" or reflected or on_dialect(obj, connection.dialect.name)


connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  include_name=include_name, include_object=include_object)
with context.begin_transaction():
    context.run_migrations()
