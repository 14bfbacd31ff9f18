"""Measure: what the plays did.

KPIs per trigger, play, segment, owner and experiment variant over a period (trigger-to-action,
time-to-intervention and SLA attainment, action-to-outcome, false positives from closure reasons),
cohort figures (save rate, GRR and NRR of touched and untouched accounts, renewal forecast accuracy,
time-to-first-value, adoption lift), the lift of each play variant against its holdout with a
confidence interval, and the triggers that are noisy.

Everything is computed from what the store holds: episodes with their decisions, the tasks
signalplay wrote as the CRM reports them back (status, completion, closure reason), and the daily
profile snapshots. Pure functions of their inputs. Imports: stdlib, episodes, settings.
"""

from __future__ import annotations

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
        """When a person completed the task (None while open or closed by signalplay).

        When a person completed it (None while open, or when signalplay closed it because
        its condition cleared: that is no intervention).
        """
        if not self.closed or self.closure_reason == CLEARED:
            return None
        return self.completed_at


@dataclass(frozen=True)
class Period:
    """[start, end], whole days."""

    start: date
    end: date

    def holds(self, moment: datetime | date) -> bool:
        """Whether `moment` falls within the period (its last day included)."""
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
    """A datetime from a stored value (ISO text, date or datetime; None when missing)."""
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
        """The task that counts for the intervention.

        The first a person completed, else the first written.
        """
        done = [t for t in self.tasks if t.done is not None]
        if done:
            return min(done, key=lambda t: t.done or datetime.max.replace(tzinfo=UTC))
        return self.tasks[0] if self.tasks else None

    @property
    def variant(self) -> str | None:
        """The experiment variant the episode was assigned (None outside experiments)."""
        if self.status == HOLDOUT:
            return "holdout"
        return self.episode.decision.get("variant")

    def dimension(self, name: str) -> str:
        """The episode's value of a KPI dimension (trigger, play, segment, owner, variant)."""
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
    """Whether the episode's condition cleared within `days` of opening.

    None while that window is still running and the condition holds.
    """
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
        """Share of fired episodes that were actioned."""
        return _ratio(self.actioned, self.fired)

    @property
    def time_to_intervention_h(self) -> float | None:
        """Median hours (wall clock) from opening to the task a person completed."""
        return _median(self.hours)

    @property
    def sla_attainment(self) -> float | None:
        """Share of the tasks due by now (or done) that were completed by their due date."""
        return _ratio(self.sla_met, self.due)

    @property
    def false_positive_rate(self) -> float | None:
        """Share of closures whose reason says false positive."""
        return _ratio(self.false_positives, sum(self.reasons.values()))

    @property
    def action_to_outcome(self) -> float | None:
        """Share of the episodes with a known outcome whose condition cleared in the window."""
        return _ratio(self.recovered, self.judged)

    def as_dict(self) -> dict[str, Any]:
        """The KPIs, as the report and `--json` show them."""
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
    """The KPIs of the episodes opened in `period`, per value of `dimension`.

    The KPIs of the episodes opened in `period`, per value of `dimension` (trigger, play,
    segment, owner, variant), by name.
    """
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
