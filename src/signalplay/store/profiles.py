"""Profile facts (with lineage) and the daily snapshots of every account's profile.

Imports: sqlalchemy and the kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

import sqlalchemy as sa

from signalplay.models import Fact
from signalplay.store import schema as t
from signalplay.store.base import BATCH, StoreBase, _aware, _jsonable


class ProfilesStore(StoreBase):
    """Profile facts (with lineage) and the daily snapshots of every account's profile."""

    # profile --------------------------------------------------------------------------------
    def replace_facts(self, facts: Mapping[str, Mapping[str, Fact]]) -> None:
        """Make the stored profile exactly `facts`."""
        rows = [
            {
                "account_key": acct,
                "field": name,
                "value": f.value,
                "source": f.source,
                "stream": f.stream,
                "record_id": f.record_id[:255],
                "observed_at": f.observed_at,
            }
            for acct, fields in facts.items()
            for name, f in fields.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(t.profile_facts.delete())
            for start in range(0, len(rows), BATCH):
                conn.execute(t.profile_facts.insert(), rows[start : start + BATCH])

    def load_facts(self, accounts: Collection[str] | None = None) -> dict[str, dict[str, Fact]]:
        """The stored profile facts, optionally of some accounts only."""
        query = sa.select(t.profile_facts)
        if accounts is None:
            batches = [query]
        else:
            keys = sorted(accounts)
            batches = [
                query.where(t.profile_facts.c.account_key.in_(keys[i : i + BATCH]))
                for i in range(0, len(keys), BATCH)
            ]
        out: dict[str, dict[str, Fact]] = {}
        with self.engine.connect() as conn:
            for r in (row for q in batches for row in conn.execute(q)):
                out.setdefault(r.account_key, {})[r.field] = Fact(
                    value=r.value,
                    source=r.source,
                    stream=r.stream,
                    record_id=r.record_id,
                    observed_at=_aware(r.observed_at),
                )
        return out

    def save_snapshots(self, day: date, profiles: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep today's profile of every account (one row per account and day)."""
        rows = [
            {"account_key": a, "day": day, "profile": _jsonable(dict(p))}
            for a, p in profiles.items()
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                self._upsert(
                    conn, t.profile_snapshots, rows[start : start + BATCH], ("account_key", "day")
                )

    def snapshot_values(
        self,
        days: Collection[date],
        fields: Collection[str],
        *,
        accounts: Collection[str] | None = None,
    ) -> dict[date, dict[str, dict[str, Any]]]:
        """Some fields of the snapshots of some days (and accounts).

        Returns day → account → field → value.
        """
        out: dict[date, dict[str, dict[str, Any]]] = {}
        if not days or not fields:
            return out
        wanted = set(fields)
        q = sa.select(
            t.profile_snapshots.c.day,
            t.profile_snapshots.c.account_key,
            t.profile_snapshots.c.profile,
        ).where(t.profile_snapshots.c.day.in_(sorted(days)))
        keys = sorted(accounts) if accounts is not None else None
        queries = (
            [q]
            if keys is None
            else [
                q.where(t.profile_snapshots.c.account_key.in_(keys[i : i + BATCH]))
                for i in range(0, len(keys), BATCH)
            ]
        )
        with self.engine.connect() as conn:
            for query in queries:
                rows = conn.execution_options(yield_per=2000).execute(query)
                for day, account, profile in rows:
                    values = {k: v for k, v in (profile or {}).items() if k in wanted}
                    out.setdefault(day, {})[account] = values
        return out

    def snapshot(self, account: str) -> tuple[date, dict[str, Any]] | None:
        """An account's newest snapshot: its day and profile values."""
        q = (
            sa.select(t.profile_snapshots.c.day, t.profile_snapshots.c.profile)
            .where(t.profile_snapshots.c.account_key == account)
            .order_by(t.profile_snapshots.c.day.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else (row[0], dict(row[1] or {}))

    def snapshot_days(self) -> list[date]:
        """The days that have snapshots, oldest first."""
        q = sa.select(t.profile_snapshots.c.day).distinct().order_by(t.profile_snapshots.c.day)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def snapshots_on(self, day: date) -> dict[str, dict[str, Any]]:
        """Every account's whole profile on one snapshot day."""
        q = sa.select(t.profile_snapshots.c.account_key, t.profile_snapshots.c.profile).where(
            t.profile_snapshots.c.day == day
        )
        with self.engine.connect() as conn:
            return {a: dict(p or {}) for a, p in conn.execute(q)}

    def latest_snapshots(self) -> dict[str, dict[str, Any]]:
        """Every account's profile on the newest snapshot day."""
        days = self.snapshot_days()
        if not days:
            return {}
        q = sa.select(t.profile_snapshots.c.account_key, t.profile_snapshots.c.profile).where(
            t.profile_snapshots.c.day == days[-1]
        )
        with self.engine.connect() as conn:
            return {a: dict(p or {}) for a, p in conn.execute(q)}
