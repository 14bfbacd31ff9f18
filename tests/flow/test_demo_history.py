"""The demo replays weeks of scheduled runs with the demo world's people acting between them
(CSMs closing tasks with reasons, renewals renewing or churning), then writes the report: the
outcomes reach the store through the real CRM pull, and the report measures them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox

pytestmark = pytest.mark.slow


def test_demo_replays_history_and_reports_its_outcomes(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    args = ["demo", "--dir", str(directory), "--accounts", "90", "--history-weeks", "3", "--json"]
    first = json.loads(CliRunner().invoke(app, args, catch_exceptions=False).output)
    history = first["history"]
    assert history["runs"] == 3
    closed_by_csms = sum(history["tasks_closed"].values())
    assert closed_by_csms > 0
    assert first["duplicates_found"] == 0
    report = Path(first["report"])
    assert report.is_file()
    assert 'data-plot="funnel"' in report.read_text()

    # What the CSMs did reached the store through the CRM pull, with its time and reason.
    portal = HubSpotSandbox(state_file=directory / ".signalplay" / "hubspot.json")
    completed = [
        t["properties"]
        for t in portal.state.objects["tasks"].values()
        if t["properties"].get("hs_task_status") == "COMPLETED"
        and t["properties"].get("signalplay_closure_reason") != "condition_cleared"
    ]
    assert len(completed) == closed_by_csms
    assert all(p["hs_task_completion_date"] for p in completed)
    measured = json.loads(
        CliRunner()
        .invoke(app, ["report", "-p", str(directory), "--json"], catch_exceptions=False)
        .output
    )["measure"]
    by_trigger = {g["name"]: g for g in measured["kpis"]["trigger"]}
    reasons: dict[str, int] = {}
    for g in by_trigger.values():
        for reason, n in g["closure_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert reasons == history["tasks_closed"]  # every CSM closure, measured once
    # episodes a CSM acted on: at most one per closure (a play may write two tasks)
    assert 0 < measured["funnel"]["all"]["closed"] <= closed_by_csms
    assert len(measured["sla_by_week"]) >= 3  # the replayed weeks and today's
    assert sum(sum(h["bands"].values()) for h in measured["health"].values()) == 90
    # NPS tasks are mostly closed as false positives, by construction
    nps = by_trigger["low_nps"]
    assert nps["false_positive_rate"] is not None
    assert nps["false_positive_rate"] > 0.5

    again = json.loads(CliRunner().invoke(app, args, catch_exceptions=False).output)
    assert again["history"] is None  # the past is replayed once, into a new store
    assert again["tasks_created"] == 0
