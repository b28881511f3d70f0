"""unhashed counts: on SQLite a partial index of the LoRAs without a hash that holds every
column a filter tests, so "hashed:" beside other filters is counted in those entries alone

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_UNHASHED = sa.text("sha256 IS NULL")
# as in models.py at this revision
LORA_FILTERS = ('base_model', 'adapter_type', 'favorite', 'rating', 'nsfw', 'missing', 'use_count',
                'last_used_at', 'added_at', 'mtime')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.create_index('ix_loras_unhashed_filters', 'loras', ['trashed_at', 'id', 'sha256', *LORA_FILTERS], unique=False,
                        sqlite_where=_UNHASHED)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_index('ix_loras_unhashed_filters', table_name='loras')
