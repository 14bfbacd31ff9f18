"""Time only moves forward for runs that write; previews write nothing, for any `as_of`.

Before: a run as of a moment before the last applied run was accepted (episodes resolved before
they opened, their tasks closed); `plan` with a future SIGNALPLAY_AS_OF wrote a future-dated
snapshot and run row and rewrote the stored profile values that `explain` then read.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from signalplay import jobs
from signalplay.cli import app
from signalplay.errors import ConfigError
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.store import schema as t
from tests.conftest import TOKEN, hubspot_context, make_project, noon

DERIVED = (t.runs, t.profile_facts, t.profile_snapshots, t.episodes, t.ledger, t.identity_issues)


def _tables(ctx: jobs.Context) -> dict[str, list[str]]:
    with ctx.store.engine.connect() as conn:
        return {
            table.name: sorted(
                json.dumps(dict(r._mapping), default=str, sort_keys=True)
                for r in conn.execute(sa.select(table))
            )
            for table in DERIVED
        }


def test_a_run_as_of_before_the_last_applied_one_is_refused(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=20)
    with hubspot_context(root) as ctx:
        assert jobs.run(ctx).applied.tasks_created > 0
    tasks = len(sandbox.state.objects["tasks"])
    earlier = noon() - timedelta(days=3)
    with hubspot_context(root, lambda: earlier) as ctx:
        before = _tables(ctx)
        with pytest.raises(ConfigError) as caught:
            jobs.run(ctx)
        message = str(caught.value)
        assert earlier.isoformat() in message
        assert "before the last applied run" in message
        assert "only move forward" in message
        assert _tables(ctx) == before  # not even a run row
        with pytest.raises(ConfigError):
            jobs.apply_saved(ctx)
        # a preview as of that moment is allowed: it writes nothing
        assert jobs.run(ctx, dry_run=True).dry_run
    assert len(sandbox.state.objects["tasks"]) == tasks
    with hubspot_context(root) as ctx:  # the same moment again is fine
        assert jobs.run(ctx).applied.tasks_created == 0  # accepted; nothing new to write


def test_the_cli_says_both_times_and_exits_2(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=10)
    with hubspot_context(root) as ctx:
        jobs.run(ctx)
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALPLAY_AS_OF", "2026-11-01T09:00:00+00:00")
    result = CliRunner().invoke(app, ["run", "-p", str(root)])
    assert result.exit_code == 2
    assert "2026-11-01T09:00:00+00:00" in result.output
    assert f"{noon().date().isoformat()}T12:00:00" in result.output
    assert "Traceback" not in result.output


def test_previews_write_nothing_for_any_as_of(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=20)
    with hubspot_context(root) as ctx:
        jobs.run(ctx)
        account = next(iter(ctx.store.latest_snapshots()))
        explained = ctx.store.load_facts([account])
    crm_before = json.dumps(sandbox.state.objects, default=str, sort_keys=True)
    for moment in (noon() + timedelta(days=30), noon() - timedelta(days=30)):
        with hubspot_context(root, lambda at=moment: at) as ctx:
            before = _tables(ctx)
            planned = jobs.preview(ctx)
            dry = jobs.run(ctx, dry_run=True)
            jobs.explain(ctx, account)
            assert planned.ops  # the previews did plan something
            assert dry.plan
            assert _tables(ctx) == before, moment
            assert ctx.store.load_facts([account]) == explained
            assert ctx.store.load_plan(planned.plan_id) is not None  # the plan `apply` takes
    assert json.dumps(sandbox.state.objects, default=str, sort_keys=True) == crm_before
