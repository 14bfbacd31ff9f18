"""Zendesk Support as a source, over httpx.

Tickets (with their metrics), users, organizations, ticket metric events (SLA breaches) and
satisfaction ratings.

Tickets and users come from the cursor-based incremental exports (`after_cursor` until
`end_of_stream`, saved after every page; deleted tickets arrive with `status: "deleted"`;
metrics sideloaded as `metric_sets` and emitted as the `ticket_metrics` stream's records; the
requesters sideloaded as `users`, so that a ticket without an organization still carries its
requester's email domain, `match_domain`, to join an account by). Each ticket carries its
earlier states, rebuilt from the ticket events export (its audits), so that its status and
priority are known as they were on each day. Organizations and ticket
metric events come from time-based exports, whose pages overlap at their boundary: records are
deduplicated within a sync and the store upserts across syncs. Ratings page by cursor from the
last `updated_at` seen.
Incremental exports allow 10 requests a minute: the budget paces them, and a 429 waits for its
`Retry-After` (60 s when absent); bodies that are not JSON are read as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from signalplay.connectors._http import AnswerError, translator
from signalplay.connectors._ratelimit import (
    Budget,
    RateLimitSettings,
    Window,
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import call_translated, parse_retry_after
from signalplay.errors import AuthError, FatalError, RetriableError, SyncError
from signalplay.models import Page, SourceRecord, StreamSpec, Version

EXPORT_WAIT_WITHOUT_HINT = 60.0  # a 429 on an export without Retry-After
STREAMS = (
    "tickets",
    "ticket_metrics",
    "users",
    "organizations",
    "ticket_metric_events",
    "satisfaction_ratings",
)


class ZendeskSettings(BaseModel):
    """A `zendesk` source block; the token comes from SIGNALPLAY_SOURCES__<NAME>__API_TOKEN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "zendesk"
    subdomain: str | None = None  # https://{subdomain}.zendesk.com, unless base_url is set
    base_url: str | None = None
    email: str
    api_token: SecretStr
    start_time: int = Field(default=0, ge=0)  # the first sync's start (Unix seconds)
    page_size: int = Field(default=1000, ge=1, le=1000)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retry_seconds: float = 300.0
    # Incremental exports: 10 requests a minute (30 with High Volume); the rest of the API
    # shares the account's budget per minute (Team 200 ... Enterprise 700).
    export_rate: RateLimitSettings = RateLimitSettings(windows=(Window(limit=10, seconds=60),))
    rate_limit: RateLimitSettings = RateLimitSettings(windows=(Window(limit=200, seconds=60),))

    def url(self) -> str:
        """The account's base URL."""
        if self.base_url:
            return self.base_url.rstrip("/")
        if not self.subdomain:
            raise ValueError("set subdomain or base_url")
        return f"https://{self.subdomain}.zendesk.com"


def _message(response: httpx.Response) -> str:
    """The error's text, from either JSON form or a plain-text body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list) and body["errors"]:
            first = body["errors"][0]
            return f"{first.get('code', '')}: {first.get('title', '')} {first.get('detail', '')}"
        return f"{body.get('error', '')}: {body.get('description') or body.get('detail') or ''}"
    return str(body)[:300]


def classify(response: httpx.Response, operation: str) -> SyncError:
    """429 and 5xx retriable (Retry-After, or a minute on exports), 401/403 auth, else fatal."""
    status, message = response.status_code, _message(response)
    if status == 429 or status >= 500:
        hint = parse_retry_after(response.headers.get("Retry-After"))
        if hint is None and status == 429 and "/incremental/" in str(response.request.url):
            hint = EXPORT_WAIT_WITHOUT_HINT
        return RetriableError("zendesk", operation, message, status=status, retry_after=hint)
    kind = AuthError if status in (401, 403) else FatalError
    return kind("zendesk", operation, message, status=status)


_TRANSLATE = translator("zendesk", classify)


def _with_requester(
    ticket: dict[str, Any], requester: dict[str, Any] | None, reopens: dict[Any, Any]
) -> dict[str, Any]:
    """The ticket with its reopen count (from its metric set) and its requester's email.

    When the ticket has no organization (its requester had none when it was opened),
    `match_domain` is the email's domain, for identity: requester domain → an account's domain.
    """
    email = requester.get("email") if requester else None
    orphan = ticket.get("organization_id") is None
    return {
        **ticket,
        "reopens": reopens.get(ticket.get("id")),
        "requester_email": email,
        "match_domain": email.rpartition("@")[2].lower() if orphan and email else None,
    }


EVENTS_PAGE = 1000  # ticket events per export page (the most Zendesk returns)


def _ticket_cursor(cursor: str | None) -> tuple[str | None, int | None]:
    """The tickets export's cursor and the ticket events export's time, from a saved cursor."""
    if not cursor:
        return None, None
    try:
        state = json.loads(cursor)
    except ValueError:
        return cursor, None  # a cursor saved before ticket events were read
    if isinstance(state, dict):
        events = state.get("events")
        return state.get("tickets"), int(events) if isinstance(events, int) else None
    return cursor, None


def _with_states(record: SourceRecord, events: Sequence[dict[str, Any]]) -> SourceRecord:
    """The ticket with the states its events show, oldest first (see `ticket_states`)."""
    if not events:
        return record
    history, complete = ticket_states(record.data, events)
    return record.model_copy(update={"history": history, "complete": complete})


def ticket_states(
    current: dict[str, Any], events: Sequence[dict[str, Any]]
) -> tuple[tuple[Version, ...], bool]:
    """A ticket's earlier states from its events (oldest first); whether they reach its creation.

    Walking back from the ticket as it is now, each event's changes are undone (a Change child
    event names the field, its old and its new value; real exports may key the new value by
    the field's own name, so both are read). A reopen (solved to open) undone lowers the
    ticket's reopen count. The state after the newest event is the current one, and it is
    kept (the store finds it equal to the current one); the Create event's state is the first.
    """
    state = dict(current)
    states: list[Version] = []
    complete = False
    for event in reversed(events):
        at = _event_time(event)
        if at is None:
            continue
        states.append(Version(valid_from=at, data=dict(state)))
        if event.get("event_type") == "Create":
            complete = True
            break
        for child in event.get("child_events") or ():
            if not isinstance(child, dict) or child.get("event_type") != "Change":
                continue
            name = child.get("field_name")
            if not isinstance(name, str) or name not in state:
                continue
            new = child.get("value", child.get(name))
            if name == "status" and new == "open" and child.get("previous_value") == "solved":
                state["reopens"] = max(0, int(state.get("reopens") or 0) - 1)
            state[name] = child.get("previous_value")
    states.reverse()
    return tuple(states), complete


def _event_time(event: dict[str, Any]) -> datetime | None:
    stamp = event.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(int(stamp), UTC)
    return _stamp(event.get("created_at"))


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class ZendeskConnector:
    """Tickets, their metrics, users, organizations, metric events and ratings, incrementally."""

    settings_model: ClassVar[type[BaseModel]] = ZendeskSettings

    def __init__(
        self,
        settings: ZendeskSettings,
        *,
        source: str = "support",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self._sleep, clock = pacing(sleep)
        base = settings.url()
        self.export_budget = make_budget(
            settings.export_rate, key=budget_key("zendesk-export", base), broker=broker, clock=clock
        )
        self.budget = make_budget(
            settings.rate_limit, key=budget_key("zendesk", base), broker=broker, clock=clock
        )
        self.requests = 0
        self.rate_limited = 0
        # The metric sets of this sync's ticket export; None: no export ran in this sync.
        self._pending_metrics: list[dict[str, Any]] | None = None
        self._http = httpx.Client(
            base_url=base,
            auth=(f"{settings.email}/token", settings.api_token.get_secret_value()),
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            transport=transport,
            trust_env=False,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def streams(self) -> Sequence[StreamSpec]:
        """Tickets (their metrics alongside), users, organizations, metric events and ratings."""
        return [
            StreamSpec(name="tickets", cursor_field="generated_timestamp"),
            StreamSpec(name="ticket_metrics", primary_key="ticket_id", cursor_field="updated_at"),
            StreamSpec(name="users", cursor_field="updated_at"),
            StreamSpec(name="organizations", cursor_field="updated_at"),
            StreamSpec(name="ticket_metric_events", cursor_field="time"),
            StreamSpec(name="satisfaction_ratings", cursor_field="updated_at"),
        ]

    def _get(self, operation: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        export = "/incremental/" in path
        budget: Budget | None = self.export_budget if export else self.budget

        def once() -> dict[str, Any]:
            self.requests += 1
            response = self._http.get(path, params=params)
            if response.status_code == 429:
                self.rate_limited += 1
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
            budget=budget,
        )

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Pages since `cursor`; each page's cursor resumes after it."""
        readers: dict[str, Callable[[str | None], Iterator[Page]]] = {
            "tickets": self._tickets,
            "ticket_metrics": self._metrics,
            "users": self._users,
            "organizations": lambda c: self._time_export("organizations", c, "updated_at"),
            "ticket_metric_events": lambda c: self._time_export("ticket_metric_events", c, "time"),
            "satisfaction_ratings": self._ratings,
        }
        yield from readers[stream](cursor)

    def _record(self, stream: str, key: str, data: dict[str, Any], updated: Any) -> SourceRecord:
        return SourceRecord(
            source=self.source,
            stream=stream,
            record_id=str(data[key]),
            data=data,
            updated_at=_stamp(updated)
            if not isinstance(updated, int)
            else datetime.fromtimestamp(updated, UTC),
        )

    def _split(
        self, stream: str, key: str, rows: Sequence[Any], stamp: str
    ) -> tuple[list[SourceRecord], list[tuple[str, str, dict[str, Any]]]]:
        good: list[SourceRecord] = []
        bad: list[tuple[str, str, dict[str, Any]]] = []
        for row in rows:
            if not isinstance(row, dict) or row.get(key) is None:
                shown = row if isinstance(row, dict) else {"value": repr(row)[:200]}
                bad.append(("", f"{stream}: a record without {key}", shown))
                continue
            good.append(self._record(stream, key, row, row.get(stamp)))
        return good, bad

    def _tickets(self, cursor: str | None) -> Iterator[Page]:
        """Tickets changed since `cursor`, each with its earlier states from its audits.

        The ticket events export (each update of a ticket: the fields it changed, old and new
        values, and a Create event with the first ones) is read from where the last sync left
        it, then the tickets export; a ticket's states are rebuilt from its events, back to its
        creation when the Create event is among them. The cursor holds both positions.
        """
        inner, since = _ticket_cursor(cursor)
        audits, events_end = self._ticket_events(since if since is not None else None)
        self._pending_metrics = pending = []

        def enrich(page: dict[str, Any]) -> list[Any]:
            metrics = [m for m in page.get("metric_sets") or [] if isinstance(m, dict)]
            pending.extend(metrics)
            reopens = {m.get("ticket_id"): m.get("reopens") for m in metrics}
            users = {u.get("id"): u for u in page.get("users") or [] if isinstance(u, dict)}
            return [
                _with_requester(t, users.get(t.get("requester_id")), reopens)
                if isinstance(t, dict)
                else t
                for t in page.get("tickets") or []
            ]

        for page in self._cursor_export(
            "tickets", inner, "generated_timestamp", "metric_sets,users", enrich
        ):
            records = tuple(_with_states(r, audits.get(r.record_id, ())) for r in page.records)
            yield Page(
                records=records,
                cursor=json.dumps({"tickets": page.cursor, "events": events_end}),
                quarantined=page.quarantined,
            )

    def _ticket_events(self, since: int | None) -> tuple[dict[str, list[dict[str, Any]]], int]:
        """Every ticket event from `since` on, by ticket, oldest first; and where it ended."""
        by_ticket: dict[str, list[dict[str, Any]]] = {}
        start = since if since is not None else self.settings.start_time
        seen: set[str] = set()
        while True:
            page = self._get(
                "export ticket_events",
                "/api/v2/incremental/ticket_events.json",
                {"start_time": start, "per_page": EVENTS_PAGE},
            )
            for event in page.get("ticket_events") or []:
                if not isinstance(event, dict) or str(event.get("id")) in seen:
                    continue  # pages overlap at their boundary
                seen.add(str(event.get("id")))
                by_ticket.setdefault(str(event.get("ticket_id")), []).append(event)
            end = int(page.get("end_time") or start)
            if page.get("end_of_stream", True):
                break
            start = end if end > start else start + 1
        for events in by_ticket.values():
            events.sort(key=lambda e: (int(e.get("timestamp") or 0), str(e.get("id"))))
        return by_ticket, end

    def _users(self, cursor: str | None) -> Iterator[Page]:
        yield from self._cursor_export(
            "users", cursor, "updated_at", None, lambda page: list(page.get("users") or [])
        )

    def _cursor_export(
        self,
        stream: str,
        cursor: str | None,
        stamp: str,
        include: str | None,
        rows_of: Callable[[dict[str, Any]], list[Any]],
    ) -> Iterator[Page]:
        """A cursor-based incremental export, its cursor saved after every page."""
        base: dict[str, Any] = {"per_page": self.settings.page_size}
        if include:
            base["include"] = include
        if cursor and not cursor.isdigit():
            params = {**base, "cursor": cursor}
        else:
            params = {**base, "start_time": self.settings.start_time}
        path = f"/api/v2/incremental/{stream}/cursor.json"
        while True:
            page = self._get(f"export {stream}", path, params)
            good, bad = self._split(stream, "id", rows_of(page), stamp)
            after = page.get("after_cursor") or params.get("cursor")
            yield Page(records=tuple(good), cursor=after, quarantined=tuple(bad))
            if page.get("end_of_stream", True) or not page.get("after_cursor"):
                return
            params = {**base, "cursor": after}

    def _metrics(self, cursor: str | None) -> Iterator[Page]:
        """The metrics sideloaded with the tickets just exported, one per ticket.

        A metric change is a ticket change, so there are none when no ticket changed; without
        a ticket export in this sync, the ticket_metrics list from `cursor` (updated_at) on.
        """
        if self._pending_metrics is not None:
            rows, self._pending_metrics = self._pending_metrics, None
            good, bad = self._split("ticket_metrics", "ticket_id", rows, "updated_at")
            newest = max((str(r.data.get("updated_at") or "") for r in good), default=cursor or "")
            yield Page(records=tuple(good), cursor=newest or cursor, quarantined=tuple(bad))
            return
        yield from self._cursor_list(
            "ticket_metrics", "/api/v2/ticket_metrics.json", cursor, "ticket_id"
        )

    def _time_export(self, stream: str, cursor: str | None, stamp: str) -> Iterator[Page]:
        """A time-based incremental export from `cursor` (its last `end_time`) on."""
        start = int(cursor) if cursor and cursor.isdigit() else self.settings.start_time
        seen: dict[str, str] = {}
        while True:
            page = self._get(
                f"export {stream}",
                f"/api/v2/incremental/{stream}.json",
                {"start_time": start, "per_page": self.settings.page_size},
            )
            rows = [
                r
                for r in page.get(stream) or []
                if not (isinstance(r, dict) and seen.get(str(r.get("id"))) == r.get(stamp))
            ]  # pages overlap at their boundary: drop what this sync already has
            good, bad = self._split(stream, "id", rows, stamp)
            seen.update({r.record_id: str(r.data.get(stamp)) for r in good})
            end = int(page.get("end_time") or start)
            yield Page(records=tuple(good), cursor=str(end), quarantined=tuple(bad))
            if page.get("end_of_stream", True):
                return
            # A page that did not advance held every record of its second (the export never
            # splits one): go on from the next second instead of asking for it again.
            start = end if end > start else start + 1

    def _ratings(self, cursor: str | None) -> Iterator[Page]:
        yield from self._cursor_list(
            "satisfaction_ratings", "/api/v2/satisfaction_ratings.json", cursor, "id"
        )

    def _cursor_list(self, stream: str, path: str, cursor: str | None, key: str) -> Iterator[Page]:
        """A `page[size]` list (newest first) read whole.

        Only records updated at or after the cursor (an ISO time) are kept; the new cursor
        is the newest `updated_at`.
        """
        base: dict[str, Any] = {"page[size]": 100}
        since = _stamp(cursor)
        if stream == "satisfaction_ratings" and since is not None:
            base["start_time"] = int(since.timestamp())
        params = dict(base)
        newest = cursor or ""
        while True:
            page = self._get(f"list {stream}", path, params)
            rows = [
                r
                for r in page.get(stream) or []
                if not cursor or str(r.get("updated_at", "")) >= cursor
            ]
            good, bad = self._split(stream, key, rows, "updated_at")
            newest = max([newest, *(str(r.data.get("updated_at") or "") for r in good)])
            meta = page.get("meta") or {}
            more = bool(meta.get("has_more")) and meta.get("after_cursor")
            yield Page(records=tuple(good), cursor=newest or None, quarantined=tuple(bad))
            if not more:
                return
            params = {**base, "page[after]": meta["after_cursor"]}
