"""Use cases, one per task or command: pull, profile, evaluate, plan, apply, and the whole run.

The store, connectors and clock come in through `Context`; Celery tasks and the CLI call these.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from signalplay.definitions.loader import CompiledMapping, Definitions, load_definitions
from signalplay.episodes import advance_episodes
from signalplay.health import score_health
from signalplay.identity import IdentityMap
from signalplay.mapping import StreamMapper, build_identity
from signalplay.models import Fact, SourceRecord, WriteOp
from signalplay.plan import plan_writes
from signalplay.plays import task_for
from signalplay.profile import (
    Coverage,
    coverage,
    history_days,
    history_fields,
    history_values,
    merge_facts,
    profile_values,
    public_values,
)
from signalplay.protocols import CrmConnector
from signalplay.registry import build_connector
from signalplay.settings import Project
from signalplay.store import Store
from signalplay.triggers import Firing, evaluate_triggers
from signalplay.types import Clock, utc_clock

log = logging.getLogger(__name__)
CRM_SOURCE = "crm"


@dataclass
class Context:
    """What a use case needs: the project, its definitions, the store, the CRM and the clock."""

    project: Project
    definitions: Definitions
    store: Store
    clock: Clock = utc_clock
    crm_factory: Callable[[], CrmConnector] | None = None
    progress: Callable[[str, int, int | None], None] = lambda stage, done, total: None
    _crm: CrmConnector | None = field(default=None, repr=False)

    @property
    def crm(self) -> CrmConnector:
        """The CRM connector, built once."""
        if self._crm is None:
            factory = self.crm_factory or (
                lambda: build_connector(
                    self.project, CRM_SOURCE, self.project.settings.crm, loc=("crm",)
                )
            )
            self._crm = factory()
        return self._crm

    @property
    def crm_name(self) -> str:
        """The CRM kind, e.g. `hubspot`."""
        return self.project.settings.crm.connector

    def close(self) -> None:
        """Release the CRM connection and the store."""
        if self._crm is not None:
            self._crm.close()
        self.store.close()


def open_context(
    project: Project,
    *,
    clock: Clock = utc_clock,
    crm_factory: Callable[[], CrmConnector] | None = None,
) -> Context:
    """Load definitions, open and migrate the store."""
    definitions = load_definitions(project.definitions_dir)
    store = Store(project.store_url(), clock=clock)
    store.migrate()
    return Context(
        project=project, definitions=definitions, store=store, clock=clock, crm_factory=crm_factory
    )


def pull(ctx: Context, run_id: str) -> dict[str, dict[str, int]]:
    """Pull every stream of the CRM and the sources from its cursor; returns counts per stream."""
    summary: dict[str, dict[str, int]] = {}
    until = ctx.clock()
    sources: list[tuple[str, Any]] = [(CRM_SOURCE, ctx.crm)]
    for name, block in ctx.project.settings.sources.items():
        sources.append((name, build_connector(ctx.project, name, block, loc=("sources", name))))
    for name, conn in sources:
        for spec in conn.streams():
            cursor = ctx.store.get_cursor(name, spec.name)
            counts = Counter[str]()
            for page in conn.read(spec.name, cursor=cursor, until=until):
                ctx.store.save_page(name, spec.name, page.records, page.cursor)
                counts["records"] += len(page.records)
                counts["quarantined"] += ctx.store.quarantine(
                    run_id, name, spec.name, page.quarantined, stage="pull"
                )
                ctx.progress(f"pull {name}.{spec.name}", counts["records"], None)
            summary[f"{name}.{spec.name}"] = dict(counts)
    return summary


@dataclass
class Profiles:
    """Every account's flat profile values, their facts, and what mapping could not use."""

    values: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Fact]]
    unmatched: dict[str, int]
    conflicts: dict[str, int]
    quarantined: dict[str, int]
    coverage: Coverage


def map_streams(
    ctx: Context, identity: IdentityMap, days: Sequence[date], *, stage: str = "map"
) -> list[StreamMapper]:
    """Feed every stored record of every mapped stream through its mapping, for `days`."""
    mappers = []
    for i, mapping in enumerate(ctx.definitions.mappings):
        mapper = StreamMapper(mapping, identity, days=days)
        total = ctx.store.count_records(mapping.spec.source, mapping.spec.stream)
        for n, record in enumerate(
            ctx.store.iter_records(mapping.spec.source, mapping.spec.stream)
        ):
            mapper.add(record)
            if n % 5000 == 0:
                ctx.progress(
                    f"{stage} {mapping.name} ({i + 1}/{len(ctx.definitions.mappings)})", n, total
                )
        mappers.append(mapper)
    return mappers


def _records_of(ctx: Context) -> Callable[[CompiledMapping], Iterator[SourceRecord]]:
    return lambda m: ctx.store.iter_records(m.spec.source, m.spec.stream)


def _day_values(
    defs: Definitions,
    facts: dict[str, dict[str, Fact]],
    day: date,
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Signals and health of every account on `day`, history read from `snapshots`."""
    needs = defs.history
    values: dict[str, dict[str, Any]] = {}
    for account, account_facts in facts.items():
        history = history_values(account, needs, snapshots, today=day) if needs else None
        profile, errors = profile_values(
            account, account_facts, defs.signals, today=day, history=history
        )
        health = score_health(defs.health, defs.health_values, profile)
        profile.update(
            health_score=health.score, health_band=health.band, health_drivers=health.drivers()
        )
        values[account] = profile
        for error in errors:
            log.warning("account %s: %s", account, error)
    return values


def build_profiles(ctx: Context, run_id: str) -> Profiles:
    """Map every stream into facts, store them with the identity report, and compute signals,
    health and coverage per account; today's snapshot is saved."""
    today = ctx.clock().date()
    defs = ctx.definitions
    identity = build_identity(defs.mappings, _records_of(ctx))
    mappers = map_streams(ctx, identity, [today])
    issues = [i for m in mappers for i in m.report.identity]
    ctx.store.replace_identity_issues(run_id, issues)
    quarantined = {
        m.mapping.name: ctx.store.quarantine(
            run_id, m.spec.source, m.spec.stream, m.report.quarantined, stage="map"
        )
        for m in mappers
    }
    accounts = identity.accounts()
    merged = merge_facts(m.facts(accounts=accounts) for m in mappers)
    facts = {a: merged.get(a, {}) for a in accounts}
    ctx.store.replace_facts(facts)
    needs = defs.history
    snapshots = ctx.store.snapshot_values(history_days(needs, today), history_fields(needs))
    values = _day_values(defs, facts, today, snapshots)
    shown = {a: public_values(v) for a, v in values.items()}
    ctx.store.save_snapshots(today, shown)
    cover = coverage(
        facts,
        shown,
        fields=sorted(defs.profile_fields - {"today", "account_key"}),
        sources={m.spec.source for m in defs.mappings},
    )
    return Profiles(
        values=values,
        facts=facts,
        unmatched={m.mapping.name: len(m.report.unmatched) for m in mappers},
        conflicts={m.mapping.name: len(m.report.conflicts) for m in mappers},
        quarantined=quarantined,
        coverage=cover,
    )


def backfill(ctx: Context, *, days: int, chunk: int = 14) -> dict[str, Any]:
    """Build the daily snapshots of the last `days` days (today excluded) from the stored
    history of the sources, oldest first, so that each day's history functions read the days
    before it. Streams without a date (the CRM's accounts) contribute their current values."""
    today = ctx.clock().date()
    targets = [today - timedelta(days=k) for k in range(days, 0, -1)]
    defs = ctx.definitions
    identity = build_identity(defs.mappings, _records_of(ctx))
    accounts = identity.accounts()
    needs = defs.history
    fields = history_fields(needs)
    cache = ctx.store.snapshot_values(history_days(needs, targets[0]), fields) if targets else {}
    done = 0
    for start in range(0, len(targets), chunk):
        block = targets[start : start + chunk]
        mappers = map_streams(ctx, identity, block, stage=f"backfill {block[0]}..{block[-1]}")
        for i, day in enumerate(block):
            merged = merge_facts(m.facts(i, accounts=accounts) for m in mappers)
            values = _day_values(defs, {a: merged.get(a, {}) for a in accounts}, day, cache)
            ctx.store.save_snapshots(day, {a: public_values(v) for a, v in values.items()})
            cache[day] = {a: {f: v.get(f) for f in fields} for a, v in values.items()}
            done += 1
            ctx.progress("backfill days", done, len(targets))
    return {
        "days": len(targets),
        "from": targets[0].isoformat() if targets else None,
        "to": targets[-1].isoformat() if targets else None,
        "accounts": len(accounts),
        "snapshots": len(targets) * len(accounts),
    }


def evaluate(ctx: Context, profiles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Evaluate every trigger for every account and move episodes forward."""
    defs = ctx.definitions
    firings: list[Firing] = []
    for account, profile in profiles.items():
        fired, errors = evaluate_triggers(
            account, profile, defs.triggers.triggers, defs.trigger_conditions
        )
        firings.extend(fired)
        for error in errors:
            log.warning("account %s: %s", account, error)
    changes = advance_episodes(
        open_episodes=ctx.store.open_episodes(),
        last_resolved=ctx.store.last_resolved(),
        firings=firings,
        evaluated=profiles.keys(),
        cooldown_days={t.id: t.cooldown_days for t in defs.triggers.triggers},
        now=ctx.clock(),
    )
    ctx.store.save_episode_changes(changes)
    return {
        "triggers_fired": dict(sorted(Counter(f.trigger_id for f in firings).items())),
        "episodes_opened": len(changes.opened),
        "episodes_held": len(changes.held),
        "episodes_resolved": len(changes.resolved),
        "cooling_down": len(changes.cooling),
    }


def plan(
    ctx: Context, profiles: dict[str, dict[str, Any]], run_id: str
) -> tuple[str, list[WriteOp], dict[str, int]]:
    """The CRM changes wanted now, diffed against the ledger and the CRM; saved, not applied."""
    defs = ctx.definitions
    triggers = {t.id: t for t in defs.triggers.triggers}
    workdays = ctx.project.settings.business_hours.workdays
    tasks = [
        task_for(ep, triggers[ep.trigger_id], profiles.get(ep.account, {}), defs, workdays=workdays)
        for ep in ctx.store.episodes(status="open")
        if ep.trigger_id in triggers
    ]
    wanted = {
        a: {crm_f: p.get(f) for crm_f, f in defs.writeback.account_fields.items()}
        for a, p in profiles.items()
    }
    master = defs.master
    current = {
        r.record_id: {f: _text(r.data.get(f)) for f in defs.writeback.account_fields}
        for r in ctx.store.iter_records(master.spec.source, master.spec.stream)
    }
    result = plan_writes(
        crm=ctx.crm_name,
        tasks=tasks,
        fields=wanted,
        current=current,
        applied=ctx.store.applied_keys(),
    )
    plan_id = ctx.store.save_plan(run_id, result.ops)
    ctx.store.record_planned(run_id, ctx.crm_name, result.ops)
    stats = {
        **result.counts(),
        "skipped_applied": result.skipped_applied,
        "skipped_unchanged": result.skipped_unchanged,
    }
    return plan_id, result.ops, stats


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def apply(ctx: Context, ops: Sequence[WriteOp], *, retry_pending: bool = True) -> dict[str, int]:
    """Write ops to the CRM and record each outcome in the ledger; failed ops stay for retry."""
    applied = ctx.store.applied_keys()
    todo = {o.op_key: o for o in ops if o.op_key not in applied}
    if retry_pending:
        for op in ctx.store.pending_ops():
            todo.setdefault(op.op_key, op)
    ops_list = list(todo.values())
    if not ops_list:
        return {"tasks_created": 0, "tasks_updated": 0, "fields_updated": 0, "failed": 0}
    ctx.crm.ensure_schema(list(ctx.definitions.writeback.account_fields))
    results = ctx.crm.write(ops_list)
    ctx.store.record_results(results)
    by_key = {o.op_key: o for o in ops_list}
    created = sum(1 for r in results if r.ok and r.created)
    task_ok = sum(1 for r in results if r.ok and by_key[r.op_key].action.value == "upsert_task")
    fields = sum(
        len(by_key[r.op_key].values)
        for r in results
        if r.ok and by_key[r.op_key].action.value == "update_fields"
    )
    failed = sum(1 for r in results if not r.ok)
    for r in results:
        if not r.ok:
            log.warning("op %s failed: %s", r.op_key[:12], r.error)
    return {
        "tasks_created": created,
        "tasks_updated": task_ok - created,
        "fields_updated": fields,
        "failed": failed,
    }


def run(ctx: Context, *, dry_run: bool = False) -> dict[str, Any]:
    """Pull → profile → evaluate → plan → apply, recorded as one run."""
    run_id = ctx.store.start_run("run")
    started: datetime = ctx.clock()
    try:
        streams = pull(ctx, run_id)
        profiles = build_profiles(ctx, run_id)
        evaluation = evaluate(ctx, profiles.values)
        plan_id, ops, plan_stats = plan(ctx, profiles.values, run_id)
        applied = (
            {"tasks_created": 0, "tasks_updated": 0, "fields_updated": 0, "failed": 0}
            if dry_run
            else apply(ctx, ops)
        )
        if not dry_run:
            ctx.store.mark_plan(plan_id, "applied")
    except Exception:
        ctx.store.finish_run(run_id, status="failed", summary={})
        raise
    bands = Counter(str(p.get("health_band")) for p in profiles.values.values())
    summary = {
        "run_id": run_id,
        "plan_id": plan_id,
        "accounts": len(profiles.values),
        "streams": streams,
        **evaluation,
        "plan": plan_stats,
        **applied,
        "health_bands": dict(sorted(bands.items())),
        "unmatched": profiles.unmatched,
        "conflicts": profiles.conflicts,
        "quarantined": profiles.quarantined,
        "coverage": {
            "overall_pct": profiles.coverage.overall,
            "sources_pct": profiles.coverage.sources,
        },
        "seconds": round((ctx.clock() - started).total_seconds(), 2),
        "dry_run": dry_run,
    }
    ctx.store.finish_run(run_id, status="ok", summary=summary)
    return summary
