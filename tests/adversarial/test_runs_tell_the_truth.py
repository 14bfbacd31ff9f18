"""Runs tell the truth: partial and failed runs say so, in the exit code and in `runs --check`.

Before: with the webhook endpoint down mid-apply, `run` exited 0 and was recorded `ok`; a sync
that failed stayed `running`, and `runs --check` exited 0 right after failed syncs.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay import jobs
from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.store import Store
from tests.conftest import TOKEN, WEBHOOK_SECRET, make_project

AS_OF = "2026-11-18T12:00:00+00:00"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALPLAY_WEBHOOK__SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("SIGNALPLAY_AS_OF", AS_OF)


def _runs(root: Path) -> list[dict]:
    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    try:
        return store.all_runs()
    finally:
        store.close()


def test_a_run_whose_events_cannot_be_delivered_is_partial(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, env: None
) -> None:
    # the webhook endpoint is down: nothing listens on the discard port
    root = make_project(tmp_path, sandbox, server.url, accounts=30)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "-p", str(root), "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] > 0
    assert summary["tasks_created"] > 0  # the rest was written
    assert "partial" in result.stderr
    (recorded,) = [r for r in _runs(root) if r["kind"] == "run"]
    assert recorded["status"] == "partial"
    assert recorded["summary"]["failed"] == summary["failed"]
    check = runner.invoke(app, ["runs", "--check", "-p", str(root)])
    assert check.exit_code == 1
    assert "partial" in check.output


def test_a_failed_sync_is_recorded_failed_and_checked(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, env: None
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=10)
    config = root / "signalplay.yaml"
    config.write_text(re.sub(r"host: \S+", "host: http://127.0.0.1:9", config.read_text(), count=1))
    runner = CliRunner()
    for _ in range(2):
        failed = runner.invoke(app, ["sync", "crm", "-p", str(root)])
        assert failed.exit_code != 0
        assert "Traceback" not in failed.output
    assert [r["status"] for r in _runs(root)] == ["failed", "failed"]
    check = runner.invoke(app, ["runs", "--check", "-p", str(root)])
    assert check.exit_code == 1
    assert "failed" in check.output


def test_a_run_left_running_by_a_killed_process_is_marked_failed(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, env: None
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=10)
    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    store.migrate()
    killed = store.start_run("run")  # ... and the process died here, lock and all
    store.close()
    with jobs.open_context(__import__("signalplay.settings").settings.load_project(root)) as ctx:
        jobs.sync(ctx, only=("crm",))
    by_id = {r["run_id"]: r for r in _runs(root)}
    assert by_id[killed]["status"] == "failed"
    assert "without recording an outcome" in by_id[killed]["summary"]["error"]
    assert sorted(r["status"] for r in by_id.values()) == ["failed", "ok"]


def test_the_crm_streams_count_their_requests(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, env: None
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=20)
    before = len(sandbox.requests)
    with jobs.open_context(__import__("signalplay.settings").settings.load_project(root)) as ctx:
        streams = jobs.sync(ctx, only=("crm",)).streams
    made = len(sandbox.requests) - before
    counted = {name: figures.get("requests", 0) for name, figures in streams.items()}
    assert all(n > 0 for n in counted.values()), counted  # every CRM stream made requests
    assert sum(counted.values()) == made  # and each is counted once, with its stream


def test_a_run_running_past_its_time_limit_is_marked_failed(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, env: None
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=5)
    store = Store(f"sqlite:///{root / 'signalplay.db'}", clock=lambda: _at("09:00"))
    store.migrate()
    overran = store.start_run("sync")  # started 09:00, still running: alive or not, nobody knows
    store.close()
    runner = CliRunner()
    env_at = {"SIGNALPLAY_LOCK__TIME_LIMIT_MINUTES": "60"}
    within = runner.invoke(
        app, ["runs", "--check", "-p", str(root)], env={**env_at, "SIGNALPLAY_AS_OF": _iso("09:59")}
    )
    assert within.exit_code == 0, within.output  # within its limit it is still running
    assert [r["status"] for r in _runs(root)] == ["running"]
    past = runner.invoke(
        app, ["runs", "--check", "-p", str(root)], env={**env_at, "SIGNALPLAY_AS_OF": _iso("10:01")}
    )
    assert past.exit_code == 1
    (recorded,) = _runs(root)
    assert recorded["run_id"] == overran
    assert recorded["status"] == "failed"
    assert "past its time limit" in recorded["summary"]["error"]
    assert "alert (failed)" in past.output


def _iso(hhmm: str) -> str:
    return f"2026-11-18T{hhmm}:00+00:00"


def _at(hhmm: str) -> datetime:

    return datetime.fromisoformat(_iso(hhmm))
