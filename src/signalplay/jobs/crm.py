"""USE CASES · the CRM's side of the project.

Preflight against its metadata, and setup of the fields and picklists signalplay writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from signalplay.jobs.context import Context
from signalplay.jobs.results import CrmSetupResult
from signalplay.settings import CONFIG_FILE
from signalplay.writeback.crmschema import Finding, owner_refs, preflight, wanted_fields


def _locate(ctx: Context) -> Callable[[str], tuple[Path, str] | None]:
    """Where a RevOps file named in a preflight finding lives, and how to show it."""
    root = ctx.project.root

    def locate(file: str) -> tuple[Path, str]:
        path = root / file if file == CONFIG_FILE else ctx.project.definitions_dir / file
        try:
            return path, str(path.relative_to(root))
        except ValueError:
            return path, str(path)

    return locate


def crm_check(ctx: Context) -> list[Finding]:
    """Preflight the CRM against the mappings.

    Fields, picklist values, the unique episode key and the owners the routing names; nothing is
    written.
    """
    crm = ctx.crm
    return preflight(
        wanted_fields(ctx.definitions, crm.task_fields),
        crm.describe_crm(),
        owner_refs(ctx.definitions),
        locate=_locate(ctx),
        crm=ctx.project.settings.crm.connector,
    )


def crm_setup(ctx: Context, *, dry_run: bool = False) -> CrmSetupResult:
    """Create the missing fields and picklist values (with `dry_run`, only say which).

    Returns what was (or would be) done and what remains for a person to fix.
    """
    done: list[str] = []
    findings = crm_check(ctx)
    for finding in findings:
        spec = finding.spec
        if not finding.fixable or spec is None:
            continue
        what = f"{spec.object} field {spec.name}"
        if finding.missing_options:
            done.append(f"add {', '.join(finding.missing_options)} to {what}")
            if not dry_run:
                ctx.crm.add_picklist_values(spec, finding.missing_options)
        else:
            done.append(f"create {what} ({spec.kind})")
            if not dry_run:
                ctx.crm.create_field(spec)
    remaining = [f for f in findings if not f.fixable] if dry_run else crm_check(ctx)
    return CrmSetupResult(done=tuple(done), remaining=tuple(remaining), dry_run=dry_run)
