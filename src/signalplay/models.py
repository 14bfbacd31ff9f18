"""Frozen models that cross module boundaries.

The records and ops connectors exchange, the CRM metadata they describe, and the episodes and
identity issues the store keeps. Imports: pydantic, signalplay.types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from signalplay.types import JSONValue


class Frozen(BaseModel):
    """Base of the domain models: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamSpec(Frozen):
    """One record type of a source, and the field its records are keyed on."""

    name: str
    primary_key: str = "id"
    cursor_field: str | None = None
    # Records are dated facts that never change once written (a usage row of a day): they count
    # from their own date, and no timeline of their states is kept.
    immutable: bool = False


# A CRM connector's `tasks` stream carries, in each record's data under this key, the task as
# signalplay measures it: {"key": the task's signalplay key, "closed": bool, "completed_at": ISO
# time or None, "closure_reason": the CSM's reason code or None, "owner_id": str or None}.
TASK_OUTCOME = "signalplay"


class Version(Frozen):
    """One earlier state of a record, as the source's own history tells it."""

    valid_from: AwareDatetime
    data: dict[str, Any] | None = None  # None: from then the record did not exist (deleted)


class SourceRecord(Frozen):
    """One raw record as a connector normalised it (vendor envelope stripped).

    `updated_at` is when the source last changed it: its current state holds from then. Its
    states over time come in `history`, oldest first, where the source keeps them (the newest
    may be the current one again); `complete` says they go back to the record's creation
    (before the first, it did not exist). Without them a state is known only from when it was
    first seen, never before.
    """

    source: str
    stream: str
    record_id: str
    data: dict[str, Any]
    updated_at: AwareDatetime | None = None
    deleted: bool = False  # a tombstone: the record was deleted or archived at the source
    history: tuple[Version, ...] = ()
    complete: bool = False


@dataclass(frozen=True, slots=True)
class Timeline:
    """Every stored state of one record, oldest first, as the store rebuilt it.

    A state holds from its `valid_from` until the next one's; `data` None is "did not exist".
    With `origin` the first state began the record; without it, what came before is unknown.
    """

    record_id: str
    versions: tuple[Version, ...]
    origin: bool


class Page(Frozen):
    """A page of records and the cursor that resumes after it."""

    records: tuple[SourceRecord, ...]
    cursor: str | None
    quarantined: tuple[tuple[str, str, dict[str, Any]], ...] = ()


class RecordRef(Frozen):
    """A CRM record, by object type and id."""

    object_type: str
    record_id: str


class WriteAction(StrEnum):
    """What a write op does in the CRM."""

    UPSERT_TASK = "upsert_task"
    UPDATE_FIELDS = "update_fields"
    ENROLL = "enroll"
    SEND_WEBHOOK = "send_webhook"
    CLOSE_TASK = "close_task"
    UNENROLL = "unenroll"


class WriteOp(Frozen):
    """One planned CRM change, keyed so that it is applied at most once."""

    op_key: str
    action: WriteAction
    object_type: str
    target: str
    values: dict[str, JSONValue]
    previous: dict[str, JSONValue] = Field(default_factory=dict)  # (a `{}` is deep-copied)
    associations: tuple[RecordRef, ...] = ()
    episode_key: str | None = None
    reason: str


class WriteResult(Frozen):
    """What became of one op: applied with the CRM id, or failed with an error."""

    op_key: str
    ok: bool
    crm_id: str | None = None
    created: bool = False
    error: str | None = None
    retriable: bool = False


class Fact(Frozen):
    """One profile value with its lineage."""

    value: JSONValue
    source: str
    stream: str
    record_id: str
    observed_at: datetime | None = None


Kind = Literal["number", "text", "textarea", "picklist", "date", "datetime", "boolean"]


@dataclass(frozen=True)
class FieldSpec:
    """One field signalplay writes: on `account` or `task`, its CRM name and kind."""

    object: Literal["account", "task"]
    name: str
    kind: Kind
    options: tuple[str, ...] = ()
    unique: bool = False
    label: str = ""
    file: str = ""  # the RevOps file and key that ask for it
    loc: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class CrmField:
    """A field as the CRM describes it."""

    name: str
    kind: str
    options: tuple[str, ...] = ()
    unique: bool = False


@dataclass
class CrmMetadata:
    """The CRM's account and task fields, and its owners' ids."""

    fields: dict[str, dict[str, CrmField]] = field(default_factory=dict)
    owners: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Episode:
    """One stretch of time during which a trigger held for an account."""

    key: str
    account: str
    trigger_id: str
    opened_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)
    status: str = "open"
    resolved_at: datetime | None = None
    resolution: str | None = None
    decision: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityIssue:
    """A record that joined no account: unmatched (no key known) or a conflict (two accounts)."""

    source: str
    stream: str
    record_id: str
    problem: Literal["unmatched", "conflict"]
    key_kind: str
    key_value: str | None
    accounts: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for a person."""
        key = f"{self.key_kind}={self.key_value}" if self.key_value else f"no {self.key_kind}"
        if self.problem == "conflict":
            return f"{key} matches {len(self.accounts)} accounts: {', '.join(self.accounts)}"
        return f"{key} matches no account"
