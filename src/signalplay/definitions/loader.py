"""Load a definitions folder: validate each file, cross-check them against the profile schema,
compile fields, expressions and templates once. Every problem is collected and raised together
as one ConfigError naming file, line, column and field.

Imports: definitions.schema, definitions.fields, definitions.yamlsrc, expr, transforms, jinja2.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import TemplateSyntaxError, nodes
from pydantic import BaseModel

from signalplay.definitions.fields import (
    Extractor,
    builtin_types,
    compile_field,
    declared_type,
    field_type,
)
from signalplay.definitions.schema import (
    FieldSpec,
    HealthFile,
    MappingFile,
    Match,
    Play,
    PlaysFile,
    RoutingFile,
    SegmentsFile,
    SignalsFile,
    Trigger,
    TriggersFile,
    ValueSpec,
    WritebackFile,
)
from signalplay.errors import ConfigError, Issue
from signalplay.lang.calendar import check_calendar
from signalplay.lang.expr import NUMBER, TEXT, ExprError, Expression, ValueType, compile_expr
from signalplay.lang.templates import ENV, check_template
from signalplay.lang.transforms import compile_path, normalize_key, zone
from signalplay.lang.yamlsrc import Loc, YamlDoc, dotted, read_yaml, validate_doc

RESERVED = {"signals", "health", "triggers", "plays", "writeback", "segments", "routing"}
BUILTIN_FIELDS = frozenset({"today", "account_key"})
HEALTH_FIELDS = frozenset({"health_score", "health_band", "health_drivers", "health_trend"})
SEGMENT_FIELDS = frozenset({"stage", "risk"})
OPTIONAL_FILES = ("segments", "routing")
DATE_CASTS = {"date", "datetime"}

M = TypeVar("M", bound=BaseModel)
KeyReader = Callable[[Any], str | None]


def key_reader(path: str, normalize: str | None) -> KeyReader:
    """A compiled reader of one identity key."""
    get = compile_path(path)
    return lambda data: normalize_key(get(data), normalize)


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping file with its fields, identity keys and filters compiled."""

    spec: MappingFile
    path: str
    extractors: dict[str, Extractor]
    wheres: dict[str, Expression]
    types: dict[str, ValueType]
    identity: tuple[tuple[str, KeyReader], ...]
    provides: tuple[tuple[str, KeyReader], ...]
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """`source.stream`."""
        return f"{self.spec.source}.{self.spec.stream}"


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
    segments: SegmentsFile
    segment_conditions: dict[tuple[str, str], Expression]
    stage_conditions: dict[tuple[str, str], Expression]
    close_conditions: dict[str, Expression]
    routing: RoutingFile
    suppress_conditions: dict[str, Expression]
    late_dimensions: frozenset[str] = frozenset()
    types: dict[str, ValueType] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def trigger(self, trigger_id: str) -> Trigger:
        """The trigger with this id."""
        return self._triggers_by_id[trigger_id]

    def play(self, play_id: str) -> Play:
        """The play with this id."""
        return self._plays_by_id[play_id]

    @cached_property
    def _triggers_by_id(self) -> dict[str, Trigger]:
        return {t.id: t for t in self.triggers.triggers}

    @cached_property
    def _plays_by_id(self) -> dict[str, Play]:
        return {p.id: p for p in self.plays.plays}

    @property
    def master(self) -> CompiledMapping:
        """The mapping of the stream that defines the accounts."""
        return next(m for m in self.mappings if m.spec.master)

    @cached_property
    def history(self) -> frozenset[tuple[str, str, int]]:
        """Every (function, field, days) the expressions read from the snapshots."""
        exprs = [
            *self.signals.values(),
            *self.health_values.values(),
            *self.trigger_conditions.values(),
            *self.segment_conditions.values(),
            *self.stage_conditions.values(),
            *self.close_conditions.values(),
            *self.suppress_conditions.values(),
        ]
        days = self.health.trend_days
        own = {("ago", "stage", 1), ("ago", "health_score", days)}
        own |= {("ago", f"health_{m.id}", days) for m in self.health.measures}
        return frozenset(own).union(*(e.history for e in exprs))


class _Collector:
    """Gathers issues across files so that one run reports all of them."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        # Field names of mapping files that failed: other files may use them without an
        # "unknown field" error each, so that one mistake reads as one error.
        self.salvaged: set[str] = set()
        self.masters = 0

    def load(self, model: type[M], path: Path, display: str) -> tuple[M, YamlDoc] | None:
        try:
            doc = read_yaml(path, display=display)
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self._salvage_text(path)
            return None
        try:
            return validate_doc(model, doc), doc
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self._salvage(doc.data)
            return None

    def _salvage_text(self, path: Path) -> None:
        """Field names of a file that does not parse: the keys indented under `fields:`."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        block = re.search(r"^fields:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.MULTILINE)
        if block:
            self.salvaged.update(re.findall(r"^  ([a-z][a-z0-9_]*)\s*:", block.group(1), re.M))
        if re.search(r"^master:\s*true\s*$", text, re.MULTILINE):
            self.masters += 1

    def _salvage(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        fields = data.get("fields")
        if isinstance(fields, dict):
            self.salvaged.update(str(k) for k in fields)
        if isinstance(data.get("collect"), str):
            self.salvaged.add(data["collect"])
        if data.get("master") in (True, "yes", "true"):
            self.masters += 1

    def add(self, doc: YamlDoc, loc: Loc, message: str, hint: str = "") -> None:
        self.issues.append(doc.issue(loc, message, hint))

    def expr(
        self,
        doc: YamlDoc,
        /,
        loc: Loc,
        text: str,
        names: frozenset[str] | None,
        *,
        types: dict[str, ValueType] | None = None,
        history: frozenset[str] | None = None,
    ) -> Expression | None:
        try:
            return compile_expr(text, names=names, types=types, history_names=history)
        except ExprError as exc:
            line, col = doc.where(loc)
            value = doc.values.get(loc)
            if value is not None and exc.column is not None and value.style not in ("|", ">"):
                line = value.line
                col = value.column + exc.column - 1 + (1 if value.style in ("'", '"') else 0)
            hint = (
                "fields are defined in the mapping files and signals.yaml"
                if "unknown field" in exc.message
                else ""
            )
            self.issues.append(Issue(doc.path, line, col, dotted(loc), exc.message, hint))
            return None


LOADED_KEEP = 4  # definitions sets a process keeps (a worker usually serves one project)
_LOADED: OrderedDict[tuple[str, str], Definitions] = OrderedDict()


def load_definitions_cached(folder: Path) -> Definitions:
    """`load_definitions(folder)`, kept while every file under `folder` stays byte for byte the
    same: a Celery worker opens the project for every task, and loading the files takes 60-100
    ms, a shard's own work a few hundred. An edit (or a `git pull`) is read by the next task; a
    broken edit raises as it would, and nothing is kept for it."""
    key = (str(folder.resolve()), _fingerprint(folder))
    hit = _LOADED.get(key)
    if hit is not None:
        _LOADED.move_to_end(key)
        return hit
    defs = load_definitions(folder)
    _LOADED[key] = defs
    while len(_LOADED) > LOADED_KEEP:
        _LOADED.popitem(last=False)
    return defs


def _fingerprint(folder: Path) -> str:
    """A digest of the names and contents of the files under `folder`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_definitions(
    folder: Path, *, replace: Path | None = None, triggers_file: Path | None = None
) -> Definitions:
    """Load and check every file under `folder`; raise one ConfigError listing every issue.

    `replace` is a mapping file read instead of the folder's file for the same stream (or in
    addition, when the folder has none): the file a RevOps user is editing, for a preview.
    `triggers_file` is read instead of the folder's triggers.yaml (a backtest of another version).
    """
    col = _Collector()
    mappings = _load_mappings(col, folder, replace)
    types = _profile_types(col, mappings)
    types.update({n: ValueType() for n in col.salvaged if n not in types})
    signals_doc = col.load(SignalsFile, *_file(folder, "signals"))
    signal_names = frozenset(signals_doc[0].signals) if signals_doc else frozenset()
    health = col.load(HealthFile, *_file(folder, "health"))
    segments = _load_optional(col, folder, "segments", SegmentsFile)
    generated = _generated_types(health[0] if health else None, segments[0] if segments else None)
    history = frozenset(types) | signal_names | frozenset(generated)
    signals = _compile_signals(col, signals_doc, types, history)
    types.update(builtin_types())
    types.update(generated)
    seg = _compile_segments(col, segments, types, history)
    health_values = _compile_health(col, health, types, history, late=seg.late)
    plays = col.load(PlaysFile, *_file(folder, "plays"))
    where = (
        _file(folder, "triggers") if triggers_file is None else (triggers_file, str(triggers_file))
    )
    triggers = col.load(TriggersFile, *where)
    conditions, closers = _load_conditions(col, triggers, types, history, late=frozenset())
    if plays:
        _check_plays(
            col,
            *plays,
            fields=frozenset(types),
            roles=_contact_roles(mappings),
            segments=segments,
        )
    if triggers and plays:
        _check_trigger_plays(col, triggers, {p.id for p in plays[0].plays})
    routing = _load_optional(col, folder, "routing", RoutingFile)
    suppress = _check_routing(
        col, routing, triggers=triggers, plays=plays, types=types, history=history
    )
    writeback = col.load(WritebackFile, *_file(folder, "writeback"))
    if writeback:
        for crm_field, name in writeback[0].account_fields.items():
            if name not in types:
                col.add(writeback[1], ("account_fields", crm_field), f"unknown field {name!r}")
    if col.issues or not (
        health and plays and triggers and writeback and signals_doc and segments and routing
    ):
        raise ConfigError(_unique(col.issues))
    return Definitions(
        mappings=mappings,
        signals=signals,
        health=health[0],
        health_values=health_values,
        triggers=triggers[0],
        trigger_conditions=conditions,
        plays=plays[0],
        writeback=writeback[0],
        profile_fields=frozenset(types),
        segments=segments[0],
        segment_conditions=seg.dimensions,
        stage_conditions=seg.stages,
        close_conditions=closers,
        routing=routing[0],
        suppress_conditions=suppress,
        late_dimensions=seg.late,
        types=types,
        files=[m.path for m in mappings],
    )


def _file(folder: Path, stem: str) -> tuple[Path, str]:
    path = folder / f"{stem}.yaml"
    return path, _display(path)


def _load_optional(
    col: _Collector, folder: Path, stem: str, model: type[M]
) -> tuple[M, YamlDoc] | None:
    """A file that may be left out: its defaults apply (a project scaffolded before it existed)."""
    path, display = _file(folder, stem)
    if not path.exists():
        doc = YamlDoc(display, {"version": 1}, {}, {})
        return model.model_validate({"version": 1}), doc
    return col.load(model, path, display)


def _generated_types(
    health: HealthFile | None, segments: SegmentsFile | None
) -> dict[str, ValueType]:
    """Fields signalplay computes: health and its measures, stage, risk and the dimensions."""
    out: dict[str, ValueType] = {
        "health_score": NUMBER,
        "health_band": ValueType("text", frozenset({"green", "yellow", "red"})),
        "health_drivers": TEXT,
        "health_trend": NUMBER,
    }
    for m in health.measures if health else ():
        out[f"health_{m.id}"] = NUMBER
    if segments is not None:
        out["stage"] = ValueType("text", frozenset(s.id for s in segments.stages))
        out["risk"] = ValueType("text", frozenset(segments.risk.values()))
        for name, values in segments.dimensions.items():
            out[name] = ValueType("text", frozenset(v.id for v in values))
    return out


@dataclass
class _Segments:
    dimensions: dict[tuple[str, str], Expression] = field(default_factory=dict)
    stages: dict[tuple[str, str], Expression] = field(default_factory=dict)
    late: frozenset[str] = frozenset()


def _compile_segments(
    col: _Collector,
    loaded: tuple[SegmentsFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> _Segments:
    out = _Segments()
    if loaded is None:
        return out
    spec, doc = loaded
    health = {n for n in types if n.startswith("health_")}
    late: set[str] = set()
    known = frozenset(types) - set(spec.dimensions) - SEGMENT_FIELDS
    for name, values in spec.dimensions.items():
        if name in known:
            col.add(doc, ("dimensions", name), f"{name!r} is already a profile field")
        for i, value in enumerate(values):
            loc: Loc = ("dimensions", name, i)
            if value.when is None:
                if i != len(values) - 1:
                    col.add(doc, (*loc, "when"), "only the last value may go without 'when'")
                continue
            expr = col.expr(doc, (*loc, "when"), value.when, known, types=types, history=history)
            if expr is not None:
                out.dimensions[(name, value.id)] = expr
                if expr.names & (health | late | SEGMENT_FIELDS):
                    late.add(name)
        known = known | {name}
    for i, stage in enumerate(spec.stages):
        for part in ("enter", "exit"):
            text = getattr(stage, part)
            loc = ("stages", i, part)
            if text is not None and (
                expr := col.expr(doc, loc, text, frozenset(types), types=types, history=history)
            ):
                out.stages[(stage.id, part)] = expr
    out.late = frozenset(late)
    return out


def _check_match(
    col: _Collector,
    doc: YamlDoc,
    loc: Loc,
    match: Match,
    types: dict[str, ValueType],
    *,
    late: frozenset[str] = frozenset(),
) -> None:
    for key, wanted in match.items():
        vtype = types.get(key)
        if vtype is None:
            col.add(
                doc, (*loc, key), f"unknown field {key!r}", "match on a text field such as tier"
            )
            continue
        if key in late:
            col.add(
                doc, (*loc, key), f"{key!r} is computed from the health score: it cannot set it"
            )
        if vtype.kind not in ("text", "any"):
            col.add(doc, (*loc, key), f"type mismatch: match on text fields, {key!r} is {vtype}")
            continue
        for value in (wanted,) if isinstance(wanted, str) else wanted:
            if vtype.enum is not None and value not in vtype.enum:
                allowed = ", ".join(sorted(vtype.enum))
                col.add(
                    doc, (*loc, key), f"wrong enum value {value!r} for {key} (allowed: {allowed})"
                )


def _unique(issues: list[Issue]) -> list[Issue]:
    return list(dict.fromkeys(issues))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_mappings(col: _Collector, folder: Path, replace: Path | None) -> list[CompiledMapping]:
    paths = sorted(p for p in folder.glob("*.yaml") if p.stem not in RESERVED)
    mappings = [m for p in paths if (m := _load_mapping(col, p, _display(p))) is not None]
    if replace is not None:
        extra = _load_mapping(col, replace, _display(replace))
        if extra is not None:
            mappings = [m for m in mappings if m.name != extra.name] + [extra]
    masters = [m for m in mappings if m.spec.master]
    if len(masters) + col.masters != 1 and mappings:
        col.issues.append(
            Issue(
                mappings[0].path,
                1,
                1,
                "master",
                f"exactly one mapping must be 'master: true' (found {len(masters)})",
                "the master stream is the CRM's accounts; every other stream joins onto it",
            )
        )
    return mappings


def _load_mapping(col: _Collector, path: Path, display: str) -> CompiledMapping | None:
    loaded = col.load(MappingFile, path, display)
    if loaded is None:
        return None
    spec, doc = loaded
    before = len(col.issues)
    _check_mapping(col, spec, doc)
    extractors: dict[str, Extractor] = {}
    wheres: dict[str, Expression] = {}
    types: dict[str, ValueType] = {}
    for name, fs in spec.fields.items():
        loc: Loc = ("fields", name)
        start = len(col.issues)
        _check_field(col, doc, loc, fs, spec)
        expr = _value_expr(col, doc, (*loc, "expr"), fs)
        options = [
            _value_expr(col, doc, (*loc, "first_of", i, "expr"), o)
            for i, o in enumerate(fs.first_of or ())
        ]
        if fs.where is not None and (w := col.expr(doc, (*loc, "where"), fs.where, None)):
            wheres[name] = w
        types[name] = _field_type(col, doc, loc, fs, expr=expr, options=options)
        if len(col.issues) == start:
            extractors[name] = compile_field(fs, expr, options)
    if len(col.issues) > before:
        col.salvaged.update(spec.fields)
        col.masters += spec.master
        return None
    return CompiledMapping(
        spec=spec,
        path=display,
        extractors=extractors,
        wheres=wheres,
        types=types,
        identity=tuple((k.key, key_reader(k.field, k.normalize)) for k in spec.identity),
        provides=tuple(
            (kind, key_reader(k.field, k.normalize)) for kind, k in spec.provides.items()
        ),
        positions={
            n: doc.positions[("fields", n)] for n in spec.fields if ("fields", n) in doc.positions
        },
    )


def _value_expr(col: _Collector, doc: YamlDoc, loc: Loc, spec: ValueSpec) -> Expression | None:
    return None if spec.expr is None else col.expr(doc, loc, spec.expr, None)


def _check_mapping(col: _Collector, spec: MappingFile, doc: YamlDoc) -> None:
    if spec.master and (len(spec.identity) != 1 or spec.identity[0].key != "crm_id"):
        col.add(doc, ("identity",), "the master stream must be keyed on crm_id alone")
    if spec.master and spec.collect:
        col.add(doc, ("collect",), "the master stream cannot be a 'collect' mapping")
    kinds = [k.key for k in spec.identity]
    for i, kind in enumerate(kinds):
        if kind in kinds[:i]:
            col.add(doc, ("identity", i, "key"), f"identity key {kind!r} is listed twice")
    if spec.timezone is not None:
        _check_zone(col, doc, ("timezone",), spec.timezone)
    if not spec.fields:
        col.add(doc, ("fields",), "a mapping needs at least one field")
    if not spec.identity:
        col.add(doc, ("identity",), "a mapping needs an identity key")


def _check_zone(col: _Collector, doc: YamlDoc, loc: Loc, name: str) -> None:
    try:
        zone(name)
    except ValueError as exc:
        col.add(doc, loc, str(exc), "use an IANA name such as Europe/Berlin or America/New_York")


def _check_field(
    col: _Collector, doc: YamlDoc, loc: Loc, fs: FieldSpec, mapping: MappingFile
) -> None:
    sources = [fs.from_ is not None, fs.expr is not None, fs.first_of is not None]
    if sum(sources) != 1 and not (fs.aggregate == "count" and not any(sources)):
        col.add(doc, loc, "give exactly one of 'from', 'expr' or 'first_of'")
    for i, option in enumerate(fs.first_of or ()):
        if (option.from_ is None) == (option.expr is None):
            col.add(doc, (*loc, "first_of", i), "give exactly one of 'from' or 'expr'")
        _check_value(col, doc, (*loc, "first_of", i), option)
    _check_value(col, doc, loc, fs)
    if fs.aggregate and fs.window_days and not mapping.date_field:
        col.add(doc, (*loc, "window_days"), "a window needs 'date_field' on the mapping")
    if fs.aggregate and mapping.collect:
        col.add(doc, (*loc, "aggregate"), "aggregates are not allowed in a 'collect' mapping")
    if fs.where is not None and not fs.aggregate:
        col.add(doc, (*loc, "where"), "'where' filters the records of an aggregate")
    if fs.offset_days and not fs.window_days:
        col.add(doc, (*loc, "offset_days"), "'offset_days' shifts a window: set 'window_days'")
    if fs.values is not None and fs.type not in (None, "text"):
        col.add(doc, (*loc, "values"), "enum 'values' are for text fields")


def _check_value(col: _Collector, doc: YamlDoc, loc: Loc, spec: ValueSpec) -> None:
    if spec.map is not None and spec.rules is not None:
        col.add(doc, (*loc, "rules"), "give either 'map' or 'rules', not both")
    if (spec.currency or spec.currency_from) and spec.cast != "money":
        col.add(doc, (*loc, "currency"), "a currency goes with 'cast: money'")
    if spec.cast == "money" and not (spec.currency or spec.currency_from):
        col.add(
            doc,
            (*loc, "cast"),
            "'cast: money' needs 'currency' (e.g. usd) or 'currency_from' (a record field)",
        )
    if spec.timezone is not None:
        _check_zone(col, doc, (*loc, "timezone"), spec.timezone)
    if (spec.timezone or spec.epoch) and spec.cast not in DATE_CASTS:
        col.add(doc, (*loc, "cast"), "'timezone' and 'epoch' go with 'cast: date' or 'datetime'")
    if spec.reduce and not (spec.from_ and any("[*]" in p for p in spec.from_)):
        col.add(doc, (*loc, "reduce"), "'reduce' needs a list path such as items.data[*].quantity")


def _field_type(
    col: _Collector,
    doc: YamlDoc,
    loc: Loc,
    fs: FieldSpec,
    *,
    expr: Expression | None,
    options: list[Expression | None],
) -> ValueType:
    inferred = field_type(fs, expr, options)
    if fs.aggregate in ("sum", "avg"):
        value_kind = field_type(fs.model_copy(update={"aggregate": None}), expr, options).kind
        if value_kind not in ("number", "any", "bool"):
            col.add(
                doc,
                (*loc, "aggregate"),
                f"type mismatch: {fs.aggregate} needs numbers, the field yields {value_kind}",
            )
    declared = declared_type(fs)
    if declared is None:
        return inferred
    if inferred.kind != "any" and declared.kind not in ("any", inferred.kind):
        col.add(
            doc,
            (*loc, "type"),
            f"type mismatch: declared {declared.kind}, but the field yields {inferred.kind}",
        )
    if declared.enum is not None and inferred.enum is not None and inferred.enum - declared.enum:
        extra = ", ".join(sorted(inferred.enum - declared.enum))
        col.add(doc, (*loc, "values"), f"wrong enum value: the field can yield {extra}")
    return declared


def _profile_types(col: _Collector, mappings: Sequence[CompiledMapping]) -> dict[str, ValueType]:
    owners: dict[str, str] = {}
    types: dict[str, ValueType] = {}
    for m in mappings:
        produced = {m.spec.collect: ValueType("list")} if m.spec.collect else m.types
        for name, vtype in produced.items():
            if name in owners or name in BUILTIN_FIELDS | HEALTH_FIELDS:
                where = owners.get(name, "signalplay itself")
                line, column = m.positions.get(name, (None, None))
                col.issues.append(
                    Issue(
                        m.path,
                        line,
                        column,
                        f"fields.{name}",
                        f"profile field {name!r} is already defined in {where}",
                        "each profile field has one owning mapping",
                    )
                )
            owners[name] = m.path
            types[name] = vtype
    return types


def _contact_roles(mappings: Sequence[CompiledMapping]) -> ValueType | None:
    """The roles the contacts mapping can give, when it says (an enum)."""
    for m in mappings:
        if m.spec.collect == "contacts" and "role" in m.types:
            return m.types["role"]
    return None


def _compile_signals(
    col: _Collector,
    loaded: tuple[SignalsFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> dict[str, Expression]:
    signals: dict[str, Expression] = {}
    if loaded is None:
        return signals
    spec, doc = loaded
    known = frozenset(types) | BUILTIN_FIELDS
    scope_types = {**types, **builtin_types()}
    for name, text in spec.signals.items():
        if name in known or name in HEALTH_FIELDS:
            col.add(doc, ("signals", name), f"{name!r} is already a profile field")
        expr = col.expr(doc, ("signals", name), text, known, types=scope_types, history=history)
        if expr is not None:
            signals[name] = expr
            types[name] = scope_types[name] = expr.type
        known = known | {name}
    return signals


def _compile_health(
    col: _Collector,
    loaded: tuple[HealthFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
    *,
    late: frozenset[str],
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    if loaded is None:
        return out
    spec, doc = loaded
    names = frozenset(types) | BUILTIN_FIELDS
    seen: set[str] = set()
    for i, measure in enumerate(spec.measures):
        loc: Loc = ("measures", i, "value")
        if measure.id in seen:
            col.add(doc, ("measures", i, "id"), f"duplicate measure id {measure.id!r}")
        seen.add(measure.id)
        expr = col.expr(doc, loc, measure.value, names, types=types, history=history)
        if expr is None:
            continue
        if expr.type.kind not in ("number", "bool", "any"):
            col.add(doc, loc, f"type mismatch: a measure's value must be a number, not {expr.type}")
        if expr.names & {"health_score", "health_band", "health_trend"}:
            col.add(doc, loc, "a measure cannot read the health score it is part of")
        out[measure.id] = expr
    for i, override in enumerate(spec.segments):
        _check_match(col, doc, ("segments", i, "match"), override.match, types, late=late)
        for m in override.weights:
            if m not in seen:
                col.add(doc, ("segments", i, "weights", m), f"unknown measure {m!r}")
    return out


def _load_conditions(
    col: _Collector,
    loaded: tuple[TriggersFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
    *,
    late: frozenset[str],
) -> tuple[dict[str, Expression], dict[str, Expression]]:
    out: dict[str, Expression] = {}
    closers: dict[str, Expression] = {}
    if loaded is None:
        return out, closers
    spec, doc = loaded
    seen: set[str] = set()
    for i, trig in enumerate(spec.triggers):
        if trig.id in seen:
            col.add(doc, ("triggers", i, "id"), f"duplicate trigger id {trig.id!r}")
        seen.add(trig.id)
        names = frozenset(types) | frozenset(trig.thresholds)
        scope = {**types, **dict.fromkeys(trig.thresholds, NUMBER)}
        for part, target in (("when", out), ("close_when", closers)):
            text = getattr(trig, part)
            if text is None:
                continue
            expr = col.expr(doc, ("triggers", i, part), text, names, types=scope, history=history)
            if expr is not None:
                target[trig.id] = expr
        for j, override in enumerate(trig.segments):
            loc: Loc = ("triggers", i, "segments", j)
            _check_match(col, doc, (*loc, "match"), override.match, types, late=late)
            for name in override.thresholds:
                if name not in trig.thresholds:
                    col.add(
                        doc,
                        (*loc, "thresholds", name),
                        f"unknown threshold {name!r}",
                        "give every threshold a default in the trigger's own 'thresholds'",
                    )
            if override.sla:
                _check_sla(col, doc, (*loc, "sla"), override.sla, types)
        _check_sla(col, doc, ("triggers", i, "sla"), trig.sla, types)
    return out, closers


def _check_sla(
    col: _Collector, doc: YamlDoc, loc: Loc, sla: str, types: dict[str, ValueType]
) -> None:
    if not sla.startswith("by "):
        return
    name = sla[3:].split(" ", 1)[0]
    vtype = types.get(name)
    if vtype is None:
        col.add(doc, loc, f"unknown field {name!r} in the SLA", "'by' needs a date field")
    elif vtype.kind not in ("date", "datetime", "any"):
        col.add(doc, loc, f"type mismatch: 'by' needs a date field, {name!r} is {vtype}")


def _check_plays(
    col: _Collector,
    spec: PlaysFile,
    doc: YamlDoc,
    *,
    fields: frozenset[str],
    roles: ValueType | None,
    segments: tuple[SegmentsFile, YamlDoc] | None,
) -> None:
    seen: set[str] = set()
    stages = {s.id for s in segments[0].stages} if segments else set()
    role_names = set(roles.enum) if roles is not None and roles.enum is not None else None
    for block, by_stage in spec.content.items():
        for stage, by_role in by_stage.items():
            if stages and stage not in stages | {"any"}:
                allowed = ", ".join(sorted(stages | {"any"}))
                col.add(
                    doc, ("content", block, stage), f"unknown stage {stage!r} (stages: {allowed})"
                )
            for role, text in by_role.items():
                loc: Loc = ("content", block, stage, role)
                if role_names is not None and role not in role_names | {"any"}:
                    col.add(doc, loc, f"wrong enum value {role!r}: no contact gets this role")
                _check_template(col, doc, loc, text, fields=fields)
    for i, play in enumerate(spec.plays):
        if play.id in seen:
            col.add(doc, ("plays", i, "id"), f"duplicate play id {play.id!r}")
        seen.add(play.id)
        action_ids: set[str] = set()
        for k, action in enumerate(play.actions):
            loc = ("plays", i, "actions", k)
            if action.id in action_ids:
                col.add(doc, (*loc, "id"), f"duplicate action id {action.id!r}")
            action_ids.add(action.id)
            _check_action(col, doc, loc, action, fields=fields, roles=roles)


def _check_action(
    col: _Collector,
    doc: YamlDoc,
    loc: Loc,
    action: Any,
    *,
    fields: frozenset[str],
    roles: ValueType | None,
) -> None:
    for j, role in enumerate(action.audience):
        if roles is not None and roles.enum is not None and role not in roles.enum:
            allowed = ", ".join(sorted(roles.enum))
            col.add(
                doc,
                (*loc, "audience", j),
                f"wrong enum value {role!r}: no contact gets this role (roles: {allowed})",
            )
    if action.kind == "sequence" and not action.sequence:
        col.add(doc, (*loc, "sequence"), "a sequence action names the sequence to enroll in")
    if action.kind == "webhook" and not action.event:
        col.add(doc, (*loc, "event"), "a webhook action names its event, e.g. in_app_guidance")
    if action.kind in ("sequence", "webhook") and not action.audience:
        col.add(doc, (*loc, "audience"), f"a {action.kind} action needs an audience of roles")
    needs_text = action.kind not in ("sequence", "webhook")
    for part in ("subject", "body"):
        text = getattr(action, part)
        if text is None:
            if needs_text:
                col.add(doc, (*loc, part), f"a {action.kind} action needs a {part}")
            continue
        _check_template(col, doc, (*loc, part), text, fields=fields)


def _check_template(
    col: _Collector, doc: YamlDoc, loc: Loc, text: str, *, fields: frozenset[str]
) -> None:
    problem = check_template(text)
    if problem is not None:
        line, column = doc.where(loc)
        value = doc.values.get(loc)
        match = re.search(r"\(template line (\d+)\)$", problem)
        if value is not None and match:
            block = value.style in ("|", ">")
            line = value.line + int(match.group(1)) - 1 + block
            problem = problem[: match.start()].rstrip()
        col.issues.append(Issue(doc.path, line, column, dotted(loc), problem))
        return
    _check_template_fields(col, doc, loc, text, fields=fields)


def _check_template_fields(
    col: _Collector, doc: YamlDoc, loc: Loc, text: str, *, fields: frozenset[str]
) -> None:
    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError:
        return
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "account"):
            continue
        name = getattr(node, "attr", None) or getattr(getattr(node, "arg", None), "value", None)
        if isinstance(name, str) and name not in fields:
            col.add(
                doc,
                loc,
                f"unknown field {name!r} in template (account.{name})",
                "fields are defined in the mapping files and signals.yaml",
            )


def _check_routing(
    col: _Collector,
    loaded: tuple[RoutingFile, YamlDoc] | None,
    *,
    triggers: tuple[TriggersFile, YamlDoc] | None,
    plays: tuple[PlaysFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> dict[str, Expression]:
    if loaded is None:
        return {}
    spec, doc = loaded
    _check_calendars(col, spec, doc)
    trigger_ids = {t.id for t in triggers[0].triggers} if triggers else None
    play_ids = {p.id for p in plays[0].plays} if plays else None
    for i, exp in enumerate(spec.experiments):
        if trigger_ids is not None and exp.trigger not in trigger_ids:
            col.add(doc, ("experiments", i, "trigger"), f"unknown trigger {exp.trigger!r}")
        for variant in exp.variants:
            if play_ids is not None and variant not in play_ids:
                col.add(doc, ("experiments", i, "variants", variant), f"unknown play {variant!r}")
    return _check_suppressions(col, spec, doc, trigger_ids, types=types, history=history)


def _check_calendars(col: _Collector, spec: RoutingFile, doc: YamlDoc) -> None:
    if "default" not in spec.calendars:
        col.add(doc, ("calendars",), "a calendar named 'default' is required")
    for name, cal in spec.calendars.items():
        problem = check_calendar(cal)
        if problem:
            col.add(doc, ("calendars", name), problem)
    for owner, name in spec.owner_calendars.items():
        if name not in spec.calendars:
            col.add(doc, ("owner_calendars", owner), f"unknown calendar {name!r}")


def _check_suppressions(
    col: _Collector,
    spec: RoutingFile,
    doc: YamlDoc,
    trigger_ids: set[str] | None,
    *,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    for i, rule in enumerate(spec.suppress):
        for part in ("suppress", "while_open"):
            for j, tid in enumerate(getattr(rule, part)):
                if trigger_ids is not None and tid not in trigger_ids:
                    col.add(doc, ("suppress", i, part, j), f"unknown trigger {tid!r}")
        if not rule.while_open and rule.when is None:
            col.add(doc, ("suppress", i), "a suppression needs 'while_open' or 'when'")
        if rule.when is not None:
            loc: Loc = ("suppress", i, "when")
            expr = col.expr(doc, loc, rule.when, frozenset(types), types=types, history=history)
            if expr is not None:
                out[rule.id] = expr
    return out


def _check_trigger_plays(
    col: _Collector, loaded: tuple[TriggersFile, YamlDoc], play_ids: set[str]
) -> None:
    spec, doc = loaded
    for i, trig in enumerate(spec.triggers):
        if trig.play not in play_ids:
            col.add(
                doc,
                ("triggers", i, "play"),
                f"unknown play {trig.play!r}",
                "plays are defined in plays.yaml",
            )
