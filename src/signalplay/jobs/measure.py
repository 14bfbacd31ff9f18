"""The measuring use cases.

Read what the store holds (episodes and their decisions, the tasks signalplay wrote as the CRM
reported them back, the daily profile snapshots) and compute the KPIs, experiment lift, cohorts,
noisy triggers and the backtest of one period.

Imports: stdlib, backtest, definitions, jobs, measure, models, plays, profile, settings, store.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.loader import load_definitions
from signalplay.jobs.context import CRM_SOURCE, Context
from signalplay.jobs.results import Backtests, Measurement, Report
from signalplay.measure.backtest import Backtest, ReplayedEpisode, run_backtest
from signalplay.measure.cohorts import (
    account_outcomes,
    adoption_lift,
    churn_day,
    forecast_accuracy,
    retention,
    save_rate,
    time_to_first_value,
    touched_accounts,
)
from signalplay.measure.experiments import experiment_lift
from signalplay.measure.kpis import (
    ACTIONED,
    EpisodeFacts,
    Period,
    TaskOutcome,
    as_moment,
    episode_facts,
    kpis_by,
    sla_by_week,
)
from signalplay.measure.report import render
from signalplay.measure.verdicts import Verdict, kpis_by_pair, noisy_triggers
from signalplay.models import TASK_OUTCOME, Episode
from signalplay.plays.actions import content_use
from signalplay.profile.values import history_days, history_fields
from signalplay.store import Store

DIMENSIONS = ("trigger", "play", "segment", "owner", "variant")


def task_outcomes(store: Store, source: str = CRM_SOURCE) -> dict[str, list[TaskOutcome]]:
    """The tasks the CRM reported back, by the episode each was written for."""
    episodes = store.task_episodes()
    out: dict[str, list[TaskOutcome]] = {}
    for record in store.iter_records(source, "tasks"):
        block = record.data.get(TASK_OUTCOME)
        if not isinstance(block, dict) or not block.get("key"):
            continue
        key = str(block["key"])
        episode = episodes.get(key)
        if episode is None:
            continue
        out.setdefault(episode, []).append(
            TaskOutcome(
                key=key,
                episode_key=episode,
                closed=bool(block.get("closed")),
                completed_at=as_moment(block.get("completed_at")),
                closure_reason=block.get("closure_reason") or None,
            )
        )
    return out


@dataclass(frozen=True)
class Inputs:
    """What one measurement reads from the store."""

    facts: list[EpisodeFacts]
    snapshots: dict[date, dict[str, dict[str, Any]]]
    latest: dict[str, dict[str, Any]]
    churn: dict[str, date | None]


def _inputs(ctx: Context) -> Inputs:
    settings = ctx.project.settings.measure
    latest = ctx.store.latest_snapshots()
    churn = {a: churn_day(p, settings) for a, p in latest.items()}
    fields = {
        settings.segment_field,
        settings.value_field,
        settings.renewal_field,
        settings.confidence_field,
        settings.first_value_field,
        settings.adoption_field,
    }
    snapshots = ctx.store.snapshot_values(ctx.store.snapshot_days(), fields)
    seg = settings.segment_field

    def segment_of(ep: Episode) -> str:
        on_day = snapshots.get(ep.opened_at.date(), {}).get(ep.account, {}).get(seg)
        value = on_day if on_day is not None else latest.get(ep.account, {}).get(seg)
        return "-" if value in (None, "") else str(value)

    facts = episode_facts(
        ctx.store.episodes(), task_outcomes(ctx.store), segment_of, settings, ctx.clock()
    )
    return Inputs(facts, snapshots, latest, churn)


def default_period(ctx: Context, days: int = 90) -> Period:
    """The last `days` days up to today."""
    today = ctx.clock().date()
    return Period(today - timedelta(days=days - 1), today)


def measure(ctx: Context, period: Period) -> Measurement:
    """Every KPI of the period (the report's tables and plots)."""
    settings = ctx.project.settings.measure
    defs = ctx.definitions
    now = ctx.clock()
    data = _inputs(ctx)
    facts, snaps = data.facts, data.snapshots
    touched = touched_accounts(facts, period)
    accounts = sorted(data.latest)
    untouched = [a for a in accounts if a not in touched]
    groups = {t.id: t.group for t in defs.triggers.triggers}
    cohorts = (("touched", sorted(touched)), ("untouched", untouched))
    accuracy = forecast_accuracy(accounts, snaps, period, data.churn, settings)
    return Measurement(
        period=period,
        episodes=sum(period.holds(f.episode.opened_at) for f in facts),
        kpis={dim: kpis_by(facts, dim, period, settings, now) for dim in DIMENSIONS},
        funnel=funnel(facts, period),
        sla_by_week=sla_by_week(facts, now),
        experiments=experiment_lift(facts, period),
        cohorts={
            name: retention(members, snaps, period, data.churn, settings)
            for name, members in cohorts
        },
        outcomes={
            name: account_outcomes(members, snaps, period, data.churn, settings)
            for name, members in cohorts
        },
        save_rate=save_rate(touched, snaps, period, data.churn, settings),
        forecast_accuracy={str(k): v for k, v in accuracy.items()},
        time_to_first_value=time_to_first_value(accounts, snaps, data.latest, settings),
        adoption_lift=adoption_lift(facts, snaps, period, settings, groups),
        coverage_pct=_coverage(data.latest),
        content_reuse=content_reuse(defs),
        health=health_distribution(data.latest, settings.segment_field),
        churn=data.churn,
        by_trigger_segment=kpis_by_pair(facts, ("trigger", "segment"), period, settings, now),
    )


def funnel(facts: Iterable[EpisodeFacts], period: Period) -> dict[str, dict[str, int]]:
    """Per trigger (and in total).

    Fired → actioned → task closed → outcome (the condition cleared within the window).
    """
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for f in facts:
        if not period.holds(f.episode.opened_at):
            continue
        for name in (f.episode.trigger_id, "all"):
            row = out[name]
            row["fired"] += 1
            if f.status == ACTIONED:
                row["actioned"] += 1
                row["closed"] += bool(f.task and f.task.done)
                row["outcome"] += bool(f.recovered)
    return {k: dict(v) for k, v in sorted(out.items())}


def content_reuse(defs: Definitions) -> dict[str, Any]:
    """Content blocks per play, and the share of blocks that more than one play uses."""
    use = content_use(defs.plays)
    counts = Counter(b for blocks in use.values() for b in blocks)
    shared = sum(1 for n in counts.values() if n > 1)
    return {
        "blocks_per_play": {p: len(b) for p, b in sorted(use.items())},
        "blocks": len(counts),
        "reuse_rate": shared / len(counts) if counts else None,
    }


def health_distribution(
    latest: Mapping[str, Mapping[str, Any]], segment_field: str
) -> dict[str, dict[str, Any]]:
    """Per segment: accounts per health band and the scores (for a histogram)."""
    out: dict[str, dict[str, Any]] = {}
    for profile in latest.values():
        segment = str(profile.get(segment_field) or "-")
        row = out.setdefault(segment, {"bands": Counter(), "scores": []})
        row["bands"][str(profile.get("health_band") or "-")] += 1
        score = profile.get("health_score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            row["scores"].append(float(score))
    return {s: {"bands": dict(v["bands"]), "scores": v["scores"]} for s, v in sorted(out.items())}


def _coverage(latest: Mapping[str, Mapping[str, Any]]) -> float | None:
    if not latest:
        return None
    names = {k for p in latest.values() for k in p if k not in ("account_key", "today")}
    present = sum(1 for p in latest.values() for k in names if p.get(k) not in (None, "", []))
    return round(100 * present / (len(names) * len(latest)), 1) if names else None


def rolling_history(
    ctx: Context, needs: Collection[tuple[str, str, int]]
) -> Callable[[date], Mapping[date, Mapping[str, Mapping[str, Any]]]]:
    """The snapshots the history functions read on a day, for days replayed in order.

    Each snapshot day is read from the store once and kept while a later day still reads it
    (a 180-day window read afresh for every day of a year's replay made it quadratic).
    """
    fields = history_fields(needs)
    kept: dict[date, Mapping[str, Mapping[str, Any]]] = {}

    def history(day: date) -> Mapping[date, Mapping[str, Mapping[str, Any]]]:
        want = history_days(needs, day)
        missing = [d for d in want if d not in kept]
        if missing:
            found = ctx.store.snapshot_values(missing, fields)
            for d in missing:
                kept[d] = found.get(d, {})
        for d in [d for d in kept if not want or d < want[0]]:  # no later day reads it
            del kept[d]
        return {d: kept[d] for d in want}

    return history


def backtest(
    ctx: Context,
    period: Period,
    *,
    triggers_file: Path | None = None,
    churn: Mapping[str, date | None] | None = None,
) -> Backtest | None:
    """Replay the trigger library over the period's snapshots against known churn.

    Replay the trigger library (or another version of triggers.yaml) over the period's snapshots
    against the churn days the profiles know; None without snapshots.
    """
    settings = ctx.project.settings.measure
    defs = (
        ctx.definitions
        if triggers_file is None
        else load_definitions(ctx.project.definitions_dir, triggers_file=triggers_file)
    )
    days = [d for d in ctx.store.snapshot_days() if period.holds(d)]
    if not days:
        return None
    if churn is None:  # (a report has read it already)
        churn = {a: churn_day(p, settings) for a, p in ctx.store.latest_snapshots().items()}
    needs = defs.history
    history = rolling_history(ctx, needs)

    def progress(done: int, total: int) -> None:
        ctx.progress("backtest days", done, total)

    return run_backtest(
        defs,
        days,
        ctx.store.snapshots_on,
        churn,
        settings,
        history=history if needs else None,
        progress=progress,
    )


def verdicts(ctx: Context, measured: Measurement, replay: Backtest | None) -> tuple[Verdict, ...]:
    """The noisy-trigger report: retire, tighten, loosen, change the play; and the predictive."""
    experiments = {e.id: e.trigger for e in ctx.definitions.routing.experiments}
    return tuple(
        noisy_triggers(
            by_trigger_segment=measured.by_trigger_segment,
            lifts=measured.experiments,
            experiment_triggers=experiments,
            backtest=[t.as_dict() for t in replay.triggers] if replay else [],
            base_rate=replay.base_rate if replay else None,
            settings=ctx.project.settings.measure,
        )
    )


def build_report(ctx: Context, period: Period) -> Report:
    """The KPIs, the backtest and the verdicts of a period."""
    measured = measure(ctx, period)
    replay = backtest(ctx, period, churn=measured.churn)
    return Report(measured, replay, verdicts(ctx, measured, replay))


def write_report(ctx: Context, period: Period, path: Path) -> Report:
    """Measure the period and write the HTML report to `path`."""
    report = replace(build_report(ctx, period), path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report.to_json()), encoding="utf-8")
    return report


def backtests(
    ctx: Context,
    period: Period,
    files: Sequence[Path | None],
    *,
    episodes: Path | None = None,
) -> Backtests:
    """The backtest of each trigger file (None: the project's own), by name, side by side.

    A file's entry is None when the period has no snapshots to replay. With `episodes`, the
    first file's replayed episodes are written there as CSV (one row each: account, trigger,
    opened, closed, reason, churn day, churned within the horizon).
    """
    runs = {
        "current" if file is None else str(file): backtest(ctx, period, triggers_file=file)
        for file in files
    }
    first = next(iter(runs.values()), None)
    if episodes is not None and first is not None:
        with episodes.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(ReplayedEpisode.FIELDS)
            writer.writerows(e.row() for e in first.episodes)
    return Backtests(runs, episodes_file=str(episodes) if episodes and first else None)
