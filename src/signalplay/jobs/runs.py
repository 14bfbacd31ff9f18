"""USE CASES · the runs.

The bookkeeping every recorded use case shares (open a run, record its outcome), the whole run (pull
→ profile → evaluate → plan → apply), a sync (pull only) and a preview (the plan a run would make,
written nowhere but the saved plan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from signalplay.evaluate.evaluator import batch_gc
from signalplay.jobs.context import Context
from signalplay.jobs.evaluation import assess
from signalplay.jobs.planning import plan
from signalplay.jobs.profiles import Profiles, build_profiles
from signalplay.jobs.results import (
    Applied,
    EvaluationCounts,
    PlanResult,
    RunResult,
    SyncResult,
)
from signalplay.jobs.sources import pull
from signalplay.jobs.writes import apply
from signalplay.ops import logs


@dataclass
class RunRecord:
    """A run being recorded: its id and the summary it ends with."""

    run_id: str
    summary: dict[str, Any] = field(default_factory=dict)


@contextmanager
def recorded_run(ctx: Context, kind: str, *, close: bool = True) -> Iterator[RunRecord]:
    """Open a run of `kind` and record how it ended.

    Failed, with the error (secrets blanked), when the body raises; ok, with `record.summary`,
    when it returns (unless `close` is off: a sharded sync is closed by the task that merges its
    plan). The one place runs are opened and closed.
    """
    record = RunRecord(ctx.store.start_run(kind))
    with logs.run_context(record.run_id):
        try:
            yield record
        except BaseException as exc:
            error = {"error": logs.redact(str(exc))} if str(exc) else {}
            ctx.store.finish_run(record.run_id, status="failed", summary=error)
            raise
    if close:
        ctx.store.finish_run(record.run_id, status="ok", summary=record.summary)


def run(ctx: Context, *, dry_run: bool = False, only: Collection[str] | None = None) -> RunResult:
    """Pull → profile → evaluate → plan → apply, recorded as one run.

    `only` pulls just the sources named (the others' stored records are used as they are). A dry
    run plans from an evaluation the store never sees and applies nothing.
    """
    started = ctx.clock()
    with recorded_run(ctx, "run") as record:
        streams = pull(ctx, record.run_id, only=only)
        with batch_gc():
            profiles = build_profiles(ctx, record.run_id)
            assessed = assess(ctx, profiles, save=not dry_run)
            planned = plan(
                ctx,
                profiles,
                record.run_id,
                record=not dry_run,
                preview=assessed if dry_run else None,
            )
        applied = Applied() if dry_run else apply(ctx, planned.ops)
        if not dry_run:
            ctx.store.mark_plan(planned.plan_id, "applied")
        result = replace(
            _result(
                profiles,
                planned=planned,
                streams=streams,
                evaluation=assessed.summary,
                applied=applied,
                dry_run=dry_run,
            ),
            seconds=round((ctx.clock() - started).total_seconds(), 2),
        )
        record.summary = result.to_json()
    return result


def _result(
    profiles: Profiles,
    *,
    planned: PlanResult,
    streams: dict[str, dict[str, float]],
    evaluation: EvaluationCounts,
    applied: Applied,
    dry_run: bool,
) -> RunResult:
    bands = Counter(str(p.get("health_band")) for p in profiles.values.values())
    return RunResult(
        run_id=planned.run_id,
        plan_id=planned.plan_id,
        accounts=len(profiles.values),
        streams=streams,
        evaluation=evaluation,
        plan=planned.stats,
        applied=applied,
        health_bands=dict(sorted(bands.items())),
        unmatched=profiles.unmatched,
        conflicts=profiles.conflicts,
        quarantined=profiles.quarantined,
        coverage={
            "overall_pct": profiles.coverage.overall,
            "sources_pct": profiles.coverage.sources,
        },
        seconds=0.0,
        dry_run=dry_run,
    )


def sync(ctx: Context, *, only: Collection[str] | None = None, full: bool = False) -> SyncResult:
    """Pull the sources into the store from their saved cursors, recorded as a run.

    Pull the sources (all, or those named in `only`) into the store from their saved cursors
    (from the start with `full`), recorded as a run.
    """
    with recorded_run(ctx, "sync") as record:
        streams = pull(ctx, record.run_id, only=only, full=full)
        record.summary = {"streams": streams}
    return SyncResult(run_id=record.run_id, streams=streams)


def preview(ctx: Context) -> PlanResult:
    """Pull, profile and evaluate, then save the plan a run would make, without writing it.

    The store keeps no episode, decision or ledger entry of the preview.
    """
    with recorded_run(ctx, "plan") as record:
        pull(ctx, record.run_id)
        profiles = build_profiles(ctx, record.run_id)
        assessed = assess(ctx, profiles, save=False)
        result = plan(ctx, profiles, record.run_id, record=False, preview=assessed)
        record.summary = dict(result.stats)
    return result
