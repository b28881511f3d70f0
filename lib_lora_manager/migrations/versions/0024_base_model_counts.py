"""base model counts: on SQLite a partial index of the live LoRAs by base model, type and
favourite, then every other column a filter tests, so "base:" (beside "type:" and "fav:") is
counted in its range of entries rather than by testing every LoRA

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

_LIVE = sa.text("trashed_at IS NULL")
# as in models.py at this revision
COLUMNS = ('base_model', 'adapter_type', 'favorite', 'trashed_at', 'rating', 'nsfw', 'missing', 'use_count',
           'last_used_at', 'added_at', 'mtime')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.create_index('ix_loras_base_filters', 'loras', list(COLUMNS), unique=False, sqlite_where=_LIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_index('ix_loras_base_filters', table_name='loras')
