"""recommendations: LoRA text embeddings (model, text hash, float16 vector) and feedback on
recommendations

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'lora_embeddings',
        sa.Column('lora_id', sa.Integer(), nullable=False),
        sa.Column('model', sa.Text(), nullable=False),
        sa.Column('text_hash', sa.String(length=64), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('lora_id'),
    )
    op.create_table(
        'recommendation_feedback',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('context', sa.String(length=64), nullable=False),
        sa.Column('lora_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('recommendation_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_recommendation_feedback_context', ['context', 'lora_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recommendation_feedback_lora_id'), ['lora_id'], unique=False)


def downgrade() -> None:
    op.drop_table('recommendation_feedback')
    op.drop_table('lora_embeddings')
