"""Record versions: every state a mutable source record had, for point-in-time history.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the record_versions table."""
    op.create_table(
        "record_versions",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(255), primary_key=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("data", sa.JSON),
        sa.Column("origin", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Back to revision 0006."""
    op.drop_table("record_versions")
