"""Reading Salesforce.

Accounts, contacts and their roles, opportunities and signalplay's tasks, by SOQL and incrementally.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from signalplay.connectors.salesforce._base import _Base
from signalplay.connectors.salesforce._wire import (
    BATCH_CAP,
    EPOCH,
    STREAMS,
    _parse_time,
    _safe_id,
    _soql_time,
    _text,
)
from signalplay.models import (
    TASK_OUTCOME,
    Page,
    RecordRef,
    SourceRecord,
    StreamSpec,
)


class _Reads(_Base):
    """Reading Salesforce.

    Accounts, contacts and their roles, opportunities and signalplay's tasks, by SOQL and
    incrementally.
    """

    # reading ------------------------------------------------------------------------------------
    def streams(self) -> Sequence[StreamSpec]:
        """The streams Salesforce serves.

        Accounts, contacts, their roles on accounts and on opportunities, users,
        opportunities (renewals) and signalplay's tasks.
        """
        return [StreamSpec(name=n, cursor_field="SystemModstamp") for n in STREAMS]

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Records changed after `cursor` up to `until`, deletes included.

        Records changed after `cursor` up to `until`, deletes included (IsDeleted), oldest
        first; each page's cursor is its last SystemModstamp.
        """
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
            deleted=bool(data.get("IsDeleted")),  # queryAll returns deletes: tombstones
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
