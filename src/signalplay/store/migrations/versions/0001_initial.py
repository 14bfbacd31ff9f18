"""The initial store: runs, cursors, raw records, profile, episodes, ledger, plans, quarantine.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table of the first store version."""
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON),
    )
    op.create_table(
        "cursors",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("cursor", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "raw_records",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(255), primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", TS),
        sa.Column("pulled_at", TS, nullable=False),
    )
    op.create_table(
        "profile_facts",
        sa.Column("account_key", sa.String(255), primary_key=True),
        sa.Column("field", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("observed_at", TS),
    )
    op.create_table(
        "profile_snapshots",
        sa.Column("account_key", sa.String(255), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("profile", sa.JSON, nullable=False),
    )
    op.create_table(
        "episodes",
        sa.Column("episode_key", sa.String(64), primary_key=True),
        sa.Column("account_key", sa.String(255), nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolution", sa.String(64)),
        sa.Column("evidence", sa.JSON),
    )
    op.create_index("ix_episodes_pair_status", "episodes", ["account_key", "trigger_id", "status"])
    op.create_table(
        "ledger",
        sa.Column("op_key", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("episode_key", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("crm_id", sa.String(64)),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_ledger_status", "ledger", ["status"])
    op.create_table(
        "plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ops", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for name in (
        "quarantine",
        "plans",
        "ledger",
        "episodes",
        "profile_snapshots",
        "profile_facts",
        "raw_records",
        "cursors",
        "runs",
    ):
        op.drop_table(name)
