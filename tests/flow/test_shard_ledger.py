"""A shard reads the ledger of its own accounts and episodes (not the whole ledger once per
shard) and plans exactly what a whole run plans for those accounts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from signalplay import jobs
from signalplay.models import WriteAction
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.store import schema
from tests.conftest import hubspot_context, make_project

pytestmark = pytest.mark.slow


def test_a_shard_plans_from_its_own_ledger_what_a_whole_run_plans(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server, hooks: Server
) -> None:
    root = make_project(tmp_path, sandbox, server.url, accounts=60, webhook_url=f"{hooks.url}/e")
    ctx = hubspot_context(root)
    try:
        first = jobs.run(ctx).to_json()
        assert first["tasks_created"] > 0
        assert first["events_sent"] > 0
        assert first["failed"] == 0
        run_id = ctx.store.start_run("test")
        profiles = jobs.build_profiles(ctx, run_id)
        accounts = sorted(profiles.values)
        shard = accounts[:25]
        everything = ctx.store.applied_keys()
        scoped = ctx.store.applied_keys(targets=shard, episode_keys=_episodes(ctx, shard))
        assert scoped
        assert scoped < everything  # the shard's part of the ledger, no more

        # Forget that a few of the shard's ops (a task, an event, a field update) were applied:
        # both plans must write those again.
        with ctx.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema.ledger.c.op_key, schema.ledger.c.action).where(
                    schema.ledger.c.op_key.in_(sorted(scoped))
                )
            ).all()
        forgotten = {
            next(k for k, a in rows if a == action.value)
            for action in (
                WriteAction.UPSERT_TASK,
                WriteAction.SEND_WEBHOOK,
                WriteAction.UPDATE_FIELDS,
            )
        }
        with ctx.store.engine.begin() as conn:
            conn.execute(schema.ledger.delete().where(schema.ledger.c.op_key.in_(forgotten)))

        mine = replace(profiles, values={a: profiles.values[a] for a in shard})
        whole = {o.op_key for o in jobs.plan_ops(ctx, mine).ops}  # reads the whole ledger
        sharded = {o.op_key for o in jobs.plan_ops(ctx, mine, shard=shard).ops}
        assert sharded == whole
        assert forgotten <= sharded
    finally:
        ctx.close()


def _episodes(ctx: jobs.Context, accounts: list[str]) -> list[str]:
    return [e.key for e in ctx.store.open_episodes(accounts).values()]
