"""history search: an index of model names (model: finds the few in use and their generations),
and on PostgreSQL page indexes for the descending sorts that keep NULLs last and the narrow copy
of the history's text that free text is counted in (text_index.py)

PostgreSQL walks an ascending index backwards as DESC NULLS FIRST; "sort:-rating" and
"sort:-duration" put unrated and untimed generations last, so without an index in that order
every page sorted all the matches.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from lib_lora_manager import text_index


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# as in models.py at this revision
NULLABLE_SORTS = ('rating', 'duration')
GENERATION_FILTERS = ('started_at', 'status', 'source', 'rating', 'favorite', 'group_key', 'model_name', 'model_hash')


def upgrade() -> None:
    op.create_index('ix_generations_model_name', 'generations', ['model_name'], unique=False)
    if op.get_bind().dialect.name != 'postgresql':
        return
    for column in NULLABLE_SORTS:
        op.create_index(f'ix_generations_page_{column}_desc', 'generations',
                        [sa.text(f'{column} DESC NULLS LAST'), sa.text('id DESC'),
                         *(c for c in GENERATION_FILTERS if c != column)], unique=False)
    # the copy, filled from the rows already there, its triggers and its trigram index (the one
    # on generations goes); every later open checks them again (text_index.sync)
    text_index.sync(op.get_bind())


def downgrade() -> None:
    op.drop_index('ix_generations_model_name', table_name='generations')
    if op.get_bind().dialect.name != 'postgresql':
        return
    # the copy and its index go; revision 0011's code indexes generations itself at its next open
    for copy in text_index.COPIED.values():
        op.execute(f"DROP TABLE IF EXISTS {copy}")
        op.execute(f"DROP FUNCTION IF EXISTS {copy}_kept() CASCADE")
    for column in NULLABLE_SORTS:
        op.drop_index(f'ix_generations_page_{column}_desc', table_name='generations')
