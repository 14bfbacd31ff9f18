"""Two real Celery workers on the machine's Redis evaluate a project in shards and merge exactly
the plan that the in-process run computes; applying it writes what the in-process run writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import signalplay
from signalplay import jobs
from signalplay.models import WriteOp
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.settings import load_project
from signalplay.store import Store
from tests.conftest import TOKEN, make_project

pytestmark = [pytest.mark.service, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/13"
QUEUE = "signalplay-test"
AS_OF = "2026-11-18T15:00:00+00:00"


def _plan(root: Path, plan_id: str) -> list[str] | None:
    store = Store(load_project(root).store_url())
    try:
        ops = store.load_plan(plan_id)
    finally:
        store.close()
    if ops is None:
        return None
    return sorted(json.dumps(o.model_dump(mode="json"), sort_keys=True) for o in ops)


def _in_process_plan(root: Path) -> list[WriteOp]:
    ctx = jobs.open_context(load_project(root))
    try:
        run_id = ctx.store.start_run("test")
        jobs.pull(ctx, run_id)
        profiles = jobs.build_profiles(ctx, run_id)
        jobs.evaluate(ctx, profiles)
        return list(jobs.plan(ctx, profiles, run_id).ops)
    finally:
        ctx.close()


def _forget_worker() -> None:
    """The next import builds the app again, reading the worker settings of this test's env."""
    for name in ("celery_app", "signalplay.worker"):
        sys.modules.pop(name, None)
    vars(signalplay).pop("worker", None)  # `from signalplay import worker` reads the attribute


def _worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "-Q",
            QUEUE,
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("SP_WORKER_LOG", os.devnull), "ab"),
    )


def test_two_workers_on_redis_merge_exactly_the_in_process_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = HubSpotSandbox(token=TOKEN), HubSpotSandbox(token=TOKEN)
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALPLAY_AS_OF", AS_OF)
    monkeypatch.setenv("SIGNALPLAY_WEBHOOK__SECRET", "whsec-test")
    receiver = WebhookReceiver("whsec-test")
    with serve(a) as sa, serve(b) as sb, serve(receiver) as hooks:
        url = f"{hooks.url}/events"
        local = make_project(tmp_path / "local", a, sa.url, accounts=80, webhook_url=url)
        remote = make_project(tmp_path / "remote", b, sb.url, accounts=80, webhook_url=url)
        local_ops = _in_process_plan(local)
        expected = sorted(json.dumps(o.model_dump(mode="json"), sort_keys=True) for o in local_ops)

        env = {
            **os.environ,
            "SIGNALPLAY_BROKER": BROKER,
            "SIGNALPLAY_SHARD_SIZE": "20",
        }
        workers = [_worker(env, "w1"), _worker(env, "w2")]
        try:
            monkeypatch.setenv("SIGNALPLAY_BROKER", BROKER)
            monkeypatch.setenv("SIGNALPLAY_SHARD_SIZE", "20")
            _forget_worker()
            from signalplay import worker as celery_app

            celery_app.app.control.purge()
            started = celery_app.sync.apply_async(
                args=[str(remote)], kwargs={"apply": False}, queue=QUEUE
            ).get(timeout=120)
            plan_id = f"plan-{started['run_id']}"
            deadline = time.monotonic() + 120
            while (got := _plan(remote, plan_id)) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            replies = celery_app.app.control.ping(timeout=2.0) or []
            applied = celery_app.apply_plan.apply_async(
                args=[plan_id, str(remote)], queue=QUEUE
            ).get(timeout=120)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            _forget_worker()

    assert started["parts"] == 4
    assert got is not None, "the chord never merged the plan"
    assert got == expected
    assert len(local_ops) > 0
    assert len({name for reply in replies for name in reply}) == 2
    assert applied["failed"] == 0
    assert applied["events_sent"] == len(receiver.events) > 0
    assert applied["tasks_created"] == sum(1 for o in local_ops if o.action.value == "upsert_task")
    assert b.duplicate_tasks("signalplay_episode_key") == 0


def test_without_a_broker_sync_runs_eagerly_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = HubSpotSandbox(token=TOKEN)
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALPLAY_SHARD_SIZE", "25")
    monkeypatch.delenv("SIGNALPLAY_BROKER", raising=False)
    monkeypatch.setenv("SIGNALPLAY_WEBHOOK__SECRET", "whsec-test")
    receiver = WebhookReceiver("whsec-test")
    with serve(sandbox) as server, serve(receiver) as hooks:
        url = f"{hooks.url}/events"
        root = make_project(tmp_path, sandbox, server.url, accounts=60, webhook_url=url)
        _forget_worker()
        from signalplay import worker

        try:
            started = worker.sync.delay(str(root)).get()
        finally:
            _forget_worker()
    assert started["parts"] == 3
    assert len(sandbox.state.objects["tasks"]) > 0
    assert receiver.events
    assert sandbox.duplicate_tasks("signalplay_episode_key") == 0
