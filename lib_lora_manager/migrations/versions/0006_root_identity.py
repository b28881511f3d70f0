"""library folders with an identity independent of each machine's mount path

Revision ID: 0006
Revises: 0005
"""

import time
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('library_roots',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('root_mounts',
    sa.Column('machine', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('root_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['root_id'], ['library_roots.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('machine', 'path')
    )
    with op.batch_alter_table('root_mounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_root_mounts_root_id'), ['root_id'], unique=False)
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.add_column(sa.Column('root_id', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_loras_root_id_relpath', ['root_id', 'relpath'], unique=False)

    # every folder indexed so far becomes a root, mounted at its path by any machine ("*"): the
    # first machine that opens the library with that path takes it over (roots.py)
    bind = op.get_bind()
    loras = sa.table('loras', sa.column('root', sa.Text), sa.column('root_id', sa.String))
    roots = sa.table('library_roots', sa.column('id', sa.String), sa.column('name', sa.Text),
                     sa.column('created_at', sa.Float))
    mounts = sa.table('root_mounts', sa.column('machine', sa.String), sa.column('path', sa.Text),
                      sa.column('root_id', sa.String))
    for (path,) in bind.execute(sa.select(loras.c.root).distinct()).all():
        root_id = uuid.uuid4().hex
        name = path.rstrip('/\\').replace('\\', '/').rsplit('/', 1)[-1] or path
        bind.execute(roots.insert().values(id=root_id, name=name, created_at=time.time()))
        bind.execute(mounts.insert().values(machine='*', path=path, root_id=root_id))
        bind.execute(loras.update().where(loras.c.root == path).values(root_id=root_id))


def downgrade() -> None:
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_root_id_relpath')
        batch_op.drop_column('root_id')
    with op.batch_alter_table('root_mounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_root_mounts_root_id'))
    op.drop_table('root_mounts')
    op.drop_table('library_roots')
