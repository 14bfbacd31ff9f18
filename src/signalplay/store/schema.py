"""The store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL. Imports: sqlalchemy."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
TS = DateTime(timezone=True)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("status", String(16), nullable=False),
    Column("summary", JSON),
)

run_lock = Table(  # one writing run at a time (store.lock)
    "run_lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("since", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("cursor", Text),
    Column("updated_at", TS, nullable=False),
)

raw_records = Table(
    "raw_records",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("record_id", String(255), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", TS),
    Column("pulled_at", TS, nullable=False),
)

# Every state a (mutable) record had: from `valid_from` until the next row of the record; `data`
# NULL is "did not exist" (deleted or archived). `origin` on a record's first row says nothing
# came before it (the record began then); without it, what came before is unknown.
record_versions = Table(
    "record_versions",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("record_id", String(255), primary_key=True),
    Column("valid_from", TS, primary_key=True),
    Column("data", JSON),
    Column("origin", Boolean, nullable=False, default=False),
)

profile_facts = Table(
    "profile_facts",
    metadata,
    Column("account_key", String(255), primary_key=True),
    Column("field", String(64), primary_key=True),
    Column("value", JSON),
    Column("source", String(64), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("observed_at", TS),
)

profile_snapshots = Table(
    "profile_snapshots",
    metadata,
    Column("account_key", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("profile", JSON, nullable=False),
)

episodes = Table(
    "episodes",
    metadata,
    Column("episode_key", String(64), primary_key=True),
    Column("account_key", String(255), nullable=False),
    Column("trigger_id", String(64), nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolved_at", TS),
    Column("resolution", String(64)),
    Column("evidence", JSON),
    Column("decision_status", String(16)),
    Column("decision", JSON),
    Index("ix_episodes_pair_status", "account_key", "trigger_id", "status"),
    Index("ix_episodes_opened_at", "opened_at"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("op_key", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("crm", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("episode_key", String(64)),
    Column("payload", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("crm_id", String(64)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_ledger_status", "status"),
    Index("ix_ledger_target", "target"),
    Index("ix_ledger_episode", "episode_key"),
)

plans = Table(
    "plans",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("ops", JSON, nullable=False),
    Column("status", String(16), nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", JSON),
    Column("created_at", TS, nullable=False),
    Column("stage", String(16), nullable=False, server_default="map"),
    Index("ux_quarantine_record", "source", "stream", "record_id", "stage", unique=True),
)

identity_issues = Table(
    "identity_issues",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("record_id", String(255), primary_key=True),
    Column("problem", String(16), nullable=False),
    Column("key_kind", String(32), nullable=False),
    Column("key_value", Text),
    Column("accounts", JSON, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("seen_at", TS, nullable=False),
)

plan_parts = Table(
    "plan_parts",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("ops", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
)
