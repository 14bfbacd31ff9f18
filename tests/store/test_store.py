from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from signalplay.models import Episode, SourceRecord, WriteAction, WriteOp, WriteResult
from signalplay.store import Store
from signalplay.store.schema import metadata

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'store.db'}", clock=lambda: NOW)
        s.migrate()
        yield s
        s.close()
        return
    schema = f"sp_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    s = Store(PG, clock=lambda: NOW, connect_args={"options": f"-csearch_path={schema}"})
    s.migrate()
    yield s
    s.close()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_migrations_match_the_table_definitions(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    assert store.ledger_counts() == {}


def test_save_page_upserts_records_and_moves_cursor(store: Store) -> None:
    rec = SourceRecord(source="s", stream="x", record_id="1", data={"v": 1}, updated_at=NOW)
    store.save_page("s", "x", [rec], "c1")
    store.save_page("s", "x", [rec.model_copy(update={"data": {"v": 2}})], "c2")
    assert store.get_cursor("s", "x") == "c2"
    assert [r.data for r in store.iter_records("s", "x")] == [{"v": 2}]
    assert store.count_records("s", "x") == 1


def test_page_without_cursor_keeps_the_saved_cursor(store: Store) -> None:
    store.save_page("s", "x", [], "c1")
    store.save_page("s", "x", [], None)
    assert store.get_cursor("s", "x") == "c1"


def _op(key: str) -> WriteOp:
    return WriteOp(
        op_key=key,
        action=WriteAction.UPDATE_FIELDS,
        object_type="companies",
        target="1",
        values={"a": "1"},
        reason="test",
    )


def test_ledger_planned_then_applied_then_not_replanned(store: Store) -> None:
    store.record_planned("r1", "hubspot", [_op("k1"), _op("k2")])
    store.record_results(
        [
            WriteResult(op_key="k1", ok=True, crm_id="9"),
            WriteResult(op_key="k2", ok=False, error="boom"),
        ]
    )
    assert store.applied_keys() == {"k1"}
    assert store.ledger_counts() == {"applied": 1, "failed": 1}
    assert [o.op_key for o in store.pending_ops()] == ["k2"]
    store.record_planned("r2", "hubspot", [_op("k1")])
    assert store.applied_keys() == {"k1"}


def test_episodes_round_trip_with_aware_times(store: Store) -> None:
    ep = Episode("sp_1", "acct", "trig", NOW, {"x": 1.5})
    store.save_episodes([ep])
    assert store.open_episodes()[("acct", "trig")].opened_at == NOW
    resolved = Episode(
        "sp_1", "acct", "trig", NOW, {"x": 1.5}, "resolved", NOW, "condition_cleared"
    )
    store.save_episodes([resolved])
    assert store.open_episodes() == {}
    assert store.last_resolved() == {("acct", "trig"): NOW}


def test_saved_plan_loads_exactly(store: Store) -> None:
    plan_id = store.save_plan("r1", [_op("k1")])
    assert store.load_plan(plan_id) == [_op("k1")]
    assert store.latest_plan_id() == plan_id


def test_quarantine_keeps_one_row_per_record_and_map_stage_is_replaced(store: Store) -> None:
    store.quarantine("r1", "s", "x", [("1", "bad", {"v": 1}), ("2", "bad", {"v": 2})], stage="map")
    store.quarantine("r2", "s", "x", [("2", "worse", {"v": 2})], stage="map")
    store.quarantine("r2", "s", "x", [("file.csv:3", "missing 'id'", {"a": "b"})], stage="pull")
    store.quarantine("r3", "s", "x", [("file.csv:3", "missing 'id'", {"a": "b"})], stage="pull")
    rows = {(r["record_id"], r["stage"]): r for r in store.quarantined()}
    assert set(rows) == {("2", "map"), ("file.csv:3", "pull")}
    assert rows[("2", "map")]["reason"] == "worse"
    assert rows[("file.csv:3", "pull")]["run_id"] == "r3"
    assert store.quarantine_counts() == {"s.x": 2}


def test_identity_report_is_replaced_by_each_build(store: Store) -> None:
    from signalplay.models import IdentityIssue

    first = IdentityIssue("s", "x", "1", "unmatched", "domain", "a.example")
    conflict = IdentityIssue("s", "x", "2", "conflict", "domain", "b.example", ("10", "11"))
    store.replace_identity_issues("r1", [first, conflict])
    assert store.identity_issues(problem="conflict") == [conflict]
    store.replace_identity_issues("r2", [conflict])
    assert store.identity_issues() == [conflict]


def test_snapshot_values_reads_only_the_asked_days_and_fields(store: Store) -> None:
    from datetime import date

    store.save_snapshots(date(2026, 11, 10), {"a": {"x": 1, "y": 2}, "b": {"x": 3}})
    store.save_snapshots(date(2026, 11, 11), {"a": {"x": 5, "y": float("nan")}})
    got = store.snapshot_values([date(2026, 11, 10)], {"x"})
    assert got == {date(2026, 11, 10): {"a": {"x": 1}, "b": {"x": 3}}}
    assert store.snapshot("a") == (date(2026, 11, 11), {"x": 5, "y": None})
    assert store.latest_snapshots() == {"a": {"x": 5, "y": None}}


def test_a_timeline_keeps_each_change_once_and_the_deletion(store: Store) -> None:
    from datetime import timedelta

    from signalplay.models import Version

    t0, t1 = NOW - timedelta(days=30), NOW - timedelta(days=3)

    def rec(data: dict, **kw: object) -> SourceRecord:
        return SourceRecord(source="crm", stream="companies", record_id="1", data=data, **kw)

    first = rec(
        {"id": "1", "seats": "20"},
        updated_at=t1,
        history=(Version(valid_from=t0, data={"id": "1", "seats": "10"}),),
        complete=True,
    )
    store.save_page("crm", "companies", [first], None)
    store.save_page("crm", "companies", [first], None)  # the same read again: nothing new
    store.save_page("crm", "companies", [rec({"id": "1", "seats": "20"})], None)  # no change
    (timeline,) = store.iter_timelines("crm", "companies")
    assert [v.valid_from for v in timeline.versions] == [t0, t1]
    assert [v.data["seats"] for v in timeline.versions if v.data] == ["10", "20"]
    assert timeline.origin  # the history went back to the record's creation
    store.keep_only("crm", "companies", set())  # gone from a complete re-read
    (timeline,) = store.iter_timelines("crm", "companies")
    assert timeline.versions[-1].data is None
    assert timeline.versions[-1].valid_from == NOW
    assert list(store.iter_records("crm", "companies")) == []
    # a source without history: its state is known from when it was first seen, no earlier
    store.save_page("billing", "subscriptions", [rec({"id": "s"})], None)
    (seen,) = store.iter_timelines("billing", "subscriptions")
    assert (seen.origin, [v.valid_from for v in seen.versions]) == (False, [NOW])
    assert not store.has_timelines("usage", "usage_daily")


def test_a_change_the_source_did_not_date_is_dated_when_it_was_seen(store: Store) -> None:
    """A contact whose label was removed keeps its updatedAt: the new state is from the pull
    that saw it, never back-dated to the old stamp (which would rewrite what was known)."""
    from datetime import timedelta

    stamp = NOW - timedelta(days=40)
    when = {"now": NOW - timedelta(days=20)}
    store.clock = lambda: when["now"]

    def rec(role: str) -> SourceRecord:
        data = {"id": "7", "role": role}
        return SourceRecord(
            source="crm", stream="contacts", record_id="7", data=data, updated_at=stamp
        )

    store.save_page("crm", "contacts", [rec("champion")], None)
    when["now"] = NOW
    store.save_page("crm", "contacts", [rec("")], None)
    store.save_page("crm", "contacts", [rec("")], None)  # seen again: nothing new
    (timeline,) = store.iter_timelines("crm", "contacts")
    assert [(v.valid_from, v.data["role"]) for v in timeline.versions if v.data] == [
        (stamp, "champion"),
        (NOW, ""),
    ]
