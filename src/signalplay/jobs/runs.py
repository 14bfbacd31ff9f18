"""USE CASES · the runs.

The bookkeeping every recorded use case shares (open a run, record its outcome), the whole run (pull
→ profile → evaluate → plan → apply), a sync (pull only) and a preview (the plan a run would make,
written nowhere but the saved plan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import replace

from signalplay.evaluate.evaluator import batch_gc
from signalplay.jobs.context import Context
from signalplay.jobs.evaluation import assess
from signalplay.jobs.planning import plan
from signalplay.jobs.profiles import Profiles, build_profiles
from signalplay.jobs.recording import recorded_run
from signalplay.jobs.results import (
    Applied,
    EvaluationCounts,
    PlanResult,
    RunResult,
    SyncResult,
)
from signalplay.jobs.sources import pull
from signalplay.jobs.writes import apply


def run(
    ctx: Context,
    *,
    dry_run: bool = False,
    only: Collection[str] | None = None,
    extend_edits: bool = False,
) -> RunResult:
    """Pull → profile → evaluate → plan → apply, recorded as one run.

    `only` pulls just the sources named (the others' stored records are used as they are). The
    run is `partial` when an op failed (it stays in the ledger for the next run to retry). A dry
    run is a preview: it refreshes the sources, then plans from profiles and an evaluation the
    store never sees, records no run and applies nothing. `extend_edits` carries plays edited
    since their open episodes were actioned to those episodes' tasks.
    """
    if dry_run:
        return _previewed(ctx, ctx.store.new_run_id(), only=only, extend_edits=extend_edits)
    started = ctx.clock()
    with recorded_run(ctx, "run") as record:
        streams = pull(ctx, record.run_id, only=only)
        with batch_gc():
            profiles = build_profiles(ctx, record.run_id)
            assessed = assess(ctx, profiles)
            planned = plan(ctx, profiles, record.run_id, extend_edits=extend_edits)
        applied = apply(ctx, planned.ops)
        ctx.store.mark_plan(planned.plan_id, "partial" if applied.failed else "applied")
        result = replace(
            _result(
                profiles,
                planned=planned,
                streams=streams,
                evaluation=assessed.summary,
                applied=applied,
                dry_run=False,
            ),
            seconds=round((ctx.clock() - started).total_seconds(), 2),
        )
        record.summary = result.to_json()
        record.status = "partial" if applied.failed else "ok"
    return result


def _previewed(
    ctx: Context, run_id: str, *, only: Collection[str] | None = None, extend_edits: bool = False
) -> RunResult:
    started = ctx.clock()
    streams = pull(ctx, run_id, only=only)
    with batch_gc():
        profiles = build_profiles(ctx, run_id, save=False)
        assessed = assess(ctx, profiles, save=False)
        planned = plan(
            ctx, profiles, run_id, record=False, preview=assessed, extend_edits=extend_edits
        )
    return replace(
        _result(
            profiles,
            planned=planned,
            streams=streams,
            evaluation=assessed.summary,
            applied=Applied(),
            dry_run=True,
        ),
        seconds=round((ctx.clock() - started).total_seconds(), 2),
    )


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


def preview(ctx: Context, *, extend_edits: bool = False) -> PlanResult:
    """Pull, profile and evaluate, then save the plan a run would make, without writing it.

    The store keeps no run, snapshot, profile, episode, decision or ledger entry of the preview
    (for any `as_of`): only the sources' records it refreshed and the saved plan `apply` takes.
    """
    run_id = ctx.store.new_run_id()
    pull(ctx, run_id)
    profiles = build_profiles(ctx, run_id, save=False)
    assessed = assess(ctx, profiles, save=False)
    return plan(ctx, profiles, run_id, record=False, preview=assessed, extend_edits=extend_edits)
