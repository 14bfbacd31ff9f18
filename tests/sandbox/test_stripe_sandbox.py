"""The Stripe stand-in answers as Stripe does: objects in the canonical fixture shapes, lists
newest first with cursor paging, filters and expand, events with previous attributes for 30 days,
errors in Stripe's envelope, a per-endpoint rate limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signalplay.sandbox.server import serve
from signalplay.sandbox.stripe import StripeSandbox

KEY = "sk_test_contract"
FIXTURES = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "src/signalplay/sandbox/data/stripe_billing_fixtures.json"
    ).read_text()
)["resources"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stripe() -> Iterator[tuple[StripeSandbox, httpx.Client, Clock]]:
    clock = Clock()
    sandbox = StripeSandbox(api_key=KEY, clock=clock, rate=1000)
    with (
        serve(sandbox) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, trust_env=False
        ) as client,
    ):
        yield sandbox, client, clock


def keys_like(obj: Any, template: Any, where: str = "") -> list[str]:
    """Where `obj` lacks a key of the canonical fixture object (recursively through objects)."""
    if not isinstance(template, dict) or not isinstance(obj, dict):
        return []
    out = [f"{where}.{k}" for k in template if k not in obj]
    for k, v in template.items():
        if isinstance(v, dict) and isinstance(obj.get(k), dict) and k not in ("metadata",):
            out += keys_like(obj[k], v, f"{where}.{k}")
    return out


def _book(sandbox: StripeSandbox, clock: Clock) -> tuple[list[str], list[str]]:
    customers, subs = [], []
    for i in range(25):
        cid = sandbox.add_customer(
            name=f"Acct {i}",
            email=f"billing@acct{i}.example",
            metadata={"account_id": f"acct{i}.example"},
        )
        customers.append(cid)
        subs.append(sandbox.add_subscription(cid, items=[(2000, "month", 1, 5 + i)]))
        clock.now += 60
    return customers, subs


def test_objects_have_the_canonical_shapes(
    stripe: tuple[StripeSandbox, httpx.Client, Clock],
) -> None:
    sandbox, client, clock = stripe
    customers, subs = _book(sandbox, clock)
    sandbox.add_invoice(
        customers[0],
        amount=10_000,
        subscription=subs[0],
        status="open",
        attempt_count=2,
        next_payment_attempt=int(clock.now) + 86_400,
    )
    answer = client.get(f"/v1/customers/{customers[0]}")
    assert answer.status_code == 200
    assert answer.headers["Request-Id"].startswith("req_")
    assert keys_like(answer.json(), FIXTURES["customer"]) == []
    sub = client.get(f"/v1/subscriptions/{subs[0]}").json()
    assert keys_like(sub, FIXTURES["subscription"]) == []
    assert keys_like(sub["items"]["data"][0], FIXTURES["subscription_item"]) == []
    assert "current_period_end" not in sub  # post-basil: the period is on the items
    (invoice,) = client.get("/v1/invoices", params={"customer": customers[0]}).json()["data"]
    assert keys_like(invoice, FIXTURES["invoice"]) == []
    assert invoice["parent"]["subscription_details"]["subscription"] == subs[0]
    event = client.get("/v1/events", params={"limit": 1}).json()["data"][0]
    envelope = {k: v for k, v in FIXTURES["event"].items() if k != "data"}  # data: any object
    assert keys_like(event, envelope) == []
    assert keys_like(event["data"]["object"], FIXTURES[event["data"]["object"]["object"]]) == []


def test_lists_page_newest_first_with_cursors(
    stripe: tuple[StripeSandbox, httpx.Client, Clock],
) -> None:
    sandbox, client, clock = stripe
    customers, _ = _book(sandbox, clock)
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if after:
            params["starting_after"] = after
        page = client.get("/v1/customers", params=params).json()
        assert page["object"] == "list"
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == list(reversed(customers))
    back = client.get("/v1/customers", params={"ending_before": customers[5], "limit": 3}).json()
    assert [c["id"] for c in back["data"]] == [customers[8], customers[7], customers[6]]
    both = client.get(
        "/v1/customers", params={"starting_after": customers[1], "ending_before": customers[3]}
    )
    assert both.status_code == 400
    assert client.get("/v1/customers", params={"limit": 101}).status_code == 400
    since = client.get("/v1/customers", params={"created[gte]": int(clock.now) - 120, "limit": 100})
    assert len(since.json()["data"]) == 2


def test_filters_and_expand(stripe: tuple[StripeSandbox, httpx.Client, Clock]) -> None:
    sandbox, client, clock = stripe
    customers, subs = _book(sandbox, clock)
    sandbox.update_subscription(subs[3], status="canceled")
    live = client.get("/v1/subscriptions", params={"limit": 100}).json()["data"]
    assert subs[3] not in {s["id"] for s in live}  # the default list leaves canceled out
    everything = client.get("/v1/subscriptions", params={"limit": 100, "status": "all"}).json()
    assert len(everything["data"]) == 25
    mine = client.get(
        "/v1/subscriptions", params=[("customer", customers[2]), ("expand[]", "data.customer")]
    ).json()["data"]
    assert mine[0]["customer"]["id"] == customers[2]
    with_subs = client.get(f"/v1/customers/{customers[2]}", params={"expand[]": "subscriptions"})
    assert with_subs.json()["subscriptions"]["data"][0]["id"] == subs[2]
    bad = client.get("/v1/customers", params={"expand[]": "data.nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "expand"


def test_events_carry_previous_attributes_and_expire_after_30_days(
    stripe: tuple[StripeSandbox, httpx.Client, Clock],
) -> None:
    sandbox, client, clock = stripe
    cid = sandbox.add_customer(name="Acme")
    sid = sandbox.add_subscription(cid, items=[(2000, "month", 1, 10)])
    clock.now += 3600
    sandbox.update_subscription(sid, quantity=(0, 6))
    updated = client.get("/v1/events", params={"type": "customer.subscription.updated"}).json()
    (event,) = updated["data"]
    assert event["data"]["object"]["items"]["data"][0]["quantity"] == 6
    assert event["data"]["previous_attributes"]["items"]["data"][0]["quantity"] == 10
    wildcard = client.get("/v1/events", params={"type": "customer.subscription.*"}).json()["data"]
    assert [e["type"] for e in wildcard] == [
        "customer.subscription.updated",
        "customer.subscription.created",
    ]
    listed = client.get(
        "/v1/events", params=[("types[]", "customer.created"), ("types[]", "invoice.paid")]
    )
    assert [e["type"] for e in listed.json()["data"]] == ["customer.created"]
    too_many = [("types[]", f"t{i}") for i in range(21)]
    assert client.get("/v1/events", params=too_many).status_code == 400
    both = client.get("/v1/events", params=[("type", "x"), ("types[]", "y")])
    assert both.status_code == 400
    clock.now += 31 * 86_400
    assert client.get("/v1/events").json()["data"] == []  # 30-day retention


def test_deleted_customers_are_tombstones_with_an_event(
    stripe: tuple[StripeSandbox, httpx.Client, Clock],
) -> None:
    sandbox, client, _ = stripe
    cid = sandbox.add_customer(name="Gone")
    sandbox.delete_customer(cid)
    assert client.get(f"/v1/customers/{cid}").json() == {
        "id": cid,
        "object": "customer",
        "deleted": True,
    }
    assert client.get("/v1/customers").json()["data"] == []
    (event,) = client.get("/v1/events", params={"type": "customer.deleted"}).json()["data"]
    assert event["data"]["object"]["name"] == "Gone"


def test_errors_use_stripes_envelope(stripe: tuple[StripeSandbox, httpx.Client, Clock]) -> None:
    sandbox, client, _ = stripe
    missing = client.get("/v1/customers/cus_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    anonymous = httpx.get(
        str(client.base_url) + "/v1/customers",
        headers={"Authorization": "Bearer sk_test_wrong_key_1234"},
    )
    assert anonymous.status_code == 401
    assert "sk_test_wrong_key_1234" not in anonymous.text
    sandbox.fail_next(429, retry_after=2, should_retry=True)
    limited = client.get("/v1/customers")
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "rate_limit")
    assert (limited.headers["Retry-After"], limited.headers["Stripe-Should-Retry"]) == ("2", "true")
    sandbox.fail_next(400)  # the legacy form of a rate limit
    assert client.get("/v1/customers").json()["error"]["code"] == "rate_limit"
    assert client.get("/v1/customers").status_code == 200
    sandbox.rate = 3
    statuses = [client.get("/v1/invoices").status_code for _ in range(5)]
    assert statuses.count(429) >= 2
    assert sandbox.rate_limited >= 2


def test_a_failed_charge_retries_to_paid_with_the_customers_standing(
    stripe: tuple[StripeSandbox, httpx.Client, Clock],
) -> None:
    sandbox, client, clock = stripe
    cid = sandbox.add_customer(name="Acme")
    sid = sandbox.add_subscription(cid, items=[(2000, "month", 1, 10)])
    clock.now += 60
    retry = int(clock.now) + 3 * 86_400
    iid = sandbox.add_invoice(
        cid, amount=20_000, subscription=sid, status="open", next_payment_attempt=retry
    )
    assert client.get(f"/v1/customers/{cid}").json()["delinquent"] is True
    assert client.get(f"/v1/subscriptions/{sid}").json()["status"] == "past_due"
    clock.now = retry
    sandbox.attempt_payment(iid, paid=False, next_attempt=retry + 2 * 86_400)
    invoice = client.get(f"/v1/invoices/{iid}").json()
    assert (invoice["status"], invoice["attempt_count"]) == ("open", 2)
    assert invoice["next_payment_attempt"] == retry + 2 * 86_400
    clock.now = retry + 2 * 86_400
    sandbox.attempt_payment(iid, paid=True)
    invoice = client.get(f"/v1/invoices/{iid}").json()
    assert (invoice["status"], invoice["attempt_count"], invoice["amount_remaining"]) == (
        "paid",
        3,
        0,
    )
    assert invoice["status_transitions"]["paid_at"] == int(clock.now)
    assert invoice["next_payment_attempt"] is None
    events = client.get("/v1/events", params={"limit": 100}).json()["data"]
    kinds = [e["type"] for e in reversed(events) if e["type"].startswith("invoice.")]
    assert kinds == [
        "invoice.created",
        "invoice.payment_failed",
        "invoice.updated",
        "invoice.payment_failed",
        "invoice.updated",
        "invoice.paid",
    ]
    standing = [
        (e["data"]["object"]["delinquent"], e["data"]["previous_attributes"]["delinquent"])
        for e in reversed(events)
        if e["type"] == "customer.updated"
    ]
    assert standing == [(True, False), (False, True)]  # delinquent once, and cleared once
    statuses = [
        (e["data"]["object"]["status"], e["data"]["previous_attributes"]["status"])
        for e in reversed(events)
        if e["type"] == "customer.subscription.updated"
    ]
    assert statuses == [("past_due", "active"), ("active", "past_due")]
    assert client.get(f"/v1/customers/{cid}").json()["delinquent"] is False
