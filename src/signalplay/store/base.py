"""What every part of the store shares.

The engine, migrations, a dialect-aware upsert, and the conversions of stored values. Imports:
sqlalchemy, alembic and the kernel.
"""

from __future__ import annotations

import fcntl
import math
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from signalplay.models import Episode
from signalplay.types import Clock, utc_clock

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATE_KEY = 0x5167_6E61_6C70_6C01  # the advisory lock key of signalplay's migrations
BATCH = 500
CONNECT_SECONDS = 10
SQLITE_BUSY_SECONDS = 30  # a writer waits this long for another's transaction, not 5 s


@overload
def _aware(moment: datetime) -> datetime: ...
@overload
def _aware(moment: datetime | None) -> datetime | None: ...
def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class StoreBase:
    """One database's engine and migrations; the parts of `Store` build on it."""

    def __init__(
        self, url: str, *, clock: Clock = utc_clock, connect_args: dict[str, Any] | None = None
    ) -> None:
        self.url = url
        self.clock = clock
        args = dict(connect_args or {})
        if url.startswith("sqlite"):
            args.setdefault("timeout", SQLITE_BUSY_SECONDS)
        elif url.startswith("postgresql"):
            args.setdefault("connect_timeout", CONNECT_SECONDS)  # a wrong host fails in seconds
        self.engine: Engine = sa.create_engine(url, connect_args=args, future=True)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    def has_table(self, name: str) -> bool:
        """Whether the database already has this table (without creating anything)."""
        return sa.inspect(self.engine).has_table(name)

    def migrate(self) -> None:
        """Bring the schema to the newest migration, one process at a time.

        Concurrent first starts queue: a PostgreSQL advisory lock held by the migrating
        transaction; on SQLite, an exclusive file lock beside the database file.
        """
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with Path(f"{database}.migrate-lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _upsert(
        self,
        conn: Connection,
        table: sa.Table,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
    ) -> None:
        if not rows:
            return
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = dialect.insert(table)
        update = {
            c.name: stmt.excluded[c.name]
            for c in table.columns
            if c.name not in keys and c.name in rows[0]  # columns the rows set (not `id`)
        }
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), list(rows))


def _episode(r: Any) -> Episode:
    return Episode(
        key=r.episode_key,
        account=r.account_key,
        trigger_id=r.trigger_id,
        opened_at=_aware(r.opened_at),
        evidence=r.evidence or {},
        status=r.status,
        resolved_at=_aware(r.resolved_at),
        resolution=r.resolution,
        decision=dict(r.decision or {}),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _of_accounts(query: Any, column: Any, accounts: Collection[str] | None) -> list[Any]:
    """The query as it is, or one per batch of these accounts.

    The query as it is (every account), or one per batch of these accounts (or other keys of
    `column`).
    """
    if accounts is None:
        return [query]
    keys = sorted(accounts)
    return [query.where(column.in_(keys[i : i + BATCH])) for i in range(0, len(keys), BATCH)]
