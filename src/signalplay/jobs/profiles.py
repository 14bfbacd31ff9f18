"""USE CASES · profile.

Map the stored records into facts, derive each account's profile and its history (backfill), explain
one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from signalplay.definitions.compiled import CompiledMapping, Definitions
from signalplay.evaluate.evaluator import (
    base_row,
    derive,
    new_frame,
)
from signalplay.evaluate.explain import Explanation, explain_account
from signalplay.jobs.context import Context
from signalplay.jobs.results import BackfillResult
from signalplay.lang.frame import Frame
from signalplay.models import Fact, SourceRecord
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

log = logging.getLogger(__name__)


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
    ctx: Context,
    identity: IdentityMap,
    days: Sequence[date],
    *,
    stage: str = "map",
    as_of_each_day: bool = False,
) -> list[StreamMapper]:
    """Feed every stored record of every mapped stream through its mapping, for `days`.

    The stored records as they are now; or, `as_of_each_day`, each record of a stream that
    keeps timelines as it was on each day (immutable streams count from their own dates).
    """
    mappers = []
    for i, mapping in enumerate(ctx.definitions.mappings):
        src, stream = mapping.spec.source, mapping.spec.stream
        mapper = StreamMapper(mapping, identity, days=days)
        total = ctx.store.count_records(src, stream)
        label = f"{stage} {mapping.name} ({i + 1}/{len(ctx.definitions.mappings)})"
        if as_of_each_day and ctx.store.has_timelines(src, stream):
            for n, timeline in enumerate(ctx.store.iter_timelines(src, stream)):
                mapper.add_timeline(timeline)
                if n % 5000 == 0:
                    ctx.progress(label, n, total)
        else:
            for n, record in enumerate(ctx.store.iter_records(src, stream)):
                mapper.add(record)
                if n % 5000 == 0:
                    ctx.progress(label, n, total)
        mappers.append(mapper)
    return mappers


def _records_of(ctx: Context) -> Callable[[CompiledMapping], Iterator[SourceRecord]]:
    return lambda m: ctx.store.iter_records(m.spec.source, m.spec.stream)


def _ever_records_of(ctx: Context) -> Callable[[CompiledMapping], Iterator[SourceRecord]]:
    """Every record a stream ever had, in its latest state (those deleted since included)."""

    def records(m: CompiledMapping) -> Iterator[SourceRecord]:
        src, stream = m.spec.source, m.spec.stream
        if not ctx.store.has_timelines(src, stream):
            yield from ctx.store.iter_records(src, stream)
            return
        for timeline in ctx.store.iter_timelines(src, stream):
            data = next((v.data for v in reversed(timeline.versions) if v.data is not None), None)
            if data is not None:
                yield SourceRecord.model_construct(
                    source=src, stream=stream, record_id=timeline.record_id, data=data
                )

    return records


def _day_frame(
    defs: Definitions,
    facts: dict[str, dict[str, Fact]],
    day: date,
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
) -> Frame:
    """Every account's profile on `day`.

    Facts, history read from `snapshots`, then signals, segments, health and stage computed
    column-wise.
    """
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


def map_profiles(ctx: Context, run_id: str, *, save: bool = True) -> Mapped:
    """Map every stream into facts per account; store them with the identity report.

    Without `save` (a preview) nothing is stored: not the facts, the identity report or what
    the mapping quarantined.
    """
    today = ctx.clock().date()
    defs = ctx.definitions
    identity = build_identity(defs.mappings, _records_of(ctx))
    mappers = map_streams(ctx, identity, [today])
    issues = [i for m in mappers for i in m.report.identity]
    if save:
        ctx.store.replace_identity_issues(run_id, issues)
    quarantined = {
        m.mapping.name: ctx.store.quarantine(
            run_id, m.spec.source, m.spec.stream, m.report.quarantined, stage="map"
        )
        if save
        else len({ref[:255] for ref, _, _ in m.report.quarantined})
        for m in mappers
    }
    accounts = identity.accounts()
    merged = merge_facts(m.facts(accounts=accounts) for m in mappers)
    facts = {a: merged.get(a, {}) for a in accounts}
    if save:
        ctx.store.replace_facts(facts)
    return Mapped(
        facts=facts,
        unmatched={m.mapping.name: len(m.report.unmatched) for m in mappers},
        conflicts={m.mapping.name: len(m.report.conflicts) for m in mappers},
        quarantined=quarantined,
    )


def derive_profiles(ctx: Context, facts: dict[str, dict[str, Fact]], *, save: bool = True) -> Frame:
    """Signals, segments, health and stage of these accounts today.

    Their snapshot is saved (unless `save` is false: a read-only look such as `explain`).
    """
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


def explain(ctx: Context, account: str) -> Explanation:
    """Why signalplay does what it does for one account, from the stored facts (writes nothing)."""
    facts = ctx.store.load_facts([account])
    frame = derive_profiles(ctx, {account: facts.get(account, {})}, save=False)
    episodes = ctx.store.episodes(account=account)
    return explain_account(ctx.definitions, frame, 0, episodes)


def build_profiles(ctx: Context, run_id: str, *, save: bool = True) -> Profiles:
    """Map every stream into facts and derive every account's profile for today.

    Map every stream into facts, store them with the identity report, and compute signals,
    health and coverage per account; today's snapshot is saved. Without `save` (a preview, for
    any `as_of`) the store keeps none of it.
    """
    defs = ctx.definitions
    mapped = map_profiles(ctx, run_id, save=save)
    frame = derive_profiles(ctx, mapped.facts, save=save)
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


def backfill(ctx: Context, *, days: int, chunk: int = 14) -> BackfillResult:
    """Build the daily snapshots of the last `days` days from the sources' history.

    Build the daily snapshots of the last `days` days (today excluded) from the stored history
    of the sources, oldest first, so that each day's history functions read the days before it.
    Each day sees only what was true on it: every record as its timeline says it was that day
    (unknown before the first state the store knows, unless that state began the record), and
    the book of that day (the accounts whose master record existed then).
    """
    today = ctx.clock().date()
    targets = [today - timedelta(days=k) for k in range(days, 0, -1)]
    defs = ctx.definitions
    identity = build_identity(defs.mappings, _ever_records_of(ctx))
    everyone = identity.accounts()
    master = defs.master.spec
    dated_book = ctx.store.has_timelines(master.source, master.stream)
    needs = defs.history
    fields = history_fields(needs)
    cache = ctx.store.snapshot_values(history_days(needs, targets[0]), fields) if targets else {}
    done = snapshots = 0
    for start in range(0, len(targets), chunk):
        block = targets[start : start + chunk]
        mappers = map_streams(
            ctx,
            identity,
            block,
            stage=f"backfill {block[0]}..{block[-1]}",
            as_of_each_day=True,
        )
        book = next(m for m in mappers if m.spec.master)
        for i, day in enumerate(block):
            accounts = sorted(book.present[i]) if dated_book else everyone
            merged = merge_facts(m.facts(i, accounts=accounts) for m in mappers)
            frame = _day_frame(defs, {a: merged.get(a, {}) for a in accounts}, day, cache)
            values = dict(zip(frame.accounts, frame.rows, strict=True))
            ctx.store.save_snapshots(day, {a: public_values(v) for a, v in values.items()})
            cache[day] = {a: {f: v.get(f) for f in fields} for a, v in values.items()}
            done += 1
            snapshots += len(values)
            ctx.progress("backfill days", done, len(targets))
    return BackfillResult(
        days=len(targets),
        first_day=targets[0].isoformat() if targets else None,
        last_day=targets[-1].isoformat() if targets else None,
        accounts=len(everyone),
        snapshots=snapshots,
    )
