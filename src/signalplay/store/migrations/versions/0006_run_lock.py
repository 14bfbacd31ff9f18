"""The run lock: one writing run at a time per project store.

A lease row per lock name, with its holder (run id, host, pid) and when it lapses; a run that dies
leaves a lease that lapses (or that its own host sees is dead), never a lock held forever.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the run_lock table."""
    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Back to revision 0005."""
    op.drop_table("run_lock")
