"""Commands that run the flow: demo, init, run, plan, apply, mappings check, sandbox serve."""

from __future__ import annotations

import os
from collections import Counter
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
    console,
    emit,
    guard,
    mappings_app,
    out,
    partial,
    progress,
    sandbox_app,
    using,
)
from signalplay.definitions.loader import load_definitions
from signalplay.demo.history import (
    HISTORY_WEEKS,
)
from signalplay.demo.run import DEMO_WEBHOOK_SECRET, run_demo, source_sandboxes
from signalplay.jobs import views
from signalplay.jobs.scaffold import init_project
from signalplay.settings import load_project

ExtendOpt = Annotated[
    bool,
    typer.Option(
        "--extend-edits",
        help="Carry plays edited since their open episodes were actioned to those tasks.",
    ),
]


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
    """Run the demo: a generated book in the stand-ins, its history, the flow, the report.

    Generate a book of business, start the CRM sandbox (HubSpot, or Salesforce over TLS),
    provision its fields, replay past weeks of scheduled runs (CSMs closing tasks, renewals),
    run the flow today, write the HTML report and print a summary.
    """
    result = guard(
        lambda: run_demo(
            directory,
            accounts=accounts,
            seed=seed,
            crm=crm.value,
            history_weeks=history_weeks,
            progress=progress,
        )
    )
    if as_json:
        emit(result)
    else:
        _print_summary(result.to_json(), directory)


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
    extend_edits: ExtendOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull, profile, evaluate, plan and apply; exit 1 when an op failed (kept for retry)."""
    result = using(project, lambda ctx: jobs.run(ctx, dry_run=dry_run, extend_edits=extend_edits))
    emit(result) if as_json else _print_summary(result.to_json())
    partial(result.applied.failed)


@app.command()
def plan(
    project: ProjectOpt = Path(), extend_edits: ExtendOpt = False, as_json: JsonOpt = False
) -> None:
    """Pull, profile and evaluate, then print and save the CRM changes without writing them."""
    result = using(project, lambda ctx: jobs.preview(ctx, extend_edits=extend_edits))
    if as_json:
        emit(result)
        return
    for op in result.ops:
        out.print(_describe_op(op), highlight=False)
    closes = Counter(
        str(op.values.get("closure_reason")) for op in result.ops if op.action.value == "close_task"
    )
    if closes:
        out.print(
            "tasks closed: " + ", ".join(f"{n} {why}" for why, n in sorted(closes.items())),
            highlight=False,
        )
    held = result.stats.get("task_edits_held", 0)
    if held:
        out.print(
            f"{held} written task(s) of open episodes differ from their play as edited since; "
            "they keep what was written (--extend-edits updates them)",
            highlight=False,
        )
    out.print(
        f"{len(result.ops)} change(s) planned; saved as {result.plan_id}. "
        f"Apply with: signalplay apply {result.plan_id}",
        highlight=False,
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
        if "status" not in v:  # an edit carried to a written task
            lines.append(f"    {op.reason}")
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the plan's ops; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply exactly a saved plan, recording every outcome; exit 1 when an op failed."""
    result = using(
        project, lambda ctx: jobs.apply_saved(ctx, plan_id, dry_run=dry_run, retry_pending=False)
    )
    if as_json:
        emit(result)
    elif result.dry_run:
        out.print(f"dry run: {result.plan_id} would apply {result.ops} op(s); nothing written")
    else:
        a = result.applied
        out.print(
            f"applied {result.plan_id}: {a.tasks_created} task(s) created, {a.tasks_updated} "
            f"updated, {a.fields_updated} field(s) updated, {a.events_sent} event(s) sent, "
            f"{a.failed} failed (kept for retry)"
        )
    partial(result.applied.failed)


@mappings_app.command("check")
def mappings_check(project: ProjectOpt = Path()) -> None:
    """Validate every mapping, signal, health, trigger, play and write-back file at once."""

    def go() -> tuple[int, tuple[views.RetiredTrigger, ...]]:
        proj = load_project(project)
        defs = load_definitions(proj.definitions_dir)
        return len(defs.files), views.retired_open_episodes(proj, defs)

    count, retired = guard(go)
    out.print(
        f"ok: {count} mapping files and the signal, segment, health, trigger, play, routing "
        "and write-back files are valid"
    )
    for gone in retired:
        console.print(
            f"warning: trigger {gone.trigger} is no longer in triggers.yaml (or is disabled) "
            f"with {gone.open_episodes} open episode(s): the next run closes them as "
            "trigger_retired; if another trigger replaces it, add "
            f"`renamed_from: [{gone.trigger}]` to that trigger",
            style="yellow",
        )


@sandbox_app.command("serve")
def sandbox_serve(
    directory: Annotated[Path, typer.Option("--dir")] = Path(),
    port: Annotated[int, typer.Option("--port")] = 8765,
) -> None:
    """Serve the stand-ins on 127.0.0.1 until interrupted.

    Serve the HubSpot stand-in on 127.0.0.1 until interrupted (state kept in DIR/.signalplay),
    the webhook receiver on the next port (secret: SIGNALPLAY_WEBHOOK__SECRET), and, for a demo
    directory, the Stripe and Zendesk stand-ins loaded with its files on the two after.
    """
    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.server import serve
    from signalplay.sandbox.webhook import WebhookReceiver

    def bind(app: Any, at: int) -> Any:
        try:
            return serve(app, port=at)
        except OSError as exc:  # a port taken (or not ours to bind)
            console.print(
                f"error: cannot listen on 127.0.0.1:{at} ({exc.strerror or exc}); "
                "choose other ports with --port (it uses that port and the three after it)"
            )
            raise typer.Exit(2) from None

    sandbox = HubSpotSandbox(state_file=directory / ".signalplay" / "hubspot.json")
    server = bind(sandbox, port)
    secret = os.environ.get("SIGNALPLAY_WEBHOOK__SECRET", DEMO_WEBHOOK_SECRET)
    hooks = bind(WebhookReceiver(secret), port + 1)
    out.print(f"HubSpot sandbox on {server.url}, webhook receiver on {hooks.url}/events")
    if (directory / "data" / "invoices.csv").exists() and (
        directory / "data" / "tickets.csv"
    ).exists():
        billing, support = source_sandboxes(directory)
        stripe_server, zendesk_server = bind(billing, port + 2), bind(support, port + 3)
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
    """Pull the sources into the store, incrementally from each stream's saved cursor.

    Pull the sources into the store, incrementally from each stream's saved cursor (saved per
    page: a killed sync resumes where it stopped), and print a summary per stream: records,
    quarantined, requests, 429s and seconds.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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

    def go(ctx: jobs.Context) -> jobs.SyncResult:
        ctx.progress = report
        with bars:
            return jobs.sync(ctx, only=sources or None, full=full)

    result = using(project, go)
    if as_json:
        emit(result)
        return
    summary = result.streams
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
