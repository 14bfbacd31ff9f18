"""Run history and its watchdog.

Is the scheduled sync alive? A run that failed, a run started and never finished, or no successful
run for longer than the expected window, is an alert. Imports: stdlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SCHEDULED = ("run", "sync", "apply")  # the kinds of runs the schedule makes
GRACE = 2.0  # silence is tolerated for this many schedule periods
RUNNING = ("running", "started")  # a run's status until it finishes


@dataclass(frozen=True)
class Alert:
    """Why the schedule needs a person."""

    kind: str  # failed, partial, stuck, silent, never
    message: str
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The alert, as the watchdog's event and `runs --json` carry it."""
        return {"kind": self.kind, "message": self.message, "run_id": self.run_id}


def _aware(moment: Any, like: datetime) -> datetime | None:
    if moment is None:
        return None
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None and like.tzinfo is not None:
        value = value.replace(tzinfo=like.tzinfo)
    return value


def _ended_badly(last: Mapping[str, Any], started: datetime | None) -> Alert | None:
    """A failed run, or a partial one (ops failed, waiting for retry)."""
    if last.get("status") == "failed":
        return Alert(
            "failed", f"the last run ({last['run_id']}) failed at {started}", last["run_id"]
        )
    if last.get("status") == "partial":
        failed = (last.get("summary") or {}).get("failed", "some")
        return Alert(
            "partial",
            f"the last run ({last['run_id']}) ended partial at {started}: {failed} op(s) failed "
            "and wait for retry",
            last["run_id"],
        )
    return None


def check_runs(
    runs: Sequence[Mapping[str, Any]], now: datetime, *, every_minutes: float
) -> Alert | None:
    """The alert the run history calls for, newest run first in `runs` (None: all well)."""
    window = timedelta(minutes=every_minutes * GRACE)
    scheduled = [r for r in runs if r.get("kind") in SCHEDULED]
    if not scheduled:
        return Alert("never", "no scheduled run has happened yet")
    last = scheduled[0]
    started = _aware(last.get("started_at"), now)
    ended = _ended_badly(last, started)
    if ended is not None:
        return ended
    running = last.get("status") in RUNNING
    if running and started is not None and now - started > window:
        minutes = int((now - started).total_seconds() // 60)
        return Alert(
            "stuck",
            f"run {last['run_id']} started {minutes} min ago and has not finished",
            last["run_id"],
        )
    if running:
        return None  # in progress, within its window
    ok = next((r for r in scheduled if r.get("status") in ("ok", "partial")), None)
    finished = _aware(ok.get("finished_at") or ok.get("started_at"), now) if ok else None
    if finished is None or now - finished > window:
        since = "ever" if finished is None else f"{int((now - finished).total_seconds() // 60)} min"
        return Alert(
            "silent",
            f"no successful run for {since}; one is expected every {every_minutes:g} min",
            ok["run_id"] if ok else None,
        )
    return None
