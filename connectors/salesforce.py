"""Salesforce through simple-salesforce 1.12, in a typed facade.

Reads Accounts, Contacts, AccountContactRoles, Users, Opportunities and the Tasks signalplay
wrote, incrementally on SystemModstamp through queryAll (so deletes arrive with IsDeleted), and
writes Tasks by sObject Collections upsert on the external-id field holding the episode key (200
per call) and Account fields by Collections update. simple-salesforce has no timeout and no
retry of its own: a transport adapter puts a timeout on every request, and our one retry policy
(connectors/_retry.py) wraps each call; an expired session is an AuthError (a direct session
cannot be refreshed). Facts: shared/reference/salesforce.md.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote_plus

import requests
from pydantic import BaseModel, ConfigDict, SecretStr
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from signalplay.connectors._ratelimit import (
    RateLimitSettings,
    Window,
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import call_translated, call_with_retry, failed
from signalplay.errors import AuthError, FatalError, RateLimitedError, RetriableError, SyncError
from signalplay.models import (
    TASK_OUTCOME,
    CrmField,
    CrmMetadata,
    FieldSpec,
    Page,
    RecordRef,
    SourceRecord,
    StreamSpec,
    WriteAction,
    WriteOp,
    WriteResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_CAP = 200  # records per sObject Collections call
STREAMS = {
    "accounts": "Account",
    "contacts": "Contact",
    "contact_roles": "AccountContactRole",
    "opportunity_contact_roles": "OpportunityContactRole",
    "users": "User",
    "opportunities": "Opportunity",
    "tasks": "Task",
}
PRIORITY = {"low": "Low", "medium": "Normal", "high": "High", "urgent": "High"}
RETRIABLE_CODES = {"UNABLE_TO_LOCK_ROW", "QUERY_TIMEOUT", "SERVER_UNAVAILABLE"}
EPOCH = "1970-01-01T00:00:00Z"


class SalesforceSettings(BaseModel):
    """The `crm:` block for Salesforce; the token comes from SIGNALPLAY_CRM__ACCESS_TOKEN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "salesforce"
    instance_url: str
    access_token: SecretStr | None = None  # a session id; or a connected app's credentials:
    client_id: str | None = None  # client-credentials flow, a fresh token on an expired one
    client_secret: SecretStr | None = None
    api_version: str = "59.0"
    ca_bundle: str | None = None  # the sandbox's test CA; None: the system's trust store
    task_key_field: str = "Signalplay_Key__c"
    closure_reason_field: str = "Signalplay_Closure_Reason__c"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retry_seconds: float = 60.0
    # The smallest org's daily allocation (Developer Edition): raise it to your org's share.
    rate_limit: RateLimitSettings = RateLimitSettings(
        windows=(Window(limit=15_000, seconds=86_400),)
    )


class _TimeoutAdapter(HTTPAdapter):
    """Every request gets a timeout (simple-salesforce passes none on most calls)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send with the default timeout unless one is given."""
        kwargs["timeout"] = kwargs.get("timeout") or self._timeout
        return super().send(request, **kwargs)


def classify(exc: Exception, operation: str) -> SyncError:
    """A simple-salesforce or transport failure as one of our error kinds."""
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return RetriableError("salesforce", operation, f"transport: {exc}")
    if isinstance(exc, SalesforceError):
        raw: Any = exc.content  # typed as bytes, but the client hands over the parsed JSON list
        content: list[Any] = raw if isinstance(raw, list) else []
        code = content[0].get("errorCode", "") if content and isinstance(content[0], dict) else ""
        message = content[0].get("message", str(exc)) if code else str(exc)[:300]
        detail = f"{code}: {message}" if code else message
        if exc.status == 401:
            return AuthError("salesforce", operation, detail, status=401)
        if code == "REQUEST_LIMIT_EXCEEDED":
            # The rolling 24-hour allocation: waiting minutes does not help; stop and resume later.
            return RateLimitedError("salesforce", operation, detail, status=exc.status)
        if exc.status >= 500 or exc.status in (420, 429) or code in RETRIABLE_CODES:
            return RetriableError("salesforce", operation, detail, status=exc.status)
        return FatalError("salesforce", operation, detail, status=exc.status)
    return FatalError("salesforce", operation, f"{type(exc).__name__}: {exc}")


def _translate(exc: Exception, operation: str) -> SyncError | None:
    if isinstance(exc, SalesforceError | requests.RequestException):
        return classify(exc, operation)
    return None


class SalesforceConnector:
    """Salesforce as a source of accounts, contacts and roles, and the CRM plays are written to."""

    settings_model: ClassVar[type[BaseModel]] = SalesforceSettings
    max_batch = BATCH_CAP

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        source: str = "crm",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        sleep, clock = pacing(sleep)
        self._sleep = sleep
        self.budget = make_budget(
            settings.rate_limit,
            key=budget_key("salesforce", settings.instance_url),
            broker=broker,
            clock=clock,
        )
        session = requests.Session()
        session.trust_env = False  # env CA bundles and proxies must not capture these calls
        if settings.ca_bundle:
            ca = Path(settings.ca_bundle)
            if not ca.is_absolute() and isinstance(root, Path):
                ca = root / ca  # relative to the project, not the working directory
            if not ca.is_file():
                raise FatalError(
                    "salesforce", "connect", f"crm.ca_bundle: no CA certificate file at {ca}"
                )
            session.verify = str(ca)
        adapter = _TimeoutAdapter((settings.connect_timeout, settings.read_timeout))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._session = session
        token = (
            settings.access_token.get_secret_value()
            if settings.access_token is not None
            else self._new_token()
        )
        self.sf = Salesforce(
            instance_url=settings.instance_url,
            session_id=token,
            session=session,
            version=settings.api_version,
        )
        self._fields: dict[str, list[str]] = {}

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

    def _new_token(self) -> str:
        """A token by the OAuth client-credentials flow of the configured connected app."""
        s = self.settings
        if not s.client_id or s.client_secret is None:
            raise AuthError(
                "salesforce",
                "login",
                "set SIGNALPLAY_CRM__ACCESS_TOKEN, or client_id and SIGNALPLAY_CRM__CLIENT_SECRET",
            )
        url = s.instance_url.rstrip("/") + "/services/oauth2/token"
        client, secret = s.client_id, s.client_secret.get_secret_value()

        def login() -> str:
            try:
                resp = self._session.post(
                    url, data={"grant_type": "client_credentials"}, auth=(client, secret)
                )
            except requests.RequestException as exc:
                raise RetriableError("salesforce", "login", f"transport: {exc}") from None
            try:
                body: Any = resp.json()
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}  # an outage answers lists, or HTML
            if resp.status_code == 200 and "access_token" in body:
                return str(body["access_token"])
            detail = f"{body.get('error', resp.status_code)}: {body.get('error_description', '')}"
            if resp.status_code >= 500 or resp.status_code == 429:
                raise RetriableError("salesforce", "login", detail, status=resp.status_code)
            raise AuthError("salesforce", "login", detail, status=resp.status_code)

        if self._sleep is None:
            return call_with_retry(login, max_delay=s.max_retry_seconds)
        return call_with_retry(login, max_delay=s.max_retry_seconds, sleep=self._sleep)

    def _refresh(self) -> bool:
        """Replace an expired session by a fresh token; False when there is no way to."""
        if not self.settings.client_id or self.settings.client_secret is None:
            return False
        token = self._new_token()
        self.sf.session_id = token
        self.sf.headers["Authorization"] = "Bearer " + token
        log.info("salesforce session renewed")
        return True

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        def retried() -> T:
            return call_translated(
                fn,
                operation=operation,
                translate=_translate,
                max_delay=self.settings.max_retry_seconds,
                sleep=self._sleep,
                budget=self.budget,
            )

        try:
            return retried()
        except AuthError:
            # One fresh session, then the call once more: a second 401 is final (no login loop).
            if not self._refresh():
                raise
            return retried()

    # reading ------------------------------------------------------------------------------------
    def streams(self) -> Sequence[StreamSpec]:
        """Accounts, contacts, their roles on accounts and on opportunities, users,
        opportunities (renewals) and signalplay's tasks."""
        return [StreamSpec(name=n, cursor_field="SystemModstamp") for n in STREAMS]

    def _field_names(self, sobject: str) -> list[str]:
        if sobject not in self._fields:
            described = self._call(f"describe {sobject}", getattr(self.sf, sobject).describe)
            self._fields[sobject] = [f["name"] for f in described["fields"]]
        return self._fields[sobject]

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Records changed after `cursor` up to `until`, deletes included (IsDeleted), oldest
        first; each page's cursor is its last SystemModstamp."""
        sobject = STREAMS[stream]
        names = self._field_names(sobject)
        since = cursor or EPOCH
        upto = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # >= : a record stamped in the same second as the cursor is read again, never missed
        where = f"SystemModstamp >= {since} AND SystemModstamp <= {upto}"
        if stream == "tasks":
            where += f" AND {self.settings.task_key_field} != null"
        soql = f"SELECT {', '.join(names)} FROM {sobject} WHERE {where} ORDER BY SystemModstamp, Id"  # noqa: S608 - SOQL from our own field names
        page = self._call(
            f"query {sobject}", functools.partial(self.sf.query, soql, include_deleted=True)
        )
        while True:
            records = tuple(self._record(stream, r) for r in page["records"])
            last = records[-1].data["SystemModstamp"] if records else cursor
            yield Page(records=records, cursor=_soql_time(last) if last else cursor)
            if page.get("done", True):
                return
            page = self._call(
                f"query more {sobject}",
                functools.partial(
                    self.sf.query_more,
                    page["nextRecordsUrl"],
                    identifier_is_url=True,
                    include_deleted=True,
                ),
            )

    def _record(self, stream: str, raw: Mapping[str, Any]) -> SourceRecord:
        data = {k: v for k, v in raw.items() if k != "attributes"}
        data["id"] = data.get("Id")
        if stream == "tasks":
            data[TASK_OUTCOME] = {
                "key": data.get(self.settings.task_key_field),
                "closed": bool(data.get("IsClosed")),
                "completed_at": data.get("CompletedDateTime"),
                "closure_reason": data.get(self.settings.closure_reason_field),
                "owner_id": data.get("OwnerId"),
            }
        stamp = data.get("SystemModstamp")
        return SourceRecord(
            source=self.source,
            stream=stream,
            record_id=str(data["Id"]),
            data=data,
            updated_at=_parse_time(stamp) if stamp else None,
        )

    def fetch_current(
        self, refs: Sequence[RecordRef], *, fields: Sequence[str]
    ) -> Mapping[RecordRef, dict[str, str | None]]:
        """Current Account values by SOQL, 200 ids per query; missing records are left out."""
        ids = [r.record_id for r in refs if r.object_type in ("companies", "accounts", "Account")]
        out: dict[RecordRef, dict[str, str | None]] = {}
        by_id = {r.record_id: r for r in refs}
        for start in range(0, len(ids), BATCH_CAP):
            chunk = ids[start : start + BATCH_CAP]
            quoted = ", ".join(f"'{i}'" for i in chunk if _safe_id(i))
            if not quoted:
                continue
            soql = f"SELECT Id, {', '.join(fields)} FROM Account WHERE Id IN ({quoted})"  # noqa: S608
            result = self._call("read accounts", functools.partial(self.sf.query_all, soql))
            for row in result["records"]:
                out[by_id[row["Id"]]] = {f: _text(row.get(f)) for f in fields}
        return out

    def ensure_schema(self, account_fields: Sequence[str] = ()) -> list[str]:
        """Check that the fields signalplay writes exist (creating them is `crm setup`, through
        the Metadata API); returns nothing created, raises naming what is missing."""
        missing = [f for f in account_fields if f not in self._field_names("Account")]
        if self.settings.task_key_field not in self._field_names("Task"):
            missing.append(f"Task.{self.settings.task_key_field}")
        if missing:
            raise FatalError(
                "salesforce", "check fields", f"missing custom fields: {', '.join(missing)}"
            )
        return []

    # provisioning and preflight (`signalplay crm setup` / `crm check`) -------------------------
    @property
    def task_fields(self) -> dict[str, str]:
        """The Task fields signalplay owns, by role."""
        return {
            "episode_key": self.settings.task_key_field,
            "closure_reason": self.settings.closure_reason_field,
        }

    def describe_crm(self) -> CrmMetadata:
        """Account and Task fields as describe reports them, and the active users (owners)."""
        fields: dict[str, dict[str, CrmField]] = {}
        for obj, sobject in SOBJECTS.items():
            described = self._call(f"describe {sobject}", getattr(self.sf, sobject).describe)
            fields[obj] = {
                f["name"]: CrmField(
                    name=f["name"],
                    kind=_sf_kind(f["type"]),
                    options=tuple(
                        p["value"] for p in f.get("picklistValues") or () if p.get("active", True)
                    ),
                    unique=bool(f.get("externalId")) and bool(f.get("unique")),
                )
                for f in described["fields"]
            }
        users = self._call(
            "list users",
            lambda: self.sf.query_all("SELECT Id FROM User WHERE IsActive = true"),
        )
        return CrmMetadata(fields=fields, owners=frozenset(str(u["Id"]) for u in users["records"]))

    def create_field(self, spec: FieldSpec) -> None:
        """Deploy one custom field through the Tooling API's CustomField (Metadata) object."""
        sobject = SOBJECTS[spec.object]
        body = {"FullName": f"{sobject}.{spec.name}", "Metadata": _sf_metadata(spec)}
        self._call(
            f"create field {sobject}.{spec.name}",
            lambda: self.sf.toolingexecute("sobjects/CustomField/", method="POST", data=body),
        )
        self._fields.pop(sobject, None)

    def add_picklist_values(self, spec: FieldSpec, values: Sequence[str]) -> None:
        """Extend a custom picklist field's value set (the values it has are kept)."""
        sobject = SOBJECTS[spec.object]
        developer_name = spec.name.removesuffix("__c")
        name, table = _soql_text(developer_name), _soql_text(sobject)  # escaped for SOQL
        soql = f"SELECT Id FROM CustomField WHERE DeveloperName = '{name}' AND TableEnumOrId = '{table}'"  # noqa: E501, S608
        found = self._call(
            "find field", lambda: self.sf.toolingexecute(f"query/?q={quote_plus(soql)}")
        )
        records = found.get("records") or [] if isinstance(found, dict) else []
        if not records:
            raise FatalError(
                "salesforce",
                "add picklist values",
                f"{sobject}.{spec.name} is not a custom field signalplay can extend: add "
                f"{', '.join(values)} to it in Setup",
            )
        have = self.describe_crm().fields[spec.object][spec.name].options
        merged = [*have, *(v for v in values if v not in have)]
        meta = _sf_metadata(replace(spec, options=tuple(merged)))
        rid = records[0]["Id"]
        self._call(
            "update field",
            lambda: self.sf.toolingexecute(
                f"sobjects/CustomField/{rid}", method="PATCH", data={"Metadata": meta}
            ),
        )
        self._fields.pop(sobject, None)

    # writing ------------------------------------------------------------------------------------
    def write(self, ops: Sequence[WriteOp]) -> Sequence[WriteResult]:
        """Apply ops in collections of 200; one result per op, in the order given."""
        results: dict[str, WriteResult] = {}
        tasks = [o for o in ops if o.action is WriteAction.UPSERT_TASK]
        closes = [o for o in ops if o.action is WriteAction.CLOSE_TASK]
        for start in range(0, len(closes), BATCH_CAP):
            done, still_open = self._open_tasks(closes[start : start + BATCH_CAP])
            results.update(done)
            tasks += still_open
        fields = [o for o in ops if o.action is WriteAction.UPDATE_FIELDS]
        enrolls = [o for o in ops if o.action is WriteAction.ENROLL]
        removals = [o for o in ops if o.action is WriteAction.UNENROLL]
        key = self.settings.task_key_field
        for start in range(0, len(tasks), BATCH_CAP):
            chunk = tasks[start : start + BATCH_CAP]
            results.update(
                self._collection(
                    "upsert tasks",
                    f"composite/sobjects/Task/{key}",
                    chunk,
                    [self._task_record(o) for o in chunk],
                )
            )
        for start in range(0, len(fields), BATCH_CAP):
            chunk = fields[start : start + BATCH_CAP]
            records = [
                {"attributes": {"type": "Account"}, "id": o.target, **o.values} for o in chunk
            ]
            results.update(
                self._collection("update accounts", "composite/sobjects", chunk, records)
            )
        for start in range(0, len(enrolls), BATCH_CAP):
            results.update(self._enroll(enrolls[start : start + BATCH_CAP]))
        for start in range(0, len(removals), BATCH_CAP):
            results.update(self._unenroll(removals[start : start + BATCH_CAP]))
        return [
            results.get(o.op_key)
            or WriteResult(op_key=o.op_key, ok=False, error=f"unsupported action {o.action}")
            for o in ops
        ]

    def _open_tasks(self, ops: Sequence[WriteOp]) -> tuple[dict[str, WriteResult], list[WriteOp]]:
        """Of the tasks to close, those already closed (by a CSM, with their reason) are done as
        they are; the open ones are returned to be closed."""
        key = self.settings.task_key_field
        keys = [o.target for o in ops]
        quoted = ", ".join(f"'{_soql_text(k)}'" for k in keys)
        soql = f"SELECT {key}, IsClosed FROM Task WHERE {key} IN ({quoted})"  # noqa: S608
        try:
            rows = self._call("read tasks", functools.partial(self.sf.query_all, soql))
        except SyncError as exc:
            return {o.op_key: failed(o, exc) for o in ops}, []
        closed = {r[key]: bool(r.get("IsClosed")) for r in rows["records"]}
        done: dict[str, WriteResult] = {}
        still_open: list[WriteOp] = []
        for op in ops:
            if op.target not in closed:
                error = "no task with this key in Salesforce (deleted, or never written)"
                done[op.op_key] = WriteResult(op_key=op.op_key, ok=False, error=error)
            elif closed[op.target]:
                done[op.op_key] = WriteResult(op_key=op.op_key, ok=True)
            else:
                still_open.append(op)
        return done, still_open

    def _task_record(self, op: WriteOp) -> dict[str, Any]:
        if op.action is WriteAction.CLOSE_TASK:
            closing = {
                "attributes": {"type": "Task"},
                self.settings.task_key_field: op.target,
                "Status": "Completed",
            }
            reason = self.settings.closure_reason_field
            if op.values.get("closure_reason") and reason in self._field_names("Task"):
                closing[reason] = str(op.values["closure_reason"])
            return closing
        values = op.values
        record: dict[str, Any] = {
            "attributes": {"type": "Task"},
            self.settings.task_key_field: op.target,
            "Subject": str(values.get("subject") or "")[:255],
            "Description": str(values.get("body") or "")[:32000],
            "Priority": PRIORITY.get(str(values.get("priority")), "Normal"),
            "ActivityDate": str(values.get("due_at") or "")[:10] or None,
        }
        if values.get("status") == "open":
            record["Status"] = "Not Started"
        if values.get("owner_id"):
            record["OwnerId"] = str(values["owner_id"])
        accounts = [r.record_id for r in op.associations if r.object_type != "contacts"]
        contacts = [r.record_id for r in op.associations if r.object_type == "contacts"]
        if accounts:
            record["WhatId"] = accounts[0]
        if contacts:
            record["WhoId"] = contacts[0]  # a Task names one contact; the play lists the rest
        return record

    def _enroll(self, ops: Sequence[WriteOp]) -> dict[str, WriteResult]:
        """Cadence enrollment of each op's contacts through the standard invocable action;
        contacts already in an active cadence are skipped (a re-run enrolls nobody twice)."""
        targets = sorted(
            {r.record_id for o in ops for r in o.associations if _safe_id(r.record_id)}
        )
        try:
            active = self._active_targets(targets)
        except SyncError as exc:
            return {o.op_key: failed(o, exc) for o in ops}
        inputs: list[dict[str, Any]] = []
        owners: list[WriteOp] = []
        for op in ops:
            for ref in op.associations:
                if ref.object_type == "contacts" and ref.record_id not in active:
                    item = {
                        "salesCadenceNameOrId": op.values.get("sequence"),
                        "targetId": ref.record_id,
                    }
                    if op.values.get("owner_id"):
                        item["userId"] = op.values["owner_id"]
                    inputs.append(item)
                    owners.append(op)
        answers: list[dict[str, Any]] = []
        if inputs:
            try:
                answers = self._invoke("assignTargetToSalesCadence", inputs)
            except SyncError as exc:
                return {o.op_key: failed(o, exc) for o in ops}
        errors: dict[str, str] = {}
        for op, answer in zip(owners, answers, strict=False):
            if not answer.get("isSuccess") and op.op_key not in errors:
                first = (answer.get("errors") or [{}])[0]
                errors[op.op_key] = f"{first.get('statusCode', '')}: {first.get('message', '')}"
        return {
            o.op_key: WriteResult(
                op_key=o.op_key, ok=o.op_key not in errors, error=errors.get(o.op_key)
            )
            for o in ops
        }

    def _unenroll(self, ops: Sequence[WriteOp]) -> dict[str, WriteResult]:
        """End the cadences of each op's contacts; a contact no longer in one is already done."""
        targets = sorted(
            {r.record_id for o in ops for r in o.associations if _safe_id(r.record_id)}
        )
        try:
            active = self._active_targets(targets)
            inputs = [
                {"targetId": t, "completionReasonCode": "ManuallyRemoved"}
                for t in targets
                if t in active
            ]
            answers = self._invoke("removeTargetFromSalesCadence", inputs) if inputs else []
        except SyncError as exc:
            return {o.op_key: failed(o, exc) for o in ops}
        failed = {
            i["targetId"]: a
            for i, a in zip(inputs, answers, strict=False)
            if not a.get("isSuccess")
        }
        out: dict[str, WriteResult] = {}
        for op in ops:
            bad = [failed[r.record_id] for r in op.associations if r.record_id in failed]
            error = None
            if bad:
                first = (bad[0].get("errors") or [{}])[0]
                error = f"{first.get('statusCode', '')}: {first.get('message', '')}"
            out[op.op_key] = WriteResult(op_key=op.op_key, ok=not bad, error=error)
        return out

    def _active_targets(self, targets: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(targets), BATCH_CAP):
            quoted = ", ".join(f"'{t}'" for t in targets[start : start + BATCH_CAP])
            soql = (
                "SELECT TargetId FROM ActionCadenceTracker WHERE TargetId IN "  # noqa: S608
                f"({quoted}) AND State IN ('Initializing', 'Running')"
            )
            rows = self._call("read cadence trackers", functools.partial(self.sf.query_all, soql))
            found.update(r["TargetId"] for r in rows["records"])
        return found

    def _invoke(self, action: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An invocable action; when every input fails Salesforce answers 400 with the same
        per-input array, which is read as results, not as a failed call."""
        path = f"actions/standard/{action}"

        def call() -> Any:
            try:
                return self.sf.restful(path, method="POST", json={"inputs": inputs})
            except SalesforceError as exc:
                raw: Any = exc.content
                if exc.status == 400 and isinstance(raw, list) and raw and "isSuccess" in raw[0]:
                    return raw
                raise

        answer = self._call(action, call)
        return list(answer or [])

    def _collection(
        self, operation: str, path: str, ops: Sequence[WriteOp], records: list[dict[str, Any]]
    ) -> dict[str, WriteResult]:
        body = {"allOrNone": False, "records": records}
        try:
            answer = self._call(
                operation, functools.partial(self.sf.restful, path, method="PATCH", json=body)
            )
        except SyncError as exc:
            return {o.op_key: failed(o, exc) for o in ops}
        out: dict[str, WriteResult] = {}
        for op, result in zip(ops, answer or [], strict=False):
            if result.get("success"):
                out[op.op_key] = WriteResult(
                    op_key=op.op_key,
                    ok=True,
                    crm_id=result.get("id"),
                    created=bool(result.get("created")),
                )
                continue
            errors = result.get("errors") or [{}]
            code = errors[0].get("statusCode", "")
            out[op.op_key] = WriteResult(
                op_key=op.op_key,
                ok=False,
                error=f"{code}: {errors[0].get('message', '')}",
                retriable=code in RETRIABLE_CODES,
            )
        return out


def _soql_time(value: str) -> str:
    """An API datetime (`2026-01-02T10:00:00.000+0000`) as a SOQL literal (`...Z`)."""
    return _parse_time(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and ":" not in text[-5:]:
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _safe_id(value: str) -> bool:
    return value.isalnum() and len(value) in (15, 18)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


SOBJECTS = {"account": "Account", "task": "Task"}
_SF_KINDS = {
    "double": "number",
    "int": "number",
    "currency": "number",
    "percent": "number",
    "textarea": "textarea",
    "picklist": "picklist",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
}


def _sf_kind(sf_type: str) -> str:
    return _SF_KINDS.get(sf_type, "text")


def _sf_metadata(spec: FieldSpec) -> dict[str, Any]:
    """The CustomField Metadata for a field signalplay writes."""
    meta: dict[str, Any] = {"label": (spec.label or spec.name)[:40]}
    if spec.kind == "number":
        meta |= {"type": "Number", "precision": 18, "scale": 2}
    elif spec.kind == "textarea":
        meta |= {"type": "LongTextArea", "length": 32768, "visibleLines": 3}
    elif spec.kind == "picklist":
        meta |= {
            "type": "Picklist",
            "valueSet": {
                "restricted": True,
                "valueSetDefinition": {
                    "sorted": False,
                    "value": [{"fullName": o, "label": o, "default": False} for o in spec.options],
                },
            },
        }
    elif spec.kind in ("date", "datetime"):
        meta["type"] = "Date" if spec.kind == "date" else "DateTime"
    elif spec.kind == "boolean":
        meta |= {"type": "Checkbox", "defaultValue": "false"}
    else:
        meta |= {"type": "Text", "length": 255}
        if spec.unique:
            meta |= {"externalId": True, "unique": True, "caseSensitive": True}
    return meta


def _soql_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
