"""HubSpot through hubspot-api-client 12.0.0, in a typed facade.

Reads companies, contacts (with their company) and owners; writes tasks by batch upsert on a
unique episode-key property (100 inputs per call), links them with v4 associations, and updates
company properties by batch update. SDK retries stay off (`retry=None`: urllib3 skips POST and
PATCH); our one retry policy wraps each call, with a timeout on every call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar, TypeVar

from hubspot import HubSpot
from pydantic import BaseModel, ConfigDict, SecretStr
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from signalplay.connectors._ratelimit import (
    RateLimitSettings,
    Window,
    budget_key,
    make_budget,
    pacing,
)
from signalplay.connectors._retry import call_translated, failed, parse_retry_after
from signalplay.errors import (
    AuthError,
    FatalError,
    RateLimitedError,
    RetriableError,
    SyncError,
)
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
HTTP_CONFLICT = 409
T = TypeVar("T")

BATCH_CAP = 100  # inputs per batch call (developers.hubspot.com/docs/api/crm/understanding-the-crm)
PAGE_CAP = 100  # results per list page
URL_BUDGET = 12_000  # characters of property names per GET; HubSpot answers 414 near 16k
TASK_TO = {"companies": 192, "contacts": 204, "deals": 216}  # HUBSPOT_DEFINED association type ids
PRIORITY = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "urgent": "HIGH"}


class HubSpotSettings(BaseModel):
    """The `crm:` block for HubSpot; the token comes from SIGNALPLAY_CRM__ACCESS_TOKEN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "hubspot"
    host: str = "https://api.hubapi.com"
    access_token: SecretStr
    episode_key_property: str = "signalplay_episode_key"
    closure_reason_property: str = "signalplay_closure_reason"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retry_seconds: float = 60.0
    # Free/Starter private apps: 100 requests per 10 s and 250k a day (raise for Pro/Enterprise).
    rate_limit: RateLimitSettings = RateLimitSettings(
        windows=(Window(limit=100, seconds=10), Window(limit=250_000, seconds=86_400))
    )


def classify(exc: Exception, operation: str) -> SyncError:
    """One error class for every SDK sub-package's ApiException and urllib3's failures."""
    status = getattr(exc, "status", None)
    if isinstance(exc, Urllib3Error) or status == 0:
        return RetriableError("hubspot", operation, f"connection failed: {type(exc).__name__}")
    headers = getattr(exc, "headers", None) or {}
    body = str(getattr(exc, "body", "") or "")[:500]
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    message = parsed.get("message", body) if isinstance(parsed, dict) else body
    request_id = parsed.get("correlationId") if isinstance(parsed, dict) else None
    if status == 429 and isinstance(parsed, dict) and parsed.get("policyName") == "DAILY":
        # The day's quota is spent: waiting minutes will not help. Stop; the next run resumes.
        return RateLimitedError("hubspot", operation, message, status=status, request_id=request_id)
    if status == 429 or (isinstance(status, int) and status >= 500):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return RetriableError(
            "hubspot",
            operation,
            message,
            status=status,
            request_id=request_id,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return AuthError("hubspot", operation, message, status=status, request_id=request_id)
    return FatalError("hubspot", operation, message, status=status, request_id=request_id)


def _translate(exc: Exception, operation: str) -> SyncError | None:
    """An SDK ApiException (it has a status) or a urllib3 failure; anything else is ours."""
    if not hasattr(exc, "status") and not isinstance(exc, Urllib3Error):
        return None
    return classify(exc, operation)


def _errors_by_id(answer: Mapping[str, Any]) -> dict[str, str]:
    """Per-input errors of a 207 answer (its JSON), keyed by the input id they name."""
    out: dict[str, str] = {}
    for err in answer.get("errors") or []:
        context = err.get("context") or {}
        for rid in context.get("ids", []) or context.get("fromId", []):
            out[str(rid)] = f"{err.get('category', '')}: {err.get('message', '')}"[:500]
    return out


class HubSpotConnector:
    """HubSpot as a source of accounts and contacts, and the CRM signalplay writes plays into."""

    settings_model: ClassVar[type[BaseModel]] = HubSpotSettings
    max_batch = BATCH_CAP

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        source: str = "crm",
        root: object = None,
        sleep: Callable[[float], None] | None = None,
        broker: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        token = settings.access_token.get_secret_value()
        sleep, clock = pacing(sleep)
        self.budget = make_budget(
            settings.rate_limit,
            key=budget_key("hubspot", settings.host, token),
            broker=broker,
            clock=clock,
        )
        # urllib3's default Retry still honours Retry-After on GETs: switch the SDK's retries off
        # entirely so that our one retry policy (connectors/_retry.py) owns every wait.
        no_retry = Retry(
            total=0,
            connect=0,
            read=0,
            redirect=0,
            status=0,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        client = HubSpot(
            access_token=token,
            host=settings.host,
            retry=no_retry,
        )
        # Each property access builds a new ApiClient and pool: read the API objects once.
        self._companies = client.crm.companies
        self._contacts = client.crm.contacts
        self._deals = client.crm.deals
        self._tasks = client.crm.objects.tasks
        self._owners = client.crm.owners.owners_api
        self._properties = client.crm.properties
        self._assoc = client.crm.associations.v4.batch_api
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._sleep = sleep
        self._catalogue: dict[str, list[str]] = {}
        self._owners_by_id: dict[str, dict[str, Any]] | None = None

    def close(self) -> None:
        """Nothing to release: urllib3 pools close with the process."""

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        return call_translated(
            fn,
            operation=operation,
            translate=_translate,
            max_delay=self.settings.max_retry_seconds,
            sleep=self._sleep,
            budget=self.budget,
        )

    # ---- reading ---------------------------------------------------------------------------
    def streams(self) -> Sequence[StreamSpec]:
        """Companies, contacts, owners, deals (renewal dates and amounts) and the tasks
        signalplay wrote (status, completion, closure reason), the last incrementally."""
        full = [StreamSpec(name=n) for n in ("companies", "contacts", "owners", "deals")]
        return [*full, StreamSpec(name="tasks", cursor_field="hs_lastmodifieddate")]

    def _property_names(self, otype: str) -> list[str]:
        if otype not in self._catalogue:
            api = self._properties.core_api
            result = self._call(
                f"properties {otype}", lambda: api.get_all(otype, _request_timeout=self._timeout)
            )
            self._catalogue[otype] = sorted(p.name for p in result.results)
        return self._catalogue[otype]

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Full pages of a stream (CRM streams are small and mutable: re-read each run)."""
        if stream == "owners":
            yield from self._read_owners()
            return
        if stream == "tasks":
            yield from self._read_tasks(cursor, until)
            return
        apis = {"companies": self._companies, "contacts": self._contacts, "deals": self._deals}
        api = apis[stream].basic_api
        names = self._property_names(stream)
        assoc = ["companies"] if stream in ("contacts", "deals") else None
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(
                f"list {stream}",
                partial(
                    api.get_page,
                    limit=PAGE_CAP,
                    after=after,
                    properties=names,
                    associations=assoc,
                    archived=False,
                    _request_timeout=self._timeout,
                ),
            )
            records = tuple(self._record(stream, obj) for obj in page.results)
            after = page.paging.next.after if page.paging and page.paging.next else None
            if after is not None and after in seen:
                raise FatalError("hubspot", f"list {stream}", f"paging cursor {after!r} repeated")
            yield Page(records=records, cursor=None)
            if after is None:
                return
            seen.add(after)

    def _record(self, stream: str, obj: Any) -> SourceRecord:
        data: dict[str, Any] = dict(obj.properties or {})
        data["id"] = str(obj.id)
        companies = (getattr(obj, "associations", None) or {}).get("companies")
        if companies is not None:
            ids = sorted({str(a.id) for a in companies.results}, key=int)
            data["company_ids"] = ids
            data["company_id"] = ids[0] if ids else None
        return SourceRecord(
            source=self.source,
            stream=stream,
            record_id=str(obj.id),
            data=data,
            updated_at=obj.updated_at,
        )

    def _outcome(self, props: dict[str, Any]) -> dict[str, Any]:
        """The task as signalplay measures it (the `signalplay` block of a task record)."""
        return {
            "key": props.get(self.settings.episode_key_property),
            "closed": props.get("hs_task_status") == "COMPLETED",
            "completed_at": props.get("hs_task_completion_date"),
            "closure_reason": props.get(self.settings.closure_reason_property),
            "owner_id": props.get("hubspot_owner_id"),
        }

    def _read_tasks(self, cursor: str | None, until: datetime) -> Iterator[Page]:
        """signalplay's tasks changed since `cursor` (their last-modified time), oldest first,
        through search: 200 a page, and a new query from the last time seen when a query
        reaches search's 10,000-result cap."""
        key = self.settings.episode_key_property
        if key not in self._property_names("tasks"):
            return  # nothing written yet (`crm setup` creates the property)
        wanted = [
            "hs_task_status",
            "hs_task_subject",
            "hs_task_completion_date",
            "hs_timestamp",
            "hubspot_owner_id",
            "hs_lastmodifieddate",
            key,
            self.settings.closure_reason_property,
        ]
        names = [n for n in wanted if n in self._property_names("tasks")]
        upto = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        since, after = cursor, 0
        while True:
            filters = [
                {"propertyName": key, "operator": "HAS_PROPERTY"},
                {"propertyName": "hs_lastmodifieddate", "operator": "LTE", "value": upto},
            ]
            if since:
                filters.append(
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since}
                )
            body = {
                "filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": names,
                "limit": SEARCH_PAGE,
                "after": after,
            }
            raw = self._call(
                "search tasks",
                partial(
                    self._tasks.search_api.do_search,
                    body,
                    _request_timeout=self._timeout,
                    _preload_content=False,
                ),
            )
            answer = json.loads(raw.data)
            records = tuple(
                SourceRecord(
                    source=self.source,
                    stream="tasks",
                    record_id=str(r["id"]),
                    data={
                        **r["properties"],
                        "id": str(r["id"]),
                        TASK_OUTCOME: self._outcome(r["properties"]),
                    },
                    updated_at=_parse_iso(r.get("updatedAt")),
                )
                for r in answer.get("results", [])
            )
            last = records[-1].data.get("hs_lastmodifieddate") if records else None
            yield Page(records=records, cursor=last or since)
            nxt = (answer.get("paging") or {}).get("next", {}).get("after")
            if nxt is None:
                return
            after = int(nxt)
            if after + SEARCH_PAGE > SEARCH_CAP:  # search pages stop at 10,000 results
                if last is None or last == since:
                    raise FatalError(
                        "hubspot", "search tasks", f"over {SEARCH_CAP} tasks modified at {last}"
                    )
                since, after = last, 0

    def _read_owners(self) -> Iterator[Page]:
        after: str | None = None
        while True:
            page = self._call(
                "list owners",
                partial(
                    self._owners.get_page,
                    limit=100,
                    after=after,
                    archived=False,
                    _request_timeout=self._timeout,
                ),
            )
            records = tuple(
                SourceRecord(
                    source=self.source,
                    stream="owners",
                    record_id=str(o.id),
                    data={
                        "id": str(o.id),
                        "email": o.email,
                        "first_name": o.first_name,
                        "last_name": o.last_name,
                        "user_id": o.user_id,
                    },
                    updated_at=o.updated_at,
                )
                for o in page.results
            )
            yield Page(records=records, cursor=None)
            after = page.paging.next.after if page.paging and page.paging.next else None
            if after is None:
                return

    def fetch_current(
        self, refs: Sequence[RecordRef], *, fields: Sequence[str]
    ) -> Mapping[RecordRef, dict[str, str | None]]:
        """Current values by batch read, 100 ids per call; missing records are left out."""
        from hubspot.crm.companies import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        out: dict[RecordRef, dict[str, str | None]] = {}
        ids = [r.record_id for r in refs if r.object_type == "companies"]
        for start in range(0, len(ids), BATCH_CAP):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in ids[start : start + BATCH_CAP]],
                properties=list(fields),
                properties_with_history=[],
            )
            resp = self._call(
                "batch read companies",
                partial(
                    self._companies.batch_api.read,
                    body,
                    archived=False,
                    _request_timeout=self._timeout,
                ),
            )
            for obj in resp.results:
                out[RecordRef(object_type="companies", record_id=str(obj.id))] = {
                    f: obj.properties.get(f) for f in fields
                }
        return out

    # ---- writing ---------------------------------------------------------------------------
    def ensure_schema(self, account_fields: Sequence[str] = ()) -> list[str]:
        """Create the properties a run writes when missing (as text: `crm setup` creates them
        typed, with the closure reason picklist); returns what was created."""
        created: list[str] = []
        wanted = [
            FieldSpec(
                object="task", name=self.settings.episode_key_property, kind="text", unique=True
            ),
            *(FieldSpec(object="account", name=f, kind="text") for f in account_fields),
        ]
        for spec in wanted:
            otype = OBJECT_TYPES[spec.object]
            if spec.name not in self._property_names(otype):
                self.create_field(spec)
                created.append(f"{otype}.{spec.name}")
        return created

    # ---- provisioning and preflight (`signalplay crm setup` / `crm check`) -------------------
    @property
    def task_fields(self) -> dict[str, str]:
        """The task properties signalplay owns, by role."""
        return {
            "episode_key": self.settings.episode_key_property,
            "closure_reason": self.settings.closure_reason_property,
        }

    def describe_crm(self) -> CrmMetadata:
        """Company and task properties with their kinds and options, and the active owners."""
        fields: dict[str, dict[str, CrmField]] = {}
        for obj, otype in OBJECT_TYPES.items():
            api = self._properties.core_api
            listed = self._call(
                f"properties {otype}", partial(api.get_all, otype, _request_timeout=self._timeout)
            )
            fields[obj] = {
                p.name: CrmField(
                    name=p.name,
                    kind=_hubspot_kind(p.type, p.field_type),
                    options=tuple(o.value for o in p.options or ()),
                    unique=bool(p.has_unique_value),
                )
                for p in listed.results
            }
        owners = frozenset(r.record_id for page in self._read_owners() for r in page.records)
        return CrmMetadata(fields=fields, owners=owners)

    def create_field(self, spec: FieldSpec) -> None:
        """Create one property in the signalplay group (the group too, when missing)."""
        otype = OBJECT_TYPES[spec.object]
        groups = self._call(
            "groups",
            partial(self._properties.groups_api.get_all, otype, _request_timeout=self._timeout),
        )
        if "signalplay" not in {g.name for g in groups.results}:
            group = {"name": "signalplay", "label": "signalplay", "displayOrder": -1}
            self._create(
                "create group",
                partial(
                    self._properties.groups_api.create,
                    otype,
                    group,
                    _request_timeout=self._timeout,
                ),
            )
        ptype, field_type = HUBSPOT_KINDS[spec.kind]
        body: dict[str, Any] = {
            "name": spec.name,
            "label": spec.label or spec.name,
            "type": ptype,
            "fieldType": field_type,
            "groupName": "signalplay",
            "hasUniqueValue": spec.unique,
        }
        if spec.kind == "picklist":
            body["options"] = _options(spec.options)
        self._create(
            "create property",
            partial(self._properties.core_api.create, otype, body, _request_timeout=self._timeout),
        )
        self._catalogue.pop(otype, None)

    def _create(self, operation: str, fn: Callable[[], Any]) -> None:
        """A create that may have happened already: a retry after a timeout (the first attempt
        went through) or another worker answers 409 Conflict, and the thing exists."""
        try:
            self._call(operation, fn)
        except FatalError as exc:
            if exc.status != HTTP_CONFLICT:
                raise
            log.info("%s: it exists already (409)", operation)

    def add_picklist_values(self, spec: FieldSpec, values: Sequence[str]) -> None:
        """Add options to an enumeration property, keeping the ones it has."""
        otype = OBJECT_TYPES[spec.object]
        api = self._properties.core_api
        prop = self._call(
            "read property",
            partial(api.get_by_name, otype, spec.name, _request_timeout=self._timeout),
        )
        have = [o.value for o in prop.options or ()]
        body = {"options": _options([*have, *(v for v in values if v not in have)])}
        self._call(
            "update property",
            partial(api.update, otype, spec.name, body, _request_timeout=self._timeout),
        )

    def write(self, ops: Sequence[WriteOp]) -> Sequence[WriteResult]:
        """Apply ops in batches of 100; one result per op, in the order given."""
        results: dict[str, WriteResult] = {}
        fields = [o for o in ops if o.action is WriteAction.UPDATE_FIELDS]
        enrolls = [o for o in ops if o.action is WriteAction.ENROLL]
        closes = [o for o in ops if o.action is WriteAction.CLOSE_TASK]
        removals = [o for o in ops if o.action is WriteAction.UNENROLL]
        tasks = [o for o in ops if o.action is WriteAction.UPSERT_TASK]
        for start in range(0, len(closes), BATCH_CAP):
            done, still_open = self._open_tasks(closes[start : start + BATCH_CAP])
            results.update(done)
            tasks += still_open
        for op in removals:
            done_or_task = self._unenroll(op)
            if isinstance(done_or_task, WriteResult):
                results[op.op_key] = done_or_task
            else:
                tasks.append(done_or_task)
        for start in range(0, len(tasks), BATCH_CAP):
            results.update(self._write_tasks(tasks[start : start + BATCH_CAP]))
        for start in range(0, len(fields), BATCH_CAP):
            results.update(self._write_fields(fields[start : start + BATCH_CAP]))
        for op in enrolls:
            results[op.op_key] = self._enroll(op)
        return [
            results.get(o.op_key)
            or WriteResult(op_key=o.op_key, ok=False, error=f"unsupported action {o.action}")
            for o in ops
        ]

    def _task_properties(self, op: WriteOp) -> dict[str, str]:
        if op.action is not WriteAction.CLOSE_TASK:
            return _task_properties(op)
        props = {"hs_task_status": "COMPLETED"}
        reason = self.settings.closure_reason_property
        if op.values.get("closure_reason") and reason in self._property_names("tasks"):
            props[reason] = str(op.values["closure_reason"])
        return props

    def _open_tasks(self, ops: Sequence[WriteOp]) -> tuple[dict[str, WriteResult], list[WriteOp]]:
        """Of the tasks to close, those a CSM already completed are done as they are (their
        closure reason is the CSM's and stays); the open ones are returned to be closed."""
        key = self.settings.episode_key_property
        body = {
            "inputs": [{"id": o.target} for o in ops],
            "idProperty": key,
            "properties": ["hs_task_status", key],
            "propertiesWithHistory": [],
        }
        resp, not_read = self._batch("read tasks", ops, partial(self._tasks.batch_api.read, body))
        if resp is None:
            return not_read, []
        status = {
            r["properties"].get(key): r["properties"].get("hs_task_status")
            for r in resp.get("results", [])
        }
        done: dict[str, WriteResult] = {}
        still_open: list[WriteOp] = []
        for op in ops:
            if op.target not in status:
                error = "no task with this key in HubSpot (deleted, or never written)"
                done[op.op_key] = WriteResult(op_key=op.op_key, ok=False, error=error)
            elif status[op.target] == "COMPLETED":
                done[op.op_key] = WriteResult(op_key=op.op_key, ok=True)
            else:
                still_open.append(op)
        return done, still_open

    def _unenroll(self, op: WriteOp) -> WriteResult | WriteOp:
        """Sequences v4 has no unenroll endpoint: contacts still in a sequence get a task for
        the owner to remove them (HubSpot ends an enrollment itself on a reply or a meeting);
        contacts no longer enrolled need nothing."""
        enrolled: list[tuple[str, dict[str, Any]]] = []
        try:
            for ref in op.associations:
                found = self._enrollment(ref.record_id)
                if found is not None:
                    enrolled.append((ref.record_id, found))
        except SyncError as exc:
            return failed(op, exc)
        if not enrolled:
            return WriteResult(op_key=op.op_key, ok=True)
        names = sorted({str(e.get("sequenceName") or e.get("sequenceId")) for _, e in enrolled})
        reason = op.values.get("closure_reason") or "resolved"
        lines = [
            f"- contact {cid} ({e.get('toEmail') or 'no email'}) in {e.get('sequenceName')}"
            for cid, e in enrolled
        ]
        return WriteOp(
            op_key=op.op_key,
            action=WriteAction.UPSERT_TASK,
            object_type="tasks",
            target=f"{op.target}:unenroll",
            values={
                "subject": f"Unenroll from {', '.join(names)}: the signal resolved ({reason})"[
                    :255
                ],
                "body": "\n".join(
                    [
                        "The episode that enrolled these contacts is resolved; HubSpot's API "
                        "cannot end an enrollment, so please unenroll them in HubSpot:",
                        *lines,
                    ]
                ),
                "priority": "high",
                "type": "TODO",
                "due_at": datetime.now(UTC).isoformat(),
                "owner_id": self._owner_of_user(enrolled[0][1].get("enrolledBy")),
                "status": "open",
            },
            associations=tuple(RecordRef(object_type="contacts", record_id=c) for c, _ in enrolled),
            episode_key=op.episode_key,
            reason=op.reason,
        )

    def _enrollment(self, contact_id: str) -> dict[str, Any] | None:
        """The contact's current sequence enrollment, or None (404: in no sequence)."""
        path = f"/automation/v4/sequences/enrollments/contact/{contact_id}"
        try:
            found = self._call("read enrollment", partial(self._automation, "GET", path, []))
        except SyncError as exc:
            if not _is_404(exc):
                raise
            return None
        return found if isinstance(found, dict) else {}

    def _owner_records(self) -> dict[str, dict[str, Any]]:
        """The owners by owner id, read once per connector."""
        if self._owners_by_id is None:
            self._owners_by_id = {
                str(r.record_id): r.data for p in self._read_owners() for r in p.records
            }
        return self._owners_by_id

    def _owner_of_user(self, user_id: Any) -> str | None:
        """The owner id of a HubSpot user id (enrollments name users; tasks take owners)."""
        if user_id is None:
            return None
        for owner_id, owner in self._owner_records().items():
            if str(owner.get("user_id")) == str(user_id):
                return owner_id
        return None

    def _batch(
        self, operation: str, ops: Sequence[WriteOp], call: Callable[..., Any]
    ) -> tuple[dict[str, Any] | None, dict[str, WriteResult]]:
        """One batch call with a plain JSON body; its answer as JSON. The client's models are
        skipped both ways: building and parsing them costs more than the request at 10k ops."""
        try:
            raw = self._call(
                operation,
                lambda: call(_request_timeout=self._timeout, _preload_content=False),
            )
        except SyncError as exc:
            return None, {o.op_key: failed(o, exc) for o in ops}
        answer = json.loads(raw.data) if raw.data else {}
        return answer if isinstance(answer, dict) else {}, {}

    def _write_tasks(self, ops: Sequence[WriteOp]) -> dict[str, WriteResult]:
        key = self.settings.episode_key_property
        body = {
            "inputs": [
                {"idProperty": key, "id": o.target, "properties": self._task_properties(o)}
                for o in ops
            ]
        }
        resp, not_written = self._batch(
            "upsert tasks", ops, partial(self._tasks.batch_api.upsert, body)
        )
        if resp is None:
            return not_written
        errors = _errors_by_id(resp)
        by_key = {r["properties"].get(key): r for r in resp.get("results", [])}
        out: dict[str, WriteResult] = {}
        linked: list[tuple[WriteOp, str]] = []
        for op in ops:
            obj = by_key.get(op.target)
            if obj is None:
                out[op.op_key] = WriteResult(
                    op_key=op.op_key,
                    ok=False,
                    error=errors.get(op.target, "no result returned for this input"),
                )
                continue
            linked.append((op, str(obj["id"])))
            out[op.op_key] = WriteResult(
                op_key=op.op_key, ok=True, crm_id=str(obj["id"]), created=bool(obj.get("new"))
            )
        out.update(self._link_tasks(linked))
        return out

    def _link_tasks(self, linked: Sequence[tuple[WriteOp, str]]) -> dict[str, WriteResult]:
        """Associate upserted tasks with their records; linking twice is harmless."""
        failures: dict[str, WriteResult] = {}
        for to_type, type_id in TASK_TO.items():
            pairs = [
                (op, tid, ref.record_id)
                for op, tid in linked
                for ref in op.associations
                if ref.object_type == to_type
            ]
            for start in range(0, len(pairs), BATCH_CAP):
                chunk = pairs[start : start + BATCH_CAP]
                spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
                body = {
                    "inputs": [
                        {"from": {"id": tid}, "to": {"id": rid}, "types": spec}
                        for _, tid, rid in chunk
                    ]
                }
                resp, not_linked = self._batch(
                    f"associate tasks to {to_type}",
                    [op for op, _, _ in chunk],
                    partial(self._assoc.create, "tasks", to_type, body),
                )
                failures.update(not_linked)
                bad = _errors_by_id(resp) if resp is not None else {}
                for op, tid, _ in chunk:
                    if tid in bad:
                        failures[op.op_key] = WriteResult(
                            op_key=op.op_key,
                            ok=False,
                            crm_id=tid,
                            error=f"task written but not linked: {bad[tid]}",
                        )
        return failures

    # ---- sequences (v4, not wrapped by the client: its generated ApiClient calls them) -------
    def _automation(
        self, method: str, path: str, query: list[tuple[str, str]], body: Any = None
    ) -> Any:
        api_client = self._tasks.basic_api.api_client
        return api_client.call_api(
            path,
            method,
            {},
            query,
            {"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            response_types_map={200: "object"},
            auth_settings=["oauth2"],
            _return_http_data_only=True,
            _request_timeout=self._timeout,
        )

    def _sender(self, owner_id: str | None) -> tuple[str, str] | None:
        """The enrolling user's userId and inbox for a record owner (owner id is not user id)."""
        if not owner_id:
            return None
        owner = self._owner_records().get(str(owner_id))
        if owner is None or owner.get("user_id") is None:
            return None
        return str(owner["user_id"]), str(owner.get("email") or "")

    def _sequence_id(self, user_id: str, name_or_id: str) -> str | None:
        listed = self._call(
            "list sequences",
            partial(self._automation, "GET", "/automation/v4/sequences", [("userId", user_id)]),
        )
        for seq in (listed or {}).get("results", []):
            if name_or_id in (str(seq.get("id")), seq.get("name")):
                return str(seq["id"])
        return None

    def _enroll(self, op: WriteOp) -> WriteResult:
        """Each contact of the op into the sequence, as the owner; a contact already enrolled
        is left alone (one sequence at a time), so a re-run enrolls nobody twice."""
        sender = self._sender(str(op.values.get("owner_id") or "") or None)
        if sender is None:
            return WriteResult(
                op_key=op.op_key, ok=False, error="enrollment needs an owner with a HubSpot user"
            )
        user_id, inbox = sender
        try:
            sequence = self._sequence_id(user_id, str(op.values.get("sequence") or ""))
            if sequence is None:
                return WriteResult(
                    op_key=op.op_key,
                    ok=False,
                    error=f"no sequence {op.values.get('sequence')!r} for user {user_id}",
                )
            for ref in op.associations:
                if ref.object_type != "contacts":
                    continue
                if self._enrollment(ref.record_id) is not None:
                    continue  # already in a sequence: one at a time
                body = {"sequenceId": sequence, "contactId": ref.record_id, "senderEmail": inbox}
                self._call(
                    "enroll contact",
                    partial(
                        self._automation,
                        "POST",
                        "/automation/v4/sequences/enrollments",
                        [("userId", user_id)],
                        body,
                    ),
                )
        except SyncError as exc:
            return failed(op, exc)
        return WriteResult(op_key=op.op_key, ok=True)

    def _write_fields(self, ops: Sequence[WriteOp]) -> dict[str, WriteResult]:
        body = {
            "inputs": [
                {
                    "id": o.target,
                    "properties": {k: ("" if v is None else str(v)) for k, v in o.values.items()},
                }
                for o in ops
            ]
        }
        resp, not_written = self._batch(
            "update companies", ops, partial(self._companies.batch_api.update, body)
        )
        if resp is None:
            return not_written
        errors = _errors_by_id(resp)
        done = {str(r["id"]) for r in resp.get("results", [])}
        return {
            o.op_key: WriteResult(op_key=o.op_key, ok=True, crm_id=o.target)
            if o.target in done
            else WriteResult(
                op_key=o.op_key,
                ok=False,
                error=errors.get(o.target, "no result returned for this input"),
            )
            for o in ops
        }


SEARCH_PAGE = 200  # results per search page
SEARCH_CAP = 10_000  # results one search query can page through


def _parse_iso(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


OBJECT_TYPES = {"account": "companies", "task": "tasks"}
# signalplay's field kinds as HubSpot (type, fieldType).
HUBSPOT_KINDS = {
    "number": ("number", "number"),
    "text": ("string", "text"),
    "textarea": ("string", "textarea"),
    "picklist": ("enumeration", "select"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "boolean": ("bool", "booleancheckbox"),
}


def _hubspot_kind(ptype: str, field_type: str) -> str:
    if ptype == "enumeration" and field_type == "booleancheckbox":
        return "boolean"
    if ptype == "string":
        return "textarea" if field_type == "textarea" else "text"
    return {"enumeration": "picklist", "bool": "boolean"}.get(ptype, ptype)


def _options(values: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"label": v.replace("_", " ").capitalize(), "value": v, "displayOrder": i, "hidden": False}
        for i, v in enumerate(values)
    ]


def _is_404(exc: SyncError) -> bool:
    return exc.status == 404


def _task_properties(op: WriteOp) -> dict[str, str]:
    values = op.values
    props = {
        "hs_timestamp": str(values.get("due_at") or ""),
        "hs_task_subject": str(values.get("subject") or ""),
        "hs_task_body": str(values.get("body") or ""),
        "hs_task_priority": PRIORITY.get(str(values.get("priority")), "MEDIUM"),
        "hs_task_type": str(values.get("type") or "TODO"),
    }
    if values.get("status") == "open":
        props["hs_task_status"] = "NOT_STARTED"
    if values.get("owner_id"):
        props["hubspot_owner_id"] = str(values["owner_id"])
    return props
