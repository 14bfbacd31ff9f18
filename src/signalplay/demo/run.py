"""The demo, end to end.

A generated book in the stand-ins, the CRM's fields provisioned, weeks of scheduled runs replayed
(CSMs closing tasks, renewals), the flow today, the report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from signalplay import jobs
from signalplay.demo.history import (
    BACKFILL_DAYS,
    Desk,
    csms_work,
    renewals_happen,
    run_moments,
)
from signalplay.jobs.measure import default_period, write_report
from signalplay.jobs.results import CrmSetupResult, Report, RunResult
from signalplay.jobs.scaffold import init_project
from signalplay.registry import build_connector
from signalplay.settings import SourceBlock, load_project

DEMO_TOKEN = "pat-sandbox-demo"  # noqa: S105 - the sandbox's own token, not a secret


DEMO_WEBHOOK_SECRET = "whsec-sandbox-demo"  # noqa: S105 - the sandbox receiver's own secret


DEMO_SF_TOKEN = "00Dsandbox!demo-session"  # noqa: S105 - the Salesforce sandbox's own session


DEMO_STRIPE = "sk_test_sandbox_demo"  # the Stripe stand-in's own key


DEMO_ZENDESK = "zd-sandbox-demo"  # the Zendesk stand-in's own token


@dataclass(frozen=True)
class Replayed:
    """The weeks replayed before today: scheduled runs, tasks CSMs closed, renewals."""

    runs: int
    tasks_closed: dict[str, int]  # by closure reason
    renewals: dict[str, int]  # renewed, churned, ...

    def to_json(self) -> dict[str, Any]:
        """As the demo summary prints it under "history"."""
        return {"runs": self.runs, "tasks_closed": self.tasks_closed, "renewals": self.renewals}


@dataclass(frozen=True)
class DemoResult:
    """The demo's run today, what led up to it, the report, and what the stand-ins saw."""

    run: RunResult
    crm_setup: CrmSetupResult
    history: Replayed | None
    report: Report
    crm: str = ""
    webhook_events_received: int = 0
    crm_requests: dict[str, int] = field(default_factory=dict)
    duplicates_found: int = 0
    sandbox_tasks: int = 0

    def to_json(self) -> dict[str, Any]:
        """The run's summary with the demo's own figures, as `demo --json` prints it."""
        return {
            **self.run.to_json(),
            "crm_setup": {
                "created": list(self.crm_setup.done),
                "remaining": [str(f.issue) for f in self.crm_setup.remaining],
            },
            "history": self.history.to_json() if self.history else None,
            "report": str(self.report.path),
            "verdicts": len(self.report.verdicts),
            "crm": self.crm,
            "webhook_events_received": self.webhook_events_received,
            "crm_requests": self.crm_requests,
            "duplicates_found": self.duplicates_found,
            "sandbox_tasks": self.sandbox_tasks,
        }


# The demo's Zendesk account has the High Volume API add-on: 30 incremental export requests a
# minute, as its project's `export_rate` says (a first sync reads seven exports).
HIGH_VOLUME = 30


def source_sandboxes(directory: Path) -> tuple[Any, Any]:
    """The Stripe and Zendesk stand-ins, loaded with the demo's billing and support files."""
    from signalplay.demo.seed import seed_sources
    from signalplay.sandbox.stripe import StripeSandbox
    from signalplay.sandbox.zendesk import ZendeskSandbox

    stripe_key, zendesk_token = sandbox_keys()
    billing = StripeSandbox(api_key=stripe_key)
    support = ZendeskSandbox(
        email="admin@vendor.example",
        token=zendesk_token,
        incremental_per_minute=HIGH_VOLUME,
    )
    seed_sources(directory, billing, support)
    return billing, support


def sandbox_keys() -> tuple[str, str]:
    """The Stripe key and Zendesk token the stand-ins and the project share (env, else own)."""
    return (
        os.environ.get("SIGNALPLAY_SOURCES__BILLING__API_KEY", DEMO_STRIPE),
        os.environ.get("SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN", DEMO_ZENDESK),
    )


def with_sandbox_sources(project: Any, urls: dict[str, str]) -> Any:
    """The project with its Stripe and Zendesk sources pointed at the running stand-ins."""
    stripe_key, zendesk_token = sandbox_keys()
    secrets = {"stripe": {"api_key": stripe_key}, "zendesk": {"api_token": zendesk_token}}
    sources = {
        name: block.model_copy(
            update={"base_url": urls[block.connector], **secrets[block.connector]}
        )
        if block.connector in urls
        else block
        for name, block in project.settings.sources.items()
    }
    settings = project.settings.model_copy(update={"sources": sources})
    return project.model_copy(update={"settings": settings})


def _run_demo(
    directory: Path,
    url: str,
    token: str,
    *,
    webhook_url: str,
    secret: str,
    source_urls: dict[str, str] | None = None,
    history: tuple[Desk, int] | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> DemoResult:
    project = with_sandbox_sources(load_project(directory), source_urls or {})
    where = "instance_url" if project.settings.crm.connector == "salesforce" else "host"
    block = project.settings.crm.model_copy(update={where: url, "access_token": token})
    hook = SourceBlock(connector="webhook", url=webhook_url, secret=secret)
    ctx = jobs.open_context(
        project,
        crm_factory=lambda: build_connector(project, jobs.CRM_SOURCE, block, loc=("crm",)),
        events_factory=lambda: build_connector(project, "webhook", hook, loc=("webhook",)),
    )
    if progress is not None:
        ctx.progress = progress
    try:
        setup = jobs.crm_setup(ctx)  # the fields signalplay writes, typed
        past = _replay_history(ctx, *history) if history and history[1] else None
        today = jobs.run(ctx)
        report = write_report(ctx, default_period(ctx), directory / "signalplay-report.html")
        return DemoResult(run=today, crm_setup=setup, history=past, report=report)
    finally:
        ctx.close()


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _replay_history(ctx: jobs.Context, desk: Desk, weeks: int) -> Replayed:
    """Replay weekly scheduled runs before today, with CSMs and renewals between them.

    Weekly scheduled runs replayed before today (daily snapshots backfilled before the first),
    CSMs closing tasks and renewals happening between them; then up to now.
    """
    today = ctx.clock().date()
    real_clock = ctx.clock
    episodes: dict[str, tuple[str, str]] = {}
    groups = {t.id: t.group for t in ctx.definitions.triggers.triggers}

    def trigger_of(key: str) -> tuple[str, str] | None:
        if not episodes:
            by_key = {e.key: e.trigger_id for e in ctx.store.episodes()}
            for task, ep in ctx.store.task_episodes().items():
                trig = by_key.get(ep)
                if trig:
                    episodes[task] = (trig, groups.get(trig, ""))
        return episodes.get(key)

    reached: set[str] = set()
    bands: dict[str, str | None] = {}

    def band_of(account: str) -> str | None:
        if not bands:
            bands.update({a: p.get("health_band") for a, p in ctx.store.latest_snapshots().items()})
        return bands.get(account)

    def touched(account: str) -> bool:
        if not reached:
            reached.update(
                e.account for e in ctx.store.episodes() if e.decision.get("status") == "actioned"
            )
        return account in reached

    closed: Counter[str] = Counter()
    renewals: Counter[str] = Counter()
    moments = run_moments(today, weeks)
    since = moments[0].date() - timedelta(days=1)
    try:
        for i, moment in enumerate(moments):
            closed += csms_work(desk, moment, trigger_of)
            renewals += renewals_happen(desk, since, moment.date(), touched, band_of)
            since = moment.date()
            desk.at(moment)
            ctx.clock = ctx.store.clock = _fixed(moment)  # what the store stamps, too
            # the sources' whole history is pulled once: later runs read the CRM only
            jobs.run(ctx, only=None if i == 0 else (jobs.CRM_SOURCE,))
            episodes.clear()
            reached.clear()
            bands.clear()
            if i == 0:
                jobs.backfill(ctx, days=BACKFILL_DAYS)
        now = real_clock()
        closed += csms_work(desk, now, trigger_of)
        renewals += renewals_happen(desk, since, now.date(), touched, band_of)
    finally:
        desk.at(None)
        ctx.clock = ctx.store.clock = real_clock
    return Replayed(len(moments), dict(closed), dict(renewals))


def run_demo(
    directory: Path,
    *,
    accounts: int,
    seed: int,
    crm: Literal["hubspot", "salesforce"],
    history_weeks: int,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> DemoResult:
    """Run the demo end to end and return its summary.

    Generate a book of business, start the CRM stand-in (HubSpot, or Salesforce over TLS),
    provision its fields, replay past weeks of scheduled runs (CSMs closing tasks, renewals),
    run the flow today and write the HTML report; returns the run's summary with the demo's own
    figures (requests the stand-in saw, duplicates, events received).
    """
    from signalplay.demo.seed import generate
    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.salesforce import SalesforceSandbox, tls
    from signalplay.sandbox.server import serve
    from signalplay.sandbox.webhook import WebhookReceiver

    init_project(directory, crm=crm, sandbox_sources=True)
    state = directory / ".signalplay"
    secret = os.environ.get("SIGNALPLAY_WEBHOOK__SECRET", DEMO_WEBHOOK_SECRET)
    receiver = WebhookReceiver(secret)
    today = datetime.now(UTC).date()
    sandbox: HubSpotSandbox | SalesforceSandbox
    if crm == "salesforce":
        token = os.environ.get("SIGNALPLAY_CRM__ACCESS_TOKEN", DEMO_SF_TOKEN)
        state.mkdir(parents=True, exist_ok=True)
        context, _ = tls(state)  # the CA lands where signalplay.yaml's ca_bundle points
        sandbox = SalesforceSandbox(token=token, state_file=state / "salesforce.json")
        served = serve(sandbox, tls=context)
        key_field = "Signalplay_Key__c"
    else:
        token = os.environ.get("SIGNALPLAY_CRM__ACCESS_TOKEN", DEMO_TOKEN)
        sandbox = HubSpotSandbox(state_file=state / "hubspot.json", token=token)
        served = serve(sandbox)
        key_field = "signalplay_episode_key"
    fresh = not (directory / "signalplay.db").exists()
    weeks = history_weeks if fresh else 0  # the past is replayed once, into a new store
    # the same book for the same options: renewal dates start earlier by the replayed weeks
    generate(
        directory,
        sandbox,
        accounts=accounts,
        seed=seed,
        today=today,
        history_days=7 * history_weeks,
    )
    billing, support = source_sandboxes(directory)
    with (
        served as server,
        serve(receiver) as hooks,
        serve(billing) as stripe_server,
        serve(support) as zendesk_server,
    ):
        urls = {"stripe": stripe_server.url, "zendesk": zendesk_server.url}
        result = _run_demo(
            directory,
            server.url,
            token,
            webhook_url=f"{hooks.url}/events",
            secret=secret,
            source_urls=urls,
            history=(Desk(sandbox), weeks),
            progress=progress,
        )
    sandbox.save()
    return replace(
        result,
        crm=crm,
        webhook_events_received=len(receiver.events),
        crm_requests=sandbox.request_counts(),
        duplicates_found=sandbox.duplicate_tasks(key_field),
        sandbox_tasks=(
            len(sandbox.records("Task"))
            if isinstance(sandbox, SalesforceSandbox)
            else len(sandbox.state.objects["tasks"])
        ),
    )
