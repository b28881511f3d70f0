"""history search: lower-cased prompts, sort by rating and duration, LoRA names case-insensitively

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), server_default='', nullable=False))
        batch_op.create_index('ix_generations_rating', ['rating'], unique=False)
        batch_op.create_index('ix_generations_duration', ['duration'], unique=False)
    op.create_index('ix_generation_loras_lower_name', 'generation_loras', [sa.text('lower(name)')], unique=False)
    # lower-cased in Python, as new rows are (SQLite's lower() knows only ASCII)
    generations = sa.table('generations', sa.column('id', sa.Integer), sa.column('prompt', sa.Text),
                           sa.column('negative_prompt', sa.Text), sa.column('search_text', sa.Text))
    bind = op.get_bind()
    rows = bind.execute(sa.select(generations.c.id, generations.c.prompt, generations.c.negative_prompt)).all()
    if rows:
        bind.execute(generations.update().where(generations.c.id == sa.bindparam('gid'))
                     .values(search_text=sa.bindparam('text')),
                     [{'gid': r.id, 'text': f"{r.prompt or ''}\n{r.negative_prompt or ''}".lower()} for r in rows])


def downgrade() -> None:
    op.drop_index('ix_generation_loras_lower_name', table_name='generation_loras')
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.drop_index('ix_generations_duration')
        batch_op.drop_index('ix_generations_rating')
        batch_op.drop_column('search_text')
