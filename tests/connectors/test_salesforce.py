"""The Salesforce connector through simple-salesforce against the TLS stand-in: incremental
reads with deletes, tasks upserted in collections of 200 on the episode key (a re-run creates
nothing), per-record failures kept per op, field updates, retries and an expired session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from signalplay.connectors.salesforce import SalesforceConnector, SalesforceSettings
from signalplay.errors import AuthError
from signalplay.models import RecordRef, WriteAction, WriteOp
from signalplay.sandbox.salesforce import Field, SalesforceSandbox, tls
from signalplay.sandbox.server import serve
from signalplay.store import Store

TOKEN = "00Dtest!session"


@pytest.fixture
def org() -> SalesforceSandbox:
    sandbox = SalesforceSandbox(token=TOKEN)
    sandbox.add_field(
        "Task", Field("Signalplay_Key__c", external_id=True, unique=True, custom=True)
    )
    sandbox.add_field("Account", Field("Signalplay_Health_Score__c", "double", custom=True))
    return sandbox


@pytest.fixture
def conn(org: SalesforceSandbox, tmp_path: Path) -> Iterator[SalesforceConnector]:
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        settings = SalesforceSettings(
            instance_url=server.url, access_token=SecretStr(TOKEN), ca_bundle=ca
        )
        waits: list[float] = []
        connector = SalesforceConnector(settings, sleep=waits.append)
        connector.waits = waits  # type: ignore[attr-defined]
        yield connector
        connector.close()


def task_op(key: str, account: str, **values: object) -> WriteOp:
    return WriteOp(
        op_key=f"op-{key}",
        action=WriteAction.UPSERT_TASK,
        object_type="tasks",
        target=key,
        values={
            "subject": f"Call {key}",
            "body": "b",
            "priority": "high",
            "status": "open",
            "due_at": "2026-11-20T15:00:00+00:00",
            **values,
        },
        associations=(RecordRef(object_type="companies", record_id=account),),
        reason="test",
    )


def later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1)


def test_reads_incrementally_with_deletes(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    org.page_size = 200
    ids = [org.seed("Account", {"Name": f"A{i}"}) for i in range(250)]
    pages = list(conn.read("accounts", cursor=None, until=later()))
    assert [len(p.records) for p in pages] == [200, 50]
    assert {r.record_id for p in pages for r in p.records} == set(ids)
    cursor = pages[-1].cursor
    assert cursor is not None
    org.state.objects["Account"][ids[0]]["IsDeleted"] = True
    org.state.objects["Account"][ids[0]]["SystemModstamp"] = "2099-01-01T00:00:00.000+0000"
    again = list(conn.read("accounts", cursor=cursor, until=datetime(2100, 1, 1, tzinfo=UTC)))
    changed = {r.record_id: r.data["IsDeleted"] for p in again for r in p.records}
    assert changed[ids[0]] is True
    # a delete reaches the store as a tombstone, and the record leaves it (the book follows)
    (tombstone,) = [r for p in again for r in p.records if r.record_id == ids[0]]
    assert tombstone.deleted
    store = Store("sqlite://")
    store.migrate()
    store.save_page("crm", "accounts", [r for p in pages for r in p.records], cursor)
    store.save_page("crm", "accounts", [tombstone], None)
    assert store.count_records("crm", "accounts") == 249
    assert ids[0] not in {r.record_id for r in store.iter_records("crm", "accounts")}


def test_tasks_upsert_in_collections_of_200_and_a_rerun_creates_nothing(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    ops = [task_op(f"sp_{i}", account) for i in range(450)]
    first = conn.write(ops)
    assert all(r.ok and r.created for r in first)
    assert [r.records for r in org.requests if r.method == "PATCH"] == [200, 200, 50]
    second = conn.write(ops)
    assert all(r.ok and not r.created for r in second)
    tasks = org.records("Task")
    assert len(tasks) == 450
    assert {(t["Priority"], t["Status"], t["WhatId"], t["ActivityDate"]) for t in tasks} == {
        ("High", "Not Started", account, "2026-11-20")
    }


def test_one_bad_record_fails_alone_with_its_error(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    user = org.seed("User", {"LastName": "Owner"})
    ops = [
        task_op("good", account, owner_id=user),
        task_op("bad", account, owner_id="005000000000999AAA"),  # no such user
    ]
    results = conn.write(ops)
    assert [r.ok for r in results] == [True, False]
    assert "INVALID_CROSS_REFERENCE_KEY" in (results[1].error or "")
    assert not results[1].retriable


def test_account_fields_update_by_collection(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    a = org.seed("Account", {"Name": "A"})
    op = WriteOp(
        op_key="f1",
        action=WriteAction.UPDATE_FIELDS,
        object_type="companies",
        target=a,
        values={"Signalplay_Health_Score__c": 72},
        reason="test",
    )
    (result,) = conn.write([op])
    assert result.ok
    ref = RecordRef(object_type="companies", record_id=a)
    assert conn.fetch_current([ref], fields=["Signalplay_Health_Score__c"]) == {
        ref: {"Signalplay_Health_Score__c": "72"}
    }


def test_a_503_is_retried(org: SalesforceSandbox, conn: SalesforceConnector) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    org.fail_next(503, path_contains="/composite/sobjects")
    (result,) = conn.write([task_op("k", account)])
    assert result.ok
    assert len(conn.waits) == 1  # type: ignore[attr-defined]


def test_an_expired_session_fails_every_op_without_retrying(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    org.expire_session()
    results = conn.write([task_op("k1", account), task_op("k2", account)])
    assert [r.ok for r in results] == [False, False]
    assert "INVALID_SESSION_ID" in (results[0].error or "")
    with pytest.raises(AuthError):
        list(conn.read("accounts", cursor=None, until=later()))


def test_missing_custom_fields_are_named(org: SalesforceSandbox, conn: SalesforceConnector) -> None:
    with pytest.raises(Exception, match="Nope__c"):
        conn.ensure_schema(["Signalplay_Health_Score__c", "Nope__c"])
    assert conn.ensure_schema(["Signalplay_Health_Score__c"]) == []


def enroll_op(key: str, contacts: list[str], cadence: str = "Renewal outreach") -> WriteOp:
    return WriteOp(
        op_key=f"enroll-{key}",
        action=WriteAction.ENROLL,
        object_type="sequences",
        target=key,
        values={"sequence": cadence, "owner_id": None},
        associations=tuple(RecordRef(object_type="contacts", record_id=c) for c in contacts),
        reason="test",
    )


def test_cadence_enrollment_is_idempotent_and_reports_bad_targets(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    org.seed("ActionCadence", {"Name": "Renewal outreach", "State": "Active"})
    a = org.seed("Contact", {"LastName": "A"})
    b = org.seed("Contact", {"LastName": "B"})
    first = conn.write([enroll_op("e1", [a, b])])
    assert [r.ok for r in first] == [True]
    assert {t["TargetId"] for t in org.records("ActionCadenceTracker")} == {a, b}
    again = conn.write([enroll_op("e1", [a, b])])
    assert [r.ok for r in again] == [True]
    assert len(org.records("ActionCadenceTracker")) == 2
    missing = conn.write([enroll_op("e2", ["003000000000999AAA"])])  # every input fails: HTTP 400
    assert not missing[0].ok
    assert "INVALID_CROSS_REFERENCE_KEY" in (missing[0].error or "")
    unknown = conn.write([enroll_op("e3", [org.seed("Contact", {"LastName": "C"})], "Nope")])
    assert "No sales cadence found" in (unknown[0].error or "")


@pytest.fixture
def app_conn(org: SalesforceSandbox, tmp_path: Path) -> Iterator[SalesforceConnector]:
    org.add_client("signalplay-app", "s3cret")
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        settings = SalesforceSettings(
            instance_url=server.url,
            client_id="signalplay-app",
            client_secret=SecretStr("s3cret"),
            ca_bundle=ca,
        )
        connector = SalesforceConnector(settings, sleep=lambda s: None)
        yield connector
        connector.close()


def test_an_expired_session_gets_one_fresh_token_by_client_credentials(
    org: SalesforceSandbox, app_conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    assert org.tokens_issued == 1
    org.expire_session()
    (result,) = app_conn.write([task_op("k", account)])
    assert result.ok
    assert org.tokens_issued == 2


def test_a_401_after_a_fresh_token_is_final_not_a_login_loop(
    org: SalesforceSandbox, app_conn: SalesforceConnector
) -> None:
    org.fail_next(401, code="INVALID_SESSION_ID", message="Session expired or invalid", times=10)
    with pytest.raises(AuthError):
        list(app_conn.read("accounts", cursor=None, until=later()))
    assert org.tokens_issued == 2


def test_wrong_client_credentials_are_an_auth_error(org: SalesforceSandbox, tmp_path: Path) -> None:
    org.add_client("signalplay-app", "s3cret")
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        settings = SalesforceSettings(
            instance_url=server.url,
            client_id="signalplay-app",
            client_secret=SecretStr("xq-9-not-it"),
            ca_bundle=ca,
        )
        with pytest.raises(AuthError, match="invalid_client"):
            SalesforceConnector(settings)
    assert "xq-9-not-it" not in repr(settings)


def test_closing_an_episode_completes_its_task_and_ends_its_cadence(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    org.seed("ActionCadence", {"Name": "Renewal outreach"})
    contact = org.seed("Contact", {"LastName": "A"})
    conn.write([task_op("sp_1:call", account), enroll_op("sp_1:seq", [contact])])
    close = WriteOp(
        op_key="close-1",
        action=WriteAction.CLOSE_TASK,
        object_type="tasks",
        target="sp_1:call",
        values={"status": "completed", "closure_reason": "condition_cleared"},
        reason="test",
    )
    remove = WriteOp(
        op_key="remove-1",
        action=WriteAction.UNENROLL,
        object_type="sequences",
        target="sp_1:seq",
        values={"closure_reason": "condition_cleared"},
        associations=(RecordRef(object_type="contacts", record_id=contact),),
        reason="test",
    )
    results = conn.write([close, remove])
    assert [r.ok for r in results] == [True, True]
    (task,) = org.records("Task")
    assert (task["Status"], task["Subject"]) == ("Completed", "Call sp_1:call")
    (tracker,) = org.records("ActionCadenceTracker")
    assert tracker["State"] == "Complete"
    assert [r.ok for r in conn.write([remove])] == [True]  # already ended: nothing to do


def test_contact_roles_on_accounts_and_opportunities_are_pulled(
    org: SalesforceSandbox, conn: SalesforceConnector
) -> None:
    account = org.seed("Account", {"Name": "Acme"})
    contact = org.seed("Contact", {"LastName": "Ng", "AccountId": account})
    deal = org.seed(
        "Opportunity",
        {
            "AccountId": account,
            "Name": "Renewal 2027",
            "StageName": "Prospecting",
            "CloseDate": "2027-01-31",
            "Amount": 48000.0,
            "Type": "Renewal",
        },
    )
    org.seed(
        "AccountContactRole", {"AccountId": account, "ContactId": contact, "Role": "Decision Maker"}
    )
    org.seed(
        "OpportunityContactRole",
        {"OpportunityId": deal, "ContactId": contact, "Role": "Economic Buyer"},
    )
    roles = [
        r.data for p in conn.read("contact_roles", cursor=None, until=later()) for r in p.records
    ]
    assert [(r["ContactId"], r["Role"]) for r in roles] == [(contact, "Decision Maker")]
    deal_roles = [
        r.data
        for p in conn.read("opportunity_contact_roles", cursor=None, until=later())
        for r in p.records
    ]
    assert [(r["OpportunityId"], r["Role"]) for r in deal_roles] == [(deal, "Economic Buyer")]
    (opp,) = [
        r.data for p in conn.read("opportunities", cursor=None, until=later()) for r in p.records
    ]
    assert (opp["CloseDate"], opp["Amount"], opp["Type"]) == ("2027-01-31", 48000.0, "Renewal")
