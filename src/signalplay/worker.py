"""EDGE · the Celery app: `celery -A signalplay.worker worker -B` (`-A celery_app` in a checkout).

Tasks are thin wrappers over `signalplay.jobs`. The worker's settings are one pydantic model,
read from the environment once, when Celery first loads its configuration (never at import):
the broker from SIGNALPLAY_BROKER (e.g. redis://127.0.0.1:6379/0), the projects beat
schedules from SIGNALPLAY_PROJECTS (os.pathsep-separated). Beat runs `sync` for each project
every `schedule_minutes` of that project's own `signalplay.yaml`, the setting the watchdog
checks the runs against. Without a broker the CLI runs the same jobs in-process.

`sync` pulls and maps, then fans out one `evaluate_shard` per chunk of accounts (settings
`shard_size`); a chord merges the parts into one plan and `apply_plan` applies it. No task waits
on another, and every task is idempotent (episode, part and ledger keys), so a redelivery after
a lost worker (`acks_late`) changes nothing.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from celery import Celery, chord
from celery.signals import after_setup_logger, after_setup_task_logger
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalplay import jobs
from signalplay.errors import RetriableError
from signalplay.ops import logs
from signalplay.settings import load_project

log = logging.getLogger("signalplay.watchdog")

TASK_TIME_LIMIT = 1800  # seconds an evaluate_shard or apply_plan may take before it is killed


class WorkerSettings(BaseSettings):
    """The worker's own settings (a project's settings live in its `signalplay.yaml`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALPLAY_", extra="ignore", frozen=True)

    broker: str = "memory://"
    projects: str = ""  # project folders beat schedules, os.pathsep-separated
    # Seconds before Redis hands an unacknowledged task (its worker killed) to another worker: a
    # few minutes above the longest task may take, so a live task is never run twice.
    visibility_timeout: int = TASK_TIME_LIMIT + 300

    def project_dirs(self) -> list[str]:
        """The project folders beat schedules."""
        return [p for p in self.projects.split(os.pathsep) if p]

    def celery_conf(self) -> dict[str, Any]:
        """Celery's configuration for these settings."""
        broker = self.broker or "memory://"
        return {
            "broker_url": broker,
            "result_backend": broker if broker.startswith("redis") else "cache+memory://",
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "timezone": "UTC",
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_ignore_result": False,
            "task_annotations": {
                "signalplay.evaluate_shard": {"time_limit": TASK_TIME_LIMIT},
                "signalplay.apply_plan": {"time_limit": TASK_TIME_LIMIT},
            },
            "broker_transport_options": {"visibility_timeout": self.visibility_timeout},
            "worker_hijack_root_logger": False,
            "task_always_eager": broker == "memory://",
        }


@functools.cache
def worker_settings() -> WorkerSettings:
    """The worker's settings, read from the environment once."""
    return WorkerSettings()


@functools.cache
def _celery_conf() -> dict[str, Any]:
    return worker_settings().celery_conf()


class _LazyConf(Mapping[str, Any]):
    """Celery's configuration, built once from `worker_settings()` when Celery first reads it."""

    def __getitem__(self, key: str) -> Any:
        return _celery_conf()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_celery_conf())

    def __len__(self) -> int:
        return len(_celery_conf())


app = Celery("signalplay")
app.config_from_object(_LazyConf())


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
    with _context(project_dir) as ctx:
        try:
            started = jobs.start_sharded(ctx)
        except RetriableError as exc:
            raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc
    queue = self.request.delivery_info.get("routing_key") if self.request.delivery_info else None
    options = {"queue": queue} if queue else {}
    header = [
        evaluate_shard.si(project_dir, started.run_id, i, accounts, record=apply).set(**options)
        for i, accounts in enumerate(started.shards)
    ]
    callback = merge_plan.si(project_dir, started.run_id, release=not apply).set(**options)
    if apply:
        callback = callback | apply_plan.s(project_dir).set(**options)
    chord(header)(callback)
    return started.to_json()


@app.task(name="signalplay.evaluate_shard")
def evaluate_shard(
    project_dir: str, run_id: str, part: int, accounts: list[str], *, record: bool = True
) -> dict[str, Any]:
    """Evaluate and plan one chunk of accounts.

    The ops are kept as a part of the run (and enter the ledger when the run applies them).
    """
    with _context(project_dir) as ctx:
        return jobs.evaluate_shard(ctx, run_id, part, accounts, record=record).to_json()


@app.task(name="signalplay.merge_plan")
def merge_plan(project_dir: str, run_id: str, *, release: bool = True) -> str:
    """Merge the parts of a run into one saved plan (closing the run); returns the plan's id.

    With `release` off, the run lock stays held for the task that applies the plan.
    """
    with _context(project_dir) as ctx:
        return jobs.merge_plan(ctx, run_id, release=release).plan_id


@app.task(name="signalplay.apply_plan", bind=True)
def apply_plan(self: Any, plan_id: str, project_dir: str) -> dict[str, Any]:
    """Apply a saved plan (and retry earlier failures); idempotent through the ledger."""
    with _context(project_dir) as ctx:
        try:
            return jobs.apply_saved(ctx, plan_id).to_json()
        except RetriableError as exc:
            raise self.retry(exc=exc, countdown=exc.retry_after or 30) from exc


@app.task(name="signalplay.watchdog")
def watchdog(project_dir: str) -> dict[str, Any] | None:
    """Alert when the scheduled sync failed, is stuck, or stayed silent past twice its period.

    An ERROR log line and, when the project has a webhook, a signed `signalplay.alert` event for
    the team's messaging tool. Returns the alert (None: all well).
    """
    with _context(project_dir) as ctx:
        alert = jobs.watch(ctx, project_dir)
        return alert.as_dict() if alert else None


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: Any) -> None:
    """Beat: each project's sync and watchdog, on the project's own schedule.

    Beat: each project's sync every `schedule_minutes` of its own settings, and its watchdog at
    a quarter of that period (a silent schedule is caught within the window).
    """
    for project in worker_settings().project_dirs():
        minutes = load_project(Path(project)).settings.schedule_minutes
        sender.add_periodic_task(minutes * 60, sync.s(project), name=f"sync {project}")
        sender.add_periodic_task(
            max(minutes * 15, 60), watchdog.s(project), name=f"watchdog {project}"
        )
