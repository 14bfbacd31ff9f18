"""The whole flow through hubspot-api-client against the HubSpot sandbox."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay import jobs
from signalplay.cli import app
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.settings import load_project
from signalplay.store import Store
from tests.conftest import TOKEN, hubspot_context, make_project, noon

pytestmark = pytest.mark.slow


def _run(root: Path) -> dict:
    ctx = hubspot_context(root)
    try:
        return jobs.run(ctx).to_json()
    finally:
        ctx.close()


def _writes(sandbox: HubSpotSandbox) -> int:
    """Requests that change data: not GETs, searches or batch reads (those POST, and read)."""
    reads = ("/search", "/batch/read")
    return sum(1 for r in sandbox.requests if r.method != "GET" and not r.template.endswith(reads))


def _project(tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server, **kw) -> Path:
    return make_project(tmp_path, sandbox, server.url, webhook_url=f"{hooks.url}/events", **kw)


def test_run_writes_every_action_of_every_actioned_episode(
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    hooks: Server,
    receiver: WebhookReceiver,
) -> None:
    root = _project(tmp_path, sandbox, server, hooks)
    summary = _run(root)
    assert summary["episodes_opened"] == sum(summary["triggers_fired"].values())
    assert sum(summary["decisions"].values()) == summary["episodes_opened"]
    assert summary["failed"] == 0
    from signalplay.store import Store

    store = Store(load_project(root).store_url())
    actioned = [e for e in store.episodes() if e.decision.get("status") == "actioned"]
    store.close()
    assert actioned
    tasks = list(sandbox.state.objects["tasks"].values())
    assert len(tasks) == summary["tasks_created"]
    keys = {t["properties"]["signalplay_episode_key"] for t in tasks}
    assert {k.split(":")[0] for k in keys} == {e.key for e in actioned}
    task = tasks[0]["properties"]
    assert task["hs_task_status"] == "NOT_STARTED"
    assert task["hubspot_owner_id"] in {o["id"] for o in sandbox.state.owners}
    linked = {(a[0], a[1], a[2]) for a in sandbox.state.associations}
    assert all(("tasks", t["id"], "companies") in linked for t in tasks)
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0
    assert summary["events_sent"] == len(receiver.events)
    assert receiver.events
    assert receiver.rejected == 0
    assert {e["event"] for e in receiver.events} <= {"in_app_guidance", "webinar_invite"}
    assert all(e["recipients"] for e in receiver.events)


def test_second_run_writes_nothing(
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    hooks: Server,
    receiver: WebhookReceiver,
) -> None:
    root = _project(tmp_path, sandbox, server, hooks)
    first = _run(root)
    writes_before = _writes(sandbox)
    events_before = receiver.requests
    second = _run(root)
    assert first["tasks_created"] > 0
    assert (second["tasks_created"], second["tasks_updated"], second["fields_updated"]) == (0, 0, 0)
    assert second["events_sent"] == 0
    assert second["episodes_held"] == first["episodes_opened"]
    assert _writes(sandbox) == writes_before
    assert receiver.requests == events_before


def test_events_without_a_webhook_secret_are_kept_for_retry(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path, sandbox, server.url)
    summary = _run(root)
    assert summary["events_sent"] == 0
    assert summary["failed"] > 0
    assert summary["tasks_created"] > 0
    from signalplay.store import Store

    store = Store(load_project(root).store_url())
    pending = store.pending_ops()
    store.close()
    assert pending
    assert all(o.action.value == "send_webhook" for o in pending)


def test_health_fields_written_in_batches_of_100(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    summary = _run(_project(tmp_path, sandbox, server, hooks, accounts=150))
    updates = [
        r for r in sandbox.requests if r.template == "/crm/v3/objects/companies/batch/update"
    ]
    assert [r.inputs for r in updates] == [100, 50]
    assert summary["fields_updated"] == 150 * 4  # score, band, stage and drivers
    company = next(iter(sandbox.state.objects["companies"].values()))["properties"]
    assert company["signalplay_health_band"] in {"green", "yellow", "red"}
    assert company["signalplay_stage"] in {
        "onboarding",
        "adoption",
        "value_proof",
        "renewal",
        "expansion",
    }
    assert company["signalplay_health_drivers"].startswith("Health ")


def test_failed_write_is_kept_in_ledger_and_retried_next_run(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    root = _project(tmp_path, sandbox, server, hooks)
    sandbox.fail_next(400, path_contains="/tasks/batch/upsert", times=1)
    first = _run(root)
    assert first["failed"] > 0
    second = _run(root)
    assert second["failed"] == 0
    assert first["tasks_created"] + second["tasks_created"] == len(sandbox.state.objects["tasks"])
    assert second["tasks_created"] == first["failed"]
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0


def test_rate_limited_call_is_retried_after_retry_after(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    from signalplay.connectors.hubspot import HubSpotConnector, HubSpotSettings

    waits: list[float] = []
    conn = HubSpotConnector(
        HubSpotSettings(host=server.url, access_token=TOKEN), sleep=waits.append
    )
    sandbox.seed_object("companies", {"name": "Acme", "domain": "acme.test"}, unique_by="domain")
    sandbox.fail_next(429, path_contains="/objects/companies", retry_after=3)
    from datetime import UTC, datetime

    pages = list(conn.read("companies", cursor=None, until=datetime.now(UTC)))
    assert [r.data["name"] for p in pages for r in p.records] == ["Acme"]
    assert len(waits) == 1
    assert waits[0] >= 3


def test_demo_cli_json_twice(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["demo", "--dir", str(tmp_path / "demo"), "--accounts", "150", "--history-weeks", "0"]
    args += ["--json"]
    first = json.loads(runner.invoke(app, args, catch_exceptions=False).output)
    assert len(first["triggers_fired"]) >= 15
    assert first["tasks_created"] > 0
    assert first["webhook_events_received"] == first["events_sent"] > 0
    assert first["failed"] == 0
    assert first["duplicates_found"] == 0
    assert first["crm_requests"]["POST /crm/v3/objects/tasks/batch/upsert"] >= 1
    streams = first["streams"]  # billing and support through the Stripe and Zendesk connectors
    assert streams["billing.invoices"]["records"] == 150 * 4
    assert streams["billing.invoices"]["requests"] == 6  # 100 a page
    assert streams["support.tickets"]["records"] > 0
    assert streams["support.ticket_metrics"]["records"] == streams["support.tickets"]["records"]
    assert all(s["quarantined"] == 0 for s in streams.values())
    second = json.loads(runner.invoke(app, args, catch_exceptions=False).output)
    assert second["tasks_created"] == 0
    assert second["duplicates_found"] == 0
    reads = ("/search", "/batch/read")  # POSTs that only read
    writes = [
        k
        for k in second["crm_requests"]
        if k.startswith(("POST", "PATCH", "PUT", "DELETE")) and not k.endswith(reads)
    ]
    assert writes == []


def test_a_resolved_episode_closes_its_tasks_once(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    import csv

    root = _project(tmp_path, sandbox, server, hooks)
    first = _run(root)
    assert first["triggers_fired"].get("support_p1", 0) > 0
    tickets = root / "data" / "tickets.csv"
    with tickets.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["priority"] == "urgent":
            row["status"] = "solved"
            row["updated_at"] = "2026-11-18T11:00:00"  # after the last pull: read again
    with tickets.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    second = _run(root)
    third = _run(root)

    assert second["episodes_resolved"] >= first["triggers_fired"]["support_p1"]
    assert second["plan"].get("close_task", 0) > 0
    assert second["failed"] == 0
    completed = [
        t
        for t in sandbox.state.objects["tasks"].values()
        if t["properties"].get("hs_task_status") == "COMPLETED"
    ]
    assert len(completed) == second["plan"]["close_task"]
    assert all(":swat" in t["properties"]["signalplay_episode_key"] or ":comms" in
               t["properties"]["signalplay_episode_key"] for t in completed)  # fmt: skip
    assert third["plan"].get("close_task", 0) == 0


def test_an_op_failing_too_often_goes_to_the_dead_letters_until_requeued(
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    hooks: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNALPLAY_MAX_ATTEMPTS", "2")
    root = _project(tmp_path, sandbox, server, hooks)
    sandbox.fail_next(400, path_contains="/tasks/batch/upsert", times=1000)
    first, second = _run(root), _run(root)
    sandbox.faults.clear()
    assert first["failed"] > 0
    assert second["failed"] == first["failed"]
    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["status", "-p", str(root), "--json"]).stdout)
    assert shown["ledger"]["dead"] == first["failed"]
    assert len(shown["dead_letters"]) == min(first["failed"], 100)  # the newest 100
    upserts = sum(1 for r in sandbox.requests if r.template == "/crm/v3/objects/tasks/batch/upsert")
    third = _run(root)
    assert third["failed"] == 0
    assert third["tasks_created"] == 0  # dead letters are not retried by themselves
    assert upserts == sum(
        1 for r in sandbox.requests if r.template == "/crm/v3/objects/tasks/batch/upsert"
    )
    prefix = shown["dead_letters"][0]["op_key"][:12]
    assert "requeued 1 " in runner.invoke(app, ["requeue", prefix, "-p", str(root)]).stdout
    rest = first["failed"] - 1
    assert f"requeued {rest} " in runner.invoke(app, ["requeue", "-p", str(root)]).stdout
    fourth = _run(root)
    assert fourth["tasks_created"] == first["failed"]
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0


def test_plan_prints_each_change_with_its_fields_and_apply_executes_exactly_it(
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    hooks: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    root = _project(tmp_path, sandbox, server, hooks, accounts=40)
    runner = CliRunner()
    shown = runner.invoke(app, ["plan", "-p", str(root)], catch_exceptions=False).stdout
    assert "upsert_task" in shown
    assert "    owner 1" in shown
    assert ", due 20" in shown
    assert "update_fields  companies/" in shown
    assert "    signalplay_health_score: None → '" in shown
    writes = _writes(sandbox)
    dry = json.loads(runner.invoke(app, ["apply", "--dry-run", "-p", str(root), "--json"]).stdout)
    assert dry["dry_run"] is True
    assert dry["ops"] > 0
    assert dry["tasks_created"] == 0
    assert _writes(sandbox) == writes
    store = Store(load_project(root).store_url())
    try:
        # a preview leaves the ledger alone: a plan nobody applies is never sent by a later run
        assert store.pending_ops() == []
        planned = store.load_plan(store.latest_plan_id() or "")
        assert planned
        applied = json.loads(runner.invoke(app, ["apply", "-p", str(root), "--json"]).stdout)
        assert applied["dry_run"] is False
        assert applied["failed"] == 0
        assert applied["tasks_created"] == len(sandbox.state.objects["tasks"]) > 0
        assert {o.op_key for o in planned} <= store.applied_keys()  # each applied op recorded
    finally:
        store.close()


def test_a_dry_run_changes_nothing_a_later_run_would_send(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    ctx = hubspot_context(_project(tmp_path, sandbox, server, hooks, accounts=20))
    try:
        dry = jobs.run(ctx, dry_run=True).to_json()
        assert dry["plan"]["upsert_task"] > 0
        assert dry["episodes_opened"] > 0
        assert ctx.store.pending_ops() == []
        assert ctx.store.open_episodes() == {}  # a preview opens no episode, decides nothing
        assert ctx.store.episodes(status="resolved", resolved_since=noon() - timedelta(1)) == []

        real = jobs.run(ctx).to_json()  # and it previewed exactly what the run then sends
        assert real["episodes_opened"] == dry["episodes_opened"]
        previewed, sent = ctx.store.load_plan(dry["plan_id"]), ctx.store.load_plan(real["plan_id"])
        assert previewed is not None
        assert sent is not None
        assert [o.model_dump() for o in previewed] == [o.model_dump() for o in sent]
    finally:
        ctx.close()


def test_a_crash_between_the_crm_and_the_ledger_leaves_no_duplicate_and_no_gap(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    """The process dies after the CRM took half of the writes and before the ledger heard of
    any: the next run sends them again by key, so the CRM ends with each task once and every
    planned change applied."""
    from signalplay.models import WriteAction
    from signalplay.store import Store

    root = _project(tmp_path, sandbox, server, hooks)
    project = load_project(root)
    block = project.settings.crm.model_copy(update={"access_token": TOKEN})
    ctx = jobs.open_context(
        project,
        clock=noon,
        crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",)),
    )
    run_id = ctx.store.start_run("plan")
    jobs.pull(ctx, run_id)
    profiles = jobs.build_profiles(ctx, run_id)
    jobs.evaluate(ctx, profiles)
    ops = jobs.plan(ctx, profiles, run_id).ops
    writes = [o for o in ops if o.action is not WriteAction.SEND_WEBHOOK]
    ctx.crm.ensure_schema(list(ctx.definitions.writeback.account_fields))
    ctx.crm.write(writes[: len(writes) // 2])  # the CRM has these; the ledger does not know
    ctx.close()  # ... and the process is gone

    summary = _run(root)
    assert summary["failed"] == 0
    tasks = [o for o in writes if o.action is WriteAction.UPSERT_TASK]
    assert len(sandbox.state.objects["tasks"]) == len(tasks)
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0
    store = Store(project.store_url())
    try:
        assert store.pending_ops() == []
        assert {o.op_key for o in ops} <= store.applied_keys()
    finally:
        store.close()
