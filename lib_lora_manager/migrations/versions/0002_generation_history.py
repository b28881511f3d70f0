"""generation history

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('generations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('negative_prompt', sa.Text(), nullable=False),
    sa.Column('seeds', sa.Text(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('sampler', sa.Text(), nullable=True),
    sa.Column('cfg_scale', sa.Float(), nullable=True),
    sa.Column('model_name', sa.Text(), nullable=True),
    sa.Column('model_hash', sa.String(length=64), nullable=True),
    sa.Column('infotext', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('favorite', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generations_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_generations_status'), ['status'], unique=False)

    op.create_table('generation_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('thumbnail', sa.Text(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('generation_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generation_images_generation_id'), ['generation_id'], unique=False)

    op.create_table('generation_loras',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('lora_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('te_weight', sa.Float(), nullable=True),
    sa.Column('unet_weight', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('generation_loras', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generation_loras_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generation_loras_lora_id'), ['lora_id'], unique=False)

    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('use_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_used_at', sa.Float(), nullable=True))
        batch_op.create_index('ix_loras_live_last_used_at', ['last_used_at'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index('ix_loras_live_use_count', ['use_count'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_live_use_count', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_live_last_used_at', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('use_count')

    with op.batch_alter_table('generation_loras', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generation_loras_lora_id'))
        batch_op.drop_index(batch_op.f('ix_generation_loras_generation_id'))

    op.drop_table('generation_loras')
    with op.batch_alter_table('generation_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generation_images_generation_id'))

    op.drop_table('generation_images')
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generations_status'))
        batch_op.drop_index(batch_op.f('ix_generations_started_at'))

    op.drop_table('generations')
