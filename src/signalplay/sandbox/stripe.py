"""A loopback stand-in of Stripe's billing reads.

Customers, subscriptions, subscription items, invoices and events, as the real API answers them.

Objects are copies of Stripe's canonical fixtures (data/stripe_billing_fixtures.json, post-basil
shapes) with the stand-in's own ids and values. Lists are newest first with `limit` (1-100,
default 10), `starting_after` / `ending_before`, `created[gt|gte|lt|lte]`, the documented
filters and `expand[]`; events are generated from every state change (with
`previous_attributes` on updates), listable for 30 days only, filtered by `type` (with `*`) or
`types[]` (at most 20). Errors use Stripe's envelope; every answer has a `Request-Id`; a
per-endpoint bucket answers 429 `rate_limit` past its rate; faults can be injected.
Imports: stdlib.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from signalplay.errors import SignalplayError

FIXTURES = json.loads(
    (Path(__file__).parent / "data" / "stripe_billing_fixtures.json").read_text(encoding="utf-8")
)["resources"]
RETENTION_SECONDS = 30 * 86_400
LIST_LIMIT = 100
EMBEDDED_ITEMS = 10  # a subscription's `items` list holds the first 10; the rest are paged
TYPES_MAX = 20
API_VERSION = "2025-03-31.basil"
RESOURCES = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "subscription_items": "subscription_item",
    "events": "event",
}
SUBSCRIPTION_LIVE = {"incomplete", "trialing", "active", "past_due", "unpaid", "paused"}


class StripeError(SignalplayError):
    """An error answer in Stripe's envelope."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "type": kind,
                "code": code,
                "message": message,
                "param": param,
                "doc_url": f"https://stripe.com/docs/error-codes/{code}" if code else None,
                "request_log_url": None,
            }
        }
        self.headers = headers or {}


@dataclass
class Fault:
    """Answer the next `times` requests whose path contains `path_contains` with this."""

    status: int
    times: int
    path_contains: str
    code: str | None
    retry_after: float | None
    should_retry: bool | None


@dataclass
class Logged:
    """One request the stand-in answered."""

    method: str
    path: str
    query: str
    status: int
    version: str | None


@dataclass
class StripeState:
    """The account's objects by id, and its event log (oldest first)."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"customer": {}, "subscription": {}, "invoice": {}}
    )
    events: list[dict[str, Any]] = field(default_factory=list)
    # Every item of each subscription: a subscription embeds only its first EMBEDDED_ITEMS.
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _template(name: str) -> dict[str, Any]:
    return copy.deepcopy(FIXTURES[name])


class StripeSandbox:
    """The WSGI app.

    `clock` gives the current Unix time; `rate` is requests per second per endpoint (Stripe's
    default per-endpoint limit is 25).
    """

    def __init__(
        self,
        *,
        api_key: str = "sk_test_sandbox",
        clock: Callable[[], float] = time.time,
        rate: float = 25.0,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.rate = rate
        self.state = StripeState()
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.rate_limited = 0
        self._buckets: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._lists: dict[tuple[Any, ...], tuple[list[dict[str, Any]], dict[str, int]]] = {}

    # ---- seeding and changes (each change is an event, as in Stripe) ------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):014d}"

    def _now(self) -> int:
        return int(self.clock())

    def _event(
        self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> None:
        event = _template("event")
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event.update(
            id=self._id("evt"),
            type=kind,
            created=self._now(),
            api_version=API_VERSION,
            data=data,
        )
        self.state.events.append(event)

    def add_customer(
        self,
        *,
        name: str,
        email: str | None = None,
        metadata: dict[str, str] | None = None,
        customer_id: str | None = None,
    ) -> str:
        """A customer (`customer.created`); its id may be given (a seeded book)."""
        with self._lock:
            obj = _template("customer")
            obj.update(
                id=customer_id or self._id("cus"),
                created=self._now(),
                name=name,
                email=email,
                metadata=dict(metadata or {}),
                discount=None,
                delinquent=False,
            )
            self.state.objects["customer"][obj["id"]] = obj
            self._event("customer.created", obj)
            return str(obj["id"])

    def add_subscription(
        self,
        customer: str,
        *,
        items: Iterable[tuple[int, str, int, int]],
        status: str = "active",
        period_days: int = 30,
    ) -> str:
        """Add a subscription with items.

        A subscription with items (unit amount in cents, interval, interval count,
        quantity), `customer.subscription.created`.
        """
        with self._lock:
            now = self._now()
            sub = _template("subscription")
            sid = self._id("sub")
            rows = []
            for amount, interval, count, quantity in items:
                item = _template("subscription_item")
                price = item["price"]
                price.update(
                    id=self._id("price"),
                    unit_amount=amount,
                    unit_amount_decimal=str(amount),
                    billing_scheme="per_unit",
                    tiers_mode=None,
                    type="recurring",
                    currency="usd",
                )
                price["recurring"] = {
                    **(price.get("recurring") or {}),
                    "interval": interval,
                    "interval_count": count,
                    "usage_type": "licensed",
                    "meter": None,
                }
                if isinstance(item.get("plan"), dict):
                    item["plan"].update(
                        amount=amount,
                        interval=interval,
                        interval_count=count,
                        usage_type="licensed",
                    )
                item.update(
                    id=self._id("si"),
                    subscription=sid,
                    quantity=quantity,
                    created=now,
                    current_period_start=now,
                    current_period_end=now + period_days * 86_400,
                    discounts=[],
                )
                rows.append(item)
            sub.update(
                id=sid,
                customer=customer,
                status=status,
                created=now,
                start_date=now,
                cancel_at_period_end=False,
                cancel_at=None,
                canceled_at=None,
                ended_at=None,
                discounts=[],
                currency="usd",
                latest_invoice=None,
                items={
                    "object": "list",
                    "data": rows[:EMBEDDED_ITEMS],
                    "has_more": len(rows) > EMBEDDED_ITEMS,
                    "total_count": len(rows),
                    "url": f"/v1/subscription_items?subscription={sid}",
                },
            )
            self.state.items[sid] = rows
            self.state.objects["subscription"][sid] = sub
            self._event("customer.subscription.created", sub)
            return sid

    def update_subscription(self, sid: str, **changes: Any) -> None:
        """Change a subscription's fields or an item's quantity.

        Change top-level fields (`status`, `cancel_at_period_end`, ...) or an item's
        `quantity` (`quantity=(item index, n)`): `customer.subscription.updated` with the
        old values in `previous_attributes` (`deleted` when it ends).
        """
        with self._lock:
            sub = self.state.objects["subscription"][sid]
            previous: dict[str, Any] = {}
            if "quantity" in changes:
                index, quantity = changes.pop("quantity")
                previous["items"] = copy.deepcopy(sub["items"])
                self.state.items[sid][index]["quantity"] = quantity  # (embedded: the same dict)
            for key, value in changes.items():
                previous[key] = sub.get(key)
                sub[key] = value
            if sub["status"] == "canceled" and sub.get("ended_at") is None:
                sub["ended_at"] = sub["canceled_at"] = self._now()
                self._event("customer.subscription.deleted", sub)
            else:
                self._event("customer.subscription.updated", sub, previous)

    def add_invoice(
        self,
        customer: str,
        *,
        amount: int,
        subscription: str | None = None,
        status: str = "paid",
        attempt_count: int = 1,
        next_payment_attempt: int | None = None,
        collection_method: str = "charge_automatically",
        due_date: int | None = None,
        invoice_id: str | None = None,
    ) -> str:
        """Add an invoice, with its events.

        An invoice (`invoice.created`, then `invoice.paid` or `invoice.payment_failed` as
        its state says).
        """
        with self._lock:
            now = self._now()
            inv = _template("invoice")
            iid = invoice_id or self._id("in")
            paid = status == "paid"
            inv.update(
                id=iid,
                customer=customer,
                status=status,
                created=now,
                amount_due=amount,
                amount_paid=amount if paid else 0,
                amount_remaining=0 if paid else amount,
                subtotal=amount,
                total=amount,
                attempt_count=attempt_count,
                attempted=attempt_count > 0,
                next_payment_attempt=next_payment_attempt,
                collection_method=collection_method,
                due_date=due_date,
                period_start=now - 30 * 86_400,
                period_end=now,
                billing_reason="subscription_cycle" if subscription else "manual",
            )
            inv["status_transitions"] = {
                "finalized_at": now,
                "paid_at": now if paid else None,
                "marked_uncollectible_at": now if status == "uncollectible" else None,
                "voided_at": now if status == "void" else None,
            }
            inv["parent"] = (
                {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"subscription": subscription, "metadata": None},
                }
                if subscription
                else None
            )
            inv["lines"] = {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/invoices/{iid}/lines",
            }
            self.state.objects["invoice"][iid] = inv
            if subscription in self.state.objects["subscription"]:
                self.state.objects["subscription"][subscription]["latest_invoice"] = iid
            self._event("invoice.created", inv)
            if paid:
                self._event("invoice.paid", inv)
            elif attempt_count > 0 and status == "open":
                self._event("invoice.payment_failed", inv)
                if collection_method == "charge_automatically":
                    self._standing(inv, failed=True)
            return iid

    def attempt_payment(self, iid: str, *, paid: bool, next_attempt: int | None = None) -> None:
        """Stripe retries an open invoice's charge (Smart Retries): paid, or failed again.

        Paid: `invoice.paid` with its `paid_at` transition. Failed: `invoice.payment_failed`
        with the attempt counted and the next one scheduled (None: no more retries). The
        customer is delinquent while an automatic charge stays failed; the subscription is
        `past_due` meanwhile, `active` again once paid.
        """
        with self._lock:
            inv = self.state.objects["invoice"][iid]
            now = self._now()
            previous = {
                "attempt_count": inv["attempt_count"],
                "next_payment_attempt": inv["next_payment_attempt"],
                "status": inv["status"],
            }
            inv["attempt_count"] += 1
            inv["attempted"] = True
            if paid:
                inv.update(
                    status="paid",
                    amount_paid=inv["amount_due"],
                    amount_remaining=0,
                    next_payment_attempt=None,
                )
                inv["status_transitions"]["paid_at"] = now
                self._event("invoice.updated", inv, previous)
                self._event("invoice.paid", inv)
            else:
                inv["next_payment_attempt"] = next_attempt
                self._event("invoice.updated", inv, previous)
                self._event("invoice.payment_failed", inv)
            self._standing(inv, failed=not paid)

    def _standing(self, inv: dict[str, Any], *, failed: bool) -> None:
        """The customer's `delinquent` flag and the subscription's status after a charge."""
        customer = self.state.objects["customer"].get(inv["customer"])
        if (
            customer is not None
            and not customer.get("deleted")
            and customer["delinquent"] != failed
        ):
            previous = {"delinquent": customer["delinquent"]}
            customer["delinquent"] = failed
            self._event("customer.updated", customer, previous)
        parent = (inv.get("parent") or {}).get("subscription_details") or {}
        sub = self.state.objects["subscription"].get(parent.get("subscription") or "")
        want = "past_due" if failed else "active"
        if sub is not None and sub["status"] in ("active", "past_due") and sub["status"] != want:
            previous = {"status": sub["status"]}
            sub["status"] = want
            self._event("customer.subscription.updated", sub, previous)

    def delete_customer(self, cid: str) -> None:
        """The customer is deleted: a tombstone, and `customer.deleted` with its last state."""
        with self._lock:
            last = self.state.objects["customer"][cid]
            self._event("customer.deleted", last)
            self.state.objects["customer"][cid] = {"id": cid, "object": "customer", "deleted": True}

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path_contains: str = "",
        code: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """Answer the next matching requests with an error (429 `rate_limit` by default)."""
        with self._lock:
            default = "rate_limit" if status in (400, 429) else None
            self.faults.append(
                Fault(status, times, path_contains, code or default, retry_after, should_retry)
            )

    # ---- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer one request."""
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        headers = {"Content-Type": "application/json", "Request-Id": f"req_{uuid.uuid4().hex[:14]}"}
        with self._lock:
            try:
                self._admit(environ, path)
                status, body = self._route(method, path, parse_qsl(query, keep_blank_values=True))
            except StripeError as exc:
                status, body = exc.status, exc.body
                headers.update(exc.headers)
            self.requests.append(
                Logged(method, path, query, status, environ.get("HTTP_STRIPE_VERSION"))
            )
            text = json.dumps(body).encode()  # under the lock: the state may not change meanwhile
        reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        start_response(
            f"{status} {reasons.get(status, 'Error')}",
            [*headers.items(), ("Content-Length", str(len(text)))],
        )
        return [text]

    def _admit(self, environ: dict[str, Any], path: str) -> None:
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.api_key}":
            raise StripeError(
                401,
                None,
                "Invalid API Key provided: " + _masked(environ.get("HTTP_AUTHORIZATION", "")),
            )
        for fault in self.faults:
            if fault.times > 0 and fault.path_contains in path:
                fault.times -= 1
                extra: dict[str, str] = {}
                if fault.retry_after is not None:
                    extra["Retry-After"] = str(fault.retry_after)
                if fault.should_retry is not None:
                    extra["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
                message = (
                    "Too many requests hit the API too quickly."
                    if fault.code == "rate_limit"
                    else "An unexpected error occurred."
                )
                kind = "api_error" if fault.status >= 500 else "invalid_request_error"
                raise StripeError(fault.status, fault.code, message, kind=kind, headers=extra)
        bucket = self._buckets.setdefault(path.rstrip("/").rsplit("/", 1)[0], deque())
        now = time.monotonic()
        while bucket and now - bucket[0] >= 1.0:
            bucket.popleft()
        if len(bucket) >= self.rate:
            self.rate_limited += 1
            raise StripeError(
                429,
                "rate_limit",
                "Too many requests hit the API too quickly. We recommend an exponential backoff "
                "of your requests.",
            )
        bucket.append(now)

    def _route(self, method: str, path: str, query: list[tuple[str, str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if method != "GET" or len(parts) < 2 or parts[0] != "v1" or parts[1] not in RESOURCES:
            raise StripeError(404, None, f"Unrecognized request URL ({method}: {path}).")
        resource = parts[1]
        params = _params(query)
        if len(parts) == 3:
            return 200, self._retrieve(resource, parts[2], params)
        return 200, self._list(resource, params, path)

    def _pool(self, resource: str) -> list[dict[str, Any]]:
        if resource == "events":
            horizon = self._now() - RETENTION_SECONDS
            return [e for e in self.state.events if e["created"] >= horizon]
        if resource == "subscription_items":
            return [i for rows in self.state.items.values() for i in rows]
        return list(self.state.objects[RESOURCES[resource]].values())

    def _retrieve(self, resource: str, oid: str, params: dict[str, Any]) -> dict[str, Any]:
        found = next((o for o in self._pool(resource) if o["id"] == oid), None)
        if found is None:
            raise StripeError(
                404, "resource_missing", f"No such {RESOURCES[resource]}: '{oid}'", param="id"
            )
        expand = params.get("expand", [])
        return self._expand(copy.deepcopy(found), expand, prefix="") if expand else found

    def _list(self, resource: str, params: dict[str, Any], path: str) -> dict[str, Any]:
        limit = _int(params.get("limit", "10"), "limit")
        if not 1 <= limit <= LIST_LIMIT:
            raise StripeError(
                400,
                "parameter_invalid_integer",
                f"Invalid integer: {limit}; must be between 1 and {LIST_LIMIT}",
                param="limit",
            )
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            raise StripeError(
                400,
                "parameter_invalid_empty",
                "You may only specify one of these parameters: starting_after, ending_before.",
            )
        rows, where = self._listing(resource, params)
        start = 0
        if after:
            start = _position(where, after, "starting_after") + 1
        page = rows[start : start + limit]
        if before:
            end = _position(where, before, "ending_before")
            page = rows[max(0, end - limit) : end]
            start = max(0, end - limit)
        has_more = (start + len(page) < len(rows)) if not before else start > 0
        expand = params.get("expand", [])
        # Objects are serialised under the lock: copy only what expand changes.
        data = (
            [self._expand(copy.deepcopy(r), expand, prefix="data.") for r in page]
            if expand
            else page
        )
        return {"object": "list", "url": path, "has_more": has_more, "data": data}

    def _listing(
        self, resource: str, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The filtered list, newest first, and each id's position.

        Kept until the state changes (paging through 100k objects stays O(page), not O(n)
        per request).
        """
        paging = ("limit", "starting_after", "ending_before", "expand")
        key = (
            resource,
            json.dumps({k: v for k, v in params.items() if k not in paging}, sort_keys=True),
            len(self.state.events),  # every change is an event
            self._now() // 60 if resource == "events" else 0,  # retention moves with time
        )
        cached = self._lists.get(key)
        if cached is None:
            rows = [r for r in self._pool(resource) if self._matches(resource, r, params)]
            rows.sort(key=lambda r: (r.get("created", 0), r["id"]), reverse=True)  # newest first
            cached = (rows, {r["id"]: i for i, r in enumerate(rows)})
            self._lists = {key: cached}  # one listing at a time is what a sync pages through
        return cached

    def _matches(self, resource: str, row: dict[str, Any], params: dict[str, Any]) -> bool:
        if row.get("deleted"):
            return False  # tombstones are retrievable, not listed
        created = params.get("created", {})
        if isinstance(created, str):
            created = {"eq": created}
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "eq": lambda a, b: a == b,
        }
        for op, value in created.items():
            if op not in ops:
                raise StripeError(
                    400, "parameter_unknown", f"Received unknown parameter: created[{op}]"
                )
            if not ops[op](row.get("created", 0), _int(value, f"created[{op}]")):
                return False
        checks: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
            "customers": _customer_filter,
            "subscriptions": _subscription_filter,
            "invoices": _invoice_filter,
            "subscription_items": lambda r, p: r.get("subscription") == p.get("subscription"),
            "events": _event_filter,
        }
        return checks[resource](row, params)

    def _expand(self, obj: dict[str, Any], paths: list[str], *, prefix: str) -> dict[str, Any]:
        for full in paths:
            if not full.startswith(prefix):
                continue
            name = full[len(prefix) :]
            if name == "customer" and isinstance(obj.get("customer"), str):
                obj["customer"] = copy.deepcopy(
                    self.state.objects["customer"].get(obj["customer"], obj["customer"])
                )
            elif name == "latest_invoice" and isinstance(obj.get("latest_invoice"), str):
                obj["latest_invoice"] = copy.deepcopy(
                    self.state.objects["invoice"].get(obj["latest_invoice"])
                )
            elif name == "subscriptions" and obj.get("object") == "customer":
                subs = [
                    s
                    for s in self.state.objects["subscription"].values()
                    if s["customer"] == obj["id"]
                ]
                obj["subscriptions"] = {
                    "object": "list",
                    "data": copy.deepcopy(subs),
                    "has_more": False,
                    "url": f"/v1/customers/{obj['id']}/subscriptions",
                }
            else:
                raise StripeError(
                    400,
                    "parameter_invalid_string",
                    f"This property cannot be expanded ({full}).",
                    param="expand",
                )
        return obj


def _customer_filter(row: dict[str, Any], params: dict[str, Any]) -> bool:
    return "email" not in params or row.get("email") == params["email"]


def _subscription_filter(row: dict[str, Any], params: dict[str, Any]) -> bool:
    status = params.get("status")
    if status is None and row["status"] in ("canceled", "incomplete_expired"):
        return False  # the default list leaves canceled subscriptions out
    if status == "ended" and row["status"] not in ("canceled", "incomplete_expired"):
        return False
    if status not in (None, "all", "ended") and row["status"] != status:
        return False
    return "customer" not in params or row["customer"] == params["customer"]


def _invoice_filter(row: dict[str, Any], params: dict[str, Any]) -> bool:
    parent = (row.get("parent") or {}).get("subscription_details") or {}
    for key, value in (
        ("status", row.get("status")),
        ("customer", row.get("customer")),
        ("collection_method", row.get("collection_method")),
        ("subscription", parent.get("subscription")),
    ):
        if key in params and params[key] != value:
            return False
    return True


def _event_filter(row: dict[str, Any], params: dict[str, Any]) -> bool:
    kind, kinds = params.get("type"), params.get("types")
    if kind is not None and kinds is not None:
        raise StripeError(400, "parameter_invalid", "You may not pass both type and types[].")
    if kinds is not None:
        if len(kinds) > TYPES_MAX:
            raise StripeError(
                400, "parameter_invalid", f"types[] may contain at most {TYPES_MAX} event types."
            )
        return row["type"] in kinds
    if kind is not None:
        if kind.endswith("*"):
            return str(row["type"]).startswith(kind[:-1])
        return bool(row["type"] == kind)
    return True


def _params(query: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket syntax: `expand[]=a` → lists, `created[gte]=1` → dicts."""
    out: dict[str, Any] = {}
    for key, value in query:
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            name, sub = key[:-1].split("[", 1)
            out.setdefault(name, {})[sub] = value
        else:
            out[key] = value
    return out


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(
            400, "parameter_invalid_integer", f"Invalid integer: {value}", param=name
        ) from None


def _position(where: dict[str, int], oid: str, param: str) -> int:
    if oid in where:
        return where[oid]
    raise StripeError(400, "resource_missing", f"No such object: '{oid}'", param=param)


def _masked(header: str) -> str:
    key = header.removeprefix("Bearer ")
    return (key[:8] + "*" * max(0, len(key) - 12) + key[-4:]) if len(key) > 12 else "****"


def utc(moment: datetime) -> int:
    """A datetime as Stripe's Unix seconds."""
    return int(moment.astimezone(UTC).timestamp())


__all__ = ["StripeError", "StripeSandbox", "utc"]
