"""USE CASE · the whole run: pull → profile → evaluate → plan → apply, recorded as one run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime
from typing import Any

from signalplay.evaluate.evaluator import (
    batch_gc,
)
from signalplay.jobs.context import Context
from signalplay.jobs.evaluation import assess
from signalplay.jobs.planning import plan
from signalplay.jobs.profiles import build_profiles
from signalplay.jobs.sources import pull
from signalplay.jobs.writes import NOTHING_APPLIED, apply
from signalplay.ops import logs


def run(
    ctx: Context, *, dry_run: bool = False, only: Collection[str] | None = None
) -> dict[str, Any]:
    """Pull → profile → evaluate → plan → apply, recorded as one run; `only` pulls just the
    sources named (the others' stored records are used as they are)."""
    run_id = ctx.store.start_run("run")
    started: datetime = ctx.clock()
    with logs.run_context(run_id):
        return _run(ctx, run_id, started, dry_run=dry_run, only=only)


def _run(
    ctx: Context,
    run_id: str,
    started: datetime,
    *,
    dry_run: bool,
    only: Collection[str] | None,
) -> dict[str, Any]:
    try:
        streams = pull(ctx, run_id, only=only)
        with batch_gc():
            profiles = build_profiles(ctx, run_id)
            assessed = assess(ctx, profiles, save=not dry_run)
            evaluation = assessed.summary
            plan_id, ops, plan_stats = plan(
                ctx, profiles, run_id, record=not dry_run, preview=assessed if dry_run else None
            )
        applied = dict(NOTHING_APPLIED) if dry_run else apply(ctx, ops)
        if not dry_run:
            ctx.store.mark_plan(plan_id, "applied")
    except Exception:
        ctx.store.finish_run(run_id, status="failed", summary={})
        raise
    bands = Counter(str(p.get("health_band")) for p in profiles.values.values())
    summary = {
        "run_id": run_id,
        "plan_id": plan_id,
        "accounts": len(profiles.values),
        "streams": streams,
        **evaluation,
        "plan": plan_stats,
        **applied,
        "health_bands": dict(sorted(bands.items())),
        "unmatched": profiles.unmatched,
        "conflicts": profiles.conflicts,
        "quarantined": profiles.quarantined,
        "coverage": {
            "overall_pct": profiles.coverage.overall,
            "sources_pct": profiles.coverage.sources,
        },
        "seconds": round((ctx.clock() - started).total_seconds(), 2),
        "dry_run": dry_run,
    }
    ctx.store.finish_run(run_id, status="ok", summary=summary)
    return summary
