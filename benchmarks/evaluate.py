"""Benchmark: the shipped library (signals, segments, health, every trigger, episodes, decisions,
plays, plan) over N synthetic accounts, without the store or the network: first as the product
runs it (shards of `shard_size` accounts over one worker process per core; the targets, <= 3 s
and <= 1 GB at 100k accounts on this 2-core machine, are for this run), then all accounts as
one shard in one process, for comparison.

    python benchmarks/evaluate.py                 # 100k accounts
    python benchmarks/evaluate.py --accounts 5000 --rule-engine-sample 2000

It prints wall time per stage and in total, peak RSS, and, on the same derived profiles, the
trigger conditions evaluated per record by the `rule-engine` package against ours (compiled once
into column operations): records per second each, and the ratio (target: >= 20x).
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import resource
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import numpy as np

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.loader import load_definitions
from signalplay.evaluate.episodes import advance_episodes
from signalplay.evaluate.evaluator import (
    base_row,
    batch_gc,
    cleared,
    derive,
    fire_triggers,
    firings,
    new_frame,
)
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.models import WriteAction
from signalplay.plays.actions import intents_for
from signalplay.plays.orchestration import FINAL, Decision, RecentActions, decide
from signalplay.settings import Settings
from signalplay.writeback.plan import action_key, plan_writes

TODAY = date(2026, 11, 18)
TIERS = ("enterprise", "mid_market", "smb")


def _day(rng: random.Random, lo: int, hi: int, share: float = 1.0) -> str | None:
    if rng.random() >= share:
        return None
    return (TODAY - timedelta(days=rng.randint(lo, hi))).isoformat()


def _pick(rng: random.Random, common: Any, rare: Any, share: float) -> Any:
    return rare if rng.random() < share else common


def synthetic(
    n: int, seed: int, *, start: int = 0, stop: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Accounts `start` to `stop` of `n` synthetic accounts' fact values: mostly steady, with
    each risk or opportunity in a few percent of them, so that every trigger fires somewhere.
    Each account has its own random stream, so a shard can be generated alone."""
    out = []
    for i in range(start, n if stop is None else stop):
        rng = random.Random(seed * 1_000_003 + i)
        tier = rng.choices(TIERS, weights=(15, 35, 50))[0]
        seats = rng.randint(5, 800)
        active = seats * rng.uniform(0.4, 0.9) * _pick(rng, 1.0, 0.2, 0.03)
        tenure = _pick(rng, rng.randint(90, 1000), rng.randint(1, 89), 0.08)
        contacts = [
            {
                "id": f"c{i}-{k}",
                "role": role,
                "owner_id": "102",
                "first_name": "Sam",
                "last_name": "Lee",
                "email": f"{role}@a{i}.test",
                "last_engaged": _day(rng, 1, _pick(rng, 40, 120, 0.05)),
                "left_date": _day(rng, 1, 60, 0.02) if role == "champion" else None,
            }
            for k, role in enumerate(
                ("admin", "champion", "exec_sponsor", "finance")[: rng.randint(2, 4)]
            )
        ]
        billed = rng.uniform(500, 50_000)
        out.append(
            (
                f"{100000 + i}",
                {
                    "name": f"Account {i}",
                    "owner_id": str(101 + i % 8),
                    "sales_owner_id": str(201 + i % 3),
                    "tier": tier,
                    "arr": billed * 12,
                    "seats": seats,
                    "contract_start": (TODAY - timedelta(days=tenure)).isoformat(),
                    "renewal_date": (TODAY + timedelta(days=rng.randint(-5, 360))).isoformat(),
                    "features_licensed": 10,
                    "kickoff_date": _day(rng, 1, tenure, 0.97 if tenure > 7 else 0.3),
                    "integration_done_date": _day(rng, 1, tenure, 0.98 if tenure > 60 else 0.5),
                    "renewal_confidence": rng.choices(("high", "medium", "low"), (70, 25, 5))[0],
                    "nps": rng.choice((None, None, 10, 9, 9, 8, 8, 7, 10, 9, 8, 9, 10, 9, 5)),
                    "qbr_sentiment": _pick(rng, "positive", "negative", 0.02),
                    "procurement_status": _pick(rng, "none", "delayed", 0.02),
                    "use_case_request_date": _day(rng, 0, 60, 0.05),
                    "org_change_date": _day(rng, 0, 60, 0.01),
                    "active_users_7d": round(active, 1),
                    "active_users_prev_7d": round(active / _pick(rng, 1.0, 0.6, 0.03), 1),
                    "key_feature_days_30d": rng.randint(0, 30),
                    "key_feature_days_all": _pick(rng, rng.randint(1, 300), 0, 0.02),
                    "features_used_30d": rng.randint(1, 10),
                    "open_urgent_tickets": _pick(rng, 0, 1, 0.02),
                    "tickets_30d": rng.randint(0, 4),
                    "reopens_90d": _pick(rng, rng.choice((0, 0, 1)), 5, 0.02),
                    "csat_90d": _pick(rng, rng.choice((None, 4.8, 4.2, 3.9)), 3.1, 0.03),
                    "exec_escalations_30d": _pick(rng, 0, 1, 0.005),
                    "failed_payments_60d": _pick(rng, 0, 1, 0.02),
                    "billed_30d": billed * _pick(rng, 1.0, 0.8, 0.02),
                    "billed_prev_30d": billed,
                    "contacts": contacts,
                },
            )
        )
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def run_library(
    defs: Definitions,
    accounts: list[tuple[str, dict[str, Any]]],
    *,
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every stage of one evaluation; returns seconds per stage and counts. `before` is what a
    first run left (open episodes with their decisions, the CRM's values, applied op keys)."""
    now = datetime.combine(TODAY, dtime(15), tzinfo=UTC)
    prior = before or {"open": {}, "current": {}, "applied": set()}
    stages: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        t = time.perf_counter()
        stages[name] = round(t - mark, 3)
        mark = t

    rows = [base_row(a, v if before is None else dict(v), TODAY) for a, v in accounts]
    frame = new_frame(defs, [a for a, _ in accounts], rows, TODAY)
    lap("frame")
    derive(defs, frame)
    lap("signals, segments, health, stage")
    results = fire_triggers(defs, frame)
    lap("triggers")
    fired = firings(defs, frame, results)
    changes = advance_episodes(
        open_episodes=prior["open"],
        last_resolved={},
        firings=fired,
        cleared=cleared(frame, results, prior["open"].keys()),
        cooldown_days={t.id: t.cooldown_days for t in defs.triggers.triggers},
        now=now,
    )
    lap("episodes")
    profiles = dict(zip(frame.accounts, frame.rows, strict=True))
    pending = [e for e in changes.held if e.decision.get("status") not in FINAL]
    decisions = decide(
        defs,
        episodes=[*changes.opened, *pending],
        profiles=profiles,
        open_pairs={(e.account, e.trigger_id) for e in (*changes.opened, *changes.held)},
        suppressed_by={},
        recent=RecentActions.from_episodes(prior["open"].values(), defs.routing, now),
        now=now,
    )
    lap("decisions")
    episodes = [
        replace(e, decision=decisions[e.key].as_dict()) if e.key in decisions else e
        for e in (*changes.opened, *changes.held)
    ]
    applied = prior["applied"]
    intents = [
        i
        for ep in episodes
        if ep.decision.get("status") == "actioned"
        for i in intents_for(
            ep,
            Decision.from_dict(ep.decision),
            profiles[ep.account],
            defs,
            skip=lambda kind, key: action_key("hubspot", kind, key) in applied,
        )
    ]
    lap("plays")
    wanted = {
        a: {crm_f: p.get(f) for crm_f, f in defs.writeback.account_fields.items()}
        for a, p in profiles.items()
    }
    plan = plan_writes(
        crm="hubspot", intents=intents, fields=wanted, current=prior["current"], applied=applied
    )
    lap("plan")
    return {
        "stages": stages,
        "seconds": round(sum(stages.values()), 3),
        "episodes": len(changes.opened),
        "actioned": sum(1 for d in decisions.values() if d.status == "actioned"),
        "ops": len(plan.ops),
        "frame": frame,
        "results": results,
        "after": {
            "open": {(e.account, e.trigger_id): e for e in episodes},
            "current": _written(plan, prior["current"]),
            "applied": applied | {o.op_key for o in plan.ops},
        },
    }


def _written(plan: Any, before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the CRM holds once the plan's field updates are applied over what it held."""
    after = dict(before)
    for o in plan.ops:
        if o.action is WriteAction.UPDATE_FIELDS:
            after[o.target] = {**before.get(o.target, {}), **o.values}
    return after


def rule_engine_text(text: str, thresholds: dict[str, float]) -> str:
    """A trigger condition in rule-engine's grammar, thresholds as literals."""
    out = re.sub(r"\bis not None\b", "!= null", text)
    out = re.sub(r"\bis None\b", "== null", out)
    for name, value in thresholds.items():
        out = re.sub(rf"\b{name}\b", repr(float(value)), out)
    return out


def compare_rule_engine(defs: Definitions, frame: Any, results: Any, sample: int) -> dict[str, Any]:
    """The same conditions per record with rule-engine, on `sample` derived profiles."""
    import rule_engine

    triggers = [t for t in defs.triggers.triggers if t.enabled]
    rules = [rule_engine.Rule(rule_engine_text(t.when, dict(t.thresholds))) for t in triggers]
    names = sorted(set().union(*(defs.trigger_conditions[t.id].names for t in triggers)))
    rows = [{k: r.get(k) for k in names} for r in frame.rows[:sample]]
    start = time.perf_counter()
    hits = [0] * len(rules)
    for row in rows:
        for k, rule in enumerate(rules):
            try:
                if rule.matches(row):
                    hits[k] += 1
            except rule_engine.errors.EvaluationError:
                pass  # null in a comparison: the condition does not hold
    theirs = time.perf_counter() - start
    n = len(frame)
    start = time.perf_counter()
    fire_triggers(defs, frame)
    ours = time.perf_counter() - start
    # Agreement on the triggers whose thresholds do not vary by segment.
    plain = [k for k, t in enumerate(triggers) if not t.segments]
    by_id = {r.trigger.id: r for r in results}
    agree = all(
        hits[k] == int(np.count_nonzero(by_id[triggers[k].id].fired[:sample])) for k in plain
    )
    return {
        "conditions": len(rules),
        "rule_engine_records_per_second": round(len(rows) / theirs),
        "ours_records_per_second": round(n / ours),
        "ratio": round((n / ours) / (len(rows) / theirs), 1),
        "agree_on_unsegmented_triggers": agree,
    }


def _worker(
    n: int, seed: int, *, shards: list[tuple[int, int]], barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    """One Celery worker: its shards' inputs are generated first (in the product they are read
    from the store), then it evaluates them one after another, twice, in step with the others.
    Only each shard's outcome (its `after`) is kept between shards, as the store keeps it.
    The worker is warm, as a long-lived one is: it has evaluated other accounts before (its
    expressions and templates are compiled once per process and definitions)."""
    defs = load_definitions(shipped_mappings())
    run_library(defs, synthetic(200, seed + 1))
    inputs = [synthetic(n, seed, start=a, stop=b) for a, b in shards]
    gc.collect()
    seconds, afters, episodes, ops = [], [], 0, 0
    for run in ("first", "second"):
        barrier.wait()
        start = time.perf_counter()
        for k, accounts in enumerate(inputs):
            with batch_gc():
                result = run_library(defs, accounts, before=afters[k] if run == "second" else None)
            if run == "first":
                afters.append(result["after"])
                episodes += result["episodes"]
                ops += result["ops"]
            del result
        seconds.append(time.perf_counter() - start)
    results.put(
        {
            "first": seconds[0],
            "second": seconds[1],
            "episodes": episodes,
            "ops": ops,
            "rss_mb": round(peak_rss_mb()),
        }
    )


def _result(results: Any, procs: list[Any]) -> dict[str, Any]:
    """The next worker's figures; a worker that died ends the benchmark instead of a wait."""
    import queue

    while True:
        try:
            got: dict[str, Any] = results.get(timeout=1)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                for proc in procs:
                    proc.kill()
                raise SystemExit(f"a worker failed (exit code {dead[0]})") from None
        else:
            return got


def sharded(n: int, seed: int, workers: int, shard_size: int) -> dict[str, Any]:
    """The evaluation as the product runs it: accounts split into shards of `shard_size` (the
    setting's default), one task each, over `workers` processes (this machine's cores). Wall
    time is the slowest worker's; they start together."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    bounds = [(a, min(a + shard_size, n)) for a in range(0, n, shard_size)]
    procs = [
        ctx.Process(
            target=_worker,
            args=(n, seed),
            kwargs={"shards": bounds[k::workers], "barrier": barrier, "results": results},
        )
        for k in range(workers)
    ]
    for proc in procs:
        proc.start()
    got = [_result(results, procs) for _ in procs]
    for proc in procs:
        proc.join()
    return {
        "workers": workers,
        "shards": len(bounds),
        "shard_size": shard_size,
        "first_run_seconds": round(max(g["first"] for g in got), 3),
        "second_run_seconds": round(max(g["second"] for g in got), 3),
        "episodes": sum(g["episodes"] for g in got),
        "ops": sum(g["ops"] for g in got),
        "peak_rss_mb_per_worker": max(g["rss_mb"] for g in got),
        "peak_rss_mb_all_workers": sum(g["rss_mb"] for g in got),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rule-engine-sample", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="processes for the sharded run")
    parser.add_argument(
        "--shard-size",
        type=int,
        default=Settings.model_fields["shard_size"].default,
        help="accounts per shard (default: the setting's)",
    )
    args = parser.parse_args(argv)
    par: dict[str, Any] = {}
    if args.workers > 1:
        print(
            f"as the product runs it: shards of {args.shard_size:,} accounts over "
            f"{args.workers} worker processes (this machine's cores) ...",
            flush=True,
        )
        par = sharded(args.accounts, args.seed, args.workers, args.shard_size)
        print(
            f"  {par['shards']} shards: first run {par['first_run_seconds']:.3f} s, second run "
            f"{par['second_run_seconds']:.3f} s (slowest worker; target <= 3 s at 100k), "
            f"episodes {par['episodes']:,}, plan ops {par['ops']:,}"
        )
        print(
            f"  peak RSS {par['peak_rss_mb_per_worker']} MB per worker, "
            f"{par['peak_rss_mb_all_workers']} MB all workers (target <= 1 GB)"
        )
        print("the same in one process, as one shard:", flush=True)
    defs = load_definitions(shipped_mappings())
    print(f"generating {args.accounts:,} synthetic accounts ...", flush=True)
    accounts = synthetic(args.accounts, args.seed)
    gc.collect()
    before = peak_rss_mb()
    print("evaluating the shipped library, first run (every condition is new) ...", flush=True)
    with batch_gc():
        result = run_library(defs, accounts)
    for stage, seconds in result["stages"].items():
        print(f"  {stage:<36} {seconds:7.3f} s")
    print(f"  {'total':<36} {result['seconds']:7.3f} s   (all accounts as one shard)")
    print(
        f"  episodes {result['episodes']:,}, actioned {result['actioned']:,}, "
        f"plan ops {result['ops']:,}"
    )
    print(f"  peak RSS {peak_rss_mb():.0f} MB (after generating the input: {before:.0f} MB)")
    print("second run on the same data (episodes open, CRM up to date) ...", flush=True)
    with batch_gc():
        again = run_library(defs, accounts, before=result["after"])
    for stage, seconds in again["stages"].items():
        print(f"  {stage:<36} {seconds:7.3f} s")
    print(
        f"  {'total':<36} {again['seconds']:7.3f} s   new episodes {again['episodes']:,}, "
        f"plan ops {again['ops']:,}"
    )
    print(f"rule-engine on {min(args.rule_engine_sample, args.accounts):,} records ...", flush=True)
    cmp = compare_rule_engine(defs, result["frame"], result["results"], args.rule_engine_sample)
    print(
        f"  {cmp['conditions']} conditions: rule-engine {cmp['rule_engine_records_per_second']:,} "
        f"records/s, signalplay {cmp['ours_records_per_second']:,} records/s: "
        f"{cmp['ratio']}x (target >= 20x); agree: {cmp['agree_on_unsegmented_triggers']}"
    )
    summary = {k: v for k, v in result.items() if k not in ("frame", "results", "after")}
    second = {k: v for k, v in again.items() if k not in ("frame", "results", "after")}
    return {
        **summary,
        "second_run": second,
        "peak_rss_mb": round(peak_rss_mb()),
        "rule_engine": cmp,
        "sharded": par,
    }


if __name__ == "__main__":
    main()
