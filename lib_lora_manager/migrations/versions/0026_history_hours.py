"""history rollups by hour: generation_hours, lora_use_hours and lora_pair_hours (summed by
rollups.refresh) and history_dirty_hours, which triggers on generations and generation_loras mark
in the writing transaction, whoever writes; every hour already recorded starts marked

Revision ID: 0026
Revises: 0025
"""

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

# a change to one of these moves a generation's rollups (weights and prompts are read from rows)
GENERATION_COLUMNS = ('started_at', 'status', 'duration', 'model_name', 'width', 'height', 'steps', 'rating',
                      'favorite', 'image_count', 'lora_count')
MARK = "INSERT INTO history_dirty_hours (hour)"

# SQLite: INSERT OR IGNORE would not do: a foreign key's action (a LoRA deleted sets its rows'
# lora_id to NULL) runs the trigger under its own conflict policy, which aborts on the duplicate


def _sqlite_mark(hours: str) -> str:
    """Mark the hours a SELECT of ``h`` gives, skipping those already marked."""
    return (f"INSERT INTO history_dirty_hours (hour) SELECT DISTINCT h FROM ({hours}) "
            "WHERE h NOT IN (SELECT hour FROM history_dirty_hours);")


def _sqlite_generation(row: str) -> str:
    return _sqlite_mark(f"SELECT CAST({row}.started_at / 3600 AS INTEGER) AS h")


def _sqlite_lora_rows(ids: str) -> str:
    return _sqlite_mark(f"SELECT CAST(started_at / 3600 AS INTEGER) AS h FROM generations WHERE id IN ({ids})")


SQLITE_TRIGGERS = {
    'history_hours_generations_ai': f"AFTER INSERT ON generations BEGIN {_sqlite_generation('new')} END",
    'history_hours_generations_ad': f"AFTER DELETE ON generations BEGIN {_sqlite_generation('old')} END",
    'history_hours_generations_au': f"AFTER UPDATE OF {', '.join(GENERATION_COLUMNS)} ON generations BEGIN "
                                    f"{_sqlite_generation('old')} {_sqlite_generation('new')} END",
    'history_hours_generation_loras_ai': f"AFTER INSERT ON generation_loras BEGIN {_sqlite_lora_rows('new.generation_id')} END",
    'history_hours_generation_loras_ad': f"AFTER DELETE ON generation_loras BEGIN {_sqlite_lora_rows('old.generation_id')} END",
    'history_hours_generation_loras_au': "AFTER UPDATE OF lora_id, generation_id ON generation_loras BEGIN "
                                         f"{_sqlite_lora_rows('old.generation_id, new.generation_id')} END",
}

# PostgreSQL: inserts and deletes by statement, over their transition tables (a bulk insert marks
# each hour once); updates by row, since a trigger with a column list has no transition tables
_HOUR = "floor(started_at / 3600)::bigint"
POSTGRESQL_FUNCTIONS = {
    'history_hours_generations_rows': f"{MARK} SELECT DISTINCT {_HOUR} FROM changed ON CONFLICT DO NOTHING",
    'history_hours_generations_row': f"{MARK} VALUES (floor(OLD.started_at / 3600)::bigint), (floor(NEW.started_at / 3600)::bigint) "
                                     "ON CONFLICT DO NOTHING",
    'history_hours_generation_loras_rows': f"{MARK} SELECT DISTINCT floor(g.started_at / 3600)::bigint FROM changed c "
                                           "JOIN generations g ON g.id = c.generation_id ON CONFLICT DO NOTHING",
    'history_hours_generation_loras_row': f"{MARK} SELECT DISTINCT {_HOUR} FROM generations "
                                          "WHERE id IN (OLD.generation_id, NEW.generation_id) ON CONFLICT DO NOTHING",
}
POSTGRESQL_TRIGGERS = {
    'history_hours_generations_ai': "AFTER INSERT ON generations REFERENCING NEW TABLE AS changed "
                                    "FOR EACH STATEMENT EXECUTE FUNCTION history_hours_generations_rows()",
    'history_hours_generations_ad': "AFTER DELETE ON generations REFERENCING OLD TABLE AS changed "
                                    "FOR EACH STATEMENT EXECUTE FUNCTION history_hours_generations_rows()",
    'history_hours_generations_au': f"AFTER UPDATE OF {', '.join(GENERATION_COLUMNS)} ON generations "
                                    "FOR EACH ROW EXECUTE FUNCTION history_hours_generations_row()",
    'history_hours_generation_loras_ai': "AFTER INSERT ON generation_loras REFERENCING NEW TABLE AS changed "
                                         "FOR EACH STATEMENT EXECUTE FUNCTION history_hours_generation_loras_rows()",
    'history_hours_generation_loras_ad': "AFTER DELETE ON generation_loras REFERENCING OLD TABLE AS changed "
                                         "FOR EACH STATEMENT EXECUTE FUNCTION history_hours_generation_loras_rows()",
    'history_hours_generation_loras_au': "AFTER UPDATE OF lora_id, generation_id ON generation_loras "
                                         "FOR EACH ROW EXECUTE FUNCTION history_hours_generation_loras_row()",
}


def upgrade() -> None:
    op.create_table('generation_hours',
                    sa.Column('hour', sa.BigInteger(), nullable=False), sa.Column('model_name', sa.Text()),
                    sa.Column('width', sa.Integer()), sa.Column('height', sa.Integer()), sa.Column('status', sa.String(16)),
                    sa.Column('n', sa.Integer(), nullable=False), sa.Column('timed', sa.Integer(), nullable=False),
                    sa.Column('stepped', sa.Integer(), nullable=False), sa.Column('seconds', sa.Float()),
                    sa.Column('steps', sa.BigInteger()), sa.Column('images', sa.BigInteger()),
                    sa.Column('with_lora', sa.Integer(), nullable=False), sa.Column('lora_rows', sa.BigInteger()))
    op.create_index('ix_generation_hours_hour', 'generation_hours', ['hour'])
    op.create_table('lora_use_hours',
                    sa.Column('hour', sa.BigInteger(), nullable=False), sa.Column('lora_id', sa.Integer(), nullable=False),
                    sa.Column('model_name', sa.Text()), sa.Column('status', sa.String(16)),
                    sa.Column('uses', sa.Integer(), nullable=False), sa.Column('lora_rows', sa.Integer(), nullable=False),
                    sa.Column('last_used_at', sa.Float()), sa.Column('rating_sum', sa.Integer()),
                    sa.Column('rated_rows', sa.Integer(), nullable=False), sa.Column('favorite_rows', sa.Integer(), nullable=False))
    op.create_index('ix_lora_use_hours_hour', 'lora_use_hours', ['hour'])
    op.create_index('ix_lora_use_hours_lora', 'lora_use_hours', ['lora_id', 'hour', 'model_name', 'status', 'uses', 'lora_rows',
                                                                 'last_used_at', 'rating_sum', 'rated_rows', 'favorite_rows'])
    op.create_index('ix_lora_use_hours_status', 'lora_use_hours', ['status', 'hour', 'lora_id', 'model_name', 'uses'])
    op.create_table('lora_pair_hours',
                    sa.Column('hour', sa.BigInteger(), nullable=False), sa.Column('a', sa.Integer(), nullable=False),
                    sa.Column('b', sa.Integer(), nullable=False), sa.Column('generations', sa.Integer(), nullable=False))
    op.create_index('ix_lora_pair_hours_hour', 'lora_pair_hours', ['hour'])
    op.create_table('history_dirty_hours', sa.Column('hour', sa.BigInteger(), autoincrement=False, nullable=False),
                    sa.PrimaryKeyConstraint('hour'))
    if op.get_bind().dialect.name == 'postgresql':
        for name, body in POSTGRESQL_FUNCTIONS.items():
            op.execute(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$$ BEGIN {body}; RETURN NULL; END $$")
        for name, body in POSTGRESQL_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute(f"{MARK} SELECT DISTINCT {_HOUR} FROM generations")
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
        op.execute("INSERT INTO history_dirty_hours (hour) SELECT DISTINCT CAST(started_at / 3600 AS INTEGER) FROM generations")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    for name in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        table = ' ON generation_loras' if 'generation_loras' in name else ' ON generations'
        op.execute(f"DROP TRIGGER IF EXISTS {name}{table if postgresql else ''}")
    if postgresql:
        for name in POSTGRESQL_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    for table in ('history_dirty_hours', 'lora_pair_hours', 'lora_use_hours', 'generation_hours'):
        op.drop_table(table)
