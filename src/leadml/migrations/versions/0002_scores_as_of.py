"""The moment each score describes: scores.as_of, indexed for the monitor's period reads.

Scores kept before this revision describe the moment they were made (the store kept no other),
so they get `as_of = scored_at`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE scores SET as_of = scored_at WHERE as_of IS NULL")
    op.create_index("ix_scores_as_of", "scores", ["as_of"])


def downgrade() -> None:
    op.drop_index("ix_scores_as_of", table_name="scores")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("as_of")
