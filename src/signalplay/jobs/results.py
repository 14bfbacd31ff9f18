"""USE CASES · the typed results the use cases return.

What a CLI command renders (its `--json` prints `to_json()` of the same object) and what a Celery
task returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signalplay.models import WriteOp

if TYPE_CHECKING:
    from signalplay.measure.backtest import Backtest
    from signalplay.measure.cohorts import Retention
    from signalplay.measure.experiments import Lift
    from signalplay.measure.kpis import GroupKpis, Period
    from signalplay.measure.trigger_tuning import TriggerTuning
    from signalplay.measure.tuning import Proposal
    from signalplay.measure.verdicts import Verdict
    from signalplay.writeback.crmschema import Finding

StreamCounts = dict[str, dict[str, float]]  # stream → records, quarantined, requests, 429s, …


@dataclass(frozen=True)
class Applied:
    """What one apply wrote.

    Tasks, fields and events, the failures recorded for retry, and the retries the one retry
    policy made.
    """

    tasks_created: int = 0
    tasks_updated: int = 0
    fields_updated: int = 0
    events_sent: int = 0
    failed: int = 0
    write_retries: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts, as the run summary and `apply --json` print them."""
        return {
            "tasks_created": self.tasks_created,
            "tasks_updated": self.tasks_updated,
            "fields_updated": self.fields_updated,
            "events_sent": self.events_sent,
            "failed": self.failed,
            "write_retries": self.write_retries,
        }


@dataclass(frozen=True)
class EvaluationCounts:
    """What one evaluation moved: triggers fired, episodes opened, held, resolved, decisions."""

    triggers_fired: dict[str, int] = field(default_factory=dict)  # trigger → accounts
    episodes_opened: int = 0
    episodes_held: int = 0
    episodes_resolved: int = 0
    cooling_down: int = 0
    decisions: dict[str, int] = field(default_factory=dict)  # status → episodes

    def to_json(self) -> dict[str, Any]:
        """The counts, as the run summary prints them."""
        return {
            "triggers_fired": self.triggers_fired,
            "episodes_opened": self.episodes_opened,
            "episodes_held": self.episodes_held,
            "episodes_resolved": self.episodes_resolved,
            "cooling_down": self.cooling_down,
            "decisions": self.decisions,
        }


@dataclass(frozen=True)
class ShardResult:
    """One chunk of accounts evaluated and planned: part `part` of a sharded run's plan."""

    part: int
    accounts: int
    evaluation: EvaluationCounts
    plan: dict[str, int]  # ops by action, skipped
    health_bands: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The part's counts, as saved with the part and summed by the merge."""
        return {
            **self.evaluation.to_json(),
            "accounts": self.accounts,
            "plan": self.plan,
            "health_bands": self.health_bands,
        }


@dataclass(frozen=True)
class MergedPlan:
    """A sharded run's parts merged into one saved plan; the run is closed with `counts`."""

    run_id: str
    plan_id: str
    parts: int
    counts: dict[str, Any]  # the parts' counts, summed key by key

    def to_json(self) -> dict[str, Any]:
        """As the run summary stores it."""
        return {"run_id": self.run_id, "plan_id": self.plan_id, "parts": self.parts, **self.counts}


@dataclass(frozen=True)
class SyncResult:
    """A pull of the sources, recorded as a run."""

    run_id: str
    streams: StreamCounts

    def to_json(self) -> dict[str, Any]:
        """The run id and each stream's counts."""
        return {"run_id": self.run_id, "streams": self.streams}


@dataclass(frozen=True)
class PlanResult:
    """A saved plan: its ops and how many of each action, and what was skipped."""

    run_id: str
    plan_id: str
    ops: tuple[WriteOp, ...]
    stats: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The plan id, the counts and every op."""
        return {
            "run_id": self.run_id,
            "plan_id": self.plan_id,
            "stats": self.stats,
            "ops": [o.model_dump(mode="json") for o in self.ops],
        }


@dataclass(frozen=True)
class ApplyResult:
    """A saved plan applied (or, as a dry run, counted)."""

    plan_id: str
    applied: Applied = field(default_factory=Applied)
    dry_run: bool = False
    ops: int = 0  # the plan's ops

    def to_json(self) -> dict[str, Any]:
        """The plan id, whether it was a dry run, and what was written."""
        return {
            "plan_id": self.plan_id,
            "dry_run": self.dry_run,
            "ops": self.ops,
            **self.applied.to_json(),
        }


@dataclass(frozen=True)
class RunResult:
    """The whole run: pull → profile → evaluate → plan → apply."""

    run_id: str
    plan_id: str
    accounts: int
    streams: StreamCounts
    evaluation: EvaluationCounts
    plan: dict[str, int]
    applied: Applied
    health_bands: dict[str, int]
    unmatched: dict[str, int]
    conflicts: dict[str, int]
    quarantined: dict[str, int]
    coverage: dict[str, Any]
    seconds: float
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        """The run summary, as stored with the run and printed by `run --json`."""
        return {
            "run_id": self.run_id,
            "plan_id": self.plan_id,
            "accounts": self.accounts,
            "streams": self.streams,
            **self.evaluation.to_json(),
            "plan": self.plan,
            **self.applied.to_json(),
            "health_bands": self.health_bands,
            "unmatched": self.unmatched,
            "conflicts": self.conflicts,
            "quarantined": self.quarantined,
            "coverage": self.coverage,
            "seconds": self.seconds,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class BackfillResult:
    """Daily snapshots built for past days from the sources' stored history."""

    days: int
    first_day: str | None  # ISO date
    last_day: str | None
    accounts: int
    snapshots: int

    def to_json(self) -> dict[str, Any]:
        """As `backfill --json` prints it."""
        return {
            "days": self.days,
            "from": self.first_day,
            "to": self.last_day,
            "accounts": self.accounts,
            "snapshots": self.snapshots,
        }


@dataclass(frozen=True)
class CrmSetupResult:
    """What `crm setup` created (or, as a dry run, would create) and what a person must fix."""

    done: tuple[str, ...]
    remaining: tuple[Finding, ...]
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """As `crm setup --json` prints it and the demo reports it."""
        return {
            "created": list(self.done),
            "remaining": [str(f.issue) for f in self.remaining],
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class Measurement:
    """Every KPI of one period: the report's tables and plots.

    `churn` and `by_trigger_segment` feed the backtest and the verdicts; they are not printed.
    """

    period: Period
    episodes: int  # opened in the period
    kpis: dict[str, list[GroupKpis]]  # dimension (trigger, play, segment, ...) → groups
    funnel: dict[str, dict[str, int]]  # trigger (and "all") → fired, actioned, closed, outcome
    sla_by_week: list[tuple[date, float, int]]  # week, attainment, tasks due
    experiments: list[Lift]
    cohorts: dict[str, Retention]  # touched / untouched
    outcomes: dict[str, Any]  # touched / untouched → renewed, churned, expanded, ...
    save_rate: tuple[float | None, int]  # rate, renewals due
    forecast_accuracy: dict[str, tuple[float | None, int]]  # confidence → accuracy, n
    time_to_first_value: dict[str, tuple[float | None, int]]  # segment → median days, n
    adoption_lift: dict[str, Any]
    coverage_pct: float | None
    content_reuse: dict[str, Any]
    health: dict[str, dict[str, Any]]  # segment → bands, scores
    churn: dict[str, date | None] = field(default_factory=dict, repr=False)
    by_trigger_segment: dict[tuple[str, str], GroupKpis] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """As `report --json` prints it under "measure" and the HTML report reads it."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "episodes": self.episodes,
            "kpis": {dim: [g.as_dict() for g in groups] for dim, groups in self.kpis.items()},
            "funnel": self.funnel,
            "sla_by_week": [
                {"week": w.isoformat(), "attainment": r, "due": n} for w, r, n in self.sla_by_week
            ],
            "experiments": [lift.as_dict() for lift in self.experiments],
            "cohorts": {
                name: {
                    "accounts": c.accounts,
                    "grr": c.grr,
                    "nrr": c.nrr,
                    "start_value": c.start_value,
                }
                for name, c in self.cohorts.items()
            },
            "outcomes": self.outcomes,
            "save_rate": {"rate": self.save_rate[0], "renewals": self.save_rate[1]},
            "forecast_accuracy": {
                k: {"accuracy": acc, "n": n} for k, (acc, n) in self.forecast_accuracy.items()
            },
            "time_to_first_value": {
                s: {"median_days": d, "n": n} for s, (d, n) in self.time_to_first_value.items()
            },
            "adoption_lift": self.adoption_lift,
            "coverage_pct": self.coverage_pct,
            "content_reuse": self.content_reuse,
            "health": self.health,
        }


@dataclass(frozen=True)
class Report:
    """A period measured, its backtest (None without snapshots) and the verdicts on triggers."""

    measurement: Measurement
    backtest: Backtest | None
    verdicts: tuple[Verdict, ...]
    path: Path | None = None  # where the HTML report was written

    def to_json(self) -> dict[str, Any]:
        """As `report --json` prints it (and the HTML report renders it)."""
        found: dict[str, Any] = {
            "measure": self.measurement.to_json(),
            "backtest": self.backtest.as_dict() if self.backtest else None,
            "verdicts": [v.as_dict() for v in self.verdicts],
        }
        if self.path is not None:
            found["path"] = str(self.path)
        return found


@dataclass(frozen=True)
class Backtests:
    """One backtest per trigger file, by name ("current": the project's own), side by side."""

    runs: dict[str, Backtest | None]  # None: the period has no snapshots to replay
    episodes_file: str | None = None  # where the first replay's episodes were written (CSV)

    @property
    def complete(self) -> bool:
        """Whether every file could be replayed."""
        return all(r is not None for r in self.runs.values())

    def to_json(self) -> dict[str, Any]:
        """As `backtest --json` prints it."""
        out: dict[str, Any] = {name: r.as_dict() if r else None for name, r in self.runs.items()}
        if self.episodes_file:
            out["episodes_file"] = self.episodes_file
        return out


@dataclass(frozen=True)
class TunedHealth:
    """A fitted health scorecard, written beside health.yaml for review."""

    proposal: Proposal
    path: Path
    horizon: int
    days: int
    current: dict[str, float]  # the weights health.yaml has now

    def to_json(self) -> dict[str, Any]:
        """As `tune health --json` prints it."""
        return {
            "path": str(self.path),
            "horizon_days": self.horizon,
            "snapshot_days": self.days,
            "current_weights": self.current,
            **self.proposal.as_dict(),
        }


@dataclass(frozen=True)
class TunedTriggers:
    """The trigger library's threshold variants replayed, and the proposal written for review."""

    tunings: list[TriggerTuning]
    path: Path
    split: date  # fitted on the days before, judged on the days from it
    variants: int
    base_rate: float | None

    def to_json(self) -> dict[str, Any]:
        """As `tune triggers --json` prints it."""
        return {
            "path": str(self.path),
            "split_day": self.split.isoformat(),
            "variants_replayed": self.variants,
            "base_rate": self.base_rate,
            "triggers": [t.as_dict() for t in self.tunings],
        }
