"""USE CASES · one writing run at a time, and time that only moves forward.

`held_lock` takes the project's run lock (waiting `lock.wait_seconds`, then `LockedError` naming
the holder) and renews its lease from a thread while the run works; `moving_forward` refuses a run
whose clock reads earlier than the last op applied, so episodes never resolve before they opened.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from signalplay.errors import ConfigError, Issue
from signalplay.jobs.context import Context


@contextmanager
def held_lock(ctx: Context, holder: str, *, release: bool = True) -> Iterator[None]:
    """Hold the run lock as `holder` for the block, renewing its lease; then give it back.

    Without `release` the lock outlives the block (a sharded sync: the task that merges or
    applies its plan gives it back); the lease keeps running until then.
    """
    settings = ctx.project.settings.lock
    ctx.store.lock(holder, wait_seconds=settings.wait_seconds, lease_seconds=settings.lease_seconds)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(settings.lease_seconds / 3):
            ctx.store.try_lock(holder, lease_seconds=settings.lease_seconds)

    renewer = threading.Thread(target=renew, name=f"lease {holder}", daemon=True)
    renewer.start()
    done = False
    try:
        yield
        done = True
    finally:
        stop.set()
        renewer.join(timeout=5)
        if release or not done:  # a failed step hands nothing on
            ctx.store.unlock(holder)


def moving_forward(ctx: Context) -> None:
    """Refuse to write as of a moment before the last op applied (a clock set back)."""
    last = ctx.store.last_applied_at()
    now = ctx.clock()
    if last is not None and now < last:
        raise ConfigError(
            [
                Issue(
                    "settings",
                    None,
                    None,
                    "as_of",
                    f"this run's time {now.isoformat()} is before the last applied run's "
                    f"{last.isoformat()}: runs that write only move forward",
                    "unset SIGNALPLAY_AS_OF, or use `plan`, `run --dry-run` or `backtest`",
                )
            ]
        )
