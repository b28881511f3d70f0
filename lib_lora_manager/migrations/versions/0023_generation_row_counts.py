"""generation row counts: each generation's image and LoRA rows counted on the generation (set
when it is recorded; they never change after), and the analytics index holding them, so the
Analytics tab sums a window's images and LoRA rows from that index alone

Revision ID: 0023
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0020'
branch_labels = None
depends_on = None

ANALYTICS = ['started_at', 'id', 'status', 'duration', 'model_name', 'width', 'height', 'steps', 'rating', 'favorite']


def upgrade() -> None:
    with op.batch_alter_table('generations') as batch:
        batch.add_column(sa.Column('image_count', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('lora_count', sa.Integer(), server_default='0', nullable=False))
    # the counts of the generations recorded before, from their rows (through the generation_id
    # indexes; no UPDATE … FROM, which older SQLite builds lack)
    op.execute("UPDATE generations SET "
               "image_count = (SELECT count(*) FROM generation_images WHERE generation_id = generations.id), "
               "lora_count = (SELECT count(*) FROM generation_loras WHERE generation_id = generations.id)")
    op.drop_index('ix_generations_analytics', table_name='generations')
    op.create_index('ix_generations_analytics', 'generations', [*ANALYTICS, 'image_count', 'lora_count'])


def downgrade() -> None:
    op.drop_index('ix_generations_analytics', table_name='generations')
    op.create_index('ix_generations_analytics', 'generations', ANALYTICS)
    with op.batch_alter_table('generations') as batch:
        batch.drop_column('lora_count')
        batch.drop_column('image_count')
