"""MEASURE · cohorts.

Retention (GRR, NRR), account outcomes, save rate, forecast accuracy, time to first value and
adoption lift.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from signalplay.measure.kpis import (
    ACTIONED,
    HOLDOUT,
    EpisodeFacts,
    Period,
    Snapshots,
    _day,
    _median,
    _ratio,
)
from signalplay.settings import MeasureSettings


# ---- cohorts --------------------------------------------------------------------------------
def _value(snapshots: Snapshots, day: date, account: str, name: str) -> Any:
    return (snapshots.get(day) or {}).get(account, {}).get(name)


def bounds(snapshots: Snapshots, period: Period) -> Period | None:
    """The first and last snapshot days within the period (None without any).

    What "the period's first day" reads when the snapshots begin later or end earlier.
    """
    days = [d for d in snapshots if period.holds(d)]
    return Period(min(days), max(days)) if days else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Retention:
    """Gross and net revenue retention of a cohort over the period."""

    accounts: int
    start_value: float
    end_value: float
    retained_value: float  # each account's end value capped at its start value

    @property
    def grr(self) -> float | None:
        """Gross revenue retention (None without a start value)."""
        return _ratio(self.retained_value, self.start_value)

    @property
    def nrr(self) -> float | None:
        """Net revenue retention (None without a start value)."""
        return _ratio(self.end_value, self.start_value)


def churn_day(profile: Mapping[str, Any], settings: MeasureSettings) -> date | None:
    """The day the account churned, from its profile (None: still a customer)."""
    return _day(profile.get(settings.churn_field))


def retention(
    accounts: Iterable[str],
    snapshots: Snapshots,
    period: Period,
    churned: Mapping[str, date | None],
    settings: MeasureSettings,
) -> Retention:
    """GRR and NRR of `accounts`.

    Their value on the period's first snapshot day against its last (0 for an account churned by
    the period's end); accounts without a start value are left out.
    """
    n, start_sum, end_sum, kept = 0, 0.0, 0.0, 0.0
    seen = bounds(snapshots, period)
    if seen is None:
        return Retention(0, 0.0, 0.0, 0.0)
    for account in accounts:
        start = _number(_value(snapshots, seen.start, account, settings.value_field))
        if not start:
            continue
        gone = churned.get(account)
        if gone is not None and gone <= period.end:
            end = 0.0
        else:
            end = _number(_value(snapshots, seen.end, account, settings.value_field)) or 0.0
        n += 1
        start_sum += start
        end_sum += end
        kept += min(start, end)
    return Retention(n, start_sum, end_sum, kept)


def account_outcomes(
    accounts: Iterable[str],
    snapshots: Snapshots,
    period: Period,
    churned: Mapping[str, date | None],
    settings: MeasureSettings,
) -> dict[str, int]:
    """What became of the accounts over the period, by their first and last snapshot in it.

    Churned (a churn day in the period); else renewed (a renewal date in the period that moved
    on), and contracted or expanded (value down or up).
    """
    out = {"churned": 0, "renewed": 0, "contracted": 0, "expanded": 0}
    seen = bounds(snapshots, period)
    if seen is None:
        return out
    for account in accounts:
        gone = churned.get(account)
        if gone is not None and period.holds(gone):
            out["churned"] += 1
            continue
        start = _number(_value(snapshots, seen.start, account, settings.value_field))
        end = _number(_value(snapshots, seen.end, account, settings.value_field))
        if start is None or end is None:
            continue
        out["renewed"] += _renewed(snapshots, seen, account, settings)
        if end < start:
            out["contracted"] += 1
        elif end > start:
            out["expanded"] += 1
    return out


def _renewed(snapshots: Snapshots, seen: Period, account: str, settings: MeasureSettings) -> bool:
    before = _day(_value(snapshots, seen.start, account, settings.renewal_field))
    after = _day(_value(snapshots, seen.end, account, settings.renewal_field))
    return before is not None and after is not None and seen.holds(before) and after > before


def touched_accounts(facts: Sequence[EpisodeFacts], period: Period) -> set[str]:
    """Accounts with an actioned episode opened in the period."""
    return {
        f.episode.account
        for f in facts
        if f.status == ACTIONED and period.holds(f.episode.opened_at)
    }


def save_rate(
    touched: set[str],
    snapshots: Snapshots,
    period: Period,
    churned: Mapping[str, date | None],
    settings: MeasureSettings,
) -> tuple[float | None, int]:
    """The save rate of the touched accounts whose renewal fell in the period.

    Of the touched accounts whose renewal (as known on the period's first snapshot day) fell in
    the period, the share that did not churn by its end; and how many there were.
    """
    seen = bounds(snapshots, period)
    first = seen.start if seen else period.start
    due = [
        a
        for a in touched
        if (d := _day(_value(snapshots, first, a, settings.renewal_field))) is not None
        and period.holds(d)
    ]
    kept = [a for a in due if not ((c := churned.get(a)) is not None and c <= period.end)]
    return _ratio(len(kept), len(due)), len(due)


def forecast_accuracy(
    accounts: Iterable[str],
    snapshots: Snapshots,
    period: Period,
    churned: Mapping[str, date | None],
    settings: MeasureSettings,
) -> dict[int, tuple[float | None, int]]:
    """How often the renewal confidence at each checkpoint matched the outcome.

    Per renewal checkpoint (days before renewal), how often the renewal confidence on that day
    (confident: renews; otherwise churns) matched what happened, over the renewals that fell in
    the period and have a snapshot on the checkpoint day: checkpoint → (accuracy, n).
    """
    hits: dict[int, list[bool]] = {k: [] for k in settings.checkpoints}
    seen = bounds(snapshots, period)
    first = seen.start if seen else period.start
    for account in accounts:
        renewal = _day(_value(snapshots, first, account, settings.renewal_field))
        if renewal is None or not period.holds(renewal):
            continue
        gone = churned.get(account)
        renewed = not (gone is not None and gone <= renewal + timedelta(days=settings.grace_days))
        for k in settings.checkpoints:
            day = renewal - timedelta(days=k)
            confidence = _value(snapshots, day, account, settings.confidence_field)
            if confidence is None:
                continue
            hits[k].append((str(confidence) in settings.confident) == renewed)
    return {k: (_ratio(sum(v), len(v)), len(v)) for k, v in hits.items()}


def time_to_first_value(
    accounts: Iterable[str],
    snapshots: Snapshots,
    latest: Mapping[str, Mapping[str, Any]],
    settings: MeasureSettings,
) -> dict[str, tuple[float | None, int]]:
    """Per segment, the median days from contract start to first value.

    Per segment, the median days from contract start to the first snapshot day on which the
    first-value field is positive, over the accounts that started within the snapshots and
    reached it: segment → (days, n).
    """
    days = sorted(snapshots)
    spans: dict[str, list[float]] = defaultdict(list)
    for account in accounts:
        profile = latest.get(account) or {}
        start = _day(profile.get(settings.contract_start_field))
        if start is None or not days or start < days[0]:
            continue  # started before the snapshots: its first value is not on record
        first = next(
            (
                d
                for d in days
                if d >= start
                and (_number(_value(snapshots, d, account, settings.first_value_field)) or 0) > 0
            ),
            None,
        )
        if first is not None:
            segment = str(profile.get(settings.segment_field) or "-")
            spans[segment].append(float((first - start).days))
    return {s: (_median(v), len(v)) for s, v in sorted(spans.items())}


def adoption_lift(
    facts: Sequence[EpisodeFacts],
    snapshots: Snapshots,
    period: Period,
    settings: MeasureSettings,
    groups: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """Per segment, the adoption change after an adoption episode, actioned vs holdout.

    Per segment, the mean change of the adoption field from an adoption episode's opening day to
    `outcome_days` later, actioned against holdout (episodes of the adoption groups opened in
    the period with both snapshots).
    """
    change: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for fact in facts:
        ep = fact.episode
        if fact.status not in (ACTIONED, HOLDOUT) or not period.holds(ep.opened_at):
            continue
        if groups.get(ep.trigger_id) not in settings.adoption_groups:
            continue
        day = ep.opened_at.date()
        before = _number(_value(snapshots, day, ep.account, settings.adoption_field))
        later = day + timedelta(days=settings.outcome_days)
        after = _number(_value(snapshots, later, ep.account, settings.adoption_field))
        if before is None or after is None:
            continue
        change[fact.segment][fact.status].append(after - before)
    out = {}
    for segment, arms in sorted(change.items()):
        acted, held = arms.get(ACTIONED, []), arms.get(HOLDOUT, [])
        mean_a = statistics.fmean(acted) if acted else None
        mean_h = statistics.fmean(held) if held else None
        out[segment] = {
            "actioned": mean_a,
            "actioned_n": len(acted),
            "holdout": mean_h,
            "holdout_n": len(held),
            "lift": None if mean_a is None or mean_h is None else mean_a - mean_h,
        }
    return out
