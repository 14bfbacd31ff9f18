"""USE CASE · tune.

Fit the health score's weights and bands on the store's history and its outcomes, and write the
proposal beside `health.yaml` (`health.yaml.proposed`) for RevOps to review; nothing changes
until they replace the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from signalplay.jobs.context import Context
from signalplay.jobs.results import TunedHealth
from signalplay.measure.cohorts import churn_day
from signalplay.measure.tuning import DayRows, TuneError, proposal_yaml, propose, samples_from
from signalplay.profile.values import history_days, history_fields, history_values

PROPOSED = "health.yaml.proposed"


def tune_health(ctx: Context, *, step_days: int = 7, horizon: int | None = None) -> TunedHealth:
    """Fit on every `step_days`-th snapshot day whose horizon has passed; write the proposal.

    A day whose horizon reaches past today is left out: who churns after today is not known
    yet, and counting them as staying would bias the fit.
    """
    settings = ctx.project.settings.measure
    horizon = horizon or settings.horizon_days
    today = ctx.clock().date()
    known = [d for d in ctx.store.snapshot_days() if d + timedelta(days=horizon) <= today]
    days = known[::-1][::step_days][::-1]
    if len(days) < 2:
        raise TuneError(
            f"{len(known)} snapshot day(s) are at least {horizon} days old (the horizon): "
            "backfill a longer history, or tune with a shorter --horizon"
        )
    churn = {a: churn_day(p, settings) for a, p in ctx.store.latest_snapshots().items()}
    defs = ctx.definitions
    samples = samples_from(
        defs, _day_rows(ctx, days), churn, horizon=horizon, segment_field=settings.segment_field
    )
    proposal = propose(samples)
    current = ctx.project.definitions_dir / "health.yaml"
    path = current.with_name(PROPOSED)
    path.write_text(
        proposal_yaml(
            current.read_text(encoding="utf-8"),
            defs.health,
            proposal,
            segment_field=settings.segment_field,
        ),
        encoding="utf-8",
    )
    return TunedHealth(
        proposal=proposal,
        path=path,
        horizon=horizon,
        days=len(days),
        current={m.id: m.weight for m in defs.health.measures},
    )


def _day_rows(ctx: Context, days: list[date]) -> Iterator[DayRows]:
    needs = ctx.definitions.history
    fields = history_fields(needs)
    for n, day in enumerate(days):
        profiles = ctx.store.snapshots_on(day)
        names = sorted(profiles)
        rows = [dict(profiles[a]) for a in names]
        if needs:
            past = ctx.store.snapshot_values(history_days(needs, day), fields)
            for account, row in zip(names, rows, strict=True):
                row.update(history_values(account, needs, past, today=day))
        ctx.progress("tune health days", n + 1, len(days))
        yield day, names, rows
