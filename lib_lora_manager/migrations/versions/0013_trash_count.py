"""trash count: a partial index of the LoRAs in the trash

SQLite counts a whole table from its b-tree pages without reading the entries (a few
milliseconds at 200,000 LoRAs where testing each entry takes tens): the LoRAs not in the trash
are counted as all LoRAs less those in it, which this index lists.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TRASHED = sa.text('trashed_at IS NOT NULL')


def upgrade() -> None:
    op.create_index('ix_loras_trashed', 'loras', ['trashed_at'], unique=False,
                    sqlite_where=TRASHED, postgresql_where=TRASHED)


def downgrade() -> None:
    op.drop_index('ix_loras_trashed', table_name='loras')
