"""Mapping throughput: N raw records of mixed streams (usage 70%, tickets 15%, invoices 10%,
contacts 4%, companies 1%) through the shipped mapping files into per-account profile facts.

Records are generated lazily and never held, so peak memory shows what mapping keeps: one
accumulator per account and field (and day, in a backfill). `--scale` runs several sizes in fresh
processes and prints peak RSS for each: once every account has its fields (sooner with fewer
accounts: try `--accounts 2000`), memory stays flat however many records follow.

    python benchmarks/map_profiles.py                 # 1,000,000 records, 10,000 accounts
    python benchmarks/map_profiles.py --scale         # 250k, 500k and 1M in fresh processes
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta

from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.models import SourceRecord
from signalplay.profile.identity import IdentityMap
from signalplay.profile.mapping import StreamMapper

TODAY = date(2026, 11, 18)
MIX = (("usage_daily", 70), ("tickets", 15), ("invoices", 10), ("contacts", 4), ("companies", 1))


def _record(stream: str, i: int, acct: int, rng: random.Random) -> dict[str, object]:
    day = (TODAY - timedelta(days=rng.randrange(120))).isoformat()
    if stream == "usage_daily":
        users = rng.randrange(200)
        return {
            "id": f"u{i}",
            "date": day,
            "domain": f"acct{acct}.example",
            "active_users": users,
            "events": users * 20,
            "key_feature_uses": rng.randrange(5),
        }
    if stream == "tickets":
        return {
            "id": i,
            "organization_id": 900_000 + acct,
            "created_at": day,
            "priority": rng.choice(["low", "normal", "high", "urgent"]),
            "status": rng.choice(["open", "solved", "pending"]),
            "reopens": rng.randrange(3),
            "csat": rng.choice(["", 3, 4, 5]),
        }
    if stream == "invoices":
        return {
            "id": f"in_{i}",
            "customer": f"cus_{acct}",
            "created": day,
            "status": rng.choice(["paid", "paid", "open"]),
            "amount_due": rng.randrange(10**6),
            "attempt_count": rng.randrange(3),
        }
    if stream == "contacts":
        return {
            "id": f"c{i}",
            "company_id": str(acct),
            "email": f"P{i}@acct{acct}.example",
            "firstname": "Ada",
            "lastname": "Ng",
            "jobtitle": rng.choice(["CFO", "VP Ops", "IT"]),
            "cs_role": rng.choice(["admin", "champion", ""]),
        }
    return {
        "id": str(acct),
        "name": f"Acct {acct}",
        "domain": f"acct{acct}.example",
        "hubspot_owner_id": "101",
        "cs_tier": "smb",
        "cs_arr": "1000",
        "cs_seats": "10",
        "cs_contract_start": "2025-01-01",
        "cs_renewal_date": "2027-01-01",
        "stripe_customer_id": f"cus_{acct}",
        "zendesk_org_id": str(900_000 + acct),
    }


def records(n: int, accounts: int, seed: int) -> Iterator[SourceRecord]:
    """`n` records of the mix, built without validation (the benchmark measures mapping)."""
    rng = random.Random(seed)
    streams = [s for s, w in MIX for _ in range(w)]
    for i in range(n):
        stream = streams[i % len(streams)]
        acct = rng.randrange(accounts)
        yield SourceRecord.model_construct(
            source="bench",
            stream=stream,
            record_id=str(i),
            data=_record(stream, i, acct, rng),
            updated_at=None,
        )


def run(n: int, accounts: int, seed: int) -> dict[str, float]:
    defs = load_definitions(shipped_mappings())
    identity = IdentityMap()
    for a in range(accounts):
        identity.add("crm_id", str(a), str(a))
        identity.add("domain", f"acct{a}.example", str(a))
        identity.add("stripe_customer_id", f"cus_{a}", str(a))
        identity.add("zendesk_org_id", str(900_000 + a), str(a))
    mappers = {m.spec.stream: StreamMapper(m, identity, days=[TODAY]) for m in defs.mappings}
    generated = list(records(min(n, 50_000), accounts, seed + 1))  # warm caches, then discard
    for r in generated:
        mappers[r.stream].add(r)
    mappers = {m.spec.stream: StreamMapper(m, identity, days=[TODAY]) for m in defs.mappings}
    del generated
    gen_seconds = _generation_seconds(n, accounts, seed)
    start = time.perf_counter()
    for r in records(n, accounts, seed):
        mappers[r.stream].add(r)
    facts = [m.facts(accounts=[str(a) for a in range(accounts)]) for m in mappers.values()]
    total = time.perf_counter() - start
    mapping = max(total - gen_seconds, 1e-9)
    return {
        "records": n,
        "accounts": accounts,
        "seconds_total": round(total, 2),
        "seconds_generating": round(gen_seconds, 2),
        "seconds_mapping": round(mapping, 2),
        "records_per_second": round(n / mapping),
        "facts": sum(len(f) for part in facts for f in part.values()),
        "quarantined": sum(len(m.report.quarantined) for m in mappers.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _generation_seconds(n: int, accounts: int, seed: int) -> float:
    """How long generating the records alone takes, to subtract it from the mapping time."""
    start = time.perf_counter()
    for _ in records(n, accounts, seed):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", action="store_true", help="250k, 500k, 1M in fresh processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.scale:
        result = run(args.records, args.accounts, args.seed)
        print(json.dumps(result) if args.json else _line(result))
        return
    rows = []
    for n in (250_000, 500_000, 1_000_000):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--records",
                str(n),
                "--accounts",
                str(args.accounts),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout))
        print(_line(rows[-1]), flush=True)
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"peak RSS at 1M / at 250k records: {growth:.2f}x (flat is 1.00x)")


def _line(r: dict[str, float]) -> str:
    return (
        f"{r['records']:>9,} records, {r['accounts']:,} accounts: mapping {r['seconds_mapping']} s "
        f"= {r['records_per_second']:,} records/s (one core; generating the records took "
        f"{r['seconds_generating']} s more), peak RSS {r['peak_rss_mb']} MB, "
        f"{r['facts']:,} facts, {r['quarantined']} quarantined"
    )


if __name__ == "__main__":
    main()
