"""Sequence enrollment through hubspot-api-client's ApiClient (the client wraps no Sequences API)
against the HubSpot stand-in: as the owner's user and inbox, once per contact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from signalplay.connectors.hubspot import HubSpotConnector, HubSpotSettings
from signalplay.models import RecordRef, WriteAction, WriteOp
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve

TOKEN = "pat-test"


@pytest.fixture
def hub() -> HubSpotSandbox:
    sandbox = HubSpotSandbox(token=TOKEN)
    sandbox.seed_owner(
        owner_id="101", user_id=5001, email="alex@vendor.example", first="A", last="M"
    )
    sandbox.seed_sequence(sequence_id="900", name="Renewal outreach", user_id=5001)
    return sandbox


@pytest.fixture
def conn(hub: HubSpotSandbox) -> Iterator[HubSpotConnector]:
    with serve(hub) as server:
        yield HubSpotConnector(
            HubSpotSettings(host=server.url, access_token=SecretStr(TOKEN)), sleep=lambda s: None
        )


def contact(hub: HubSpotSandbox, email: str) -> str:
    return hub.seed_object("contacts", {"email": email}, unique_by="email")


def enroll(
    key: str, contacts: list[str], *, owner: str | None = "101", seq: str = "Renewal outreach"
) -> WriteOp:
    return WriteOp(
        op_key=key,
        action=WriteAction.ENROLL,
        object_type="sequences",
        target=key,
        values={"sequence": seq, "owner_id": owner},
        associations=tuple(RecordRef(object_type="contacts", record_id=c) for c in contacts),
        reason="test",
    )


def posts(hub: HubSpotSandbox) -> int:
    return sum(1 for r in hub.requests if r.method == "POST" and "enrollments" in r.path)


def test_enrolls_each_contact_once_as_the_owner(
    hub: HubSpotSandbox, conn: HubSpotConnector
) -> None:
    a, b = contact(hub, "a@acme.test"), contact(hub, "b@acme.test")
    (first,) = conn.write([enroll("e1", [a, b])])
    assert first.ok, first.error
    assert {c: e["sequenceId"] for c, e in hub.state.enrollments.items()} == {a: "900", b: "900"}
    assert hub.state.enrollments[a]["enrolledByEmail"] == "alex@vendor.example"
    (again,) = conn.write([enroll("e1", [a, b])])
    assert again.ok
    assert posts(hub) == 2


def test_refusals_are_named(hub: HubSpotSandbox, conn: HubSpotConnector) -> None:
    a = contact(hub, "a@acme.test")
    (no_owner,) = conn.write([enroll("e1", [a], owner=None)])
    assert "needs an owner" in (no_owner.error or "")
    (no_seq,) = conn.write([enroll("e2", [a], seq="Nope")])
    assert "no sequence 'Nope'" in (no_seq.error or "")
    (gone,) = conn.write([enroll("e3", ["999999"])])
    assert not gone.ok
    assert "not found" in (gone.error or "")
    hub.daily_enrollment_cap = 0
    (capped,) = conn.write([enroll("e4", [a])])
    assert not capped.ok
    assert capped.retriable
