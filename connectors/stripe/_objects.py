"""Stripe's objects as signalplay keeps them, and their states over time.

A subscription's MRR normalised to a month, the fields mappings read on one level, and the states
an invoice (from its status transitions) or a customer or subscription (from its recent events)
went through. No I/O. Imports: stdlib and the kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from signalplay.models import Version

# Normalised to a month: f(interval, count) of the reference's MRR convention.
MONTHLY = {"month": 1.0, "year": 1 / 12, "week": 52 / 12, "day": 365 / 12}
MRR_STATUSES = frozenset({"active", "past_due"})


def monthly_mrr(subscription: dict[str, Any]) -> float:
    """The subscription's MRR in currency units (cents / 100).

    Licensed per-unit items, normalised to a month; 0 unless active or past due.
    """
    if subscription.get("status") not in MRR_STATUSES:
        return 0.0
    total = 0.0
    for item in (subscription.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        if recurring.get("usage_type") == "metered" or price.get("billing_scheme") == "tiered":
            continue
        amount = float(price.get("unit_amount_decimal") or price.get("unit_amount") or 0)
        per = MONTHLY[str(recurring.get("interval", "month"))]
        total += (
            amount
            * int(item.get("quantity") or 1)
            * per
            / int(recurring.get("interval_count") or 1)
        )
    return round(total / 100, 2)


def normalise(stream: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as signalplay keeps it.

    Stripe's fields, plus what mappings need on one level (a subscription's MRR and period end,
    an invoice's subscription id across API versions).
    """
    data = dict(obj)
    if obj.get("deleted"):
        return data
    if stream == "subscriptions":
        ends = [i.get("current_period_end") for i in (obj.get("items") or {}).get("data") or []]
        data["mrr"] = monthly_mrr(obj)
        data["current_period_end"] = obj.get("current_period_end") or max(
            (e for e in ends if e is not None), default=None
        )
    if stream == "invoices":
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        data["subscription_id"] = parent.get("subscription") or obj.get("subscription")
    if isinstance(obj.get("customer"), dict):
        data["customer"] = obj["customer"].get("id")
    return data


def from_unix(seconds: Any) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds else None


TRANSITIONS = (  # an invoice's status_transitions: the status each one began
    ("finalized_at", "open"),
    ("marked_uncollectible_at", "uncollectible"),
    ("paid_at", "paid"),
    ("voided_at", "void"),
)


def invoice_states(
    data: dict[str, Any],
) -> tuple[datetime | None, tuple[Version, ...], bool]:
    """An invoice's states from its status transitions: draft, then each status as it began.

    Before it is paid an invoice has paid nothing and owes its whole amount; its attempts are
    those it has now (Stripe attempts a payment when the invoice is finalized).
    """
    moments = data.get("status_transitions") or {}
    created = from_unix(data.get("created"))
    if created is None:
        return None, (), False
    steps = sorted(
        (int(moments[k]), status) for k, status in TRANSITIONS if moments.get(k) is not None
    )
    unpaid = {
        "amount_paid": 0,
        "amount_remaining": data.get("amount_due"),
        "paid": False,
    }
    states = [Version(valid_from=created, data={**data, **unpaid, "status": "draft"})]
    for at, status in steps:
        extra = {} if status == "paid" else unpaid
        state = {**data, **extra, "status": status}
        if at <= int(created.timestamp()):
            states = [Version(valid_from=created, data=state)]
        else:
            states.append(Version(valid_from=from_unix(at) or created, data=state))
    states[-1] = Version(valid_from=states[-1].valid_from, data=data)  # the invoice as it is
    return states[-1].valid_from, tuple(states), True


def listed_states(
    stream: str, obj: dict[str, Any], events: Sequence[dict[str, Any]], horizon: int | None
) -> tuple[datetime | None, tuple[Version, ...], bool]:
    """A listed customer's or subscription's states from its recent events (see `_records`)."""
    created = int(obj.get("created") or 0)
    raw = dict(obj)
    states: list[Version] = []
    began = False
    for event in reversed(events):
        at = from_unix(event.get("created"))
        if at is None:
            continue
        states.append(Version(valid_from=at, data=normalise(stream, raw)))
        if str(event.get("type", "")).endswith(".created"):
            began = True
            break
        previous = (event.get("data") or {}).get("previous_attributes")
        if isinstance(previous, dict):
            raw = {**raw, **previous}
    known_since = max(created, horizon or 0)
    if not began:
        start = from_unix(created if horizon is None or created >= horizon else known_since)
        if start is not None and (not states or start < states[-1].valid_from):
            states.append(Version(valid_from=start, data=normalise(stream, raw)))
        began = horizon is not None and created >= horizon
    states.reverse()
    if not states:
        return None, (), False
    return states[-1].valid_from, tuple(states), began
