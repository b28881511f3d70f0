"""processes with heartbeats, job owners, the file-operation journal

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('processes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('heartbeat_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('file_operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=True),
    sa.Column('lora_id', sa.Integer(), nullable=True),
    sa.Column('plan', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('file_operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_file_operations_owner'), ['owner'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_owner'), ['owner'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_owner'))
        batch_op.drop_column('owner')
    with op.batch_alter_table('file_operations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_file_operations_owner'))
    op.drop_table('file_operations')
    op.drop_table('processes')
