"""Load a definitions folder: validate each file, cross-check them, compile expressions and
templates once. Every problem is collected and raised together as one ConfigError.

Imports: definitions.schema, definitions.yamlsrc, expr, jinja2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from signalplay.definitions.schema import (
    HealthFile,
    MappingFile,
    PlaysFile,
    SignalsFile,
    TriggersFile,
    WritebackFile,
)
from signalplay.definitions.yamlsrc import Loc, YamlDoc, dotted, read_yaml, validate_doc
from signalplay.errors import ConfigError, Issue
from signalplay.expr import ExprError, Expression, compile_expr

RESERVED = {"signals", "health", "triggers", "plays", "writeback"}
BUILTIN_FIELDS = frozenset({"today", "account_key"})
HEALTH_FIELDS = frozenset({"health_score", "health_band"})

M = TypeVar("M", bound=BaseModel)


def template_env() -> ImmutableSandboxedEnvironment:
    """The sandboxed Jinja2 environment every play template renders in."""
    return ImmutableSandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping file and its compiled expressions."""

    spec: MappingFile
    path: str
    exprs: dict[str, Expression]
    wheres: dict[str, Expression]


@dataclass
class Definitions:
    """Every RevOps file of a project, validated and compiled."""

    mappings: list[CompiledMapping]
    signals: dict[str, Expression]
    health: HealthFile
    health_values: dict[str, Expression]
    triggers: TriggersFile
    trigger_conditions: dict[str, Expression]
    plays: PlaysFile
    writeback: WritebackFile
    profile_fields: frozenset[str]
    files: list[str] = field(default_factory=list)

    def play(self, play_id: str) -> Any:
        """The play with this id."""
        return next(p for p in self.plays.plays if p.id == play_id)


class _Collector:
    """Gathers issues across files so that one run reports all of them."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def load(self, model: type[M], path: Path, display: str) -> tuple[M, YamlDoc] | None:
        try:
            doc = read_yaml(path, display=display)
            return validate_doc(model, doc), doc
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            return None

    def expr(
        self, doc: YamlDoc, loc: Loc, text: str, names: frozenset[str] | None
    ) -> Expression | None:
        try:
            return compile_expr(text, names=names)
        except ExprError as exc:
            line, col = doc.where(loc)
            if col is not None and exc.column is not None and doc.positions.get(loc):
                col = col + exc.column - 1
            hint = (
                "fields are defined in the mapping files and signals.yaml"
                if "unknown field" in exc.message
                else ""
            )
            self.issues.append(Issue(doc.path, line, col, dotted(loc), exc.message, hint))
            return None


def load_definitions(folder: Path) -> Definitions:
    """Load and check every file under `folder`; raise one ConfigError listing every issue."""
    col = _Collector()
    shown = _display(folder)
    mapping_paths = sorted(p for p in folder.glob("*.yaml") if p.stem not in RESERVED)
    mappings = [m for p in mapping_paths if (m := _load_mapping(col, p, shown(p))) is not None]
    fields = _profile_fields(col, mappings)
    signals, fields = _load_signals(col, folder / "signals.yaml", shown, fields)
    health = col.load(HealthFile, folder / "health.yaml", shown(folder / "health.yaml"))
    health_values = _compile_all(
        col,
        health,
        lambda h: [(("measures", i, "value"), m.value) for i, m in enumerate(h.measures)],
        lambda loc: str(health[0].measures[int(loc[1])].id) if health else "",
        fields,
    )
    fields = fields | HEALTH_FIELDS
    plays = col.load(PlaysFile, folder / "plays.yaml", shown(folder / "plays.yaml"))
    triggers = col.load(TriggersFile, folder / "triggers.yaml", shown(folder / "triggers.yaml"))
    conditions = _load_conditions(col, triggers, fields)
    if plays:
        _check_plays(col, *plays)
    if triggers and plays:
        _check_trigger_plays(col, triggers, {p.id for p in plays[0].plays})
    writeback = col.load(WritebackFile, folder / "writeback.yaml", shown(folder / "writeback.yaml"))
    if writeback:
        for crm_field, name in writeback[0].account_fields.items():
            if name not in fields:
                col.issues.append(
                    writeback[1].issue(
                        ("account_fields", crm_field), f"unknown profile field {name!r}"
                    )
                )
    if col.issues or not (health and plays and triggers and writeback):
        raise ConfigError(col.issues)
    return Definitions(
        mappings=mappings,
        signals=signals,
        health=health[0],
        health_values=health_values,
        triggers=triggers[0],
        trigger_conditions=conditions,
        plays=plays[0],
        writeback=writeback[0],
        profile_fields=fields,
        files=[m.path for m in mappings],
    )


def _display(folder: Path) -> Callable[[Path], str]:
    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    return shown


def _load_mapping(col: _Collector, path: Path, display: str) -> CompiledMapping | None:
    loaded = col.load(MappingFile, path, display)
    if loaded is None:
        return None
    spec, doc = loaded
    exprs: dict[str, Expression] = {}
    wheres: dict[str, Expression] = {}
    for name, fs in spec.fields.items():
        loc: Loc = ("fields", name)
        if (fs.from_ is None) == (fs.expr is None) and fs.aggregate != "count":
            col.issues.append(doc.issue(loc, "give exactly one of 'from' or 'expr'"))
        if fs.aggregate and not spec.date_field and fs.window_days:
            col.issues.append(
                doc.issue((*loc, "window_days"), "a window needs 'date_field' on the mapping")
            )
        if fs.aggregate and spec.collect:
            col.issues.append(
                doc.issue((*loc, "aggregate"), "aggregates are not allowed in a 'collect' mapping")
            )
        if fs.expr is not None and (e := col.expr(doc, (*loc, "expr"), fs.expr, None)):
            exprs[name] = e
        if fs.where is not None and (w := col.expr(doc, (*loc, "where"), fs.where, None)):
            wheres[name] = w
    if spec.master and spec.identity.key != "crm_id":
        col.issues.append(
            doc.issue(("identity", "key"), "the master stream must be keyed on crm_id")
        )
    return CompiledMapping(spec=spec, path=display, exprs=exprs, wheres=wheres)


def _profile_fields(col: _Collector, mappings: Sequence[CompiledMapping]) -> frozenset[str]:
    owners: dict[str, str] = {}
    masters = [m for m in mappings if m.spec.master]
    if len(masters) != 1 and mappings:
        col.issues.append(
            Issue(
                mappings[0].path,
                1,
                1,
                "master",
                f"exactly one mapping must be 'master: true' (found {len(masters)})",
            )
        )
    for m in mappings:
        names = [m.spec.collect] if m.spec.collect else list(m.spec.fields)
        for name in names:
            if name in owners and name is not None:
                col.issues.append(
                    Issue(
                        m.path,
                        None,
                        None,
                        f"fields.{name}",
                        f"profile field {name!r} is already defined in {owners[name]}",
                        "each profile field has one owning mapping",
                    )
                )
            owners[name] = m.path
    return frozenset(owners) | BUILTIN_FIELDS


def _load_signals(
    col: _Collector, path: Path, shown: Callable[[Path], str], fields: frozenset[str]
) -> tuple[dict[str, Expression], frozenset[str]]:
    loaded = col.load(SignalsFile, path, shown(path))
    signals: dict[str, Expression] = {}
    if loaded is None:
        return signals, fields
    spec, doc = loaded
    for name, text in spec.signals.items():
        if name in fields:
            col.issues.append(doc.issue(("signals", name), f"{name!r} is already a profile field"))
        if (e := col.expr(doc, ("signals", name), text, fields)) is not None:
            signals[name] = e
        fields = fields | {name}
    return signals, fields


def _compile_all(
    col: _Collector,
    loaded: tuple[Any, YamlDoc] | None,
    items: Callable[[Any], list[tuple[Loc, str]]],
    key: Callable[[Loc], str],
    names: frozenset[str],
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    if loaded is None:
        return out
    spec, doc = loaded
    for loc, text in items(spec):
        if (e := col.expr(doc, loc, text, names)) is not None:
            out[key(loc)] = e
    return out


def _load_conditions(
    col: _Collector, loaded: tuple[TriggersFile, YamlDoc] | None, fields: frozenset[str]
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    if loaded is None:
        return out
    spec, doc = loaded
    seen: set[str] = set()
    for i, trig in enumerate(spec.triggers):
        if trig.id in seen:
            col.issues.append(doc.issue(("triggers", i, "id"), f"duplicate trigger id {trig.id!r}"))
        seen.add(trig.id)
        names = fields | frozenset(trig.thresholds)
        if (e := col.expr(doc, ("triggers", i, "when"), trig.when, names)) is not None:
            out[trig.id] = e
    return out


def _check_plays(col: _Collector, spec: PlaysFile, doc: YamlDoc) -> None:
    env = template_env()
    seen: set[str] = set()
    for i, play in enumerate(spec.plays):
        if play.id in seen:
            col.issues.append(doc.issue(("plays", i, "id"), f"duplicate play id {play.id!r}"))
        seen.add(play.id)
        for part in ("subject", "body"):
            try:
                env.parse(getattr(play.task, part))
            except TemplateSyntaxError as exc:
                line, column = doc.where(("plays", i, "task", part))
                at = (line + exc.lineno - (1 if part == "subject" else 0)) if line else None
                col.issues.append(
                    Issue(
                        doc.path,
                        at,
                        column,
                        f"plays[{i}].task.{part}",
                        f"template error: {exc.message}",
                    )
                )


def _check_trigger_plays(
    col: _Collector, loaded: tuple[TriggersFile, YamlDoc], play_ids: set[str]
) -> None:
    spec, doc = loaded
    for i, trig in enumerate(spec.triggers):
        if trig.play not in play_ids:
            col.issues.append(
                doc.issue(
                    ("triggers", i, "play"),
                    f"unknown play {trig.play!r}",
                    "plays are defined in plays.yaml",
                )
            )
