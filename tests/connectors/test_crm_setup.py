"""`signalplay crm check` and `crm setup` against both CRM stand-ins: missing fields named with
their file and line, created typed (HubSpot properties API; Salesforce Tooling CustomField), the
closure reason picklist extended, a wrong type or a missing owner left for a person."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.connectors.salesforce import SalesforceConnector, SalesforceSettings
from signalplay.definitions.loader import load_definitions
from signalplay.definitions.schema import CLOSURE_REASONS
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import SalesforceSandbox, tls
from signalplay.sandbox.server import Server, serve
from signalplay.writeback.crmschema import FieldSpec, owner_refs, preflight, wanted_fields
from tests.conftest import TOKEN, make_project

ENV = {"SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN}


@pytest.fixture
def project(tmp_path: Path, sandbox: HubSpotSandbox, server: Server) -> Path:
    return make_project(tmp_path, sandbox, server.url)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=ENV, terminal_width=200)
    return result.exit_code, result.output


def test_check_names_each_missing_field_with_its_file_and_line(project: Path) -> None:
    code, output = cli("crm", "check", "-p", str(project))
    assert code == 1
    lines = output.splitlines()
    assert any(
        line.startswith("mappings/writeback.yaml:8:3: account_fields.signalplay_health_band")
        and "(picklist)" in line
        for line in lines
    )
    assert any(
        line.startswith("signalplay.yaml:") and "signalplay_episode_key" in line for line in lines
    )
    assert any("closure_reasons" in line and "signalplay_closure_reason" in line for line in lines)
    assert lines[-1] == "6 problem(s); 6 fixed by `signalplay crm setup`"


def test_setup_creates_typed_properties_then_check_passes(
    project: Path, sandbox: HubSpotSandbox
) -> None:
    code, output = cli("crm", "setup", "-p", str(project), "--dry-run")
    assert code == 0
    assert "would create task field signalplay_closure_reason (picklist)" in output
    assert "signalplay_health_score" not in sandbox.state.properties["companies"]

    code, output = cli("crm", "setup", "-p", str(project))
    assert code == 0, output
    companies = sandbox.state.properties["companies"]
    assert (
        companies["signalplay_health_score"]["type"],
        companies["signalplay_health_score"]["fieldType"],
    ) == ("number", "number")
    assert {o["value"] for o in companies["signalplay_health_band"]["options"]} == {
        "green",
        "yellow",
        "red",
    }
    assert companies["signalplay_health_drivers"]["fieldType"] == "textarea"
    tasks = sandbox.state.properties["tasks"]
    assert tasks["signalplay_episode_key"]["hasUniqueValue"] is True
    options = [o["value"] for o in tasks["signalplay_closure_reason"]["options"]]
    assert options == [*CLOSURE_REASONS, "condition_cleared", "trigger_retired"]

    assert cli("crm", "check", "-p", str(project)) == (
        0,
        "ok: the CRM has every field, picklist value and owner signalplay needs\n",
    )
    code, output = cli("crm", "setup", "-p", str(project))
    assert (code, output.strip()) == (
        0,
        "nothing to create: the CRM has every field signalplay writes",
    )


def test_setup_adds_new_closure_reasons_keeping_the_crms_own(
    project: Path, sandbox: HubSpotSandbox
) -> None:
    assert cli("crm", "setup", "-p", str(project))[0] == 0
    prop = sandbox.state.properties["tasks"]["signalplay_closure_reason"]
    prop["options"] = [
        *prop["options"][:2],
        {"label": "Other", "value": "other", "displayOrder": 9, "hidden": False},
    ]
    writeback = project / "mappings" / "writeback.yaml"
    writeback.write_text(
        writeback.read_text().replace("no_response, other]", "no_response, other, churned]")
    )

    code, output = cli("crm", "check", "-p", str(project))
    assert code == 1
    assert (
        "lacks the picklist values adoption_recovered, renewal_risk_reduced, no_response, "
        "churned, condition_cleared, trigger_retired" in output
    )
    assert cli("crm", "setup", "-p", str(project))[0] == 0
    values = [
        o["value"]
        for o in sandbox.state.properties["tasks"]["signalplay_closure_reason"]["options"]
    ]
    assert values == [
        "false_positive",
        "resolved",
        "other",
        "adoption_recovered",
        "renewal_risk_reduced",
        "no_response",
        "churned",
        "condition_cleared",
        "trigger_retired",
    ]


def test_a_wrong_type_and_an_unknown_owner_are_left_for_a_person(
    project: Path, sandbox: HubSpotSandbox
) -> None:
    assert cli("crm", "setup", "-p", str(project))[0] == 0
    sandbox.state.properties["companies"]["signalplay_health_score"]["type"] = "date"
    routing = project / "mappings" / "routing.yaml"
    routing.write_text(
        routing.read_text().replace('escalation_owner: "101"', 'escalation_owner: "999999"')
    )
    code, output = cli("crm", "setup", "-p", str(project))
    assert code == 1
    assert (
        "still to fix: mappings/writeback.yaml:7:3: account_fields.signalplay_health_score: "
        "hubspot account field 'signalplay_health_score' is date; signalplay writes number values"
        in output
    )
    assert "escalation_owner: owner '999999' does not exist in hubspot" in output
    assert "mappings/routing.yaml:" in output


# ---- Salesforce: describe, Tooling API CustomField, users -----------------------------------


@pytest.fixture
def sf(tmp_path: Path) -> Iterator[tuple[SalesforceSandbox, SalesforceConnector]]:
    org = SalesforceSandbox(token=TOKEN)
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        settings = SalesforceSettings(
            instance_url=server.url, access_token=SecretStr(TOKEN), ca_bundle=ca
        )
        conn = SalesforceConnector(settings, sleep=lambda _: None)
        yield org, conn
        conn.close()


def _salesforce_definitions(tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "sf-mappings"
    folder.mkdir()
    for src in shipped_mappings().glob("*.yaml"):
        (folder / src.name).write_text(src.read_text())
    (folder / "writeback.yaml").write_text(
        "version: 1\naccount_fields:\n  Signalplay_Health_Score__c: health_score\n"
        "  Signalplay_Health_Band__c: health_band\n  Signalplay_Drivers__c: health_drivers\n"
    )
    return load_definitions(folder)


def test_salesforce_setup_deploys_custom_fields_through_the_tooling_api(
    tmp_path: Path, sf: tuple[SalesforceSandbox, SalesforceConnector]
) -> None:
    org, conn = sf
    defs = _salesforce_definitions(tmp_path)
    for owner in {o for o, _, _ in owner_refs(defs)}:
        org.state.objects.setdefault("User", {})
        org.seed("User", {"LastName": f"Owner {owner}", "IsActive": True})
    specs = wanted_fields(defs, conn.task_fields)
    before = preflight(specs, conn.describe_crm(), [])
    assert sorted(f.spec.name for f in before if f.spec) == [
        "Signalplay_Closure_Reason__c",
        "Signalplay_Drivers__c",
        "Signalplay_Health_Band__c",
        "Signalplay_Health_Score__c",
        "Signalplay_Key__c",
    ]
    for finding in before:
        assert finding.spec is not None
        conn.create_field(finding.spec)
    described = conn.describe_crm()
    assert preflight(specs, described, []) == []
    key = described.fields["task"]["Signalplay_Key__c"]
    assert (key.kind, key.unique) == ("text", True)
    assert described.fields["account"]["Signalplay_Health_Score__c"].kind == "number"
    assert described.fields["account"]["Signalplay_Drivers__c"].kind == "textarea"
    created = [r for r in org.requests if "tooling/sobjects/CustomField" in r.path]
    assert len(created) == 5

    band = next(s for s in specs if s.name == "Signalplay_Health_Band__c")
    conn.add_picklist_values(band, ["unknown"])
    assert (
        conn.describe_crm().fields["account"]["Signalplay_Health_Band__c"].options[-1] == "unknown"
    )


def test_salesforce_check_reports_inactive_owners_and_a_standard_picklist(
    tmp_path: Path, sf: tuple[SalesforceSandbox, SalesforceConnector]
) -> None:
    org, conn = sf
    active = org.seed("User", {"LastName": "Active", "IsActive": True})
    gone = org.seed("User", {"LastName": "Gone", "IsActive": False})
    meta = conn.describe_crm()
    assert active in meta.owners
    assert gone not in meta.owners
    findings = preflight([], meta, [(gone, "routing.yaml", ("escalation_owner",))])
    assert [f.issue.message for f in findings] == [
        f"owner {gone!r} does not exist in crm (or is inactive)"
    ]
    status = FieldSpec(object="task", name="Status", kind="picklist", options=("Escalated",))
    [missing] = preflight([status], meta, [])
    assert missing.missing_options == ("Escalated",)
    from signalplay.errors import FatalError

    with pytest.raises(FatalError, match="add Escalated to it in Setup"):
        conn.add_picklist_values(status, ["Escalated"])
