"""A year of signalplay on a generated world, as a deployment would have lived it.

The world is played into the stand-ins day by day; every `sync_every` days a scheduled sync
pulls all sources through the real connectors (each stand-in's clock at that moment, so
Stripe's 30 days of events and HubSpot's unstamped label changes are what a live deployment
would have seen). At the end, backfill rebuilds every past day from the stored timelines and
the backtest replays the trigger library and health over them. Imports: stdlib, jobs, demo,
sandbox, settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from signalplay import jobs
from signalplay.demo.feeds import Feeds
from signalplay.demo.run import sandbox_keys, with_sandbox_sources
from signalplay.demo.seed import seed_portal
from signalplay.demo.world import World
from signalplay.jobs.measure import backtest
from signalplay.jobs.scaffold import init_project
from signalplay.measure.backtest import Backtest
from signalplay.measure.kpis import Period
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox
from signalplay.settings import load_project

TOKEN = "pat-sandbox-rehearsal"  # noqa: S105 - the stand-in's own
SYNC_HOUR = 3  # the scheduled sync's time of day (UTC)
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Rehearsal:
    """What the rehearsal produced: the store's replay and where it lives."""

    directory: Path
    syncs: int
    backtest: Backtest
    snapshots: dict[date, dict[str, dict[str, object]]]  # day → account → profile
    names: dict[str, str]  # store account key → world account (domain)


def _project(directory: Path) -> None:
    """A sandbox project with no rate budget in the way (the rehearsal is not about 429s)."""
    init_project(directory, crm="hubspot", sandbox_sources=True)
    config = directory / "signalplay.yaml"
    text = re.sub(
        r"export_rate: .*\n",
        "export_rate: {windows: [{limit: 1000000, seconds: 60}]}\n"
        "    rate_limit: {windows: [{limit: 1000000, seconds: 60}]}\n",
        config.read_text(encoding="utf-8"),
    )
    text = re.sub(
        r"(\ncrm:\n(?:  .*\n)*)",
        r"\1  rate_limit: {windows: [{limit: 1000000, seconds: 60}]}\n",
        text,
        count=1,
    )
    config.write_text(text, encoding="utf-8")


def rehearse(
    world: World,
    directory: Path,
    *,
    sync_every: int = 3,
    progress: Progress | None = None,
) -> Rehearsal:
    """Live the world's history with signalplay syncing it, then backfill and backtest it."""
    _project(directory)
    crm = HubSpotSandbox(token=TOKEN, rate_limit=10**9, daily_limit=10**9)
    seed_portal(crm)
    stripe_key, zendesk_token = sandbox_keys()
    stripe = StripeSandbox(api_key=stripe_key, rate=10_000)
    zendesk = ZendeskSandbox(
        email="admin@vendor.example", token=zendesk_token, incremental_per_minute=1_000_000
    )
    feeds = Feeds(world, crm, stripe, zendesk, directory / "data" / "usage.csv")
    tell = progress or (lambda *_: None)
    moments = _sync_moments(world, sync_every)
    with serve(crm) as c, serve(stripe) as s, serve(zendesk) as z:
        project = load_project(directory)
        project = with_sandbox_sources(project, {"stripe": s.url, "zendesk": z.url})
        block = project.settings.crm.model_copy(update={"host": c.url, "access_token": TOKEN})
        ctx = jobs.open_context(
            project,
            crm_factory=lambda: build_connector(project, jobs.CRM_SOURCE, block, loc=("crm",)),
        )
        ctx.progress = lambda *_: None
        try:
            for n, moment in enumerate(moments):
                feeds.advance(moment)
                _stop_clocks(moment, ctx, crm, stripe, zendesk)
                jobs.sync(ctx)
                tell("rehearsal syncs", n + 1, len(moments))
            ctx.progress = progress or ctx.progress
            return _replayed(ctx, world, directory, len(moments))
        finally:
            ctx.close()


def replay(world: World, directory: Path, *, progress: Progress | None = None) -> Rehearsal:
    """Backfill and backtest a rehearsal's store again, with its (perhaps edited) mappings.

    The sources are not read again: a detector's change is judged on the same history.
    """
    ctx = jobs.open_context(load_project(directory))
    if progress is not None:
        ctx.progress = progress
    try:
        return _replayed(ctx, world, directory, 0)
    finally:
        ctx.close()


def _replayed(ctx: jobs.Context, world: World, directory: Path, syncs: int) -> Rehearsal:
    jobs.backfill(ctx, days=(world.today - world.start).days)
    found = backtest(ctx, Period(world.start, world.today - timedelta(days=1)))
    if found is None:
        raise RuntimeError("the rehearsal left no snapshots to replay")
    snapshots = {d: ctx.store.snapshots_on(d) for d in ctx.store.snapshot_days()}
    names = {a: str(p.get("domain") or a) for a, p in ctx.store.latest_snapshots().items()}
    return Rehearsal(directory, syncs, found, snapshots, names)


def _sync_moments(world: World, every: int) -> list[datetime]:
    """The scheduled syncs: from the history's first day, every `every` days, and today."""
    out = []
    day = world.start
    while day < world.today:
        out.append(datetime.combine(day, time(SYNC_HOUR), UTC))
        day += timedelta(days=every)
    out.append(datetime.combine(world.today, time(SYNC_HOUR), UTC))
    return out


def _stop_clocks(
    moment: datetime,
    ctx: jobs.Context,
    crm: HubSpotSandbox,
    stripe: StripeSandbox,
    zendesk: ZendeskSandbox,
) -> None:
    ctx.clock = ctx.store.clock = lambda: moment
    crm.clock = lambda: moment
    stamp = moment.timestamp()
    stripe.clock = zendesk.clock = lambda: stamp
