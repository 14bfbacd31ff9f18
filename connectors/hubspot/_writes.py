"""Writing to HubSpot.

Tasks upserted by episode key, field updates, sequence enrollments, in batches of the API's cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from signalplay.connectors._retry import failed
from signalplay.connectors.hubspot._base import _Base
from signalplay.connectors.hubspot._wire import (
    BATCH_CAP,
    TASK_TO,
    _errors_by_id,
    _is_404,
    _task_properties,
)
from signalplay.errors import (
    SyncError,
)
from signalplay.models import (
    RecordRef,
    WriteAction,
    WriteOp,
    WriteResult,
)


class _Writes(_Base):
    """Writing to HubSpot.

    Tasks upserted by episode key, field updates, sequence enrollments, in batches of the API's
    cap.
    """

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
        """Split the tasks to close into those already completed and those still open.

        Of the tasks to close, those a CSM already completed are done as they are (their
        closure reason is the CSM's and stays); the open ones are returned to be closed.
        """
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
        """Sequences v4 has no unenroll endpoint.

        Contacts still in a sequence get a task for the owner to remove them (HubSpot ends
        an enrollment itself on a reply or a meeting); contacts no longer enrolled need
        nothing.
        """
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
        """One batch call with a plain JSON body; its answer as JSON.

        The client's models are skipped both ways: building and parsing them costs more than
        the request at 10k ops.
        """
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
        """Each contact of the op into the sequence, as the owner.

        A contact already enrolled is left alone (one sequence at a time), so a re-run
        enrolls nobody twice.
        """
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
