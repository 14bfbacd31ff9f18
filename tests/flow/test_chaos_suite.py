"""The chaos suite's short form (`signalplay chaos --seeds N` is the long one): a whole sync
through stand-ins that fail 10% of requests with 429, 5% with 5xx and hold 2% past the
client's timeout, one expired Salesforce session, the scheduled run (its own process) killed
with SIGKILL after its first CRM write; after the recovery runs, nothing is duplicated or lost.
And the counting itself: a task removed from the CRM, a field changed behind signalplay's back
and a stored source record dropped are each counted as lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.settings import load_project
from signalplay.store import Store
from signalplay.testing.chaos import World, run_seed

pytestmark = pytest.mark.slow


def test_salesforce_survives_faults_an_expired_session_and_a_killed_apply(tmp_path: Path) -> None:
    result = run_seed(2, crm="salesforce", workdir=tmp_path, concurrent=0)  # (long form has it)
    assert (result.duplicates, result.lost_writes, result.lost_records) == (0, 0, 0), result.details
    assert result.killed_after.startswith(("PATCH", "POST"))  # the kill came after a CRM write
    assert "/services/data/" in result.killed_after
    assert result.faults["429"] > 0
    assert result.faults["5xx"] > 0
    assert result.faults["expired_session"] == 1
    assert result.ops > 0
    assert result.records > 1_000
    assert result.runs >= 2


def _lose_things(world: World, root: Path) -> None:
    crm = world.crm
    assert isinstance(crm, HubSpotSandbox)
    task = next(t for t in crm.state.objects["tasks"].values() if not t["archived"])
    task["archived"] = True
    first, second = list(crm.state.objects["companies"])[:2]
    crm.state.objects["companies"][first]["properties"]["signalplay_health_band"] = "changed"
    # the second's change is hidden from the ledger check too: only the dry run can see it
    crm.state.objects["companies"][second]["properties"]["signalplay_health_band"] = "changed"
    store = Store(load_project(root).store_url())
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM ledger WHERE action = 'update_fields' AND target = :t"),
            {"t": second},
        )
        conn.execute(
            sa.text(
                "DELETE FROM raw_records WHERE record_id = (SELECT min(record_id) "
                "FROM raw_records WHERE source = 'billing' AND stream = 'invoices')"
            )
        )
    store.close()


def test_the_suite_counts_what_is_lost(tmp_path: Path) -> None:
    result = run_seed(
        3, crm="hubspot", workdir=tmp_path, accounts=15, concurrent=0, sabotage=_lose_things
    )
    assert result.duplicates == 0
    assert any(d.startswith("task ") and "not in the CRM" in d for d in result.details)
    assert any(".signalplay_health_band: ledger" in d for d in result.details), result.details
    dry = [d for d in result.details if d.startswith("a fault-free dry run still plans")]
    assert dry
    assert "'update_fields': 2" in dry[0]  # both changed accounts would be written again
    assert result.lost_writes == 3
    assert result.lost_records == 1
    assert any(d.startswith("record not pulled: billing.invoices/") for d in result.details)


def test_the_long_form_prints_per_seed_and_total_figures(tmp_path: Path) -> None:
    args = ["chaos", "--seeds", "1", "--crm", "hubspot", "--accounts", "10", "--json"]
    result = CliRunner().invoke(app, [*args, "--dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    (seed,) = got["seeds"]
    assert (seed["seed"], seed["crm"]) == (1, "hubspot")
    assert {k: got["total"][k] for k in ("duplicates", "lost_writes", "lost_records")} == {
        "duplicates": 0,
        "lost_writes": 0,
        "lost_records": 0,
    }
    assert got["total"]["killed_mid_apply"] == 1
    assert got["total"]["concurrent_runs"] == 2  # two runs at once after the kill
    assert got["total"]["concurrent_crashed"] == 0
    assert got["total"]["events_lost"] == 0
    assert set(seed["concurrent_exits"]) <= {0, 1, 3}
    assert sum(got["total"]["faults"].values()) > 0
