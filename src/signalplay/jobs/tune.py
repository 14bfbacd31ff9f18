"""USE CASE · tune.

Fit the health score's weights and bands on the store's history and its outcomes, and write the
proposal beside `health.yaml` (`health.yaml.proposed`) for RevOps to review; replay threshold
variants of every trigger and write `triggers.yaml.proposed` the same way. Nothing changes until
they replace the file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

import yaml

from signalplay.definitions.schema import TriggersFile
from signalplay.jobs.context import Context
from signalplay.jobs.measure import backtest, rolling_history
from signalplay.jobs.results import TunedHealth, TunedTriggers
from signalplay.measure import trigger_tuning
from signalplay.measure.backtest import ReplayedEpisode
from signalplay.measure.cohorts import churn_day
from signalplay.measure.kpis import Period
from signalplay.measure.tuning import DayRows, TuneError, proposal_yaml, propose, samples_from
from signalplay.profile.values import history_values

PROPOSED = "health.yaml.proposed"
PROPOSED_TRIGGERS = "triggers.yaml.proposed"


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
    history = rolling_history(ctx, needs)
    for n, day in enumerate(days):
        profiles = ctx.store.snapshots_on(day)
        names = sorted(profiles)
        rows = [dict(profiles[a]) for a in names]
        if needs:
            past = history(day)
            for account, row in zip(names, rows, strict=True):
                row.update(history_values(account, needs, past, today=day))
        ctx.progress("tune health days", n + 1, len(days))
        yield day, names, rows


def tune_triggers(
    ctx: Context,
    *,
    only: Sequence[str] = (),
    factors: Sequence[float] = trigger_tuning.FACTORS,
) -> TunedTriggers:
    """Replay each trigger beside its threshold variants over the whole history; propose.

    The history is split in two at its middle day: a variant is chosen on the older part and
    proposed only when the newer part agrees. `only` restricts the replay to these triggers.
    """
    settings = ctx.project.settings.measure
    days = ctx.store.snapshot_days()
    if len(days) < 2:
        raise TuneError(
            f"{len(days)} snapshot day(s): backfill a longer history before tuning triggers"
        )
    library = ctx.definitions.triggers.triggers
    known = {t.id for t in library}
    unknown = sorted(set(only) - known)
    if unknown:
        raise TuneError(f"no trigger {', '.join(unknown)} in triggers.yaml")
    chosen = [t for t in library if not only or t.id in only]
    tuned, index = trigger_tuning.variants(chosen, factors)
    # every trigger of the library is in the file (routing names them), variants after them
    replayed = [*library, *(t for t in tuned if t.id not in known)]
    split = days[len(days) // 2]
    churn = {a: churn_day(p, settings) for a, p in ctx.store.latest_snapshots().items()}
    older = (days[0], split - timedelta(days=1))
    newer = (split, days[-1])
    with tempfile.TemporaryDirectory(prefix="signalplay-tune-") as tmp:
        path = Path(tmp) / "triggers.yaml"
        doc = TriggersFile(version=1, triggers=tuple(replayed)).model_dump(
            mode="json", exclude_defaults=True
        )
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        replay = backtest(ctx, Period(days[0], days[-1]), triggers_file=path, churn=churn)
    if replay is None:  # pragma: no cover - days were checked above
        raise TuneError("no snapshots to replay")
    by_variant: dict[str, list[ReplayedEpisode]] = {v: [] for v in index}
    for e in replay.episodes:
        by_variant.setdefault(e.trigger_id, []).append(e)
    horizon = settings.horizon_days
    figures = {
        v: (
            trigger_tuning.figures(eps, churn, older, horizon),
            trigger_tuning.figures(eps, churn, newer, horizon),
        )
        for v, eps in by_variant.items()
    }
    chance = trigger_tuning.base_rate(churn, newer, horizon)
    tunings = trigger_tuning.judge(
        index, figures, base_rate=chance, min_episodes=settings.min_episodes
    )
    current = ctx.project.definitions_dir / "triggers.yaml"
    target = current.with_name(PROPOSED_TRIGGERS)
    target.write_text(
        trigger_tuning.proposal_yaml(current.read_text(encoding="utf-8"), tunings, split=split),
        encoding="utf-8",
    )
    return TunedTriggers(
        tunings=tunings,
        path=target,
        split=split,
        variants=len(index),
        base_rate=chance,
    )
