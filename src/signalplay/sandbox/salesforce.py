"""A loopback stand-in of the Salesforce REST API.

A loopback stand-in of the Salesforce REST API, answering as a real org does for the calls simple-
salesforce and signalplay make (see shared/reference/salesforce.md §7).

Served over TLS with a throw-away CA (`tls()`), because simple-salesforce always builds
`https://` URLs. It keeps an in-memory org: Accounts, Contacts, Users, Opportunities,
AccountContactRoles and Tasks with 18-character Ids of the real prefixes, CreatedDate,
LastModifiedDate, SystemModstamp and soft deletes (IsDeleted).

- `query/` and `queryAll/` run a SOQL subset with paging (`nextRecordsUrl`, page size
  configurable, `Sforce-Query-Options: batchSize` honoured), the same `totalSize` on every page;
  deleted rows only through queryAll; MALFORMED_QUERY and INVALID_FIELD errors.
- `sobjects/` describes; single-record create, read, update, delete, upsert by external id
  (201 created, 200 updated, 300 on several matches, 404 on an unknown field).
- `composite/sobjects` create and update and `composite/sobjects/{T}/{ExtId}` upsert: at most 200
  records (400 beyond), HTTP 200 with one result per record in order, per-record errors with
  `statusCode` (INVALID_FIELD, REQUIRED_FIELD_MISSING, INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
  DUPLICATE_VALUE, ENTITY_IS_DELETED), `allOrNone` rollback (ALL_OR_NONE_OPERATION_ROLLED_BACK).
- Bearer tokens checked on every call: 401 `[{"errorCode":"INVALID_SESSION_ID",...}]` (a JSON list,
  as the client needs); `expire_session()` makes the current token invalid.
- `Sforce-Limit-Info: api-usage=N/MAX` on every response; past the daily max 403
  REQUEST_LIMIT_EXCEEDED; `limits/` agrees with the header.
- Fault injection (`fail_next`) and a request log, to count API calls in tests.

Imports: stdlib, sandbox.soql.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from signalplay.errors import SignalplayError
from signalplay.sandbox.soql import SoqlError, lookup, parse

PREFIX = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Task": "00T",
    "AccountContactRole": "02Z",
    "OpportunityContactRole": "00K",
    "ActionCadence": "77C",
    "ActionCadenceTracker": "0tt",
}
COMMON = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
MAX_COLLECTION = 200
# Metadata API field types (Tooling CustomField) → the type describe reports.
TOOLING_TYPES = {
    "Number": "double",
    "Text": "string",
    "LongTextArea": "textarea",
    "TextArea": "textarea",
    "Picklist": "picklist",
    "Date": "date",
    "DateTime": "datetime",
    "Checkbox": "boolean",
}
_TOOLING_FIELD_QUERY = re.compile(
    r"SELECT\s+Id\s+FROM\s+CustomField\s+WHERE\s+(?P<a>\w+)\s*=\s*'(?P<av>[^']*)'\s+AND\s+"
    r"(?P<b>\w+)\s*=\s*'(?P<bv>[^']*)'",
    re.IGNORECASE,
)
ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header"
)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class Field:
    """One field of an sObject, as describe reports it."""

    name: str
    type: str = "string"
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    custom: bool = False
    reference_to: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The describe entry."""
        return {
            "name": self.name,
            "label": self.name.replace("__c", "").replace("_", " "),
            "type": self.type,
            "length": 255 if self.type in ("string", "picklist", "textarea") else 0,
            "nillable": self.nillable,
            "createable": self.name not in COMMON,
            "updateable": self.name not in COMMON,
            "externalId": self.external_id,
            "unique": self.unique,
            "custom": self.custom,
            "restrictedPicklist": self.restricted,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in self.picklist
            ],
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name[:-2] if self.type == "reference" else None,
        }


def _schema() -> dict[str, dict[str, Field]]:
    def fields(*items: Field) -> dict[str, Field]:
        base = [
            Field("Id", "id", nillable=False),
            Field("CreatedDate", "datetime", nillable=False),
            Field("LastModifiedDate", "datetime", nillable=False),
            Field("SystemModstamp", "datetime", nillable=False),
            Field("IsDeleted", "boolean", nillable=False),
            Field("OwnerId", "reference", reference_to=("User",)),
        ]
        return {f.name: f for f in (*base, *items)}

    return {
        "Account": fields(
            Field("Name", nillable=False),
            Field("Website", "url"),
            Field("Type", "picklist", picklist=("Customer", "Prospect", "Partner")),
            Field("Industry", "picklist"),
            Field("AnnualRevenue", "currency"),
            Field("NumberOfEmployees", "int"),
        ),
        "Contact": fields(
            Field("AccountId", "reference", reference_to=("Account",)),
            Field("FirstName"),
            Field("LastName", nillable=False),
            Field("Email", "email"),
            Field("Title"),
            Field("LastActivityDate", "date"),
        ),
        "User": fields(
            Field("FirstName"),
            Field("LastName", nillable=False),
            Field("Email", "email"),
            Field("IsActive", "boolean"),
            Field("TimeZoneSidKey", "picklist"),
        ),
        "Opportunity": fields(
            Field("AccountId", "reference", reference_to=("Account",)),
            Field("Name", nillable=False),
            Field("StageName", "picklist", nillable=False),
            Field("CloseDate", "date", nillable=False),
            Field("Amount", "currency"),
            Field("Type", "picklist", picklist=("New Business", "Renewal", "Upsell")),
            Field("IsClosed", "boolean"),
            Field("IsWon", "boolean"),
        ),
        "AccountContactRole": fields(
            Field("AccountId", "reference", nillable=False, reference_to=("Account",)),
            Field("ContactId", "reference", nillable=False, reference_to=("Contact",)),
            Field("Role", "picklist"),
            Field("IsPrimary", "boolean"),
        ),
        "OpportunityContactRole": fields(
            Field("OpportunityId", "reference", nillable=False, reference_to=("Opportunity",)),
            Field("ContactId", "reference", nillable=False, reference_to=("Contact",)),
            Field("Role", "picklist"),
            Field("IsPrimary", "boolean"),
        ),
        "ActionCadence": fields(Field("Name", nillable=False), Field("State", "picklist")),
        "ActionCadenceTracker": fields(
            Field("ActionCadenceId", "reference", reference_to=("ActionCadence",)),
            Field("TargetId", "reference", reference_to=("Contact",)),
            Field("AssignedToId", "reference", reference_to=("User",)),
            Field("State", "picklist", picklist=("Initializing", "Running", "Complete", "Error")),
            Field("CompletionReason", "picklist"),
        ),
        "Task": fields(
            Field("Subject", "combobox"),
            Field(
                "Status",
                "picklist",
                nillable=False,
                picklist=(
                    "Not Started",
                    "In Progress",
                    "Completed",
                    "Waiting on someone else",
                    "Deferred",
                ),
                restricted=True,
                default="Not Started",
            ),
            Field(
                "Priority",
                "picklist",
                nillable=False,
                picklist=("High", "Normal", "Low"),
                restricted=True,
                default="Normal",
            ),
            Field("ActivityDate", "date"),
            Field("Description", "textarea"),
            Field("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
            Field("WhatId", "reference", reference_to=("Account", "Opportunity")),
            Field("WhoId", "reference", reference_to=("Contact",)),
            Field("IsClosed", "boolean"),
            Field("CompletedDateTime", "datetime"),
        ),
    }


def _api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class ApiError(SignalplayError):
    """An HTTP error answer: status and the JSON list body Salesforce sends."""

    def __init__(self, status: int, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        error: dict[str, Any] = {"message": message, "errorCode": code}
        if fields:  # field errors name them; session, limit and query errors carry none
            error["fields"] = list(fields)
        self.body: Any = [error]


class RecordError(SignalplayError):
    """A per-record failure of a collection call (`statusCode`, not `errorCode`)."""

    def __init__(self, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.error = {"statusCode": code, "message": message, "fields": self.fields}

    def as_api(self) -> ApiError:
        """The same failure on a single-record call: HTTP 400 with an `errorCode` list."""
        return ApiError(400, self.code, self.message, self.fields)


@dataclass
class Logged:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int
    records: int = 0


@dataclass
class _Fault:
    status: int
    code: str
    message: str
    path_contains: str
    times: int


@dataclass
class OrgState:
    """The in-memory org."""

    schema: dict[str, dict[str, Field]] = field(default_factory=_schema)
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    cursors: dict[str, tuple[list[dict[str, Any]], int, str]] = field(default_factory=dict)
    custom_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # Tooling CustomField


class SalesforceSandbox:
    """The WSGI app; `token` is the session id every call must carry."""

    def __init__(
        self,
        *,
        token: str = "00Dsandbox!sandbox-session",  # noqa: S107 - the stand-in's own
        page_size: int = 2000,
        daily_max: int = 15_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        state_file: Path | None = None,
    ) -> None:
        self.token = token
        self.state_file = state_file
        self.page_size = page_size
        self.daily_max = daily_max
        self.clock = clock
        self.cadence_all_failed_status = 400
        self.clients: dict[str, str] = {}
        self.tokens_issued = 0
        self.state = OrgState()
        self.requests: list[Logged] = []
        self.api_usage = 0
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._indexes: dict[tuple[str, str], dict[Any, list[str]]] = {}
        self._load()

    # persistence (the demo's org survives between runs) --------------------------------------
    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        for sobject, fields in data["custom_schema"].items():
            for spec in fields:
                spec["picklist"] = tuple(spec["picklist"])
                spec["reference_to"] = tuple(spec["reference_to"])
                self.state.schema.setdefault(sobject, {})[spec["name"]] = Field(**spec)
        self.state.objects = data["objects"]
        self.state.custom_fields = data["custom_fields"]
        self._ids = itertools.count(int(data["next_id"]))

    def save(self) -> None:
        """Write the org (records, custom fields) to its file, atomically."""
        if self.state_file is None:
            return
        with self._lock:
            n = next(self._ids)
            self._ids = itertools.count(n)
            data = {
                "objects": self.state.objects,
                "custom_fields": self.state.custom_fields,
                "custom_schema": {
                    sobject: [asdict(f) for f in fields.values() if f.custom]
                    for sobject, fields in self.state.schema.items()
                },
                "next_id": n,
            }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.state_file)

    def request_counts(self) -> dict[str, int]:
        """Requests seen, per `METHOD path` with ids and query strings folded."""
        counts: dict[str, int] = {}
        for r in self.requests:
            parts = r.path.split("/")
            key = "/".join(
                "{id}"
                if len(p) in (15, 18) and p[:3].isalnum() and any(c.isdigit() for c in p)
                else p
                for p in parts
            )
            counts[f"{r.method} {key}"] = counts.get(f"{r.method} {key}", 0) + 1
        return dict(sorted(counts.items()))

    def duplicate_tasks(self, key_field: str) -> int:
        """Tasks beyond the first that share one episode key."""
        seen: dict[str, int] = {}
        for task in self.records("Task"):
            value = task.get(key_field)
            if value:
                seen[value] = seen.get(value, 0) + 1
        return sum(n - 1 for n in seen.values() if n > 1)

    # seeding and test controls ---------------------------------------------------------------
    def add_field(self, sobject: str, spec: Field) -> None:
        """Define a (custom) field, e.g. the Task external id signalplay writes."""
        with self._lock:
            self.state.schema[sobject][spec.name] = spec

    def seed(self, sobject: str, values: dict[str, Any]) -> str:
        """Insert a record without validation or API accounting; returns its Id."""
        with self._lock:
            return self._insert(sobject, dict(values))

    def edit(self, sobject: str, rid: str, values: dict[str, Any]) -> None:
        """A person's edit in the UI (a CSM closing a task).

        Validated and stamped like an API update, at the org's clock, but not counted as an
        API request.
        """
        with self._lock:
            self._update(sobject, rid, dict(values))

    def expire_session(self, new_token: str | None = None) -> None:
        """Invalidate the current token (a refreshed one may be given)."""
        with self._lock:
            self.token = new_token or self.token + "-expired"

    def fail_next(
        self,
        status: int,
        *,
        code: str = "SERVER_UNAVAILABLE",
        message: str = "injected failure",
        path_contains: str = "",
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with `status` and this error."""
        with self._lock:
            self._faults.append(_Fault(status, code, message, path_contains, times))

    def records(self, sobject: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        """The live (or all) records of a type."""
        rows = self.state.objects.get(sobject, {}).values()
        return [r for r in rows if deleted or not r["IsDeleted"]]

    def write_requests(self) -> int:
        """Requests that could change data (for 0-write assertions)."""
        return sum(1 for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))

    # helpers ----------------------------------------------------------------------------------
    def _new_id(self, sobject: str) -> str:
        n = next(self._ids)
        body = ""
        for _ in range(12):
            n, digit = divmod(n, 62)
            body = _B62[digit] + body
        return PREFIX.get(sobject, "a00") + body + "AAA"

    def _insert(self, sobject: str, values: dict[str, Any]) -> str:
        now = _api_time(self.clock())
        rid = str(values.pop("Id", None) or self._new_id(sobject))  # seeds may fix their Ids
        schema = self.state.schema[sobject]
        record = {f.name: f.default for f in schema.values()}
        record.update(values)
        record.update(
            Id=rid, CreatedDate=now, LastModifiedDate=now, SystemModstamp=now, IsDeleted=False
        )
        _derive(sobject, record, now)
        self.state.objects.setdefault(sobject, {})[rid] = record
        self._reindex(sobject, record)
        return rid

    def _check_values(
        self, sobject: str, values: dict[str, Any], *, creating: bool, self_id: str | None = None
    ) -> None:
        schema = self.state.schema[sobject]
        for name, value in values.items():
            spec = schema.get(name)
            if spec is None or name in COMMON:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name]
                )
            if (
                spec.type == "reference"
                and value not in (None, "")
                and not self._exists(spec.reference_to, value)
            ):
                raise RecordError(
                    "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", [name]
                )
            if spec.restricted and value not in spec.picklist and value is not None:
                raise RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{spec.name}: bad value for restricted picklist field: {value}",
                    [name],
                )
            if spec.unique and value is not None:
                clash = next(
                    (r["Id"] for r in self._lookup(sobject, name, value) if r["Id"] != self_id),
                    None,
                )
                if clash is not None:
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        + clash,
                    )
        if creating:
            missing = [
                f.name
                for f in schema.values()
                if not f.nillable
                and f.name not in COMMON
                and f.default is None
                and values.get(f.name) in (None, "")
            ]
            if missing:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )

    def _exists(self, types: Iterable[str], rid: Any) -> bool:
        return any(
            rid in self.state.objects.get(t, {}) and not self.state.objects[t][rid]["IsDeleted"]
            for t in types
        )

    def _create(self, sobject: str, values: dict[str, Any]) -> str:
        values = {k: v for k, v in values.items() if k != "attributes"}
        self._check_values(sobject, values, creating=True)
        return self._insert(sobject, values)

    def _update(self, sobject: str, rid: str, values: dict[str, Any]) -> None:
        record = self.state.objects.get(sobject, {}).get(rid)
        if record is None:
            raise RecordError(
                "ENTITY_IS_DELETED" if rid else "MISSING_ARGUMENT", "entity is deleted"
            )
        if record["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        changes = {k: v for k, v in values.items() if k not in ("attributes", "id", "Id")}
        self._check_values(sobject, changes, creating=False, self_id=rid)
        now = _api_time(self.clock())
        record.update(changes)
        _derive(sobject, record, now)
        self._reindex(sobject, record)
        record.update(LastModifiedDate=now, SystemModstamp=now)

    def _lookup(self, sobject: str, name: str, value: Any) -> list[dict[str, Any]]:
        """Live records whose `name` is `value`, through an index.

        Live records whose `name` is `value`, through an index (upserts by external id stay
        O(1) at 10k+ records); every hit is checked against its record.
        """
        index = self._indexes.get((sobject, name))
        if index is None:
            index = {}
            for r in self.records(sobject):
                if r.get(name) is not None:
                    index.setdefault(r[name], []).append(r["Id"])
            self._indexes[(sobject, name)] = index
        ids = index.get(value, [])
        rows = self.state.objects.get(sobject, {})
        found = [
            rows[i]
            for i in ids
            if i in rows and not rows[i]["IsDeleted"] and rows[i].get(name) == value
        ]
        if len(found) != len(ids):  # a record changed or left: rebuild once
            del self._indexes[(sobject, name)]
            return [r for r in self.records(sobject) if r.get(name) == value]
        return found

    def _reindex(self, sobject: str, record: dict[str, Any]) -> None:
        for (obj, name), index in self._indexes.items():
            value = record.get(name)
            if obj == sobject and value is not None:
                ids = index.setdefault(value, [])
                if record["Id"] not in ids:
                    ids.append(record["Id"])

    def _upsert(self, sobject: str, ext: str, values: dict[str, Any]) -> tuple[str, bool]:
        spec = self.state.schema[sobject].get(ext)
        if spec is None or not spec.external_id:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {ext}",
            )
        key = values.get(ext)
        matches = self._lookup(sobject, ext, key) if key is not None else []
        if len(matches) > 1:
            raise RecordError("DUPLICATE_EXTERNAL_ID", f"{ext}: more than one record found", [ext])
        if matches:
            self._update(sobject, matches[0]["Id"], values)
            return matches[0]["Id"], False
        return self._create(sobject, values), True

    def _view(self, sobject: str, record: dict[str, Any], fields: Iterable[str], version: str):  # type: ignore[no-untyped-def]
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            if "." in name:
                parent_field, _, rest = name.partition(".")
                ref = record.get(parent_field + "Id") or record.get(parent_field)
                parent_type = self._type_of(ref)
                parent = self.state.objects.get(parent_type or "", {}).get(ref or "")
                out[parent_field] = (
                    None
                    if parent is None
                    else {
                        **out.get(parent_field, {}),
                        "attributes": {
                            "type": parent_type,
                            "url": f"/services/data/v{version}/sobjects/{parent_type}/{ref}",
                        },
                        rest: parent.get(rest),
                    }
                )
            else:
                real = next((k for k in record if k.lower() == name.lower()), name)
                out[real] = record.get(real)
        return out

    def _type_of(self, rid: Any) -> str | None:
        if not isinstance(rid, str):
            return None
        return next((t for t, p in PREFIX.items() if rid.startswith(p)), None)

    # query --------------------------------------------------------------------------------------
    def _query(self, text: str, *, include_deleted: bool, version: str, batch: int) -> Any:
        try:
            q = parse(text)
        except SoqlError as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        schema = self.state.schema.get(q.sobject)
        if schema is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{q.sobject}' is not supported.")
        for name in q.fields:
            head = name.split(".")[0]
            known = {f.lower() for f in schema} | {
                f[:-2].lower() for f, s in schema.items() if s.type == "reference"
            }
            if head.lower() not in known:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{q.sobject}'."
                )
        rows = self.records(q.sobject, deleted=include_deleted)
        if q.where is not None:
            rows = [r for r in rows if q.where(self._joined(q.sobject, r))]
        for name, desc, nulls_last in reversed(q.order):  # stable sorts, last key first
            rows = _ordered(rows, name, desc=desc, nulls_last=nulls_last)
        if q.limit is not None:
            rows = rows[: q.limit]
        views = [self._view(q.sobject, r, q.fields, version) for r in rows]
        return self._page(views, 0, version, batch, include_deleted)

    def _joined(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        """A record with its parents reachable by relationship name (Account.Name)."""
        out = dict(record)
        for name, spec in self.state.schema[sobject].items():
            if spec.type == "reference" and record.get(name):
                parent_type = self._type_of(record[name])
                parent = self.state.objects.get(parent_type or "", {}).get(record[name])
                if parent is not None:
                    out[name[:-2]] = parent
        return out

    def _page(
        self, rows: list[dict[str, Any]], offset: int, version: str, batch: int, all_rows: bool
    ) -> dict[str, Any]:
        size = max(200, min(batch, self.page_size)) if batch else self.page_size
        page = rows[offset : offset + size]
        done = offset + size >= len(rows)
        out: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            locator = f"01g{next(self._ids):012d}"
            self.state.cursors[locator] = (rows, offset + size, "queryAll" if all_rows else "query")
            out["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + size}"
        return out

    # WSGI ---------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer one request."""
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            status, body, records = self._answer(method, path, environ, raw)
            headers = [("Content-Type", "application/json;charset=UTF-8")]
            headers.append(("Sforce-Limit-Info", f"api-usage={self.api_usage}/{self.daily_max}"))
            self.requests.append(Logged(method, path, status, records))
        text = b"" if body is None else json.dumps(body).encode()
        reason = {200: "OK", 201: "Created", 204: "No Content", 300: "Multiple Choices"}
        start_response(f"{status} {reason.get(status, 'Error')}", headers)
        return [text]

    def add_client(self, client_id: str, secret: str) -> None:
        """A connected app that may get tokens by the client-credentials flow."""
        with self._lock:
            self.clients[client_id] = secret

    def _token(self, environ: dict[str, Any], raw: bytes) -> tuple[int, Any, int]:
        """POST /services/oauth2/token, grant_type=client_credentials with HTTP Basic auth."""
        form = parse_qs(raw.decode())
        auth = environ.get("HTTP_AUTHORIZATION", "")
        try:
            client, _, secret = (
                base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            client, secret = "", ""
        grant = (form.get("grant_type") or [""])[0]
        if grant != "client_credentials":
            return (
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                0,
            )
        if not client or self.clients.get(client) != secret:
            return (
                400,
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                0,
            )
        self.token = f"00Dsandbox!token-{next(self._ids)}"
        self.tokens_issued += 1
        return (
            200,
            {
                "access_token": self.token,
                "instance_url": environ.get("signalplay.instance_url", ""),
                "id": "https://login.salesforce.com/id/00Dsandbox/005sandbox",
                "token_type": "Bearer",
                "issued_at": str(int(self.clock().timestamp() * 1000)),
                "signature": "sandbox",
            },
            0,
        )

    def _answer(
        self, method: str, path: str, environ: dict[str, Any], raw: bytes
    ) -> tuple[int, Any, int]:
        if path.rstrip("/") == "/services/oauth2/token" and method == "POST":
            host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "127.0.0.1")
            environ["signalplay.instance_url"] = f"https://{host}"
            return self._token(environ, raw)
        try:
            self._admit(path, environ)
            parts = [unquote(p) for p in path.strip("/").split("/")]
            versioned = len(parts) > 2 and parts[2].startswith("v")
            if not versioned or parts[:2] != ["services", "data"]:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character") from None
            return self._route(method, [p for p in parts[3:] if p], environ, body, parts[2][1:])
        except ApiError as exc:
            return exc.status, exc.body, 0
        except RecordError as exc:
            api = exc.as_api()
            return api.status, api.body, 0

    def _admit(self, path: str, environ: dict[str, Any]) -> None:
        """Session, daily allocation and injected faults, in the order Salesforce checks."""
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_usage += 1
        if self.api_usage > self.daily_max:
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        for fault in self._faults:
            if fault.path_contains in path and fault.times > 0:
                fault.times -= 1
                raise ApiError(fault.status, fault.code, fault.message)

    def _route(
        self, method: str, rest: list[str], environ: dict[str, Any], body: Any, version: str
    ) -> tuple[int, Any, int]:
        params = parse_qs(environ.get("QUERY_STRING", ""))
        head = rest[0] if rest else ""
        if head in ("query", "queryAll") and method == "GET":
            return self._query_route(head, rest, environ, params, version)
        if head == "limits":
            left = max(0, self.daily_max - self.api_usage)
            return 200, {"DailyApiRequests": {"Max": self.daily_max, "Remaining": left}}, 0
        if head == "sobjects":
            return self._sobjects(method, rest[1:], body, version)
        if rest[:2] == ["composite", "sobjects"]:
            return self._collections(method, rest[2:], body)
        if rest[:2] == ["actions", "standard"] and len(rest) == 3 and method == "POST":
            return self._cadence_action(rest[2], body)
        if head == "tooling":
            return self._tooling(method, rest[1:], body, params)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _query_route(
        self,
        head: str,
        rest: list[str],
        environ: dict[str, Any],
        params: dict[str, list[str]],
        version: str,
    ) -> tuple[int, Any, int]:
        if len(rest) == 2:  # a locator: <id>-<offset>
            locator = rest[1].rsplit("-", 1)[0]
            cursor = self.state.cursors.get(locator)
            if cursor is None:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            rows, offset, _ = cursor
            page = self._page(rows, offset, version, self.page_size, head == "queryAll")
            return 200, page, len(page["records"])
        batch = _batch_size(environ.get("HTTP_SFORCE_QUERY_OPTIONS", ""))
        q = (params.get("q") or [""])[0]
        page = self._query(q, include_deleted=head == "queryAll", version=version, batch=batch)
        return 200, page, len(page["records"])

    def _sobjects(
        self, method: str, rest: list[str], body: Any, version: str
    ) -> tuple[int, Any, int]:
        if not rest:
            return 200, self._global_describe(), 0
        sobject = rest[0]
        schema = self.state.schema.get(sobject)
        if schema is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        try:
            if rest[1:] == ["describe"] and method == "GET":
                fields = [f.describe() for f in schema.values()]
                return 200, {"name": sobject, "keyPrefix": PREFIX.get(sobject), "fields": fields}, 0
            if len(rest) == 1 and method == "POST":
                rid = self._create(sobject, dict(body or {}))
                return 201, {"id": rid, "success": True, "errors": []}, 1
            if len(rest) == 2:
                return self._by_id(method, sobject, rest[1], body, version)
            if len(rest) == 3 and method == "PATCH":
                return self._upsert_one(sobject, rest[1], rest[2], body, version)
        except RecordError as exc:
            raise exc.as_api() from None
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    # Tooling API: CustomField create, update and look-up, the metadata `crm setup` deploys ----
    def _tooling(
        self, method: str, rest: list[str], body: Any, params: dict[str, list[str]]
    ) -> tuple[int, Any, int]:
        if rest == ["query"] and method == "GET":
            return 200, self._tooling_query((params.get("q") or [""])[0]), 0
        if rest[:2] == ["sobjects", "CustomField"]:
            if len(rest) == 2 and method == "POST":
                return 201, self._create_custom_field(body or {}), 1
            if len(rest) == 3 and method == "PATCH":
                self._update_custom_field(rest[2], body or {})
                return 204, None, 1
            if len(rest) == 3 and method == "GET":
                found = self.state.custom_fields.get(rest[2])
                if found is None:
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                return 200, found, 0
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _create_custom_field(self, body: dict[str, Any]) -> dict[str, Any]:
        full = str(body.get("FullName") or "")
        meta = body.get("Metadata") or {}
        sobject, _, name = full.partition(".")
        if sobject not in self.state.schema:
            raise ApiError(400, "INVALID_TYPE", f"Cannot find the object {sobject!r}")
        if not name.endswith("__c") or not meta.get("label") or not meta.get("type"):
            raise ApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "A custom field needs FullName Object.Name__c, Metadata.label and Metadata.type",
            )
        kind = TOOLING_TYPES.get(str(meta["type"]))
        if kind is None:
            raise ApiError(400, "INVALID_FIELD", f"Unsupported field type {meta['type']!r}")
        if name in self.state.schema[sobject]:
            raise ApiError(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                f"There is already a field named {name[:-3]} on {sobject}.",
            )
        rid = "00N" + self._new_id("Account")[3:]
        self.state.custom_fields[rid] = {
            "Id": rid,
            "FullName": full,
            "DeveloperName": name[:-3],
            "TableEnumOrId": sobject,
            "Metadata": meta,
        }
        self.state.schema[sobject][name] = self._field_from(name, kind, meta)
        return {"id": rid, "success": True, "errors": [], "warnings": [], "infos": []}

    def _update_custom_field(self, rid: str, body: dict[str, Any]) -> None:
        found = self.state.custom_fields.get(rid)
        if found is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        meta = body.get("Metadata") or {}
        if meta.get("type") not in (None, found["Metadata"].get("type")):
            raise ApiError(400, "FIELD_INTEGRITY_EXCEPTION", "The field type cannot change here")
        found["Metadata"] = {**found["Metadata"], **meta}
        name = found["DeveloperName"] + "__c"
        kind = TOOLING_TYPES[str(found["Metadata"]["type"])]
        self.state.schema[found["TableEnumOrId"]][name] = self._field_from(
            name, kind, found["Metadata"]
        )

    @staticmethod
    def _field_from(name: str, kind: str, meta: dict[str, Any]) -> Field:
        values = (meta.get("valueSet") or {}).get("valueSetDefinition", {}).get("value", [])
        return Field(
            name,
            kind,
            external_id=bool(meta.get("externalId")),
            unique=bool(meta.get("unique")),
            picklist=tuple(str(v["fullName"]) for v in values),
            restricted=bool((meta.get("valueSet") or {}).get("restricted")),
            custom=True,
        )

    def _tooling_query(self, soql: str) -> dict[str, Any]:
        """The one Tooling query `crm setup` makes: a CustomField by DeveloperName and object."""
        match = _TOOLING_FIELD_QUERY.fullmatch(soql.strip())
        if match is None:
            raise ApiError(400, "MALFORMED_QUERY", f"unsupported Tooling query: {soql[:80]}")
        wanted = {match["a"]: match["av"], match["b"]: match["bv"]}
        rows = [
            {"attributes": {"type": "CustomField"}, "Id": cf["Id"]}
            for cf in self.state.custom_fields.values()
            if cf["DeveloperName"] == wanted.get("DeveloperName")
            and cf["TableEnumOrId"] == wanted.get("TableEnumOrId")
        ]
        return {
            "size": len(rows),
            "totalSize": len(rows),
            "done": True,
            "queryLocator": None,
            "entityTypeName": "CustomField",
            "records": rows,
        }

    def _global_describe(self) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": MAX_COLLECTION,
            "sobjects": [
                {
                    "name": t,
                    "label": t,
                    "keyPrefix": PREFIX.get(t),
                    "queryable": True,
                    "createable": True,
                    "updateable": True,
                    "custom": False,
                }
                for t in sorted(self.state.schema)
            ],
        }

    def _by_id(
        self, method: str, sobject: str, rid: str, body: Any, version: str
    ) -> tuple[int, Any, int]:
        record = self.state.objects.get(sobject, {}).get(rid)
        if record is None or record["IsDeleted"]:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "GET":
            return 200, self._view(sobject, record, list(record), version), 1
        if method == "PATCH":
            self._update(sobject, rid, dict(body or {}))
            return 204, None, 1
        if method == "DELETE":
            record["IsDeleted"] = True
            record["SystemModstamp"] = _api_time(self.clock())
            return 204, None, 1
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")

    def _upsert_one(
        self, sobject: str, ext: str, value: str, body: Any, version: str
    ) -> tuple[int, Any, int]:
        matches = self._lookup(sobject, ext, value)
        if len(matches) > 1:
            urls = [f"/services/data/v{version}/sobjects/{sobject}/{r['Id']}" for r in matches]
            return 300, urls, 0
        rid, created = self._upsert(sobject, ext, {**(body or {}), ext: value})
        result = {"id": rid, "success": True, "errors": [], "created": created}
        return (201 if created else 200), result, 1

    def _cadence_action(self, action: str, body: Any) -> tuple[int, Any, int]:
        """AssignTargetToSalesCadence / removeTargetFromSalesCadence.

        One result per input; an active enrollment of the same target is a per-input
        failure. When every input fails the HTTP status is `self.cadence_all_failed_status`
        (400 is what users report).
        """
        handlers = {
            "assignTargetToSalesCadence": self._assign,
            "removeTargetFromSalesCadence": self._remove,
        }
        handler = handlers.get(action)
        if handler is None:
            raise ApiError(404, "NOT_FOUND", f"Invalid action: {action}")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, "JSON_PARSER_ERROR", "inputs is required")
        results: list[dict[str, Any]] = []
        for item in inputs:
            try:
                handler(item if isinstance(item, dict) else {})
                results.append(
                    {"actionName": action, "errors": None, "isSuccess": True, "outputValues": None}
                )
            except RecordError as exc:
                results.append(
                    {
                        "actionName": action,
                        "errors": [exc.error],
                        "isSuccess": False,
                        "outputValues": None,
                    }
                )
        all_failed = not any(r["isSuccess"] for r in results)
        return (self.cadence_all_failed_status if all_failed else 200), results, len(inputs)

    def _cadence(self, name_or_id: Any) -> dict[str, Any]:
        for cadence in self.records("ActionCadence"):
            if name_or_id in (cadence["Id"], cadence.get("Name")):
                return cadence
        raise RecordError(
            "INVALID_INPUT", f"No sales cadence found: {name_or_id}", ["salesCadenceNameOrId"]
        )

    def _active_trackers(self, target: Any) -> list[dict[str, Any]]:
        return [
            t
            for t in self.records("ActionCadenceTracker")
            if t["TargetId"] == target and t["State"] in ("Initializing", "Running")
        ]

    def _assign(self, item: dict[str, Any]) -> None:
        for required in ("salesCadenceNameOrId", "targetId"):
            if not item.get(required):
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Missing required input: {required}", [required]
                )
        cadence = self._cadence(item["salesCadenceNameOrId"])
        target = item["targetId"]
        if not self._exists(("Contact",), target):
            raise RecordError(
                "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {target}", ["targetId"]
            )
        if self._active_trackers(target):
            raise RecordError(
                "INVALID_OPERATION",
                "The target is already assigned to an active sales cadence.",
                ["targetId"],
            )
        self._insert(
            "ActionCadenceTracker",
            {
                "ActionCadenceId": cadence["Id"],
                "TargetId": target,
                "AssignedToId": item.get("userId"),
                "State": "Running",
            },
        )

    def _remove(self, item: dict[str, Any]) -> None:
        active = self._active_trackers(item.get("targetId"))
        if not active:
            raise RecordError(
                "INVALID_OPERATION", "The target is not in an active sales cadence.", ["targetId"]
            )
        for tracker in active:
            tracker["State"] = "Complete"
            tracker["CompletionReason"] = item.get("completionReasonCode") or "ManuallyRemoved"
            tracker["SystemModstamp"] = _api_time(self.clock())

    def _collections(self, method: str, rest: list[str], body: Any) -> tuple[int, Any, int]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "records is required")
        records: list[dict[str, Any]] = body["records"]
        if len(records) > MAX_COLLECTION:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"Record limit reached. Cannot submit more than {MAX_COLLECTION} records into "
                "this call",
            )
        all_or_none = bool(body.get("allOrNone"))
        snapshot = json.loads(json.dumps(self.state.objects)) if all_or_none else None
        ids_before = self._ids
        results: list[dict[str, Any]] = []
        failed = False
        for rec in records:
            try:
                result = self._collection_one(method, rest, rec)
            except RecordError as exc:
                failed = True
                results.append({"success": False, "errors": [exc.error]})
                continue
            results.append(result)
        if all_or_none and failed:
            self.state.objects = snapshot  # type: ignore[assignment]
            self._ids = ids_before
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": ROLLED_BACK,
                "fields": [],
            }
            results = [
                r if not r["success"] else {"id": r.get("id"), "success": False, "errors": [rolled]}
                for r in results
            ]
        return 200, results, len(records)

    def _collection_one(self, method: str, rest: list[str], rec: dict[str, Any]) -> dict[str, Any]:
        sobject = (rec.get("attributes") or {}).get("type") or (rest[0] if rest else None)
        if sobject not in self.state.schema:
            raise RecordError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        if method == "POST" and not rest:
            return {"id": self._create(sobject, rec), "success": True, "errors": []}
        if method == "PATCH" and not rest:
            rid = rec.get("id") or rec.get("Id")
            if not rid:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            self._update(sobject, rid, rec)
            return {"id": rid, "success": True, "errors": []}
        if method == "PATCH" and len(rest) == 2:
            rid, created = self._upsert(sobject, rest[1], rec)
            return {"id": rid, "success": True, "errors": [], "created": created}
        raise RecordError("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")


CLOSED_TASK_STATUSES = frozenset({"Completed"})  # the default org's TaskStatus with IsClosed


def _derive(sobject: str, record: dict[str, Any], now: str) -> None:
    """Read-only fields Salesforce computes.

    A Task's IsClosed from its Status, and its CompletedDateTime when it closes (cleared when it
    is reopened).
    """
    if sobject == "Opportunity":  # the default org's closed stages
        record["IsClosed"] = record.get("StageName") in ("Closed Won", "Closed Lost")
        record["IsWon"] = record.get("StageName") == "Closed Won"
    if sobject == "Task":
        was = bool(record.get("IsClosed"))
        record["IsClosed"] = record.get("Status") in CLOSED_TASK_STATUSES
        if record["IsClosed"] and not was:
            record["CompletedDateTime"] = now
        elif not record["IsClosed"]:
            record["CompletedDateTime"] = None


def _ordered(
    rows: list[dict[str, Any]], name: str, *, desc: bool, nulls_last: bool
) -> list[dict[str, Any]]:
    """Rows ordered on one field, nulls first or last (SOQL's default: first when ascending)."""
    present = [r for r in rows if lookup(r, name) is not None]
    missing = [r for r in rows if lookup(r, name) is None]
    present.sort(key=functools.partial(_value_of, name), reverse=desc)
    return present + missing if nulls_last else missing + present


def _value_of(name: str, row: dict[str, Any]) -> Any:
    return lookup(row, name)


def _batch_size(header: str) -> int:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "batchsize" and value.isdigit():
            return int(value)
    return 0


def tls(tmp: Any) -> tuple[Any, str]:
    """A server SSL context for loopback, signed by a throw-away CA.

    A server SSL context for 127.0.0.1/localhost signed by a throw-away CA, and the CA's PEM
    path (written under `tmp`) for the client's `requests.Session.verify`.
    """
    import ssl
    from pathlib import Path

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    pem = Path(tmp) / "signalplay-sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return context, str(pem)


__all__ = ["Field", "SalesforceSandbox", "tls"]
