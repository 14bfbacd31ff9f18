"""PARSE · mapping files.

Each compiled to its identity keys and field extractors, checked against the profile schema they
build together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from signalplay.definitions.compiled import (
    BUILTIN_FIELDS,
    DATE_CASTS,
    HEALTH_FIELDS,
    RESERVED,
    CompiledMapping,
    _Collector,
    _display,
    key_reader,
)
from signalplay.definitions.fields import (
    Extractor,
    compile_field,
    declared_type,
    field_type,
)
from signalplay.definitions.schema import (
    FieldSpec,
    MappingFile,
    ValueSpec,
)
from signalplay.errors import Issue
from signalplay.lang.functions import Expression, ValueType
from signalplay.lang.transforms import zone
from signalplay.lang.yamlsrc import Loc, YamlDoc


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
    if fs.aggregate in ("sum", "avg", "median"):
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
