"""analytics indexes: the generations' and their LoRA rows' columns analytics copies for a
window, readable from the indexes alone

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_generations_analytics', 'generations',
                    ['started_at', 'id', 'status', 'duration', 'model_name', 'width', 'height', 'steps', 'rating', 'favorite'])
    op.create_index('ix_generation_loras_analytics', 'generation_loras',
                    ['generation_id', 'id', 'lora_id', 'te_weight', 'unet_weight'])


def downgrade() -> None:
    op.drop_index('ix_generation_loras_analytics', table_name='generation_loras')
    op.drop_index('ix_generations_analytics', table_name='generations')
