"""Raw records by source and stream, their cursors, quarantine and identity issues.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signalplay.models import IdentityIssue, SourceRecord
from signalplay.store import schema as t
from signalplay.store.base import BATCH, _aware, _jsonable, _of_accounts
from signalplay.store.timelines import TimelinesStore


class RecordsStore(TimelinesStore):
    """Raw records by source and stream, their cursors, quarantine and identity issues."""

    # cursors and raw records ------------------------------------------------------------------
    def get_cursor(self, source: str, stream: str) -> str | None:
        """The saved cursor of a stream."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.cursors.c.cursor).where(
                    t.cursors.c.source == source, t.cursors.c.stream == stream
                )
            ).first()
        return None if row is None else row[0]

    def save_page(
        self,
        source: str,
        stream: str,
        records: Sequence[SourceRecord],
        cursor: str | None,
        *,
        timeline: bool = True,
    ) -> None:
        """Upsert a page's records and move the cursor forward, in one transaction.

        A tombstone (`deleted`) removes its record instead. With `timeline` (a mutable stream)
        the records' new states are appended to their timelines too.
        """
        now = self.clock()
        every = records
        gone = [r.record_id for r in records if r.deleted]
        records = [r for r in records if not r.deleted]
        rows = [
            {
                "source": source,
                "stream": stream,
                "record_id": r.record_id,
                "data": r.data,
                "updated_at": r.updated_at,
                "pulled_at": now,
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                self._upsert(
                    conn,
                    t.raw_records,
                    rows[start : start + BATCH],
                    ("source", "stream", "record_id"),
                )
            _delete_records(conn, source, stream, gone)
            if timeline:
                self._append_states(conn, source, stream, every)
            if cursor is not None:
                self._upsert(
                    conn,
                    t.cursors,
                    [{"source": source, "stream": stream, "cursor": cursor, "updated_at": now}],
                    ("source", "stream"),
                )

    def keep_only(self, source: str, stream: str, seen: Collection[str]) -> int:
        """Remove a stream's stored records not in `seen` (a complete full read); how many."""
        stored = sa.select(t.raw_records.c.record_id).where(
            (t.raw_records.c.source == source) & (t.raw_records.c.stream == stream)
        )
        with self.engine.begin() as conn:
            gone = [r[0] for r in conn.execute(stored) if r[0] not in seen]
            _delete_records(conn, source, stream, gone)
            self._end_records(conn, source, stream, gone)
        return len(gone)

    def iter_records(self, source: str, stream: str) -> Iterator[SourceRecord]:
        """Every stored record of a stream, streamed in record-id order."""
        query = (
            sa.select(t.raw_records.c.record_id, t.raw_records.c.data, t.raw_records.c.updated_at)
            .where(t.raw_records.c.source == source, t.raw_records.c.stream == stream)
            .order_by(t.raw_records.c.record_id)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(query)
            for rid, data, updated in result:
                yield SourceRecord(
                    source=source,
                    stream=stream,
                    record_id=rid,
                    data=data,
                    updated_at=_aware(updated),
                )

    def count_records(self, source: str, stream: str) -> int:
        """How many records of a stream are stored."""
        with self.engine.connect() as conn:
            query = (
                sa.select(sa.func.count())
                .select_from(t.raw_records)
                .where(t.raw_records.c.source == source, t.raw_records.c.stream == stream)
            )
            return int(conn.execute(query).scalar_one())

    def quarantine(
        self,
        run_id: str,
        source: str,
        stream: str,
        items: Iterable[tuple[str, str, Any]],
        *,
        stage: str = "pull",
    ) -> int:
        """Keep bad records with their reason, once per record and stage; returns how many.

        The `map` stage is replaced as a whole per stream: it lists what the current mapping
        cannot use, so a record fixed at the source (or by a mapping change) leaves the list.
        """
        now = self.clock()
        rows = {
            rid[:255]: {
                "run_id": run_id,
                "source": source,
                "stream": stream,
                "record_id": rid[:255],
                "stage": stage,
                "reason": reason[:2000],
                "payload": _jsonable(payload),
                "created_at": now,
            }
            for rid, reason, payload in items
        }
        with self.engine.begin() as conn:
            if stage == "map":
                conn.execute(
                    t.quarantine.delete().where(
                        t.quarantine.c.source == source,
                        t.quarantine.c.stream == stream,
                        t.quarantine.c.stage == "map",
                    )
                )
            batch = list(rows.values())
            for start in range(0, len(batch), BATCH):
                self._upsert(
                    conn,
                    t.quarantine,
                    batch[start : start + BATCH],
                    ("source", "stream", "record_id", "stage"),
                )
        return len(rows)

    def quarantined(
        self, *, source: str | None = None, stream: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Quarantined records, newest first, optionally of one source or stream."""
        q = sa.select(t.quarantine).order_by(t.quarantine.c.created_at.desc(), t.quarantine.c.id)
        if source:
            q = q.where(t.quarantine.c.source == source)
        if stream:
            q = q.where(t.quarantine.c.stream == stream)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.limit(limit))]

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined records per `source.stream`."""
        q = sa.select(t.quarantine.c.source, t.quarantine.c.stream, sa.func.count()).group_by(
            t.quarantine.c.source, t.quarantine.c.stream
        )
        with self.engine.connect() as conn:
            return {f"{s}.{st}": int(n) for s, st, n in conn.execute(q)}

    # identity -------------------------------------------------------------------------------
    def replace_identity_issues(self, run_id: str, issues: Sequence[IdentityIssue]) -> None:
        """Make the identity report exactly `issues` (the newest profile build's)."""
        now = self.clock()
        rows = {
            (i.source, i.stream, i.record_id[:255]): {
                "source": i.source,
                "stream": i.stream,
                "record_id": i.record_id[:255],
                "problem": i.problem,
                "key_kind": i.key_kind,
                "key_value": i.key_value,
                "accounts": list(i.accounts),
                "run_id": run_id,
                "seen_at": now,
            }
            for i in issues
        }
        batch = list(rows.values())
        with self.engine.begin() as conn:
            conn.execute(t.identity_issues.delete())
            for start in range(0, len(batch), BATCH):
                conn.execute(t.identity_issues.insert(), batch[start : start + BATCH])

    def identity_issues(self, *, problem: str | None = None) -> list[IdentityIssue]:
        """The identity report: records that joined no account, by stream and record."""
        q = sa.select(t.identity_issues).order_by(
            t.identity_issues.c.source, t.identity_issues.c.stream, t.identity_issues.c.record_id
        )
        if problem:
            q = q.where(t.identity_issues.c.problem == problem)
        with self.engine.connect() as conn:
            return [
                IdentityIssue(
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    problem=r.problem,
                    key_kind=r.key_kind,
                    key_value=r.key_value,
                    accounts=tuple(r.accounts or ()),
                )
                for r in conn.execute(q)
            ]

    def records_with_ids(
        self, source: str, stream: str, ids: Collection[str]
    ) -> list[SourceRecord]:
        """The stored records of a stream with these ids (a shard's accounts, say)."""
        query = sa.select(t.raw_records).where(
            t.raw_records.c.source == source, t.raw_records.c.stream == stream
        )
        with self.engine.connect() as conn:
            return [
                SourceRecord(
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    data=r.data,
                    updated_at=_aware(r.updated_at),
                )
                for q in _of_accounts(query, t.raw_records.c.record_id, ids)
                for r in conn.execute(q)
            ]


def _delete_records(conn: Connection, source: str, stream: str, ids: Sequence[str]) -> None:
    """Remove these stored records of a stream, a batch of ids at a time."""
    for start in range(0, len(ids), BATCH):
        conn.execute(
            t.raw_records.delete().where(
                (t.raw_records.c.source == source)
                & (t.raw_records.c.stream == stream)
                & t.raw_records.c.record_id.in_(ids[start : start + BATCH])
            )
        )
