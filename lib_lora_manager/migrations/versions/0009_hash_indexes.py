"""hashed: and dupe: without reading every hash: the ids of rows without a hash in an index of
their own, and the copies of each hash (among rows present and not in the trash) in a table the
database keeps in step by triggers

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_UNHASHED = sa.text("sha256 IS NULL")
_SHARED = sa.text("copies > 1")

# a row counts when it has a hash, its file is present and it is not in the trash
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER loras_hash_copies_ai AFTER INSERT ON loras "
    "WHEN new.sha256 IS NOT NULL AND new.missing = 0 AND new.trashed_at IS NULL BEGIN "
    "INSERT INTO lora_hash_copies (sha256, copies) VALUES (new.sha256, 1) "
    "ON CONFLICT (sha256) DO UPDATE SET copies = copies + 1; END",
    "CREATE TRIGGER loras_hash_copies_ad AFTER DELETE ON loras "
    "WHEN old.sha256 IS NOT NULL AND old.missing = 0 AND old.trashed_at IS NULL BEGIN "
    "UPDATE lora_hash_copies SET copies = copies - 1 WHERE sha256 = old.sha256; "
    "DELETE FROM lora_hash_copies WHERE sha256 = old.sha256 AND copies <= 0; END",
    # a scan rewrites rows without changing these: such an update leaves the copies alone
    "CREATE TRIGGER loras_hash_copies_au AFTER UPDATE OF sha256, missing, trashed_at ON loras "
    "WHEN old.sha256 IS NOT new.sha256 OR old.missing IS NOT new.missing OR old.trashed_at IS NOT new.trashed_at BEGIN "
    "UPDATE lora_hash_copies SET copies = copies - 1 "
    "WHERE sha256 = old.sha256 AND old.missing = 0 AND old.trashed_at IS NULL; "
    "DELETE FROM lora_hash_copies WHERE sha256 = old.sha256 AND copies <= 0; "
    "INSERT INTO lora_hash_copies (sha256, copies) SELECT new.sha256, 1 "
    "WHERE new.sha256 IS NOT NULL AND new.missing = 0 AND new.trashed_at IS NULL "
    "ON CONFLICT (sha256) DO UPDATE SET copies = copies + 1; END",
)
_POSTGRESQL_TRIGGER = (
    """CREATE OR REPLACE FUNCTION loras_hash_copies_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.sha256 IS NOT NULL AND NOT OLD.missing AND OLD.trashed_at IS NULL THEN
        UPDATE lora_hash_copies SET copies = copies - 1 WHERE sha256 = OLD.sha256;
        DELETE FROM lora_hash_copies WHERE sha256 = OLD.sha256 AND copies <= 0;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.sha256 IS NOT NULL AND NOT NEW.missing AND NEW.trashed_at IS NULL THEN
        INSERT INTO lora_hash_copies (sha256, copies) VALUES (NEW.sha256, 1)
        ON CONFLICT (sha256) DO UPDATE SET copies = lora_hash_copies.copies + 1;
    END IF;
    RETURN NULL;
END $$""",
    # rows without a hash (a scan inserts them before hashing) and updates that change none of
    # the three columns do not call the function
    "CREATE TRIGGER loras_hash_copies_ai AFTER INSERT ON loras FOR EACH ROW WHEN (NEW.sha256 IS NOT NULL) "
    "EXECUTE FUNCTION loras_hash_copies_kept()",
    "CREATE TRIGGER loras_hash_copies_ad AFTER DELETE ON loras FOR EACH ROW WHEN (OLD.sha256 IS NOT NULL) "
    "EXECUTE FUNCTION loras_hash_copies_kept()",
    "CREATE TRIGGER loras_hash_copies_au AFTER UPDATE OF sha256, missing, trashed_at ON loras FOR EACH ROW "
    "WHEN (OLD.sha256 IS DISTINCT FROM NEW.sha256 OR OLD.missing IS DISTINCT FROM NEW.missing "
    "OR OLD.trashed_at IS DISTINCT FROM NEW.trashed_at) EXECUTE FUNCTION loras_hash_copies_kept()",
)


def upgrade() -> None:
    op.create_index('ix_loras_unhashed', 'loras', ['id'], unique=False, sqlite_where=_UNHASHED, postgresql_where=_UNHASHED)
    op.create_table('lora_hash_copies',
                    sa.Column('sha256', sa.String(length=64), nullable=False),
                    sa.Column('copies', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('sha256'))
    op.create_index('ix_lora_hash_copies_shared', 'lora_hash_copies', ['sha256'], unique=False,
                    sqlite_where=_SHARED, postgresql_where=_SHARED)
    op.execute("INSERT INTO lora_hash_copies (sha256, copies) SELECT sha256, count(*) FROM loras "
               "WHERE sha256 IS NOT NULL AND missing = false AND trashed_at IS NULL GROUP BY sha256")
    for statement in _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _POSTGRESQL_TRIGGER:
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        # statistics now, not at autovacuum's next pass: without them the planner guesses
        # thousands of shared hashes and joins them against every row
        op.execute("ANALYZE lora_hash_copies")


def downgrade() -> None:
    on = "" if op.get_bind().dialect.name == "sqlite" else " ON loras"
    for trigger in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS loras_hash_copies_{trigger}{on}")
    if on:
        op.execute("DROP FUNCTION IF EXISTS loras_hash_copies_kept()")
    op.drop_index('ix_lora_hash_copies_shared', table_name='lora_hash_copies')
    op.drop_table('lora_hash_copies')
    op.drop_index('ix_loras_unhashed', table_name='loras')
