"""initial schema

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('loras',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('root', sa.Text(), nullable=False),
    sa.Column('relpath', sa.Text(), nullable=False),
    sa.Column('folder', sa.Text(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('stem', sa.Text(), nullable=False),
    sa.Column('sdnext_name', sa.Text(), nullable=False),
    sa.Column('sort_name', sa.Text(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('mtime', sa.Float(), nullable=False),
    sa.Column('inode', sa.BigInteger(), nullable=True),
    sa.Column('added_at', sa.Float(), nullable=False),
    sa.Column('scanned_at', sa.Float(), nullable=False),
    sa.Column('missing', sa.Boolean(), nullable=False),
    sa.Column('missing_since', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('header_size', sa.BigInteger(), nullable=True),
    sa.Column('sidecar_signature', sa.Text(), nullable=True),
    sa.Column('base_model_detected', sa.String(length=32), nullable=False),
    sa.Column('base_model_source', sa.String(length=16), nullable=False),
    sa.Column('base_model_sidecar', sa.String(length=32), nullable=True),
    sa.Column('adapter_type', sa.String(length=16), nullable=False),
    sa.Column('network_module', sa.Text(), nullable=True),
    sa.Column('network_dim', sa.Integer(), nullable=True),
    sa.Column('network_alpha', sa.Float(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('output_name', sa.Text(), nullable=True),
    sa.Column('training_model', sa.Text(), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('epochs', sa.Integer(), nullable=True),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('architecture', sa.Text(), nullable=True),
    sa.Column('trigger_suggestions', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('sidecar_preview', sa.Text(), nullable=True),
    sa.Column('embedded_preview', sa.Text(), nullable=True),
    sa.Column('civitai', sa.Text(), nullable=True),
    sa.Column('sidecar_errors', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('addnet_hash', sa.String(length=64), nullable=True),
    sa.Column('hashed_mtime_ns', sa.BigInteger(), nullable=True),
    sa.Column('hash_error', sa.Text(), nullable=True),
    sa.Column('base_model', sa.String(length=32), nullable=False),
    sa.Column('base_model_user', sa.String(length=32), nullable=True),
    sa.Column('display_name', sa.Text(), nullable=True),
    sa.Column('favorite', sa.Boolean(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('nsfw', sa.Boolean(), nullable=False),
    sa.Column('trigger_words', sa.Text(), nullable=True),
    sa.Column('default_weight', sa.Float(), nullable=True),
    sa.Column('weight_min', sa.Float(), nullable=True),
    sa.Column('weight_max', sa.Float(), nullable=True),
    sa.Column('preview_user', sa.Text(), nullable=True),
    sa.Column('trashed_at', sa.Float(), nullable=True),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loras_addnet_hash'), ['addnet_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_loras_folder'), ['folder'], unique=False)
        batch_op.create_index('ix_loras_inode_size', ['inode', 'size'], unique=False)
        batch_op.create_index('ix_loras_live_added_at', ['added_at'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index('ix_loras_live_mtime', ['mtime'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index('ix_loras_live_rating', ['rating'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index('ix_loras_live_size', ['size'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index('ix_loras_live_sort_name', ['sort_name'], unique=False, sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.create_index(batch_op.f('ix_loras_sdnext_name'), ['sdnext_name'], unique=False)
        batch_op.create_index('ix_loras_sha256_state', ['sha256', 'missing', 'trashed_at'], unique=False)
        batch_op.create_index('ix_loras_stem', ['stem'], unique=False)

    op.create_table('state',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('lora_metadata',
    sa.Column('lora_id', sa.Integer(), nullable=False),
    sa.Column('metadata_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('lora_id')
    )
    op.create_table('lora_tags',
    sa.Column('lora_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('lora_id', 'tag_id')
    )
    with op.batch_alter_table('lora_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lora_tags_tag_id'), ['tag_id'], unique=False)

    op.create_table('trash_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=False),
    sa.Column('lora_id', sa.Integer(), nullable=True),
    sa.Column('original_path', sa.Text(), nullable=False),
    sa.Column('trash_path', sa.Text(), nullable=False),
    sa.Column('trashed_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['lora_id'], ['loras.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trash_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trash_items_batch'), ['batch'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trash_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trash_items_batch'))

    op.drop_table('trash_items')
    with op.batch_alter_table('lora_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lora_tags_tag_id'))

    op.drop_table('lora_tags')
    op.drop_table('lora_metadata')
    op.drop_table('tags')
    op.drop_table('state')
    with op.batch_alter_table('loras', schema=None) as batch_op:
        batch_op.drop_index('ix_loras_stem')
        batch_op.drop_index('ix_loras_sha256_state')
        batch_op.drop_index(batch_op.f('ix_loras_sdnext_name'))
        batch_op.drop_index('ix_loras_live_sort_name', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_live_size', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_live_rating', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_live_mtime', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_live_added_at', sqlite_where=sa.text('trashed_at IS NULL'), postgresql_where=sa.text('trashed_at IS NULL'))
        batch_op.drop_index('ix_loras_inode_size')
        batch_op.drop_index(batch_op.f('ix_loras_folder'))
        batch_op.drop_index(batch_op.f('ix_loras_addnet_hash'))

    op.drop_table('loras')
