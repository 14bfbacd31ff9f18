"""The store: every database read and write of signalplay, on SQLite or PostgreSQL.

Imports: sqlalchemy, alembic and the kernel (models, types): never a stage.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from signalplay.models import Episode, Fact, IdentityIssue, SourceRecord, WriteOp, WriteResult
from signalplay.store import schema as t
from signalplay.types import Clock, utc_clock

MIGRATIONS = Path(__file__).parent / "migrations"
BATCH = 500


@overload
def _aware(moment: datetime) -> datetime: ...
@overload
def _aware(moment: datetime | None) -> datetime | None: ...
def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Store:
    """One database: migrations, cursors, raw records, profile, episodes, ledger and runs."""

    def __init__(
        self, url: str, *, clock: Clock = utc_clock, connect_args: dict[str, Any] | None = None
    ) -> None:
        self.url = url
        self.clock = clock
        self.engine: Engine = sa.create_engine(url, connect_args=connect_args or {}, future=True)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def has_table(self, name: str) -> bool:
        """Whether the database already has this table (without creating anything)."""
        return sa.inspect(self.engine).has_table(name)

    def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _upsert(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
    ) -> None:
        if not rows:
            return
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = dialect.insert(table)
        update = {
            c.name: stmt.excluded[c.name]
            for c in table.columns
            if c.name not in keys and c.name in rows[0]  # columns the rows set (not `id`)
        }
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), list(rows))

    # runs -----------------------------------------------------------------------------------
    def start_run(self, kind: str) -> str:
        """Record the start of a run and return its id."""
        run_id = f"{self.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.insert().values(
                    run_id=run_id, kind=kind, started_at=self.clock(), status="running"
                )
            )
        return run_id

    def finish_run(self, run_id: str, *, status: str, summary: Mapping[str, Any]) -> None:
        """Record how a run ended."""
        with self.engine.begin() as conn:
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(status=status, finished_at=self.clock(), summary=dict(summary))
            )

    # cursors and raw records ------------------------------------------------------------------
    def get_cursor(self, source: str, stream: str) -> str | None:
        """The saved cursor of a stream."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.cursors.c.cursor).where(
                    t.cursors.c.source == source, t.cursors.c.stream == stream
                )
            ).first()
        return None if row is None else row[0]

    def save_page(
        self, source: str, stream: str, records: Sequence[SourceRecord], cursor: str | None
    ) -> None:
        """Upsert a page's records and move the cursor forward, in one transaction."""
        now = self.clock()
        rows = [
            {
                "source": source,
                "stream": stream,
                "record_id": r.record_id,
                "data": r.data,
                "updated_at": r.updated_at,
                "pulled_at": now,
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                self._upsert(
                    conn,
                    t.raw_records,
                    rows[start : start + BATCH],
                    ("source", "stream", "record_id"),
                )
            if cursor is not None:
                self._upsert(
                    conn,
                    t.cursors,
                    [{"source": source, "stream": stream, "cursor": cursor, "updated_at": now}],
                    ("source", "stream"),
                )

    def iter_records(self, source: str, stream: str) -> Iterator[SourceRecord]:
        """Every stored record of a stream, streamed in record-id order."""
        query = (
            sa.select(t.raw_records.c.record_id, t.raw_records.c.data, t.raw_records.c.updated_at)
            .where(t.raw_records.c.source == source, t.raw_records.c.stream == stream)
            .order_by(t.raw_records.c.record_id)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(query)
            for rid, data, updated in result:
                yield SourceRecord(
                    source=source,
                    stream=stream,
                    record_id=rid,
                    data=data,
                    updated_at=_aware(updated),
                )

    def count_records(self, source: str, stream: str) -> int:
        """How many records of a stream are stored."""
        with self.engine.connect() as conn:
            query = (
                sa.select(sa.func.count())
                .select_from(t.raw_records)
                .where(t.raw_records.c.source == source, t.raw_records.c.stream == stream)
            )
            return int(conn.execute(query).scalar_one())

    def quarantine(
        self,
        run_id: str,
        source: str,
        stream: str,
        items: Iterable[tuple[str, str, Any]],
        *,
        stage: str = "pull",
    ) -> int:
        """Keep bad records with their reason, once per record and stage; returns how many.

        The `map` stage is replaced as a whole per stream: it lists what the current mapping
        cannot use, so a record fixed at the source (or by a mapping change) leaves the list.
        """
        now = self.clock()
        rows = {
            rid[:255]: {
                "run_id": run_id,
                "source": source,
                "stream": stream,
                "record_id": rid[:255],
                "stage": stage,
                "reason": reason[:2000],
                "payload": _jsonable(payload),
                "created_at": now,
            }
            for rid, reason, payload in items
        }
        with self.engine.begin() as conn:
            if stage == "map":
                conn.execute(
                    t.quarantine.delete().where(
                        t.quarantine.c.source == source,
                        t.quarantine.c.stream == stream,
                        t.quarantine.c.stage == "map",
                    )
                )
            batch = list(rows.values())
            for start in range(0, len(batch), BATCH):
                self._upsert(
                    conn,
                    t.quarantine,
                    batch[start : start + BATCH],
                    ("source", "stream", "record_id", "stage"),
                )
        return len(rows)

    def quarantined(
        self, *, source: str | None = None, stream: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Quarantined records, newest first, optionally of one source or stream."""
        q = sa.select(t.quarantine).order_by(t.quarantine.c.created_at.desc(), t.quarantine.c.id)
        if source:
            q = q.where(t.quarantine.c.source == source)
        if stream:
            q = q.where(t.quarantine.c.stream == stream)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.limit(limit))]

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined records per `source.stream`."""
        q = sa.select(t.quarantine.c.source, t.quarantine.c.stream, sa.func.count()).group_by(
            t.quarantine.c.source, t.quarantine.c.stream
        )
        with self.engine.connect() as conn:
            return {f"{s}.{st}": int(n) for s, st, n in conn.execute(q)}

    # identity -------------------------------------------------------------------------------
    def replace_identity_issues(self, run_id: str, issues: Sequence[IdentityIssue]) -> None:
        """Make the identity report exactly `issues` (the newest profile build's)."""
        now = self.clock()
        rows = {
            (i.source, i.stream, i.record_id[:255]): {
                "source": i.source,
                "stream": i.stream,
                "record_id": i.record_id[:255],
                "problem": i.problem,
                "key_kind": i.key_kind,
                "key_value": i.key_value,
                "accounts": list(i.accounts),
                "run_id": run_id,
                "seen_at": now,
            }
            for i in issues
        }
        batch = list(rows.values())
        with self.engine.begin() as conn:
            conn.execute(t.identity_issues.delete())
            for start in range(0, len(batch), BATCH):
                conn.execute(t.identity_issues.insert(), batch[start : start + BATCH])

    def identity_issues(self, *, problem: str | None = None) -> list[IdentityIssue]:
        """The identity report: records that joined no account, by stream and record."""
        q = sa.select(t.identity_issues).order_by(
            t.identity_issues.c.source, t.identity_issues.c.stream, t.identity_issues.c.record_id
        )
        if problem:
            q = q.where(t.identity_issues.c.problem == problem)
        with self.engine.connect() as conn:
            return [
                IdentityIssue(
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    problem=r.problem,
                    key_kind=r.key_kind,
                    key_value=r.key_value,
                    accounts=tuple(r.accounts or ()),
                )
                for r in conn.execute(q)
            ]

    # profile --------------------------------------------------------------------------------
    def replace_facts(self, facts: Mapping[str, Mapping[str, Fact]]) -> None:
        """Make the stored profile exactly `facts`."""
        rows = [
            {
                "account_key": acct,
                "field": name,
                "value": f.value,
                "source": f.source,
                "stream": f.stream,
                "record_id": f.record_id[:255],
                "observed_at": f.observed_at,
            }
            for acct, fields in facts.items()
            for name, f in fields.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(t.profile_facts.delete())
            for start in range(0, len(rows), BATCH):
                conn.execute(t.profile_facts.insert(), rows[start : start + BATCH])

    def load_facts(self, accounts: Collection[str] | None = None) -> dict[str, dict[str, Fact]]:
        """The stored profile facts, optionally of some accounts only."""
        query = sa.select(t.profile_facts)
        if accounts is None:
            batches = [query]
        else:
            keys = sorted(accounts)
            batches = [
                query.where(t.profile_facts.c.account_key.in_(keys[i : i + BATCH]))
                for i in range(0, len(keys), BATCH)
            ]
        out: dict[str, dict[str, Fact]] = {}
        with self.engine.connect() as conn:
            for r in (row for q in batches for row in conn.execute(q)):
                out.setdefault(r.account_key, {})[r.field] = Fact(
                    value=r.value,
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    observed_at=_aware(r.observed_at),
                )
        return out

    def save_snapshots(self, day: date, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep today's profile of every account (one row per account and day)."""
        rows = [
            {"account_key": a, "day": day, "profile": _jsonable(dict(p))}
            for a, p in profiles.items()
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                self._upsert(
                    conn, t.profile_snapshots, rows[start : start + BATCH], ("account_key", "day")
                )

    def snapshot_values(
        self,
        days: Collection[date],
        fields: Collection[str],
        *,
        accounts: Collection[str] | None = None,
    ) -> dict[date, dict[str, dict[str, Any]]]:
        """Some fields of the snapshots of some days (and accounts): day → account → field →
        value."""
        out: dict[date, dict[str, dict[str, Any]]] = {}
        if not days or not fields:
            return out
        wanted = set(fields)
        q = sa.select(
            t.profile_snapshots.c.day,
            t.profile_snapshots.c.account_key,
            t.profile_snapshots.c.profile,
        ).where(t.profile_snapshots.c.day.in_(sorted(days)))
        keys = sorted(accounts) if accounts is not None else None
        queries = (
            [q]
            if keys is None
            else [
                q.where(t.profile_snapshots.c.account_key.in_(keys[i : i + BATCH]))
                for i in range(0, len(keys), BATCH)
            ]
        )
        with self.engine.connect() as conn:
            for query in queries:
                rows = conn.execution_options(yield_per=2000).execute(query)
                for day, account, profile in rows:
                    values = {k: v for k, v in (profile or {}).items() if k in wanted}
                    out.setdefault(day, {})[account] = values
        return out

    def snapshot(self, account: str) -> tuple[date, dict[str, Any]] | None:
        """An account's newest snapshot: its day and profile values."""
        q = (
            sa.select(t.profile_snapshots.c.day, t.profile_snapshots.c.profile)
            .where(t.profile_snapshots.c.account_key == account)
            .order_by(t.profile_snapshots.c.day.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else (row[0], dict(row[1] or {}))

    def snapshot_days(self) -> list[date]:
        """The days that have snapshots, oldest first."""
        q = sa.select(t.profile_snapshots.c.day).distinct().order_by(t.profile_snapshots.c.day)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def snapshots_on(self, day: date) -> dict[str, dict[str, Any]]:
        """Every account's whole profile on one snapshot day."""
        q = sa.select(t.profile_snapshots.c.account_key, t.profile_snapshots.c.profile).where(
            t.profile_snapshots.c.day == day
        )
        with self.engine.connect() as conn:
            return {a: dict(p or {}) for a, p in conn.execute(q)}

    def task_episodes(self) -> dict[str, str]:
        """The episode of each task signalplay planned: the task's key → its episode key."""
        q = sa.select(t.ledger.c.target, t.ledger.c.episode_key).where(
            t.ledger.c.object_type == "tasks", t.ledger.c.episode_key.is_not(None)
        )
        with self.engine.connect() as conn:
            return {str(target): str(episode) for target, episode in conn.execute(q)}

    def latest_snapshots(self) -> dict[str, dict[str, Any]]:
        """Every account's profile on the newest snapshot day."""
        days = self.snapshot_days()
        if not days:
            return {}
        q = sa.select(t.profile_snapshots.c.account_key, t.profile_snapshots.c.profile).where(
            t.profile_snapshots.c.day == days[-1]
        )
        with self.engine.connect() as conn:
            return {a: dict(p or {}) for a, p in conn.execute(q)}

    # episodes -------------------------------------------------------------------------------
    def open_episodes(
        self, accounts: Collection[str] | None = None
    ) -> dict[tuple[str, str], Episode]:
        """Open episodes by (account, trigger), of every account or of these (a shard's)."""
        query = sa.select(t.episodes).where(t.episodes.c.status == "open")
        with self.engine.connect() as conn:
            return {
                (r.account_key, r.trigger_id): _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            }

    def episodes(
        self,
        *,
        status: str | None = None,
        account: str | None = None,
        resolved_since: datetime | None = None,
        accounts: Collection[str] | None = None,
    ) -> list[Episode]:
        """Every episode, optionally of one status, of one account (or of these accounts),
        resolved since a moment."""
        query = sa.select(t.episodes).order_by(t.episodes.c.opened_at, t.episodes.c.episode_key)
        if status:
            query = query.where(t.episodes.c.status == status)
        if account is not None:
            query = query.where(t.episodes.c.account_key == account)
        if resolved_since is not None:
            query = query.where(t.episodes.c.resolved_at >= resolved_since)
        with self.engine.connect() as conn:
            return [
                _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            ]

    def last_resolved(
        self, accounts: Collection[str] | None = None
    ) -> dict[tuple[str, str], datetime]:
        """When each (account, trigger) last resolved (of every account, or of these)."""
        query = (
            sa.select(
                t.episodes.c.account_key,
                t.episodes.c.trigger_id,
                sa.func.max(t.episodes.c.resolved_at),
            )
            .where(t.episodes.c.status == "resolved")
            .group_by(t.episodes.c.account_key, t.episodes.c.trigger_id)
        )
        with self.engine.connect() as conn:
            return {
                (a, tr): _aware(at)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for a, tr, at in conn.execute(q)
                if at is not None
            }

    def save_episodes(self, episodes: Iterable[Episode]) -> None:
        """Insert opened episodes and mark resolved ones; replays change nothing."""
        rows = [
            {
                "episode_key": e.key,
                "account_key": e.account,
                "trigger_id": e.trigger_id,
                "opened_at": e.opened_at,
                "status": e.status,
                "resolved_at": e.resolved_at,
                "resolution": e.resolution,
                "evidence": _jsonable(e.evidence),
                "decision_status": e.decision.get("status"),
                "decision": _jsonable(e.decision) or None,
            }
            for e in episodes
        ]
        with self.engine.begin() as conn:
            self._upsert(conn, t.episodes, rows, ("episode_key",))

    def save_decisions(self, decisions: Mapping[str, Mapping[str, Any]]) -> None:
        """Record each episode's orchestration decision."""
        if not decisions:
            return
        stmt = (
            t.episodes.update()
            .where(t.episodes.c.episode_key == sa.bindparam("key"))
            .values(decision_status=sa.bindparam("b_status"), decision=sa.bindparam("b_decision"))
        )
        rows = [
            {"key": k, "b_status": d.get("status"), "b_decision": _jsonable(dict(d))}
            for k, d in decisions.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def episodes_since(
        self, since: datetime, accounts: Collection[str] | None = None
    ) -> list[Episode]:
        """Episodes opened at or after `since` (for the frequency caps), of every account or
        of these."""
        query = sa.select(t.episodes).where(t.episodes.c.opened_at >= since)
        with self.engine.connect() as conn:
            return [
                _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            ]

    def records_with_ids(
        self, source: str, stream: str, ids: Collection[str]
    ) -> list[SourceRecord]:
        """The stored records of a stream with these ids (a shard's accounts, say)."""
        query = sa.select(t.raw_records).where(
            t.raw_records.c.source == source, t.raw_records.c.stream == stream
        )
        with self.engine.connect() as conn:
            return [
                SourceRecord(
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    data=r.data,
                    updated_at=_aware(r.updated_at),
                )
                for q in _of_accounts(query, t.raw_records.c.record_id, ids)
                for r in conn.execute(q)
            ]

    # ledger and plans -----------------------------------------------------------------------
    def applied_keys(
        self,
        *,
        targets: Collection[str] | None = None,
        episode_keys: Collection[str] | None = None,
    ) -> set[str]:
        """Op keys the ledger holds as applied: all of them, or (a shard's) those whose target
        is one of `targets` (its accounts: field updates) or that belong to one of
        `episode_keys` (its episodes: tasks, enrollments, events and their closing)."""
        applied = t.ledger.c.status == "applied"
        if targets is None and episode_keys is None:
            with self.engine.connect() as conn:
                return {r[0] for r in conn.execute(sa.select(t.ledger.c.op_key).where(applied))}
        query = sa.select(t.ledger.c.op_key).where(applied)
        queries = [
            *_of_accounts(query, t.ledger.c.target, targets or ()),
            *_of_accounts(query, t.ledger.c.episode_key, episode_keys or ()),
        ]
        with self.engine.connect() as conn:
            return {r[0] for q in queries for r in conn.execute(q)}

    def record_planned(self, run_id: str, crm: str, ops: Sequence[WriteOp]) -> None:
        """Write each new op to the ledger as planned; an op already there keeps its status and
        attempts (applied stays applied, failed keeps counting towards the dead letters)."""
        now = self.clock()
        keys = [o.op_key for o in ops]
        with self.engine.begin() as conn:
            known: set[str] = set()
            for start in range(0, len(keys), BATCH):
                q = sa.select(t.ledger.c.op_key).where(
                    t.ledger.c.op_key.in_(keys[start : start + BATCH])
                )
                known.update(r[0] for r in conn.execute(q))
            rows = [
                {
                    "op_key": o.op_key,
                    "run_id": run_id,
                    "crm": crm,
                    "action": o.action.value,
                    "object_type": o.object_type,
                    "target": o.target,
                    "episode_key": o.episode_key,
                    "payload": o.model_dump(mode="json"),
                    "reason": o.reason,
                    "status": "planned",
                    "crm_id": None,
                    "error": None,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for o in ops
                if o.op_key not in known
            ]
            for start in range(0, len(rows), BATCH):
                conn.execute(t.ledger.insert(), rows[start : start + BATCH])

    def settled_keys(self) -> set[str]:
        """Op keys not to send again: applied, or in the dead letters."""
        with self.engine.connect() as conn:
            q = sa.select(t.ledger.c.op_key).where(t.ledger.c.status.in_(["applied", "dead"]))
            return {r[0] for r in conn.execute(q)}

    def record_results(self, results: Sequence[WriteResult], *, max_attempts: int = 5) -> None:
        """Mark ops applied, or failed with their error; an op that has failed `max_attempts`
        times goes to the dead-letter list (`dead`), out of the automatic retries."""
        now = self.clock()
        ledger = t.ledger
        # One statement, executed for all results at once (executemany).
        status = sa.case(
            (sa.bindparam("ok", type_=sa.Boolean), "applied"),
            (ledger.c.attempts + 1 >= max_attempts, "dead"),
            else_="failed",
        )
        update = (
            ledger.update()
            .where(ledger.c.op_key == sa.bindparam("key"))
            .values(
                status=status,
                crm_id=sa.bindparam("crm_id"),
                error=sa.bindparam("error"),
                attempts=ledger.c.attempts + 1,
                updated_at=now,
            )
        )
        rows = [
            {
                "key": r.op_key,
                "ok": r.ok,
                "crm_id": r.crm_id,
                "error": None if r.ok else (r.error or "")[:2000],
            }
            for r in results
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                conn.execute(update, rows[start : start + BATCH])

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Ops that failed too often to be retried automatically, newest first."""
        q = (
            sa.select(
                t.ledger.c.op_key,
                t.ledger.c.action,
                t.ledger.c.target,
                t.ledger.c.attempts,
                t.ledger.c.error,
                t.ledger.c.updated_at,
            )
            .where(t.ledger.c.status == "dead")
            .order_by(t.ledger.c.updated_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def requeue(self, op_keys: Collection[str] | None = None) -> int:
        """Put dead ops (all, or those whose key starts with one given) back in the retries
        with a fresh count."""
        stmt = t.ledger.update().where(t.ledger.c.status == "dead")
        if op_keys is not None:  # full keys or the prefixes `status` shows
            stmt = stmt.where(sa.or_(*(t.ledger.c.op_key.startswith(k) for k in op_keys)))
        with self.engine.begin() as conn:
            return int(conn.execute(stmt.values(status="failed", attempts=0)).rowcount)

    def recent_runs(self, limit: int = 5) -> list[dict[str, Any]]:
        """The latest runs: kind, status, times and summary."""
        q = sa.select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def all_runs(self) -> list[dict[str, Any]]:
        """Every run's kind, status, times and summary, oldest first."""
        q = sa.select(t.runs).order_by(t.runs.c.started_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def episode_counts(self) -> dict[tuple[str, str], int]:
        """Episodes per (status, decision status)."""
        q = sa.select(t.episodes.c.status, t.episodes.c.decision_status, sa.func.count()).group_by(
            t.episodes.c.status, t.episodes.c.decision_status
        )
        with self.engine.connect() as conn:
            return {(s, d or "none"): n for s, d, n in conn.execute(q)}

    def ledger_counts(self) -> dict[str, int]:
        """Ledger entries per status."""
        with self.engine.connect() as conn:
            q = sa.select(t.ledger.c.status, sa.func.count()).group_by(t.ledger.c.status)
            return {s: int(n) for s, n in conn.execute(q)}

    def pending_ops(self) -> list[WriteOp]:
        """Ops planned or failed earlier that are not yet applied, for retry."""
        with self.engine.connect() as conn:
            q = sa.select(t.ledger.c.payload).where(t.ledger.c.status.in_(["planned", "failed"]))
            return [WriteOp.model_validate(r[0]) for r in conn.execute(q)]

    def save_plan_part(
        self, run_id: str, part: int, ops: Sequence[WriteOp], summary: Mapping[str, Any]
    ) -> None:
        """Keep one shard's ops until the merge (a redelivered shard replaces its part)."""
        row = {
            "run_id": run_id,
            "part": part,
            "ops": [o.model_dump(mode="json") for o in ops],
            "summary": _jsonable(dict(summary)),
            "created_at": self.clock(),
        }
        with self.engine.begin() as conn:
            self._upsert(conn, t.plan_parts, [row], ("run_id", "part"))

    def merge_plan_parts(
        self, run_id: str, *, key: Callable[[dict[str, Any]], Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """Save the ops of every part of a run as its plan, ordered by `key` over their stored
        JSON; returns the plan id and the parts' summaries in part order."""
        query = (
            sa.select(t.plan_parts.c.ops, t.plan_parts.c.summary)
            .where(t.plan_parts.c.run_id == run_id)
            .order_by(t.plan_parts.c.part)
        )
        with self.engine.connect() as conn:
            parts = [(list(ops), dict(summary)) for ops, summary in conn.execute(query)]
        ops = sorted((o for part_ops, _ in parts for o in part_ops), key=key)
        plan_id = self._insert_plan(run_id, ops)
        return plan_id, [summary for _, summary in parts]

    def save_plan(self, run_id: str, ops: Sequence[WriteOp]) -> str:
        """Keep a plan so that `apply` executes exactly it; returns its id."""
        return self._insert_plan(run_id, [o.model_dump(mode="json") for o in ops])

    def _insert_plan(self, run_id: str, ops: list[dict[str, Any]]) -> str:
        plan_id = f"plan-{run_id}"
        with self.engine.begin() as conn:
            conn.execute(t.plans.delete().where(t.plans.c.plan_id == plan_id))  # a re-merge
            conn.execute(
                t.plans.insert().values(
                    plan_id=plan_id,
                    run_id=run_id,
                    created_at=self.clock(),
                    ops=ops,
                    status="planned",
                )
            )
        return plan_id

    def load_plan(self, plan_id: str) -> list[WriteOp] | None:
        """A saved plan's ops, or None when there is no such plan."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.plans.c.ops).where(t.plans.c.plan_id == plan_id)).first()
        return None if row is None else [WriteOp.model_validate(o) for o in row[0]]

    def latest_plan_id(self) -> str | None:
        """The newest saved plan."""
        with self.engine.connect() as conn:
            q = sa.select(t.plans.c.plan_id).order_by(t.plans.c.created_at.desc()).limit(1)
            row = conn.execute(q).first()
        return None if row is None else str(row[0])

    def mark_plan(self, plan_id: str, status: str) -> None:
        """Record that a plan was applied."""
        with self.engine.begin() as conn:
            conn.execute(t.plans.update().where(t.plans.c.plan_id == plan_id).values(status=status))


def _episode(r: Any) -> Episode:
    return Episode(
        key=r.episode_key,
        account=r.account_key,
        trigger_id=r.trigger_id,
        opened_at=_aware(r.opened_at),
        evidence=r.evidence or {},
        status=r.status,
        resolved_at=_aware(r.resolved_at),
        resolution=r.resolution,
        decision=dict(r.decision or {}),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _of_accounts(query: Any, column: Any, accounts: Collection[str] | None) -> list[Any]:
    """The query as it is (every account), or one per batch of these accounts (or other keys
    of `column`)."""
    if accounts is None:
        return [query]
    keys = sorted(accounts)
    return [query.where(column.in_(keys[i : i + BATCH])) for i in range(0, len(keys), BATCH)]
