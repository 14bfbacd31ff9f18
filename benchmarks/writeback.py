"""Benchmark: write-back of N changed accounts (4 account fields and one task each) to the HubSpot
and the Salesforce stand-ins through signalplay's plan → apply path (real clients, the SQLite
ledger, the rate budget set to the stand-in's limits), then a second run that reconciles with the
CRM and writes nothing. In the same run, drt-core (Reverse ETL, from PyPI) syncs the same field
updates to a HubSpot stand-in, and its requests and wall time are printed beside ours.

    python benchmarks/writeback.py                     # 10k accounts (target: the batch-cap
                                                       # minimum of requests; a second run: 0)
    python benchmarks/writeback.py --accounts 500 --drt-accounts 100

drt's HubSpot destination has its API base URL as a module constant; the benchmark points it at
the stand-in (there is no setting for it). It writes one record per request, paced to 9/s by
default: the benchmark switches its pacing off and lifts the stand-in's burst limit for it, and
prints the floor its request count implies under HubSpot's Pro limit (190 per 10 s).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from signalplay import jobs
from signalplay.jobs.scaffold import init_project, salesforce_user_id
from signalplay.models import RecordRef
from signalplay.plays.actions import ActionIntent
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import SalesforceSandbox, tls
from signalplay.sandbox.server import serve
from signalplay.settings import load_project
from signalplay.writeback.plan import plan_writes

TOKEN = "bench-token"  # noqa: S105 - the stand-ins' own
WRITES = ("POST", "PATCH", "PUT", "DELETE")
HUBSPOT_PRO = (190, 10.0)  # requests per 10 s: the stand-in's limit and the budget's window
CAP = {"hubspot": 100, "salesforce": 200}


def _fields(rng: random.Random, crm: str) -> dict[str, Any]:
    score = rng.randint(5, 100)
    band = "green" if score >= 70 else "yellow" if score >= 45 else "red"
    values = {
        "health_score": score,
        "health_band": band,
        "stage": rng.choice(["onboarding", "adoption", "value_proof", "renewal", "expansion"]),
        "health_drivers": f"Health {score} ({rng.randint(-20, 20):+d} in 7d): usage trend",
    }
    names = {
        "hubspot": {
            "health_score": "signalplay_health_score",
            "health_band": "signalplay_health_band",
            "stage": "signalplay_stage",
            "health_drivers": "signalplay_health_drivers",
        },
        "salesforce": {
            "health_score": "Signalplay_Health_Score__c",
            "health_band": "Signalplay_Health_Band__c",
            "stage": "Signalplay_Stage__c",
            "health_drivers": "Signalplay_Health_Drivers__c",
        },
    }[crm]
    return {names[k]: v for k, v in values.items()}


def _intent(i: int, account: str, owner: str) -> ActionIntent:
    key = f"bench-{i}:{account}:call"
    return ActionIntent(
        key=key,
        kind="task",
        account=account,
        episode_keys=(key.rsplit(":", 1)[0],),
        trigger_ids=("adoption_drop",),
        play_id="usage_review",
        action_id="call",
        subject=f"Usage review: account {i}",
        body="Weekly active users fell 35% week over week.",
        priority="high",
        task_type="TODO",
        owner_id=owner,
        due_at=(datetime(2026, 11, 30, 15, tzinfo=UTC) + timedelta(hours=i % 48)).isoformat(),
        contact_ids=(),
    )


def _seed(crm: str, sandbox: Any, n: int) -> tuple[list[str], str]:
    if crm == "hubspot":
        sandbox.seed_owner(owner_id="101", user_id=5001, email="o@v.example", first="A", last="M")
        ids = [
            sandbox.seed_object(
                "companies", {"name": f"Acct {i}", "domain": f"acct{i}.example"}, unique_by="domain"
            )
            for i in range(n)
        ]
        return [str(i) for i in ids], "101"
    owner = salesforce_user_id("101")
    sandbox.seed("User", {"Id": owner, "LastName": "Owner", "IsActive": True})
    return [sandbox.seed("Account", {"Name": f"Acct {i}"}) for i in range(n)], owner


def _writes(crm: str, sandbox: Any, since: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in sandbox.requests[since:]:
        if r.method in WRITES:
            where = r.template if crm == "hubspot" else r.path
            out[f"{r.method} {where}"] = out.get(f"{r.method} {where}", 0) + 1
    return out


def run_crm(crm: str, n: int, seed: int, workdir: Path) -> dict[str, Any]:
    """Two runs of N changed accounts against one CRM stand-in; requests and seconds each."""
    root = workdir / crm
    rng = random.Random(seed)
    if crm == "hubspot":
        sandbox: Any = HubSpotSandbox(token=TOKEN, rate_limit=HUBSPOT_PRO[0])
        served = serve(sandbox)
        windows = [{"limit": HUBSPOT_PRO[0], "seconds": HUBSPOT_PRO[1]}]
    else:
        sandbox = SalesforceSandbox(token=TOKEN, daily_max=100_000)
        (root / ".signalplay").mkdir(parents=True)
        served = serve(sandbox, tls=tls(root / ".signalplay")[0])  # where ca_bundle points
        windows = [{"limit": 100_000, "seconds": 86_400}]
    accounts, owner = _seed(crm, sandbox, n)
    with served as server:
        init_project(root, crm=crm, crm_host=server.url)
        project = load_project(root)
        where = "instance_url" if crm == "salesforce" else "host"
        block = project.settings.crm.model_copy(
            update={
                where: server.url,
                "access_token": SecretStr(TOKEN),
                "rate_limit": {"windows": windows},
            }
        )
        ctx = jobs.open_context(
            project, crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",))
        )
        try:
            jobs.crm_setup(ctx)
            wanted = {a: _fields(rng, crm) for a in accounts}
            intents = [_intent(i, a, owner) for i, a in enumerate(accounts)]

            def one_run(current: dict[str, dict[str, str | None]]) -> dict[str, Any]:
                mark = len(sandbox.requests)
                started = time.perf_counter()
                plan = plan_writes(
                    crm=crm,
                    intents=intents,
                    fields=wanted,
                    current=current,
                    applied=ctx.store.applied_keys(),
                )
                run_id = ctx.store.start_run("bench")
                ctx.store.record_planned(run_id, crm, plan.ops)  # the ledger, as `plan` does
                ctx.store.save_plan(run_id, plan.ops)
                result = jobs.apply(ctx, plan.ops).to_json()
                ctx.store.finish_run(run_id, status="ok", summary=result)
                seconds = time.perf_counter() - started
                return {
                    "ops": len(plan.ops),
                    "result": result,
                    "seconds": round(seconds, 2),
                    "write_requests": _writes(crm, sandbox, mark),
                    "all_requests": len(sandbox.requests) - mark,
                }

            first = one_run({})
            # The second run reconciles with the CRM: read what it holds now, then plan.
            mark = len(sandbox.requests)
            started = time.perf_counter()
            refs = [RecordRef(object_type="companies", record_id=a) for a in accounts]
            now = ctx.crm.fetch_current(refs, fields=list(next(iter(wanted.values()))))
            current = {ref.record_id: values for ref, values in now.items()}
            read_seconds = time.perf_counter() - started
            reads = len(sandbox.requests) - mark
            second = one_run(current)
            second["seconds"] = round(second["seconds"] + read_seconds, 2)
            second["read_requests"] = reads
        finally:
            ctx.close()
    cap = CAP[crm]
    minimum = 2 * math.ceil(n / cap) + (math.ceil(n / cap) if crm == "hubspot" else 0)
    return {"crm": crm, "accounts": n, "first": first, "second": second, "minimum": minimum}


def run_drt(n: int, seed: int) -> dict[str, Any]:
    """drt-core's HubSpot destination syncing the same 4 fields of N companies."""
    try:
        import drt.destinations.hubspot as drt_hubspot
        from drt.config.base import BearerAuth, RateLimitConfig
        from drt.config.models import HubSpotDestinationConfig, SyncOptions
    except ImportError:
        return {"skipped": "drt-core is not installed (pip install drt-core)"}
    rng = random.Random(seed)
    sandbox = HubSpotSandbox(token=TOKEN, rate_limit=10**9)  # unthrottled: see the docstring
    accounts, _ = _seed("hubspot", sandbox, n)
    for name, ptype, field_type in (
        ("signalplay_health_score", "number", "number"),
        ("signalplay_health_band", "string", "text"),
        ("signalplay_stage", "string", "text"),
        ("signalplay_health_drivers", "string", "textarea"),
    ):
        sandbox.seed_property("companies", name, ptype=ptype, field_type=field_type)
    rows = [{"hs_object_id": a, **_fields(rng, "hubspot")} for a in accounts]
    for row in rows:
        row["signalplay_health_score"] = str(row["signalplay_health_score"])
    config = HubSpotDestinationConfig(
        type="hubspot",
        object_type="companies",
        id_property="hs_object_id",
        auth=BearerAuth(type="bearer", token=TOKEN),
    )
    options = SyncOptions(
        match_policy="update_only", rate_limit=RateLimitConfig(requests_per_second=0)
    )
    with serve(sandbox) as server:
        drt_hubspot._HUBSPOT_API = f"{server.url}/crm/v3/objects"  # no setting for the base URL
        started = time.perf_counter()
        result = drt_hubspot.HubSpotDestination().load(rows, config, options)
        seconds = time.perf_counter() - started
    requests = len(sandbox.requests)
    return {
        "accounts": n,
        "success": result.success,
        "failed": result.failed,
        "requests": requests,
        "seconds": round(seconds, 2),
        "floor_at_hubspot_pro_seconds": round(requests / (HUBSPOT_PRO[0] / HUBSPOT_PRO[1]), 1),
    }


def _print_crm(r: dict[str, Any], say: Callable[[str], None]) -> None:
    first, second = r["first"], r["second"]
    writes = sum(first["write_requests"].values())
    say(
        f"{r['crm']}: {r['accounts']:,} changed accounts, {first['ops']:,} ops: "
        f"{writes} write requests (batch-cap minimum {r['minimum']}), "
        f"{first['all_requests']} requests in all, {first['seconds']} s; "
        f"failed {first['result']['failed']}"
    )
    for endpoint, count in sorted(first["write_requests"].items()):
        say(f"    {count:5} {endpoint}")
    if r["crm"] == "hubspot":
        say(
            f"    (the rate budget held it to {HUBSPOT_PRO[0]} requests per {HUBSPOT_PRO[1]:.0f} s)"
        )
    say(
        f"  second run: {second['read_requests']} read requests to reconcile, "
        f"{second['ops']} ops, {sum(second['write_requests'].values())} write requests, "
        f"{second['seconds']} s"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--drt-accounts", type=int, default=None, help="default: --accounts")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for crm in ("hubspot", "salesforce"):
            print(
                f"writing {args.accounts:,} changed accounts to the {crm} stand-in ...", flush=True
            )
            out[crm] = run_crm(crm, args.accounts, args.seed, Path(tmp))
            _print_crm(out[crm], print)
    n = args.drt_accounts or args.accounts
    print(
        f"drt-core: the same field updates of {n:,} accounts to the HubSpot stand-in ...",
        flush=True,
    )
    out["drt"] = drt = run_drt(n, args.seed)
    if "skipped" in drt:
        print(f"  skipped: {drt['skipped']}")
    else:
        ours = out["hubspot"]["first"]["write_requests"]
        fields_ours = sum(v for k, v in ours.items() if "companies/batch/update" in k)
        print(
            f"  drt-core: {drt['requests']:,} requests for {drt['accounts']:,} accounts "
            f"({drt['success']:,} ok, {drt['failed']} failed) in {drt['seconds']} s unthrottled; "
            f"at HubSpot's Pro limit that is at least {drt['floor_at_hubspot_pro_seconds']} s"
        )
        print(
            f"  signalplay: {fields_ours} requests for the field updates of "
            f"{args.accounts:,} accounts (batch update, 100 per call)"
        )
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
