"""MEASURE · noisy and predictive triggers.

Verdicts to retire, tighten, loosen or keep each trigger, from closures, lift and the backtest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signalplay.measure.experiments import Lift
from signalplay.measure.kpis import LOOSEN_RECALL, EpisodeFacts, GroupKpis, Period, _add
from signalplay.settings import MeasureSettings


# ---- noisy and predictive triggers -------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What the numbers say about one trigger (in one segment, or all)."""

    trigger: str
    segment: str
    verdict: str  # retire, tighten, loosen, change_play, predictive
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The verdict, as the report and `--json` show it."""
        return {
            "trigger": self.trigger,
            "segment": self.segment,
            "verdict": self.verdict,
            "reason": self.reason,
        }


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def noisy_triggers(
    *,
    by_trigger_segment: Mapping[tuple[str, str], GroupKpis],
    lifts: Sequence[Lift],
    experiment_triggers: Mapping[str, str],
    backtest: Sequence[Mapping[str, Any]],
    base_rate: float | None,
    settings: MeasureSettings,
) -> list[Verdict]:
    """Flag triggers to retire, tighten, loosen or keep.

    Flag triggers whose closures say false positive (retire above the retire rate, else tighten
    the threshold, per segment), whose plays show no outcome lift against their holdout (change
    the play), and name the predictive ones from the backtest (precision at least twice the base
    churn rate; loosen those that warn too few churners).
    """
    return [
        *_by_closures(by_trigger_segment, settings),
        *_by_lift(lifts, experiment_triggers, settings),
        *_by_backtest(backtest, base_rate, settings),
    ]


def _by_closures(
    groups: Mapping[tuple[str, str], GroupKpis], settings: MeasureSettings
) -> Iterable[Verdict]:
    for (trigger, segment), k in sorted(groups.items()):
        rate, closed = k.false_positive_rate, sum(k.reasons.values())
        if rate is None or closed < settings.min_episodes:
            continue
        said = f"{_pct(rate)} of {closed} closures were false positives"
        if rate >= settings.retire_false_positive_rate:
            yield Verdict(trigger, segment, "retire", said)
        elif rate >= settings.max_false_positive_rate:
            yield Verdict(trigger, segment, "tighten", f"{said}: raise its threshold for {segment}")


def _by_lift(
    lifts: Sequence[Lift], experiment_triggers: Mapping[str, str], settings: MeasureSettings
) -> Iterable[Verdict]:
    for lift in lifts:
        interval, value = lift.interval, lift.lift
        if interval is None or value is None:
            continue
        if min(lift.n, lift.holdout_n) < settings.min_episodes or value > 0:
            continue
        trigger = experiment_triggers.get(lift.experiment, lift.experiment)
        low, high = interval
        yield Verdict(
            trigger,
            "all",
            "change_play",
            f"variant {lift.variant}: no outcome lift over the holdout "
            f"({value:+.2f}, 95% CI {low:+.2f} to {high:+.2f})",
        )


def _by_backtest(
    rows: Sequence[Mapping[str, Any]], base_rate: float | None, settings: MeasureSettings
) -> Iterable[Verdict]:
    for row in rows:
        precision, recall = row.get("precision"), row.get("recall")
        if precision is None or not base_rate or (row.get("episodes") or 0) < settings.min_episodes:
            continue
        if precision < 2 * base_rate:
            continue
        versus = f"{_pct(precision)} vs {_pct(base_rate)} base churn"
        if recall is not None and recall < LOOSEN_RECALL:
            yield Verdict(
                row["trigger"],
                "all",
                "loosen",
                f"precise ({versus}) but warns only {_pct(recall)} of churners",
            )
            continue
        lead = row.get("lead_days")
        ahead = f", {lead:.0f} days ahead" if lead is not None else ""
        yield Verdict(row["trigger"], "all", "predictive", f"precision {versus}{ahead}")


def kpis_by_pair(
    facts: Sequence[EpisodeFacts],
    dimensions: tuple[str, str],
    period: Period,
    settings: MeasureSettings,
    now: datetime,
) -> dict[tuple[str, str], GroupKpis]:
    """KPIs per (first, second) dimension values, e.g. per trigger and segment."""
    groups: dict[tuple[str, str], GroupKpis] = {}
    for fact in facts:
        if not period.holds(fact.episode.opened_at):
            continue
        key = (fact.dimension(dimensions[0]), fact.dimension(dimensions[1]))
        _add(groups.setdefault(key, GroupKpis(f"{key[0]} / {key[1]}")), fact, settings, now)
    return groups
