"""Plan: the CRM changes that bring the CRM to the desired state.

Plan: the CRM changes that bring the CRM to the desired state, diffed against the ledger and the
CRM's current values; every op has a stable key and a readable reason. Imports: stdlib, models,
plays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from signalplay.models import RecordRef, WriteAction, WriteOp
from signalplay.plays.actions import TASK_KINDS, ActionIntent
from signalplay.types import JSONValue

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_json_string = json.encoder.encode_basestring_ascii  # what _CANONICAL (ensure_ascii) uses


def op_key(*parts: JSONValue) -> str:
    """A stable key: sha256 of the canonical JSON of the op's identifying parts.

    Text parts and text-to-text mappings (a field update's values) are written by the encoder's
    own string escaper, byte for byte what the whole encoder writes, without its generic walk.
    """
    pieces = []
    for part in parts:
        piece = _text_json(part)
        if piece is None:
            return hashlib.sha256(_CANONICAL.encode(list(parts)).encode()).hexdigest()
        pieces.append(piece)
    return hashlib.sha256(("[" + ",".join(pieces) + "]").encode()).hexdigest()


def _text_json(part: JSONValue) -> str | None:
    if type(part) is str:
        return _json_string(part)
    if type(part) is not dict:
        return None
    items = []
    for k, v in sorted(part.items()):  # (sort_keys)
        if type(k) is not str or type(v) is not str:
            return None
        items.append(_json_string(k) + ":" + _json_string(v))
    return "{" + ",".join(items) + "}"


def crm_text(value: JSONValue) -> str | None:
    """A profile value as a CRM field holds it (CRMs hand back text)."""
    if type(value) is str or value is None:
        return value
    if type(value) is int:
        return str(value)
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
    # Written tasks of open episodes whose play was edited since: they keep what was written
    # unless the plan extends the edit to them.
    edits_held: int = 0

    def counts(self) -> dict[str, int]:
        """How many ops of each action."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.action.value] = out.get(op.action.value, 0) + 1
        return out


def plan_writes(
    *,
    crm: str,
    intents: Sequence[ActionIntent],
    fields: Mapping[str, Mapping[str, JSONValue]],
    current: Mapping[str, Mapping[str, str | None]],
    applied: Collection[str],
    account_object: str = "companies",
) -> Plan:
    """Ops for the tasks and field values wanted, minus what the ledger or the CRM already has."""
    plan = Plan()
    for intent in intents:
        key = intent_key(crm, intent)
        if key in applied:
            plan.skipped_applied += 1
            continue
        plan.ops.append(_intent_op(key, intent, account_object))
    none: Mapping[str, str | None] = {}
    for account in sorted(fields):
        now = current.get(account, none)
        wanted = fields[account]
        changed: dict[str, JSONValue] = {}
        for f, value in wanted.items():
            text = crm_text(value)
            if text is not None and now.get(f) != text:
                changed[f] = text
        plan.skipped_unchanged += len(wanted) - len(changed)
        if not changed:
            continue
        key = op_key(crm, account_object, account, "update", changed)
        if key in applied:
            plan.skipped_applied += 1
            continue
        plan.ops.append(
            _construct(
                op_key=key,
                action=WriteAction.UPDATE_FIELDS,
                object_type=account_object,
                target=account,
                values=changed,
                previous={f: now.get(f) for f in changed},
                reason="the CRM's values differ: " + ", ".join(sorted(changed)),
            )
        )
    return plan


@lru_cache(maxsize=65_536)
def action_key(crm: str, kind: str, key: str) -> str:
    """The op key of an episode's action: stable whatever its rendered content.

    Kept for a while: a run asks for it when it looks the action up in the ledger and again to
    plan it.
    """
    if kind in TASK_KINDS:
        return op_key(crm, "task", key)
    if kind == "sequence":
        return op_key(crm, "enroll", key)
    return op_key("webhook", key)


def closing_ops(
    crm: str,
    *,
    episode_key: str,
    actions: Sequence[tuple[str, str]],
    reason: str,
    applied: Collection[str],
    contacts: Sequence[str] = (),
) -> list[WriteOp]:
    """For a resolved episode, the ops that close what it opened.

    Its tasks marked completed with the closure reason, its sequence enrollments removed. Only
    what was applied, once.
    """
    ops: list[WriteOp] = []
    for kind, action_id in actions:
        key = f"{episode_key}:{action_id}"
        if action_key(crm, kind, key) not in applied:
            continue
        if kind in TASK_KINDS:
            close = op_key(crm, "task", key, "close")
            if close not in applied:
                ops.append(
                    WriteOp(
                        op_key=close,
                        action=WriteAction.CLOSE_TASK,
                        object_type="tasks",
                        target=key,
                        values={"status": "completed", "closure_reason": reason},
                        episode_key=episode_key,
                        reason=f"episode {episode_key} resolved ({reason}): close its task",
                    )
                )
        elif kind == "sequence":
            close = op_key(crm, "enroll", key, "remove")
            if close not in applied:
                ops.append(
                    WriteOp(
                        op_key=close,
                        action=WriteAction.UNENROLL,
                        object_type="sequences",
                        target=key,
                        values={"closure_reason": reason},
                        associations=tuple(_ref("contacts", c) for c in contacts),
                        episode_key=episode_key,
                        reason=f"episode {episode_key} resolved ({reason}): end the enrollment",
                    )
                )
    return ops


def edit_ops(
    crm: str,
    intents: Sequence[ActionIntent],
    written: Mapping[str, Mapping[str, Any]],
    account_object: str = "companies",
) -> list[WriteOp]:
    """Ops that carry an edited play to tasks already written, where the rendering changed.

    `written` holds the values each task (by key) last received. The op leaves the task's
    status alone, so a task a CSM completed is never reopened, and its key names the content,
    so the same edit is applied once.
    """
    ops = []
    for intent in intents:
        before = written.get(intent.key)
        if intent.kind not in TASK_KINDS or before is None:
            continue
        op = _intent_op("", intent, account_object)
        values = {k: v for k, v in op.values.items() if k != "status"}
        changed = sorted(k for k in EDITABLE if values.get(k) != before.get(k))
        if not changed:
            continue
        key = op_key(crm, "task", intent.key, "edit", {k: str(values.get(k)) for k in EDITABLE})
        ops.append(
            op.model_copy(
                update={
                    "op_key": key,
                    "values": values,
                    "reason": f"play {intent.play_id} edited while episode "
                    f"{intent.episode_keys[0]} is open: its task's {', '.join(changed)} change",
                }
            )
        )
    return ops


EDITABLE = ("subject", "body", "priority", "type")  # what a play edit changes in a written task


def intent_key(crm: str, intent: ActionIntent) -> str:
    """The op key of an intent."""
    return action_key(crm, intent.kind, intent.key)


def _construct(**fields: Any) -> WriteOp:
    """A WriteOp (pydantic-core validates faster than model_construct copies defaults)."""
    return WriteOp(**fields)


@lru_cache(maxsize=65_536)
def _ref(object_type: str, record_id: str) -> RecordRef:
    """A record reference (frozen, so one per record is shared by all the ops naming it)."""
    return RecordRef(object_type=object_type, record_id=record_id)


def _intent_op(key: str, intent: ActionIntent, account_object: str) -> WriteOp:
    account = _ref(account_object, intent.account)
    contacts = tuple(_ref("contacts", c) for c in intent.contact_ids)
    why = (
        f"trigger {', '.join(intent.trigger_ids)} opened episode "
        f"{', '.join(intent.episode_keys)}; play {intent.play_id}, action {intent.action_id}"
    )
    if intent.kind in TASK_KINDS:
        values: dict[str, JSONValue] = {
            "subject": intent.subject,
            "body": intent.body,
            "priority": intent.priority,
            "type": intent.task_type,
            "due_at": intent.due_at,
            "owner_id": intent.owner_id,
            "status": "open",
            "kind": intent.kind,
        }
        return _construct(
            op_key=key,
            action=WriteAction.UPSERT_TASK,
            object_type="tasks",
            target=intent.key,
            values=values,
            associations=(account, *contacts),
            episode_key=intent.episode_keys[0],
            reason=why,
        )
    if intent.kind == "sequence":
        return _construct(
            op_key=key,
            action=WriteAction.ENROLL,
            object_type="sequences",
            target=intent.key,
            values={"sequence": intent.sequence, "owner_id": intent.owner_id},
            associations=contacts,
            episode_key=intent.episode_keys[0],
            reason=why,
        )
    payload: dict[str, JSONValue] = dict(intent.payload)  # built from JSON values only
    return _construct(
        op_key=key,
        action=WriteAction.SEND_WEBHOOK,
        object_type="events",
        target=intent.key,
        values=payload,
        associations=contacts,
        episode_key=intent.episode_keys[0],
        reason=why,
    )
