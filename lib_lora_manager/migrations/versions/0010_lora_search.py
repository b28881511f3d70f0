"""library search on PostgreSQL: the id-set indexes of folder:, hashed: and error: carry
trashed_at (and the folder index the id), so a count or a negated term's set is read from the
index alone, not from a row per match (SQLite's indexes hold the rowid already: unchanged)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_ERROR = sa.text("error IS NOT NULL")
_UNHASHED = sa.text("sha256 IS NULL")


def _indexes(include: bool) -> None:
    for name in ("ix_loras_folder", "ix_loras_error", "ix_loras_unhashed"):
        op.drop_index(name, table_name='loras')
    op.create_index('ix_loras_folder', 'loras', ['folder'], unique=False, postgresql_ops={'folder': 'text_pattern_ops'},
                    postgresql_include=['trashed_at', 'id'] if include else [])
    op.create_index('ix_loras_error', 'loras', ['id'], unique=False, postgresql_where=_ERROR,
                    postgresql_include=['trashed_at'] if include else [])
    op.create_index('ix_loras_unhashed', 'loras', ['id'], unique=False, postgresql_where=_UNHASHED,
                    postgresql_include=['trashed_at'] if include else [])


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _indexes(include=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _indexes(include=False)
