"""The run lock: one writing run at a time per project store.

A lease row in `run_lock` names its holder (run id, host, pid, since) and when it lapses. Taking it
is one INSERT that the primary key makes atomic on SQLite and PostgreSQL alike; a lapsed lease, or
one held by a process of this host that is gone, is taken over. A lease (not a connection-bound
advisory lock) because a scheduled sync spans processes: the Celery task that pulls takes it, the
task that merges or applies the plan gives it back.

Imports: stdlib, sqlalchemy and the kernel.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from signalplay.errors import LockedError
from signalplay.store import schema as t
from signalplay.store.base import StoreBase, _aware

RUN_LOCK = "run"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, since when, and until when its lease runs."""

    run_id: str
    host: str
    pid: int
    since: datetime
    expires_at: datetime

    def __str__(self) -> str:
        return (
            f"run {self.run_id} on {self.host} (pid {self.pid}) since "
            f"{self.since:%Y-%m-%d %H:%M:%S} UTC"
        )


def _stale(held: Holder, now: datetime) -> bool:
    """A lapsed lease, or a holder on this host whose process is gone."""
    if held.expires_at <= now:
        return True
    return held.host == socket.gethostname() and not _alive(held.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class LockStore(StoreBase):
    """The run lock, taken and given back by run id."""

    def lock_holder(self, name: str = RUN_LOCK) -> Holder | None:
        """Who holds the lock now (None: free)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.run_lock).where(t.run_lock.c.name == name)).first()
        if row is None:
            return None
        return Holder(row.run_id, row.host, row.pid, _aware(row.since), _aware(row.expires_at))

    def try_lock(self, run_id: str, *, lease_seconds: float, name: str = RUN_LOCK) -> Holder | None:
        """Take the lock for `run_id`: None when it did, else who holds it.

        Taking it again for the same run renews the lease. Leases run in wall-clock time, not the
        project's clock (which `as_of` may fix).
        """
        now = datetime.now(UTC)
        until = now + timedelta(seconds=lease_seconds)
        held = self.lock_holder(name)
        if held is not None and held.run_id == run_id:
            with self.engine.begin() as conn:
                renewed = conn.execute(
                    t.run_lock.update()
                    .where((t.run_lock.c.name == name) & (t.run_lock.c.run_id == run_id))
                    .values(expires_at=until)
                )
            return (
                None
                if renewed.rowcount
                else self.try_lock(run_id, lease_seconds=lease_seconds, name=name)
            )
        if held is not None:
            if not _stale(held, now):
                return held
            with self.engine.begin() as conn:  # only the lease we saw lapse goes
                conn.execute(
                    t.run_lock.delete().where(
                        (t.run_lock.c.name == name)
                        & (t.run_lock.c.run_id == held.run_id)
                        & (t.run_lock.c.since == held.since)
                    )
                )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    t.run_lock.insert().values(
                        name=name,
                        run_id=run_id,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        since=now,
                        expires_at=until,
                    )
                )
        except IntegrityError:  # another run took it first
            return self.lock_holder(name) or self.try_lock(
                run_id, lease_seconds=lease_seconds, name=name
            )
        return None

    def lock(
        self,
        run_id: str,
        *,
        wait_seconds: float,
        lease_seconds: float,
        name: str = RUN_LOCK,
        poll: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Take the lock, waiting up to `wait_seconds`; `LockedError` names the holder."""
        deadline = time.monotonic() + wait_seconds
        while True:
            holder = self.try_lock(run_id, lease_seconds=lease_seconds, name=name)
            if holder is None:
                return
            if time.monotonic() >= deadline:
                raise LockedError(str(holder), waited=wait_seconds)
            sleep(min(poll, max(0.0, deadline - time.monotonic())) or poll)

    def unlock(self, run_id: str, name: str = RUN_LOCK) -> bool:
        """Give the lock back if `run_id` holds it; whether it did."""
        with self.engine.begin() as conn:
            gone = conn.execute(
                t.run_lock.delete().where(
                    (t.run_lock.c.name == name) & (t.run_lock.c.run_id == run_id)
                )
            )
        return bool(gone.rowcount)
