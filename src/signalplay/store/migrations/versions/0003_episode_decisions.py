"""Each episode keeps its orchestration decision.

Play, owner, due date, and whether it was actioned, held out, suppressed or capped.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the decision columns and an index for the caps' look-back."""
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("decision_status", sa.String(16)))
        batch.add_column(sa.Column("decision", sa.JSON))
    op.create_index("ix_episodes_opened_at", "episodes", ["opened_at"])


def downgrade() -> None:
    """Back to revision 0002."""
    op.drop_index("ix_episodes_opened_at", "episodes")
    with op.batch_alter_table("episodes") as batch:
        batch.drop_column("decision")
        batch.drop_column("decision_status")
