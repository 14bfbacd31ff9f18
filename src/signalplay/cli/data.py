"""Commands that look at the data.

Profile show and coverage, the identity report, quarantine, mapping preview, the JSON Schemas, and
the snapshot backfill.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from signalplay import jobs
from signalplay.cli._app import (
    JsonOpt,
    ProjectOpt,
    app,
    emit,
    guard,
    identity_app,
    mappings_app,
    out,
    profile_app,
    quarantine_app,
    using,
)
from signalplay.definitions.jsonschema import write_schemas
from signalplay.jobs import views
from signalplay.jobs.scaffold import shipped_mappings
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
    view = using(project, lambda ctx: views.profile(ctx, account))
    if as_json:
        emit(view)
        return
    key, rows = view.account, view.rows
    table = Table(title=f"profile of {key}")
    for column in ("field", "value", "from", "record", "observed"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.field, _short(r.value), r.origin, r.record_id, r.observed_at[:19])
    out.print(table)


@profile_app.command("coverage")
def profile_coverage(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """Profile coverage: percent of accounts with a value, per field and per source."""
    result = using(project, views.coverage_of).as_dict()
    if as_json:
        _json(result)
        return
    table = Table(title=f"profile coverage ({result['accounts']} accounts)")
    table.add_column("source / field")
    table.add_column("coverage %", justify="right")
    for name, pct in result["sources_pct"].items():
        table.add_row(Text(name, style="bold"), f"{pct:.1f}")
    for name, pct in result["fields_pct"].items():
        table.add_row(f"  {name}", f"{pct:.1f}")
    table.add_row(Text("overall", style="bold"), f"{result['overall_pct']:.1f}")
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
    issues = using(project, lambda ctx: views.identity_issues(ctx, problem=problem))
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
    rows, counts = using(
        project, lambda ctx: views.quarantine(ctx, source=source, stream=stream, limit=limit)
    )
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
            table.add_row(Text("problem", style="red"), r.problem)
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
    result = using(project, lambda ctx: jobs.backfill(ctx, days=days))
    if as_json:
        emit(result)
    else:
        out.print(
            f"backfilled {result.days} day(s) ({result.first_day} … {result.last_day}) for "
            f"{result.accounts} accounts: {result.snapshots} snapshots"
        )


@app.command("explain")
def explain(
    account: Annotated[str, typer.Argument(help="CRM account id, domain or exact name.")],
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Why each trigger fired or not for an account.

    Why each trigger fired or not for an account (its clauses against the segment's thresholds),
    its health breakdown, segments, and the decisions on its episodes.
    """
    result = using(project, lambda ctx: views.explanation(ctx, account))
    if as_json:
        emit(result)
        return
    _print_explanation(result.to_json())


def _print_explanation(result: dict[str, Any]) -> None:
    health = result["health"]
    segments = ", ".join(f"{k} {v}" for k, v in result["segments"].items())
    out.print(
        Text.assemble(
            (str(result["name"]), "bold"),
            f" ({result['account']}): stage {result['stage']}, risk {result['risk']}, {segments}",
        )
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
            t["trigger"],
            "yes" if t["fired"] else "no",
            Text.assemble(clauses, "\n", (values, "dim")),
            limits,
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
