"""The chaos suite.

A whole sync (sources, CRM, webhook) against stand-ins that fail a seeded share of requests (429s
with Retry-After, 5xx, answers held past the client's timeout), one expired Salesforce session, and
the scheduled run killed with SIGKILL in the middle of its apply; then recovery runs. Per seed it
counts what must stay 0:

- `duplicates`: CRM tasks sharing one episode key;
- `lost_writes`: planned ops not applied after the recovery runs, applied ops the CRM (or the
  webhook receiver) does not hold, and changes a fault-free dry run would still plan;
- `lost_records`: source and CRM records a fault-free full pull finds that the chaos store
  does not hold.

The counts themselves, taken with the faults off, are `audit`'s. Imports: jobs, settings, demo,
scaffold, sandbox (an edge module, like the demo).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time as walltime
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from signalplay import jobs
from signalplay.demo.seed import generate, seed_sources
from signalplay.jobs.scaffold import init_project
from signalplay.sandbox.chaos import Chaos
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import SalesforceSandbox, tls
from signalplay.sandbox.server import serve
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.sandbox.zendesk import ZendeskSandbox
from signalplay.settings import load_project
from signalplay.store import Store
from signalplay.testing.audit import audit

TODAY = date(2026, 11, 18)  # a Wednesday
HANG_SECONDS = 1.5  # a held answer; every client here waits READ_TIMEOUT for it
READ_TIMEOUT = 1.0
RECOVERY_RUNS = 4  # at most; at least 2 (the second must find nothing left to do)
CONCURRENT_RUNS = 2  # started at once after the kill: the run lock keeps them apart
SECRETS = {
    "SIGNALPLAY_CRM__ACCESS_TOKEN": "pat-chaos-token",
    "SIGNALPLAY_CRM__CLIENT_SECRET": "chaos-client-secret",
    "SIGNALPLAY_SOURCES__BILLING__API_KEY": "sk_test_chaos",
    "SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN": "zd-chaos-token",
    "SIGNALPLAY_WEBHOOK__SECRET": "whsec-chaos",
}
CLIENT_ID = "signalplay-chaos"


@dataclass
class SeedResult:
    """What one seed's scenario found."""

    seed: int
    crm: str
    duplicates: int = 0
    lost_writes: int = 0
    lost_records: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    killed_after: str = ""  # the CRM write the scheduled run was killed after
    concurrent_exits: tuple[int, ...] = ()  # the exit codes of the runs started at once
    events_lost: int = 0  # planned events never delivered, or applied yet never received
    events_redelivered: int = 0  # an id delivered again (a receiver drops it by its id)
    runs: int = 0
    ops: int = 0
    records: int = 0
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The figures, as JSON."""
        return {
            "seed": self.seed,
            "crm": self.crm,
            "duplicates": self.duplicates,
            "lost_writes": self.lost_writes,
            "lost_records": self.lost_records,
            "faults": self.faults,
            "killed_after": self.killed_after,
            "concurrent_exits": list(self.concurrent_exits),
            "events_lost": self.events_lost,
            "events_redelivered": self.events_redelivered,
            "runs": self.runs,
            "ops": self.ops,
            "records": self.records,
            "seconds": round(self.seconds, 1),
            "details": self.details[:20],
        }


@dataclass
class World:
    """The stand-ins of one scenario, each behind its own chaos."""

    crm: HubSpotSandbox | SalesforceSandbox
    stripe: StripeSandbox
    zendesk: ZendeskSandbox
    receiver: WebhookReceiver
    chaos: dict[str, Chaos]

    def calm(self) -> None:
        """No more faults (for the reference pull and the final checks)."""
        for c in self.chaos.values():
            c.enabled = False

    def fault_counts(self) -> dict[str, int]:
        """What the fault middleware injected, by kind."""
        total: Counter[str] = Counter()
        for c in self.chaos.values():
            total.update({k: v for k, v in c.counts.items() if k != "passed"})
        return dict(sorted(total.items()))


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in SECRETS}
    for k in SECRETS:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_seed(
    seed: int,
    *,
    crm: str,
    workdir: Path,
    accounts: int = 40,
    kill: bool = True,
    concurrent: int = CONCURRENT_RUNS,
    progress: Callable[[str], None] = lambda line: None,
    sabotage: Callable[[World, Path], None] | None = None,
) -> SeedResult:
    """One scenario.

    Set up, the scheduled run killed mid-apply, recovery runs, then the fault-free checks
    (`sabotage` loses something on purpose first, to prove they count).
    """
    started = walltime.perf_counter()
    result = SeedResult(seed=seed, crm=crm)
    root = workdir / f"seed-{seed}-{crm}"
    unused = "ACCESS_TOKEN" if crm == "salesforce" else "CLIENT_SECRET"
    secrets = {k: v for k, v in SECRETS.items() if k != f"SIGNALPLAY_CRM__{unused}"}
    with _environ(secrets), ExitStack() as stack:
        world, urls = _start(stack, root, seed=seed, crm=crm, accounts=accounts)
        _configure(root, crm=crm, urls=urls)
        progress(f"seed {seed} {crm}: crm setup, then the scheduled run (killed mid-apply)")
        _in_process(root, setup=True)
        if kill:
            result.killed_after = _killed_run(root, world.chaos["crm"])
        if concurrent:
            progress(f"seed {seed} {crm}: {concurrent} runs at once, under the faults")
            result.concurrent_exits = _concurrent_runs(root, concurrent)
            crashed = [c for c in result.concurrent_exits if c not in (0, 1, 3)]
            if crashed:
                result.details.append(f"concurrent runs crashed: exit codes {crashed}")
        for n in range(RECOVERY_RUNS):
            progress(f"seed {seed} {crm}: recovery run {n + 1}")
            summary = _in_process(root)
            result.runs += 1
            if "error" in summary:
                result.details.append(f"run {n + 1} stopped: {summary['error'][:300]}")
            if n >= 1 and summary.get("failed") == 0 and _pending(root) == 0:
                break
        world.calm()
        result.faults = world.fault_counts()
        if sabotage is not None:
            sabotage(world, root)
        audit(root, world, crm=crm, result=result)
    result.seconds = walltime.perf_counter() - started
    progress(
        f"seed {seed} {crm}: duplicates {result.duplicates}, lost writes {result.lost_writes}, "
        f"lost records {result.lost_records} ({result.seconds:.0f} s)"
    )
    return result


def _start(
    stack: ExitStack, root: Path, *, seed: int, crm: str, accounts: int
) -> tuple[World, dict[str, str]]:
    """The stand-ins, seeded with the demo's book, served behind their chaos."""
    sandbox: HubSpotSandbox | SalesforceSandbox
    context = None
    if crm == "salesforce":
        state = root / ".signalplay"
        state.mkdir(parents=True, exist_ok=True)
        context, _ = tls(state)  # the CA lands where signalplay.yaml's ca_bundle points
        sandbox = SalesforceSandbox(
            token="00Dchaos!initial",  # noqa: S106 - the stand-in's own
            clock=lambda: datetime.combine(TODAY, time(9), tzinfo=UTC),  # before the runs' as_of
        )
        sandbox.add_client(CLIENT_ID, SECRETS["SIGNALPLAY_CRM__CLIENT_SECRET"])
    else:
        sandbox = HubSpotSandbox(token=SECRETS["SIGNALPLAY_CRM__ACCESS_TOKEN"])
    generate(root, sandbox, accounts=accounts, seed=7, today=TODAY)
    stripe = StripeSandbox(api_key=SECRETS["SIGNALPLAY_SOURCES__BILLING__API_KEY"])
    zendesk = ZendeskSandbox(
        email="admin@vendor.example",
        token=SECRETS["SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN"],
        incremental_per_minute=10_000,
    )
    seed_sources(root, stripe, zendesk)
    receiver = WebhookReceiver(SECRETS["SIGNALPLAY_WEBHOOK__SECRET"])
    chaos = {
        "crm": Chaos(
            sandbox,
            seed=seed * 7 + 1,
            hang_seconds=HANG_SECONDS,
            api=crm,
            expire_at=40 if crm == "salesforce" else None,
        ),
        "stripe": Chaos(stripe, seed=seed * 7 + 2, hang_seconds=HANG_SECONDS, api="stripe"),
        "zendesk": Chaos(zendesk, seed=seed * 7 + 3, hang_seconds=HANG_SECONDS, api="zendesk"),
    }
    urls = {
        "crm": stack.enter_context(serve(chaos["crm"], tls=context)).url,
        "stripe": stack.enter_context(serve(chaos["stripe"])).url,
        "zendesk": stack.enter_context(serve(chaos["zendesk"])).url,
        "webhook": stack.enter_context(serve(receiver)).url + "/events",
    }
    init_project(
        root,
        crm="salesforce" if crm == "salesforce" else "hubspot",
        crm_host=urls["crm"],
        webhook_url=urls["webhook"],
        sandbox_sources=True,
    )
    return World(sandbox, stripe, zendesk, receiver, chaos), urls


def _configure(root: Path, *, crm: str, urls: dict[str, str]) -> None:
    """The chaos project's signalplay.yaml, pointed at the served stand-ins.

    signalplay.yaml with every client waiting READ_TIMEOUT, the sources at their served stand-
    ins, the clock fixed, Zendesk's export pacing out of the way (pacing is measured by
    benchmarks/sources.py, not here), and Salesforce on the client-credentials flow (so that an
    expired session gets a fresh token).
    """
    config = root / "signalplay.yaml"
    text = config.read_text(encoding="utf-8")
    where = "instance_url" if crm == "salesforce" else "host"
    extra = f"\n  read_timeout: {READ_TIMEOUT}"
    if crm == "salesforce":
        extra += f"\n  client_id: {CLIENT_ID}"
    text = re.sub(rf"(\n  {where}: \S+)", lambda m: m[1] + extra, text, count=1)
    paced = {
        "stripe": "",
        "zendesk": "\n    export_rate: {windows: [{limit: 600, seconds: 60}]}",
    }
    for name, more in paced.items():
        served = f"{urls[name]}\n    read_timeout: {READ_TIMEOUT}{more}"
        text = re.sub(
            rf"(\n    connector: {name}\b[^\n]*\n(?:    [^\n]*\n)*?    base_url: )\S+",
            lambda m, to=served: m[1] + to,  # type: ignore[misc]
            text,
            count=1,
        )
    text = re.sub(
        r"\n    export_rate: \{windows: \[\{limit: 30,[^\n]*", "", text
    )  # (the scaffold's)
    text += f"\nas_of: {TODAY.isoformat()}T12:00:00+00:00\n"
    config.write_text(text, encoding="utf-8")


def _in_process(root: Path, *, setup: bool = False) -> dict[str, Any]:
    project = load_project(root)
    ctx = jobs.open_context(project)
    try:
        if setup:
            jobs.crm_setup(ctx)
            return {}
        try:
            return jobs.run(ctx).to_json()
        except Exception as exc:  # noqa: BLE001 - a run the faults stopped; the next recovers
            return {"failed": -1, "error": str(exc)}
    finally:
        ctx.close()


def _killed_run(root: Path, crm: Chaos) -> str:
    """`signalplay run` in its own process, killed with SIGKILL after a CRM write.

    `signalplay run` in its own process, killed with SIGKILL as soon as one of its CRM writes
    has been answered: that write ("" when the run ended before any).
    """
    before = crm.writes
    cmd = [sys.executable, "-c", "from signalplay.cli import main; main()"]
    cmd += ["run", "--project", str(root), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        while proc.poll() is None:
            if crm.writes > before:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return crm.last_write
            walltime.sleep(0.005)
        return ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _concurrent_runs(root: Path, count: int) -> tuple[int, ...]:
    """`signalplay run` started `count` times at once: their exit codes.

    0 done, 1 partial (the faults), 3 busy (another held the run lock past its wait); anything
    else is a crash.
    """
    cmd = [sys.executable, "-c", "from signalplay.cli import main; main()"]
    cmd += ["run", "--project", str(root), "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        for _ in range(count)
    ]
    return tuple(p.wait(timeout=900) for p in procs)


def _pending(root: Path) -> int:
    project = load_project(root)
    store = Store(project.store_url())
    try:
        return len(store.pending_ops())
    finally:
        store.close()


@dataclass(frozen=True)
class ChaosResult:
    """The chaos suite: each scenario's findings, and their total."""

    seeds: tuple[SeedResult, ...]

    @property
    def clean(self) -> bool:
        """No duplicate, no lost write, record or event, no crash, in any scenario."""
        return not any(
            r.duplicates
            or r.lost_writes
            or r.lost_records
            or r.events_lost
            or any(c not in (0, 1, 3) for c in r.concurrent_exits)
            for r in self.seeds
        )

    def total(self) -> dict[str, Any]:
        """Duplicates, lost writes and records, scenarios, kills and faults over all seeds."""
        faults: Counter[str] = Counter()
        for r in self.seeds:
            faults.update(r.faults)
        return {
            **{
                k: sum(getattr(r, k) for r in self.seeds)
                for k in (
                    "duplicates",
                    "lost_writes",
                    "lost_records",
                    "events_lost",
                    "events_redelivered",
                )
            },
            "scenarios": len(self.seeds),
            "killed_mid_apply": sum(bool(r.killed_after) for r in self.seeds),
            "concurrent_runs": sum(len(r.concurrent_exits) for r in self.seeds),
            "concurrent_crashed": sum(
                c not in (0, 1, 3) for r in self.seeds for c in r.concurrent_exits
            ),
            "faults": dict(sorted(faults.items())),
        }

    def to_json(self) -> dict[str, Any]:
        """As `chaos --json` prints it."""
        return {"seeds": [r.as_dict() for r in self.seeds], "total": self.total()}


def run_suite(
    seeds: int,
    *,
    workdir: Path,
    crms: tuple[str, ...] = ("hubspot", "salesforce"),
    accounts: int = 40,
    first_seed: int = 1,
    progress: Callable[[str], None] = lambda line: None,
) -> ChaosResult:
    """`seeds` scenarios on each CRM: per seed and in total, duplicates, lost writes and records."""
    return ChaosResult(
        tuple(
            run_seed(s, crm=c, workdir=workdir, accounts=accounts, progress=progress)
            for s in range(first_seed, first_seed + seeds)
            for c in crms
        )
    )
