"""A real Celery worker killed with SIGKILL mid-apply, on Redis and PostgreSQL: the next sync
converges. The CRM took the first batch of tasks and the worker died before it read the answer.

Before: the ledger ops stayed `planned`, the plan `planned`, the plan's webhook events were never
sent and the run read `ok`. After: the killed apply is recorded failed, the lock its dead worker
held is taken over, and the next run leaves the ledger equal to the CRM, with 0 duplicate tasks
and every event delivered once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from signalplay import jobs
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.settings import load_project
from tests.adversarial.conftest import PG
from tests.conftest import TOKEN, WEBHOOK_SECRET, make_project
from tests.tasks.test_celery_worker import ROOT, _forget_worker

pytestmark = [pytest.mark.service, pytest.mark.slow]
AS_OF = "2026-11-18T15:00:00+00:00"
QUEUE = f"signalplay-kill-{uuid.uuid4().hex[:6]}"  # its own: a redelivery reaches no other test
# Its own database too: dropping the unacknowledged set touches no other test's worker (the
# suite runs its files on two processes at once).
BROKER = "redis://127.0.0.1:6379/14"


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ["celery", "-A", "celery_app", "worker", "--pool", "solo", "-n", "doomed@%h"]
    return subprocess.Popen(
        [sys.executable, "-m", *command, "-Q", QUEUE, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _forget_unacked() -> None:
    """Drop what the killed worker left unacknowledged on the test broker."""
    import redis

    client = redis.Redis.from_url(BROKER)
    client.delete("unacked", "unacked_index", QUEUE)
    client.close()


class StallAfterWrite:
    """Process the first task upsert, then hold its answer until the worker is gone."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.written = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.endswith("/crm/v3/objects/tasks/batch/upsert") and not self.written.is_set():
            body = list(self.app(environ, start_response))  # the CRM has the tasks now
            self.written.set()
            self.release.wait(60)
            return body
        return self.app(environ, start_response)


def _kill_mid_apply(root: Path, stall: StallAfterWrite) -> float:
    """A scheduled sync on a real worker, SIGKILLed while the CRM holds its first write."""
    worker = _worker(dict(os.environ))
    try:
        _forget_worker()
        from signalplay import worker as celery_app

        celery_app.app.control.purge()
        celery_app.sync.apply_async(args=[str(root)], queue=QUEUE).get(timeout=120)
        assert stall.written.wait(120), "the apply never reached the CRM"
        os.kill(worker.pid, signal.SIGKILL)  # mid-apply: the CRM wrote, no answer was read
        worker.wait(timeout=30)
        return time.monotonic()
    finally:
        stall.release.set()
        if worker.poll() is None:
            worker.kill()
        _forget_unacked()
        _forget_worker()


def _applied_task_keys(ctx: jobs.Context) -> set[str]:
    ledger = sa.table("ledger", sa.column("target"), sa.column("action"), sa.column("status"))
    q = sa.select(ledger.c.target).where(
        (ledger.c.action == "upsert_task") & (ledger.c.status == "applied")
    )
    with ctx.store.engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(q)}


def test_a_worker_killed_mid_apply_converges_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"sp_kill_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    store_url = f"{PG}?options=-csearch_path%3D{schema}"
    sandbox = HubSpotSandbox(token=TOKEN)
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    stall = StallAfterWrite(sandbox)
    for name, value in {
        "SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN,
        "SIGNALPLAY_WEBHOOK__SECRET": WEBHOOK_SECRET,
        "SIGNALPLAY_AS_OF": AS_OF,
        "SIGNALPLAY_BROKER": BROKER,
        "SIGNALPLAY_SHARD_SIZE": "40",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        with serve(stall) as crm, serve(receiver) as hooks:
            root = make_project(
                tmp_path,
                sandbox,
                crm.url,
                accounts=40,
                store=store_url,
                webhook_url=f"{hooks.url}/events",
            )
            killed_at = _kill_mid_apply(root, stall)
            project = load_project(root)
            block = project.settings.crm.model_copy(update={"access_token": TOKEN})
            with jobs.open_context(
                project,
                crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",)),
            ) as ctx:
                left = ctx.store.ledger_counts()
                events_before = list(receiver.events)
                written = len(sandbox.state.objects["tasks"])
                result = jobs.run(ctx)  # the next scheduled run
                converged = time.monotonic() - killed_at
                ledger = ctx.store.ledger_counts()
                runs = {r["kind"]: r["status"] for r in ctx.store.all_runs()}
                applied_keys = _applied_task_keys(ctx)
                assert ctx.store.lock_holder() is None
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    print(f"converged {converged:.1f} s after the SIGKILL")  # noqa: T201 - the figure
    assert left.get("planned", 0) > 0  # the case happened: ops were left behind
    assert events_before == []  # and its events had not been sent
    assert written > 0  # while the CRM held the first batch
    assert result.applied.failed == 0
    assert set(ledger) == {"applied"}  # nothing planned, failed or lost
    crm_keys = {
        str(t["properties"].get("signalplay_episode_key"))
        for t in sandbox.state.objects["tasks"].values()
    }
    assert crm_keys == applied_keys  # the ledger equals the CRM
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0
    assert receiver.duplicates == 0
    assert len({e["id"] for e in receiver.events}) == len(receiver.events) > 0
    assert runs["apply"] == "failed"  # the killed apply says so
    assert converged < 300
