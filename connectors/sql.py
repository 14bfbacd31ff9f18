"""Product usage from SQL.

A query against any SQLAlchemy URL (the warehouse), or CSV and Parquet files read through DuckDB,
returning daily rows (account key, date, active users, events, per-feature counts), incremental by
date.

Each stream's query may use `:since`, the last date read (the boundary day is read again: daily
rows are restated while the day is open); without a query, the whole table or file is read from
`since` on. Rows come in pages of `page_rows`; a row without its key columns is quarantined.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from signalplay.errors import FatalError
from signalplay.models import Page, SourceRecord, StreamSpec
from signalplay.settings import inside_project

EPOCH = "1970-01-01"


class SqlStream(BaseModel):
    """One query: what it reads, the columns that key a row, and the date it is ordered by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str | None = None  # SQL with :since; the table or file is `source`
    table: str | None = None  # with `url`: the table when there is no query
    files: str | None = None  # CSV or Parquet path or glob (DuckDB), relative to the project
    key: tuple[str, ...] = ("account_id", "date")
    cursor_field: str = "date"
    # Rows of a day are facts that never change (usage): they count from their own date. A query
    # of records that change (say, accounts) sets this false, to keep their timeline.
    immutable: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> SqlStream:
        if self.query is None and self.table is None and self.files is None:
            raise ValueError("give a query, a table or files")
        return self


class SqlSettings(BaseModel):
    """A `sql` source block; a URL with a password belongs in SIGNALPLAY_SOURCES__<NAME>__URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "sql"
    url: SecretStr | None = None  # any SQLAlchemy URL; none: DuckDB over `files`
    streams: dict[str, SqlStream]
    page_rows: int = Field(default=5000, ge=1, le=1_000_000)


def _plain(value: Any) -> Any:
    """A database value as JSON keeps it (dates as ISO text, decimals as floats)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class SqlConnector:
    """Daily usage rows from a warehouse query or from files."""

    settings_model: ClassVar[type[BaseModel]] = SqlSettings

    def __init__(
        self,
        settings: SqlSettings,
        *,
        source: str = "usage",
        root: Path | None = None,
        allowed_paths: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.source = source
        self.root = root or Path.cwd()
        self.paths = {
            name: inside_project(
                self.root,
                stream.files,
                setting=f"sources.{source}.streams.{name}.files",
                allowed=allowed_paths,
            )
            for name, stream in settings.streams.items()
            if stream.files is not None
        }

    def close(self) -> None:
        """Connections are opened per read."""

    def streams(self) -> Sequence[StreamSpec]:
        """The configured queries."""
        return [
            StreamSpec(
                name=n,
                primary_key="|".join(s.key),
                cursor_field=s.cursor_field,
                immutable=s.immutable,
            )
            for n, s in self.settings.streams.items()
        ]

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Rows dated from `cursor` on, in pages; each page's cursor is the latest date seen."""
        spec = self.settings.streams[stream]
        since = cursor or EPOCH
        rows = (
            self._duckdb(spec, self.paths.get(stream), since)
            if self.settings.url is None
            else self._sqlalchemy(spec, since)
        )
        latest = cursor
        page: list[SourceRecord] = []
        bad: list[tuple[str, str, dict[str, Any]]] = []
        for row in rows:
            data = {k: _plain(v) for k, v in row.items()}
            missing = [k for k in spec.key if data.get(k) in (None, "")]
            if missing:
                bad.append(("", f"{stream}: no {', '.join(missing)}", data))
                continue
            stamp = data.get(spec.cursor_field)
            if stamp is not None and (latest is None or str(stamp) > latest):
                latest = str(stamp)
            page.append(
                SourceRecord(
                    source=self.source,
                    stream=stream,
                    record_id="|".join(str(data[k]) for k in spec.key),
                    data=data,
                )
            )
            if len(page) >= self.settings.page_rows:
                yield Page(records=tuple(page), cursor=latest, quarantined=tuple(bad))
                page, bad = [], []
        yield Page(records=tuple(page), cursor=latest, quarantined=tuple(bad))

    def _query(self, spec: SqlStream, source: str) -> str:
        if spec.query is not None:
            return spec.query
        field = spec.cursor_field  # names from the project's own settings, values bound
        return f"SELECT * FROM {source} WHERE {field} >= :since ORDER BY {field}"  # noqa: S608

    def _duckdb(
        self, spec: SqlStream, path: Path | None, since: str
    ) -> Iterator[Mapping[str, Any]]:
        import duckdb

        if spec.files is None or path is None:
            raise FatalError("sql", "read", "without `url`, a stream reads `files`")
        parquet = str(path).endswith(".parquet")
        reader = "read_parquet" if parquet else "read_csv_auto"
        con = duckdb.connect()
        try:
            literal = str(path).replace("'", "''")
            sql = self._query(spec, "source").replace(":since", "$since")
            try:
                con.execute(f"CREATE VIEW source AS SELECT * FROM {reader}('{literal}')")  # noqa: S608 - a quoted path literal
                cur = con.execute(sql, {"since": since} if "$since" in sql else {})
            except (duckdb.BinderException, duckdb.ParserException) as exc:
                # about the query, not the file: its first line names the column or keyword
                first = str(exc).splitlines()[0][:300]
                raise FatalError("sql", "query", f"{spec.files}: {first}") from None
            except duckdb.Error as exc:
                raise _unreadable(spec.files, parquet, exc) from None
            names = [d[0] for d in cur.description or ()]
            while batch := self._fetch(cur, spec.files, parquet):
                for values in batch:
                    yield dict(zip(names, values, strict=True))
        finally:
            con.close()

    def _fetch(self, cur: Any, files: str, parquet: bool) -> list[Any]:
        import duckdb

        try:
            return list(cur.fetchmany(self.settings.page_rows))
        except duckdb.Error as exc:  # a row DuckDB cannot convert
            raise _unreadable(files, parquet, exc) from None

    def _sqlalchemy(self, spec: SqlStream, since: str) -> Iterator[Mapping[str, Any]]:
        import sqlalchemy as sa

        url = self.settings.url
        if url is None:
            raise FatalError("sql", "read", "no url")
        engine = sa.create_engine(url.get_secret_value())
        try:
            sql = self._query(spec, spec.table or "source")
            params = {"since": since} if ":since" in sql else {}
            with engine.connect() as conn:
                try:
                    result = conn.execution_options(stream_results=True).execute(
                        sa.text(sql), params
                    )
                except sa.exc.SQLAlchemyError as exc:
                    cause = getattr(exc, "orig", None) or exc
                    raise FatalError("sql", "query", str(cause)[:300]) from None
                for row in result.mappings():
                    yield dict(row)
        finally:
            engine.dispose()


def _unreadable(files: str, parquet: bool, exc: Exception) -> FatalError:
    """A file DuckDB cannot read, named and never quoted (its messages can carry the line)."""
    kind = "Parquet" if parquet else "CSV"
    return FatalError(
        "sql",
        "read",
        f"{files}: DuckDB could not read it as {kind} ({type(exc).__name__}); "
        "check its encoding and columns",
    )
