"""Commands that watch and operate a deployment.

Status, runs, requeue, metrics, and the fuzz and chaos long forms.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from signalplay.cli._app import (
    JsonOpt,
    ProjectOpt,
    app,
    console,
    context,
    emit,
    guard,
    out,
    progress,
    using,
)
from signalplay.jobs import views


@app.command("status")
def status(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """The ledger (applied, planned, failed, dead), the latest runs and the dead letters.

    CRM changes that failed too often to be retried automatically (`signalplay requeue`).
    """
    status = using(project, views.status)
    if as_json:
        emit(status)
        return
    result = status.to_json()
    ledger = result["ledger"]
    out.print("ledger: " + (", ".join(f"{k} {v}" for k, v in sorted(ledger.items())) or "empty"))
    runs = Table(title="latest runs")
    for column in ("run", "kind", "status", "started", "accounts", "failed"):
        runs.add_column(column)
    for r in result["runs"]:
        summary = r.get("summary") or {}
        runs.add_row(
            str(r["run_id"])[:12],
            str(r["kind"]),
            str(r["status"]),
            str(r["started_at"])[:19],
            str(summary.get("accounts", "")),
            str(summary.get("failed", "")),
        )
    out.print(runs)
    dead = result["dead_letters"]
    if not dead:
        out.print("dead letters: none")
        return
    table = Table(title=f"dead letters (failed {result['max_attempts']} times)")
    for column in ("op", "action", "target", "attempts", "error"):
        table.add_column(column, overflow="fold")
    for d in dead:
        table.add_row(
            d["op_key"][:12], d["action"], d["target"], str(d["attempts"]), str(d["error"])
        )
    out.print(table)


@app.command("requeue")
def requeue(
    op_keys: Annotated[list[str] | None, typer.Argument(help="Op keys; all when none.")] = None,
    project: ProjectOpt = Path(),
) -> None:
    """Put dead letters back in the retries (after fixing what made them fail)."""
    count = using(project, lambda ctx: views.requeue(ctx, op_keys))
    out.print(f"requeued {count} op(s): the next run or apply retries them")


@app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when the last scheduled run failed, ended partial, is stuck, or none "
            "succeeded within twice the schedule (schedule_minutes): for a cron or monitoring "
            "probe.",
        ),
    ] = False,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """The run history: each run's kind, status, start, duration and what it did."""
    history = using(project, lambda ctx: views.run_history(ctx, limit))
    result = history.to_json()
    if as_json:
        emit(history)
    else:
        table = Table(title="runs")
        table.add_column("run (started at)", no_wrap=True)
        for column in ("kind", "status", "seconds", "accounts", "tasks", "failed"):
            table.add_column(column)
        for r in result["runs"]:
            summary = r.get("summary") or {}
            started, finished = r.get("started_at"), r.get("finished_at")
            seconds = (
                f"{(finished - started).total_seconds():.1f}"
                if isinstance(started, datetime) and isinstance(finished, datetime)
                else "-"
            )
            table.add_row(
                str(r["run_id"]),
                str(r["kind"]),
                str(r["status"]),
                seconds,
                str(summary.get("accounts", "-")),
                str(summary.get("tasks_created", "-")),
                str(summary.get("failed", "-")),
            )
        out.print(table)
        alert = result["alert"]
        out.print(
            Text.assemble((f"alert ({alert['kind']}): ", "red"), str(alert["message"]))
            if alert
            else "ok"
        )
    if check and result["alert"] is not None:
        raise typer.Exit(1)


@app.command("metrics")
def metrics_cmd(
    serve_port: Annotated[
        int | None,
        typer.Option("--serve", help="Serve /metrics on this port (Prometheus scrapes it)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="The address to bind.")] = "127.0.0.1",
    project: ProjectOpt = Path(),
) -> None:
    """Prometheus metrics from the store, printed once or served for scraping.

    Prometheus metrics from the store (requests, 429s, quarantined records, runs, episodes, CRM
    changes): printed once, or served for scraping with --serve.
    """
    ctx = guard(lambda: context(project))
    try:
        if serve_port is None:
            out.print(views.metrics_text(ctx), end="")
            return
        from wsgiref.simple_server import make_server

        with make_server(host, serve_port, views.metrics_app(ctx)) as server:
            out.print(f"serving metrics on http://{host}:{serve_port}/metrics")
            server.serve_forever()
    finally:
        ctx.close()


@app.command("fuzz")
def fuzz_cmd(
    cases: Annotated[int, typer.Option("--cases", min=1, help="Cases per target.")] = 10_000,
    targets: Annotated[
        list[str] | None, typer.Option("--target", help="Only these targets (repeatable).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Vary the cases (default: fixed).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    r"""Fuzz every input door with Hypothesis and count the outcomes per target.

    Fuzz every input door (expressions, templates, raw records, signalplay.yaml, mapping,
    trigger and play files) with Hypothesis: print the cases and outcomes per target; exit 1 on
    any unexpected exception. Needs the test extra (`pip install -e '.\[test]'`).
    """
    try:
        from signalplay.testing.fuzz import TARGETS, run
    except ModuleNotFoundError as exc:  # hypothesis is a test dependency
        out.print(f"fuzzing needs the test extra: pip install -e '.[test]' ({exc})")
        raise typer.Exit(2) from None
    chosen = tuple(targets or TARGETS)
    unknown = sorted(set(chosen) - set(TARGETS))
    if unknown:
        out.print(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
        raise typer.Exit(2)
    result = run(chosen, cases=cases, seed=seed, progress=progress)
    if as_json:
        emit(result)
    else:
        table = Table(title="fuzzing")
        for column in ("target", "cases", "outcomes", "unexpected", "seconds"):
            table.add_column(column)
        for t in result.tallies:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(t.outcomes.items()))
            table.add_row(
                t.target, str(t.cases), outcomes, str(len(t.unexpected)), f"{t.seconds:.1f}"
            )
        out.print(table)
        for t in result.tallies:
            for example in t.unexpected[:3]:
                out.print(Text.assemble((f"{t.target}: ", "red"), example))
    if result.unexpected:
        raise typer.Exit(1)


@app.command("chaos")
def chaos_cmd(  # noqa: PLR0917 - Typer options
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Scenarios per CRM.")] = 5,
    crm: Annotated[
        list[str] | None, typer.Option("--crm", help="hubspot and/or salesforce (default both).")
    ] = None,
    accounts: Annotated[int, typer.Option("--accounts", min=5, max=2_000)] = 40,
    first_seed: Annotated[int, typer.Option("--first-seed", help="The first seed.")] = 1,
    workdir: Annotated[
        Path | None, typer.Option("--dir", help="Keep the scenarios' projects here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The chaos suite's long form.

    Per seed and CRM, a demo book synced through stand-ins that answer 10% of requests 429, 5%
    5xx and hold 2% past the client's timeout, one expired Salesforce session, the scheduled run
    killed with SIGKILL mid-apply, two runs started at once, then recovery runs. Prints, per
    seed and in total, duplicates, lost writes, records and events; exit 1 unless all are 0.
    """
    import tempfile

    from signalplay.testing.chaos import run_suite

    chosen = tuple(crm or ("hubspot", "salesforce"))
    unknown = sorted(set(chosen) - {"hubspot", "salesforce"})
    if unknown:
        out.print(f"unknown CRM(s) {', '.join(unknown)}; known: hubspot, salesforce")
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="signalplay-chaos-") as scratch:
        result = run_suite(
            seeds,
            workdir=workdir or Path(scratch),
            crms=chosen,
            accounts=accounts,
            first_seed=first_seed,
            progress=lambda line: console.print(line, highlight=False),
        )
    total = result.total()
    if as_json:
        emit(result)
    else:
        table = Table(title="chaos")
        columns = ("seed", "crm", "duplicates", "lost_writes", "lost_records", "faults", "seconds")
        for column in columns:
            table.add_column(column)
        for seed in result.seeds:
            row = seed.as_dict()
            faults = ", ".join(f"{k} {v}" for k, v in seed.faults.items())
            table.add_row(*(str(row[c]) if c != "faults" else faults for c in columns))
        out.print(table)
        out.print(
            f"total: {total['duplicates']} duplicates, {total['lost_writes']} lost writes, "
            f"{total['lost_records']} lost records, {total['events_lost']} lost events "
            f"({total['events_redelivered']} redelivered, dropped by id) over "
            f"{total['scenarios']} scenarios ({total['killed_mid_apply']} killed mid-apply, "
            f"{total['concurrent_runs']} concurrent runs, {total['concurrent_crashed']} crashed)"
        )
    if not result.clean:
        raise typer.Exit(1)
