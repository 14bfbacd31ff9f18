"""A loopback stand-in of Zendesk Support's reads.

The cursor-based incremental exports of tickets (with deleted tickets and the metric_sets and users
sideloads) and users, the time-based exports of organizations (pages that overlap at their boundary)
ticket metric events (SLA breaches among them) and ticket events (each ticket's audits: a Create
event with its first values, a Change per field an update changed), their `/sample` forms (at
most 50 items), and satisfaction ratings, ticket metrics and users as lists with cursor
pagination (`page[size]`) or offset pagination (`page`, `per_page`; the first 100 pages only).

Paths answer with and without `.json`; Basic (`email/token:token`) and Bearer auth; nothing from
the last minute before now is exported; incremental endpoints allow 10 requests a minute and
answer 429 with `Retry-After` (or, switchable, a plain-text body or no header at all). The clock
is injectable, so a test can move time instead of waiting. Imports: stdlib.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from signalplay.errors import SignalplayError

EXPORT_PAGE_MAX = 1000
LIST_PAGE_MAX = 100
OFFSET_PAGES_MAX = 100  # offset pagination stops at the first 10,000 records (100 pages)
SAMPLE_MAX = 50
INCREMENTAL_PER_MINUTE = 10
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")


class ZendeskError(SignalplayError):
    """An error answer (JSON in one of Zendesk's two forms, or plain text)."""

    def __init__(
        self, status: int, body: Any, *, headers: dict[str, str] | None = None, text: bool = False
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text


@dataclass
class Logged:
    """One request the stand-in answered."""

    method: str
    path: str
    query: str
    status: int


AUDITED = ("status", "priority", "type", "tags", "group_id", "assignee_id")  # fields audits show


@dataclass
class ZendeskState:
    """Organizations, users, tickets (with their metrics and metric events) and ratings by id."""

    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    metric_events: list[dict[str, Any]] = field(default_factory=list)
    ticket_events: list[dict[str, Any]] = field(default_factory=list)  # each ticket's audits
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)  # by ticket id
    ratings: dict[int, dict[str, Any]] = field(default_factory=dict)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


class ZendeskSandbox:
    """The WSGI app; `clock` is Unix seconds."""

    def __init__(
        self,
        *,
        email: str = "admin@vendor.example",
        token: str = "zd-sandbox-token",  # noqa: S107 - the stand-in's own
        clock: Callable[[], float] = time.time,
        incremental_per_minute: int = INCREMENTAL_PER_MINUTE,
        retry_after: int = 60,
    ) -> None:
        self.email = email
        self.token = token
        self.clock = clock
        self.incremental_per_minute = incremental_per_minute
        self.retry_after = retry_after
        self.limit_style = "json"  # or "text" (plain-text 429 body), "bare" (no Retry-After)
        self.state = ZendeskState()
        self.requests: list[Logged] = []
        self.rate_limited = 0
        self.faults: list[tuple[int, int, str]] = []  # (status, times, path part)
        self._window: deque[float] = deque()
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()

    # ---- seeding and changes ---------------------------------------------------------------
    def add_organization(
        self,
        name: str,
        *,
        external_id: str | None = None,
        domains: tuple[str, ...] = (),
        org_id: int | None = None,
    ) -> int:
        """An organization (exported from its `updated_at` on); its id may be given."""
        with self._lock:
            oid = org_id if org_id is not None else next(self._ids)
            now = self.clock()
            self.state.organizations[oid] = {
                "id": oid,
                "url": f"https://sandbox.zendesk.com/api/v2/organizations/{oid}.json",
                "name": name,
                "external_id": external_id,
                "domain_names": list(domains),
                "tags": [],
                "group_id": None,
                "organization_fields": {},
                "shared_tickets": False,
                "shared_comments": False,
                "details": None,
                "notes": None,
                "created_at": _iso(now),
                "updated_at": _iso(now),
                "deleted_at": None,
            }
            return oid

    def add_user(
        self,
        name: str,
        email: str | None,
        *,
        organization: int | None = None,
        role: str = "end-user",
        user_id: int | None = None,
    ) -> int:
        """A user (exported from its `updated_at` on); its id may be given."""
        with self._lock:
            uid = user_id if user_id is not None else next(self._ids)
            now = _iso(self.clock())
            self.state.users[uid] = {
                "id": uid,
                "url": f"https://sandbox.zendesk.com/api/v2/users/{uid}.json",
                "name": name,
                "email": email,
                "phone": None,
                "external_id": None,
                "organization_id": organization,
                "role": role,
                "role_type": None,
                "custom_role_id": None,
                "default_group_id": None,
                "active": True,
                "suspended": False,
                "verified": True,
                "shared": False,
                "shared_agent": False,
                "moderator": False,
                "restricted_agent": role == "end-user",
                "ticket_restriction": "requested" if role == "end-user" else None,
                "only_private_comments": False,
                "tags": [],
                "user_fields": {},
                "time_zone": "UTC",
                "iana_time_zone": "Etc/UTC",
                "locale": "en-US",
                "locale_id": 1,
                "alias": None,
                "details": None,
                "notes": None,
                "signature": None,
                "photo": None,
                "last_login_at": None,
                "created_at": now,
                "updated_at": now,
            }
            return uid

    def update_user(self, uid: int, **changes: Any) -> None:
        """Change a user's fields (a deleted user stays, with `active: false`)."""
        with self._lock:
            self.state.users[uid].update(changes, updated_at=_iso(self.clock()))

    def metric_event(self, tid: int, kind: str, metric: str = "reply_time") -> int:
        """A ticket metric event (`breach`, `activate`, `fulfill`, ...) at the clock's time."""
        with self._lock:
            eid = next(self._ids)
            self.state.metric_events.append(
                {
                    "id": eid,
                    "ticket_id": tid,
                    "metric": metric,
                    "instance_id": 1,
                    "type": kind,
                    "time": _iso(self.clock()),
                    "deleted": False,
                }
            )
            return eid

    def add_ticket(
        self,
        organization: int | None,
        *,
        subject: str,
        priority: str | None = "normal",
        status: str = "open",
        tags: tuple[str, ...] = (),
        ticket_id: int | None = None,
        reopens: int = 0,
        requester: int = 1,
        reply_minutes: int | None = None,
        resolution_minutes: int | None = None,
    ) -> int:
        """Add a ticket with its metrics; its reply and resolution times and id may be given."""
        with self._lock:
            tid = ticket_id if ticket_id is not None else next(self._ids)
            now = self.clock()
            self.state.tickets[tid] = {
                "id": tid,
                "url": f"https://sandbox.zendesk.com/api/v2/tickets/{tid}.json",
                "external_id": None,
                "type": "incident" if priority == "urgent" else "question",
                "subject": subject,
                "raw_subject": subject,
                "description": subject,
                "priority": priority,
                "status": status,
                "requester_id": requester,
                "submitter_id": requester,
                "assignee_id": None,
                "organization_id": organization,
                "group_id": None,
                "brand_id": 1,
                "tags": list(tags),
                "custom_fields": [],
                "satisfaction_rating": None,
                "is_public": True,
                "due_at": None,
                "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": _iso(now),
                "updated_at": _iso(now),
                "generated_timestamp": int(now),
            }
            self.state.metrics[tid] = {
                "id": next(self._ids),
                "ticket_id": tid,
                "url": f"https://sandbox.zendesk.com/api/v2/ticket_metrics/{tid}.json",
                "reopens": reopens,
                "replies": 0 if reply_minutes is None else 1 + reopens,
                "assignee_stations": 0,
                "group_stations": 1,
                "reply_time_in_minutes": {"calendar": reply_minutes, "business": reply_minutes},
                "full_resolution_time_in_minutes": {
                    "calendar": resolution_minutes,
                    "business": resolution_minutes,
                },
                "solved_at": None,
                "created_at": _iso(now),
                "updated_at": _iso(now),
            }
            self._audit(tid, "Create", {f: (None, self.state.tickets[tid][f]) for f in AUDITED})
        self.metric_event(tid, "activate", "reply_time")
        return tid

    def update_ticket(self, tid: int, **changes: Any) -> None:
        """Change fields; reopening a solved ticket counts in its metrics' `reopens`."""
        with self._lock:
            ticket, metric = self.state.tickets[tid], self.state.metrics[tid]
            now = self.clock()
            if ticket["status"] == "solved" and changes.get("status") == "open":
                metric["reopens"] += 1
            if changes.get("status") == "solved":
                metric["solved_at"] = _iso(now)
                self.metric_event(tid, "fulfill", "resolution_time")
            changed = {
                f: (ticket.get(f), v)
                for f, v in changes.items()
                if f in AUDITED and ticket.get(f) != v
            }
            ticket.update(changes)
            if changed:
                self._audit(tid, "Audit", changed)
            ticket["updated_at"] = _iso(now)
            ticket["generated_timestamp"] = int(now)
            metric["updated_at"] = _iso(now)

    def _audit(self, tid: int, kind: str, changes: dict[str, tuple[Any, Any]]) -> None:
        """One update of a ticket, as the ticket events export shows it (lock held)."""
        now = self.clock()
        child = "Create" if kind == "Create" else "Change"
        self.state.ticket_events.append(
            {
                "id": next(self._ids),
                "ticket_id": tid,
                "timestamp": int(now),
                "created_at": _iso(now),
                "updater_id": self.state.tickets[tid]["requester_id"],
                "via": "Web form",
                "system": {},
                "metadata": {},
                "event_type": kind,
                "child_events": [
                    {
                        "id": next(self._ids),
                        "via": "Web form",
                        "via_reference_id": None,
                        "event_type": child,
                        "field_name": name,
                        "value": new,
                        **({} if kind == "Create" else {"previous_value": old}),
                    }
                    for name, (old, new) in changes.items()
                ],
            }
        )

    def delete_ticket(self, tid: int) -> None:
        """Deleted: exported with `status: "deleted"`; its metrics are gone (404)."""
        self.update_ticket(tid, status="deleted")
        with self._lock:
            self.state.metrics.pop(tid, None)

    def rate(self, tid: int, score: str, comment: str = "") -> int:
        """A satisfaction rating on a ticket (also shown on the ticket)."""
        with self._lock:
            rid = next(self._ids)
            now = self.clock()
            rating = {
                "id": rid,
                "url": f"https://sandbox.zendesk.com/api/v2/satisfaction_ratings/{rid}.json",
                "ticket_id": tid,
                "requester_id": 1,
                "assignee_id": None,
                "group_id": None,
                "score": score,
                "comment": comment,
                "reason": None,
                "created_at": _iso(now),
                "updated_at": _iso(now),
            }
            self.state.ratings[rid] = rating
        self.update_ticket(tid, satisfaction_rating={"id": rid, "score": score, "comment": comment})
        return rid

    def fail_next(self, status: int, *, times: int = 1, path_contains: str = "") -> None:
        """Answer the next matching requests with `status`."""
        with self._lock:
            self.faults.append((status, times, path_contains))

    # ---- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer one request."""
        path = environ.get("PATH_INFO", "").removesuffix(".json")
        query = environ.get("QUERY_STRING", "")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with self._lock:
            try:
                self._admit(environ, path)
                status, body = self._route(environ["REQUEST_METHOD"], path, query)
                text = json.dumps(body).encode()
            except ZendeskError as exc:
                status = exc.status
                headers.update(exc.headers)
                if exc.text:
                    headers["Content-Type"] = "text/plain; charset=utf-8"
                    text = str(exc.body).encode()
                else:
                    text = json.dumps(exc.body).encode()
            self.requests.append(Logged(environ["REQUEST_METHOD"], path, query, status))
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [*headers.items(), ("Content-Length", str(len(text)))],
        )
        return [text]

    def _admit(self, environ: dict[str, Any], path: str) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        basic = "Basic " + base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        if auth not in (basic, f"Bearer {self.token}"):
            raise ZendeskError(401, {"error": "Couldn't authenticate you"})
        for i, (status, times, part) in enumerate(self.faults):
            if times > 0 and part in path:
                self.faults[i] = (status, times - 1, part)
                raise ZendeskError(status, {"error": "InternalError", "description": "injected"})
        if "/incremental/" in path:
            now = self.clock()
            while self._window and now - self._window[0] >= 60:
                self._window.popleft()
            if len(self._window) >= self.incremental_per_minute:
                self.rate_limited += 1
                wait = int(60 - (now - self._window[0])) + 1
                extra = {} if self.limit_style == "bare" else {"Retry-After": str(wait)}
                if self.limit_style == "text":
                    raise ZendeskError(
                        429,
                        "Number of allowed API requests per minute exceeded: 0",
                        headers=extra,
                        text=True,
                    )
                raise ZendeskError(
                    429,
                    {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
                    headers=extra,
                )
            self._window.append(now)

    def _route(self, method: str, path: str, query: str) -> tuple[int, Any]:
        params = dict(parse_qsl(query, keep_blank_values=True))
        routes: dict[str, Callable[[dict[str, str]], Any]] = {
            "/api/v2/incremental/tickets/cursor": self._ticket_export,
            "/api/v2/incremental/users/cursor": self._user_export,
            "/api/v2/incremental/organizations": self._organization_export,
            "/api/v2/incremental/ticket_metric_events": self._metric_event_export,
            "/api/v2/incremental/ticket_events": lambda p: self._time_export(
                "ticket_events", list(self.state.ticket_events), "created_at", p, EXPORT_PAGE_MAX
            ),
            "/api/v2/incremental/tickets/sample": lambda p: self._sample("tickets", p),
            "/api/v2/incremental/users/sample": lambda p: self._sample("users", p),
            "/api/v2/incremental/organizations/sample": lambda p: self._sample("organizations", p),
            "/api/v2/satisfaction_ratings": self._ratings,
            "/api/v2/ticket_metrics": self._metrics,
            "/api/v2/users": lambda p: self._list("users", list(self.state.users.values()), p),
        }
        handler = routes.get(path)
        if method == "GET" and handler is None and path.startswith("/api/v2/users/"):
            handler = self._user
            params["id"] = path.rsplit("/", 1)[1]
        if method != "GET" or handler is None:
            raise ZendeskError(404, {"error": "InvalidEndpoint", "description": "Not found"})
        return 200, handler(params)

    def _user(self, params: dict[str, str]) -> dict[str, Any]:
        user = self.state.users.get(int(params["id"])) if params["id"].isdigit() else None
        if user is None:
            raise ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})
        return {"user": user}

    def _start_time(self, params: dict[str, str]) -> int:
        try:
            start = int(params["start_time"])
        except (KeyError, ValueError):
            raise ZendeskError(
                400, {"error": "InvalidValue", "description": "start_time is required"}
            ) from None
        if start > self.clock() - 60:
            raise ZendeskError(
                422,
                {
                    "error": "InvalidValue",
                    "description": "Too recent start_time. Use a start_time older than 1 minute",
                },
            )
        return start

    def _ticket_export(self, params: dict[str, str]) -> dict[str, Any]:
        rows = list(self.state.tickets.values())
        if params.get("exclude_deleted") == "true":
            rows = [t for t in rows if t["status"] != "deleted"]
        out = self._cursor_export("tickets", rows, lambda t: t["generated_timestamp"], params)
        page = out["tickets"]
        include = params.get("include", "").split(",")
        if "metric_sets" in include:
            out["metric_sets"] = [
                self.state.metrics[t["id"]] for t in page if t["id"] in self.state.metrics
            ]
        if "users" in include:
            ids = sorted({t["requester_id"] for t in page} & self.state.users.keys())
            out["users"] = [self.state.users[i] for i in ids]
        return out

    def _user_export(self, params: dict[str, str]) -> dict[str, Any]:
        rows = list(self.state.users.values())
        return self._cursor_export("users", rows, lambda u: _seconds(u["updated_at"]), params)

    def _cursor_export(
        self,
        key: str,
        rows: list[dict[str, Any]],
        stamp: Callable[[dict[str, Any]], int],
        params: dict[str, str],
    ) -> dict[str, Any]:
        per_page = min(int(params.get("per_page", EXPORT_PAGE_MAX)), EXPORT_PAGE_MAX)
        horizon = int(self.clock()) - 60  # the last minute is not exported
        if "cursor" in params:
            try:
                at, last_id = base64.b64decode(params["cursor"]).decode().split("|")
                after = (int(at), int(last_id))
            except (ValueError, UnicodeDecodeError):
                raise ZendeskError(
                    400, {"error": "InvalidCursor", "description": "cursor is not valid"}
                ) from None
        else:
            after = (self._start_time(params) - 1, 1 << 62)
        ordered = sorted(
            ((stamp(r), r["id"], r) for r in rows if stamp(r) <= horizon),
            key=lambda x: (x[0], x[1]),
        )
        ordered = [x for x in ordered if (x[0], x[1]) > after]
        page = ordered[:per_page]
        last = (page[-1][0], page[-1][1]) if page else after
        cursor = base64.b64encode(f"{last[0]}|{last[1]}".encode()).decode()
        return {
            key: [x[2] for x in page],
            "after_cursor": cursor,
            "after_url": f"/api/v2/incremental/{key}/cursor.json?cursor={cursor}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": len(ordered) <= per_page,
        }

    def _organization_export(self, params: dict[str, str]) -> dict[str, Any]:
        rows = list(self.state.organizations.values())
        return self._time_export("organizations", rows, "updated_at", params, EXPORT_PAGE_MAX)

    def _metric_event_export(self, params: dict[str, str]) -> dict[str, Any]:
        rows = list(self.state.metric_events)
        return self._time_export("ticket_metric_events", rows, "time", params, EXPORT_PAGE_MAX)

    def _time_export(
        self,
        key: str,
        rows: list[dict[str, Any]],
        field_name: str,
        params: dict[str, str],
        page_max: int,
    ) -> dict[str, Any]:
        start = self._start_time(params)
        per_page = min(int(params.get("per_page", page_max)), page_max)
        horizon = int(self.clock()) - 60
        ordered = sorted(
            ((_seconds(r[field_name]), r["id"], r) for r in rows),
            key=lambda x: (x[0], x[1]),
        )
        ordered = [x for x in ordered if start <= x[0] <= horizon]
        page = ordered[:per_page]
        end = page[-1][0] if page else start
        # A page never splits one second: it runs on over every record stamped at its end (so a
        # next page starting there can advance), and the next page starts at end_time,
        # inclusive: records stamped then come again.
        page += [x for x in ordered[per_page:] if x[0] == end]
        return {
            key: [x[2] for x in page],
            "count": len(page),
            "end_time": end,
            "end_of_stream": len(ordered) <= len(page),
            "next_page": f"/api/v2/incremental/{key}.json?start_time={end}",
        }

    def _sample(self, key: str, params: dict[str, str]) -> dict[str, Any]:
        """`/incremental/{key}/sample`: the time-based export's first page, at most 50 items."""
        stamp = {"tickets": "updated_at", "users": "updated_at", "organizations": "updated_at"}
        rows = list(getattr(self.state, key).values())
        out = self._time_export(key, rows, stamp[key], params, SAMPLE_MAX)
        out[key] = out[key][:SAMPLE_MAX]
        out["count"] = len(out[key])
        return out

    def _list(self, key: str, rows: list[dict[str, Any]], params: dict[str, str]) -> Any:
        """Cursor pagination with `page[size]`; offset pagination with `page` (or neither)."""
        if "page[size]" in params or "page[after]" in params:
            return self._cursor_list(key, rows, params)
        return self._offset_list(key, rows, params)

    def _offset_list(self, key: str, rows: list[dict[str, Any]], params: dict[str, str]) -> Any:
        try:
            number = int(params.get("page", "1"))
            per_page = min(int(params.get("per_page", LIST_PAGE_MAX)), LIST_PAGE_MAX)
        except ValueError:
            raise ZendeskError(
                400, {"error": "InvalidPaginationParameter", "description": "page must be a number"}
            ) from None
        if number > OFFSET_PAGES_MAX:
            raise ZendeskError(
                400,
                {
                    "error": "InvalidPaginationParameter",
                    "description": "Offset pagination is limited to the first 100 pages. "
                    "Use cursor-based pagination instead.",
                },
            )
        rows = sorted(rows, key=lambda r: r["id"], reverse=True)
        start = (max(number, 1) - 1) * per_page
        page = rows[start : start + per_page]
        more = start + per_page < len(rows) and number < OFFSET_PAGES_MAX
        base = f"/api/v2/{key}.json?per_page={per_page}&page="
        return {
            key: page,
            "count": len(rows),
            "next_page": f"{base}{number + 1}" if more else None,
            "previous_page": f"{base}{number - 1}" if number > 1 else None,
        }

    def _cursor_list(self, key: str, rows: list[dict[str, Any]], params: dict[str, str]) -> Any:
        size = min(int(params.get("page[size]", LIST_PAGE_MAX)), LIST_PAGE_MAX)
        rows = sorted(rows, key=lambda r: r["id"], reverse=True)  # newest first
        start = 0
        if "page[after]" in params:
            after = int(base64.b64decode(params["page[after]"]).decode())
            start = next((i + 1 for i, r in enumerate(rows) if r["id"] == after), len(rows))
        page = rows[start : start + size]
        more = start + size < len(rows)
        after_cursor = base64.b64encode(str(page[-1]["id"]).encode()).decode() if page else None
        return {
            key: page,
            "meta": {"has_more": more, "after_cursor": after_cursor, "before_cursor": None},
            "links": {
                "next": f"/api/v2/{key}.json?page[size]={size}&page[after]={after_cursor}"
                if more
                else None,
                "prev": None,
            },
        }

    def _ratings(self, params: dict[str, str]) -> Any:
        rows = list(self.state.ratings.values())
        if "start_time" in params:
            since = int(params["start_time"])
            rows = [
                r
                for r in rows
                if datetime.fromisoformat(r["updated_at"].replace("Z", "+00:00")).timestamp()
                >= since
            ]
        if "score" in params:
            rows = [r for r in rows if r["score"] == params["score"]]
        return self._list("satisfaction_ratings", rows, params)

    def _metrics(self, params: dict[str, str]) -> Any:
        return self._list("ticket_metrics", list(self.state.metrics.values()), params)


__all__ = ["ZendeskError", "ZendeskSandbox"]
