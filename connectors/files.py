"""CSV files as a source: one stream per file, incremental on a date or timestamp column.

Values are typed as a CSV reader with inference would: empty → None, whole numbers → int,
decimals → float, anything else stays text. A row without its key, or with bytes that are not
UTF-8, is quarantined with its file and line; the rest of the file goes on. Files are read only
inside the project (or a folder under `allowed_paths`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from signalplay.errors import ConfigError, Issue
from signalplay.models import Page, SourceRecord, StreamSpec
from signalplay.settings import inside_project

PAGE_ROWS = 5_000


class FileStream(BaseModel):
    """One file and how its rows are keyed and ordered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    primary_key: str = "id"
    cursor_field: str | None = None
    # Rows that never change once written (a day's usage): they count from their own date. A
    # file of records that change (tickets, invoices) keeps their timeline instead.
    immutable: bool = False


class FilesSettings(BaseModel):
    """A `files` source block: streams by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector: str = "files"
    root: str = "."
    streams: dict[str, FileStream]


def infer(value: str) -> Any:
    """A CSV cell as a typed value."""
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


class FilesConnector:
    """Reads CSV files page by page, from the saved cursor on (boundary rows re-read)."""

    settings_model: ClassVar[type[BaseModel]] = FilesSettings

    def __init__(
        self,
        settings: FilesSettings,
        *,
        source: str = "files",
        root: Path | None = None,
        allowed_paths: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.source = source
        project = root or Path.cwd()
        self.paths = {
            name: inside_project(
                project,
                str(Path(settings.root) / stream.path),
                setting=f"sources.{source}.streams.{name}.path",
                allowed=allowed_paths,
            )
            for name, stream in settings.streams.items()
        }

    def streams(self) -> Sequence[StreamSpec]:
        """The configured files."""
        return [
            StreamSpec(
                name=n,
                primary_key=s.primary_key,
                cursor_field=s.cursor_field,
                immutable=s.immutable,
            )
            for n, s in self.settings.streams.items()
        ]

    def close(self) -> None:
        """Files are opened per read."""

    def read(self, stream: str, *, cursor: str | None, until: datetime) -> Iterator[Page]:
        """Rows whose cursor field is at or after `cursor`, in pages; the cursor is the max seen."""
        spec = self.settings.streams[stream]
        path = self.paths[stream]
        if not path.is_file():
            raise ConfigError(
                [
                    Issue(
                        "signalplay.yaml",
                        None,
                        None,
                        f"sources.{self.source}.streams.{stream}.path",
                        f"{spec.path} does not exist (looked for {path})",
                        "put the export there, or point the setting at it",
                    )
                ]
            )
        records: list[SourceRecord] = []
        bad: list[tuple[str, str, dict[str, Any]]] = []
        high = cursor
        # bytes that are not UTF-8 are kept as surrogates, so that one bad row is quarantined
        # and the rows after it are read
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                if _undecodable(row):
                    bad.append((f"{path.name}:{number}", "not UTF-8 text", _readable(row)))
                    continue
                data = {k: infer(v) for k, v in row.items() if k is not None}
                key = data.get(spec.primary_key)
                if key is None:
                    bad.append(
                        (f"{path.name}:{number}", f"missing {spec.primary_key!r}", dict(row))
                    )
                    continue
                mark = str(data.get(spec.cursor_field) or "") if spec.cursor_field else ""
                if cursor is not None and spec.cursor_field and mark < cursor:
                    continue
                high = max(high or "", mark) or high
                records.append(
                    SourceRecord(
                        source=self.source,
                        stream=stream,
                        record_id=str(key),
                        data=data,
                        updated_at=_moment(mark),
                    )
                )
                if len(records) >= PAGE_ROWS:
                    yield Page(records=tuple(records), cursor=None, quarantined=tuple(bad))
                    records, bad = [], []
        yield Page(records=tuple(records), cursor=high, quarantined=tuple(bad))


def _undecodable(row: dict[str | None, Any]) -> bool:
    return any(
        isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v)
        for v in (*row.values(), *(k for k in row if k))
    )


def _readable(row: dict[str | None, Any]) -> dict[str, Any]:
    def text(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    return {text(k) if k else "": text(v) for k, v in row.items()}


def _moment(mark: str) -> datetime | None:
    if not mark:
        return None
    try:
        moment = datetime.fromisoformat(mark.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
