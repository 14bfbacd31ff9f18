"""Mapping fields compiled once.

A closure per field that reads, casts, normalises and maps one record's value, and the type of what
it yields, for the checks at load time.

Imports: stdlib, definitions.schema, expr, transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from signalplay.definitions.schema import FieldSpec, ValueSpec
from signalplay.lang.functions import (
    ANY,
    BOOL,
    NUMBER,
    TEXT,
    Expression,
    ExprRuntimeError,
    ValueType,
)
from signalplay.lang.transforms import (
    REDUCE,
    CastError,
    compile_path,
    make_cast,
    make_map,
    make_rules,
    normalize_key,
)

Extractor = Callable[[Any], Any]

CAST_TYPES = {
    "str": TEXT,
    "int": NUMBER,
    "float": NUMBER,
    "decimal": NUMBER,
    "money": NUMBER,
    "minor_units": NUMBER,
    "bool": BOOL,
    "date": ValueType("date"),
    "datetime": ValueType("datetime"),
}
NUMERIC_AGGREGATES = {"count", "sum", "avg", "median", "distinct"}
NUMERIC_REDUCTIONS = {"sum", "count", "distinct", "min", "max"}
LIST = ValueType("list")


def compile_value(spec: ValueSpec, expr: Expression | None) -> Extractor:
    """The closure that turns a record into this value; a bad value raises CastError."""
    read = _reader(spec, expr)
    cast = _caster(spec)
    reduce = REDUCE[spec.reduce] if spec.reduce else None
    normalize = spec.normalize
    lookup = make_map(spec.map) if spec.map is not None else None
    if spec.rules:
        lookup = make_rules([(r.contains, r.value) for r in spec.rules])
    return _pipeline(
        read, cast=cast, reduce=reduce, normalize=normalize, lookup=lookup, default=spec.default
    )


def _pipeline(
    read: Extractor,
    *,
    cast: Callable[[Any, Any], Any] | None,
    reduce: Callable[[list[Any]], Any] | None,
    normalize: str | None,
    lookup: Callable[[Any], Any] | None,
    default: Any,
) -> Extractor:
    """Read, cast (each item of a list), reduce, normalise, map; the default when nothing."""
    if cast is None and reduce is None and normalize is None and lookup is None:
        return lambda data: default if (v := read(data)) is None or v == "" else v

    def extract(data: Any) -> Any:
        raw = read(data)
        value: Any
        if raw is None or raw == "":
            value = None
        elif isinstance(raw, list):
            value = [cast(v, data) for v in raw if v is not None and v != ""] if cast else raw
            if reduce is not None:
                value = reduce(value)
        else:
            value = cast(raw, data) if cast else raw
        if normalize is not None and value is not None:
            value = normalize_key(value, normalize)
        if lookup is not None and value is not None:
            value = lookup(value)
        return default if value is None else value

    return extract


def compile_field(
    spec: FieldSpec, expr: Expression | None, first_of: list[Expression | None]
) -> Extractor:
    """A field's closure; with `first_of`, the first alternative that yields a value."""
    if spec.first_of is None:
        return compile_value(spec, expr)
    options = [compile_value(s, e) for s, e in zip(spec.first_of, first_of, strict=True)]
    default = spec.default

    def first(data: Any) -> Any:
        for option in options:
            value = option(data)
            if value is not None:
                return value
        return default

    return first


def _reader(spec: ValueSpec, expr: Expression | None) -> Extractor:
    if spec.from_:
        getters = [compile_path(p) for p in spec.from_]
        if len(getters) == 1:
            return getters[0]
        return lambda data: next(
            (v for g in getters if (v := g(data)) is not None and v not in ("", [])), None
        )
    if expr is not None:

        def evaluate(data: Any) -> Any:
            try:
                return expr(data)
            except ExprRuntimeError as exc:
                raise CastError(f"expression failed: {exc}") from None

        return evaluate
    return lambda _data: None


def _caster(spec: ValueSpec) -> Callable[[Any, Any], Any] | None:
    if spec.cast is None:
        return None
    cast = make_cast(
        spec.cast,
        timezone=spec.timezone,
        epoch=spec.epoch,
        currency=compile_path(spec.currency_from) if spec.currency_from else None,
        currency_code=spec.currency,
    )
    name = spec.cast

    def checked(value: Any, record: Any) -> Any:
        try:
            return cast(value, record)
        except (TypeError, ValueError, ArithmeticError) as exc:
            shown = str(value)[:60]
            raise CastError(f"cannot cast {shown!r} to {name}: {exc}") from None

    return checked


# ---- types ------------------------------------------------------------------------------------
def value_type(spec: ValueSpec, expr: Expression | None) -> ValueType:
    """What one value spec yields."""
    if spec.map is not None or spec.rules:
        table = spec.map.values() if spec.map is not None else [r.value for r in spec.rules or ()]
        return _enum_or_kind([*table, spec.default])
    return _base_type(spec, expr)


def _base_type(spec: ValueSpec, expr: Expression | None) -> ValueType:
    if spec.reduce is not None:
        return NUMBER if spec.reduce in NUMERIC_REDUCTIONS else TEXT
    if spec.cast is not None:
        return CAST_TYPES[spec.cast]
    if spec.from_ and any("[*]" in p for p in spec.from_):
        return LIST
    if spec.normalize is not None:
        return TEXT
    if expr is not None:
        return expr.type
    return ANY


def field_type(
    spec: FieldSpec, expr: Expression | None, first_of: Iterable[Expression | None]
) -> ValueType:
    """What a mapping field contributes to the profile, before any declared `type`."""
    if spec.aggregate in NUMERIC_AGGREGATES:
        return NUMBER
    if spec.first_of is not None:
        return merge_types(value_type(s, e) for s, e in zip(spec.first_of, first_of, strict=True))
    return value_type(spec, expr)


def merge_types(types: Iterable[ValueType]) -> ValueType:
    """The type of a value that is one of `types`."""
    items = [t for t in types if t.kind != "any"]
    kinds = {t.kind for t in items}
    if len(kinds) != 1:
        return ANY
    enums = [t.enum for t in items]
    if all(e is not None for e in enums):
        return ValueType(items[0].kind, frozenset().union(*(e or () for e in enums)))
    return ValueType(items[0].kind)


def declared_type(spec: FieldSpec) -> ValueType | None:
    """The field's declared `type` (and enum `values`), if any."""
    if spec.type is None and spec.values is None:
        return None
    enum = frozenset(spec.values) if spec.values is not None else None
    return ValueType(spec.type or "text", enum)


def _enum_or_kind(values: Iterable[Any]) -> ValueType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return ValueType("text", frozenset(present))
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return NUMBER
    if present and all(isinstance(v, bool) for v in present):
        return BOOL
    return ANY


def builtin_types() -> Mapping[str, ValueType]:
    """Types of the fields every profile has."""
    return {
        "today": ValueType("date"),
        "account_key": TEXT,
    }
