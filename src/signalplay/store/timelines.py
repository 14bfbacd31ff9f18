"""Record timelines: every state a mutable source record had, and from when.

A pull appends a record's states as they come: the earlier ones from the source's own history
(`SourceRecord.history`), then the current one from when the source last changed it (or, when
the source does not say, from when it was first seen so). A state equal to the one before adds
nothing, so re-reading an unchanged stream writes nothing. A record deleted or archived gets a
"did not exist" state. Backfill reads the timelines to know each record as it was on each day.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signalplay.models import SourceRecord, Timeline, Version
from signalplay.store import schema as t
from signalplay.store.base import BATCH, StoreBase, _aware

_V = t.record_versions


class TimelinesStore(StoreBase):
    """Record timelines: every state a mutable source record had, and from when."""

    def _append_states(
        self, conn: Connection, source: str, stream: str, records: Sequence[SourceRecord]
    ) -> None:
        """Append the states of these records that the stored timelines do not have yet."""
        now = self.clock()
        for start in range(0, len(records), BATCH):
            batch = records[start : start + BATCH]
            latest = _latest(conn, source, stream, [r.record_id for r in batch])
            rows: list[dict[str, Any]] = []
            for r in batch:
                states = [(v.valid_from, v.data) for v in r.history]
                current = (r.updated_at or now, None if r.deleted else r.data)
                prev = latest.get(r.record_id)
                if prev is not None and current[0] <= prev[0] < now and current[1] != prev[1]:
                    # changed where the source keeps no time (an association, a label): seen now
                    current = (now, current[1])
                states.append(current)
                rows.extend(_new_rows(source, stream, r, sorted(states, key=_at), latest))
            if rows:
                conn.execute(_V.insert(), rows)

    def _end_records(self, conn: Connection, source: str, stream: str, ids: Sequence[str]) -> None:
        """Records gone from the source (absent from a complete re-read): not there from now."""
        now = self.clock()
        for start in range(0, len(ids), BATCH):
            batch = list(ids[start : start + BATCH])
            latest = _latest(conn, source, stream, batch)
            rows = [
                _row(source, stream, rid, now, None, origin=False)
                for rid in batch
                if rid in latest and latest[rid][1] is not None and latest[rid][0] < now
            ]
            if rows:
                conn.execute(_V.insert(), rows)

    def iter_timelines(self, source: str, stream: str) -> Iterator[Timeline]:
        """Every record's timeline of a stream, in record-id order (deleted records included)."""
        query = (
            sa.select(_V.c.record_id, _V.c.valid_from, _V.c.data, _V.c.origin)
            .where(_V.c.source == source, _V.c.stream == stream)
            .order_by(_V.c.record_id, _V.c.valid_from)
        )
        current: str | None = None
        versions: list[Version] = []
        origin = False
        with self.engine.connect() as conn:
            for rid, valid_from, data, first in conn.execution_options(yield_per=5000).execute(
                query
            ):
                if rid != current:
                    if current is not None:
                        yield Timeline(current, tuple(versions), origin)
                    current, versions, origin = rid, [], bool(first)
                versions.append(Version.model_construct(valid_from=_aware(valid_from), data=data))
        if current is not None:
            yield Timeline(current, tuple(versions), origin)

    def has_timelines(self, source: str, stream: str) -> bool:
        """Whether any state of this stream's records is kept (immutable streams keep none)."""
        query = sa.select(_V.c.record_id).where(_V.c.source == source, _V.c.stream == stream)
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None


def _at(state: tuple[datetime, Any]) -> datetime:
    return state[0]


def _latest(
    conn: Connection, source: str, stream: str, ids: Collection[str]
) -> dict[str, tuple[datetime, Any]]:
    """The newest stored state of each of these records: (valid from, data)."""
    query = sa.select(_V.c.record_id, _V.c.valid_from, _V.c.data).where(
        _V.c.source == source, _V.c.stream == stream, _V.c.record_id.in_(sorted(ids))
    )
    out: dict[str, tuple[datetime, Any]] = {}
    for rid, valid_from, data in conn.execute(query):
        at = _aware(valid_from)
        if rid not in out or at > out[rid][0]:
            out[rid] = (at, data)
    return out


def _new_rows(
    source: str,
    stream: str,
    record: SourceRecord,
    states: Sequence[tuple[datetime, dict[str, Any] | None]],
    latest: dict[str, tuple[datetime, Any]],
) -> list[dict[str, Any]]:
    """The rows of these states that add to the record's timeline (later, and a change)."""
    rid = record.record_id
    prev = latest.get(rid)
    rows = []
    for at, data in states:
        if prev is None and data is None:
            continue  # a tombstone of a record never seen: nothing to end
        if prev is not None and (at <= prev[0] or data == prev[1]):
            continue  # known already, or no change
        rows.append(_row(source, stream, rid, at, data, origin=record.complete and prev is None))
        prev = latest[rid] = (at, data)
    return rows


def _row(
    source: str,
    stream: str,
    record_id: str,
    at: datetime,
    data: dict[str, Any] | None,
    *,
    origin: bool,
) -> dict[str, Any]:
    return {
        "source": source,
        "stream": stream,
        "record_id": record_id,
        "valid_from": at,
        "data": data,
        "origin": origin,
    }
