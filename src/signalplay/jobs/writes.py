"""USE CASE · apply.

Write ops to the CRM and events to the webhook, each outcome recorded in the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from signalplay.errors import ConfigError, SignalplayError
from signalplay.jobs.context import Context
from signalplay.jobs.recording import recorded_run
from signalplay.jobs.results import Applied, ApplyResult
from signalplay.models import WriteAction, WriteOp, WriteResult

log = logging.getLogger(__name__)


def apply(ctx: Context, ops: Sequence[WriteOp], *, retry_pending: bool = True) -> Applied:
    """Write ops to the CRM (events to the webhook) and record each outcome in the ledger.

    Failed ops stay for retry.
    """
    settled = ctx.store.settled_keys()
    todo = {o.op_key: o for o in ops if o.op_key not in settled}
    if retry_pending:
        for op in ctx.store.pending_ops():
            todo.setdefault(op.op_key, op)
    ops_list = list(todo.values())
    if not ops_list:
        return Applied()
    # A previewed plan's ops enter the ledger now (what a run recorded already is kept as is):
    # from here on, each is applied or recorded with its error.
    ctx.store.record_planned("apply", ctx.crm_name, ops_list)
    declared = set(ctx.definitions.writeback.account_fields)
    refused = {
        o.op_key: sorted(set(o.values) - declared)
        for o in ops_list
        if o.action is WriteAction.UPDATE_FIELDS and not set(o.values) <= declared
    }
    # Only the account fields writeback.yaml declares are ever written (a saved plan can be
    # edited by hand): any other is refused and recorded with the reason.
    results: list[WriteResult] = [
        WriteResult(
            op_key=key,
            ok=False,
            error=f"not declared in writeback.yaml account_fields: {', '.join(names)}",
        )
        for key, names in refused.items()
    ]
    ops_list = [o for o in ops_list if o.op_key not in refused]
    events = [o for o in ops_list if o.action is WriteAction.SEND_WEBHOOK]
    writes = [o for o in ops_list if o.action is not WriteAction.SEND_WEBHOOK]
    retries = ctx.tally.total("retries")
    with ctx.tally.counting():
        if writes:
            ctx.crm.ensure_schema(list(ctx.definitions.writeback.account_fields))
            results.extend(ctx.crm.write(writes))
        if events:
            results.extend(_send_events(ctx, events))
    ctx.store.record_results(results, max_attempts=ctx.project.settings.max_attempts)
    by_key = dict(todo)
    ok = [(r, by_key[r.op_key]) for r in results if r.ok]
    for r in results:
        if not r.ok:
            log.warning("op %s failed: %s", r.op_key[:12], r.error)
    return Applied(
        tasks_created=sum(1 for r, o in ok if o.action is WriteAction.UPSERT_TASK and r.created),
        tasks_updated=sum(
            1 for r, o in ok if o.action is WriteAction.UPSERT_TASK and not r.created
        ),
        fields_updated=sum(len(o.values) for _, o in ok if o.action is WriteAction.UPDATE_FIELDS),
        events_sent=sum(1 for _, o in ok if o.action is WriteAction.SEND_WEBHOOK),
        failed=sum(1 for r in results if not r.ok),
        write_retries=ctx.tally.total("retries") - retries,
    )


def _send_events(ctx: Context, events: Sequence[WriteOp]) -> Sequence[WriteResult]:
    """Deliver events.

    Without a usable webhook each is recorded failed with the reason, so that it is retried once
    the webhook is configured.
    """
    try:
        sink = ctx.events
    except ConfigError as exc:
        reason = f"webhook not usable: {'; '.join(str(i) for i in exc.issues)}"
        sink = None
    else:
        reason = "no webhook is configured (set `webhook:` in signalplay.yaml)"
    if sink is None:
        return [WriteResult(op_key=o.op_key, ok=False, error=reason) for o in events]
    return sink.send(events)


def apply_saved(
    ctx: Context, plan_id: str | None = None, *, dry_run: bool = False, retry_pending: bool = True
) -> ApplyResult:
    """Apply exactly a saved plan (the newest when `plan_id` is None), recorded as a run.

    With `retry_pending`, earlier failures are retried with it. The run (and the plan) is
    `partial` when an op failed. It holds the run lock as the run that made the plan, so the
    task that applies a scheduled sync's plan carries on that sync's lock (and gives it back).
    A dry run only counts its ops.
    """
    pid = plan_id or ctx.store.latest_plan_id()
    ops = ctx.store.load_plan(pid) if pid else None
    if pid is None or ops is None:
        raise SignalplayError(f"no plan {pid!r}: run `signalplay plan` first")
    if dry_run:
        return ApplyResult(plan_id=pid, dry_run=True, ops=len(ops))
    with recorded_run(ctx, "apply", lock_as=ctx.store.plan_run_id(pid)) as record:
        applied = apply(ctx, ops, retry_pending=retry_pending)
        ctx.store.mark_plan(pid, "partial" if applied.failed else "applied")
        result = ApplyResult(plan_id=pid, applied=applied, ops=len(ops))
        record.summary = result.to_json()
        record.status = "partial" if applied.failed else "ok"
    return result
