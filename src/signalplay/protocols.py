"""Interfaces between the core and the edges: connectors and progress. Imports: models."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import ClassVar, Protocol

from pydantic import BaseModel

from signalplay.models import (
    CrmMetadata,
    FieldSpec,
    Page,
    RecordRef,
    StreamSpec,
    WriteOp,
    WriteResult,
)


class Connector(Protocol):
    """One external system: owns auth, paging, rate limits and wire quirks."""

    settings_model: ClassVar[type[BaseModel]]

    def streams(self) -> Sequence[StreamSpec]:
        """The streams this source can read."""
        ...

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Yield pages after `cursor` up to `until`; each page carries the cursor resuming after it.

        Records at the boundary may be read again; the store upserts on the record id.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class CrmConnector(Connector, Protocol):
    """A CRM that signalplay also writes to."""

    max_batch: int

    def fetch_current(
        self, refs: Sequence[RecordRef], *, fields: Sequence[str]
    ) -> Mapping[RecordRef, dict[str, str | None]]:
        """Current values of `fields` for each ref that exists."""
        ...

    def write(self, ops: Sequence[WriteOp]) -> Sequence[WriteResult]:
        """Apply ops in capped batches; one result per op, in order.

        A rejected record is a failed result, never an exception. Writes are upserts keyed on
        the op's stable key, so repeating an op never creates a second record.
        """
        ...

    def ensure_schema(self, account_fields: Sequence[str] = ()) -> list[str]:
        """Create the custom fields signalplay writes, if missing; return what was created."""
        ...

    @property
    def task_fields(self) -> Mapping[str, str]:
        """The CRM names of the task fields signalplay owns, by role.

        The CRM names of the task fields signalplay owns, by role (`episode_key`,
        `closure_reason`).
        """
        ...

    def describe_crm(self) -> CrmMetadata:
        """The account and task fields (kinds, picklist values, uniqueness) and the owners."""
        ...

    def create_field(self, spec: FieldSpec) -> None:
        """Create one field signalplay writes (`crm setup`)."""
        ...

    def add_picklist_values(self, spec: FieldSpec, values: Sequence[str]) -> None:
        """Add values to a picklist field, keeping those it has (`crm setup`)."""
        ...


class EventSink(Protocol):
    """Where outbound events (webhooks for the messaging tool) are delivered."""

    def send(self, ops: Sequence[WriteOp]) -> Sequence[WriteResult]:
        """Deliver each event op; one result per op, in order, never raising for one op."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class Progress(Protocol):
    """Where long work reports how far it got."""

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """Report `done` of `total` units of `stage`."""
        ...
