"""Commands that run the flow: demo, init, run, plan, apply, mappings check, sandbox serve."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from signalplay import jobs
from signalplay.cli._app import (
    JsonOpt,
    ProjectOpt,
    app,
    context,
    guard,
    mappings_app,
    out,
    progress,
    sandbox_app,
)
from signalplay.cli.measure import write_report
from signalplay.definitions.loader import load_definitions
from signalplay.demo.history import (
    BACKFILL_DAYS,
    HISTORY_WEEKS,
    Desk,
    csms_work,
    renewals_happen,
    run_moments,
)
from signalplay.errors import SignalplayError
from signalplay.jobs.measure import default_period
from signalplay.jobs.scaffold import init_project
from signalplay.registry import build_connector
from signalplay.settings import SourceBlock, load_project

DEMO_TOKEN = "pat-sandbox-demo"  # noqa: S105 - the sandbox's own token, not a secret
DEMO_WEBHOOK_SECRET = "whsec-sandbox-demo"  # noqa: S105 - the sandbox receiver's own secret
DEMO_SF_TOKEN = "00Dsandbox!demo-session"  # noqa: S105 - the Salesforce sandbox's own session
DEMO_STRIPE = "sk_test_sandbox_demo"  # the Stripe stand-in's own key
DEMO_ZENDESK = "zd-sandbox-demo"  # the Zendesk stand-in's own token


class CrmChoice(StrEnum):
    """The CRM stand-in the demo runs against."""

    hubspot = "hubspot"
    salesforce = "salesforce"


@app.command()
def demo(  # noqa: PLR0917 - Typer options
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo project lives.")] = Path(
        "signalplay-demo"
    ),
    accounts: Annotated[int, typer.Option("--accounts", min=1, max=100_000)] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    crm: Annotated[
        CrmChoice, typer.Option("--crm", help="The CRM stand-in: hubspot or salesforce.")
    ] = CrmChoice.hubspot,
    history_weeks: Annotated[
        int,
        typer.Option(
            "--history-weeks",
            min=0,
            max=26,
            help="Weekly runs replayed before today, CSMs and renewals acting between them.",
        ),
    ] = HISTORY_WEEKS,
    as_json: JsonOpt = False,
) -> None:
    """Generate a book of business, start the CRM sandbox (HubSpot, or Salesforce over TLS),
    provision its fields, replay past weeks of scheduled runs (CSMs closing tasks, renewals),
    run the flow today, write the HTML report and print a summary."""
    from signalplay.demo.book import generate
    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.salesforce import SalesforceSandbox, tls
    from signalplay.sandbox.server import serve
    from signalplay.sandbox.webhook import WebhookReceiver

    init_project(directory, crm=crm.value, sandbox_sources=True)
    state = directory / ".signalplay"
    secret = os.environ.get("SIGNALPLAY_WEBHOOK__SECRET", DEMO_WEBHOOK_SECRET)
    receiver = WebhookReceiver(secret)
    today = datetime.now(UTC).date()
    sandbox: HubSpotSandbox | SalesforceSandbox
    if crm is CrmChoice.salesforce:
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
        summary = guard(
            lambda: _run_demo(
                directory,
                server.url,
                token,
                webhook_url=f"{hooks.url}/events",
                secret=secret,
                source_urls=urls,
                history=(Desk(sandbox), weeks),
            )
        )
    sandbox.save()
    summary["crm"] = crm.value
    summary["webhook_events_received"] = len(receiver.events)
    summary["crm_requests"] = sandbox.request_counts()
    summary["duplicates_found"] = sandbox.duplicate_tasks(key_field)
    summary["sandbox_tasks"] = (
        len(sandbox.records("Task"))
        if isinstance(sandbox, SalesforceSandbox)
        else len(sandbox.state.objects["tasks"])
    )
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        _print_summary(summary, directory)


def source_sandboxes(directory: Path) -> tuple[Any, Any]:
    """The Stripe and Zendesk stand-ins, loaded with the demo's billing and support files."""
    from signalplay.demo.book import seed_sources
    from signalplay.sandbox.stripe import StripeSandbox
    from signalplay.sandbox.zendesk import ZendeskSandbox

    billing = StripeSandbox(api_key=_secret("SIGNALPLAY_SOURCES__BILLING__API_KEY", DEMO_STRIPE))
    support = ZendeskSandbox(
        email="admin@vendor.example",
        token=_secret("SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN", DEMO_ZENDESK),
    )
    seed_sources(directory, billing, support)
    return billing, support


def _secret(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _with_sandbox_sources(project: Any, urls: dict[str, str]) -> Any:
    """The project with its Stripe and Zendesk sources pointed at the running stand-ins."""
    secrets = {
        "stripe": {"api_key": _secret("SIGNALPLAY_SOURCES__BILLING__API_KEY", DEMO_STRIPE)},
        "zendesk": {"api_token": _secret("SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN", DEMO_ZENDESK)},
    }
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
) -> dict[str, Any]:
    project = _with_sandbox_sources(load_project(directory), source_urls or {})
    where = "instance_url" if project.settings.crm.connector == "salesforce" else "host"
    block = project.settings.crm.model_copy(update={where: url, "access_token": token})
    hook = SourceBlock(connector="webhook", url=webhook_url, secret=secret)
    ctx = jobs.open_context(
        project,
        crm_factory=lambda: build_connector(project, jobs.CRM_SOURCE, block, loc=("crm",)),
        events_factory=lambda: build_connector(project, "webhook", hook, loc=("webhook",)),
    )
    ctx.progress = progress
    try:
        created, remaining = jobs.crm_setup(ctx)  # the fields signalplay writes, typed
        past = _replay_history(ctx, *history) if history and history[1] else None
        summary = jobs.run(ctx)
        summary["crm_setup"] = {"created": created, "remaining": [str(f.issue) for f in remaining]}
        summary["history"] = past
        path = directory / "signalplay-report.html"
        report = write_report(ctx, default_period(ctx), path)
        summary["report"] = str(path)
        summary["verdicts"] = len(report["verdicts"])
        return summary
    finally:
        ctx.close()


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _replay_history(ctx: jobs.Context, desk: Desk, weeks: int) -> dict[str, Any]:
    """Weekly scheduled runs replayed before today (daily snapshots backfilled before the
    first), CSMs closing tasks and renewals happening between them; then up to now."""
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
            ctx.clock = _fixed(moment)
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
        ctx.clock = real_clock
    return {"runs": len(moments), "tasks_closed": dict(closed), "renewals": dict(renewals)}


def _print_summary(summary: dict[str, Any], directory: Path | None = None) -> None:
    table = Table(title="signalplay run", show_header=False)
    for key in (
        "accounts",
        "episodes_opened",
        "episodes_held",
        "episodes_resolved",
        "tasks_created",
        "tasks_updated",
        "fields_updated",
        "events_sent",
        "failed",
    ):
        table.add_row(key.replace("_", " "), str(summary.get(key, 0)))
    table.add_row(
        "triggers fired",
        ", ".join(f"{k}: {v}" for k, v in summary.get("triggers_fired", {}).items()) or "none",
    )
    table.add_row(
        "decisions",
        ", ".join(f"{k}: {v}" for k, v in summary.get("decisions", {}).items()) or "none",
    )
    table.add_row(
        "health bands", ", ".join(f"{k}: {v}" for k, v in summary.get("health_bands", {}).items())
    )
    if "crm_requests" in summary:
        table.add_row("CRM requests", str(sum(summary["crm_requests"].values())))
        table.add_row("duplicate tasks", str(summary.get("duplicates_found")))
    history = summary.get("history")
    if history:
        closed = sum(history["tasks_closed"].values())
        renewals = ", ".join(f"{k}: {v}" for k, v in history["renewals"].items()) or "none"
        table.add_row(
            "replayed history",
            f"{history['runs']} weekly runs; CSMs closed {closed} tasks; renewals {renewals}",
        )
    out.print(table)
    if summary.get("report"):
        out.print(f"Report: {Path(summary['report']).resolve()}")
    if directory is not None:
        out.print(
            f"Project: {directory.resolve()}  (store: signalplay.db; sandbox state: "
            f".signalplay/{summary.get('crm', 'hubspot')}.json)"
        )


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    crm: Annotated[
        CrmChoice, typer.Option("--crm", help="hubspot or salesforce (its mapping set).")
    ] = CrmChoice.hubspot,
) -> None:
    """Scaffold a project: signalplay.yaml and copies of the shipped RevOps files."""
    written = init_project(directory, crm=crm.value)
    for path in written:
        out.print(f"wrote {path}")
    out.print(
        "Next: set SIGNALPLAY_CRM__ACCESS_TOKEN, check with `signalplay mappings check -p DIR` "
        "and `signalplay crm check -p DIR` (`crm setup` creates the fields), then "
        "`signalplay plan -p DIR`."
    )


@app.command()
def run(
    project: ProjectOpt = Path(),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; write nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull, profile, evaluate, plan and apply."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            return jobs.run(ctx, dry_run=dry_run)
        finally:
            ctx.close()

    summary = guard(go)
    out.print_json(json.dumps(summary, default=str)) if as_json else _print_summary(summary)


@app.command()
def plan(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """Pull, profile and evaluate, then print and save the CRM changes without writing them."""

    def go() -> tuple[str, list[Any], dict[str, int]]:
        ctx = context(project)
        try:
            run_id = ctx.store.start_run("plan")
            jobs.pull(ctx, run_id)
            profiles = jobs.build_profiles(ctx, run_id)
            assessed = jobs.assess(ctx, profiles, save=False)  # a preview: the store keeps none
            result = jobs.plan(ctx, profiles, run_id, record=False, preview=assessed)
            ctx.store.finish_run(run_id, status="ok", summary=result[2])
            return result
        finally:
            ctx.close()

    plan_id, ops, stats = guard(go)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "plan_id": plan_id,
                    "stats": stats,
                    "ops": [o.model_dump(mode="json") for o in ops],
                }
            )
        )
        return
    for op in ops:
        out.print(_describe_op(op), highlight=False)
    out.print(
        f"{len(ops)} change(s) planned; saved as {plan_id}. Apply with: signalplay apply {plan_id}"
    )


def _describe_op(op: Any) -> str:
    """One planned change as a CSM or RevOps reviewer reads it: the record and each field."""
    v = op.values
    head = f"{op.action.value:14} {op.object_type}/{op.target}"
    if op.action.value == "upsert_task":
        lines = [
            f"{head}: {v.get('subject')!s}",
            f"    owner {v.get('owner_id')}, due {str(v.get('due_at'))[:16]}, "
            f"priority {v.get('priority')}, type {v.get('type')}",
            f"    links {', '.join(f'{r.object_type}/{r.record_id}' for r in op.associations)}",
        ]
        return "\n".join(lines)
    if op.action.value == "update_fields":
        changes = [f"    {f}: {op.previous.get(f)!r} → {new!r}" for f, new in sorted(v.items())]
        return "\n".join([head, *changes])
    if op.action.value == "close_task":
        return f"{head}: completed ({v.get('closure_reason')})"
    if op.action.value in ("enroll", "unenroll"):
        who = ", ".join(r.record_id for r in op.associations)
        return f"{head}: {v.get('sequence') or ''} contacts {who}"
    return f"{head}: {op.reason}"


@app.command()
def apply(
    plan_id: Annotated[
        str | None, typer.Argument(help="Plan id; the newest plan when omitted.")
    ] = None,
    project: ProjectOpt = Path(),
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Apply exactly a saved plan, recording every outcome in the ledger."""

    def go() -> dict[str, int]:
        ctx = context(project)
        try:
            pid = plan_id or ctx.store.latest_plan_id()
            ops = ctx.store.load_plan(pid) if pid else None
            if ops is None:
                raise SignalplayError(f"no plan {pid!r}: run `signalplay plan` first")
            if dry_run:
                return {"would_apply": len(ops)}
            result = jobs.apply(ctx, ops, retry_pending=False)
            ctx.store.mark_plan(pid, "applied")  # type: ignore[arg-type]
            return result
        finally:
            ctx.close()

    out.print_json(json.dumps(guard(go)))


@mappings_app.command("check")
def mappings_check(project: ProjectOpt = Path()) -> None:
    """Validate every mapping, signal, health, trigger, play and write-back file at once."""

    def go() -> int:
        proj = load_project(project)
        return len(load_definitions(proj.definitions_dir).files)

    count = guard(go)
    out.print(
        f"ok: {count} mapping files and the signal, segment, health, trigger, play, routing "
        "and write-back files are valid"
    )


@sandbox_app.command("serve")
def sandbox_serve(
    directory: Annotated[Path, typer.Option("--dir")] = Path(),
    port: Annotated[int, typer.Option("--port")] = 8765,
) -> None:
    """Serve the HubSpot stand-in on 127.0.0.1 until interrupted (state kept in DIR/.signalplay),
    the webhook receiver on the next port (secret: SIGNALPLAY_WEBHOOK__SECRET), and, for a demo
    directory, the Stripe and Zendesk stand-ins loaded with its files on the two after."""
    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.server import serve
    from signalplay.sandbox.webhook import WebhookReceiver

    sandbox = HubSpotSandbox(state_file=directory / ".signalplay" / "hubspot.json")
    server = serve(sandbox, port=port)
    secret = os.environ.get("SIGNALPLAY_WEBHOOK__SECRET", DEMO_WEBHOOK_SECRET)
    hooks = serve(WebhookReceiver(secret), port=port + 1)
    out.print(f"HubSpot sandbox on {server.url}, webhook receiver on {hooks.url}/events")
    if (directory / "data" / "invoices.csv").exists() and (
        directory / "data" / "tickets.csv"
    ).exists():
        billing, support = source_sandboxes(directory)
        stripe_server, zendesk_server = serve(billing, port=port + 2), serve(support, port=port + 3)
        out.print(f"Stripe sandbox on {stripe_server.url}, Zendesk sandbox on {zendesk_server.url}")
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()
        hooks.stop()


@app.command()
def sync(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Sources to pull (names under `sources:`, or `crm`); all by default."),
    ] = None,
    project: ProjectOpt = Path(),
    full: Annotated[
        bool, typer.Option("--full", help="Re-list from the start instead of the saved cursors.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull the sources into the store, incrementally from each stream's saved cursor (saved per
    page: a killed sync resumes where it stopped), and print a summary per stream: records,
    quarantined, requests, 429s and seconds."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from signalplay.cli._app import console

    def go() -> dict[str, dict[str, float]]:
        ctx = context(project)
        bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} records"),
            TimeElapsedColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
        )
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done)

        ctx.progress = report
        try:
            run_id = ctx.store.start_run("sync")
            with bars:
                summary = jobs.pull(ctx, run_id, only=sources or None, full=full)
            ctx.store.finish_run(run_id, status="ok", summary={"streams": summary})
            return summary
        finally:
            ctx.close()

    summary = guard(go)
    if as_json:
        out.print_json(json.dumps({"streams": summary}))
        return
    table = Table(title="signalplay sync")
    columns = ("records", "quarantined", "requests", "429s", "seconds")
    table.add_column("stream")
    for column in columns:
        table.add_column(column, justify="right")
    for stream, counts in summary.items():
        cells = [f"{counts[c]:,.0f}" if c in counts and c != "seconds" else "" for c in columns]
        cells[-1] = f"{counts.get('seconds', 0):.2f}"
        table.add_row(stream, *cells)
    out.print(table)
