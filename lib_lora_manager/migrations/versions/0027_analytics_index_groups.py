"""the analytics index holds group_key too, so a window's or a History query's generations
(analytics.SCOPED, which tells a sweep's or an A/B comparison's runs apart) are copied from the
index alone, without reading the rows that hold the prompts

Revision ID: 0027
Revises: 0026
"""

from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

ANALYTICS = ['started_at', 'id', 'status', 'duration', 'model_name', 'width', 'height', 'steps', 'rating', 'favorite',
             'image_count', 'lora_count']


def upgrade() -> None:
    op.drop_index('ix_generations_analytics', table_name='generations')
    op.create_index('ix_generations_analytics', 'generations', [*ANALYTICS, 'group_key'])


def downgrade() -> None:
    op.drop_index('ix_generations_analytics', table_name='generations')
    op.create_index('ix_generations_analytics', 'generations', ANALYTICS)
