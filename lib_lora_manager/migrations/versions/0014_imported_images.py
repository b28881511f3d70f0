"""imported images: the files an import read (path, size, mtime, outcome, the generation it
became), and a missing flag on history images whose file vanished

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op



revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'imported_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('generation_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('path'),
    )
    with op.batch_alter_table('imported_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_imported_images_generation_id'), ['generation_id'], unique=False)
    with op.batch_alter_table('generation_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('missing', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('generation_images', schema=None) as batch_op:
        batch_op.drop_column('missing')
    with op.batch_alter_table('imported_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_imported_images_generation_id'))
    op.drop_table('imported_images')
