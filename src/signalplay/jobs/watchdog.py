"""USE CASE · the watchdog.

Alert when the scheduled sync failed, is stuck, or stayed silent past twice its period, as an ERROR
log line and a signed `signalplay.alert` event.
"""

from __future__ import annotations

import logging
from datetime import UTC

from signalplay.jobs.context import Context
from signalplay.jobs.recording import fail_overdue
from signalplay.models import WriteAction, WriteOp
from signalplay.ops.watch import Alert, check_runs

log = logging.getLogger("signalplay.watchdog")
RUNS_CHECKED = 20  # the latest runs the watchdog reads


def watch(ctx: Context, project: str) -> Alert | None:
    """Check the latest runs against the project's schedule.

    On an alert, log it and, when the project has a webhook, send it to the team's messaging
    tool. Returns the alert.
    """
    now = ctx.clock()
    fail_overdue(ctx)
    alert = check_runs(
        ctx.store.recent_runs(RUNS_CHECKED),
        now,
        every_minutes=ctx.project.settings.schedule_minutes,
    )
    if alert is None:
        return None
    log.error("%s: %s", project, alert.message)
    if ctx.events is not None:
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M")
        key = f"alert:{alert.kind}:{alert.run_id or '-'}:{stamp}"
        event = WriteOp(
            op_key=key,
            action=WriteAction.SEND_WEBHOOK,
            object_type="events",
            target=key,
            values={"event": "signalplay.alert", "project": project, **alert.as_dict()},
            reason=alert.message,
        )
        ctx.events.send([event])
    return alert
