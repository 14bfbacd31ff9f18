"""Column-wise evaluation of the safe expressions over many accounts at once (numpy).

A `Frame` holds the accounts' profiles as rows and builds typed columns on demand: numbers and
booleans as float64 with NaN for a missing value, dates as day ordinals, text as object arrays.
`compile_vector` turns an expression already checked by `expr.compile_expr` into a function of
the frame with the same semantics (a missing value makes a comparison false and arithmetic
missing, division by zero is missing); what it cannot vectorise, or a column whose values do
not fit its declared type, falls back to the per-row closure, so results never differ.

Imports: stdlib, numpy, expr.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from signalplay.lang.frame import (
    _NONE,
    BOOL,
    CONST,
    DATE,
    NUM,
    OBJ,
    TEXT,
    FallbackError,
    Frame,
    Val,
    _broadcast,
    _number,
    _ordinal,
    python_values,
)
from signalplay.lang.functions import HISTORY, Expression, ExprRuntimeError, ValueType, history_key

# --- compilation -------------------------------------------------------------------------------

VecFn = Callable[[Frame], Val]


def compile_vector(expr: Expression, types: Mapping[str, ValueType]) -> VecFn | None:
    """A column-wise version of `expr`, or None when it has a construct that is not vectorised."""
    try:
        tree = ast.parse(expr.text.strip(), mode="eval")
        return _Vec(types).visit(tree.body)
    except FallbackError:
        return None


def evaluate(expr: Expression, vec: VecFn | None, frame: Frame) -> tuple[Val, int]:
    """Evaluate over the frame; returns the column and how many rows failed (missing there)."""
    if vec is not None:
        try:
            with np.errstate(all="ignore"):
                return _broadcast(vec(frame), len(frame)), 0
        except FallbackError:
            pass
    out: list[Any] = []
    failed = 0
    frame.flush()
    if frame.overlay:
        n = len(frame)
        extra = {k: python_values(v, n) for k, v in frame.overlay.items()}
        scopes: Any = (
            {**r, **{k: v[i] for k, v in extra.items()}} for i, r in enumerate(frame.rows)
        )
    else:
        scopes = frame.rows
    for scope in scopes:
        try:
            out.append(expr(scope))
        except ExprRuntimeError:
            out.append(None)
            failed += 1
    return _from_python(out, expr.type), failed


def _from_python(values: list[Any], vtype: ValueType) -> Val:
    if vtype.kind == "bool" and all(isinstance(v, bool) for v in values):
        return Val(np.array(values, dtype=bool), BOOL)
    if vtype.kind in ("number", "bool"):
        try:
            return Val(np.fromiter((_number(v) for v in values), float, len(values)), NUM)
        except FallbackError:
            pass
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return Val(arr, OBJ)


def truthy(val: Val, n: int) -> npt.NDArray[np.bool_]:
    """Python truthiness per row (None is false)."""
    if val.kind == CONST:
        return np.full(n, bool(val.data))
    if val.kind == BOOL:
        return np.asarray(val.data, dtype=bool)
    if val.kind in (NUM, DATE):
        data = val.data
        return np.asarray((data != 0) & ~np.isnan(data), dtype=np.bool_)
    out: npt.NDArray[np.bool_] = np.frompyfunc(bool, 1, 1)(val.data).astype(bool)
    return out


def _isnull(val: Val) -> Any:
    if val.kind == CONST:
        return val.data is None
    if val.kind == BOOL:
        return np.zeros(len(val.data), dtype=bool)
    if val.kind in (NUM, DATE):
        return np.isnan(val.data)
    return np.equal(val.data, _NONE)


def _num(val: Val) -> Any:
    if val.kind == CONST:
        if val.data is None:
            return math.nan
        if isinstance(val.data, bool | int | float):
            return float(val.data)
        raise FallbackError
    if val.kind == BOOL:
        return val.data.astype(float)
    if val.kind == NUM:
        return val.data
    raise FallbackError


_ORDER = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


class _Vec:
    def __init__(self, types: Mapping[str, ValueType]) -> None:
        self.types = types

    def visit(self, node: ast.AST) -> VecFn:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise FallbackError
        fn: VecFn = method(node)
        return fn

    def _Constant(self, node: ast.Constant) -> VecFn:
        val = Val(node.value, CONST)
        return lambda _f: val

    def _Name(self, node: ast.Name) -> VecFn:
        constants = {"true": True, "false": False, "null": None, "none": None}
        if node.id in constants:
            val = Val(constants[node.id], CONST)
            return lambda _f: val
        name, vtype = node.id, self.types.get(node.id)
        if name == "today":
            return lambda f: Val(np.full(len(f), float(f.today.toordinal())), DATE)
        return lambda f: f.column(name, vtype)

    def _BoolOp(self, node: ast.BoolOp) -> VecFn:
        parts = [self.visit(v) for v in node.values]
        both = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def boolop(f: Frame) -> Val:
            n = len(f)
            acc = truthy(parts[0](f), n)
            for part in parts[1:]:
                acc = both(acc, truthy(part(f), n))
            return Val(acc, BOOL)

        return boolop

    def _UnaryOp(self, node: ast.UnaryOp) -> VecFn:
        inner = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda f: Val(~truthy(inner(f), len(f)), BOOL)
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return lambda f: Val(sign * _num(inner(f)), NUM)

    def _BinOp(self, node: ast.BinOp) -> VecFn:
        left, right = self.visit(node.left), self.visit(node.right)
        op = node.op
        if isinstance(op, ast.Add | ast.Sub | ast.Mult):
            ufunc = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply}[type(op)]
            return lambda f: Val(ufunc(_num(left(f)), _num(right(f))), NUM)
        if isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
            ufunc = {ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod}[
                type(op)
            ]

            def divide(f: Frame) -> Val:
                a, b = _num(left(f)), _num(right(f))
                result = ufunc(a, b)
                return Val(np.where(np.asarray(b) == 0, np.nan, result), NUM)

            return divide
        raise FallbackError

    def _Compare(self, node: ast.Compare) -> VecFn:
        steps = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            steps.append(self._pair(op, left_node, right_node))
            left_node = right_node

        def compare(f: Frame) -> Val:
            acc = steps[0](f)
            for step in steps[1:]:
                acc = acc & step(f)
            return Val(np.broadcast_to(acc, (len(f),)).copy(), BOOL)

        return compare

    def _pair(self, op: ast.cmpop, lnode: ast.expr, rnode: ast.expr) -> Callable[[Frame], Any]:
        left = self.visit(lnode)
        if isinstance(op, ast.Is | ast.IsNot):
            negate = isinstance(op, ast.IsNot)
            return lambda f: _isnull(left(f)) != negate
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(rnode, ast.Tuple | ast.List) or not all(
                isinstance(e, ast.Constant) for e in rnode.elts
            ):
                raise FallbackError
            members = [e.value for e in rnode.elts if isinstance(e, ast.Constant)]
            negate = isinstance(op, ast.NotIn)
            return lambda f: _member(left(f), members, negate=negate)
        right = self.visit(rnode)
        if isinstance(op, ast.Eq | ast.NotEq):
            negate = isinstance(op, ast.NotEq)
            return lambda f: _equal(left(f), right(f)) != negate
        ufunc = _ORDER[type(op)]
        return lambda f: _ordered(ufunc, left(f), right(f))

    def _IfExp(self, node: ast.IfExp) -> VecFn:
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)

        def ifexp(f: Frame) -> Val:
            cond = truthy(test(f), len(f))
            a, b = body(f), orelse(f)
            kinds = {a.kind, b.kind} - {CONST}
            if kinds <= {NUM, BOOL}:
                return Val(np.where(cond, _num(a), _num(b)), NUM)
            if len(kinds) == 1 and kinds <= {TEXT, DATE}:
                (kind,) = kinds
                if kind == DATE:
                    return Val(np.where(cond, _dates(a), _dates(b)), DATE)
                return Val(np.where(cond, _objects(a, len(f)), _objects(b, len(f))), TEXT)
            raise FallbackError

        return ifexp

    def _Call(self, node: ast.Call) -> VecFn:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise FallbackError
        name = node.func.id
        if name in HISTORY:
            return self._history(node, name)
        if name in ("count_where", "last_where"):
            return self._over_items(node, name)
        args = [self.visit(a) for a in node.args]
        maker = _CALLS.get(name)
        if maker is None or not _CALL_ARITY[name](len(args)):
            raise FallbackError
        return maker(args)

    def _over_items(self, node: ast.Call, how: str) -> VecFn:
        """count_where / last_where over a list column, with constant field names.

        Computed on the records flattened once per frame (a record index per row, columns of
        their fields), with grouped numpy reductions.
        """
        if not isinstance(node.args[0], ast.Name):
            raise FallbackError
        column = node.args[0].id
        consts = node.args[1:]
        if not all(isinstance(c, ast.Constant) for c in consts):
            raise FallbackError
        args: list[Any] = [c.value for c in consts if isinstance(c, ast.Constant)]
        if how == "count_where":
            field, value = [*args, None, None][:2]

            def count(f: Frame) -> Val:
                table = f.records(column)
                rows = table.rows if field is None else table.rows[table.equals(field, value)]
                return Val(np.bincount(rows, minlength=len(f)).astype(float), NUM)

            return count
        date_field, field, value = [*args, None, None][:3]

        def last(f: Frame) -> Val:
            table = f.records(column)
            days = table.dates(date_field)
            chosen = ~np.isnan(days)
            if field is not None:
                chosen &= table.equals(field, value)
            out = np.full(len(f), np.nan)
            np.fmax.at(out, table.rows[chosen], days[chosen])
            return Val(out, DATE)

        return last

    def _history(self, node: ast.Call, how: str) -> VecFn:
        field_node, days_node = node.args
        if not isinstance(field_node, ast.Name) or not isinstance(days_node, ast.Constant):
            raise FallbackError
        key = history_key(how, field_node.id, int(str(days_node.value)))
        vtype = self.types.get(field_node.id) if how == "ago" else ValueType("number")
        return lambda f: f.column(key, vtype)


def _dates(val: Val) -> Any:
    if val.kind == DATE:
        return val.data
    if val.kind == CONST and val.data is None:
        return math.nan
    if val.kind == CONST and isinstance(val.data, str):
        return _ordinal(val.data)
    raise FallbackError


def _objects(val: Val, n: int) -> Any:
    if val.kind == CONST:
        if val.data is not None and not isinstance(val.data, str):
            raise FallbackError
        return np.full(n, val.data, dtype=object)
    if val.kind == TEXT:
        return val.data
    raise FallbackError


def _pair_kind(a: Val, b: Val) -> str:
    kinds = {a.kind, b.kind} - {CONST}
    if not kinds:
        raise FallbackError
    if DATE in kinds:
        return DATE
    if kinds <= {NUM, BOOL}:
        return NUM
    if kinds <= {TEXT, OBJ}:
        return OBJ
    raise FallbackError


def _as(val: Val, kind: str) -> Any:
    if kind == DATE:
        return _dates(val) if val.kind != BOOL else _num(val)
    if kind == NUM:
        return _num(val)
    if val.kind == CONST:
        return val.data
    if val.kind in (TEXT, OBJ):
        return val.data
    raise FallbackError


def _equal(a: Val, b: Val) -> Any:
    if a.kind == CONST and a.data is None:
        return _isnull(b)
    if b.kind == CONST and b.data is None:
        return _isnull(a)
    kind = _pair_kind(a, b)
    x, y = _as(a, kind), _as(b, kind)
    if kind == OBJ:
        if isinstance(y, (int, float)) or isinstance(x, (int, float)):
            raise FallbackError
        return np.equal(x, y).astype(bool) if not isinstance(y, str) else (x == y)
    both_missing = np.isnan(x) & np.isnan(y)
    return (x == y) | both_missing


def _ordered(ufunc: Any, a: Val, b: Val) -> Any:
    kind = _pair_kind(a, b)
    if kind == OBJ:
        raise FallbackError
    return ufunc(_as(a, kind), _as(b, kind))


def _member(val: Val, members: list[Any], *, negate: bool) -> Any:
    if val.kind in (TEXT, OBJ):
        if not all(isinstance(m, str) for m in members):
            raise FallbackError
        hit = np.isin(val.data, np.array(members, dtype=object))
        present = ~np.equal(val.data, _NONE)
    elif val.kind in (NUM, BOOL):
        if not all(isinstance(m, int | float) for m in members):
            raise FallbackError
        data = _num(val)
        hit = np.isin(data, np.array(members, dtype=float))
        present = ~np.isnan(data)
    else:
        raise FallbackError
    return present & (hit != negate)


def _num_fn(fn: Callable[..., Any]) -> Callable[[list[VecFn]], VecFn]:
    def make(args: list[VecFn]) -> VecFn:
        return lambda f: Val(fn(*(_num(a(f)) for a in args)), NUM)

    return make


def _extreme(ufunc: Any) -> Callable[[list[VecFn]], VecFn]:
    def make(args: list[VecFn]) -> VecFn:
        def run(f: Frame) -> Val:
            vals = [a(f) for a in args]
            kind = DATE if any(v.kind == DATE for v in vals) else NUM
            data = [_dates(v) if kind == DATE else _num(v) for v in vals]
            acc = data[0]
            for d in data[1:]:
                acc = ufunc(acc, d)
            return Val(acc, kind)

        return run

    return make


def _coalesce(args: list[VecFn]) -> VecFn:
    def run(f: Frame) -> Val:
        vals = [a(f) for a in args]
        kinds = {v.kind for v in vals} - {CONST}
        n = len(f)
        if kinds <= {NUM, BOOL}:
            acc = np.full(n, np.nan)
            for v in reversed(vals):
                x = np.broadcast_to(_num(v), (n,))
                acc = np.where(np.isnan(x), acc, x)
            return Val(acc, NUM)
        if kinds == {DATE}:
            acc = np.full(n, np.nan)
            for v in reversed(vals):
                x = np.broadcast_to(_dates(v), (n,))
                acc = np.where(np.isnan(x), acc, x)
            return Val(acc, DATE)
        raise FallbackError

    return run


def _days(sign: float) -> Callable[[list[VecFn]], VecFn]:
    def make(args: list[VecFn]) -> VecFn:
        (arg,) = args

        def run(f: Frame) -> Val:
            val = arg(f)
            if val.kind != DATE:
                raise FallbackError
            return Val(sign * (val.data - float(f.today.toordinal())), NUM)

        return run

    return make


def _pct_change(new: Any, old: Any) -> Any:
    ok = (old != 0) & ~np.isnan(old)
    return np.where(ok, (new - old) / np.where(ok, old, 1.0), np.nan)


def _round(value: Any) -> Any:
    return np.where(np.isnan(value), np.nan, np.round(value))


_CALLS: dict[str, Callable[[list[VecFn]], VecFn]] = {
    "abs": _num_fn(np.abs),
    "round": _num_fn(_round),
    "min": _extreme(np.minimum),
    "max": _extreme(np.maximum),
    "coalesce": _coalesce,
    "days_until": _days(1.0),
    "days_since": _days(-1.0),
    "pct_change": _num_fn(_pct_change),
}
_CALL_ARITY: dict[str, Callable[[int], bool]] = {
    "abs": lambda n: n == 1,
    "round": lambda n: n == 1,
    "min": lambda n: n >= 2,
    "max": lambda n: n >= 2,
    "coalesce": lambda n: n >= 1,
    "days_until": lambda n: n == 1,
    "days_since": lambda n: n == 1,
    "pct_change": lambda n: n == 2,
}
