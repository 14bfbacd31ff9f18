"""Benchmark: the evaluator on Celery with Redis, 1 worker against 2, on this machine.

    python benchmarks/scaleout.py                       # 20k accounts, shards of 2,500
    python benchmarks/scaleout.py --accounts 40000 --shard-size 2500

The synthetic book of `benchmarks/evaluate.py` is stored as profile facts in PostgreSQL (a
schema of its own); real workers (`celery -A celery_app worker --pool solo`) on the machine's
Redis take one `evaluate_shard` task per shard (derive, evaluate, decide, plan, save the part)
and `merge_plan` merges the parts, exactly as a scheduled sync does after its pull. It prints
the wall time from dispatch to the merged plan with 1 and with 2 workers, the speed-up (target
>= 1.7x on 2 cores), and each worker's peak memory; run with twice the accounts at the same
shard size to see that memory per worker follows the shard, not the book.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from evaluate import TODAY, synthetic  # noqa: E402 - the sibling benchmark's book

from signalplay.jobs.scaffold import init_project  # noqa: E402
from signalplay.models import Fact  # noqa: E402
from signalplay.store import Store  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER = "redis://127.0.0.1:6379/14"
QUEUE = "signalplay-bench"


def prepare(accounts: int, shard_size: int, seed: int) -> tuple[Path, str, str, list[list[str]]]:
    """A project whose store (a fresh PostgreSQL schema) holds the synthetic facts."""
    schema = f"sp_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = f"{PG}?options=-csearch_path%3D{schema}"
    root = Path(tempfile.mkdtemp(prefix="sp-scaleout-")) / "project"
    init_project(root, crm_host="http://127.0.0.1:9")
    config = root / "signalplay.yaml"
    config.write_text(
        config.read_text().replace("sqlite:///signalplay.db", url) + f"shard_size: {shard_size}\n"
    )
    store = Store(url)
    store.migrate()
    book = synthetic(accounts, seed)
    facts = {
        key: {
            name: Fact(value=value, source="bench", stream="synthetic", record_id=key)
            for name, value in values.items()
        }
        for key, values in book
    }
    store.replace_facts(facts)
    run_id = store.start_run("bench")
    store.close()
    keys = sorted(facts)
    shards = [keys[i : i + shard_size] for i in range(0, len(keys), shard_size)]
    return root, schema, run_id, shards


def _worker(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "--pool",
            "solo",
            "-n",
            f"{name}@%h",
            "-Q",
            QUEUE,
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _merge_seconds(root: Path, run_id: str) -> float:
    """How long the merge (the serial part after the shards) takes: merged again, here."""
    from signalplay import jobs
    from signalplay.settings import load_project

    ctx = jobs.open_context(load_project(root))
    try:
        start = time.perf_counter()
        jobs.merge_plan(ctx, run_id)
        return round(time.perf_counter() - start, 2)
    finally:
        ctx.close()


def measure(workers: int, accounts: int, shard_size: int, seed: int) -> dict[str, Any]:
    """Prepare a store, start `workers` workers, time the shards and the merge."""
    root, schema, run_id, shards = prepare(accounts, shard_size, seed)
    env = {
        **os.environ,
        "SIGNALPLAY_BROKER": BROKER,
        "SIGNALPLAY_AS_OF": f"{TODAY.isoformat()}T15:00:00+00:00",
    }
    os.environ.update({k: env[k] for k in ("SIGNALPLAY_BROKER", "SIGNALPLAY_AS_OF")})
    sys.modules.pop("celery_app", None)
    sys.modules.pop("signalplay.worker", None)
    from celery import chord

    celery_app = importlib.import_module("signalplay.worker")

    procs = [_worker(f"bench{k}", env) for k in range(workers)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = celery_app.app.control.ping(timeout=1.0) or []
            if len({n for r in replies for n in r if n.startswith("bench")}) >= workers:
                break
        celery_app.app.control.purge()
        started = time.perf_counter()
        header = [
            celery_app.evaluate_shard.si(str(root), run_id, i, part).set(queue=QUEUE)
            for i, part in enumerate(shards)
        ]
        plan_id = chord(header)(celery_app.merge_plan.si(str(root), run_id).set(queue=QUEUE)).get(
            timeout=3600
        )
        seconds = time.perf_counter() - started
        peaks = [round(_peak_mb(p.pid)) for p in procs]
        merge = _merge_seconds(root, run_id)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        admin = sa.create_engine(PG)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return {
        "workers": workers,
        "accounts": accounts,
        "shards": len(shards),
        "seconds": round(seconds, 2),
        "merge_seconds": merge,
        "plan": plan_id,
        "peak_mb_per_worker": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=2_500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale-check", action="store_true", help="also 2x accounts, 2 workers")
    args = parser.parse_args()
    results = []
    for workers in (1, 2):
        print(f"{workers} worker(s), {args.accounts} accounts ...", flush=True)
        results.append(measure(workers, args.accounts, args.shard_size, args.seed))
        print(f"  {results[-1]}", flush=True)
    one, two = results
    print(f"speed-up with 2 workers: {one['seconds'] / two['seconds']:.2f}x (target >= 1.7x)")
    if args.scale_check:
        big = measure(2, 2 * args.accounts, args.shard_size, args.seed)
        print(f"  {big}")
        print(
            f"peak memory per worker at {args.accounts} accounts: {max(two['peak_mb_per_worker'])} "
            f"MB; at {2 * args.accounts}: {max(big['peak_mb_per_worker'])} MB "
            f"(shards of {args.shard_size})"
        )


if __name__ == "__main__":
    main()
