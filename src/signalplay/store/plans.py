"""Saved plans, and the parts a sharded run plans before they merge.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from signalplay.models import WriteOp
from signalplay.store import schema as t
from signalplay.store.base import StoreBase, _jsonable


class PlansStore(StoreBase):
    """Saved plans, and the parts a sharded run plans before they merge."""

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
        """Save the ops of every part of a run as its plan.

        Save the ops of every part of a run as its plan, ordered by `key` over their stored
        JSON; returns the plan id and the parts' summaries in part order.
        """
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

    def plan_run_id(self, plan_id: str) -> str | None:
        """The run that made a saved plan."""
        with self.engine.connect() as conn:
            q = sa.select(t.plans.c.run_id).where(t.plans.c.plan_id == plan_id)
            row = conn.execute(q).first()
        return None if row is None else str(row[0])

    def latest_plan_id(self) -> str | None:
        """The newest saved plan."""
        with self.engine.connect() as conn:
            q = sa.select(t.plans.c.plan_id).order_by(t.plans.c.created_at.desc()).limit(1)
            row = conn.execute(q).first()
        return None if row is None else str(row[0])

    def mark_plan(self, plan_id: str, status: str) -> None:
        """Record what became of a plan: applied, or partial (some ops failed)."""
        with self.engine.begin() as conn:
            conn.execute(t.plans.update().where(t.plans.c.plan_id == plan_id).values(status=status))
