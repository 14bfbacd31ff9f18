"""The write-back ledger: every planned op, applied or failed with its error, and retries.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from signalplay.models import WriteOp, WriteResult
from signalplay.store import schema as t
from signalplay.store.base import BATCH, StoreBase, _aware, _of_accounts


class LedgerStore(StoreBase):
    """The write-back ledger: every planned op, applied or failed with its error, and retries."""

    # ledger and plans -----------------------------------------------------------------------
    def applied_keys(
        self,
        *,
        targets: Collection[str] | None = None,
        episode_keys: Collection[str] | None = None,
    ) -> set[str]:
        """Op keys the ledger holds as applied.

        All of them, or (a shard's) those whose target is one of `targets` (its accounts:
        field updates) or that belong to one of `episode_keys` (its episodes: tasks,
        enrollments, events and their closing).
        """
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
        """Write each new op to the ledger as planned.

        An op already there keeps its status and attempts (applied stays applied, failed
        keeps counting towards the dead letters).
        """
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

    def last_applied_at(self) -> datetime | None:
        """When the newest op was applied (as the applying run's clock read), None before any."""
        q = sa.select(sa.func.max(t.ledger.c.updated_at)).where(t.ledger.c.status == "applied")
        with self.engine.connect() as conn:
            return _aware(conn.execute(q).scalar())

    def settled_keys(self) -> set[str]:
        """Op keys not to send again: applied, or in the dead letters."""
        with self.engine.connect() as conn:
            q = sa.select(t.ledger.c.op_key).where(t.ledger.c.status.in_(["applied", "dead"]))
            return {r[0] for r in conn.execute(q)}

    def record_results(self, results: Sequence[WriteResult], *, max_attempts: int = 5) -> None:
        """Mark ops applied, or failed with their error.

        An op that has failed `max_attempts` times goes to the dead-letter list (`dead`),
        out of the automatic retries.
        """
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
        """Put dead ops back in the retries with a fresh count.

        Put dead ops (all, or those whose key starts with one given) back in the retries
        with a fresh count.
        """
        stmt = t.ledger.update().where(t.ledger.c.status == "dead")
        if op_keys is not None:  # full keys or the prefixes `status` shows
            stmt = stmt.where(sa.or_(*(t.ledger.c.op_key.startswith(k) for k in op_keys)))
        with self.engine.begin() as conn:
            return int(conn.execute(stmt.values(status="failed", attempts=0)).rowcount)

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

    def applied_tasks(self, targets: Collection[str]) -> dict[str, dict[str, Any]]:
        """The values of the task each target last received, by target (applied upserts only)."""
        query = (
            sa.select(t.ledger.c.target, t.ledger.c.payload)
            .where(t.ledger.c.status == "applied")
            .where(t.ledger.c.action == "upsert_task")
            .order_by(t.ledger.c.updated_at)
        )
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for q in _of_accounts(query, t.ledger.c.target, targets):
                for target, payload in conn.execute(q):
                    out[target] = dict(payload.get("values") or {})
        return out
