"""The Salesforce stand-in answers simple-salesforce over TLS as a real org does: shapes checked
against the canned Salesforce responses in shared/fixtures/salesforce/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
)

from signalplay.sandbox.salesforce import Field, SalesforceSandbox, tls
from signalplay.sandbox.server import Server, serve

# Copied unchanged from shared/fixtures/salesforce (restforce test fixtures, MIT: LICENSE there).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
TOKEN = "00Dtest!session"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def org() -> SalesforceSandbox:
    sandbox = SalesforceSandbox(token=TOKEN, page_size=2000)
    sandbox.add_field(
        "Task", Field("Signalplay_Key__c", external_id=True, unique=True, custom=True)
    )
    return sandbox


@pytest.fixture
def served(org: SalesforceSandbox, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        yield server, ca


@pytest.fixture
def sf(served: tuple[Server, str]) -> Salesforce:
    server, ca = served
    session = requests.Session()
    session.verify = ca
    session.trust_env = False
    return Salesforce(instance_url=server.url, session_id=TOKEN, session=session, version="59.0")


def _keys_like(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(expected) <= set(got), (sorted(got), sorted(expected))


def test_query_pages_with_next_records_url_and_a_constant_total(org, sf) -> None:
    org.page_size = 200
    for i in range(450):
        org.seed("Account", {"Name": f"Acme {i:03d}"})
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Name")
    _keys_like(first, fixture("sobject/query_paginated_first_page_response.json"))
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert first["records"][0]["attributes"]["type"] == "Account"
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["totalSize"] == 450
    rows = list(sf.query_all_iter("SELECT Id, Name FROM Account ORDER BY Name"))
    assert [r["Name"] for r in rows] == [f"Acme {i:03d}" for i in range(450)]
    last = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    _keys_like(last, fixture("sobject/query_paginated_last_page_response.json"))
    assert last["done"] is True
    assert "nextRecordsUrl" not in last


def test_incremental_query_on_system_modstamp_and_deletes_through_query_all(org, sf) -> None:
    keep = org.seed("Account", {"Name": "Keep"})
    gone = org.seed("Account", {"Name": "Gone"})
    sf.Account.delete(gone)
    soql = "SELECT Id, IsDeleted FROM Account WHERE SystemModstamp > 2000-01-01T00:00:00Z"
    live = sf.query(soql)
    every = sf.query_all(soql, include_deleted=True)
    assert [r["Id"] for r in live["records"]] == [keep]
    assert {(r["Id"], r["IsDeleted"]) for r in every["records"]} == {(keep, False), (gone, True)}


def test_parent_fields_and_where_clauses(org, sf) -> None:
    acct = org.seed("Account", {"Name": "Acme", "Type": "Customer"})
    org.seed("Contact", {"AccountId": acct, "LastName": "Ng", "Title": "CFO"})
    org.seed("Contact", {"AccountId": acct, "LastName": "Lee", "Title": "VP Ops"})
    got = sf.query(
        "SELECT Id, LastName, Account.Name FROM Contact "
        "WHERE Account.Type = 'Customer' AND (Title LIKE 'VP%' OR LastName IN ('Ng')) "
        "ORDER BY LastName DESC"
    )
    assert [r["LastName"] for r in got["records"]] == ["Ng", "Lee"]
    assert got["records"][0]["Account"]["Name"] == "Acme"
    assert got["records"][0]["Account"]["attributes"]["type"] == "Account"


def test_bad_queries_answer_as_salesforce_does(sf) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT Id FROM Account WHERE")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as field:
        sf.query("SELECT Nope__c FROM Account")
    _keys_like(field.value.content[0], fixture("sobject/query_error_response.json")[0])
    assert field.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_create_and_upsert_by_external_id(org, sf) -> None:
    created = sf.Account.create({"Name": "Acme"})
    _keys_like(created, fixture("sobject/create_success_response.json"))
    first = sf.Task.upsert("Signalplay_Key__c/sp_1", {"Subject": "Call", "WhatId": created["id"]})
    again = sf.Task.upsert("Signalplay_Key__c/sp_1", {"Subject": "Call back"})
    assert (first, again) == (201, 200)
    tasks = org.records("Task")
    assert len(tasks) == 1
    assert (tasks[0]["Subject"], tasks[0]["Status"], tasks[0]["Priority"]) == (
        "Call back",
        "Not Started",
        "Normal",
    )


def test_upsert_matching_several_records_is_a_300(org, sf) -> None:
    org.add_field("Contact", Field("Ext__c", external_id=True))
    org.seed("Contact", {"LastName": "A", "Ext__c": "dup"})
    org.seed("Contact", {"LastName": "B", "Ext__c": "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as many:
        sf.Contact.upsert("Ext__c/dup", {"LastName": "C"})
    assert len(many.value.content) == 2


def test_collection_upsert_reports_each_record_and_keeps_the_good_ones(org, sf) -> None:
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Task"}, "Signalplay_Key__c": "k1", "Subject": "ok"},
            {"attributes": {"type": "Task"}, "Signalplay_Key__c": "k2", "Status": "Bogus"},
            {"attributes": {"type": "Task"}, "Signalplay_Key__c": "k3", "Nope__c": 1},
        ],
    }
    results = sf.restful("composite/sobjects/Task/Signalplay_Key__c", method="PATCH", json=body)
    expected = fixture("sobject/composite_sobjects_success_response.json")
    _keys_like(results[0], expected[0])
    assert [r["success"] for r in results] == [True, False, False]
    assert results[0]["created"] is True
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[2]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert [t["Signalplay_Key__c"] for t in org.records("Task")] == ["k1"]
    again = sf.restful("composite/sobjects/Task/Signalplay_Key__c", method="PATCH", json=body)
    assert again[0]["created"] is False
    assert len(org.records("Task")) == 1


def test_all_or_none_rolls_every_record_back(org, sf) -> None:
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Account"}, "Name": "Good"},
            {"attributes": {"type": "Account"}},
        ],
    }
    results = sf.restful("composite/sobjects", method="POST", json=body)
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert org.records("Account") == []


def test_collections_are_capped_at_200_records(sf) -> None:
    body = {"records": [{"attributes": {"type": "Account"}, "Name": str(i)} for i in range(201)]}
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful("composite/sobjects", method="POST", json=body)
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_field_updates_through_collections_and_unique_values(org, sf) -> None:
    a = org.seed("Account", {"Name": "A"})
    org.add_field("Account", Field("Health_Score__c", "double", custom=True))
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "id": a, "Health_Score__c": 72},
                {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Name": "x"},
            ],
        },
    )
    assert [r["success"] for r in results] == [True, False]
    assert org.records("Account")[0]["Health_Score__c"] == 72
    org.seed("Task", {"Signalplay_Key__c": "taken"})
    clash = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "Task"}, "Signalplay_Key__c": "taken"}]},
    )
    assert clash[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def test_expired_session_is_a_401_list_body(org, sf) -> None:
    org.expire_session()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM Account")
    assert expired.value.content == fixture("expired_session_response.json")


def test_daily_limit_is_refused_and_usage_is_in_every_response(org, sf) -> None:
    org.daily_max = 3
    sf.query("SELECT Id FROM Account")
    assert sf.api_usage["api-usage"].used == 1
    assert sf.api_usage["api-usage"].total == 3
    assert sf.restful("limits/")["DailyApiRequests"] == {"Max": 3, "Remaining": 1}
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Account")
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_describe_fields_carry_what_the_connector_checks(sf) -> None:
    described = sf.Task.describe()
    fields = {f["name"]: f for f in described["fields"]}
    expected = fixture("sobject/sobject_describe_success_response.json")
    sample = next(iter(expected["fields"])) if isinstance(expected.get("fields"), list) else {}
    for key in ("name", "type", "nillable", "externalId", "picklistValues"):
        assert key in fields["Status"]
        assert not sample or key in sample
    assert fields["Signalplay_Key__c"]["externalId"] is True
    assert [v["value"] for v in fields["Priority"]["picklistValues"]] == ["High", "Normal", "Low"]


def test_faults_are_injected_and_requests_logged(org, sf) -> None:
    org.fail_next(503, path_contains="/query")
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.query("SELECT Id FROM Account")
    assert failed.value.status == 503
    sf.query("SELECT Id FROM Account")
    assert [r.status for r in org.requests] == [503, 200]
    assert org.write_requests() == 0
