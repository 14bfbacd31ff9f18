"""Commands that look at the data: profile show and coverage, the identity report, quarantine,
mapping preview, the JSON Schemas, and the snapshot backfill."""

from __future__ import annotations

import json
from datetime import datetime
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
    context,
    guard,
    identity_app,
    mappings_app,
    out,
    profile_app,
    progress,
    quarantine_app,
)
from signalplay.definitions.jsonschema import write_schemas
from signalplay.jobs import views
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.ops.watch import check_runs
from signalplay.settings import load_project


def _json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


@profile_app.command("show")
def profile_show(
    account: Annotated[str, typer.Argument(help="CRM account id, domain or exact name.")],
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Print an account's profile, each value with its lineage (source, stream, record, time)."""

    def go() -> tuple[str, list[views.ProfileRow]]:
        ctx = context(project)
        try:
            key = views.find_account(ctx.store, ctx.definitions, account)
            return key, views.profile_rows(ctx.store, ctx.definitions, key)
        finally:
            ctx.close()

    key, rows = guard(go)
    if as_json:
        _json({"account": key, "fields": [r.__dict__ for r in rows]})
        return
    table = Table(title=f"profile of {key}")
    for column in ("field", "value", "from", "record", "observed"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.field, _short(r.value), r.origin, r.record_id, r.observed_at[:19])
    out.print(table)


@profile_app.command("coverage")
def profile_coverage(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """Profile coverage: percent of accounts with a value, per field and per source."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            return views.profile_coverage(ctx.store, ctx.definitions).as_dict()
        finally:
            ctx.close()

    result = guard(go)
    if as_json:
        _json(result)
        return
    table = Table(title=f"profile coverage ({result['accounts']} accounts)")
    table.add_column("source / field")
    table.add_column("coverage %", justify="right")
    for name, pct in result["sources_pct"].items():
        table.add_row(f"[bold]{name}[/bold]", f"{pct:.1f}")
    for name, pct in result["fields_pct"].items():
        table.add_row(f"  {name}", f"{pct:.1f}")
    table.add_row("[bold]overall[/bold]", f"{result['overall_pct']:.1f}")
    out.print(table)


@identity_app.command("report")
def identity_report(
    project: ProjectOpt = Path(),
    problem: Annotated[
        str | None, typer.Option(help="Only 'unmatched' or 'conflict' records.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Records of the newest run that joined no account: unmatched keys and conflicts."""

    def go() -> list[Any]:
        ctx = context(project)
        try:
            return ctx.store.identity_issues(problem=problem)
        finally:
            ctx.close()

    issues = guard(go)
    if as_json:
        _json({"issues": [i.__dict__ for i in issues]})
        return
    if not issues:
        out.print("every record joined exactly one account")
        return
    table = Table(title=f"{len(issues)} record(s) joined no account")
    for column in ("stream", "record", "problem", "detail"):
        table.add_column(column, overflow="fold")
    for i in issues:
        table.add_row(f"{i.source}.{i.stream}", i.record_id, i.problem, i.describe())
    out.print(table)


@quarantine_app.command("list")
def quarantine_list(
    project: ProjectOpt = Path(),
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Records that could not be used, with the reason and the raw payload."""

    def go() -> tuple[list[dict[str, Any]], dict[str, int]]:
        ctx = context(project)
        try:
            rows = ctx.store.quarantined(source=source, stream=stream, limit=limit)
            return rows, ctx.store.quarantine_counts()
        finally:
            ctx.close()

    rows, counts = guard(go)
    if as_json:
        _json({"counts": counts, "records": rows})
        return
    if not rows:
        out.print("no quarantined records")
        return
    table = Table(
        title="quarantined records (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")"
    )
    for column in ("stream", "record", "stage", "reason", "payload"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            f"{r['source']}.{r['stream']}",
            r["record_id"],
            r["stage"],
            r["reason"],
            _short(r["payload"]),
        )
    out.print(table)


@mappings_app.command("preview")
def mappings_preview(
    file: Annotated[Path, typer.Argument(help="The mapping file to try (edited or new).")],
    project: ProjectOpt = Path(),
    sample: Annotated[int, typer.Option("--sample", "-n", min=1, max=10_000)] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Map N records of the file's stream and show the result; nothing is written."""
    result = guard(lambda: views.preview_mapping(load_project(project), file, sample=sample))
    if as_json:
        _json(
            {
                "mapping": result.mapping,
                "records_from": result.origin,
                "types": result.types,
                "rows": [r.__dict__ for r in result.rows],
            }
        )
        return
    out.print(f"{result.mapping}: {len(result.rows)} record(s) from the {result.origin}")
    for r in result.rows:
        table = Table(title=f"record {r.record_id} → {r.account or r.problem}", show_header=False)
        if r.problem and r.account:
            table.add_row("[red]problem[/red]", r.problem)
        for name, value in r.values.items():
            table.add_row(name, _short(value, 80), result.types.get(name, ""))
        out.print(table)


@app.command()
def schema(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder to write into (default: the shipped one).")
    ] = None,
) -> None:
    """Write the JSON Schemas of the RevOps file formats, for editors to autocomplete."""
    target = out_dir or shipped_mappings() / "schema"
    for path in write_schemas(target):
        out.print(f"wrote {path}")


@app.command()
def backfill(
    days: Annotated[int, typer.Option("--days", min=1, max=730, help="How many past days.")] = 30,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Build daily profile snapshots for past days from the sources' stored history."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            return jobs.backfill(ctx, days=days)
        finally:
            ctx.close()

    result = guard(go)
    if as_json:
        _json(result)
    else:
        out.print(
            f"backfilled {result['days']} day(s) ({result['from']} … {result['to']}) for "
            f"{result['accounts']} accounts: {result['snapshots']} snapshots"
        )


@app.command("explain")
def explain(
    account: Annotated[str, typer.Argument(help="CRM account id, domain or exact name.")],
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Why each trigger fired or not for an account (its clauses against the segment's
    thresholds), its health breakdown, segments, and the decisions on its episodes."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            key = views.find_account(ctx.store, ctx.definitions, account)
            return jobs.explain(ctx, key)
        finally:
            ctx.close()

    result = guard(go)
    if as_json:
        _json(result)
        return
    _print_explanation(result)


def _print_explanation(result: dict[str, Any]) -> None:
    health = result["health"]
    segments = ", ".join(f"{k} {v}" for k, v in result["segments"].items())
    out.print(
        f"[bold]{result['name']}[/bold] ({result['account']}): stage {result['stage']}, "
        f"risk {result['risk']}, {segments}"
    )
    out.print(f"health {health['score']} ({health['band']}): {health['drivers']}")
    table = Table(title="health measures")
    for column in ("measure", "value", "score", "weight"):
        table.add_column(column)
    for m in health["measures"]:
        table.add_row(m["label"], _short(m["value"]), str(m["score"]), str(m["weight"]))
    out.print(table)
    triggers = Table(title="triggers")
    for column in ("trigger", "fired", "clauses", "thresholds"):
        triggers.add_column(column, overflow="fold")
    for t in sorted(result["triggers"], key=lambda t: not t["fired"]):
        clauses = "\n".join(f"{c['clause']} → {_short(c['value'])}" for c in t["clauses"])
        values = ", ".join(f"{k}={_short(v)}" for k, v in t["values"].items())
        limits = ", ".join(f"{k}={v['value']:g} ({v['from']})" for k, v in t["thresholds"].items())
        triggers.add_row(
            t["trigger"], "yes" if t["fired"] else "no", f"{clauses}\n[dim]{values}[/dim]", limits
        )
    out.print(triggers)
    if result["episodes"]:
        episodes = Table(title="episodes")
        for column in ("trigger", "status", "decision", "play / owner / due", "why"):
            episodes.add_column(column, overflow="fold")
        for e in result["episodes"]:
            d = e["decision"] or {}
            episodes.add_row(
                e["trigger"],
                e["status"],
                str(d.get("status", "")),
                " / ".join(
                    (
                        str(d.get("play_id", "")),
                        str(d.get("owner_id", "")),
                        str(d.get("due_at", ""))[:16],
                    )
                ),
                str(d.get("reason", "")),
            )
        out.print(episodes)


@app.command("status")
def status(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """The ledger (applied, planned, failed, dead), the latest runs and the dead letters: CRM
    changes that failed too often to be retried automatically (`signalplay requeue`)."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            return {
                "ledger": ctx.store.ledger_counts(),
                "runs": ctx.store.recent_runs(),
                "dead_letters": ctx.store.dead_letters(),
                "max_attempts": ctx.project.settings.max_attempts,
            }
        finally:
            ctx.close()

    result = guard(go)
    if as_json:
        _json(result)
        return
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

    def go() -> int:
        ctx = context(project)
        try:
            return ctx.store.requeue(op_keys or None)
        finally:
            ctx.close()

    count = guard(go)
    out.print(f"requeued {count} op(s): the next run or apply retries them")


@app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 when the last scheduled run failed, is stuck, or none succeeded within "
            "twice the schedule (schedule_minutes): for a cron or monitoring probe.",
        ),
    ] = False,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """The run history: each run's kind, status, start, duration and what it did."""

    def go() -> dict[str, Any]:
        ctx = context(project)
        try:
            history = ctx.store.recent_runs(limit)
            alert = check_runs(
                history, ctx.clock(), every_minutes=ctx.project.settings.schedule_minutes
            )
            return {"runs": history, "alert": alert.as_dict() if alert else None}
        finally:
            ctx.close()

    result = guard(go)
    if as_json:
        _json(result)
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
        out.print(f"[red]alert ({alert['kind']}):[/red] {alert['message']}" if alert else "ok")
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
    """Prometheus metrics from the store (requests, 429s, quarantined records, runs, episodes,
    CRM changes): printed once, or served for scraping with --serve."""
    from signalplay.ops.metrics import exposition, registry

    ctx = guard(lambda: context(project))
    try:
        if serve_port is None:
            out.print(exposition(ctx.store), end="", markup=False, highlight=False)
            return
        from wsgiref.simple_server import make_server

        from prometheus_client import make_wsgi_app

        with make_server(host, serve_port, make_wsgi_app(registry(ctx.store))) as server:
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
    """Fuzz every input door (expressions, templates, raw records, signalplay.yaml, mapping,
    trigger and play files) with Hypothesis: print the cases and outcomes per target; exit 1
    on any unexpected exception. Needs the test extra (`pip install -e '.\\[test]'`)."""
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
    tallies = run(chosen, cases=cases, seed=seed, progress=progress)
    result: dict[str, Any] = {
        "targets": [t.as_dict() for t in tallies],
        "cases": sum(t.cases for t in tallies),
        "unexpected": sum(len(t.unexpected) for t in tallies),
    }
    if as_json:
        _json(result)
    else:
        table = Table(title="fuzzing")
        for column in ("target", "cases", "outcomes", "unexpected", "seconds"):
            table.add_column(column)
        for t in result["targets"]:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(t["outcomes"].items()))
            table.add_row(
                t["target"], str(t["cases"]), outcomes, str(t["unexpected"]), str(t["seconds"])
            )
        out.print(table)
        for t in tallies:
            for example in t.unexpected[:3]:
                out.print(f"[red]{t.target}:[/red] {example}")
    if result["unexpected"]:
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
    """The chaos suite's long form: per seed and CRM, a demo book synced through stand-ins that
    answer 10% of requests 429, 5% 5xx and hold 2% past the client's timeout, one expired
    Salesforce session, the scheduled run killed with SIGKILL mid-apply, then recovery runs.
    Prints, per seed and in total, duplicates, lost writes and lost records; exit 1 unless all
    are 0."""
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
    total = result["total"]
    if as_json:
        _json(result)
    else:
        table = Table(title="chaos")
        columns = ("seed", "crm", "duplicates", "lost_writes", "lost_records", "faults", "seconds")
        for column in columns:
            table.add_column(column)
        for s in result["seeds"]:
            faults = ", ".join(f"{k} {v}" for k, v in s["faults"].items())
            table.add_row(*(str(s[c]) if c != "faults" else faults for c in columns))
        out.print(table)
        out.print(
            f"total: {total['duplicates']} duplicates, {total['lost_writes']} lost writes, "
            f"{total['lost_records']} lost records over {total['scenarios']} scenarios "
            f"({total['killed_mid_apply']} killed mid-apply)"
        )
    if total["duplicates"] or total["lost_writes"] or total["lost_records"]:
        raise typer.Exit(1)
