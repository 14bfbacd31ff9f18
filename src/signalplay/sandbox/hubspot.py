"""A loopback stand-in of the HubSpot CRM API, as hubspot-api-client 12.0.0 sees it.

Shapes, status codes, caps and error bodies follow the client contract and HubSpot's docs:
list paging with no `paging` key on the last page, batch caps of 100 inputs, 201 for creates,
207 with `errors` for partial failures, `hasUniqueValue` properties as upsert keys, 401 without a
bearer token, a rolling 10-second rate limit with the X-HubSpot-RateLimit-* headers and the
documented 429 body. Faults are API: `fail_next`. State can persist to a JSON file.
Imports: stdlib.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from signalplay.errors import SignalplayError

BATCH_CAP = 100  # inputs per batch call (developers.hubspot.com: batch endpoints)
LIST_CAP = 100  # results per list page
ASSOC_READ_CAP = 1000  # inputs per v4 association batch read (changelog 2025-02-10)
HISTORY_CAP = 50  # results per list page and inputs per batch read with propertiesWithHistory
SEARCH_PAGE_CAP = 200  # results per search page
SEARCH_TOTAL_CAP = 10_000  # results per search query; paging past it is a 400
TEN_SECONDLY = 190  # Pro private app, requests per rolling 10 s
DAILY = 625_000

TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "tasks": "0-27"}
TYPE_BY_ID = {v: k for k, v in TYPE_IDS.items()}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal", "tasks": "task"}
LASTMOD = {"contacts": "lastmodifieddate"}

# (from, to) → default HUBSPOT_DEFINED type id, and the inverse of each id.
DEFAULT_ASSOC = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("tasks", "companies"): 192,
    ("companies", "tasks"): 191,
    ("tasks", "contacts"): 204,
    ("contacts", "tasks"): 203,
    ("tasks", "deals"): 216,
    ("deals", "tasks"): 215,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
}
KNOWN_ASSOC = {
    **{v: k for k, v in DEFAULT_ASSOC.items()},
    1: ("contacts", "companies"),
    2: ("companies", "contacts"),
    5: ("deals", "companies"),
    6: ("companies", "deals"),
}
INVERSE = {
    1: 2,
    2: 1,
    5: 6,
    6: 5,
    279: 280,
    280: 279,
    341: 342,
    342: 341,
    192: 191,
    191: 192,
    204: 203,
    203: 204,
    216: 215,
    215: 216,
    3: 4,
    4: 3,
}


def _prop(
    name: str,
    ptype: str = "string",
    field_type: str = "text",
    options: Iterable[str] = (),
    *,
    unique: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.replace("_", " ").title(),
        "type": ptype,
        "fieldType": field_type,
        "groupName": "signalplay" if name.startswith(("signalplay_", "cs_")) else "default",
        "description": "",
        "hasUniqueValue": unique,
        "hidden": False,
        "formField": False,
        "calculated": False,
        "externalOptions": False,
        "displayOrder": -1,
        "options": [
            {"label": o.title(), "value": o, "displayOrder": i, "hidden": False}
            for i, o in enumerate(options)
        ],
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
    }


def _default_properties() -> dict[str, dict[str, dict[str, Any]]]:
    common = ["hs_object_id", "createdate", "hubspot_owner_id"]
    base = {
        "companies": [
            *common,
            "hs_lastmodifieddate",
            "name",
            "domain",
            "industry",
            "annualrevenue",
            "numberofemployees",
            "lifecyclestage",
        ],
        "contacts": [
            *common,
            "lastmodifieddate",
            "email",
            "firstname",
            "lastname",
            "jobtitle",
            "phone",
            "lifecyclestage",
            "notes_last_contacted",
        ],
        "deals": [
            *common,
            "hs_lastmodifieddate",
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "dealtype",
            "hs_is_closed",
            "hs_is_closed_won",
        ],
        "tasks": [
            *common,
            "hs_lastmodifieddate",
            "hs_timestamp",
            "hs_task_subject",
            "hs_task_body",
            "hs_task_completion_date",
            "hs_task_reminders",
        ],
    }
    props = {t: {n: _prop(n) for n in names} for t, names in base.items()}
    props["contacts"]["email"]["hasUniqueValue"] = True
    props["tasks"]["hs_task_status"] = _prop(
        "hs_task_status",
        "enumeration",
        "select",
        ["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"],
    )
    props["tasks"]["hs_task_priority"] = _prop(
        "hs_task_priority", "enumeration", "select", ["NONE", "LOW", "MEDIUM", "HIGH"]
    )
    props["tasks"]["hs_task_type"] = _prop(
        "hs_task_type", "enumeration", "select", ["TODO", "CALL", "EMAIL", "LINKED_IN", "MEETING"]
    )
    return props


CLOSED_STAGES = frozenset({"closedwon", "closedlost"})  # the default sales pipeline


def _deal_flags(props: dict[str, Any]) -> None:
    """HubSpot's calculated closed/won flags of a deal, from its stage ("true"/"false")."""
    stage = props.get("dealstage")
    props["hs_is_closed"] = str(stage in CLOSED_STAGES).lower()
    props["hs_is_closed_won"] = str(stage == "closedwon").lower()


def _now_iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


class HubSpotError(SignalplayError):
    """An error response: status and HubSpot's error body."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "status": "error",
            "message": message,
            "category": category,
            **(extra or {}),
        }
        if category == "":
            del self.body["category"]
        self.headers = headers or {}


@dataclass
class Fault:
    """A fault to answer with instead of serving the next matching requests."""

    status: int
    times: int
    path_contains: str = ""
    body: dict[str, Any] | None = None
    retry_after: float | None = None


@dataclass
class Request:
    """What the stand-in saw: for assertions and request counts."""

    method: str
    path: str
    template: str
    query: dict[str, list[str]]
    status: int
    auth: str
    inputs: int = 0


@dataclass
class HubSpotState:
    """Everything the stand-in knows; JSON-serialisable."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TYPE_IDS}
    )
    associations: list[list[Any]] = field(default_factory=list)
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=_default_properties)
    groups: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TYPE_IDS}
    )
    owners: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1000
    sequences: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrollments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by contact id
    # USER_DEFINED association labels: type id → [from type, to type, label, inverse type id]
    labels: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The object as HubSpot's v3 API returns it."""
        return {
            k: getattr(self, k)
            for k in (
                "objects",
                "associations",
                "properties",
                "groups",
                "owners",
                "next_id",
                "sequences",
                "enrollments",
                "labels",
            )
        }


Route = tuple[str, re.Pattern[str], str, Callable[..., tuple[int, Any]]]


class HubSpotSandbox:
    """The stand-in: a WSGI callable with seeded state, a request log and fault injection."""

    def __init__(
        self,
        *,
        state_file: Path | None = None,
        token: str | None = None,
        rate_limit: int = TEN_SECONDLY,
        daily_limit: int = DAILY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.state_file = state_file
        self.token = token
        self.rate_limit = rate_limit
        self.daily_limit = daily_limit
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = self._load()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._window: deque[float] = deque()
        self._daily = 0
        # (object type, property) → value → id of the first live record with it: look-ups by a
        # unique property stay O(1) at 10k+ records; every hit is checked against the record.
        self._indexes: dict[tuple[str, str], dict[str, str]] = {}
        self.rate_limited = 0  # 429s answered for the windows (injected faults not counted)
        self._lock = threading.RLock()
        self._assoc_index: set[tuple[str, str, str, str, int]] = set()
        # (from type, from id, to type) → sorted (to id, type id): a record's links in O(1)
        self._links: dict[tuple[str, str, str], list[tuple[str, int]]] = {}
        for a in self.state.associations:
            self._link((str(a[0]), str(a[1]), str(a[2]), str(a[3]), int(a[4])))
        self.routes: list[Route] = [
            (m, re.compile(f"^{p}$"), p, h)
            for m, p, h in (
                ("GET", r"/crm/v3/owners/?", self._owners),
                ("GET", r"/crm/v3/owners/(?P<owner_id>[^/]+)", self._owner),
                ("GET", r"/crm/v3/properties/(?P<otype>[^/]+)/groups", self._groups),
                ("POST", r"/crm/v3/properties/(?P<otype>[^/]+)/groups", self._create_group),
                ("GET", r"/crm/v3/properties/(?P<otype>[^/]+)", self._properties),
                ("POST", r"/crm/v3/properties/(?P<otype>[^/]+)", self._create_property),
                ("GET", r"/crm/v3/properties/(?P<otype>[^/]+)/(?P<name>[^/]+)", self._property),
                (
                    "PATCH",
                    r"/crm/v3/properties/(?P<otype>[^/]+)/(?P<name>[^/]+)",
                    self._update_property,
                ),
                (
                    "POST",
                    r"/crm/v3/objects/(?P<otype>[^/]+)/batch/(?P<op>read|create|update|upsert|archive)",
                    self._batch,
                ),
                ("POST", r"/crm/v3/objects/(?P<otype>[^/]+)/search", self._search),
                ("GET", r"/crm/v3/objects/(?P<otype>[^/]+)", self._list),
                ("POST", r"/crm/v3/objects/(?P<otype>[^/]+)", self._create_one),
                ("GET", r"/crm/v3/objects/(?P<otype>[^/]+)/(?P<oid>[^/]+)", self._get_one),
                ("PATCH", r"/crm/v3/objects/(?P<otype>[^/]+)/(?P<oid>[^/]+)", self._update_one),
                ("DELETE", r"/crm/v3/objects/(?P<otype>[^/]+)/(?P<oid>[^/]+)", self._archive_one),
                (
                    "POST",
                    r"/crm/v4/associations/(?P<ftype>[^/]+)/(?P<ttype>[^/]+)/batch/create",
                    self._assoc_batch_create,
                ),
                (
                    "GET",
                    r"/crm/v4/objects/(?P<otype>[^/]+)/(?P<oid>[^/]+)/associations/(?P<ttype>[^/]+)",
                    self._assoc_list,
                ),
                (
                    "POST",
                    r"/crm/v4/associations/(?P<ftype>[^/]+)/(?P<ttype>[^/]+)/batch/read",
                    self._assoc_batch_read,
                ),
                (
                    "GET",
                    r"/crm/(?:v4/associations|associations/v4)/(?P<ftype>[^/]+)/(?P<ttype>[^/]+)/labels",
                    self._assoc_labels,
                ),
                ("GET", r"/automation/v4/sequences/?", self._sequences),
                ("POST", r"/automation/v4/sequences/enrollments/?", self._enroll),
                (
                    "GET",
                    r"/automation/v4/sequences/enrollments/contact/(?P<contact_id>[^/]+)",
                    self._enrollment,
                ),
            )
        ]
        self.daily_enrollment_cap: int | None = None

    # ---- persistence and seeding ----------------------------------------------------------
    def _load(self) -> HubSpotState:
        if self.state_file is not None and self.state_file.exists():
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return HubSpotState(**data)
        return HubSpotState()

    def save(self) -> None:
        """Write the state to its file, atomically."""
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state.to_json()), encoding="utf-8")
        tmp.replace(self.state_file)

    def seed_owner(self, *, owner_id: str, user_id: int, email: str, first: str, last: str) -> None:
        """Add an owner unless one with this id exists (owners cannot be created by API)."""
        with self._lock:
            if any(o["id"] == owner_id for o in self.state.owners):
                return
            now = _now_iso(self.clock())
            self.state.owners.append(
                {
                    "id": owner_id,
                    "email": email,
                    "firstName": first,
                    "lastName": last,
                    "userId": user_id,
                    "userIdIncludingInactive": user_id,
                    "type": "PERSON",
                    "archived": False,
                    "createdAt": now,
                    "updatedAt": now,
                    "teams": [{"id": "1", "name": "Customer Success", "primary": True}],
                }
            )

    def seed_property(
        self,
        otype: str,
        name: str,
        *,
        ptype: str = "string",
        field_type: str = "text",
        options: Iterable[str] = (),
        unique: bool = False,
    ) -> None:
        """Define a custom property unless it exists."""
        with self._lock:
            self.state.properties[otype].setdefault(
                name, _prop(name, ptype, field_type, options, unique=unique)
            )

    def seed_object(self, otype: str, properties: dict[str, str | None], *, unique_by: str) -> str:
        """Create or update a record keyed on one of its properties; returns its id."""
        with self._lock:
            existing = self._find_by(otype, unique_by, properties.get(unique_by))
            if existing is not None:
                self._touch(otype, existing, {k: v for k, v in properties.items() if v is not None})
                return str(existing["id"])
            return str(self._insert(otype, properties)["id"])

    def edit(self, otype: str, oid: str, properties: dict[str, Any]) -> None:
        """A person's edit in the UI (a CSM completing a task).

        Validated and stamped like an API update, at the portal's clock, but not counted as
        an API request.
        """
        with self._lock:
            record = self.state.objects[otype][str(oid)]
            self._validate(otype, properties, creating=False, own_id=record["id"])
            self._touch(otype, record, properties)

    def seed_sequence(self, *, sequence_id: str, name: str, user_id: int) -> None:
        """A sequence the user (owner.userId) may enroll contacts in."""
        with self._lock:
            now = _now_iso(self.clock())
            self.state.sequences[sequence_id] = {
                "id": sequence_id,
                "name": name,
                "userId": str(user_id),
                "folderId": "1",
                "createdAt": now,
                "updatedAt": now,
            }

    def seed_association(
        self, ftype: str, fid: str, ttype: str, tid: str, type_id: int | None = None
    ) -> None:
        """Link two records (the inverse link is derived)."""
        with self._lock:
            self._associate(ftype, fid, ttype, tid, type_id or DEFAULT_ASSOC[(ftype, ttype)])

    def seed_label(self, ftype: str, ttype: str, label: str) -> int:
        """An association label between two object types (USER_DEFINED); its type id."""
        with self._lock:
            for tid, (f, t, name, _) in self.state.labels.items():
                if (f, t, name) == (ftype, ttype, label):
                    return int(tid)
            type_id = 100 + len(self.state.labels)
            inverse = type_id + 1
            self.state.labels[str(type_id)] = [ftype, ttype, label, inverse]
            self.state.labels[str(inverse)] = [ttype, ftype, label, type_id]
            return type_id

    def remove_label(self, ftype: str, fid: str, ttype: str, tid: str, label: str) -> None:
        """A person removes a label from a link in the UI (the link itself stays)."""
        with self._lock:
            self._unlabel(ftype, fid, ttype, tid, self.seed_label(ftype, ttype, label))

    def archive(self, otype: str, oid: str) -> None:
        """A person archives a record in the UI (it is listed with `archived=true` since)."""
        with self._lock:
            record = self.state.objects[otype][str(oid)]
            record["archived"], record["archivedAt"] = True, _now_iso(self.clock())

    def unlink(self, ftype: str, fid: str, ttype: str, tid: str) -> None:
        """A person removes the association between two records, every label of it."""
        with self._lock:
            for other, type_id in list(self._links.get((ftype, str(fid), ttype), ())):
                if other == str(tid):
                    self._unlabel(ftype, str(fid), ttype, str(tid), type_id)

    def _unlabel(self, ftype: str, fid: str, ttype: str, tid: str, type_id: int) -> None:
        inverse = self._inverse(type_id)
        for link in ((ftype, fid, ttype, tid, type_id), (ttype, tid, ftype, fid, inverse)):
            if link in self._assoc_index:
                self._assoc_index.discard(link)
                self._links[link[:3]].remove((link[3], link[4]))
                self.state.associations.remove(list(link))

    def _known(self, type_id: int) -> tuple[str, str] | None:
        label = self.state.labels.get(str(type_id))
        return (label[0], label[1]) if label else KNOWN_ASSOC.get(type_id)

    def _inverse(self, type_id: int) -> int:
        label = self.state.labels.get(str(type_id))
        return int(label[3]) if label else INVERSE[type_id]

    def _type(self, type_id: int) -> dict[str, Any]:
        label = self.state.labels.get(str(type_id))
        if label:
            return {"category": "USER_DEFINED", "typeId": type_id, "label": label[2]}
        return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}

    # ---- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Answer one WSGI request as HubSpot does."""
        method = environ["REQUEST_METHOD"]
        path = unquote(environ.get("PATH_INFO", ""))
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        correlation = str(uuid.uuid4())
        headers = [
            ("Content-Type", "application/json;charset=utf-8"),
            ("X-HubSpot-Correlation-Id", correlation),
        ]
        with self._lock:
            status, body, template, extra_headers, inputs = self._dispatch(
                method, path, query, raw, auth
            )
            self.requests.append(Request(method, path, template, query, status, auth, inputs))
            if status < 400 and method != "GET" and not _READS.search(path):
                self.save()  # (a read by POST, a search or a batch read, changes nothing)
        if isinstance(body, dict) and body.get("status") == "error":
            body["correlationId"] = correlation
        headers += extra_headers
        reason = {
            200: "OK",
            201: "Created",
            204: "No Content",
            207: "Multi-Status",
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            409: "Conflict",
            429: "Too Many Requests",
        }.get(status, "Error")
        start_response(f"{status} {reason}", headers)
        return [] if status == 204 else [json.dumps(body).encode()]

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes, auth: str
    ) -> tuple[int, Any, str, list[tuple[str, str]], int]:
        route = next(
            (
                (h, m.groupdict(), tpl)
                for meth, rx, tpl, h in self.routes
                if meth == method and (m := rx.match(path))
            ),
            None,
        )
        template = path
        if route is not None:
            kinds = {"otype", "ftype", "ttype", "op"}
            template = re.sub(
                r"\(\?P<(\w+)>[^)]*\)",
                lambda g: (
                    TYPE_BY_ID.get(route[1][g.group(1)], route[1][g.group(1)])
                    if g.group(1) in kinds
                    else "{" + g.group(1) + "}"
                ),
                route[2],
            ).replace("/?", "/")
        try:
            self._check_auth(auth)
            rate_headers = self._rate(path)
            self._fault(path)
            if route is None:
                raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No route for {method} {path}")
            body = json.loads(raw) if raw else None
            handler, params, _ = route
            status, payload = handler(query=query, body=body, **params)
            inputs = len(body.get("inputs", [])) if isinstance(body, dict) else 0
            return status, payload, template, rate_headers, inputs
        except HubSpotError as exc:
            return exc.status, exc.body, template, list(exc.headers.items()), 0
        except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as exc:
            return (
                400,
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"Invalid input JSON: {exc}",
                },
                template,
                [],
                0,
            )

    # ---- Sequences v4 (shared/specs/hubspot/sequences-v4-contract.json) -------------------------
    def _user(self, query: dict[str, list[str]]) -> dict[str, Any]:
        user_id = (query.get("userId") or [""])[0]
        if not user_id:
            raise HubSpotError(400, "VALIDATION_ERROR", "userId is required")
        owner = next((o for o in self.state.owners if str(o["userId"]) == user_id), None)
        if owner is None:
            raise HubSpotError(400, "VALIDATION_ERROR", f"No user with id {user_id}")
        return owner

    def _sequences(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        owner = self._user(query)
        results = [
            s
            for s in self.state.sequences.values()
            if s["userId"] == str(owner["userId"])
            and (not query.get("name") or s["name"] == query["name"][0])
        ]
        return 200, {"total": len(results), "results": results}

    def _enroll(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        owner = self._user(query)
        if not isinstance(body, dict):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON")
        missing = [k for k in ("contactId", "sequenceId", "senderEmail") if not body.get(k)]
        if missing:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Missing required fields: {missing}")
        sequence = self.state.sequences.get(str(body["sequenceId"]))
        if sequence is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Sequence {body['sequenceId']} not found")
        contact = self.state.objects["contacts"].get(str(body["contactId"]))
        if contact is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Contact {body['contactId']} not found")
        if body["senderEmail"] != owner["email"]:
            raise HubSpotError(
                400, "VALIDATION_ERROR", "senderEmail is not a connected inbox of the user"
            )
        if str(body["contactId"]) in self.state.enrollments:
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                "Contact is already enrolled in a sequence",
                extra={"subCategory": "ALREADY_ENROLLED"},
            )
        today = self.clock().date().isoformat()
        sent = sum(
            1
            for e in self.state.enrollments.values()
            if e["enrolledBy"] == str(owner["userId"]) and e["enrolledAt"][:10] == today
        )
        if self.daily_enrollment_cap is not None and sent >= self.daily_enrollment_cap:
            raise HubSpotError(429, "RATE_LIMIT", "Daily enrollment limit reached for this user")
        now = _now_iso(self.clock())
        enrollment = {
            "id": str(self._next_id()),
            "toEmail": contact["properties"].get("email") or "",
            "enrolledAt": now,
            "updatedAt": now,
            "enrolledBy": str(owner["userId"]),
            "enrolledByEmail": owner["email"],
            "sequenceId": sequence["id"],
            "sequenceName": sequence["name"],
        }
        self.state.enrollments[str(body["contactId"])] = enrollment
        lite = {k: enrollment[k] for k in ("id", "toEmail", "enrolledAt", "updatedAt")}
        return 200, lite

    def _enrollment(
        self, *, query: dict[str, list[str]], body: Any, contact_id: str
    ) -> tuple[int, Any]:
        enrollment = self.state.enrollments.get(contact_id)
        if enrollment is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No enrollment for contact {contact_id}")
        return 200, enrollment

    def _check_auth(self, auth: str) -> None:
        ok = (
            auth.startswith("Bearer ")
            and len(auth) > 7
            and (self.token is None or auth[7:] == self.token)
        )
        if not ok:
            raise HubSpotError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )

    def _rate(self, path: str) -> list[tuple[str, str]]:
        now = time.monotonic()
        while self._window and now - self._window[0] >= 10:
            self._window.popleft()
        if self._daily >= self.daily_limit:
            self.rate_limited += 1
            raise HubSpotError(
                429,
                "",
                "You have reached your daily limit.",
                extra={
                    "errorType": "RATE_LIMIT",
                    "policyName": "DAILY",
                    "groupName": "publicapi:private-app",
                },
            )
        if len(self._window) >= self.rate_limit:
            self.rate_limited += 1
            raise HubSpotError(
                429,
                "",
                "You have reached your ten_secondly_rolling limit.",
                extra={
                    "errorType": "RATE_LIMIT",
                    "policyName": "TEN_SECONDLY_ROLLING",
                    "groupName": "publicapi:private-app",
                },
            )
        self._window.append(now)
        self._daily += 1
        if path.endswith("/search"):
            return []  # search responses carry no rate-limit headers
        return [
            ("X-HubSpot-RateLimit-Daily", str(self.daily_limit)),
            ("X-HubSpot-RateLimit-Daily-Remaining", str(self.daily_limit - self._daily)),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Max", str(self.rate_limit)),
            ("X-HubSpot-RateLimit-Remaining", str(self.rate_limit - len(self._window))),
        ]

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path_contains: str = "",
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next `times` requests whose path contains `path_contains` with `status`."""
        with self._lock:
            self.faults.append(Fault(status, times, path_contains, body, retry_after))

    def _fault(self, path: str) -> None:
        for fault in self.faults:
            if fault.times > 0 and fault.path_contains in path:
                fault.times -= 1
                headers = (
                    {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                )
                if fault.status == 429:
                    body = fault.body or {
                        "errorType": "RATE_LIMIT",
                        "policyName": "TEN_SECONDLY_ROLLING",
                    }
                    raise HubSpotError(
                        429,
                        "",
                        "You have reached your ten_secondly_rolling limit.",
                        extra=body,
                        headers=headers,
                    )
                raise HubSpotError(
                    fault.status,
                    "INTERNAL_ERROR" if fault.status >= 500 else "VALIDATION_ERROR",
                    "Injected fault",
                    headers=headers,
                )

    # ---- helpers ---------------------------------------------------------------------------
    def _otype(self, otype: str) -> str:
        name = TYPE_BY_ID.get(otype, otype)
        if name not in self.state.objects:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {otype}"
            )
        return name

    def _next_id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id

    def _insert(self, otype: str, properties: dict[str, Any]) -> dict[str, Any]:
        self.state.next_id += 1
        oid = str(self.state.next_id)
        now = _now_iso(self.clock())
        props = {k: (None if v is None else str(v)) for k, v in properties.items()}
        props.update(
            {"hs_object_id": oid, "createdate": now, LASTMOD.get(otype, "hs_lastmodifieddate"): now}
        )
        if otype == "deals":
            _deal_flags(props)
        record = {
            "id": oid,
            "properties": props,
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "history": {},
        }
        _remember(record, props, now)
        self.state.objects[otype][oid] = record
        self._index(otype, record)
        return record

    def _index(self, otype: str, record: dict[str, Any]) -> None:
        for (ot, prop), index in self._indexes.items():
            value = record["properties"].get(prop)
            if ot == otype and value is not None:
                index.setdefault(value, record["id"])

    def _touch(self, otype: str, record: dict[str, Any], properties: dict[str, Any]) -> None:
        now = _now_iso(self.clock())
        was = record["properties"].get("hs_task_status")
        record["properties"].update(
            {k: (None if v is None or v == "" else str(v)) for k, v in properties.items()}
        )
        if otype == "deals" and "dealstage" in properties:
            _deal_flags(record["properties"])
        if otype == "tasks" and "hs_task_status" in properties:
            # HubSpot stamps a task's completion when it is marked COMPLETED, and clears it
            # when it is reopened.
            status = record["properties"].get("hs_task_status")
            if status == "COMPLETED" and was != "COMPLETED":
                record["properties"]["hs_task_completion_date"] = now
            elif status != "COMPLETED":
                record["properties"]["hs_task_completion_date"] = None
        record["properties"][LASTMOD.get(otype, "hs_lastmodifieddate")] = now
        record["updatedAt"] = now
        _remember(record, record["properties"], now)
        self._index(otype, record)

    def _find_by(self, otype: str, prop: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if prop in ("hs_object_id", "id"):
            rec = self.state.objects[otype].get(str(value))
            return rec if rec and not rec["archived"] else None
        index = self._indexes.get((otype, prop))
        if index is None:
            index = {}
            for r in self.state.objects[otype].values():
                v = r["properties"].get(prop)
                if v is not None and not r["archived"]:
                    index.setdefault(v, r["id"])
            self._indexes[(otype, prop)] = index
        rid = index.get(str(value))
        if rid is None:
            return None
        rec = self.state.objects[otype].get(rid)
        if rec is not None and not rec["archived"] and rec["properties"].get(prop) == str(value):
            return rec
        del self._indexes[(otype, prop)]  # the record changed or left: rebuild and look again
        return self._find_by(otype, prop, value)

    def _validate(
        self, otype: str, properties: Any, *, creating: bool, own_id: str | None = None
    ) -> None:
        if not isinstance(properties, dict):
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                "Invalid input JSON on line 1: properties must be an object",
            )
        catalogue = self.state.properties[otype]
        problems = []
        for name, value in properties.items():
            spec = catalogue.get(name)
            if spec is None:
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
            elif (
                spec["type"] == "enumeration"
                and value not in (None, "")
                and str(value) not in {o["value"] for o in spec["options"]}
            ):
                problems.append(
                    {
                        "isValid": False,
                        "message": f"{value} was not one of the allowed options",
                        "error": "INVALID_OPTION",
                        "name": name,
                    }
                )
            elif spec["type"] == "number" and value not in (None, ""):
                try:
                    float(value)
                except (TypeError, ValueError):
                    problems.append(
                        {
                            "isValid": False,
                            "message": f"{value} is not a valid number",
                            "error": "INVALID_FLOAT",
                            "name": name,
                        }
                    )
            elif spec.get("hasUniqueValue") and value not in (None, ""):
                other = self._find_by(otype, name, value)
                if other is not None and other["id"] != own_id:
                    raise HubSpotError(
                        409,
                        "CONFLICT",
                        f"A {SINGULAR[otype]} with {name} {value} already exists. "
                        f"Existing ID: {other['id']}",
                    )
        if creating and otype == "tasks" and not properties.get("hs_timestamp"):
            problems.append(
                {
                    "isValid": False,
                    "message": "hs_timestamp is required",
                    "error": "REQUIRED_FIELD",
                    "name": "hs_timestamp",
                }
            )
        if problems:
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                f"Property values were not valid: {json.dumps(problems)}",
                extra={
                    "errors": [
                        {
                            "message": p["message"],
                            "code": p["error"],
                            "context": {"propertyName": [p["name"]]},
                        }
                        for p in problems
                    ]
                },
            )

    def _view(
        self,
        otype: str,
        record: dict[str, Any],
        requested: list[str],
        associations: Sequence[str] = (),
        with_history: Sequence[str] = (),
    ) -> dict[str, Any]:
        defaults = ("hs_object_id", "createdate", LASTMOD.get(otype, "hs_lastmodifieddate"))
        catalogue = self.state.properties[otype]
        props = {
            n: record["properties"].get(n)
            for n in (*defaults, *requested)
            if n in catalogue or n in defaults
        }
        out = {
            "id": record["id"],
            "properties": props,
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record["archived"],
        }
        if record.get("archivedAt"):
            out["archivedAt"] = record["archivedAt"]
        if with_history:
            kept = record.get("history") or {}
            out["propertiesWithHistory"] = {
                n: [
                    {"value": v, "timestamp": ts, "sourceType": "CRM_UI", "sourceId": "userId:1"}
                    for v, ts in reversed(kept.get(n, ()))  # newest first
                ]
                for n in with_history
                if n in catalogue
            }
        links: dict[str, Any] = {}
        for ttype in associations:
            tname = TYPE_BY_ID.get(ttype, ttype)
            found = [
                {"id": tid, "type": self._assoc_label(otype, tname, tid_type)}
                for tid, tid_type in self._links.get((otype, record["id"], tname), ())
            ]
            if found:
                links[tname] = {"results": found}
        if links:
            out["associations"] = links
        return out

    @staticmethod
    def _assoc_label(otype: str, ttype: str, type_id: int) -> str:
        base = f"{SINGULAR.get(otype, otype)}_to_{SINGULAR.get(ttype, ttype)}"
        return base + "_unlabeled" if type_id in (279, 280, 341, 342) else base

    def _associate(self, ftype: str, fid: str, ttype: str, tid: str, type_id: int) -> None:
        if self._known(type_id) != (ftype, ttype):
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                f"{type_id} is not a valid association type id between "
                f"{SINGULAR.get(ftype)} and {SINGULAR.get(ttype)}",
            )
        for a, b in ((ftype, fid), (ttype, tid)):
            if self._find_by(a, "id", b) is None:
                raise HubSpotError(
                    404, "OBJECT_NOT_FOUND", f"No {SINGULAR.get(a)} with ID {b} exists"
                )
        inverse = self._inverse(type_id)
        for link in ((ftype, fid, ttype, tid, type_id), (ttype, tid, ftype, fid, inverse)):
            if link not in self._assoc_index:
                self._link(link)
                self.state.associations.append(list(link))

    def _link(self, link: tuple[str, str, str, str, int]) -> None:
        self._assoc_index.add(link)
        bisect.insort(self._links.setdefault(link[:3], []), (link[3], link[4]))

    @staticmethod
    def _qlist(query: dict[str, list[str]], name: str) -> list[str]:
        return [p for v in query.get(name, []) for p in v.split(",") if p]

    @staticmethod
    def _qbool(query: dict[str, list[str]], name: str) -> bool:
        return query.get(name, ["false"])[0].lower() == "true"

    # ---- objects ---------------------------------------------------------------------------
    def _list(self, *, query: dict[str, list[str]], body: Any, otype: str) -> tuple[int, Any]:
        otype = self._otype(otype)
        limit = int(query.get("limit", ["10"])[0])
        history = self._qlist(query, "propertiesWithHistory")
        cap = HISTORY_CAP if history else LIST_CAP
        if not 1 <= limit <= cap:
            raise HubSpotError(400, "VALIDATION_ERROR", f"limit must be between 1 and {cap}")
        archived = self._qbool(query, "archived")
        records = sorted(
            (r for r in self.state.objects[otype].values() if r["archived"] == archived),
            key=lambda r: int(r["id"]),
        )
        after = query.get("after", [None])[0]
        if after:
            records = [r for r in records if int(r["id"]) > int(after)]
        page = records[:limit]
        props, assocs = self._qlist(query, "properties"), self._qlist(query, "associations")
        out: dict[str, Any] = {
            "results": [self._view(otype, r, props, assocs, history) for r in page]
        }
        if len(records) > limit:
            nxt = str(int(page[-1]["id"]))
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return 200, out

    def _get_one(
        self, *, query: dict[str, list[str]], body: Any, otype: str, oid: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        prop = query.get("idProperty", ["hs_object_id"])[0]
        record = self._find_by(otype, prop, oid)
        if record is None:
            raise HubSpotError(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
            )
        return 200, self._view(
            otype, record, self._qlist(query, "properties"), self._qlist(query, "associations")
        )

    def _create_one(self, *, query: dict[str, list[str]], body: Any, otype: str) -> tuple[int, Any]:
        otype = self._otype(otype)
        record = self._create(otype, body or {})
        return 201, self._view(otype, record, list(body.get("properties", {})))

    def _create(self, otype: str, item: dict[str, Any]) -> dict[str, Any]:
        props = item.get("properties", {})
        self._validate(otype, props, creating=True)
        links = item.get("associations") or []
        for link in links:  # validate every link before writing anything
            for spec in link["types"]:
                if KNOWN_ASSOC.get(spec["associationTypeId"], ("",))[0] != otype:
                    raise HubSpotError(
                        400,
                        "VALIDATION_ERROR",
                        f"{spec['associationTypeId']} is not a valid association type id "
                        f"for {SINGULAR[otype]}",
                    )
        record = self._insert(otype, props)
        for link in links:
            for spec in link["types"]:
                ttype = KNOWN_ASSOC[spec["associationTypeId"]][1]
                self._associate(
                    otype, record["id"], ttype, str(link["to"]["id"]), spec["associationTypeId"]
                )
        return record

    def _update_one(
        self, *, query: dict[str, list[str]], body: Any, otype: str, oid: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        record = self._find_by(otype, query.get("idProperty", ["hs_object_id"])[0], oid)
        if record is None:
            raise HubSpotError(
                404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."
            )
        props = (body or {}).get("properties", {})
        self._validate(otype, props, creating=False, own_id=record["id"])
        self._touch(otype, record, props)
        return 200, self._view(otype, record, list(props))

    def _archive_one(
        self, *, query: dict[str, list[str]], body: Any, otype: str, oid: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        record = self._find_by(otype, "id", oid)
        if record is not None:
            record["archived"], record["archivedAt"] = True, _now_iso(self.clock())
        return 204, None

    def _batch(
        self, *, query: dict[str, list[str]], body: Any, otype: str, op: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        inputs = (body or {}).get("inputs")
        if not isinstance(inputs, list):
            raise HubSpotError(400, "VALIDATION_ERROR", "Invalid input JSON: inputs is required")
        if len(inputs) > BATCH_CAP:
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                f"Batch input must contain at most {BATCH_CAP} inputs; got {len(inputs)}",
                extra={"context": {"maxInputs": [str(BATCH_CAP)]}},
            )
        started = _now_iso(self.clock())
        results, errors = getattr(self, f"_batch_{op}")(otype, inputs, body or {})
        if op == "archive":
            return 204, None
        env: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(self.clock()),
        }
        if errors:
            env.update({"numErrors": len(errors), "errors": [_standard_error(e) for e in errors]})
            return 207, env
        return (201 if op == "create" else 200), env

    def _batch_read(
        self, otype: str, inputs: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        prop = body.get("idProperty") or "hs_object_id"
        history = body.get("propertiesWithHistory") or []
        if history and len(inputs) > HISTORY_CAP:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"at most {HISTORY_CAP} inputs with propertiesWithHistory"
            )
        found, missing = [], []
        for item in inputs:
            record = self._find_by(otype, prop, item.get("id"))
            if record is None:
                missing.append(str(item.get("id")))
            else:
                found.append(self._view(otype, record, body.get("properties") or [], (), history))
        errors = (
            [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {SINGULAR[otype].upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
            if missing
            else []
        )
        return found, errors

    def _batch_create(
        self, otype: str, inputs: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        for item in inputs:  # a batch create is atomic: validate everything first
            self._validate(otype, item.get("properties", {}), creating=True)
        return [
            self._view(otype, self._create(otype, item), list(item.get("properties", {})))
            for item in inputs
        ], []

    def _batch_update(
        self, otype: str, inputs: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        results, errors = [], []
        for item in inputs:
            record = self._find_by(otype, item.get("idProperty") or "hs_object_id", item.get("id"))
            try:
                if record is None:
                    raise HubSpotError(
                        404, "OBJECT_NOT_FOUND", f"Object with id {item.get('id')} not found"
                    )
                self._validate(
                    otype, item.get("properties", {}), creating=False, own_id=record["id"]
                )
            except HubSpotError as exc:
                errors.append({**exc.body, "context": {"ids": [str(item.get("id"))]}})
                continue
            self._touch(otype, record, item.get("properties", {}))
            results.append(self._view(otype, record, list(item.get("properties", {}))))
        return results, errors

    def _batch_upsert(
        self, otype: str, inputs: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        results, errors = [], []
        for item in inputs:
            prop = item.get("idProperty") or ""
            spec = self.state.properties[otype].get(prop)
            if spec is None or not spec.get("hasUniqueValue"):
                raise HubSpotError(
                    400,
                    "VALIDATION_ERROR",
                    f"Property {prop!r} is not a unique identifier property for {otype}",
                )
            props = {**item.get("properties", {}), prop: item.get("id")}
            record = self._find_by(otype, prop, item.get("id"))
            try:
                self._validate(
                    otype, props, creating=record is None, own_id=record["id"] if record else None
                )
            except HubSpotError as exc:
                errors.append({**exc.body, "context": {"ids": [str(item.get("id"))]}})
                continue
            if record is None:
                record, new = self._insert(otype, props), True
            else:
                self._touch(otype, record, props)
                new = False
            results.append({**self._view(otype, record, list(props)), "new": new})
        return results, errors

    def _batch_archive(
        self, otype: str, inputs: list[dict[str, Any]], body: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        for item in inputs:
            self._archive_one(query={}, body=None, otype=otype, oid=str(item.get("id")))
        return [], []

    def _search(self, *, query: dict[str, list[str]], body: Any, otype: str) -> tuple[int, Any]:
        otype = self._otype(otype)
        body = body or {}
        limit, after = int(body.get("limit") or 10), int(body.get("after") or 0)
        if limit > SEARCH_PAGE_CAP:
            raise HubSpotError(400, "VALIDATION_ERROR", f"limit must be at most {SEARCH_PAGE_CAP}")
        if after + limit > SEARCH_TOTAL_CAP:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Cannot page past {SEARCH_TOTAL_CAP} results."
            )
        groups = body.get("filterGroups") or []
        hits = [
            r
            for r in self.state.objects[otype].values()
            if not r["archived"]
            and (not groups or any(all(_match(r, f) for f in g.get("filters", [])) for g in groups))
        ]
        hits.sort(key=lambda r: int(r["id"]))
        for sort in reversed(body.get("sorts") or []):
            name, desc = (
                (sort["propertyName"], sort.get("direction") == "DESCENDING")
                if isinstance(sort, dict)
                else (sort.lstrip("-"), sort.startswith("-"))
            )
            hits.sort(key=partial(_sort_key, name), reverse=desc)
        page = hits[after : after + limit]
        out: dict[str, Any] = {
            "total": len(hits),
            "results": [self._view(otype, r, body.get("properties") or []) for r in page],
        }
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    # ---- properties, owners, associations --------------------------------------------------
    def _properties(self, *, query: dict[str, list[str]], body: Any, otype: str) -> tuple[int, Any]:
        return 200, {"results": list(self.state.properties[self._otype(otype)].values())}

    def _property(
        self, *, query: dict[str, list[str]], body: Any, otype: str, name: str
    ) -> tuple[int, Any]:
        prop = self.state.properties[self._otype(otype)].get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return 200, prop

    def _update_property(
        self, *, query: dict[str, list[str]], body: Any, otype: str, name: str
    ) -> tuple[int, Any]:
        """PATCH a property.

        Label, description, options (the whole list), displayOrder; its name, type and
        uniqueness cannot change.
        """
        prop = self.state.properties[self._otype(otype)].get(name)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        body = body or {}
        if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != prop["hasUniqueValue"]:
            raise HubSpotError(400, "VALIDATION_ERROR", "hasUniqueValue cannot be changed")
        for key in ("label", "description", "displayOrder", "hidden", "fieldType", "groupName"):
            if key in body:
                prop[key] = body[key]
        if "options" in body:
            if prop["type"] != "enumeration":
                raise HubSpotError(400, "VALIDATION_ERROR", f"{name} is not an enumeration")
            prop["options"] = [
                {
                    "label": o.get("label") or o["value"],
                    "value": o["value"],
                    "displayOrder": o.get("displayOrder", i),
                    "hidden": bool(o.get("hidden", False)),
                }
                for i, o in enumerate(body["options"])
            ]
        return 200, prop

    def _create_property(
        self, *, query: dict[str, list[str]], body: Any, otype: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        body = body or {}
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Missing required fields: {', '.join(missing)}"
            )
        if body["type"] not in {"string", "number", "date", "datetime", "enumeration", "bool"}:
            raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid property type {body['type']}")
        if body["groupName"] not in self.state.groups[otype] and body["groupName"] != "default":
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Property group {body['groupName']} does not exist"
            )
        if body["name"] in self.state.properties[otype]:
            raise HubSpotError(409, "CONFLICT", f"Property {body['name']} already exists")
        prop = {
            **_prop(
                body["name"],
                body["type"],
                body["fieldType"],
                [o["value"] for o in body.get("options", [])],
                unique=bool(body.get("hasUniqueValue")),
            ),
            "label": body["label"],
            "groupName": body["groupName"],
        }
        self.state.properties[otype][body["name"]] = prop
        return 201, prop

    def _groups(self, *, query: dict[str, list[str]], body: Any, otype: str) -> tuple[int, Any]:
        return 200, {"results": list(self.state.groups[self._otype(otype)].values())}

    def _create_group(
        self, *, query: dict[str, list[str]], body: Any, otype: str
    ) -> tuple[int, Any]:
        otype = self._otype(otype)
        body = body or {}
        if not body.get("name") or not body.get("label"):
            raise HubSpotError(400, "VALIDATION_ERROR", "name and label are required")
        if body["name"] in self.state.groups[otype]:
            raise HubSpotError(409, "CONFLICT", f"Property group {body['name']} already exists")
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        self.state.groups[otype][body["name"]] = group
        return 201, group

    def _owners(self, *, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        limit = int(query.get("limit", ["100"])[0])
        archived = self._qbool(query, "archived")
        email = query.get("email", [None])[0]
        owners = [
            o
            for o in self.state.owners
            if o["archived"] == archived and (email is None or o["email"] == email)
        ]
        start = int(query.get("after", ["0"])[0] or 0)
        page = owners[start : start + limit]
        out: dict[str, Any] = {"results": page}
        if start + limit < len(owners):
            out["paging"] = {
                "next": {"after": str(start + limit), "link": f"?after={start + limit}"}
            }
        return 200, out

    def _owner(self, *, query: dict[str, list[str]], body: Any, owner_id: str) -> tuple[int, Any]:
        key = "userId" if query.get("idProperty", ["id"])[0] == "userId" else "id"
        owner = next((o for o in self.state.owners if str(o[key]) == owner_id), None)
        if owner is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Owner {owner_id} not found")
        return 200, owner

    def _assoc_batch_create(
        self, *, query: dict[str, list[str]], body: Any, ftype: str, ttype: str
    ) -> tuple[int, Any]:
        ftype, ttype = self._otype(ftype), self._otype(ttype)
        inputs = (body or {}).get("inputs") or []
        if len(inputs) > BATCH_CAP:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Batch input must contain at most {BATCH_CAP} inputs"
            )
        results, errors = [], []
        for item in inputs:
            fid, tid = str(item["from"]["id"]), str(item["to"]["id"])
            try:
                for spec in item.get("types", []):
                    self._associate(ftype, fid, ttype, tid, int(spec["associationTypeId"]))
            except HubSpotError as exc:
                errors.append({**exc.body, "context": {"fromId": [fid], "toId": [tid]}})
                continue
            results.append(
                {
                    "fromObjectTypeId": TYPE_IDS[ftype],
                    "fromObjectId": str(fid),
                    "toObjectTypeId": TYPE_IDS[ttype],
                    "toObjectId": str(tid),
                    "labels": [],
                }
            )
        env: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now_iso(self.clock()),
            "completedAt": _now_iso(self.clock()),
        }
        if errors:
            env.update({"numErrors": len(errors), "errors": [_standard_error(e) for e in errors]})
            return 207, env
        return 201, env

    def _assoc_list(
        self, *, query: dict[str, list[str]], body: Any, otype: str, oid: str, ttype: str
    ) -> tuple[int, Any]:
        otype, ttype = self._otype(otype), self._otype(ttype)
        by_target: dict[str, list[int]] = {}
        for tid, type_id in self._links.get((otype, oid, ttype), ()):
            by_target.setdefault(tid, []).append(type_id)
        return 200, {"results": self._targets(by_target)}

    def _targets(self, by_target: dict[str, list[int]]) -> list[dict[str, Any]]:
        return [
            {"toObjectId": str(tid), "associationTypes": [self._type(i) for i in ids]}
            for tid, ids in sorted(by_target.items(), key=lambda kv: int(kv[0]))
        ]

    def _assoc_batch_read(
        self, *, query: dict[str, list[str]], body: Any, ftype: str, ttype: str
    ) -> tuple[int, Any]:
        """v4 batch read: each input's links to the other type, with their labels."""
        ftype, ttype = self._otype(ftype), self._otype(ttype)
        inputs = (body or {}).get("inputs") or []
        if len(inputs) > ASSOC_READ_CAP:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Batch input must contain at most {ASSOC_READ_CAP} inputs"
            )
        results = []
        for item in inputs:
            fid = str(item.get("id"))
            by_target: dict[str, list[int]] = {}
            for tid, type_id in self._links.get((ftype, fid, ttype), ()):
                by_target.setdefault(tid, []).append(type_id)
            if by_target:
                results.append({"from": {"id": fid}, "to": self._targets(by_target)})
        now = _now_iso(self.clock())
        return 200, {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }

    def _assoc_labels(
        self, *, query: dict[str, list[str]], body: Any, ftype: str, ttype: str
    ) -> tuple[int, Any]:
        ftype, ttype = self._otype(ftype), self._otype(ttype)
        ids = [DEFAULT_ASSOC[(ftype, ttype)]] if (ftype, ttype) in DEFAULT_ASSOC else []
        ids += [
            int(t) for t, (f, to, _, _) in self.state.labels.items() if (f, to) == (ftype, ttype)
        ]
        return 200, {"results": [self._type(i) for i in ids]}

    # ---- introspection for tests and the demo ----------------------------------------------
    def request_counts(self) -> dict[str, int]:
        """Requests seen, per `METHOD path-template`."""
        counts: dict[str, int] = {}
        for r in self.requests:
            key = f"{r.method} {r.template}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def duplicate_tasks(self, key_property: str) -> int:
        """Tasks beyond the first that share one episode key."""
        seen: dict[str, int] = {}
        for task in self.state.objects["tasks"].values():
            value = task["properties"].get(key_property)
            if value and not task["archived"]:
                seen[value] = seen.get(value, 0) + 1
        return sum(n - 1 for n in seen.values() if n > 1)


STANDARD_ERROR = (
    "status",
    "id",
    "category",
    "subCategory",
    "message",
    "errors",
    "context",
    "links",
)


_READS = re.compile(r"/(search|batch/read)$")


def _remember(record: dict[str, Any], properties: dict[str, Any], now: str) -> None:
    """Property history, as HubSpot keeps it: a value and its time, for each change."""
    history = record.setdefault("history", {})
    for name, value in properties.items():
        kept = history.setdefault(name, [])
        if not kept or kept[-1][0] != value:
            kept.append((value, now))


def _standard_error(error: dict[str, Any]) -> dict[str, Any]:
    """A per-input error of a 207 as HubSpot's StandardError.

    Its fields only, with `errors`, `context` and `links` present even when empty.
    """
    out = {k: v for k, v in error.items() if k in STANDARD_ERROR}
    out.setdefault("status", "error")
    out.setdefault("errors", [])
    out.setdefault("context", {})
    out.setdefault("links", {})
    return out


def _match(record: dict[str, Any], flt: dict[str, Any]) -> bool:
    value = record["properties"].get(flt.get("propertyName", ""))
    op, target = flt.get("operator", "EQ"), flt.get("value")
    if op == "HAS_PROPERTY":
        return bool(value not in (None, ""))
    if op == "NOT_HAS_PROPERTY":
        return bool(value in (None, ""))
    if op in ("IN", "NOT_IN"):
        return bool(value in [str(v) for v in flt.get("values", [])]) == bool(op == "IN")
    if value is None:
        return bool(op == "NEQ")
    a, b = _comparable(value), _comparable(target)
    tests = {
        "EQ": a == b,
        "NEQ": a != b,
        "LT": a < b,
        "LTE": a <= b,
        "GT": a > b,
        "GTE": a >= b,
        "CONTAINS_TOKEN": str(target).lower() in str(value).lower(),
        "NOT_CONTAINS_TOKEN": str(target).lower() not in str(value).lower(),
    }
    return bool(tests.get(op, False))


def _sort_key(name: str, record: dict[str, Any]) -> tuple[bool, Any]:
    value = record["properties"].get(name)
    return value is None, value or ""


def _comparable(value: Any) -> Any:
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return text
