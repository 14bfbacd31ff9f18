"""USE CASES · the typed results the use cases return.

What a CLI command renders (its `--json` prints `to_json()` of the same object) and what a Celery
task returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signalplay.models import WriteOp

if TYPE_CHECKING:
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
    evaluation: dict[str, Any]  # triggers fired, episodes opened/held/resolved, decisions
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
            **self.evaluation,
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
