"""Ledger indexes on target and episode_key.

A shard reads the applied ops of its own accounts and episodes, not the whole ledger.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index the ledger by target and by episode."""
    op.create_index("ix_ledger_target", "ledger", ["target"])
    op.create_index("ix_ledger_episode", "ledger", ["episode_key"])


def downgrade() -> None:
    """Back to revision 0004."""
    op.drop_index("ix_ledger_episode", table_name="ledger")
    op.drop_index("ix_ledger_target", table_name="ledger")
