"""Trigger episodes and the decisions made for them. Imports: sqlalchemy and the kernel."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from signalplay.models import Episode
from signalplay.store import schema as t
from signalplay.store.base import StoreBase, _aware, _episode, _jsonable, _of_accounts


class EpisodesStore(StoreBase):
    """Trigger episodes and the decisions made for them."""

    def task_episodes(self) -> dict[str, str]:
        """The episode of each task signalplay planned: the task's key → its episode key."""
        q = sa.select(t.ledger.c.target, t.ledger.c.episode_key).where(
            t.ledger.c.object_type == "tasks", t.ledger.c.episode_key.is_not(None)
        )
        with self.engine.connect() as conn:
            return {str(target): str(episode) for target, episode in conn.execute(q)}

    # episodes -------------------------------------------------------------------------------
    def open_episodes(
        self, accounts: Collection[str] | None = None
    ) -> dict[tuple[str, str], Episode]:
        """Open episodes by (account, trigger), of every account or of these (a shard's)."""
        query = sa.select(t.episodes).where(t.episodes.c.status == "open")
        with self.engine.connect() as conn:
            return {
                (r.account_key, r.trigger_id): _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            }

    def episodes(
        self,
        *,
        status: str | None = None,
        account: str | None = None,
        resolved_since: datetime | None = None,
        accounts: Collection[str] | None = None,
    ) -> list[Episode]:
        """Every episode, optionally filtered by status, account and resolution time.

        Every episode, optionally of one status, of one account (or of these accounts),
        resolved since a moment.
        """
        query = sa.select(t.episodes).order_by(t.episodes.c.opened_at, t.episodes.c.episode_key)
        if status:
            query = query.where(t.episodes.c.status == status)
        if account is not None:
            query = query.where(t.episodes.c.account_key == account)
        if resolved_since is not None:
            query = query.where(t.episodes.c.resolved_at >= resolved_since)
        with self.engine.connect() as conn:
            return [
                _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            ]

    def rename_trigger(self, old: str, new: str) -> int:
        """Move `old`'s episodes to the trigger id `new` (its `renamed_from`); how many.

        An account with an episode open under both ids keeps the new one; the old one stays
        (and closes as retired).
        """
        ep = t.episodes
        both = (
            sa.select(ep.c.account_key)
            .where((ep.c.trigger_id == new) & (ep.c.status == "open"))
            .scalar_subquery()
        )
        q = (
            ep.update()
            .where(ep.c.trigger_id == old)
            .where(~((ep.c.status == "open") & ep.c.account_key.in_(both)))
            .values(trigger_id=new)
        )
        with self.engine.begin() as conn:
            return int(conn.execute(q).rowcount or 0)

    def open_by_trigger(self) -> dict[str, int]:
        """Open episodes per trigger id."""
        q = (
            sa.select(t.episodes.c.trigger_id, sa.func.count())
            .where(t.episodes.c.status == "open")
            .group_by(t.episodes.c.trigger_id)
        )
        with self.engine.connect() as conn:
            return {str(tr): int(n) for tr, n in conn.execute(q)}

    def last_resolved(
        self, accounts: Collection[str] | None = None
    ) -> dict[tuple[str, str], datetime]:
        """When each (account, trigger) last resolved (of every account, or of these)."""
        query = (
            sa.select(
                t.episodes.c.account_key,
                t.episodes.c.trigger_id,
                sa.func.max(t.episodes.c.resolved_at),
            )
            .where(t.episodes.c.status == "resolved")
            .group_by(t.episodes.c.account_key, t.episodes.c.trigger_id)
        )
        with self.engine.connect() as conn:
            return {
                (a, tr): _aware(at)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for a, tr, at in conn.execute(q)
                if at is not None
            }

    def save_episodes(self, episodes: Iterable[Episode]) -> None:
        """Insert opened episodes and mark resolved ones; replays change nothing."""
        rows = [
            {
                "episode_key": e.key,
                "account_key": e.account,
                "trigger_id": e.trigger_id,
                "opened_at": e.opened_at,
                "status": e.status,
                "resolved_at": e.resolved_at,
                "resolution": e.resolution,
                "evidence": _jsonable(e.evidence),
                "decision_status": e.decision.get("status"),
                "decision": _jsonable(e.decision) or None,
            }
            for e in episodes
        ]
        with self.engine.begin() as conn:
            self._upsert(conn, t.episodes, rows, ("episode_key",))

    def save_decisions(self, decisions: Mapping[str, Mapping[str, Any]]) -> None:
        """Record each episode's orchestration decision."""
        if not decisions:
            return
        stmt = (
            t.episodes.update()
            .where(t.episodes.c.episode_key == sa.bindparam("key"))
            .values(decision_status=sa.bindparam("b_status"), decision=sa.bindparam("b_decision"))
        )
        rows = [
            {"key": k, "b_status": d.get("status"), "b_decision": _jsonable(dict(d))}
            for k, d in decisions.items()
        ]
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def episodes_since(
        self, since: datetime, accounts: Collection[str] | None = None
    ) -> list[Episode]:
        """Episodes opened at or after `since`, of every account or of these.

        Episodes opened at or after `since` (for the frequency caps), of every account or of
        these.
        """
        query = sa.select(t.episodes).where(t.episodes.c.opened_at >= since)
        with self.engine.connect() as conn:
            return [
                _episode(r)
                for q in _of_accounts(query, t.episodes.c.account_key, accounts)
                for r in conn.execute(q)
            ]

    def episode_counts(self) -> dict[tuple[str, str], int]:
        """Episodes per (status, decision status)."""
        q = sa.select(t.episodes.c.status, t.episodes.c.decision_status, sa.func.count()).group_by(
            t.episodes.c.status, t.episodes.c.decision_status
        )
        with self.engine.connect() as conn:
            return {(s, d or "none"): n for s, d, n in conn.execute(q)}
