"""search: page indexes that hold every filtered column, and full-text indexes for free text

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa

from lib_lora_manager import text_index


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LIVE = sa.text('trashed_at IS NULL')
OLD_LORA_SORTS = ('sort_name', 'added_at', 'mtime', 'size', 'rating', 'last_used_at', 'use_count')
# as in models.py at this revision
LORA_SORTS = ('sort_name', 'added_at', 'mtime', 'size', 'rating', 'last_used_at', 'use_count')
LORA_FILTERS = ('base_model', 'adapter_type', 'favorite', 'rating', 'nsfw', 'missing', 'use_count',
                'last_used_at', 'added_at', 'mtime')
GENERATION_SORTS = ('started_at', 'rating', 'duration')
GENERATION_FILTERS = ('started_at', 'status', 'source', 'rating', 'favorite', 'group_key', 'model_name', 'model_hash')


def upgrade() -> None:
    with op.batch_alter_table('loras', schema=None) as batch_op:
        for column in OLD_LORA_SORTS:
            batch_op.drop_index(f'ix_loras_live_{column}', sqlite_where=LIVE, postgresql_where=LIVE)
        for column in LORA_SORTS:
            batch_op.create_index(f'ix_loras_page_{column}', [column, 'id', 'trashed_at', *(c for c in LORA_FILTERS if c != column)],
                                  unique=False, sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.create_index('ix_loras_live', ['trashed_at'], unique=False, sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.drop_index('ix_loras_folder')
        batch_op.create_index('ix_loras_folder', ['folder'], unique=False, postgresql_ops={'folder': 'text_pattern_ops'})
        error = sa.text('error IS NOT NULL')
        batch_op.create_index('ix_loras_error', ['id'], unique=False, sqlite_where=error, postgresql_where=error)
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_index('ix_generations_rating')
        batch_op.drop_index('ix_generations_duration')
        for column in GENERATION_SORTS:
            batch_op.create_index(f'ix_generations_page_{column}', [column, 'id', *(c for c in GENERATION_FILTERS if c != column)],
                                  unique=False)
    # the full-text tables (SQLite) or trigram indexes (PostgreSQL) this engine supports, filled
    # from the rows already there; every later open checks them again (text_index.sync)
    text_index.sync(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        text_index.drop_sqlite(bind)
    else:
        text_index.drop_postgresql(bind)
    with op.batch_alter_table('generations', schema=None) as batch_op:
        for column in GENERATION_SORTS:
            batch_op.drop_index(f'ix_generations_page_{column}')
        batch_op.create_index('ix_generations_duration', ['duration'], unique=False)
        batch_op.create_index('ix_generations_rating', ['rating'], unique=False)
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_error', sqlite_where=sa.text('error IS NOT NULL'),
                            postgresql_where=sa.text('error IS NOT NULL'))
        batch_op.drop_index('ix_loras_live', sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.drop_index('ix_loras_folder')
        batch_op.create_index('ix_loras_folder', ['folder'], unique=False)
        for column in LORA_SORTS:
            batch_op.drop_index(f'ix_loras_page_{column}', sqlite_where=LIVE, postgresql_where=LIVE)
        for column in OLD_LORA_SORTS:
            batch_op.create_index(f'ix_loras_live_{column}', [column], unique=False, sqlite_where=LIVE, postgresql_where=LIVE)
