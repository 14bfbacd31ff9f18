"""The demo against the Salesforce stand-in, over TLS through simple-salesforce: the org's fields
deployed by `crm setup`, every actioned play written once, and a second run writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.sandbox.salesforce import SalesforceSandbox

pytestmark = pytest.mark.slow


def _writes(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k.split()[0] in ("POST", "PATCH", "PUT", "DELETE"))


def test_demo_against_salesforce_twice(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    args = ["demo", "--crm", "salesforce", "--dir", str(directory), "--accounts", "120"]
    args += ["--history-weeks", "0", "--json"]  # today's run only: every write counted
    first = json.loads(CliRunner().invoke(app, args, catch_exceptions=False).output)
    assert first["crm"] == "salesforce"
    assert "create task field Signalplay_Key__c (text)" in first["crm_setup"]["created"]
    assert first["crm_setup"]["remaining"] == []
    assert first["tasks_created"] > 0
    assert first["fields_updated"] == 120 * 4
    assert (first["failed"], first["duplicates_found"]) == (0, 0)
    assert first["sandbox_tasks"] == first["tasks_created"]
    upserts = first["crm_requests"][
        "PATCH /services/data/v59.0/composite/sobjects/Task/Signalplay_Key__c"
    ]
    assert upserts == -(-first["tasks_created"] // 200)  # collections of 200

    org = SalesforceSandbox(state_file=directory / ".signalplay" / "salesforce.json")
    account = org.records("Account")[0]
    assert account["Signalplay_Health_Band__c"] in {"green", "yellow", "red"}
    assert org.duplicate_tasks("Signalplay_Key__c") == 0

    second = json.loads(CliRunner().invoke(app, args, catch_exceptions=False).output)
    assert (second["tasks_created"], second["fields_updated"], second["failed"]) == (0, 0, 0)
    assert second["crm_setup"]["created"] == []
    assert _writes(second["crm_requests"]) == 0
