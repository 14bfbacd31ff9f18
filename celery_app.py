"""The Celery app: `celery -A celery_app worker -B`. Tasks are thin wrappers over `signalplay.jobs`.

The broker comes from SIGNALPLAY_BROKER (e.g. redis://127.0.0.1:6379/0); beat runs every project
listed in SIGNALPLAY_PROJECTS (os.pathsep-separated) every SIGNALPLAY_SCHEDULE_MINUTES.
Without a broker the CLI runs the same jobs in-process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery

from signalplay import jobs
from signalplay.errors import ConfigError, RetriableError
from signalplay.settings import load_project

BROKER = os.environ.get("SIGNALPLAY_BROKER") or "memory://"

app = Celery("signalplay")
app.conf.update(
    broker_url=BROKER,
    result_backend=BROKER if BROKER.startswith("redis") else None,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    # Every task is idempotent (episode and ledger keys make a redelivery a no-op).
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=False,
    task_annotations={
        "signalplay.evaluate": {"time_limit": 1800},
        "signalplay.apply": {"time_limit": 1800},
    },
    broker_transport_options={"visibility_timeout": 7200},
    worker_hijack_root_logger=False,
)


def _context(project_dir: str) -> jobs.Context:
    return jobs.open_context(load_project(Path(project_dir)))


@app.task(name="signalplay.evaluate", bind=True)
def evaluate(self: Any, project_dir: str) -> dict[str, Any]:
    """Pull, profile, evaluate and plan one project; returns the plan id and counts."""
    ctx = _context(project_dir)
    try:
        run_id = ctx.store.start_run("evaluate")
        streams = jobs.pull(ctx, run_id)
        profiles = jobs.build_profiles(ctx, run_id)
        evaluation = jobs.evaluate(ctx, profiles)
        plan_id, _ops, stats = jobs.plan(ctx, profiles, run_id)
        summary = {
            "run_id": run_id,
            "plan_id": plan_id,
            "accounts": len(profiles.values),
            "streams": streams,
            **evaluation,
            "plan": stats,
        }
        ctx.store.finish_run(run_id, status="ok", summary=summary)
        return summary
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc
    finally:
        ctx.close()


@app.task(name="signalplay.apply", bind=True)
def apply(self: Any, project_dir: str, plan_id: str) -> dict[str, Any]:
    """Apply a saved plan (and retry earlier failures); idempotent through the ledger."""
    ctx = _context(project_dir)
    try:
        ops = ctx.store.load_plan(plan_id)
        if ops is None:
            raise ConfigError([])
        result = jobs.apply(ctx, ops)
        ctx.store.mark_plan(plan_id, "applied")
        return {"plan_id": plan_id, **result}
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc
    finally:
        ctx.close()


@app.task(name="signalplay.sync")
def sync(project_dir: str) -> None:
    """Evaluate, then apply the plan it produced: a chain, so no task waits on another."""
    (evaluate.s(project_dir) | _apply_summary.s(project_dir)).apply_async()


@app.task(name="signalplay.apply_summary")
def _apply_summary(summary: dict[str, Any], project_dir: str) -> None:
    apply.delay(project_dir, summary["plan_id"])


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: Any) -> None:
    minutes = float(os.environ.get("SIGNALPLAY_SCHEDULE_MINUTES", "60"))
    for project in filter(None, os.environ.get("SIGNALPLAY_PROJECTS", "").split(os.pathsep)):
        sender.add_periodic_task(minutes * 60, sync.s(project), name=f"sync {project}")
