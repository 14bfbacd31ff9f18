"""Run history and its alerts, and secrets: `signalplay runs` lists what ran and `--check`
fails when the schedule failed or went silent; the Celery watchdog sends a signed alert to the
team's webhook; and a canary secret given for every credential appears in no output, log line,
error, stored plan or run, or report."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server, serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.store import Store
from tests.conftest import TOKEN, make_project

CANARY = "canary-4be1d07c93e2"


def test_runs_lists_the_history_and_check_fails_a_silent_schedule(tmp_path: Path) -> None:
    from signalplay.jobs.scaffold import init_project

    root = tmp_path / "proj"
    init_project(root, crm_host="http://127.0.0.1:9")
    runner = CliRunner()
    never = runner.invoke(app, ["runs", "-p", str(root), "--check", "--json"])
    assert never.exit_code == 1
    assert json.loads(never.output)["alert"]["kind"] == "never"

    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    store.migrate()
    ok = store.start_run("run")
    store.finish_run(ok, status="ok", summary={"accounts": 12, "tasks_created": 3, "failed": 0})
    fine = runner.invoke(app, ["runs", "-p", str(root), "--check"])
    assert fine.exit_code == 0, fine.output
    assert ok in fine.output
    assert fine.output.strip().endswith("ok")

    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()  # past twice the hourly period
    silent = runner.invoke(
        app, ["runs", "-p", str(root), "--check", "--json"], env={"SIGNALPLAY_AS_OF": later}
    )
    assert silent.exit_code == 1
    assert json.loads(silent.output)["alert"]["kind"] == "silent"

    bad = store.start_run("run")
    store.finish_run(bad, status="failed", summary={})
    store.close()
    failed = runner.invoke(app, ["runs", "-p", str(root), "--check", "--json"])
    assert failed.exit_code == 1
    assert json.loads(failed.output)["alert"] == {
        "kind": "failed",
        "message": json.loads(failed.output)["alert"]["message"],
        "run_id": bad,
    }


def test_the_celery_watchdog_sends_a_signed_alert(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    hooks: Server,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from signalplay import worker

    root = make_project(
        tmp_path / "proj", sandbox, server.url, accounts=5, webhook_url=f"{hooks.url}/events"
    )
    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    store.migrate()
    store.finish_run(store.start_run("sync"), status="failed", summary={})
    store.close()
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    alert = worker.watchdog.apply(args=(str(root),)).get()
    assert alert["kind"] == "failed"
    assert [e["event"] for e in receiver.events] == ["signalplay.alert"]  # verified signature
    assert receiver.events[0]["kind"] == "failed"


def _dump(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(
            repr(row)
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for row in conn.execute(f"SELECT * FROM {table}")
        )
    finally:
        conn.close()


def test_a_canary_secret_reaches_no_output_log_store_or_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "SIGNALPLAY_CRM__ACCESS_TOKEN": f"pat-{CANARY}",
        "SIGNALPLAY_WEBHOOK__SECRET": f"whsec-{CANARY}",
        "SIGNALPLAY_SOURCES__BILLING__API_KEY": f"sk_test_{CANARY}",
        "SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN": f"zd-{CANARY}",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    directory = tmp_path / "demo"
    runner = CliRunner()
    args = ["--log-json", "-v", "demo", "--dir", str(directory), "--accounts", "40"]
    first = runner.invoke(app, [*args, "--history-weeks", "1", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["failed"] == 0
    # A revoked credential: the CRM answers 401, and the error is printed and logged.
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", f"wrong-{CANARY}")
    config = directory / "signalplay.yaml"
    with serve(HubSpotSandbox(token="pat-rotated")) as crm:
        config.write_text(re.sub(r"host: \S+", f"host: {crm.url}", config.read_text(), count=1))
        failed = runner.invoke(app, ["--log-json", "-v", "run", "-p", str(directory)])
    assert failed.exit_code == 1
    assert "401" in failed.output or "auth" in failed.output.lower()
    plan = runner.invoke(app, ["plan", "-p", str(directory), "--json"])
    report = runner.invoke(app, ["report", "-p", str(directory)])
    outputs = [first.output, failed.output, plan.output, report.output]
    files = [
        _dump(directory / "signalplay.db"),
        (directory / "signalplay-report.html").read_text(),
        (directory / "signalplay.yaml").read_text(),
    ]
    assert any(re.search(r'"run_id": "\d{8}T\d{6}-[0-9a-f]{8}"', o) for o in outputs)  # JSON logs
    for text in outputs + files:
        assert CANARY not in text


def test_only_declared_fields_are_ever_written(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    """A saved plan edited by hand to write a field writeback.yaml does not declare: that op is
    refused and recorded failed with the reason; the declared ones are written."""
    from signalplay import jobs
    from signalplay.models import RecordRef, WriteAction, WriteOp
    from signalplay.registry import build_connector
    from signalplay.settings import load_project

    root = make_project(tmp_path / "proj", sandbox, server.url, accounts=3)
    project = load_project(root)
    block = project.settings.crm.model_copy(update={"access_token": TOKEN})
    ctx = jobs.open_context(
        project, crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",))
    )
    company = next(iter(sandbox.state.objects["companies"]))

    def update(key: str, values: dict[str, str]) -> WriteOp:
        return WriteOp(
            op_key=key,
            action=WriteAction.UPDATE_FIELDS,
            object_type="companies",
            target=company,
            values=values,
            associations=(RecordRef(object_type="companies", record_id=company),),
            reason="test",
        )

    ops = [
        update("declared", {"signalplay_health_band": "red"}),
        update("smuggled", {"signalplay_health_band": "green", "annualrevenue": "1"}),
    ]
    try:
        jobs.crm_setup(ctx)
        ctx.store.record_planned("run-x", "hubspot", ops)
        result = jobs.apply(ctx, ops).to_json()
        with ctx.store.engine.connect() as conn:
            ledger = {
                key: (status, error)
                for key, status, error in conn.execute(
                    sa.text("SELECT op_key, status, error FROM ledger")
                )
            }
        counts = ctx.store.ledger_counts()
    finally:
        ctx.close()
    assert result["failed"] == 1
    props = sandbox.state.objects["companies"][company]["properties"]
    assert props["signalplay_health_band"] == "red"  # the declared op, and only it
    assert props.get("annualrevenue") in (None, "")
    assert counts.get("failed", 0) == 1
    assert ledger["declared"][0] == "applied"
    status, error = ledger["smuggled"]
    assert status == "failed"
    assert "not declared in writeback.yaml account_fields: annualrevenue" in error
