"""A loopback stand-in of Zendesk Support's reads: the cursor-based incremental ticket export
(with deleted tickets and the metric_sets sideload), the time-based organization export (pages
that overlap at their boundary), satisfaction ratings and ticket metrics with cursor pagination.

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

EXPORT_PAGE_MAX = 1000
LIST_PAGE_MAX = 100
INCREMENTAL_PER_MINUTE = 10
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")


class ZendeskError(Exception):
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


@dataclass
class ZendeskState:
    """Organizations, tickets (with their metrics) and ratings by id."""

    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)  # by ticket id
    ratings: dict[int, dict[str, Any]] = field(default_factory=dict)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    ) -> int:
        """A ticket with its metrics; its id may be given."""
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
                "requester_id": 1,
                "submitter_id": 1,
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
                "replies": 0,
                "assignee_stations": 0,
                "group_stations": 1,
                "reply_time_in_minutes": {"calendar": None, "business": None},
                "full_resolution_time_in_minutes": {"calendar": None, "business": None},
                "solved_at": None,
                "created_at": _iso(now),
                "updated_at": _iso(now),
            }
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
            ticket.update(changes)
            ticket["updated_at"] = _iso(now)
            ticket["generated_timestamp"] = int(now)
            metric["updated_at"] = _iso(now)

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
            "/api/v2/incremental/organizations": self._organization_export,
            "/api/v2/satisfaction_ratings": self._ratings,
            "/api/v2/ticket_metrics": self._metrics,
        }
        handler = routes.get(path)
        if method != "GET" or handler is None:
            raise ZendeskError(404, {"error": "InvalidEndpoint", "description": "Not found"})
        return 200, handler(params)

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
        per_page = min(int(params.get("per_page", EXPORT_PAGE_MAX)), EXPORT_PAGE_MAX)
        horizon = int(self.clock()) - 60  # the last minute is not exported
        if "cursor" in params:
            try:
                stamp, last_id = base64.b64decode(params["cursor"]).decode().split("|")
                after = (int(stamp), int(last_id))
            except (ValueError, UnicodeDecodeError):
                raise ZendeskError(
                    400, {"error": "InvalidCursor", "description": "cursor is not valid"}
                ) from None
        else:
            after = (self._start_time(params) - 1, 1 << 62)
        rows = sorted(
            (t for t in self.state.tickets.values() if t["generated_timestamp"] <= horizon),
            key=lambda t: (t["generated_timestamp"], t["id"]),
        )
        if params.get("exclude_deleted") == "true":
            rows = [t for t in rows if t["status"] != "deleted"]
        rows = [t for t in rows if (t["generated_timestamp"], t["id"]) > after]
        page = rows[:per_page]
        last = (page[-1]["generated_timestamp"], page[-1]["id"]) if page else after
        cursor = base64.b64encode(f"{last[0]}|{last[1]}".encode()).decode()
        out: dict[str, Any] = {
            "tickets": page,
            "after_cursor": cursor,
            "after_url": f"/api/v2/incremental/tickets/cursor.json?cursor={cursor}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": len(rows) <= per_page,
        }
        if "metric_sets" in params.get("include", "").split(","):
            out["metric_sets"] = [
                self.state.metrics[t["id"]] for t in page if t["id"] in self.state.metrics
            ]
        return out

    def _organization_export(self, params: dict[str, str]) -> dict[str, Any]:
        start = self._start_time(params)
        per_page = min(int(params.get("per_page", EXPORT_PAGE_MAX)), EXPORT_PAGE_MAX)
        horizon = int(self.clock()) - 60

        def stamp(o: dict[str, Any]) -> int:
            return int(datetime.fromisoformat(o["updated_at"].replace("Z", "+00:00")).timestamp())

        rows = sorted(
            (o for o in self.state.organizations.values() if start <= stamp(o) <= horizon),
            key=lambda o: (stamp(o), o["id"]),
        )
        page = rows[:per_page]
        end = stamp(page[-1]) if page else start
        # A page never splits one second: it runs on over every record stamped at its end (so a
        # next page starting there can advance), and the next page starts at end_time,
        # inclusive: records stamped then come again.
        page += [o for o in rows[per_page:] if stamp(o) == end]
        return {
            "organizations": page,
            "count": len(page),
            "end_time": end,
            "end_of_stream": len(rows) <= len(page),
            "next_page": f"/api/v2/incremental/organizations.json?start_time={end}",
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
        return self._cursor_list("satisfaction_ratings", rows, params)

    def _metrics(self, params: dict[str, str]) -> Any:
        return self._cursor_list("ticket_metrics", list(self.state.metrics.values()), params)


__all__ = ["ZendeskError", "ZendeskSandbox"]
