"""negated set counts: the LoRAs of a tag listed from one index (tag, LoRA), and on SQLite the
live LoRAs by id with every column a filter tests, so "-tag:x" beside other filters is counted
as those filters' count less the tag's LoRAs among them, each found by one seek

Revision ID: 0019
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op


revision = '0019'
down_revision = '0016'
branch_labels = None
depends_on = None

_LIVE = sa.text("trashed_at IS NULL")
# as in models.py at this revision
LORA_FILTERS = ('base_model', 'adapter_type', 'favorite', 'rating', 'nsfw', 'missing', 'use_count',
                'last_used_at', 'added_at', 'mtime')


def upgrade() -> None:
    op.drop_index('ix_lora_tags_tag_id', table_name='lora_tags')
    op.create_index('ix_lora_tags_tag_id_lora_id', 'lora_tags', ['tag_id', 'lora_id'], unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        op.create_index('ix_loras_live_filters', 'loras', ['trashed_at', 'id', *LORA_FILTERS], unique=False,
                        sqlite_where=_LIVE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.drop_index('ix_loras_live_filters', table_name='loras')
    op.drop_index('ix_lora_tags_tag_id_lora_id', table_name='lora_tags')
    op.create_index('ix_lora_tags_tag_id', 'lora_tags', ['tag_id'], unique=False)
