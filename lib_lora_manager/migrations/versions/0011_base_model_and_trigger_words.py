"""data only, for rows stored before: a sidecar's coarse "SDXL" no longer hides the Pony or
Illustrious family the file itself names (base_models.effective), and trigger words are split by
one rule (fields.split_trigger_words) and kept once ("ryuu, dragon horns" was kept whole as well)

Revision ID: 0011
Revises: 0010
"""

import json

import sqlalchemy as sa
from alembic import op

from lib_lora_manager.fields import split_trigger_words


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the refinements of base_models.REFINEMENTS when this was written
    op.execute(sa.text(
        "UPDATE loras SET base_model = base_model_detected WHERE base_model_user IS NULL "
        "AND base_model_sidecar = 'sdxl' AND base_model_detected IN ('pony', 'illustrious')"))
    _split_trigger_words()


def _split_trigger_words() -> None:
    """Lists without a comma (one word, no phrase to split) cannot change and are not read."""
    conn = op.get_bind()
    loras = sa.table("loras", sa.column("id", sa.Integer), sa.column("trigger_words", sa.Text))
    rows = conn.execute(sa.select(loras.c.id, loras.c.trigger_words).where(loras.c.trigger_words.like("%,%"))).all()
    changed = []
    for lora_id, stored in rows:
        try:
            words = json.loads(stored)
        except ValueError:
            continue
        if not isinstance(words, list):
            continue
        kept: dict[str, str] = {}
        for item in words:
            for word in split_trigger_words(str(item)):
                kept.setdefault(word.casefold(), word)
        if list(kept.values()) != words:
            changed.append({"b_id": lora_id, "words": json.dumps(list(kept.values())) if kept else None})
    if changed:
        conn.execute(loras.update().where(loras.c.id == sa.bindparam("b_id")).values(trigger_words=sa.bindparam("words")),
                     changed)


def downgrade() -> None:
    op.execute(sa.text(
        "UPDATE loras SET base_model = base_model_sidecar WHERE base_model_user IS NULL "
        "AND base_model_sidecar = 'sdxl' AND base_model_detected IN ('pony', 'illustrious')"))
