"""The Stripe connector over httpx against the Stripe stand-in: a bootstrap listed in pages with a
cursor saved per page (a killed sync resumes without loss or duplicates), events as the change
feed afterwards, a stale cursor re-listing, 429s waited out, MRR normalised to a month."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from signalplay.connectors._ratelimit import RateLimitSettings
from signalplay.connectors.stripe import StripeConnector, StripeSettings, monthly_mrr, normalise
from signalplay.errors import FatalError
from signalplay.sandbox.server import serve
from signalplay.sandbox.stripe import StripeSandbox

KEY = "sk_test_connector"
BILLING = (
    Path(__file__).resolve().parents[2] / "src/signalplay/sandbox/data/stripe_billing_fixtures.json"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env() -> Iterator[tuple[StripeSandbox, StripeConnector, Clock, list[float]]]:
    clock = Clock()
    sandbox = StripeSandbox(api_key=KEY, clock=clock, rate=1000)
    waits: list[float] = []
    with serve(sandbox) as server:
        settings = StripeSettings(
            api_key=SecretStr(KEY), base_url=server.url, rate_limit=RateLimitSettings()
        )
        conn = StripeConnector(settings, clock=clock, sleep=waits.append)
        yield sandbox, conn, clock, waits
        conn.close()


def until(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.now + 60, UTC)


def ids(pages: list) -> list[str]:  # type: ignore[type-arg]
    return [r.record_id for p in pages for r in p.records]


def test_bootstrap_lists_every_page_then_events_carry_the_changes(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    sandbox, conn, clock, _ = env
    customers = [sandbox.add_customer(name=f"A{i}") for i in range(250)]
    subs = [sandbox.add_subscription(c, items=[(2000, "month", 1, 10)]) for c in customers[:3]]
    pages = list(conn.read("customers", cursor=None, until=until(clock)))
    assert [len(p.records) for p in pages] == [100, 100, 50]
    assert sorted(ids(pages)) == sorted(customers)
    assert "list" in json.loads(pages[0].cursor)  # mid-list: resumable
    final = pages[-1].cursor
    assert json.loads(final) == {"events": int(clock.now)}

    (sub_pages,) = [list(conn.read("subscriptions", cursor=None, until=until(clock)))]
    mrr = {r.record_id: r.data["mrr"] for p in sub_pages for r in p.records}
    assert mrr == dict.fromkeys(subs, 200.0)  # $20 x 10 seats a month

    clock.now += 3600
    sandbox.update_subscription(subs[0], quantity=(0, 4))  # a downgrade
    sandbox.delete_customer(customers[1])
    sub_cursor = sub_pages[-1].cursor
    changed = [
        r
        for p in conn.read("subscriptions", cursor=sub_cursor, until=until(clock))
        for r in p.records
    ]
    assert [(r.record_id, r.data["mrr"]) for r in changed][-1] == (subs[0], 80.0)
    gone = [r for p in conn.read("customers", cursor=final, until=until(clock)) for r in p.records]
    assert gone[-1].record_id == customers[1]
    assert gone[-1].data["deleted"] is True


def test_a_subscription_of_more_than_ten_items_counts_every_item(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    """Stripe embeds a subscription's first 10 items (`has_more`); the rest are paged from
    /v1/subscription_items, in the bootstrap list and in the events after it."""
    sandbox, conn, clock, _ = env
    customer = sandbox.add_customer(name="Many seats")
    sub = sandbox.add_subscription(customer, items=[(1000, "month", 1, 1)] * 12)
    embedded = sandbox.state.objects["subscription"][sub]["items"]
    assert (len(embedded["data"]), embedded["has_more"], embedded["total_count"]) == (10, True, 12)
    pages = list(conn.read("subscriptions", cursor=None, until=until(clock)))
    (record,) = [r for p in pages for r in p.records]
    assert record.data["mrr"] == 120.0  # 12 items of $10, not 10
    assert len(record.data["items"]["data"]) == 12
    assert any(r.path == "/v1/subscription_items" for r in sandbox.requests)

    clock.now += 3600
    sandbox.update_subscription(sub, quantity=(11, 3))  # the 12th item, not embedded
    changed = [
        r
        for p in conn.read("subscriptions", cursor=pages[-1].cursor, until=until(clock))
        for r in p.records
    ]
    assert changed[-1].data["mrr"] == 140.0


def test_a_killed_bootstrap_resumes_where_it_stopped(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    sandbox, conn, clock, _ = env
    everyone = [sandbox.add_customer(name=f"A{i}") for i in range(230)]
    stream = conn.read("customers", cursor=None, until=until(clock))
    page = next(stream)  # ... and the process dies here, after the page's cursor was saved
    stream.close()
    rest = list(conn.read("customers", cursor=page.cursor, until=until(clock)))
    read = [r.record_id for r in page.records] + ids(rest)
    assert sorted(read) == sorted(everyone)  # nothing lost
    assert len(read) == len(set(read))  # nothing twice


def test_a_cursor_older_than_the_event_retention_relists(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    sandbox, conn, clock, _ = env
    cid = sandbox.add_customer(name="Acme")
    cursor = list(conn.read("customers", cursor=None, until=until(clock)))[-1].cursor
    clock.now += 31 * 86_400
    relisted = list(conn.read("customers", cursor=cursor, until=until(clock)))
    assert ids(relisted) == [cid]
    assert json.loads(relisted[-1].cursor)["events"] == int(clock.now)
    assert any(r.path == "/v1/customers" for r in sandbox.requests[-1:])


def test_429s_are_waited_out_with_retry_after_and_should_retry_false_is_final(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    sandbox, conn, clock, waits = env
    sandbox.add_customer(name="Acme")
    sandbox.fail_next(429, times=2, retry_after=3)
    assert len(ids(list(conn.read("customers", cursor=None, until=until(clock))))) == 1
    assert len(waits) == 2
    assert all(w >= 3 for w in waits)
    sandbox.fail_next(400)  # the legacy rate-limit form is retried too
    assert len(ids(list(conn.read("customers", cursor=None, until=until(clock))))) == 1
    sandbox.fail_next(500, should_retry=False)
    with pytest.raises(FatalError):
        list(conn.read("customers", cursor=None, until=until(clock)))
    assert all(r.version == "2025-03-31.basil" for r in sandbox.requests)  # pinned


def test_a_malformed_object_is_quarantined_and_the_rest_kept() -> None:
    good = {"id": "cus_1", "object": "customer", "created": 1_790_000_000}

    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "object": "list",
            "url": "/v1/customers",
            "has_more": False,
            "data": [good, {"object": "customer", "name": "no id"}, "garbage"],
        }
        return httpx.Response(200, json=body)

    settings = StripeSettings(
        api_key=SecretStr(KEY), base_url="http://stripe.test", rate_limit=RateLimitSettings()
    )
    conn = StripeConnector(settings, transport=httpx.MockTransport(handler))
    (page,) = list(conn.read("customers", cursor=None, until=datetime.now(UTC)))
    assert [r.record_id for r in page.records] == ["cus_1"]
    assert [reason for _, reason, _ in page.quarantined] == [
        "customers: an object without an id"
    ] * 2


def test_every_canonical_billing_object_normalises() -> None:
    resources = json.loads(BILLING.read_text())["resources"]
    streams = {
        "customer": "customers",
        "deleted_customer": "customers",
        "subscription": "subscriptions",
        "invoice": "invoices",
        "deleted_invoice": "invoices",
    }
    for name, obj in resources.items():
        data = normalise(streams.get(name, "invoices"), obj)
        assert data["id"] == obj["id"], name
    sub = normalise("subscriptions", resources["subscription"])
    assert (
        sub["current_period_end"]
        == resources["subscription"]["items"]["data"][0]["current_period_end"]
    )


def test_mrr_normalises_intervals_and_skips_metered_and_dead_subscriptions() -> None:
    def sub(status: str, *items: tuple[int, str, int, int, str]) -> dict:  # type: ignore[type-arg]
        return {
            "status": status,
            "items": {
                "data": [
                    {
                        "quantity": q,
                        "price": {
                            "unit_amount": a,
                            "billing_scheme": "per_unit",
                            "recurring": {"interval": i, "interval_count": n, "usage_type": u},
                        },
                    }
                    for a, i, n, q, u in items
                ]
            },
        }

    assert monthly_mrr(sub("active", (120_000, "year", 1, 2, "licensed"))) == 200.0
    assert monthly_mrr(sub("past_due", (3000, "month", 3, 1, "licensed"))) == 10.0
    assert monthly_mrr(sub("active", (100, "week", 1, 12, "licensed"))) == 52.0
    assert monthly_mrr(sub("active", (5, "month", 1, 1, "metered"))) == 0.0
    assert monthly_mrr(sub("canceled", (2000, "month", 1, 1, "licensed"))) == 0.0
    assert monthly_mrr(sub("trialing", (2000, "month", 1, 1, "licensed"))) == 0.0


def test_every_canonical_billing_object_maps_through_the_shipped_billing_mappings() -> None:
    from datetime import date

    from signalplay.definitions.loader import load_definitions
    from signalplay.jobs.scaffold import shipped_mappings
    from signalplay.models import SourceRecord
    from signalplay.profile.identity import IdentityMap
    from signalplay.profile.mapping import StreamMapper

    defs = load_definitions(shipped_mappings())
    resources = json.loads(BILLING.read_text())["resources"]
    customer = resources["customer"]["id"]
    identity = IdentityMap()
    identity.add("crm_id", "acme", "acme")
    identity.add("stripe_customer_id", customer, "acme")
    objects = {
        "customers": [resources["customer"], resources["deleted_customer"]],
        "subscriptions": [resources["subscription"]],
        "invoices": [resources["invoice"], resources["deleted_invoice"]],
    }
    mapped: dict[str, dict] = {}  # type: ignore[type-arg]
    for stream, items in objects.items():
        mapping = next(
            m for m in defs.mappings if (m.spec.source, m.spec.stream) == ("billing", stream)
        )
        mapper = StreamMapper(mapping, identity, days=[date(2026, 11, 27)])
        for obj in items:
            data = normalise(stream, obj)
            mapper.add(
                SourceRecord(source="billing", stream=stream, record_id=data["id"], data=data)
            )
        assert mapper.report.quarantined == [], (stream, mapper.report.quarantined)
        mapped[stream] = mapper.facts(accounts=["acme"])["acme"]
    # The fixture subscription is active with cancel_at_period_end set: a scheduled cancellation.
    assert mapped["subscriptions"]["cancellation_scheduled"].value == 1
    assert isinstance(mapped["subscriptions"]["mrr"].value, float)
    assert mapped["customers"]["billing_delinquent"].value == 0
    assert "last_invoice_amount" in mapped["invoices"]


def test_a_listed_subscription_carries_its_states_from_its_events(
    env: tuple[StripeSandbox, StripeConnector, Clock, list[float]],
) -> None:
    """Before: every listed object held its current state from its creation (a seat cut made
    today was already made when the subscription began)."""
    sandbox, conn, clock, _ = env
    old = sandbox.add_customer(name="Old", customer_id="cus_old")
    old_sub = sandbox.add_subscription(old, items=[(1000, "month", 1, 10)])
    clock.now += 60 * 86_400  # beyond the 30 days of events Stripe keeps
    young = sandbox.add_customer(name="Young", customer_id="cus_young")
    began = clock.now
    sub = sandbox.add_subscription(young, items=[(1000, "month", 1, 10)])
    clock.now += 5 * 86_400
    sandbox.update_subscription(sub, quantity=(0, 4))  # a seat cut
    clock.now += 86_400
    pages = list(conn.read("subscriptions", cursor=None, until=until(clock)))
    records = {r.record_id: r for p in pages for r in p.records}
    cut = records[sub]
    assert cut.complete  # created within the events Stripe keeps: nothing came before
    assert [(int(v.valid_from.timestamp() - began), v.data["mrr"]) for v in cut.history] == [
        (0, 100.0),
        (5 * 86_400, 40.0),
    ]
    assert cut.data["mrr"] == 40.0
    before = records[old_sub]
    assert not before.complete  # older than the events: unknown before they begin
    assert before.updated_at is not None
    assert before.updated_at.timestamp() == pytest.approx(until(clock).timestamp() - 29 * 86_400)


def test_an_invoice_is_open_until_it_is_paid() -> None:
    from signalplay.connectors.stripe import invoice_states

    invoice = {
        "id": "in_1",
        "status": "paid",
        "created": 1_790_000_000,
        "amount_due": 5000,
        "amount_paid": 5000,
        "amount_remaining": 0,
        "attempt_count": 2,
        "status_transitions": {
            "finalized_at": 1_790_003_600,
            "paid_at": 1_790_003_600 + 3 * 86_400,
            "voided_at": None,
            "marked_uncollectible_at": None,
        },
    }
    changed, history, complete = invoice_states(invoice)
    assert complete
    assert [(v.data["status"], v.data["amount_paid"]) for v in history] == [
        ("draft", 0),
        ("open", 0),
        ("paid", 5000),
    ]
    assert changed == history[-1].valid_from
    assert history[-1].data == invoice
