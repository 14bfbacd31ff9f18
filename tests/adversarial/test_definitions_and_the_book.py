"""Definitions change safely, and the book follows the CRM.

Before: a trigger renamed in triggers.yaml resolved its open episodes and closed their CRM tasks
as `condition_cleared` though the condition still held (and `mappings check` said nothing); a
company archived in the CRM stayed in the book, and later runs planned field updates and tasks
against it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from signalplay import jobs
from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from tests.conftest import TOKEN, hubspot_context, make_project, noon

LATER = noon() + timedelta(hours=2)


def _first_run(root: Path) -> tuple[str, list[str]]:
    """Run once; the trigger with the most actioned open episodes, and their keys."""
    with hubspot_context(root) as ctx:
        jobs.crm_setup(ctx)  # the closure-reason picklist, with signalplay's own reasons
        jobs.run(ctx)
        opened = [
            e for e in ctx.store.open_episodes().values() if e.decision.get("status") == "actioned"
        ]
    trigger, _ = Counter(e.trigger_id for e in opened).most_common(1)[0]
    return trigger, sorted(e.key for e in opened if e.trigger_id == trigger)


def _episode_of(task: dict) -> str:
    """The episode a task was written for (its key property is `<episode>:<action>`)."""
    return str(task.get("signalplay_episode_key") or "").rsplit(":", 1)[0]


def _edit_trigger(root: Path, trigger: str, replacement: str) -> None:
    path = root / "mappings" / "triggers.yaml"
    text = path.read_text()
    assert f"  - id: {trigger}\n" in text
    path.write_text(text.replace(f"  - id: {trigger}\n", replacement, 1))


def test_a_renamed_trigger_carries_its_episodes_and_tasks_over(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=60)
    trigger, keys = _first_run(root)
    tasks = len(sandbox.state.objects["tasks"])
    _edit_trigger(root, trigger, f"  - id: {trigger}_v2\n    renamed_from: [{trigger}]\n")
    checked = CliRunner().invoke(app, ["mappings", "check", "-p", str(root)])
    assert checked.exit_code == 0, checked.output
    assert "warning" not in checked.output
    with hubspot_context(root, lambda: LATER) as ctx:
        result = jobs.run(ctx)
        carried = sorted(
            e.key for e in ctx.store.open_episodes().values() if e.trigger_id == f"{trigger}_v2"
        )
        closed = [e for e in ctx.store.episodes(status="resolved") if e.key in keys]
    assert carried == keys  # the same episodes, under the new id
    assert closed == []
    assert result.plan.get("close_task", 0) == 0
    assert len(sandbox.state.objects["tasks"]) == tasks  # no task closed or written again
    assert result.applied.tasks_created == 0


def test_a_removed_trigger_is_named_and_its_episodes_close_as_retired(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=60)
    trigger, keys = _first_run(root)
    path = root / "mappings" / "triggers.yaml"
    # disabling is removing, as far as open episodes go (the play stays referenced elsewhere)
    _edit_trigger(root, trigger, f"  - id: {trigger}\n    enabled: false\n")
    assert trigger in path.read_text()
    checked = CliRunner().invoke(app, ["mappings", "check", "-p", str(root)])
    assert checked.exit_code == 0
    assert f"trigger {trigger} is no longer in triggers.yaml" in checked.output
    assert f"with {len(keys)} open episode(s)" in checked.output
    with hubspot_context(root, lambda: LATER) as ctx:
        planned = jobs.preview(ctx)  # the plan shows what the change will close
        closes = [o for o in planned.ops if o.action.value == "close_task"]
        assert {o.values.get("closure_reason") for o in closes} == {"trigger_retired"}
        jobs.run(ctx)
        resolved = {e.key: e.resolution for e in ctx.store.episodes(status="resolved")}
    assert {resolved[k] for k in keys} == {"trigger_retired"}
    completed = [
        t["properties"]
        for t in sandbox.state.objects["tasks"].values()
        if _episode_of(t["properties"]) in keys
    ]
    assert completed
    assert {p.get("hs_task_status") for p in completed} == {"COMPLETED"}
    assert {p.get("signalplay_closure_reason") for p in completed} == {"trigger_retired"}


def test_an_account_archived_in_the_crm_leaves_the_book(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=40)
    with hubspot_context(root) as ctx:
        jobs.run(ctx)
        actioned = [
            e for e in ctx.store.open_episodes().values() if e.decision.get("status") == "actioned"
        ]
        account = actioned[0].account
        company = next(
            r.record_id
            for r in ctx.store.iter_records("crm", "companies")
            if account in {str(r.data.get("domain")), r.record_id}
            or re.sub(r"^www\.", "", str(r.data.get("domain"))) in account
        )
    keys = {e.key for e in actioned if e.account == account}
    gone = httpx.delete(
        f"{server.url}/crm/v3/objects/companies/{company}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert gone.status_code == 204
    tasks_before = {k: dict(v["properties"]) for k, v in sandbox.state.objects["tasks"].items()}
    with hubspot_context(root, lambda: LATER) as ctx:
        result = jobs.run(ctx)
        plan = ctx.store.load_plan(result.plan_id) or []
        resolved = {e.key: e.resolution for e in ctx.store.episodes(status="resolved")}
        assert not ctx.store.load_facts([account]).get(account)  # out of the book
    assert result.streams["crm.companies"]["removed"] == 1
    assert {resolved[k] for k in keys} == {"account_removed"}
    assert [o for o in plan if o.target == company] == []
    assert [o for o in plan if o.episode_key in keys] == []  # no close against its tasks
    for key, props in tasks_before.items():
        if _episode_of(props) in keys:
            assert sandbox.state.objects["tasks"][key]["properties"] == props


def _edit_play(root: Path, play: str) -> None:
    """Prefix the subject of the play's first action with EDITED."""
    path = root / "mappings" / "plays.yaml"
    text = path.read_text()
    start = text.index(f"  - id: {play}\n")
    at = text.index('subject: "', start) + len('subject: "')
    path.write_text(text[:at] + "EDITED " + text[at:])


def test_a_play_edited_while_episodes_are_open_is_extended_only_when_asked(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    sandbox.clock = noon  # the portal's clock is the runs' (the CSM completes a task in between)
    root = make_project(tmp_path, sandbox, server.url, accounts=60)
    trigger, keys = _first_run(root)
    sandbox.clock = lambda: noon() + timedelta(hours=1)
    with hubspot_context(root) as ctx:
        play = ctx.definitions.trigger(trigger).play
        first = ctx.definitions.play(play).actions[0].id
    tasks = sandbox.state.objects["tasks"]
    written = {
        _episode_of(t["properties"]): (tid, t["properties"]["hs_task_subject"])
        for tid, t in tasks.items()
        if str(t["properties"].get("signalplay_episode_key")).endswith(f":{first}")
    }
    assert set(keys) <= set(written)
    done_by_csm, (done_id, done_subject) = keys[0], written[keys[0]]
    completed = httpx.patch(
        f"{server.url}/crm/v3/objects/tasks/{done_id}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"properties": {"hs_task_status": "COMPLETED"}},
    )
    assert completed.status_code == 200
    _edit_play(root, play)
    count = len(tasks)

    # By default the edit is for episodes opened after it: the plan says so and changes nothing.
    env = {"SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN, "SIGNALPLAY_AS_OF": LATER.isoformat()}
    shown = CliRunner().invoke(app, ["plan", "-p", str(root)], env=env)
    with hubspot_context(root, lambda: LATER) as ctx:
        planned = jobs.preview(ctx)
    assert planned.stats["task_edits_held"] >= len(keys) - 1  # not the one the CSM completed
    assert [o for o in planned.ops if o.episode_key in keys] == []
    assert shown.exit_code == 0, shown.output
    assert "differ from their play as edited since" in shown.output
    assert "--extend-edits updates them" in shown.output

    # Asked to, the plan carries it to the open tasks, never reopening one a CSM completed.
    with hubspot_context(root, lambda: LATER) as ctx:
        extended = jobs.preview(ctx, extend_edits=True)
        edits = [o for o in extended.ops if o.episode_key in keys]
        assert {o.target for o in edits} == {f"{k}:{first}" for k in keys if k != done_by_csm}
        assert all("edited while episode" in o.reason for o in edits)
        result = jobs.run(ctx, extend_edits=True)
    assert result.applied.tasks_updated >= len(keys) - 1
    assert result.applied.tasks_created == 0
    assert len(tasks) == count  # updated in place, none written again
    for key in keys:
        tid, subject = written[key]
        props = tasks[tid]["properties"]
        if key == done_by_csm:
            assert props["hs_task_subject"] == done_subject
            assert props["hs_task_status"] == "COMPLETED"
        else:
            assert "EDITED " in props["hs_task_subject"]
            assert props["hs_task_subject"].replace("EDITED ", "") == subject
            assert props["hs_task_status"] != "COMPLETED"
    with hubspot_context(root, lambda: LATER + timedelta(hours=1)) as ctx:
        again = jobs.preview(ctx, extend_edits=True)
    assert [o for o in again.ops if o.episode_key in keys] == []  # applied once
    assert again.stats["task_edits_held"] == 0
