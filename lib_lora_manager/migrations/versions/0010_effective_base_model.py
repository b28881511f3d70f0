"""data only: a sidecar's coarse "SDXL" no longer hides the Pony or Illustrious family the file
itself names (base_models.effective); rows stored before are derived again

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the refinements of base_models.REFINEMENTS when this was written
    op.execute(sa.text(
        "UPDATE loras SET base_model = base_model_detected WHERE base_model_user IS NULL "
        "AND base_model_sidecar = 'sdxl' AND base_model_detected IN ('pony', 'illustrious')"))


def downgrade() -> None:
    op.execute(sa.text(
        "UPDATE loras SET base_model = base_model_sidecar WHERE base_model_user IS NULL "
        "AND base_model_sidecar = 'sdxl' AND base_model_detected IN ('pony', 'illustrious')"))
