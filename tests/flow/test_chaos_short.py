"""The chaos suite's short form: the HubSpot stand-in answers 10% of requests with a 429 (and
its Retry-After), 5% with a 502, and holds 2% past the client's timeout before processing them
anyway. After the recovery runs: no duplicate task, and no lost write (every planned op is
applied, and the CRM holds what the ledger says it does)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from signalplay import jobs
from signalplay.registry import build_connector
from signalplay.sandbox.chaos import Chaos
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server, serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.settings import load_project
from tests.conftest import TODAY, TOKEN, make_project

pytestmark = pytest.mark.slow
KEY = "signalplay_episode_key"


def _run(root: Path) -> dict:  # type: ignore[type-arg]
    project = load_project(root)
    block = project.settings.crm.model_copy(update={"access_token": TOKEN})
    ctx = jobs.open_context(
        project,
        clock=lambda: datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC),
        crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",)),
    )
    try:
        summary = jobs.run(ctx).to_json()
        with ctx.store.engine.connect() as conn:
            summary["ledger"] = [
                (r.op_key, r.action, r.target, r.status, r.payload)
                for r in conn.execute(sa.text("SELECT * FROM ledger"))
            ]
        return summary
    finally:
        ctx.close()


@pytest.mark.parametrize("seed", [3])  # a seed whose draws hit every fault kind
def test_no_duplicate_and_no_lost_write_under_chaos(
    tmp_path: Path, seed: int, hooks: Server, receiver: WebhookReceiver
) -> None:
    portal = HubSpotSandbox(token=TOKEN)
    chaos = Chaos(portal, seed=seed, hang_seconds=1.5)
    with serve(chaos) as server:
        root = make_project(
            tmp_path / "proj", portal, server.url, accounts=40, webhook_url=f"{hooks.url}/events"
        )
        config = root / "signalplay.yaml"
        text = config.read_text()
        text = re.sub(r"(\n  host: \S+)", r"\1\n  read_timeout: 1.0", text, count=1)
        config.write_text(text)
        # the scheduled run, then runs again (recovering what failed; re-running what worked
        # must change nothing), faults all along
        runs = [_run(root) for _ in range(3)]
    ledger = runs[-1]["ledger"]
    # every retry is counted in its run's summary (what the metrics serve)
    retried = sum(
        r["write_retries"] + sum(s.get("retries", 0) for s in r["streams"].values()) for r in runs
    )
    assert retried == chaos.counts["429"] + chaos.counts["5xx"] + chaos.counts["timeout"]
    assert chaos.counts["429"] > 0, chaos.counts
    assert chaos.counts["5xx"] > 0, chaos.counts
    assert chaos.counts["timeout"] > 0, chaos.counts
    assert portal.duplicate_tasks(KEY) == 0
    lost = [(action, status) for _, action, _, status, _ in ledger if status != "applied"]
    assert lost == []
    events = sum(1 for _, action, _, _, _ in ledger if action == "send_webhook")
    assert len({e["episode_key"] for e in receiver.events}) <= events
    tasks = {
        t["properties"].get(KEY)
        for t in portal.state.objects["tasks"].values()
        if not t["archived"]
    }
    wanted = {target for _, action, target, _, _ in ledger if action == "upsert_task"}
    assert wanted
    assert wanted <= tasks  # every applied task is in the CRM
    for _, action, target, _, payload in ledger:
        if action != "update_fields":
            continue
        values = json.loads(payload)["values"]  # (a JSON column, as plain SQL reads it)
        assert values
        props = portal.state.objects["companies"][target]["properties"]
        assert {k: props.get(k) for k in values} == {k: str(v) for k, v in values.items()}
