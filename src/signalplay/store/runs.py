"""The runs table: each sync, plan and run with its status and summary.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from signalplay.store import schema as t
from signalplay.store.base import StoreBase


class RunsStore(StoreBase):
    """The runs table: each sync, plan and run with its status and summary."""

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
