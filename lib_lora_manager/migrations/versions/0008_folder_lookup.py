"""the scanner looks rows up a group of folders at a time: an index on (root_id, folder)

Revision ID: 0008
Revises: 0006
"""

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.create_index('ix_loras_root_id_folder', ['root_id', 'folder'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_root_id_folder')
