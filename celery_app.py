"""The Celery app: `celery -A celery_app worker -B`. Tasks are thin wrappers over `signalplay.jobs`.

The broker comes from SIGNALPLAY_BROKER (e.g. redis://127.0.0.1:6379/0); beat runs `sync` for
every project listed in SIGNALPLAY_PROJECTS (os.pathsep-separated) every
SIGNALPLAY_SCHEDULE_MINUTES. Without a broker the CLI runs the same jobs in-process.

`sync` pulls and maps, then fans out one `evaluate_shard` per chunk of accounts (settings
`shard_size`); a chord merges the parts into one plan and `apply_plan` applies it. No task waits
on another, and every task is idempotent (episode, part and ledger keys), so a redelivery after
a lost worker (`acks_late`) changes nothing.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC
from pathlib import Path
from typing import Any

from celery import Celery, chord
from celery.signals import after_setup_logger, after_setup_task_logger

from signalplay import jobs, logs
from signalplay.errors import ConfigError, Issue, RetriableError
from signalplay.models import WriteAction, WriteOp
from signalplay.settings import load_project
from signalplay.watch import check_runs

log = logging.getLogger("signalplay.watchdog")

BROKER = os.environ.get("SIGNALPLAY_BROKER") or "memory://"

app = Celery("signalplay")
app.conf.update(
    broker_url=BROKER,
    result_backend=BROKER if BROKER.startswith("redis") else "cache+memory://",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=False,
    task_annotations={
        "signalplay.evaluate_shard": {"time_limit": 1800},
        "signalplay.apply_plan": {"time_limit": 1800},
    },
    broker_transport_options={"visibility_timeout": 7200},
    worker_hijack_root_logger=False,
    task_always_eager=BROKER == "memory://",
)


def _context(project_dir: str) -> jobs.Context:
    return jobs.open_context(load_project(Path(project_dir)))


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redacting(logger: logging.Logger, **_: Any) -> None:
    """The worker's log handlers blank every secret value and tag records with the run id."""
    logs.remember(logs.secret_values())
    for handler in logger.handlers:
        handler.addFilter(logs.RedactingFilter())


@app.task(name="signalplay.sync", bind=True)
def sync(self: Any, project_dir: str, *, apply: bool = True) -> dict[str, Any]:
    """Pull and map one project, then evaluate it in shards and merge (and apply) the plan."""
    ctx = _context(project_dir)
    run_id = ctx.store.start_run("sync")
    try:
        with logs.run_context(run_id):
            streams = jobs.pull(ctx, run_id)
            mapped = jobs.map_profiles(ctx, run_id)
            parts = jobs.shards(list(mapped.facts), ctx.project.settings.shard_size)
    except RetriableError as exc:
        ctx.store.finish_run(run_id, status="failed", summary={"error": logs.redact(str(exc))})
        raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc
    except Exception as exc:
        ctx.store.finish_run(run_id, status="failed", summary={"error": logs.redact(str(exc))})
        raise
    finally:
        ctx.close()
    queue = self.request.delivery_info.get("routing_key") if self.request.delivery_info else None
    options = {"queue": queue} if queue else {}
    header = [
        evaluate_shard.si(project_dir, run_id, i, accounts, record=apply).set(**options)
        for i, accounts in enumerate(parts)
    ]
    callback = merge_plan.si(project_dir, run_id).set(**options)
    if apply:
        callback = callback | apply_plan.s(project_dir).set(**options)
    chord(header)(callback)
    return {"run_id": run_id, "parts": len(parts), "streams": streams}


@app.task(name="signalplay.evaluate_shard", bind=True)
def evaluate_shard(
    self: Any, project_dir: str, run_id: str, part: int, accounts: list[str], *, record: bool = True
) -> dict[str, Any]:
    """Evaluate and plan one chunk of accounts; the ops are kept as a part of the run (and
    enter the ledger when the run applies them)."""
    ctx = _context(project_dir)
    try:
        return jobs.evaluate_shard(ctx, run_id, part, accounts, record=record)
    finally:
        ctx.close()


@app.task(name="signalplay.merge_plan")
def merge_plan(project_dir: str, run_id: str) -> str:
    """Merge the parts of a run into one saved plan; returns its id."""
    ctx = _context(project_dir)
    try:
        plan_id, summary = jobs.merge_plan(ctx, run_id)
        ctx.store.finish_run(run_id, status="ok", summary=summary)
        return plan_id
    finally:
        ctx.close()


@app.task(name="signalplay.apply_plan", bind=True)
def apply_plan(self: Any, plan_id: str, project_dir: str) -> dict[str, Any]:
    """Apply a saved plan (and retry earlier failures); idempotent through the ledger."""
    ctx = _context(project_dir)
    try:
        ops = ctx.store.load_plan(plan_id)
        if ops is None:
            raise ConfigError([Issue(project_dir, None, None, "plan", f"no plan {plan_id!r}")])
        result = jobs.apply(ctx, ops)
        ctx.store.mark_plan(plan_id, "applied")
        return {"plan_id": plan_id, **result}
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc
    finally:
        ctx.close()


@app.task(name="signalplay.watchdog")
def watchdog(project_dir: str) -> dict[str, Any] | None:
    """Alert when the scheduled sync failed, is stuck, or stayed silent past twice its period:
    an ERROR log line and, when the project has a webhook, a signed `signalplay.alert` event for
    the team's messaging tool. Returns the alert (None: all well)."""
    ctx = _context(project_dir)
    try:
        now = ctx.clock()
        alert = check_runs(
            ctx.store.recent_runs(20), now, every_minutes=ctx.project.settings.schedule_minutes
        )
        if alert is None:
            return None
        log.error("%s: %s", project_dir, alert.message)
        if ctx.events is not None:
            stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M")
            key = f"alert:{alert.kind}:{alert.run_id or '-'}:{stamp}"
            values = {"event": "signalplay.alert", "project": project_dir, **alert.as_dict()}
            ctx.events.send(
                [
                    WriteOp(
                        op_key=key,
                        action=WriteAction.SEND_WEBHOOK,
                        object_type="events",
                        target=key,
                        values=values,
                        reason=alert.message,
                    )
                ]
            )
        return alert.as_dict()
    finally:
        ctx.close()


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: Any) -> None:
    minutes = float(os.environ.get("SIGNALPLAY_SCHEDULE_MINUTES", "60"))
    for project in filter(None, os.environ.get("SIGNALPLAY_PROJECTS", "").split(os.pathsep)):
        sender.add_periodic_task(minutes * 60, sync.s(project), name=f"sync {project}")
        # checked at a quarter of the period: a silent schedule is caught within the window
        sender.add_periodic_task(
            max(minutes * 15, 60), watchdog.s(project), name=f"watchdog {project}"
        )
