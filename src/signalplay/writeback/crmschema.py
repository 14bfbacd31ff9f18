"""What signalplay needs in the CRM, and a preflight of the CRM against it.

The account fields it writes (typed from the profile), the task fields (the episode key, unique, and
the closure reason picklist CSMs fill in), and the owners the routing names. Pure: connectors
describe the CRM, `crm setup` creates what is missing. Imports: stdlib, definitions, errors, expr.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from signalplay.definitions.compiled import Definitions
from signalplay.errors import Issue
from signalplay.lang.yamlsrc import YamlDoc, read_yaml
from signalplay.models import CrmMetadata, FieldSpec, Kind

# Reasons signalplay itself closes tasks with (an episode's condition cleared, its trigger
# retired): on the picklist beside the CSMs' codes so the CRM accepts them and reports tell
# them apart.
AUTO_CLOSE_REASONS = ("condition_cleared", "trigger_retired")
LONG_TEXT = frozenset({"health_drivers"})  # free text longer than a CRM text field's 255


@dataclass(frozen=True)
class Finding:
    """One preflight problem; `fixable` ones are what `crm setup` creates or extends."""

    issue: Issue
    fixable: bool
    spec: FieldSpec | None = None
    missing_options: tuple[str, ...] = ()


def _kind(defs: Definitions, profile_field: str) -> tuple[Kind, tuple[str, ...]]:
    vtype = defs.types.get(profile_field)
    if vtype is None or vtype.kind == "any":
        return "text", ()
    if vtype.enum is not None:
        return "picklist", tuple(sorted(vtype.enum))
    if profile_field in LONG_TEXT:
        return "textarea", ()
    kinds: dict[str, Kind] = {
        "number": "number",
        "int": "number",
        "float": "number",
        "date": "date",
        "datetime": "datetime",
        "bool": "boolean",
    }
    return kinds.get(vtype.kind, "text"), ()


def wanted_fields(defs: Definitions, task_fields: Mapping[str, str]) -> list[FieldSpec]:
    """Every field signalplay writes.

    `task_fields` names the connector's task fields for the roles `episode_key` and
    `closure_reason`.
    """
    out = []
    for crm_name, profile_field in defs.writeback.account_fields.items():
        kind, options = _kind(defs, profile_field)
        out.append(
            FieldSpec(
                object="account",
                name=crm_name,
                kind=kind,
                options=options,
                label=f"signalplay {profile_field.replace('_', ' ')}",
                file="writeback.yaml",
                loc=("account_fields", crm_name),
            )
        )
    out.append(
        FieldSpec(
            object="task",
            name=task_fields["episode_key"],
            kind="text",
            unique=True,
            label="signalplay episode key",
            file="signalplay.yaml",
            loc=("crm",),
        )
    )
    out.append(
        FieldSpec(
            object="task",
            name=task_fields["closure_reason"],
            kind="picklist",
            options=(
                *defs.writeback.closure_reasons,
                *(r for r in AUTO_CLOSE_REASONS if r not in defs.writeback.closure_reasons),
            ),
            label="signalplay closure reason",
            file="writeback.yaml",
            loc=("closure_reasons",),
        )
    )
    return out


def owner_refs(defs: Definitions) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """Owner ids the routing names: (owner id, file, key)."""
    routing = defs.routing
    refs: list[tuple[str, str, tuple[str | int, ...]]] = [
        (owner, "routing.yaml", ("owner_calendars", owner)) for owner in routing.owner_calendars
    ]
    refs += [(owner, "routing.yaml", ("queues", q)) for q, owner in routing.queues.items()]
    if routing.escalation_owner:
        refs.append((routing.escalation_owner, "routing.yaml", ("escalation_owner",)))
    return refs


Locate = Callable[[str], tuple[Path, str] | None]


class _Positions:
    """Issues positioned at their key, each RevOps file read and parsed once."""

    def __init__(self, locate: Locate | None) -> None:
        self._locate = locate
        self._docs: dict[str, YamlDoc | None] = {}

    def issue(self, file: str, loc: tuple[str | int, ...], message: str) -> Issue:
        if file not in self._docs:
            found = self._locate(file) if self._locate is not None else None
            ok = found is not None and found[0].is_file()
            self._docs[file] = read_yaml(found[0], display=found[1]) if ok and found else None
        doc = self._docs[file]
        if doc is not None:
            return doc.issue(loc, message)
        return Issue(file, None, None, ".".join(str(p) for p in loc), message)


def preflight(
    specs: Sequence[FieldSpec],
    meta: CrmMetadata,
    owners: Sequence[tuple[str, str, tuple[str | int, ...]]],
    *,
    locate: Locate | None = None,
    crm: str = "crm",
) -> list[Finding]:
    """What the CRM lacks.

    Fields, picklist values, uniqueness of the episode key, a kind that cannot hold the values,
    and owners that do not exist.
    """
    found: list[Finding] = []
    at = _Positions(locate)
    for spec in specs:
        where = f"{spec.object} field {spec.name!r}"
        have = meta.fields.get(spec.object, {}).get(spec.name)
        if have is None:
            message = f"{crm} has no {where} ({spec.kind}); `signalplay crm setup` creates it"
            found.append(Finding(at.issue(spec.file, spec.loc, message), True, spec))
            continue
        if spec.kind == "picklist" and have.kind == "picklist":
            missing = tuple(o for o in spec.options if o not in have.options)
            if missing:
                message = (
                    f"{crm} {where} lacks the picklist values {', '.join(missing)}; "
                    "`signalplay crm setup` adds them"
                )
                issue = at.issue(spec.file, spec.loc, message)
                found.append(Finding(issue, True, spec, missing))
        elif not _compatible(spec.kind, have.kind):
            message = f"{crm} {where} is {have.kind}; signalplay writes {spec.kind} values"
            found.append(Finding(at.issue(spec.file, spec.loc, message), False, spec))
        if spec.unique and not have.unique:
            message = (
                f"{crm} {where} must be unique (an external id): re-runs upsert on it and a "
                "duplicate key would create a second task"
            )
            found.append(Finding(at.issue(spec.file, spec.loc, message), False, spec))
    for owner, file, loc in owners:
        if owner not in meta.owners:
            message = f"owner {owner!r} does not exist in {crm} (or is inactive)"
            found.append(Finding(at.issue(file, loc, message), False))
    return found


def _compatible(wanted: str, have: str) -> bool:
    """Whether a CRM field of kind `have` holds what signalplay writes as `wanted`."""
    if wanted == have:
        return True
    # Text fields hold picklist values and short text; a picklist holds only its own values.
    return wanted in ("text", "picklist") and have in ("text", "textarea")
