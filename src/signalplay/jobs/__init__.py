"""Use cases, one per task or command: pull, profile, evaluate, plan, apply, and the whole run.

The store, connectors and clock come in through `Context`; Celery tasks and the CLI call these.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from signalplay import tally
from signalplay.definitions.loader import CompiledMapping, Definitions, load_definitions_cached
from signalplay.errors import ConfigError, Issue
from signalplay.evaluate.episodes import advance_episodes
from signalplay.evaluate.evaluator import (
    base_row,
    batch_gc,
    cleared,
    compile_definitions,
    derive,
    fire_triggers,
    firings,
    new_frame,
)
from signalplay.evaluate.explain import explain_account
from signalplay.lang.vector import Frame, truthy
from signalplay.lang.vector import evaluate as vec_evaluate
from signalplay.models import Episode, Fact, SourceRecord, WriteAction, WriteOp, WriteResult
from signalplay.ops import logs
from signalplay.plays.actions import ActionIntent, consolidate, intents_for
from signalplay.plays.orchestration import FINAL, Decision, RecentActions, decide
from signalplay.profile.identity import IdentityMap
from signalplay.profile.mapping import StreamMapper, build_identity
from signalplay.profile.values import (
    Coverage,
    coverage,
    history_days,
    history_fields,
    history_values,
    merge_facts,
    public_values,
)
from signalplay.protocols import CrmConnector, EventSink
from signalplay.registry import build_connector
from signalplay.settings import CONFIG_FILE, Project
from signalplay.store import Store
from signalplay.types import Clock, utc_clock
from signalplay.writeback.crmschema import Finding, owner_refs, preflight, wanted_fields
from signalplay.writeback.plan import Plan, action_key, closing_ops, plan_writes

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
    events_factory: Callable[[], EventSink | None] | None = None
    progress: Callable[[str, int, int | None], None] = lambda stage, done, total: None
    _crm: CrmConnector | None = field(default=None, repr=False)
    _events: EventSink | None = field(default=None, repr=False)

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
    def events(self) -> EventSink | None:
        """Where webhook events go (None when the project configures no webhook)."""
        if self._events is None:
            block = self.project.settings.webhook
            factory = self.events_factory or (
                lambda: (
                    None
                    if block is None
                    else build_connector(self.project, "webhook", block, loc=("webhook",))
                )
            )
            self._events = factory()
        return self._events

    @property
    def crm_name(self) -> str:
        """The CRM kind, e.g. `hubspot`."""
        return self.project.settings.crm.connector

    def close(self) -> None:
        """Release the CRM connection and the store."""
        if self._crm is not None:
            self._crm.close()
        if self._events is not None:
            self._events.close()
        self.store.close()


def open_context(
    project: Project,
    *,
    clock: Clock = utc_clock,
    crm_factory: Callable[[], CrmConnector] | None = None,
    events_factory: Callable[[], EventSink | None] | None = None,
) -> Context:
    """Load definitions, open and migrate the store (as of `as_of` when the settings fix it);
    the settings' secrets are blanked from every log record from now on."""
    logs.remember(logs.secret_values(project.settings))
    as_of = project.settings.as_of
    if as_of is not None and clock is utc_clock:
        clock = lambda: as_of  # noqa: E731 - a fixed clock
    definitions = load_definitions_cached(project.definitions_dir)
    store = Store(project.store_url(), clock=clock)
    store.migrate()
    return Context(
        project=project,
        definitions=definitions,
        store=store,
        clock=clock,
        crm_factory=crm_factory,
        events_factory=events_factory,
    )


def pull(
    ctx: Context,
    run_id: str,
    *,
    only: Collection[str] | None = None,
    full: bool = False,
) -> dict[str, dict[str, float]]:
    """Pull every stream of the CRM and the sources (or of the sources named in `only`) from
    its saved cursor (from the start with `full`); the cursor is saved with every page, so a
    killed pull resumes where it stopped. Returns per stream: records, quarantined, requests
    and 429s (for connectors that count them) and seconds."""
    summary: dict[str, dict[str, float]] = {}
    until = ctx.clock()
    sources: list[tuple[str, Any]] = []
    if only is None or CRM_SOURCE in only:
        sources.append((CRM_SOURCE, ctx.crm))
    for name, block in ctx.project.settings.sources.items():
        if only is None or name in only:
            sources.append((name, build_connector(ctx.project, name, block, loc=("sources", name))))
    unknown = sorted(set(only or ()) - {n for n, _ in sources})
    if unknown:
        known = ", ".join([CRM_SOURCE, *ctx.project.settings.sources])
        raise ConfigError(
            [
                Issue(CONFIG_FILE, None, None, "sources", f"no source {u!r} (known: {known})")
                for u in unknown
            ]
        )
    for name, conn in sources:
        for spec in conn.streams():
            summary[f"{name}.{spec.name}"] = _pull_stream(
                ctx, run_id, name, conn, stream=spec.name, until=until, full=full
            )
    return summary


def _pull_stream(
    ctx: Context, run_id: str, source: str, conn: Any, *, stream: str, until: datetime, full: bool
) -> dict[str, float]:
    cursor = None if full else ctx.store.get_cursor(source, stream)
    counts: dict[str, float] = {"records": 0, "quarantined": 0}
    requests, limited = getattr(conn, "requests", None), getattr(conn, "rate_limited", None)
    retries = tally.total("retries")
    started = time.perf_counter()
    for page in conn.read(stream, cursor=cursor, until=until):
        ctx.store.save_page(source, stream, page.records, page.cursor)
        counts["records"] += len(page.records)
        counts["quarantined"] += ctx.store.quarantine(
            run_id, source, stream, page.quarantined, stage="pull"
        )
        ctx.progress(f"pull {source}.{stream}", int(counts["records"]), None)
    if requests is not None:
        counts["requests"] = conn.requests - requests
    if limited is not None:
        counts["429s"] = conn.rate_limited - limited
    counts["retries"] = tally.total("retries") - retries
    counts["seconds"] = round(time.perf_counter() - started, 2)
    return counts


@dataclass
class Profiles:
    """Every account's flat profile values, their facts, and what mapping could not use."""

    values: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Fact]]
    unmatched: dict[str, int]
    conflicts: dict[str, int]
    quarantined: dict[str, int]
    coverage: Coverage
    frame: Frame


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


def _day_frame(
    defs: Definitions,
    facts: dict[str, dict[str, Fact]],
    day: date,
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
) -> Frame:
    """Every account's profile on `day`: facts, history read from `snapshots`, then signals,
    segments, health and stage computed column-wise."""
    needs = defs.history
    rows = []
    for account, account_facts in facts.items():
        row = base_row(account, {n: f.value for n, f in account_facts.items()}, day)
        if needs:
            row.update(history_values(account, needs, snapshots, today=day))
        rows.append(row)
    frame = new_frame(defs, facts.keys(), rows, day)
    derived = derive(defs, frame)
    for step, count in sorted(derived.errors.items()):
        log.warning("%s failed on %d accounts", step, count)
    return frame


@dataclass
class Mapped:
    """Every account's facts, and what mapping could not use, per stream."""

    facts: dict[str, dict[str, Fact]]
    unmatched: dict[str, int]
    conflicts: dict[str, int]
    quarantined: dict[str, int]


def map_profiles(ctx: Context, run_id: str) -> Mapped:
    """Map every stream into facts per account; store them with the identity report."""
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
    return Mapped(
        facts=facts,
        unmatched={m.mapping.name: len(m.report.unmatched) for m in mappers},
        conflicts={m.mapping.name: len(m.report.conflicts) for m in mappers},
        quarantined=quarantined,
    )


def derive_profiles(ctx: Context, facts: dict[str, dict[str, Fact]], *, save: bool = True) -> Frame:
    """Signals, segments, health and stage of these accounts today; their snapshot is saved
    (unless `save` is false: a read-only look such as `explain`)."""
    today = ctx.clock().date()
    needs = ctx.definitions.history
    snapshots = ctx.store.snapshot_values(
        history_days(needs, today), history_fields(needs), accounts=list(facts)
    )
    frame = _day_frame(ctx.definitions, facts, today, snapshots)
    if save:
        ctx.store.save_snapshots(
            today, {a: public_values(v) for a, v in zip(frame.accounts, frame.rows, strict=True)}
        )
    return frame


def explain(ctx: Context, account: str) -> dict[str, Any]:
    """Why signalplay does what it does for one account, from the stored facts (writes nothing)."""
    facts = ctx.store.load_facts([account])
    frame = derive_profiles(ctx, {account: facts.get(account, {})}, save=False)
    episodes = ctx.store.episodes(account=account)
    return explain_account(ctx.definitions, frame, 0, episodes)


def build_profiles(ctx: Context, run_id: str) -> Profiles:
    """Map every stream into facts, store them with the identity report, and compute signals,
    health and coverage per account; today's snapshot is saved."""
    defs = ctx.definitions
    mapped = map_profiles(ctx, run_id)
    frame = derive_profiles(ctx, mapped.facts)
    values = dict(zip(frame.accounts, frame.rows, strict=True))
    cover = coverage(
        mapped.facts,
        {a: public_values(v) for a, v in values.items()},
        fields=sorted(defs.profile_fields - {"today", "account_key"}),
        sources={m.spec.source for m in defs.mappings},
    )
    return Profiles(
        values=values,
        facts=mapped.facts,
        unmatched=mapped.unmatched,
        conflicts=mapped.conflicts,
        quarantined=mapped.quarantined,
        coverage=cover,
        frame=frame,
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
            frame = _day_frame(defs, {a: merged.get(a, {}) for a in accounts}, day, cache)
            values = dict(zip(frame.accounts, frame.rows, strict=True))
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


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found: its summary, the episodes open after it (with their
    decisions) and those it resolved; a preview's exist only here, not in the store."""

    summary: dict[str, Any]
    open: list[Episode]
    resolved: list[Episode]


def evaluate(
    ctx: Context, profiles: Profiles, *, shard: Collection[str] | None = None
) -> dict[str, Any]:
    """Evaluate every trigger for every account, move episodes forward, and decide what each
    episode that wants action gets (play, owner, due date; actioned, held out, suppressed or
    capped). A `shard` (its accounts) reads only its own episodes: all that is decided about an
    account reads that account's episodes only, so memory follows the shard, not the book."""
    return assess(ctx, profiles, shard=shard).summary


def assess(
    ctx: Context, profiles: Profiles, *, shard: Collection[str] | None = None, save: bool = True
) -> Evaluation:
    """`evaluate`, keeping its episodes; without `save` (a preview) the store is left as it
    was: no episode opens or resolves there and no decision is recorded."""
    defs = ctx.definitions
    frame = profiles.frame
    now = ctx.clock()
    results = fire_triggers(defs, frame)
    fired = firings(defs, frame, results)
    open_episodes = ctx.store.open_episodes(shard)
    changes = advance_episodes(
        open_episodes=open_episodes,
        last_resolved=ctx.store.last_resolved(shard),
        firings=fired,
        cleared=cleared(frame, results, open_episodes.keys()),
        cooldown_days={t.id: t.cooldown_days for t in defs.triggers.triggers},
        now=now,
    )
    if save:
        ctx.store.save_episodes([*changes.opened, *changes.resolved])
    resolved = {(e.account, e.trigger_id) for e in changes.resolved}
    open_pairs = (set(open_episodes) - resolved) | {
        (e.account, e.trigger_id) for e in changes.opened
    }
    pending = [e for e in changes.held if e.decision.get("status") not in FINAL]
    decisions = decide(
        defs,
        episodes=[*changes.opened, *pending],
        profiles=profiles.values,
        open_pairs=open_pairs,
        suppressed_by=_suppressed_by(defs, frame),
        recent=RecentActions.from_episodes(
            ctx.store.episodes_since(now - timedelta(days=_cap_window(defs)), shard),
            defs.routing,
            now,
        ),
        now=now,
    )
    decided = {k: d.as_dict() for k, d in decisions.items()}
    if save:
        ctx.store.save_decisions(decided)
    failed = sum(r.failed for r in results)
    if failed:
        log.warning("trigger conditions failed on %d account rows", failed)
    summary = {
        "triggers_fired": dict(sorted(Counter(f.trigger_id for f in fired).items())),
        "episodes_opened": len(changes.opened),
        "episodes_held": len(changes.held),
        "episodes_resolved": len(changes.resolved),
        "cooling_down": len(changes.cooling),
        "decisions": dict(sorted(Counter(d.status for d in decisions.values()).items())),
    }
    still_open = [
        replace(e, decision=decided[e.key]) if e.key in decided else e
        for e in (*changes.opened, *changes.held)
    ]
    return Evaluation(summary, still_open, list(changes.resolved))


def _cap_window(defs: Definitions) -> int:
    caps = defs.routing.caps
    return max([c.days for c in (caps.per_account, caps.per_contact) if c] or [1])


def _suppressed_by(defs: Definitions, frame: Frame) -> dict[str, set[str]]:
    cd = compile_definitions(defs)
    out: dict[str, set[str]] = {}
    for rule_id, (expr, vec) in cd.suppress.items():
        col, _ = vec_evaluate(expr, vec, frame)
        mask = truthy(col, len(frame))
        out[rule_id] = {frame.accounts[i] for i in mask.nonzero()[0].tolist()}
    return out


def action_intents(
    ctx: Context,
    profiles: Mapping[str, Mapping[str, Any]],
    episodes: Sequence[Episode],
    applied: Collection[str] = frozenset(),
) -> list[ActionIntent]:
    """The rendered actions of every open, actioned episode that are not applied yet
    (consolidated per account when the routing file asks for it)."""
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
) -> Plan:
    """The CRM changes wanted now for these accounts, diffed against the ledger and the CRM's
    current values; ops in a stable order. A `shard` reads only its accounts' episodes and CRM
    records. A `preview` is an evaluation the store did not keep: its episodes are used."""
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
    result.ops.sort(key=lambda o: (o.action.value, o.target, o.op_key))
    return result


CLOSE_WINDOW_DAYS = 30  # resolved episodes read for closing ops; failed closes retry via the ledger


def _closing_ops(
    ctx: Context, resolved: Iterable[Episode], applied: Collection[str]
) -> list[WriteOp]:
    """Close the tasks and end the enrollments of actioned episodes that resolved lately (a
    close planned once stays in the ledger until applied)."""
    plays = {p.id: p for p in ctx.definitions.plays.plays}
    out: list[WriteOp] = []
    for ep in resolved:
        play = plays.get(str(ep.decision.get("play_id")))
        if ep.decision.get("status") != "actioned" or play is None:
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


def _plan_stats(result: Plan) -> dict[str, int]:
    return {
        **result.counts(),
        "skipped_applied": result.skipped_applied,
        "skipped_unchanged": result.skipped_unchanged,
    }


def plan(
    ctx: Context,
    profiles: Profiles,
    run_id: str,
    *,
    record: bool = True,
    preview: Evaluation | None = None,
) -> tuple[str, list[WriteOp], dict[str, int]]:
    """The CRM changes wanted now, diffed against the ledger and the CRM; saved, not applied.
    With `record`, its ops enter the ledger as planned (a run about to apply them); a preview
    leaves the ledger alone, so that a plan nobody applies is never sent by a later run, and
    plans from the `preview` evaluation's episodes, which the store never saw."""
    result = plan_ops(ctx, profiles, preview=preview)
    plan_id = ctx.store.save_plan(run_id, result.ops)
    if record:
        ctx.store.record_planned(run_id, ctx.crm_name, result.ops)
    return plan_id, result.ops, _plan_stats(result)


def shards(accounts: Sequence[str], size: int) -> list[list[str]]:
    """Accounts in sorted chunks of `size`: the unit of one evaluation task."""
    ordered = sorted(accounts)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def evaluate_shard(
    ctx: Context, run_id: str, part: int, accounts: Sequence[str], *, record: bool = True
) -> dict[str, Any]:
    """Derive, evaluate and plan one chunk of accounts from the stored facts; the ops are kept
    as part `part` of the run's plan. Safe to repeat: episodes, decisions and the part upsert."""
    stored = ctx.store.load_facts(accounts)
    facts = {a: stored.get(a, {}) for a in accounts}
    with batch_gc():
        frame = derive_profiles(ctx, facts)
        values = dict(zip(frame.accounts, frame.rows, strict=True))
        profiles = Profiles(values, facts, {}, {}, {}, Coverage(len(values), {}, {}), frame)
        evaluation = evaluate(ctx, profiles, shard=accounts)
        result = plan_ops(ctx, profiles, shard=accounts)
    bands = Counter(str(p.get("health_band")) for p in values.values())
    summary = {
        **evaluation,
        "accounts": len(values),
        "plan": _plan_stats(result),
        "health_bands": dict(bands),
    }
    # The shard's ops go into the ledger here, in parallel with the other shards (their keys
    # are their accounts'), so that the merge only orders and saves the plan.
    if record:
        ctx.store.record_planned(run_id, ctx.crm_name, result.ops)
    ctx.store.save_plan_part(run_id, part, result.ops, summary)
    return summary


def merge_plan(ctx: Context, run_id: str) -> tuple[str, dict[str, Any]]:
    """One plan from every part of a sharded run, in the same stable order as an unsharded one
    (merged as stored JSON: the ops were validated when their shard planned them)."""
    plan_id, summaries = ctx.store.merge_plan_parts(
        run_id, key=lambda o: (o["action"], o["target"], o["op_key"])
    )
    summary: dict[str, Any] = {"run_id": run_id, "plan_id": plan_id, "parts": len(summaries)}
    for part in summaries:
        _add_counts(summary, part)
    return plan_id, summary


def _add_counts(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_counts(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


NOTHING_APPLIED = {
    "tasks_created": 0,
    "tasks_updated": 0,
    "fields_updated": 0,
    "events_sent": 0,
    "failed": 0,
    "write_retries": 0,
}


def apply(ctx: Context, ops: Sequence[WriteOp], *, retry_pending: bool = True) -> dict[str, int]:
    """Write ops to the CRM (events to the webhook) and record each outcome in the ledger;
    failed ops stay for retry."""
    settled = ctx.store.settled_keys()
    todo = {o.op_key: o for o in ops if o.op_key not in settled}
    if retry_pending:
        for op in ctx.store.pending_ops():
            todo.setdefault(op.op_key, op)
    ops_list = list(todo.values())
    if not ops_list:
        return dict(NOTHING_APPLIED)
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
    retries = tally.total("retries")
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
    return {
        "tasks_created": sum(1 for r, o in ok if o.action is WriteAction.UPSERT_TASK and r.created),
        "tasks_updated": sum(
            1 for r, o in ok if o.action is WriteAction.UPSERT_TASK and not r.created
        ),
        "fields_updated": sum(
            len(o.values) for _, o in ok if o.action is WriteAction.UPDATE_FIELDS
        ),
        "events_sent": sum(1 for _, o in ok if o.action is WriteAction.SEND_WEBHOOK),
        "failed": sum(1 for r in results if not r.ok),
        "write_retries": tally.total("retries") - retries,
    }


def _send_events(ctx: Context, events: Sequence[WriteOp]) -> Sequence[WriteResult]:
    """Deliver events; without a usable webhook each is recorded failed with the reason, so
    that it is retried once the webhook is configured."""
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


def run(
    ctx: Context, *, dry_run: bool = False, only: Collection[str] | None = None
) -> dict[str, Any]:
    """Pull → profile → evaluate → plan → apply, recorded as one run; `only` pulls just the
    sources named (the others' stored records are used as they are)."""
    run_id = ctx.store.start_run("run")
    started: datetime = ctx.clock()
    with logs.run_context(run_id):
        return _run(ctx, run_id, started, dry_run=dry_run, only=only)


def _run(
    ctx: Context,
    run_id: str,
    started: datetime,
    *,
    dry_run: bool,
    only: Collection[str] | None,
) -> dict[str, Any]:
    try:
        streams = pull(ctx, run_id, only=only)
        with batch_gc():
            profiles = build_profiles(ctx, run_id)
            assessed = assess(ctx, profiles, save=not dry_run)
            evaluation = assessed.summary
            plan_id, ops, plan_stats = plan(
                ctx, profiles, run_id, record=not dry_run, preview=assessed if dry_run else None
            )
        applied = dict(NOTHING_APPLIED) if dry_run else apply(ctx, ops)
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


def _locate(ctx: Context) -> Callable[[str], tuple[Path, str] | None]:
    """Where a RevOps file named in a preflight finding lives, and how to show it."""
    root = ctx.project.root

    def locate(file: str) -> tuple[Path, str]:
        path = root / file if file == CONFIG_FILE else ctx.project.definitions_dir / file
        try:
            return path, str(path.relative_to(root))
        except ValueError:
            return path, str(path)

    return locate


def crm_check(ctx: Context) -> list[Finding]:
    """Preflight the CRM against the mappings: fields, picklist values, the unique episode key
    and the owners the routing names; nothing is written."""
    crm = ctx.crm
    return preflight(
        wanted_fields(ctx.definitions, crm.task_fields),
        crm.describe_crm(),
        owner_refs(ctx.definitions),
        locate=_locate(ctx),
        crm=ctx.project.settings.crm.connector,
    )


def crm_setup(ctx: Context, *, dry_run: bool = False) -> tuple[list[str], list[Finding]]:
    """Create the missing fields and picklist values (`dry_run`: only say which); returns what
    was (or would be) done and what remains for a person to fix."""
    done: list[str] = []
    findings = crm_check(ctx)
    for finding in findings:
        spec = finding.spec
        if not finding.fixable or spec is None:
            continue
        what = f"{spec.object} field {spec.name}"
        if finding.missing_options:
            done.append(f"add {', '.join(finding.missing_options)} to {what}")
            if not dry_run:
                ctx.crm.add_picklist_values(spec, finding.missing_options)
        else:
            done.append(f"create {what} ({spec.kind})")
            if not dry_run:
                ctx.crm.create_field(spec)
    remaining = [f for f in findings if not f.fixable] if dry_run else crm_check(ctx)
    return done, remaining
