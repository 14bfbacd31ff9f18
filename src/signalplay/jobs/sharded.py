"""USE CASES · the sharded evaluation Celery runs.

Accounts in shards, one evaluation and plan per shard, merged into one plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from signalplay.evaluate.evaluator import (
    batch_gc,
)
from signalplay.jobs.context import Context
from signalplay.jobs.evaluation import evaluate
from signalplay.jobs.planning import plan_ops, plan_stats
from signalplay.jobs.profiles import Profiles, derive_profiles, map_profiles
from signalplay.jobs.recording import recorded_run
from signalplay.jobs.results import MergedPlan, ShardResult
from signalplay.jobs.sources import pull
from signalplay.profile.values import (
    Coverage,
)


@dataclass(frozen=True)
class ShardedStart:
    """A sharded sync begun.

    Its run (left open for the merge to close), the shards of accounts to evaluate, and what the
    pull read.
    """

    run_id: str
    shards: list[list[str]]
    streams: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        """As the Celery task returns it."""
        return {"run_id": self.run_id, "parts": len(self.shards), "streams": self.streams}


def start_sharded(ctx: Context) -> ShardedStart:
    """Pull and map the project, and cut its accounts into shards of `shard_size`.

    The run stays open until `merge_plan` closes it (and is recorded failed if this step fails);
    its run lock is held until the merge, or the apply of its plan, gives it back.
    """
    with recorded_run(ctx, "sync", close=False) as record:
        streams = pull(ctx, record.run_id)
        mapped = map_profiles(ctx, record.run_id)
        parts = shards(list(mapped.facts), ctx.project.settings.shard_size)
    return ShardedStart(run_id=record.run_id, shards=parts, streams=streams)


def shards(accounts: Sequence[str], size: int) -> list[list[str]]:
    """Accounts in sorted chunks of `size`: the unit of one evaluation task."""
    ordered = sorted(accounts)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def evaluate_shard(
    ctx: Context, run_id: str, part: int, accounts: Sequence[str], *, record: bool = True
) -> ShardResult:
    """Derive, evaluate and plan one chunk of accounts from the stored facts.

    The ops are kept as part `part` of the run's plan. Safe to repeat: episodes, decisions and
    the part upsert.
    """
    ctx.store.try_lock(run_id, lease_seconds=ctx.project.settings.lock.lease_seconds)  # renew
    stored = ctx.store.load_facts(accounts)
    facts = {a: stored.get(a, {}) for a in accounts}
    with batch_gc():
        frame = derive_profiles(ctx, facts)
        values = dict(zip(frame.accounts, frame.rows, strict=True))
        profiles = Profiles(values, facts, {}, {}, {}, Coverage(len(values), {}, {}), frame)
        evaluation = evaluate(ctx, profiles, shard=accounts)
        result = plan_ops(ctx, profiles, shard=accounts)
    bands = Counter(str(p.get("health_band")) for p in values.values())
    done = ShardResult(part, len(values), evaluation, plan_stats(result), dict(bands))
    # The shard's ops go into the ledger here, in parallel with the other shards (their keys
    # are their accounts'), so that the merge only orders and saves the plan.
    if record:
        ctx.store.record_planned(run_id, ctx.crm_name, result.ops)
    ctx.store.save_plan_part(run_id, part, result.ops, done.to_json())
    return done


def merge_plan(ctx: Context, run_id: str, *, release: bool = True) -> MergedPlan:
    """One plan from every part of a sharded run, closing the run.

    One plan from every part of a sharded run, in the same stable order as an unsharded one
    (merged as stored JSON: the ops were validated when their shard planned them); the run the
    sync opened is recorded ok with the parts' summed counts.
    """
    plan_id, summaries = ctx.store.merge_plan_parts(
        run_id, key=lambda o: (o["action"], o["target"], o["op_key"])
    )
    counts: dict[str, Any] = {}
    for part in summaries:
        _add_counts(counts, part)
    merged = MergedPlan(run_id, plan_id, len(summaries), counts)
    ctx.store.finish_run(run_id, status="ok", summary=merged.to_json())  # the sync opened it
    if release:  # (else the task that applies the plan gives the lock back)
        ctx.store.unlock(run_id)
    return merged


def _add_counts(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_counts(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
