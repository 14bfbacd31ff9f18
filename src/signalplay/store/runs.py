"""The runs table: each sync, plan and run with its status and summary.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from signalplay.store import schema as t
from signalplay.store.base import StoreBase


class RunsStore(StoreBase):
    """The runs table: each sync, plan and run with its status and summary."""

    # runs -----------------------------------------------------------------------------------
    def new_run_id(self) -> str:
        """A fresh run id: the moment and a random tail."""
        return f"{self.clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    def start_run(self, kind: str, run_id: str | None = None) -> str:
        """Record the start of a run (under `run_id`, or a fresh one) and return its id."""
        run_id = run_id or self.new_run_id()
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

    def expire_runs(
        self, keep: str | None, reason: str, *, started_before: datetime | None = None
    ) -> int:
        """Record every run still `running` but `keep` as failed with `reason`; how many.

        Called by the holder of the run lock (no other writing run can be alive then), or with
        `started_before` for the runs that overran their time limit.
        """
        q = t.runs.update().where(t.runs.c.status == "running")
        if keep is not None:
            q = q.where(t.runs.c.run_id != keep)
        if started_before is not None:
            q = q.where(t.runs.c.started_at < started_before)
        with self.engine.begin() as conn:
            done = conn.execute(
                q.values(status="failed", finished_at=self.clock(), summary={"error": reason})
            )
        return int(done.rowcount or 0)

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
