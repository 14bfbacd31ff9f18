"""PARSE · signals, health, segments and trigger conditions.

Each expression compiled against the profile's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signalplay.definitions.compiled import (
    BUILTIN_FIELDS,
    HEALTH_FIELDS,
    SEGMENT_FIELDS,
    _Collector,
)
from signalplay.definitions.fields import (
    builtin_types,
)
from signalplay.definitions.playbook import (
    _check_sla,
)
from signalplay.definitions.schema import (
    HealthFile,
    Match,
    SegmentsFile,
    SignalsFile,
    TriggersFile,
)
from signalplay.lang.functions import NUMBER, TEXT, Expression, ValueType
from signalplay.lang.yamlsrc import Loc, YamlDoc


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
