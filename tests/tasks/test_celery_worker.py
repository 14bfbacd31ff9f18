"""A real Celery worker on the machine's Redis computes what the in-process run computes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signalplay import jobs
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve
from signalplay.settings import load_project
from signalplay.store import Store
from tests.conftest import TOKEN, make_project

pytestmark = [pytest.mark.service, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/13"


def _episodes(root: Path) -> set[tuple[str, str]]:
    store = Store(load_project(root).store_url())
    try:
        return {(e.account, e.trigger_id) for e in store.episodes(status="open")}
    finally:
        store.close()


def test_worker_on_redis_matches_in_process_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = HubSpotSandbox(token=TOKEN), HubSpotSandbox(token=TOKEN)
    with serve(a) as sa, serve(b) as sb:
        local = make_project(tmp_path / "local", a, sa.url, accounts=80)
        remote = make_project(tmp_path / "remote", b, sb.url, accounts=80)
        monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
        ctx = jobs.open_context(load_project(local))
        try:
            in_process = jobs.run(ctx)
        finally:
            ctx.close()

        env = {**os.environ, "SIGNALPLAY_BROKER": BROKER, "SIGNALPLAY_CRM__ACCESS_TOKEN": TOKEN}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-Q",
                "signalplay-test",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            monkeypatch.setenv("SIGNALPLAY_BROKER", BROKER)
            sys.modules.pop("celery_app", None)
            import celery_app

            evaluated = celery_app.evaluate.apply_async(
                args=[str(remote)], queue="signalplay-test"
            ).get(timeout=90)
            applied = celery_app.apply.apply_async(
                args=[str(remote), evaluated["plan_id"]], queue="signalplay-test"
            ).get(timeout=90)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            sys.modules.pop("celery_app", None)

    assert evaluated["triggers_fired"] == in_process["triggers_fired"]
    assert evaluated["plan"] == in_process["plan"]
    assert applied["tasks_created"] == in_process["tasks_created"] > 0
    assert _episodes(remote) == _episodes(local)
    assert b.duplicate_tasks("signalplay_episode_key") == 0
