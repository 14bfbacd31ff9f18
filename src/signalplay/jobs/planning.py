"""USE CASE · plan.

The CRM changes the evaluation wants, diffed against the ledger and the CRM; saved, not applied.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from signalplay.evaluate.evaluator import ACCOUNT_REMOVED
from signalplay.jobs.context import Context
from signalplay.jobs.evaluation import Evaluation
from signalplay.jobs.measure import task_outcomes
from signalplay.jobs.profiles import Profiles
from signalplay.jobs.results import PlanResult
from signalplay.models import Episode, WriteOp
from signalplay.plays.actions import TASK_KINDS, ActionIntent, consolidate, intents_for
from signalplay.plays.orchestration import Decision
from signalplay.writeback.plan import Plan, action_key, closing_ops, edit_ops, plan_writes


def action_intents(
    ctx: Context,
    profiles: Mapping[str, Mapping[str, Any]],
    episodes: Sequence[Episode],
    applied: Collection[str] = frozenset(),
) -> list[ActionIntent]:
    """The rendered actions of every open, actioned episode not applied yet.

    The rendered actions of every open, actioned episode that are not applied yet (consolidated
    per account when the routing file asks for it).
    """
    defs = ctx.definitions
    known = {t.id for t in defs.triggers.triggers}
    crm = ctx.crm_name
    consolidating = defs.routing.consolidate
    intents: list[ActionIntent] = []
    for ep in episodes:
        if ep.trigger_id not in known or ep.decision.get("status") != "actioned":
            continue
        decision = Decision.from_dict(ep.decision)
        intents.extend(
            intents_for(
                ep,
                decision,
                profiles.get(ep.account, {}),
                defs,
                skip=None
                if consolidating
                else (lambda kind, key: action_key(crm, kind, key) in applied),
            )
        )
    return consolidate(intents) if consolidating else intents


def plan_ops(
    ctx: Context,
    profiles: Profiles,
    *,
    shard: Collection[str] | None = None,
    preview: Evaluation | None = None,
    extend_edits: bool = False,
) -> Plan:
    """The CRM changes wanted now for these accounts, diffed against ledger and CRM.

    The CRM changes wanted now for these accounts, diffed against the ledger and the CRM's
    current values; ops in a stable order. A `shard` reads only its accounts' episodes and CRM
    records. A `preview` is an evaluation the store did not keep: its episodes are used. A play
    edited while its episodes are open applies to episodes opened after the edit; with
    `extend_edits` the open episodes' written tasks are updated to it too.
    """
    defs = ctx.definitions
    values = profiles.values
    opened = preview.open if preview else ctx.store.open_episodes(shard).values()
    episodes = sorted(
        (e for e in opened if e.account in values), key=lambda e: (e.opened_at, e.key)
    )
    since = ctx.clock() - timedelta(days=CLOSE_WINDOW_DAYS)
    stored = ctx.store.episodes(status="resolved", resolved_since=since, accounts=shard)
    resolved = [e for e in (*stored, *(preview.resolved if preview else ())) if e.account in values]
    # A shard reads the ledger of its own accounts and episodes (every op names one or the
    # other), not the whole ledger once per shard.
    applied = (
        ctx.store.applied_keys()
        if shard is None
        else ctx.store.applied_keys(
            targets=shard, episode_keys=[e.key for e in (*episodes, *resolved)]
        )
    )
    intents = action_intents(ctx, values, episodes, applied)
    wanted = {
        a: {crm_f: p.get(f) for crm_f, f in defs.writeback.account_fields.items()}
        for a, p in values.items()
    }
    master = defs.master
    records = (
        ctx.store.iter_records(master.spec.source, master.spec.stream)
        if shard is None
        else ctx.store.records_with_ids(master.spec.source, master.spec.stream, shard)
    )
    current = {
        r.record_id: {f: _text(r.data.get(f)) for f in defs.writeback.account_fields}
        for r in records
        if r.record_id in values
    }
    result = plan_writes(
        crm=ctx.crm_name,
        intents=intents,
        fields=wanted,
        current=current,
        applied=applied,
    )
    result.ops.extend(_closing_ops(ctx, resolved, applied))
    stale = _on_edited_plays(ctx, episodes)
    edits = _edits(ctx, values, stale, applied) if stale else []
    if extend_edits:
        result.ops.extend(edits)
    else:
        result.edits_held = len(edits)
    result.ops.sort(key=lambda o: (o.action.value, o.target, o.op_key))
    return result


def _on_edited_plays(ctx: Context, episodes: Iterable[Episode]) -> list[Episode]:
    """The open, actioned episodes whose play changed since they were actioned."""
    defs = ctx.definitions
    known = {t.id for t in defs.triggers.triggers}
    out = []
    for ep in episodes:
        decision = ep.decision
        version = decision.get("play_version")
        if ep.trigger_id not in known or decision.get("status") != "actioned" or not version:
            continue
        if version != defs.play_version(str(decision.get("play_id"))):
            out.append(ep)
    return out


def _edits(
    ctx: Context,
    profiles: Mapping[str, Mapping[str, Any]],
    episodes: Sequence[Episode],
    applied: Collection[str],
) -> list[WriteOp]:
    """Ops that carry the current plays to the tasks of `episodes`, skipping closed tasks."""
    crm = ctx.crm_name
    rendered = [
        i
        for i in action_intents(ctx, profiles, episodes)
        if i.kind in TASK_KINDS and action_key(crm, i.kind, i.key) in applied
    ]
    closed = {o.key for outcomes in task_outcomes(ctx.store).values() for o in outcomes if o.closed}
    written = ctx.store.applied_tasks([i.key for i in rendered if i.key not in closed])
    return [o for o in edit_ops(crm, rendered, written) if o.op_key not in applied]


CLOSE_WINDOW_DAYS = 30  # resolved episodes read for closing ops; failed closes retry via the ledger


def _closing_ops(
    ctx: Context, resolved: Iterable[Episode], applied: Collection[str]
) -> list[WriteOp]:
    """The ops that close what lately resolved episodes opened.

    Close the tasks and end the enrollments of actioned episodes that resolved lately (a close
    planned once stays in the ledger until applied).
    """
    plays = {p.id: p for p in ctx.definitions.plays.plays}
    out: list[WriteOp] = []
    for ep in resolved:
        play = plays.get(str(ep.decision.get("play_id")))
        if ep.decision.get("status") != "actioned" or play is None:
            continue
        if ep.resolution == ACCOUNT_REMOVED:  # nothing is written against a removed account
            continue
        out.extend(
            closing_ops(
                ctx.crm_name,
                episode_key=ep.key,
                actions=[(a.kind, a.id) for a in play.actions],
                reason=ep.resolution or "condition_cleared",
                applied=applied,
                contacts=tuple(ep.decision.get("contacts") or ()),
            )
        )
    return out


def plan_stats(result: Plan) -> dict[str, int]:
    """How many ops of each action a plan holds, and how many it skipped (applied, unchanged)."""
    return {
        **result.counts(),
        "skipped_applied": result.skipped_applied,
        "skipped_unchanged": result.skipped_unchanged,
        "task_edits_held": result.edits_held,
    }


def plan(
    ctx: Context,
    profiles: Profiles,
    run_id: str,
    *,
    record: bool = True,
    preview: Evaluation | None = None,
    extend_edits: bool = False,
) -> PlanResult:
    """The CRM changes wanted now, diffed against the ledger and the CRM; saved, not applied.

    With `record`, its ops enter the ledger as planned (a run about to apply them); a preview
    leaves the ledger alone, so that a plan nobody applies is never sent by a later run, and
    plans from the `preview` evaluation's episodes, which the store never saw.
    """
    result = plan_ops(ctx, profiles, preview=preview, extend_edits=extend_edits)
    plan_id = ctx.store.save_plan(run_id, result.ops)
    if record:
        ctx.store.record_planned(run_id, ctx.crm_name, result.ops)
    return PlanResult(
        run_id=run_id, plan_id=plan_id, ops=tuple(result.ops), stats=plan_stats(result)
    )


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
