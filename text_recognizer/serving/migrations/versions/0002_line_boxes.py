"""The predictor's line boxes with each prediction (``predictions.line_boxes``), so that ``feedback export``
cuts exactly the lines the model read. Nullable: rows stored before have none (the export re-cuts those).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("line_boxes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("line_boxes")
