"""Measure: what the plays did. KPIs per trigger, play, segment, owner and experiment variant
over a period (trigger-to-action, time-to-intervention and SLA attainment, action-to-outcome,
false positives from closure reasons), cohort figures (save rate, GRR and NRR of touched and
untouched accounts, renewal forecast accuracy, time-to-first-value, adoption lift), the lift of
each play variant against its holdout with a confidence interval, and the triggers that are noisy.

Everything is computed from what the store holds: episodes with their decisions, the tasks
signalplay wrote as the CRM reports them back (status, completion, closure reason), and the daily
profile snapshots. Pure functions of their inputs. Imports: stdlib, episodes, settings.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from signalplay.models import Episode
from signalplay.settings import MeasureSettings

ACTIONED, HOLDOUT = "actioned", "holdout"
CLEARED = "condition_cleared"  # signalplay's own closure reason
Snapshots = Mapping[date, Mapping[str, Mapping[str, Any]]]  # day → account → field → value
Z95 = 1.959963984540054
LOOSEN_RECALL = 0.1  # a precise trigger that warns fewer churners than this: loosen it


@dataclass(frozen=True)
class TaskOutcome:
    """A task signalplay wrote, as the CRM reports it back."""

    key: str
    episode_key: str | None
    closed: bool
    completed_at: datetime | None = None
    closure_reason: str | None = None

    @property
    def done(self) -> datetime | None:
        """When a person completed it (None while open, or when signalplay closed it because
        its condition cleared: that is no intervention)."""
        if not self.closed or self.closure_reason == CLEARED:
            return None
        return self.completed_at


@dataclass(frozen=True)
class Period:
    """[start, end], whole days."""

    start: date
    end: date

    def holds(self, moment: datetime | date) -> bool:
        day = moment.date() if isinstance(moment, datetime) else moment
        return self.start <= day <= self.end


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def as_moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ratio(num: int | float, den: int | float) -> float | None:
    return None if not den else num / den


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# ---- per-episode facts ----------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeFacts:
    """One episode with what happened to it."""

    episode: Episode
    status: str  # the decision's: actioned, holdout, suppressed, capped (or "" when none)
    segment: str
    tasks: tuple[TaskOutcome, ...]  # every task its play wrote (a CSM's and a sales owner's...)
    recovered: bool | None  # the condition cleared within the outcome window (None: too early)

    @property
    def task(self) -> TaskOutcome | None:
        """The task that counts for the intervention: the first a person completed, else the
        first written."""
        done = [t for t in self.tasks if t.done is not None]
        if done:
            return min(done, key=lambda t: t.done or datetime.max.replace(tzinfo=UTC))
        return self.tasks[0] if self.tasks else None

    @property
    def variant(self) -> str | None:
        if self.status == HOLDOUT:
            return "holdout"
        return self.episode.decision.get("variant")

    def dimension(self, name: str) -> str:
        d = self.episode.decision
        value = {
            "trigger": self.episode.trigger_id,
            "play": d.get("play_id"),
            "segment": self.segment,
            "owner": d.get("owner_id"),
            "variant": self.variant,
        }[name]
        return "-" if value in (None, "") else str(value)


def recovered_within(ep: Episode, days: int, now: datetime) -> bool | None:
    """Whether the episode's condition cleared within `days` of opening; None while that window
    is still running and the condition holds."""
    limit = ep.opened_at + timedelta(days=days)
    if ep.resolution == "condition_cleared" and ep.resolved_at is not None:
        return ep.resolved_at <= limit
    return False if now >= limit else None


def episode_facts(
    episodes: Iterable[Episode],
    tasks: Mapping[str, Sequence[TaskOutcome]],
    segment_of: Callable[[Episode], str],
    settings: MeasureSettings,
    now: datetime,
) -> list[EpisodeFacts]:
    """Each episode with its decision status, segment, task and outcome."""
    return [
        EpisodeFacts(
            episode=ep,
            status=str(ep.decision.get("status") or ""),
            segment=segment_of(ep),
            tasks=tuple(tasks.get(ep.key, ())),
            recovered=recovered_within(ep, settings.outcome_days, now),
        )
        for ep in episodes
    ]


# ---- KPIs per group -------------------------------------------------------------------------
@dataclass
class GroupKpis:
    """The KPIs of one group of episodes (one trigger, play, segment, owner or variant)."""

    name: str
    fired: int = 0
    actioned: int = 0
    tasks_closed: int = 0
    due: int = 0
    sla_met: int = 0
    hours: list[float] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    false_positives: int = 0
    judged: int = 0  # outcomes known (the window ended, or the condition cleared)
    recovered: int = 0

    @property
    def trigger_to_action(self) -> float | None:
        return _ratio(self.actioned, self.fired)

    @property
    def time_to_intervention_h(self) -> float | None:
        return _median(self.hours)

    @property
    def sla_attainment(self) -> float | None:
        return _ratio(self.sla_met, self.due)

    @property
    def false_positive_rate(self) -> float | None:
        return _ratio(self.false_positives, sum(self.reasons.values()))

    @property
    def action_to_outcome(self) -> float | None:
        return _ratio(self.recovered, self.judged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fired": self.fired,
            "actioned": self.actioned,
            "trigger_to_action": self.trigger_to_action,
            "tasks_closed": self.tasks_closed,
            "time_to_intervention_h": self.time_to_intervention_h,
            "sla_attainment": self.sla_attainment,
            "false_positive_rate": self.false_positive_rate,
            "action_to_outcome": self.action_to_outcome,
            "closure_reasons": dict(sorted(self.reasons.items())),
        }


def _add(group: GroupKpis, fact: EpisodeFacts, settings: MeasureSettings, now: datetime) -> None:
    group.fired += 1
    if fact.status != ACTIONED:
        return
    group.actioned += 1
    if fact.recovered is not None:
        group.judged += 1
        group.recovered += fact.recovered
    task, ep = fact.task, fact.episode
    due = as_moment(ep.decision.get("due_at"))
    done = task.done if task else None
    if done is not None:
        group.tasks_closed += 1
        group.hours.append((done - ep.opened_at).total_seconds() / 3600)
    if due is not None and (done is not None or now > due):
        group.due += 1
        group.sla_met += done is not None and done <= due
    for each in fact.tasks:
        reason = each.closure_reason if each.closed else None
        if reason and reason != CLEARED:  # the CSMs' own reasons, not signalplay's
            group.reasons[reason] = group.reasons.get(reason, 0) + 1
            group.false_positives += reason in settings.false_positive_reasons


def kpis_by(
    facts: Sequence[EpisodeFacts],
    dimension: str,
    period: Period,
    settings: MeasureSettings,
    now: datetime,
) -> list[GroupKpis]:
    """The KPIs of the episodes opened in `period`, per value of `dimension` (trigger, play,
    segment, owner, variant), by name."""
    groups: dict[str, GroupKpis] = {}
    for fact in facts:
        if not period.holds(fact.episode.opened_at):
            continue
        name = fact.dimension(dimension)
        _add(groups.setdefault(name, GroupKpis(name)), fact, settings, now)
    return [groups[k] for k in sorted(groups)]


def sla_by_week(facts: Sequence[EpisodeFacts], now: datetime) -> list[tuple[date, float, int]]:
    """SLA attainment of actioned episodes per week opened (Mondays): (week, rate, due)."""
    weeks: dict[date, list[bool]] = defaultdict(list)
    for fact in facts:
        if fact.status != ACTIONED:
            continue
        due = as_moment(fact.episode.decision.get("due_at"))
        task = fact.task
        done = task.done if task else None
        if due is None or (done is None and now <= due):
            continue
        opened = fact.episode.opened_at.date()
        week = opened - timedelta(days=opened.weekday())
        weeks[week].append(done is not None and done <= due)
    return [(w, sum(v) / len(v), len(v)) for w, v in sorted(weeks.items())]


# ---- experiments ----------------------------------------------------------------------------
def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (his method 10), from the arms' Wilson
    intervals: sound at small samples and near 0 or 1, where the Wald interval is not."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@dataclass(frozen=True)
class Lift:
    """A play variant's outcome rate against its experiment's holdout."""

    experiment: str
    variant: str
    n: int
    successes: int
    holdout_n: int
    holdout_successes: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.successes, self.n)

    @property
    def holdout_rate(self) -> float | None:
        return _ratio(self.holdout_successes, self.holdout_n)

    @property
    def lift(self) -> float | None:
        if not self.n or not self.holdout_n:
            return None
        return self.successes / self.n - self.holdout_successes / self.holdout_n

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.n or not self.holdout_n:
            return None
        return newcombe(self.successes, self.n, self.holdout_successes, self.holdout_n)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval or (None, None)
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "n": self.n,
            "rate": self.rate,
            "holdout_n": self.holdout_n,
            "holdout_rate": self.holdout_rate,
            "lift": self.lift,
            "ci_low": low,
            "ci_high": high,
        }


def experiment_lift(facts: Sequence[EpisodeFacts], period: Period) -> list[Lift]:
    """Per experiment, each variant's rate of outcomes (the condition cleared within the window)
    against the holdout's, over the episodes opened in `period` whose outcome is known."""
    arms: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for fact in facts:
        experiment = fact.episode.decision.get("experiment")
        if not experiment or fact.recovered is None or not period.holds(fact.episode.opened_at):
            continue
        if fact.status not in (ACTIONED, HOLDOUT):
            continue
        arms[experiment][fact.variant or "-"].append(fact.recovered)
    out = []
    for experiment, by_variant in sorted(arms.items()):
        hold = by_variant.get("holdout", [])
        for variant, results in sorted(by_variant.items()):
            if variant == "holdout":
                continue
            out.append(Lift(experiment, variant, len(results), sum(results), len(hold), sum(hold)))
    return out


# ---- cohorts --------------------------------------------------------------------------------
def _value(snapshots: Snapshots, day: date, account: str, name: str) -> Any:
    return (snapshots.get(day) or {}).get(account, {}).get(name)


def bounds(snapshots: Snapshots, period: Period) -> Period | None:
    """The first and last snapshot days within the period (None without any): what "the
    period's first day" reads when the snapshots begin later or end earlier."""
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
        return _ratio(self.retained_value, self.start_value)

    @property
    def nrr(self) -> float | None:
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
    """GRR and NRR of `accounts`: their value on the period's first snapshot day against its
    last (0 for an account churned by the period's end); accounts without a start value are
    left out."""
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
    """What became of the accounts over the period, by their first and last snapshot in it:
    churned (a churn day in the period); else renewed (a renewal date in the period that moved
    on), and contracted or expanded (value down or up)."""
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
    """Of the touched accounts whose renewal (as known on the period's first snapshot day) fell
    in the period, the share that did not churn by its end; and how many there were."""
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
    """Per renewal checkpoint (days before renewal), how often the renewal confidence on that
    day (confident: renews; otherwise churns) matched what happened, over the renewals that
    fell in the period and have a snapshot on the checkpoint day: checkpoint → (accuracy, n)."""
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
    """Per segment, the median days from contract start to the first snapshot day on which the
    first-value field is positive, over the accounts that started within the snapshots and
    reached it: segment → (days, n)."""
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
    """Per segment, the mean change of the adoption field from an adoption episode's opening day
    to `outcome_days` later, actioned against holdout (episodes of the adoption groups opened in
    the period with both snapshots)."""
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


# ---- noisy and predictive triggers -------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What the numbers say about one trigger (in one segment, or all)."""

    trigger: str
    segment: str
    verdict: str  # retire, tighten, loosen, change_play, predictive
    reason: str

    def as_dict(self) -> dict[str, str]:
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
    """Flag triggers whose closures say false positive (retire above the retire rate, else
    tighten the threshold, per segment), whose plays show no outcome lift against their
    holdout (change the play), and name the predictive ones from the backtest (precision at
    least twice the base churn rate; loosen those that warn too few churners)."""
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
