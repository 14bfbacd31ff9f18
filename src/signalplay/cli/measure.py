"""Commands that measure.

`report` (the KPIs, experiments, noisy triggers and the backtest, as an HTML file and tables in the
terminal) and `backtest` (one or two versions of the trigger file replayed over the snapshots).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from signalplay.cli._app import JsonOpt, ProjectOpt, app, emit, out, using
from signalplay.errors import ConfigError, Issue
from signalplay.jobs import measure as outcomes
from signalplay.jobs import tune
from signalplay.jobs.measure import write_report
from signalplay.measure.kpis import Period
from signalplay.measure.report import (
    BACKTEST_HEADERS,
    COHORT_HEADERS,
    KPI_HEADERS,
    LIFT_HEADERS,
    VERDICT_HEADERS,
    backtest_rows,
    cohort_rows,
    kpi_rows,
    lift_rows,
    renewal_rows,
    verdict_rows,
)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day (YYYY-MM-DD); default 90 days back.")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day (YYYY-MM-DD); default today.")]


def _period(today: date, start: str | None, end: str | None) -> Period:
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=89)
    except ValueError as exc:
        raise ConfigError([Issue("command line", None, None, "--from/--to", str(exc))]) from None
    if first > last:
        raise ConfigError([Issue("command line", None, None, "--from", "is after --to")])
    return Period(first, last)


def _print_table(title: str, headers: tuple[str, ...], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h == headers[0] else "right")
    for row in rows:
        table.add_row(
            *("-" if c is None else f"{c:.2f}" if isinstance(c, float) else str(c) for c in row)
        )
    out.print(table)


def print_report(report: dict[str, Any]) -> None:
    """The report's key tables, in the terminal."""
    m = report["measure"]
    _print_table("KPIs by trigger", KPI_HEADERS, kpi_rows(m["kpis"]["trigger"]))
    _print_table("Cohorts", COHORT_HEADERS, cohort_rows(m))
    _print_table("Renewals and adoption", ("measure", "value", "n"), renewal_rows(m))
    _print_table("Experiments", LIFT_HEADERS, lift_rows(m["experiments"]))
    _print_table("Noisy and predictive triggers", VERDICT_HEADERS, verdict_rows(report))
    _print_table("Backtest", BACKTEST_HEADERS, backtest_rows(report["backtest"]))


@app.command("report")
def report_cmd(
    start: FromOpt = None,
    end: ToOpt = None,
    output: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "signalplay-report.html"
    ),
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Measure a period, write the HTML report and print its key tables.

    Measure a period (KPIs, experiments, noisy triggers, backtest), write one self-contained
    HTML report with plots, and print the key tables.
    """
    path = output if output.is_absolute() else project / output
    report = using(
        project, lambda ctx: write_report(ctx, _period(ctx.clock().date(), start, end), path)
    )
    if as_json:
        emit(report)
        return
    print_report(report.to_json())
    out.print(f"report written to {path}")


@app.command("backtest")
def backtest_cmd(  # noqa: PLR0917 - Typer options
    start: FromOpt = None,
    end: ToOpt = None,
    triggers: Annotated[
        Path | None, typer.Option("--triggers", help="A trigger file to replay instead.")
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option("--compare", help="A second trigger file, replayed side by side."),
    ] = None,
    episodes: Annotated[
        Path | None,
        typer.Option("--episodes", help="Write every replayed episode to this CSV file."),
    ] = None,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Replay the trigger library and health score over a period's snapshots.

    Replay the trigger library and the health score over the snapshots of a period against the
    churn the profiles know: per trigger precision, recall, lead time before churn and episodes
    per account per month; health AUC. With --compare, two versions side by side.
    """
    files = [triggers] if compare is None else [triggers, compare]
    results = using(
        project,
        lambda ctx: outcomes.backtests(
            ctx, _period(ctx.clock().date(), start, end), files, episodes=episodes
        ),
    )
    if as_json:
        emit(results)
        return
    if not results.complete:
        out.print("no snapshots in the period: run `signalplay backfill` first")
        raise typer.Exit(1)
    shown = results.to_json()
    written = shown.pop("episodes_file", None)
    _print_backtests(shown)
    if written:
        out.print(f"episodes written to {written}")


def _print_backtests(results: dict[str, Any]) -> None:
    names = list(results)
    first = results[names[0]]
    out.print(
        f"backtest {first['from']} … {first['to']}: {first['accounts']} accounts, "
        f"{first['churned']} churned, base rate {first['base_rate'] or 0:.1%}"
    )
    for name in names:
        h = results[name]["health"]
        line = f"  {name}: health AUC {h['auc'] if h['auc'] is None else round(h['auc'], 3)}"
        for days, segments in (h.get("at_horizons") or {}).items():
            both = segments.get("all")
            if both and both["auc"] is not None:
                line += (
                    f"; {days} days before the decision {both['auc']:.3f} "
                    f"({both['accounts']} accounts, {both['churned']} churned)"
                )
        out.print(line)
    labels = "AB"
    if len(names) > 1:
        out.print("  " + ", ".join(f"{labels[i]} = {Path(n).name}" for i, n in enumerate(names)))
    table = Table(title_justify="left")
    table.add_column("trigger", no_wrap=True)
    for i, _ in enumerate(names):
        tag = f"{labels[i]} " if len(names) > 1 else ""
        for h in ("episodes", "precision", "recall", "lead days"):
            table.add_column(f"{tag}{h}", justify="right")
    by_name = {n: {t["trigger"]: t for t in results[n]["triggers"]} for n in names}
    triggers = sorted({t for n in names for t in by_name[n]})
    for trig in triggers:
        cells = [trig]
        for n in names:
            t = by_name[n].get(trig)
            if t is None:
                cells += ["-"] * 4
                continue
            cells += [
                str(t["episodes"]),
                "-" if t["precision"] is None else f"{t['precision']:.0%}",
                "-" if t["recall"] is None else f"{t['recall']:.0%}",
                "-" if t["lead_days"] is None else f"{t['lead_days']:.0f}",
            ]
        table.add_row(*cells)
    out.print(table)


tune_app = typer.Typer(no_args_is_help=True, help="Fit the scorecard on outcomes; propose.")
app.add_typer(tune_app, name="tune")


@tune_app.command("health")
def tune_health_cmd(
    horizon: Annotated[
        int | None,
        typer.Option("--horizon", min=7, max=730, help="Churn this soon counts (days)."),
    ] = None,
    step: Annotated[
        int, typer.Option("--step", min=1, max=90, help="Use every Nth snapshot day.")
    ] = 7,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Fit the health weights and bands on the history's outcomes; write health.yaml.proposed.

    A logistic regression of churn within the horizon on each measure's score, fitted on the
    older snapshot days and judged on the newer ones; nothing changes until health.yaml is
    replaced with the proposal.
    """
    result = using(project, lambda ctx: tune.tune_health(ctx, step_days=step, horizon=horizon))
    if as_json:
        emit(result)
        return
    p = result.proposal
    table = Table(title_justify="left")
    for h in ("measure", "weight now", "proposed", "coefficient"):
        table.add_column(h, justify="left" if h == "measure" else "right")
    for name, weight in p.overall.weights.items():
        table.add_row(
            name,
            f"{result.current.get(name, 0):g}",
            f"{weight:g}",
            f"{p.overall.coefficients[name]:+.2f}",
        )
    out.print(table)
    for label, part in (("older days (fit)", p.train), ("newer days (judged)", p.test)):
        out.print(
            f"{label}: {part['account_days']} account-days, {part['churned']} churned; "
            f"AUC {part['auc_current']} now, {part['auc_proposed']} proposed; red holds "
            f"{part['red_share_proposed']} of account-days, {part['churners_in_red_proposed']} "
            "of churners"
        )
    out.print(f"bands: red below {p.yellow_at}, green from {p.green_at}")
    if p.anti_predictive:
        out.print("anti-predictive (weight 0): " + ", ".join(p.anti_predictive))
    out.print(f"proposal written to {result.path}: review it, then replace health.yaml with it")


@tune_app.command("triggers")
def tune_triggers_cmd(
    trigger: Annotated[
        list[str] | None,
        typer.Option("--trigger", "-t", help="Tune only this trigger (repeatable)."),
    ] = None,
    project: ProjectOpt = Path(),
    as_json: JsonOpt = False,
) -> None:
    """Replay threshold variants of each trigger; write triggers.yaml.proposed.

    Each numeric threshold scaled by 0.7, 0.85, 1.2 and 1.4 (segment overrides with it) is
    replayed beside the trigger; the best on the older half of the history (F0.5) is proposed
    when the newer half agrees. Triggers no better than chance are flagged to retire.
    """
    result = using(project, lambda ctx: tune.tune_triggers(ctx, only=tuple(trigger or ())))
    if as_json:
        emit(result)
        return
    table = Table(title_justify="left")
    for h in ("trigger", "verdict", "precision", "recall", "episodes", "proposed"):
        table.add_column(h, justify="left" if h in ("trigger", "verdict", "proposed") else "right")
    for t in result.tunings:
        after = t.proposed_newer
        table.add_row(
            t.trigger,
            t.verdict,
            _arrow(t.newer.precision, after.precision if after else None),
            _arrow(t.newer.recall, after.recall if after else None),
            f"{t.newer.episodes}" + (f" -> {after.episodes}" if after else ""),
            f"{t.proposed.threshold} {t.proposed.value:g}"
            if t.proposed and t.proposed.value is not None
            else "",
        )
    out.print(table)
    out.print(
        f"{result.variants} variants replayed; figures on the days from {result.split} "
        f"(the newer half); base churn rate {_share(result.base_rate)}"
    )
    for t in result.tunings:
        if t.verdict != "keep":
            out.print(f"{t.trigger}: {t.verdict}: {t.reason}")
    out.print(f"proposal written to {result.path}: review it, then replace triggers.yaml with it")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _arrow(before: float | None, after: float | None) -> str:
    return _share(before) + (f" -> {_share(after)}" if after is not None else "")
