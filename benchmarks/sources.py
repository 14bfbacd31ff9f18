"""Benchmark: pull N Zendesk tickets and N Stripe invoices from stand-ins that enforce the real
rate limits (Zendesk incremental exports: 10 requests a minute; Stripe: 25 requests a second per
endpoint), through the real connectors, and print the achieved request rate against the allowed
one (target: >= 90%) and the records lost (target: 0).

    python benchmarks/sources.py                       # 100k tickets and 100k invoices
    python benchmarks/sources.py --records 5000 --real-time

Stripe runs in real time, its stand-in in a process of its own. Zendesk's 100 export pages at
10 a minute are 10 minutes of API time: by default the stand-in and the connector share a
simulated clock (each wait moves it, nothing sleeps), which checks the pacing exactly;
`--real-time` waits them out. The achieved rate is the requests over the time until the last
one's window closes (a first burst of a window's worth does not count as speed).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from signalplay.connectors._ratelimit import RateLimitSettings, Window
from signalplay.connectors.stripe import StripeConnector, StripeSettings
from signalplay.connectors.zendesk import ZendeskConnector, ZendeskSettings
from signalplay.sandbox.server import serve
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox

KEY = "zd-bench"
STRIPE_ALLOWED = 25.0  # requests per second per endpoint
ZENDESK_ALLOWED = 10 / 60  # export requests per second


class SimulatedClock:
    """Unix time that moves only when someone waits."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def zendesk(n: int, *, real_time: bool) -> dict[str, Any]:
    start = time.time() - 7 * 86_400
    clock: Any = time.time if real_time else SimulatedClock(start)
    seed_clock = SimulatedClock(start)
    sandbox = ZendeskSandbox(email="bench@vendor.example", token=KEY, clock=seed_clock)
    org = sandbox.add_organization("Acme", external_id="acme.example")
    for i in range(n):
        sandbox.add_ticket(org, subject=f"T{i}", priority="urgent" if i % 50 == 0 else "normal")
        if i % 500 == 0:
            seed_clock.now += 1
    sandbox.clock = clock
    if not real_time:
        clock.now = time.time()
    settings = ZendeskSettings(
        email="bench@vendor.example",
        api_token=SecretStr(KEY),
        start_time=int(start) - 60,
        export_rate=RateLimitSettings(windows=(Window(limit=10, seconds=60),), margin_seconds=0.1),
        base_url="http://placeholder",
    )
    with serve(sandbox) as server:
        settings = settings.model_copy(update={"base_url": server.url})
        conn = ZendeskConnector(settings, sleep=None if real_time else clock.sleep)
        began, wall = clock(), time.perf_counter()
        ids: set[str] = set()
        total = 0
        for page in conn.read("tickets", cursor=None, until=datetime.now(UTC)):
            total += len(page.records)
            ids.update(r.record_id for r in page.records)
        elapsed = clock() - began
        conn.close()
    # N requests under "10 a minute" take at least the minutes their windows span: the rate is
    # the requests over the time until the last one's window closes.
    achieved = conn.requests / (elapsed + 60)
    return {
        "records": n,
        "read": total,
        "distinct": len(ids),
        "lost": n - len(ids),
        "requests": conn.requests,
        "429s": sandbox.rate_limited,
        "api_seconds": round(elapsed, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "rate_per_minute": round(achieved * 60, 2),
        "share_of_allowed": round(achieved / ZENDESK_ALLOWED, 3),
        "clock": "real" if real_time else "simulated",
    }


def _stripe_server(n: int, ready: Any, done: Any, report: Any) -> None:
    """The Stripe stand-in in its own process (as the real API is not on our CPU): seed N
    invoices, serve until told to stop, then report its 429 count."""
    sandbox = StripeSandbox(api_key="sk_test_bench", rate=STRIPE_ALLOWED)
    customer = sandbox.add_customer(name="Acme")
    for _ in range(n):
        sandbox.add_invoice(customer, amount=10_000)
    with serve(sandbox) as server:
        ready.put(server.url)
        done.wait()
    report.put(sandbox.rate_limited)


def stripe(n: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready, report, done = context.Queue(), context.Queue(), context.Event()
    server = context.Process(target=_stripe_server, args=(n, ready, done, report), daemon=True)
    started = time.perf_counter()
    server.start()
    url = ready.get(timeout=600)
    seeded = time.perf_counter() - started
    settings = StripeSettings(
        api_key=SecretStr("sk_test_bench"),
        base_url=url,
        rate_limit=RateLimitSettings(windows=(Window(limit=24, seconds=1),), margin_seconds=0.02),
    )
    conn = StripeConnector(settings)
    began = time.perf_counter()
    ids: set[str] = set()
    total = 0
    try:
        for page in conn.read("invoices", cursor=None, until=datetime.now(UTC)):
            total += len(page.records)
            ids.update(r.record_id for r in page.records)
        elapsed = time.perf_counter() - began
    finally:
        conn.close()
        done.set()
    limited = report.get(timeout=60)
    server.join(timeout=10)
    achieved = conn.requests / (elapsed + 1)  # the same for a per-second window
    return {
        "records": n,
        "read": total,
        "distinct": len(ids),
        "lost": n - len(ids),
        "requests": conn.requests,
        "429s": limited,
        "seconds": round(elapsed, 1),
        "seed_seconds": round(seeded, 1),
        "rate_per_second": round(achieved, 2),
        "share_of_allowed": round(achieved / STRIPE_ALLOWED, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--real-time", action="store_true", help="wait out Zendesk's minutes")
    args = parser.parse_args(argv)
    print(f"Zendesk: {args.records:,} tickets, incremental export at 10 requests a minute ...")
    z = zendesk(args.records, real_time=args.real_time)
    print(
        f"  {z['requests']} requests, {z['429s']} 429s, {z['rate_per_minute']}/min achieved of "
        f"10/min allowed ({z['share_of_allowed']:.0%}; target >= 90%) over {z['api_seconds']} s "
        f"of {z['clock']} API time ({z['wall_seconds']} s wall); {z['distinct']:,} distinct of "
        f"{z['records']:,}: {z['lost']} lost"
    )
    print(f"Stripe: {args.records:,} invoices, list at 25 requests a second per endpoint ...")
    s = stripe(args.records)
    print(
        f"  {s['requests']} requests, {s['429s']} 429s, {s['rate_per_second']}/s achieved of "
        f"25/s allowed ({s['share_of_allowed']:.0%}; target >= 90%) in {s['seconds']} s; "
        f"{s['distinct']:,} distinct of {s['records']:,}: {s['lost']} lost"
    )
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {kb / 1024:.0f} MB")
    return {"zendesk": z, "stripe": s}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
