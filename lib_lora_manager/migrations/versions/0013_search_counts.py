"""search counts: a partial index of the LoRAs in the trash; SQLite's full-text tables rebuilt
with an end mark

SQLite counts a whole table from its b-tree pages without reading the entries (a few
milliseconds at 200,000 LoRAs where testing each entry takes tens): the LoRAs not in the trash
are counted as all LoRAs less those in it, which this index lists.

The full-text tables' copies of the text end with text_index.END, so that a two-character term
is looked up among the trigrams it begins (text_index.match): rebuilt with their triggers.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from lib_lora_manager import text_index

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TRASHED = sa.text('trashed_at IS NOT NULL')


def upgrade() -> None:
    op.create_index('ix_loras_trashed', 'loras', ['trashed_at'], unique=False,
                    sqlite_where=TRASHED, postgresql_where=TRASHED)
    if op.get_bind().dialect.name == 'sqlite':
        text_index.drop_sqlite(op.get_bind())
        text_index.sync(op.get_bind())


def downgrade() -> None:
    op.drop_index('ix_loras_trashed', table_name='loras')
    # the tables keep their end marks: revision 0012's code finds the same rows with them
