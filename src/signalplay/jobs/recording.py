"""USE CASES · the bookkeeping every recorded use case shares: open a run, record its outcome.

A run that writes (run, sync, apply) holds the project's run lock from its start to its end and
may not run as of a moment before the last op applied (`locking`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from signalplay.jobs.context import Context
from signalplay.jobs.locking import held_lock, moving_forward
from signalplay.ops import logs


@dataclass
class RunRecord:
    """A run being recorded: its id, the status and the summary it ends with."""

    run_id: str
    summary: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # or "partial": some ops failed (recorded for retry)


WRITING = {"run", "sync", "apply"}  # the kinds that take the run lock and move time forward


@contextmanager
def recorded_run(
    ctx: Context, kind: str, *, close: bool = True, lock_as: str | None = None
) -> Iterator[RunRecord]:
    """Open a run of `kind` and record how it ended.

    Failed, with the error (secrets blanked), when the body raises; `record.status` (ok, or
    partial), with `record.summary`, when it returns (unless `close` is off: a sharded sync is
    closed by the task that merges its plan). A run that writes holds the project's run lock (as
    `lock_as`, or itself) from start to end and may not run as of a moment before the last op
    applied. The one place runs are opened and closed.
    """
    record = RunRecord(ctx.store.new_run_id())
    writes = kind in WRITING
    lock = held_lock(ctx, lock_as or record.run_id, release=close) if writes else nullcontext()
    with lock:
        if writes:
            moving_forward(ctx)
            # Holding the lock, no other writing run is alive: one still `running` was killed.
            ctx.store.expire_runs(lock_as, "ended without recording an outcome (killed?)")
        ctx.store.start_run(kind, record.run_id)
        with logs.run_context(record.run_id):
            try:
                yield record
            except BaseException as exc:
                error = {"error": logs.redact(str(exc))} if str(exc) else {}
                ctx.store.finish_run(record.run_id, status="failed", summary=error)
                raise
        if close:
            ctx.store.finish_run(record.run_id, status=record.status, summary=record.summary)


def fail_overdue(ctx: Context) -> int:
    """Record the runs still `running` past `lock.time_limit_minutes` as failed; how many."""
    limit = ctx.project.settings.lock.time_limit_minutes
    return ctx.store.expire_runs(
        None,
        f"still running {limit:g} min after its start: "
        "past its time limit (lock.time_limit_minutes)",
        started_before=ctx.clock() - timedelta(minutes=limit),
    )
