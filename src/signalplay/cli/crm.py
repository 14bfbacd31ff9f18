"""`signalplay crm check` and `signalplay crm setup`: the CRM against the mappings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from signalplay import jobs
from signalplay.cli._app import JsonOpt, ProjectOpt, crm_app, emit, out, using
from signalplay.writeback.crmschema import Finding


def _finding_json(finding: Finding) -> dict[str, object]:
    issue = finding.issue
    return {
        "file": issue.file,
        "line": issue.line,
        "field": issue.field,
        "message": issue.message,
        "fixable": finding.fixable,
    }


@crm_app.command("check")
def crm_check(project: ProjectOpt = Path(), as_json: JsonOpt = False) -> None:
    """Preflight the CRM before any run.

    The fields signalplay writes and their picklist values, the unique episode key on tasks, the
    closure reason picklist, and the owners the routing names. Exits 1 when something is
    missing; writes nothing.
    """
    findings = using(project, jobs.crm_check)
    if as_json:
        out.print_json(
            json.dumps({"ok": not findings, "findings": [_finding_json(f) for f in findings]})
        )
    else:
        for f in findings:
            out.print(str(f.issue), highlight=False, soft_wrap=True)
        fixable = sum(f.fixable for f in findings)
        out.print(
            "ok: the CRM has every field, picklist value and owner signalplay needs"
            if not findings
            else f"{len(findings)} problem(s); {fixable} fixed by `signalplay crm setup`",
            highlight=False,
            soft_wrap=True,
        )
    if findings:
        raise typer.Exit(1)


@crm_app.command("setup")
def crm_setup(
    project: ProjectOpt = Path(),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be created.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the custom fields and properties signalplay writes.

    Create the custom fields and properties signalplay writes (health score, band, stage,
    drivers; the unique episode key and the closure reason picklist on tasks), and add missing
    picklist values. Exits 1 when problems remain that need a person (owners, field types).
    """
    result = using(project, lambda ctx: jobs.crm_setup(ctx, dry_run=dry_run))
    done, remaining = result.done, result.remaining
    if as_json:
        emit(result)
        if remaining:
            raise typer.Exit(1)
        return
    verb = "would " if dry_run else ""
    for line in done:
        out.print(f"{verb}{line}", highlight=False, soft_wrap=True)
    if not done:
        out.print("nothing to create: the CRM has every field signalplay writes")
    for f in remaining:
        out.print(f"still to fix: {f.issue}", highlight=False, soft_wrap=True)
    if remaining:
        raise typer.Exit(1)
