"""One writing run at a time per project: the run lock, and schema setup under concurrent starts.

Before: three `signalplay run` at once each sent every webhook event (PostgreSQL), and on a fresh
SQLite store they raced in the schema setup (`table runs already exists`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signalplay.errors import LockedError
from signalplay.sandbox.server import serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.store import Store
from tests.conftest import TOKEN, WEBHOOK_SECRET, make_project

AS_OF = "2026-11-18T12:00:00+00:00"


def test_a_second_run_waits_then_names_the_holder(store_url: str) -> None:
    first, second = Store(store_url), Store(store_url)
    first.migrate()
    try:
        assert first.try_lock("run-a", lease_seconds=60) is None
        assert first.try_lock("run-a", lease_seconds=60) is None  # the holder renews
        held = second.try_lock("run-b", lease_seconds=60)
        assert held is not None
        assert (held.run_id, held.host, held.pid) == ("run-a", socket.gethostname(), os.getpid())
        with pytest.raises(LockedError) as caught:
            second.lock("run-b", wait_seconds=0.3, lease_seconds=60, poll=0.05)
        message = str(caught.value)
        assert "run run-a on " in message
        assert "since " in message
        assert "lock.wait_seconds" in message
        assert second.unlock("run-b") is False  # only the holder gives it back
        assert first.unlock("run-a") is True
        assert second.try_lock("run-b", lease_seconds=60) is None
    finally:
        first.close()
        second.close()


def test_a_dead_holder_or_a_lapsed_lease_is_taken_over(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    try:
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            check=True,
            capture_output=True,
            text=True,
        )
        dead_pid = int(gone.stdout)
        from signalplay.store import schema as t

        with store.engine.begin() as conn:
            now = datetime.now(UTC)
            conn.execute(
                t.run_lock.insert().values(
                    name="run",
                    run_id="killed",
                    host=socket.gethostname(),
                    pid=dead_pid,
                    since=now,
                    expires_at=now.replace(year=now.year + 1),
                )
            )
        assert store.try_lock("next", lease_seconds=60) is None  # its process is gone
        with store.engine.begin() as conn:
            conn.execute(
                t.run_lock.update().values(
                    host="another-host", pid=1, expires_at=datetime(2000, 1, 1, tzinfo=UTC)
                )
            )
        assert store.try_lock("after", lease_seconds=60) is None  # another host's, but lapsed
        assert store.lock_holder() is not None
        assert store.lock_holder().run_id == "after"  # type: ignore[union-attr]
    finally:
        store.close()


def test_concurrent_first_starts_share_one_migration(store_url: str) -> None:
    code = (
        "import sys; from signalplay.store import Store; s = Store(sys.argv[1]); s.migrate(); "
        "print(s.has_table('run_lock'))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-800:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["True"] * 4


def test_three_runs_at_once_send_each_event_and_task_once(tmp_path: Path, store_url: str) -> None:
    from signalplay.sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(token=TOKEN)
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    with serve(sandbox) as crm, serve(receiver) as hooks:
        root = make_project(
            tmp_path / "p",
            sandbox,
            crm.url,
            accounts=20,
            store=store_url,
            webhook_url=f"{hooks.url}/events",
        )
        env = {
            **os.environ,
            "SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN,
            "SIGNALPLAY_WEBHOOK__SECRET": WEBHOOK_SECRET,
            "SIGNALPLAY_AS_OF": AS_OF,
            "SIGNALPLAY_LOCK__WAIT_SECONDS": "240",
        }
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "signalplay", "run", "-p", str(root), "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0, 0], [err[-1500:] for _, err in outputs]
    assert receiver.events, "the runs sent no event: the case proves nothing"
    assert receiver.duplicates == 0  # no event id delivered twice
    assert len({e["id"] for e in receiver.events}) == len(receiver.events)
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0
    store = Store(store_url)
    try:
        finished = [r for r in store.all_runs() if r["kind"] == "run"]
        assert sorted(r["status"] for r in finished) == ["ok"] * 3
        assert store.lock_holder() is None  # each gave the lock back
    finally:
        store.close()
