"""The usage source: daily rows from CSV and Parquet files through DuckDB, and from a query
against SQLAlchemy URLs (SQLite here, the machine's PostgreSQL too), incremental by date with
the boundary day read again, a keyless row quarantined, a broken query named."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from signalplay.connectors.sql import SqlConnector, SqlSettings, SqlStream
from signalplay.errors import FatalError

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def rows(days: int = 10, accounts: int = 3) -> list[dict[str, object]]:
    start = date(2026, 11, 1)
    return [
        {
            "account_id": f"acct{a}.example",
            "date": (start + timedelta(days=d)).isoformat(),
            "active_users": 10 + a + d,
            "events": 100 * (a + 1),
            "feature_reports": d % 3,
        }
        for d in range(days)
        for a in range(accounts)
    ]


def write_csv(path: Path, data: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


def read_all(conn: SqlConnector, cursor: str | None = None) -> tuple[list[dict], str | None]:  # type: ignore[type-arg]
    pages = list(conn.read("usage_daily", cursor=cursor, until=NOW))
    return [r.data for p in pages for r in p.records], pages[-1].cursor


def test_csv_through_duckdb_incrementally(tmp_path: Path) -> None:
    write_csv(tmp_path / "usage.csv", rows())
    settings = SqlSettings(streams={"usage_daily": SqlStream(files="usage.csv")}, page_rows=7)
    conn = SqlConnector(settings, root=tmp_path)
    first, cursor = read_all(conn)
    assert len(first) == 30
    assert cursor == "2026-11-10"
    assert first[0]["active_users"] == 10  # typed by DuckDB
    write_csv(tmp_path / "usage.csv", [*rows(), *rows(12)[30:]])
    again, cursor = read_all(conn, cursor)
    assert {r["date"] for r in again} == {
        "2026-11-10",
        "2026-11-11",
        "2026-11-12",
    }  # the boundary day again
    assert cursor == "2026-11-12"


def test_parquet_with_an_aggregating_query(tmp_path: Path) -> None:
    write_csv(tmp_path / "events.csv", rows())
    source, target = tmp_path / "events.csv", tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv_auto('{source}')) TO '{target}' (FORMAT parquet)")
    query = (
        "SELECT account_id, date, max(active_users) AS active_users, sum(events) AS events "
        "FROM source WHERE date >= :since GROUP BY account_id, date ORDER BY date, account_id"
    )
    settings = SqlSettings(streams={"usage_daily": SqlStream(files="events.parquet", query=query)})
    data, cursor = read_all(SqlConnector(settings, root=tmp_path), "2026-11-09")
    assert [(r["account_id"], r["date"]) for r in data][:2] == [
        ("acct0.example", "2026-11-09"),
        ("acct1.example", "2026-11-09"),
    ]
    assert cursor == "2026-11-10"


def test_a_keyless_row_is_quarantined_and_a_broken_query_named(tmp_path: Path) -> None:
    data = rows(2)
    data[1]["account_id"] = ""
    write_csv(tmp_path / "usage.csv", data)
    settings = SqlSettings(streams={"usage_daily": SqlStream(files="usage.csv")})
    (page,) = list(
        SqlConnector(settings, root=tmp_path).read("usage_daily", cursor=None, until=NOW)
    )
    assert len(page.records) == 5
    assert [reason for _, reason, _ in page.quarantined] == ["usage_daily: no account_id"]
    broken = SqlSettings(
        streams={"usage_daily": SqlStream(files="usage.csv", query="SELECT nope FROM source")}
    )
    with pytest.raises(FatalError, match=r"usage\.csv"):
        list(SqlConnector(broken, root=tmp_path).read("usage_daily", cursor=None, until=NOW))


def _load(url: str, table: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (account_id text, date date, active_users int, "
                "events int, feature_reports int)"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {table} "
                "VALUES (:account_id, :date, :active_users, :events, :feature_reports)"
            ),
            [{**r, "date": date.fromisoformat(str(r["date"]))} for r in rows()],
        )
    engine.dispose()


def test_a_warehouse_table_through_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _load(url, "usage_daily")
    settings = SqlSettings(
        url=SecretStr(url), streams={"usage_daily": SqlStream(table="usage_daily")}
    )
    data, cursor = read_all(SqlConnector(settings), "2026-11-08")
    assert len(data) == 9
    assert cursor == "2026-11-10"


@pytest.mark.service
def test_postgresql_with_a_query() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    table = f"usage_{uuid.uuid4().hex[:8]}"
    _load(url, table)
    try:
        query = (
            f"SELECT account_id, date, active_users FROM {table} WHERE date >= :since ORDER BY date"
        )
        settings = SqlSettings(url=SecretStr(url), streams={"usage_daily": SqlStream(query=query)})
        data, cursor = read_all(SqlConnector(settings), "2026-11-10")
        assert [r["date"] for r in data] == ["2026-11-10"] * 3
        assert cursor == "2026-11-10"
    finally:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
