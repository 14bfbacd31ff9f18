"""The store: every database read and write of signalplay, on SQLite or PostgreSQL.

One facade, `Store`, over a module per thing it stores: `runs`, `lock` (one writing run at a
time), `records` (raw records, cursors, quarantine, identity issues), `profiles` (facts and daily
snapshots), `episodes` (and decisions), `ledger` (every planned op and its outcome) and `plans`;
`base` holds the engine, migrations and the upsert they share. Imports: sqlalchemy, alembic and
the kernel (models, types): never a stage.
"""

from __future__ import annotations

from signalplay.store.episodes import EpisodesStore
from signalplay.store.ledger import LedgerStore
from signalplay.store.lock import Holder, LockStore
from signalplay.store.plans import PlansStore
from signalplay.store.profiles import ProfilesStore
from signalplay.store.records import RecordsStore
from signalplay.store.runs import RunsStore

__all__ = ["Holder", "Store"]


class Store(
    RunsStore, LockStore, RecordsStore, ProfilesStore, EpisodesStore, LedgerStore, PlansStore
):
    """One database: migrations, runs and their lock, records, profiles, episodes, ledger."""
