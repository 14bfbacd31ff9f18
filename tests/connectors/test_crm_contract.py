"""One contract for both CRMs, through the real clients (hubspot-api-client, simple-salesforce)
and their stand-ins: pull, create, update, close, enroll, unenroll, partial failure, a 429
storm and an expired session. Each CRM's adapter below only seeds and inspects its stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from signalplay.connectors._ratelimit import RateLimitSettings
from signalplay.connectors.hubspot import HubSpotConnector, HubSpotSettings
from signalplay.connectors.salesforce import SalesforceConnector, SalesforceSettings
from signalplay.errors import AuthError
from signalplay.models import RecordRef, WriteAction, WriteOp
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import Field, SalesforceSandbox, tls
from signalplay.sandbox.server import serve
from signalplay.writeback.crmschema import FieldSpec

TOKEN = "contract-token"
NO_BUDGET = RateLimitSettings()  # the storm test is about the vendor's 429s, not our budget


@dataclass
class Crm:
    """A CRM stand-in and the connector under test, with the few things tests seed or read."""

    name: str
    conn: Any
    sandbox: Any
    owner: str
    account_stream: str
    contact_stream: str
    waits: list[float] = field(default_factory=list)

    # seeding and inspecting the stand-in (the only CRM-specific part)
    def account(self, name: str) -> str:
        if self.name == "hubspot":
            return str(
                self.sandbox.seed_object(
                    "companies",
                    {"name": name, "domain": f"{name.lower()}.test"},
                    unique_by="domain",
                )
            )
        return str(self.sandbox.seed("Account", {"Name": name}))

    def renewal(self, account: str, stage: str, closed: str) -> None:
        """A renewal deal (opportunity) of the account, closed won or lost on `closed`."""
        if self.name == "hubspot":
            deal = self.sandbox.seed_object(
                "deals",
                {
                    "dealname": f"Renewal {closed}",
                    "dealtype": "existingbusiness",
                    "dealstage": {"won": "closedwon", "lost": "closedlost"}[stage],
                    "closedate": closed,
                },
                unique_by="dealname",
            )
            self.sandbox.seed_association("deals", deal, "companies", account)
            return
        self.sandbox.seed(
            "Opportunity",
            {
                "AccountId": account,
                "Name": f"Renewal {closed}",
                "Type": "Renewal",
                "StageName": {"won": "Closed Won", "lost": "Closed Lost"}[stage],
                "CloseDate": closed,
            },
        )

    def contact(self, email: str) -> str:
        if self.name == "hubspot":
            return str(self.sandbox.seed_object("contacts", {"email": email}, unique_by="email"))
        return str(
            self.sandbox.seed(
                "Contact", {"LastName": email.split("@", maxsplit=1)[0], "Email": email}
            )
        )

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Tasks by episode key: subject, whether open, closure reason."""
        if self.name == "hubspot":
            out = {}
            for t in self.sandbox.state.objects["tasks"].values():
                p = t["properties"]
                out[p["signalplay_episode_key"]] = {
                    "subject": p.get("hs_task_subject"),
                    "open": p.get("hs_task_status") != "COMPLETED",
                    "reason": p.get("signalplay_closure_reason"),
                }
            return out
        return {
            t["Signalplay_Key__c"]: {
                "subject": t["Subject"],
                "open": not t["IsClosed"],
                "reason": t.get("Signalplay_Closure_Reason__c"),
            }
            for t in self.sandbox.records("Task")
        }

    def csm_completes(self, key: str, reason: str) -> None:
        if self.name == "hubspot":
            for t in self.sandbox.state.objects["tasks"].values():
                if t["properties"]["signalplay_episode_key"] == key:
                    t["properties"]["hs_task_status"] = "COMPLETED"
                    t["properties"]["signalplay_closure_reason"] = reason
            return
        for t in self.sandbox.state.objects["Task"].values():
            if t["Signalplay_Key__c"] == key:
                t.update(Status="Completed", IsClosed=True, Signalplay_Closure_Reason__c=reason)

    def enrolled(self, contact: str) -> bool:
        if self.name == "hubspot":
            return contact in self.sandbox.state.enrollments
        return any(
            t["TargetId"] == contact and t["State"] in ("Initializing", "Running")
            for t in self.sandbox.records("ActionCadenceTracker")
        )

    def storm(self, times: int) -> None:
        """The next `times` write calls answer 429, with the vendor's own body and headers."""
        if self.name == "hubspot":
            self.sandbox.fail_next(429, times=times, path_contains="/batch/", retry_after=2)
        else:
            # Salesforce answers a concurrent-request overrun with 503 SERVER_UNAVAILABLE
            self.sandbox.fail_next(503, times=times, path_contains="/composite/sobjects")

    def expire(self) -> None:
        if self.name == "hubspot":
            self.sandbox.token = "a-newer-token"
        else:
            self.sandbox.expire_session()

    def bad_task_values(self) -> dict[str, Any]:
        """Values the CRM rejects for one record (an unknown owner)."""
        if self.name == "hubspot":
            return {"type": "NOT_A_TASK_TYPE"}
        return {"owner_id": "005000000000999AAA"}


def _hubspot(tmp_path: Path) -> Iterator[Crm]:
    hub = HubSpotSandbox(token=TOKEN)
    hub.seed_owner(owner_id="101", user_id=5001, email="alex@vendor.example", first="A", last="M")
    hub.seed_sequence(sequence_id="900", name="Renewal outreach", user_id=5001)
    with serve(hub) as server:
        waits: list[float] = []
        settings = HubSpotSettings(
            host=server.url, access_token=SecretStr(TOKEN), rate_limit=NO_BUDGET
        )
        conn = HubSpotConnector(settings, sleep=waits.append)
        conn.ensure_schema()
        conn.create_field(
            FieldSpec(
                object="task",
                name="signalplay_closure_reason",
                kind="picklist",
                options=("resolved", "false_positive", "condition_cleared"),
            )
        )
        yield Crm("hubspot", conn, hub, "101", "companies", "contacts", waits)


def _salesforce(tmp_path: Path) -> Iterator[Crm]:
    org = SalesforceSandbox(token=TOKEN)
    org.add_field("Task", Field("Signalplay_Key__c", external_id=True, unique=True, custom=True))
    owner = org.seed("User", {"LastName": "Owner", "IsActive": True})
    org.seed("ActionCadence", {"Name": "Renewal outreach", "State": "Active"})
    context, ca = tls(tmp_path)
    with serve(org, tls=context) as server:
        waits: list[float] = []
        settings = SalesforceSettings(
            instance_url=server.url,
            access_token=SecretStr(TOKEN),
            ca_bundle=ca,
            rate_limit=NO_BUDGET,
        )
        conn = SalesforceConnector(settings, sleep=waits.append)
        conn.create_field(
            FieldSpec(
                object="task",
                name="Signalplay_Closure_Reason__c",
                kind="picklist",
                options=("resolved", "false_positive", "condition_cleared"),
            )
        )
        yield Crm("salesforce", conn, org, owner, "accounts", "contacts", waits)
        conn.close()


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Crm]:
    yield from (_hubspot if request.param == "hubspot" else _salesforce)(tmp_path)


def task(crm: Crm, key: str, account: str, **values: Any) -> WriteOp:
    return WriteOp(
        op_key=f"task-{key}-{values.get('subject', '')}",
        action=WriteAction.UPSERT_TASK,
        object_type="tasks",
        target=key,
        values={
            "subject": f"Call about {key}",
            "body": "Usage fell 40% week over week.",
            "priority": "high",
            "type": "TODO" if crm.name == "hubspot" else "Call",
            "due_at": "2026-11-20T15:00:00+00:00",
            "owner_id": crm.owner,
            "status": "open",
            **values,
        },
        associations=(RecordRef(object_type="companies", record_id=account),),
        episode_key=key,
        reason="contract",
    )


def close(key: str, reason: str = "condition_cleared") -> WriteOp:
    return WriteOp(
        op_key=f"close-{key}",
        action=WriteAction.CLOSE_TASK,
        object_type="tasks",
        target=key,
        values={"status": "completed", "closure_reason": reason},
        reason="contract",
    )


def enrollment(action: WriteAction, key: str, crm: Crm, contacts: list[str]) -> WriteOp:
    return WriteOp(
        op_key=f"{action.value}-{key}",
        action=action,
        object_type="sequences",
        target=key,
        values={"sequence": "Renewal outreach", "owner_id": crm.owner}
        if action is WriteAction.ENROLL
        else {"closure_reason": "condition_cleared"},
        associations=tuple(RecordRef(object_type="contacts", record_id=c) for c in contacts),
        reason="contract",
    )


def test_pull_reads_accounts_and_contacts(crm: Crm) -> None:
    ids = {crm.account(f"Acme{i}") for i in range(3)}
    crm.contact("ana@acme0.test")
    until = datetime.now(UTC) + timedelta(minutes=1)
    pulled = {
        r.record_id
        for page in crm.conn.read(crm.account_stream, cursor=None, until=until)
        for r in page.records
    }
    assert ids <= pulled
    contacts = [
        r for p in crm.conn.read(crm.contact_stream, cursor=None, until=until) for r in p.records
    ]
    assert len(contacts) == 1


def test_create_then_rerun_then_update_keeps_one_task_per_key(crm: Crm) -> None:
    account = crm.account("Acme")
    ops = [task(crm, f"sp_{i}", account) for i in range(3)]
    assert [(r.ok, r.created) for r in crm.conn.write(ops)] == [(True, True)] * 3
    assert [(r.ok, r.created) for r in crm.conn.write(ops)] == [(True, False)] * 3
    (updated,) = crm.conn.write([task(crm, "sp_0", account, subject="Call Acme today")])
    assert (updated.ok, updated.created) == (True, False)
    tasks = crm.tasks()
    assert sorted(tasks) == ["sp_0", "sp_1", "sp_2"]
    assert tasks["sp_0"]["subject"] == "Call Acme today"


def test_close_completes_open_tasks_and_keeps_a_csms_reason(crm: Crm) -> None:
    account = crm.account("Acme")
    crm.conn.write([task(crm, "sp_a", account), task(crm, "sp_b", account)])
    crm.csm_completes("sp_b", "false_positive")
    results = crm.conn.write([close("sp_a"), close("sp_b"), close("sp_never_written")])
    assert [r.ok for r in results] == [True, True, False]
    assert "no task with this key" in (results[2].error or "")
    tasks = crm.tasks()
    assert (tasks["sp_a"]["open"], tasks["sp_a"]["reason"]) == (False, "condition_cleared")
    assert (tasks["sp_b"]["open"], tasks["sp_b"]["reason"]) == (False, "false_positive")


def test_enroll_once_then_unenroll_when_the_episode_closes(crm: Crm) -> None:
    a, b = crm.contact("ana@acme.test"), crm.contact("bo@acme.test")
    enroll = enrollment(WriteAction.ENROLL, "sp_s", crm, [a, b])
    assert [r.ok for r in crm.conn.write([enroll])] == [True]
    assert [r.ok for r in crm.conn.write([enroll])] == [True]  # nobody enrolled twice
    assert crm.enrolled(a)
    assert crm.enrolled(b)
    (removed,) = crm.conn.write([enrollment(WriteAction.UNENROLL, "sp_s", crm, [a, b])])
    assert removed.ok
    if crm.name == "salesforce":  # removeTargetFromSalesCadence
        assert not crm.enrolled(a)
        assert not crm.enrolled(b)
    else:  # Sequences v4 cannot unenroll: the owner gets a task naming both contacts
        todo = crm.tasks()["sp_s:unenroll"]
        assert todo["open"]
        assert todo["subject"].startswith("Unenroll from Renewal outreach")


def test_one_bad_record_fails_alone_with_its_error(crm: Crm) -> None:
    account = crm.account("Acme")
    ops = [
        task(crm, "sp_ok1", account),
        task(crm, "sp_bad", account, **crm.bad_task_values()),
        task(crm, "sp_ok2", account),
    ]
    results = crm.conn.write(ops)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error
    assert not results[1].retriable
    assert sorted(crm.tasks()) == ["sp_ok1", "sp_ok2"]


def test_a_storm_of_rejections_is_waited_out_and_nothing_is_duplicated(crm: Crm) -> None:
    account = crm.account("Acme")
    crm.storm(3)
    ops = [task(crm, f"sp_{i}", account) for i in range(5)]
    assert all(r.ok for r in crm.conn.write(ops))
    assert len(crm.waits) == 3
    if crm.name == "hubspot":
        assert all(w >= 2 for w in crm.waits)  # Retry-After honoured
    assert len(crm.tasks()) == 5


def test_an_expired_session_fails_ops_for_retry_and_reads_raise(crm: Crm) -> None:
    account = crm.account("Acme")
    crm.expire()
    results = crm.conn.write([task(crm, "sp_1", account)])
    assert [r.ok for r in results] == [False]
    assert crm.tasks() == {}
    with pytest.raises(AuthError):
        list(crm.conn.read(crm.account_stream, cursor=None, until=datetime.now(UTC)))


def test_pull_reads_back_signalplays_tasks_with_their_outcome_incrementally(crm: Crm) -> None:
    account = crm.account("Acme")
    crm.conn.write([task(crm, f"sp_{i}", account) for i in range(3)])
    until = datetime.now(UTC) + timedelta(minutes=1)
    pages = list(crm.conn.read("tasks", cursor=None, until=until))
    first = [r for p in pages for r in p.records]
    assert len(first) == 3
    cursor = pages[-1].cursor
    assert cursor is not None
    crm.conn.write([close("sp_1", "condition_cleared")])
    later = [r for p in crm.conn.read("tasks", cursor=cursor, until=until) for r in p.records]
    status, reason, key = (
        ("hs_task_status", "signalplay_closure_reason", "signalplay_episode_key")
        if crm.name == "hubspot"
        else ("Status", "Signalplay_Closure_Reason__c", "Signalplay_Key__c")
    )
    closed = [r.data for r in later if r.data[key] == "sp_1"]
    assert closed
    assert closed[-1][status] in ("COMPLETED", "Completed")
    assert closed[-1][reason] == "condition_cleared"
    # ... and the same, CRM-neutral, as signalplay measures it
    outcome = closed[-1]["signalplay"]
    assert (outcome["key"], outcome["closed"], outcome["closure_reason"]) == (
        "sp_1",
        True,
        "condition_cleared",
    )
    assert datetime.fromisoformat(outcome["completed_at"].replace("Z", "+00:00")) <= until
    still_open = next(r.data["signalplay"] for r in first if r.data[key] == "sp_0")
    assert (still_open["closed"], still_open["completed_at"]) == (False, None)


def test_renewal_deals_map_to_won_and_lost_through_the_shipped_mappings(
    crm: Crm, tmp_path: Path
) -> None:
    from datetime import date

    from signalplay.definitions.loader import load_definitions
    from signalplay.jobs.scaffold import init_project
    from signalplay.profile.identity import IdentityMap
    from signalplay.profile.mapping import StreamMapper

    lost, won, both = crm.account("Lost"), crm.account("Won"), crm.account("Back")
    crm.renewal(lost, "lost", "2026-10-01")
    crm.renewal(won, "won", "2026-10-02")
    crm.renewal(both, "lost", "2026-09-01")
    crm.renewal(both, "won", "2026-10-03")  # lost, then won back
    stream = "deals" if crm.name == "hubspot" else "opportunities"
    init_project(tmp_path / "project", crm=crm.name)  # the CRM's mapping set
    defs = load_definitions(tmp_path / "project" / "mappings")
    mapping = next(m for m in defs.mappings if m.spec.stream == stream)
    identity = IdentityMap()
    for account in (lost, won, both):
        identity.add("crm_id", account, account)
    mapper = StreamMapper(mapping, identity, days=[date(2026, 11, 27)])
    until = datetime.now(UTC) + timedelta(minutes=1)
    for page in crm.conn.read(stream, cursor=None, until=until):
        for record in page.records:
            mapper.add(record)
    assert mapper.report.quarantined == []
    facts = mapper.facts(accounts=[lost, won, both])
    fields = ("renewal_lost_on", "renewal_won_on")
    value = {
        a: {k: (facts[a][k].value if k in facts[a] else None) for k in fields}
        for a in (lost, won, both)
    }
    assert (value[lost]["renewal_lost_on"], value[lost]["renewal_won_on"]) == ("2026-10-01", None)
    assert (value[won]["renewal_lost_on"], value[won]["renewal_won_on"]) == (None, "2026-10-02")
    assert value[both]["renewal_won_on"] == "2026-10-03"

    from tests.evaluator.helpers import frame_of, quiet

    churned = [
        frame_of(quiet(**value[a], churn_date=None)).rows[0].get("churned_on")
        for a in (lost, won, both)
    ]
    shown = [c.isoformat() if hasattr(c, "isoformat") else c for c in churned]
    assert shown == ["2026-10-01", None, None]  # won back: not churned
