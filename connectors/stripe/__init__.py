"""Stripe billing as a source, over httpx: customers, subscriptions and invoices.

A first sync lists everything (subscriptions with `status=all`), newest first, 100 a page, with
the time it started recorded before the first call; later syncs read `/v1/events` from that time
(minus a 5-minute overlap) as the change feed, oldest first, and upsert each event's object.
A cursor older than Stripe's 30-day event retention falls back to a full re-list. The cursor is
saved after every page, so a killed sync resumes where it stopped (records at the edge are read
again; the store upserts on the id). `Stripe-Version` is pinned; deleted objects arrive as
tombstones (`deleted: true`); a subscription carries its MRR normalised to a month.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from signalplay.connectors._http import AnswerError, translator
from signalplay.connectors._ratelimit import (
    RateLimitSettings,
    Window,
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import call_translated, parse_retry_after
from signalplay.connectors.stripe._objects import (
    MONTHLY,
    MRR_STATUSES,
    from_unix,
    invoice_states,
    listed_states,
    monthly_mrr,
    normalise,
)
from signalplay.errors import AuthError, FatalError, RetriableError, SyncError
from signalplay.models import Page, SourceRecord, StreamSpec, Version

__all__ = [
    "MONTHLY",
    "MRR_STATUSES",
    "StripeConnector",
    "StripeSettings",
    "classify",
    "invoice_states",
    "listed_states",
    "monthly_mrr",
    "normalise",
]
T = TypeVar("T")
EVENTS_PAGE_RECORDS = 500
# stream → (list path, list parameters, event type wildcard, object name)
STREAMS = {
    "customers": ("/v1/customers", (), "customer.*", "customer"),
    "subscriptions": (
        "/v1/subscriptions",
        (("status", "all"),),
        "customer.subscription.*",
        "subscription",
    ),
    "invoices": ("/v1/invoices", (), "invoice.*", "invoice"),
}


class StripeSettings(BaseModel):
    """A `stripe` source block; the key comes from SIGNALPLAY_SOURCES__<NAME>__API_KEY."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "stripe"
    api_key: SecretStr
    base_url: str = "https://api.stripe.com"
    stripe_version: str = "2025-03-31.basil"
    page_size: int = Field(default=100, ge=1, le=100)
    overlap_seconds: int = Field(default=300, ge=0)  # events re-read at the cursor's edge
    retention_days: int = Field(default=29, ge=1, le=30)  # older cursors re-list everything
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retry_seconds: float = 120.0
    # Stripe allows 25 requests/s per endpoint (live 100/s overall): stay under it.
    rate_limit: RateLimitSettings = RateLimitSettings(windows=(Window(limit=20, seconds=1),))


def classify(response: httpx.Response, operation: str) -> SyncError:
    """Stripe's answer as our error kinds.

    429 and 5xx retriable (honouring Retry-After and `Stripe-Should-Retry`), the legacy 400
    `rate_limit` too; 401/403 auth; others fatal.
    """
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = str(error.get("message") or response.text[:300])
    code = error.get("code")
    request_id = response.headers.get("Request-Id")
    should = response.headers.get("Stripe-Should-Retry")
    status = response.status_code
    retriable = status == 429 or status >= 500 or (status == 400 and code == "rate_limit")
    if should is not None:
        retriable = should == "true"
    if retriable:
        return RetriableError(
            "stripe",
            operation,
            f"{code or status}: {message}",
            status=status,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    kind = AuthError if status in (401, 403) else FatalError
    return kind(
        "stripe", operation, f"{code or status}: {message}", status=status, request_id=request_id
    )


_TRANSLATE = translator("stripe", classify)


class StripeConnector:
    """Stripe's billing objects, bootstrapped by list and kept current by events."""

    settings_model: ClassVar[type[BaseModel]] = StripeSettings

    def __init__(
        self,
        settings: StripeSettings,
        *,
        source: str = "billing",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        self._sleep, budget_clock = pacing(sleep)
        key = settings.api_key.get_secret_value()
        self.budget = make_budget(
            settings.rate_limit,
            key=budget_key("stripe", settings.base_url, key),
            broker=broker,
            clock=budget_clock,
        )
        self.requests = 0
        self._http = httpx.Client(
            base_url=settings.base_url,
            headers={
                "Authorization": f"Bearer {key}",
                "Stripe-Version": settings.stripe_version,
                "User-Agent": "signalplay",
            },
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def streams(self) -> Sequence[StreamSpec]:
        """Customers, subscriptions and invoices, incremental through events."""
        return [StreamSpec(name=n, cursor_field="created") for n in STREAMS]

    def _get(self, operation: str, path: str, params: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            self.requests += 1
            response = self._http.get(path, params=list(params))
            if response.status_code >= 300:
                raise AnswerError(response)
            body = response.json()
            return body if isinstance(body, dict) else {}

        return call_translated(
            once,
            operation=operation,
            translate=_TRANSLATE,
            max_delay=self.settings.max_retry_seconds,
            sleep=self._sleep,
            budget=self.budget,
        )

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Pages of the stream since `cursor`; each page's cursor resumes after it."""
        state = _state(cursor)
        # The listing's events start no later than the sync's cut: a change after it is read
        # again by the next sync (an upsert), never skipped by a clock ahead of `until`.
        now = min(int(self.clock()), int(until.timestamp()))
        stale = (
            state is not None and now - int(state["events"]) > self.settings.retention_days * 86_400
        )
        if state is None or "list" in state or stale:
            listing = (state or {}).get("list") if state and not stale else None
            yield from self._list_all(stream, listing or {"started": now}, until)
            return
        yield from self._events(stream, int(state["events"]), until)

    def _list_all(
        self, stream: str, listing: dict[str, Any], until: datetime | None = None
    ) -> Iterator[Page]:
        path, fixed, _, _ = STREAMS[stream]
        started, after = int(listing["started"]), listing.get("after")
        end = int((until or datetime.fromtimestamp(started, UTC)).timestamp())
        horizon = end - self.settings.retention_days * 86_400
        recent = self._recent_events(stream, horizon, end) if stream != "invoices" else {}
        while True:
            params: list[tuple[str, Any]] = [("limit", self.settings.page_size), *fixed]
            if after:
                params.append(("starting_after", after))
            page = self._get(f"list {stream}", path, params)
            data = page.get("data") or []
            records, bad = self._records(stream, data, recent=recent, horizon=horizon)
            after = data[-1]["id"] if data and isinstance(data[-1], dict) else after
            more = bool(page.get("has_more")) and bool(data)
            state = (
                {"events": started, "list": {"started": started, "after": after}}
                if more
                else {"events": started}
            )
            yield Page(records=records, cursor=json.dumps(state), quarantined=bad)
            if not more:
                return

    def _changes(self, stream: str, since: int, until: int) -> list[dict[str, Any]]:
        """The events of the stream's objects from `since` to `until`, oldest first."""
        _, _, kind, name = STREAMS[stream]
        params: list[tuple[str, Any]] = [
            ("limit", self.settings.page_size),
            ("type", kind),
            ("created[gte]", max(0, since)),
            ("created[lte]", until),
        ]
        events: list[dict[str, Any]] = []
        after = None
        while True:
            page = self._get(
                f"events {stream}",
                "/v1/events",
                [*params, *([("starting_after", after)] if after else [])],
            )
            data = page.get("data") or []
            events += [e for e in data if isinstance(e, dict)]
            if not page.get("has_more") or not data:
                break
            after = data[-1]["id"]
        events.sort(key=lambda e: (e.get("created", 0), e.get("id", "")))
        return [
            e for e in events if ((e.get("data") or {}).get("object") or {}).get("object") == name
        ]

    def _recent_events(
        self, stream: str, since: int, until: int
    ) -> dict[str, list[dict[str, Any]]]:
        """The stream's events from `since` to `until` (Stripe keeps 30 days), by object id."""
        out: dict[str, list[dict[str, Any]]] = {}
        for event in self._changes(stream, since, until):
            oid = event["data"]["object"].get("id")
            if oid:
                out.setdefault(str(oid), []).append(event)
        return out

    def _events(self, stream: str, since: int, until: datetime) -> Iterator[Page]:
        """Events of the stream's objects since `since` up to `until`, oldest first.

        Events of the stream's objects since `since` (less the overlap) up to `until`,
        oldest first; each page's cursor is its newest event time.
        """
        name = STREAMS[stream][3]
        changes = self._changes(
            stream,
            since - self.settings.overlap_seconds,
            int(until.astimezone(UTC).timestamp()),
        )
        if not changes:
            yield Page(records=(), cursor=json.dumps({"events": since}))
            return
        for start in range(0, len(changes), EVENTS_PAGE_RECORDS):
            chunk = changes[start : start + EVENTS_PAGE_RECORDS]
            objects = []
            for event in chunk:
                obj = dict(event["data"]["object"])
                if str(event.get("type", "")).endswith(".deleted"):
                    obj = {"id": obj.get("id"), "object": name, "deleted": True, "last": obj}
                obj["_event"] = {
                    "id": event.get("id"),
                    "type": event.get("type"),
                    "created": event.get("created"),
                }
                objects.append(obj)
            records, bad = self._records(stream, objects)
            newest = max(int(e.get("created", since)) for e in chunk)
            yield Page(records=records, cursor=json.dumps({"events": newest}), quarantined=bad)

    def _records(
        self,
        stream: str,
        objects: Sequence[Any],
        *,
        recent: dict[str, list[dict[str, Any]]] | None = None,
        horizon: int | None = None,
    ) -> tuple[tuple[SourceRecord, ...], tuple[tuple[str, str, dict[str, Any]], ...]]:
        """The objects as records, each with when it last changed and its earlier states.

        An object from the events feed changed at its event's time. A listed one carries the
        states Stripe can tell: an invoice's from its status transitions, back to its creation;
        a customer's or subscription's from its events of the last `retention_days` (each
        event's `previous_attributes` undone, newest first), back to its creation when that
        is within them, else from the oldest time the events cover (unknown before).
        """
        good: list[SourceRecord] = []
        bad: list[tuple[str, str, dict[str, Any]]] = []
        for obj in objects:
            if not isinstance(obj, dict) or not obj.get("id"):
                shown = obj if isinstance(obj, dict) else {"value": repr(obj)[:200]}
                bad.append(("", f"{stream}: an object without an id", shown))
                continue
            whole = self._with_every_item(obj) if stream == "subscriptions" else obj
            try:
                data = normalise(stream, whole)
            except (TypeError, ValueError, KeyError) as exc:
                bad.append(
                    (str(obj["id"]), f"{stream}: cannot read {type(exc).__name__}: {exc}", obj)
                )
                continue
            event = obj.get("_event") or {}
            history: tuple[Version, ...]
            if event.get("created"):
                changed, history, complete = from_unix(event["created"]), (), False
            elif stream == "invoices":
                changed, history, complete = invoice_states(data)
            else:
                changed, history, complete = listed_states(
                    stream, obj, (recent or {}).get(str(obj["id"]), []), horizon
                )
            good.append(
                SourceRecord(
                    source=self.source,
                    stream=stream,
                    record_id=str(obj["id"]),
                    data=data,
                    updated_at=changed,
                    history=history,
                    complete=complete,
                )
            )
        return tuple(good), tuple(bad)

    def _with_every_item(self, sub: dict[str, Any]) -> dict[str, Any]:
        """The subscription with all its items.

        Stripe embeds the first 10 (`has_more` says there are more), and the rest are paged
        from /v1/subscription_items. Without them the MRR of a subscription of many items
        would be short. A subscription gone since keeps what it embedded.
        """
        items = sub.get("items")
        if not isinstance(items, dict) or not items.get("has_more"):
            return sub
        rows: list[Any] = []
        after = None
        try:
            while True:
                params: list[tuple[str, Any]] = [("subscription", sub["id"]), ("limit", 100)]
                if after:
                    params.append(("starting_after", after))
                page = self._get("list subscription items", "/v1/subscription_items", params)
                data = [d for d in page.get("data") or [] if isinstance(d, dict)]
                rows += data
                if not page.get("has_more") or not data:
                    break
                after = data[-1].get("id")
        except FatalError as exc:
            if exc.status != 404:
                raise
            return sub
        return {**sub, "items": {**items, "data": rows, "has_more": False}}


def _state(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
    except ValueError:
        return None  # another connector's cursor: start over with a full list
    if isinstance(state, int | float) and not isinstance(state, bool):
        return {"events": int(state)}  # a bare timestamp
    return state if isinstance(state, dict) and "events" in state else None
