"""Writing to Salesforce.

Tasks upserted by episode key and field updates through sObject Collections, cadence enrollments
through invocable actions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from simple_salesforce.exceptions import SalesforceError

from signalplay.connectors._retry import failed
from signalplay.connectors.salesforce._base import _Base
from signalplay.connectors.salesforce._wire import BATCH_CAP, PRIORITY, _safe_id, _soql_text
from signalplay.errors import SyncError
from signalplay.models import (
    WriteAction,
    WriteOp,
    WriteResult,
)


class _Writes(_Base):
    """Writing to Salesforce.

    Tasks upserted by episode key and field updates through sObject Collections, cadence
    enrollments through invocable actions.
    """

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
        """Split the tasks to close into those already closed and those still open.

        Of the tasks to close, those already closed (by a CSM, with their reason) are done
        as they are; the open ones are returned to be closed.
        """
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
        """Cadence enrollment of each op's contacts through the standard invocable action.

        Contacts already in an active cadence are skipped (a re-run enrolls nobody twice).
        """
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
        """An invocable action.

        When every input fails Salesforce answers 400 with the same per-input array, which
        is read as results, not as a failed call.
        """
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
