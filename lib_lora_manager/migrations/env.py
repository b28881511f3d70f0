"""Alembic environment: always run by db.Database.migrate with an open connection."""

from alembic import context

from lib_lora_manager.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
