"""Plan: the CRM changes that bring the CRM to the desired state, diffed against the ledger and
the CRM's current values; every op has a stable key and a readable reason. Imports: stdlib,
models, plays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from signalplay.models import RecordRef, WriteAction, WriteOp
from signalplay.plays import TaskIntent
from signalplay.types import JSONValue


def op_key(*parts: JSONValue) -> str:
    """A stable key: sha256 of the canonical JSON of the op's identifying parts."""
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def crm_text(value: JSONValue) -> str | None:
    """A profile value as a CRM field holds it (CRMs hand back text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Plan:
    """The ops of one run, and what was left out because it was already true."""

    ops: list[WriteOp] = field(default_factory=list)
    skipped_applied: int = 0
    skipped_unchanged: int = 0

    def counts(self) -> dict[str, int]:
        """How many ops of each action."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.action.value] = out.get(op.action.value, 0) + 1
        return out


def plan_writes(
    *,
    crm: str,
    tasks: Sequence[TaskIntent],
    fields: Mapping[str, Mapping[str, JSONValue]],
    current: Mapping[str, Mapping[str, str | None]],
    applied: Collection[str],
    account_object: str = "companies",
) -> Plan:
    """Ops for the tasks and field values wanted, minus what the ledger or the CRM already has."""
    plan = Plan()
    for task in tasks:
        key = op_key(crm, "task", task.episode_key)
        if key in applied:
            plan.skipped_applied += 1
            continue
        plan.ops.append(_task_op(key, task, account_object))
    for account in sorted(fields):
        now = current.get(account, {})
        wanted = {f: crm_text(v) for f, v in fields[account].items()}
        changed: dict[str, JSONValue] = {
            f: v for f, v in wanted.items() if v is not None and now.get(f) != v
        }
        plan.skipped_unchanged += len(wanted) - len(changed)
        if not changed:
            continue
        key = op_key(crm, account_object, account, "update", changed)
        if key in applied:
            plan.skipped_applied += 1
            continue
        reason = ", ".join(f"{f}: {now.get(f)!r} → {v!r}" for f, v in sorted(changed.items()))
        plan.ops.append(
            WriteOp(
                op_key=key,
                action=WriteAction.UPDATE_FIELDS,
                object_type=account_object,
                target=account,
                values=dict(changed),
                previous={f: now.get(f) for f in changed},
                reason=reason,
            )
        )
    return plan


def _task_op(key: str, task: TaskIntent, account_object: str) -> WriteOp:
    values: dict[str, JSONValue] = {
        "subject": task.subject,
        "body": task.body,
        "priority": task.priority,
        "type": task.task_type,
        "due_at": task.due_at,
        "owner_id": task.owner_id,
        "status": "open",
    }
    links = (
        RecordRef(object_type=account_object, record_id=task.account),
        *(RecordRef(object_type="contacts", record_id=c) for c in task.contact_ids),
    )
    return WriteOp(
        op_key=key,
        action=WriteAction.UPSERT_TASK,
        object_type="tasks",
        target=task.episode_key,
        values=values,
        associations=links,
        episode_key=task.episode_key,
        reason=f"trigger {task.trigger_id} opened episode {task.episode_key}; play {task.play_id}",
    )
