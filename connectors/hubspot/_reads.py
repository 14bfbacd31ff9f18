"""Reading HubSpot.

Companies, contacts, owners, deals and signalplay's tasks, paged and incremental.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from signalplay.connectors.hubspot._base import _Base
from signalplay.connectors.hubspot._wire import (
    ASSOC_READ_CAP,
    BATCH_CAP,
    HISTORY_PAGE_CAP,
    SEARCH_CAP,
    SEARCH_PAGE,
    _parse_iso,
)
from signalplay.errors import (
    FatalError,
)
from signalplay.models import (
    TASK_OUTCOME,
    Page,
    RecordRef,
    SourceRecord,
    StreamSpec,
    Version,
)


class _Reads(_Base):
    """Reading HubSpot.

    Companies, contacts, owners, deals and signalplay's tasks, paged and incremental.
    """

    # ---- reading ---------------------------------------------------------------------------
    def streams(self) -> Sequence[StreamSpec]:
        """The streams HubSpot serves.

        Companies, contacts, owners, deals (renewal dates and amounts) and the tasks
        signalplay wrote (status, completion, closure reason), the last incrementally.
        """
        full = [StreamSpec(name=n) for n in ("companies", "contacts", "owners", "deals")]
        return [*full, StreamSpec(name="tasks", cursor_field="hs_lastmodifieddate")]

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Full pages of a stream (CRM streams are small and mutable: re-read each run)."""
        if stream == "owners":
            yield from self._read_owners()
            return
        if stream == "tasks":
            yield from self._read_tasks(cursor, until)
            return
        yield from self._list(stream, archived=False)
        if stream == "contacts":  # a contact archived since leaves its account on that day
            yield from self._list(stream, archived=True)

    def _list(self, stream: str, *, archived: bool) -> Iterator[Page]:
        """Every record of a stream, 50 a page with its property history.

        Contacts carry the labels of their company associations. Archived records come as
        tombstones dated when they were archived.
        """
        apis = {"companies": self._companies, "contacts": self._contacts, "deals": self._deals}
        api = apis[stream].basic_api
        names = self._property_names(stream)
        assoc = ["companies"] if stream in ("contacts", "deals") else None
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(
                f"list {stream}" + (" (archived)" if archived else ""),
                partial(
                    api.get_page,
                    limit=HISTORY_PAGE_CAP,
                    after=after,
                    properties=names,
                    properties_with_history=names,
                    associations=assoc,
                    archived=archived,
                    _request_timeout=self._timeout,
                    _preload_content=False,  # the JSON as it is: models of every history item cost
                ),
            )
            answer = json.loads(page.data)
            results = [r for r in answer.get("results") or [] if isinstance(r, dict)]
            labels = (
                self._company_labels([str(r["id"]) for r in results])
                if stream == "contacts" and not archived
                else {}
            )
            records = tuple(
                self._record(stream, r, labels=labels.get(str(r["id"])), archived=archived)
                for r in results
            )
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if after is not None and after in seen:
                raise FatalError("hubspot", f"list {stream}", f"paging cursor {after!r} repeated")
            yield Page(records=records, cursor=None)
            if after is None:
                return
            seen.add(after)

    def _company_labels(self, contact_ids: Sequence[str]) -> dict[str, dict[str, list[str]]]:
        """Each contact's association labels, by company (v4 batch read, 1,000 a call)."""
        from hubspot.crm.associations.v4 import (
            BatchInputPublicFetchAssociationsBatchRequest,
            PublicFetchAssociationsBatchRequest,
        )

        out: dict[str, dict[str, list[str]]] = {}
        for start in range(0, len(contact_ids), ASSOC_READ_CAP):
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[
                    PublicFetchAssociationsBatchRequest(id=i)
                    for i in contact_ids[start : start + ASSOC_READ_CAP]
                ]
            )
            answer = self._call(
                "read contact associations",
                partial(
                    self._assoc.get_page,
                    "contacts",
                    "companies",
                    body,
                    _request_timeout=self._timeout,
                    _preload_content=False,  # the JSON as it is: the models cost more than the call
                ),
            )
            for result in json.loads(answer.data).get("results") or ():
                by_company = out.setdefault(str((result.get("from") or {}).get("id")), {})
                for target in result.get("to") or ():
                    names = sorted(
                        {
                            str(t["label"])
                            for t in target.get("associationTypes") or ()
                            if isinstance(t, dict) and t.get("label")
                        }
                    )
                    by_company[str(target.get("toObjectId"))] = names
        return out

    def _record(
        self,
        stream: str,
        obj: dict[str, Any],
        *,
        labels: dict[str, list[str]] | None = None,
        archived: bool = False,
    ) -> SourceRecord:
        data: dict[str, Any] = dict(obj.get("properties") or {})
        data["id"] = str(obj["id"])
        companies = (obj.get("associations") or {}).get("companies")
        if companies is not None:
            ids = sorted({str(a["id"]) for a in companies.get("results") or ()}, key=int)
            data["company_ids"] = ids
            data["company_id"] = ids[0] if ids else None
        if stream == "contacts" and not archived:
            # the labels of the link to its company, as text a mapping's rules can read
            data["association_labels"] = "; ".join(
                (labels or {}).get(str(data.get("company_id")), [])
            )
        history = _states(data, obj.get("propertiesWithHistory") or {})
        updated = _parse_iso(obj.get("archivedAt") if archived else None) or _parse_iso(
            obj.get("updatedAt")
        )
        return SourceRecord(
            source=self.source,
            stream=stream,
            record_id=str(obj["id"]),
            data=data,
            updated_at=updated,
            deleted=archived,
            history=history,
            complete=bool(history),
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
        """Signalplay's tasks changed since `cursor`, oldest first, through search.

        signalplay's tasks changed since `cursor` (their last-modified time), oldest first,
        through search: 200 a page, and a new query from the last time seen when a query
        reaches search's 10,000-result cap.
        """
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


def _states(current: dict[str, Any], with_history: Mapping[str, Any]) -> tuple[Version, ...]:
    """A record's earlier states from its property history, oldest first.

    HubSpot keeps every property's changes (value and time) from the record's creation, so
    the record is rebuilt at each time one changed: what is not in the history (associations,
    the id) is taken as it is now. The newest state equals the current record.
    """
    changes = sorted(
        (at, name, item.get("value"))
        for name, items in with_history.items()
        for item in items or ()
        if isinstance(item, dict) and (at := _parse_iso(item.get("timestamp"))) is not None
    )
    if not changes:
        return ()
    state = {**current, **dict.fromkeys(with_history)}
    out: list[Version] = []
    for i, (at, name, value) in enumerate(changes):
        state[name] = value
        if i + 1 < len(changes) and changes[i + 1][0] == at:
            continue  # one write changes several properties at once
        out.append(Version(valid_from=at, data=dict(state)))
    return tuple(out)
