"""Identity issues per record; quarantine kept once per record and stage (pull or map).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the identity report and make quarantine rows unique per record and stage."""
    op.create_table(
        "identity_issues",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(255), primary_key=True),
        sa.Column("problem", sa.String(16), nullable=False),
        sa.Column("key_kind", sa.String(32), nullable=False),
        sa.Column("key_value", sa.Text),
        sa.Column("accounts", sa.JSON, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
    )
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="map"))
    # Earlier runs appended the same record once per run: keep the newest row of each.
    op.execute(
        "DELETE FROM quarantine WHERE id NOT IN "
        "(SELECT max(id) FROM quarantine GROUP BY source, stream, record_id, stage)"
    )
    op.create_index(
        "ux_quarantine_record",
        "quarantine",
        ["source", "stream", "record_id", "stage"],
        unique=True,
    )


def downgrade() -> None:
    """Back to revision 0001."""
    op.drop_index("ux_quarantine_record", table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("stage")
    op.drop_table("identity_issues")
