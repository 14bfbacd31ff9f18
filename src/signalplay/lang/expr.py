"""Safe expressions for mappings, signals, health and triggers: parsed once, compiled to closures.

No eval, no attribute access, no subscripts, no power operator, only whitelisted functions;
a missing value (None) makes a comparison false and arithmetic None, as RevOps expect of
incomplete data. Imports: stdlib.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Set
from typing import Any, NamedTuple

from signalplay.lang.functions import (
    ANY,
    BOOL,
    FUNCTIONS,
    HISTORY,
    MAX_HISTORY_DAYS,
    NUMBER,
    TEXT,
    Compiled,
    ExprError,
    Expression,
    ExprRuntimeError,
    Scope,
    ValueType,
    history_key,
)

MAX_EXPR_CHARS = 2_000
MAX_DEPTH = 32
MAX_STR = 10_000


_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


_ORDERED_WITH_TEXT = {"text", "date", "datetime"}


class _Typed(NamedTuple):
    fn: Compiled
    type: ValueType


def compile_expr(
    text: str,
    *,
    names: Set[str] | None = None,
    types: Mapping[str, ValueType] | None = None,
    history_names: Set[str] | None = None,
) -> Expression:
    """Parse and compile `text`.

    With `names`, an unknown name is an error at compile time; with `types`, so are comparisons
    of mismatched types and text values outside a field's enum. `history_names` are the fields
    the history functions may read (none when not given).
    """
    if not isinstance(text, str):
        raise ExprError("an expression must be text")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression is longer than {MAX_EXPR_CHARS} characters")
    if not text.strip():
        raise ExprError("expression is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error: {exc.msg}", exc.offset) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression is too deeply nested") from None
    compiler = _Compiler(names, types or {}, history_names or frozenset())
    typed = compiler.visit(tree.body, 0)
    return Expression(
        text=text,
        names=frozenset(compiler.seen),
        fn=typed.fn,
        type=typed.type,
        history=frozenset(compiler.history),
    )


class _Compiler:
    def __init__(
        self, names: Set[str] | None, types: Mapping[str, ValueType], history: Set[str]
    ) -> None:
        self.known = names
        self.types = types
        self.history_names = history
        self.seen: set[str] = set()
        self.history: set[tuple[str, str, int]] = set()

    def visit(self, node: ast.AST, depth: int) -> _Typed:
        if depth > MAX_DEPTH:
            raise ExprError("expression is too deeply nested", _col(node))
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"{_describe(node)} is not allowed in expressions", _col(node))
        result: _Typed = method(node, depth + 1)
        return result

    def _Constant(self, node: ast.Constant, _depth: int) -> _Typed:
        value = node.value
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ExprError("only numbers, text, true/false and None are allowed", _col(node))
        if isinstance(value, str) and len(value) > MAX_STR:
            raise ExprError("text constant is too long", _col(node))
        if isinstance(value, int) and abs(value) > 10**18:
            raise ExprError("number is too large", _col(node))
        return _Typed(lambda _s: value, _type_of(value))

    def _Name(self, node: ast.Name, _depth: int) -> _Typed:
        name = node.id
        if name.startswith("_"):
            raise ExprError(f"name {name!r} is not allowed", _col(node))
        constants = {"true": True, "false": False, "null": None, "none": None}
        if name in constants:
            value = constants[name]
            return _Typed(lambda _s: value, _type_of(value))
        if self.known is not None and name not in self.known:
            raise ExprError(f"unknown field {name!r}", _col(node))
        self.seen.add(name)
        return _Typed(lambda s: s.get(name), self.types.get(name, ANY))

    def _List(self, node: ast.List | ast.Tuple, depth: int) -> _Typed:
        if len(node.elts) > 1000:
            raise ExprError("list is too long", _col(node))
        items = [self.visit(e, depth).fn for e in node.elts]
        return _Typed(lambda s: tuple(f(s) for f in items), ValueType("list"))

    _Tuple = _List

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> _Typed:
        parts = [self.visit(v, depth).fn for v in node.values]
        if isinstance(node.op, ast.And):
            return _Typed(lambda s: all(bool(p(s)) for p in parts), BOOL)
        return _Typed(lambda s: any(bool(p(s)) for p in parts), BOOL)

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> _Typed:
        inner = self.visit(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return _Typed(lambda s: not inner.fn(s), BOOL)
        if isinstance(node.op, ast.USub | ast.UAdd):
            _expect_number(inner.type, node.operand)
            sign = -1 if isinstance(node.op, ast.USub) else 1
            fn = inner.fn

            def negate(s: Scope) -> Any:
                value = fn(s)
                return None if value is None else sign * _number(value)

            return _Typed(negate, NUMBER)
        raise ExprError(f"{_describe(node.op)} is not allowed", _col(node))

    def _BinOp(self, node: ast.BinOp, depth: int) -> _Typed:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise ExprError(f"{_describe(node.op)} is not allowed in expressions", _col(node))
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        concat = isinstance(node.op, ast.Add)
        texts = {left.type.kind, right.type.kind} <= {"text", "any"} and "text" in {
            left.type.kind,
            right.type.kind,
        }
        if not (concat and texts):
            _expect_number(left.type, node.left)
            _expect_number(right.type, node.right)
        lfn, rfn = left.fn, right.fn

        def arith(s: Scope) -> Any:
            a, b = lfn(s), rfn(s)
            if a is None or b is None:
                return None
            if concat and isinstance(a, str) and isinstance(b, str):
                if len(a) + len(b) > MAX_STR:
                    raise ExprRuntimeError("text is too long")
                return a + b
            try:
                return op(_number(a), _number(b))
            except ZeroDivisionError:
                return None

        return _Typed(arith, TEXT if concat and texts else NUMBER)

    def _Compare(self, node: ast.Compare, depth: int) -> _Typed:
        first = self.visit(node.left, depth)
        steps = []
        left_node, left_type = node.left, first.type
        for o, c in zip(node.ops, node.comparators, strict=True):
            right = self.visit(c, depth)
            self._check_compare(o, left_node, left_type, c, right.type)
            steps.append((self._comparator(o, c), right.fn))
            left_node, left_type = c, right.type
        first_fn = first.fn

        def compare(s: Scope) -> bool:
            left = first_fn(s)
            for test, right_fn in steps:
                right = right_fn(s)
                if not test(left, right):
                    return False
                left = right
            return True

        return _Typed(compare, BOOL)

    def _check_compare(
        self, op: ast.cmpop, lnode: ast.AST, ltype: ValueType, rnode: ast.AST, rtype: ValueType
    ) -> None:
        if isinstance(op, ast.Is | ast.IsNot):
            return
        if isinstance(op, ast.In | ast.NotIn):
            if isinstance(rnode, ast.Tuple | ast.List):
                for elt in rnode.elts:
                    _check_enum(ltype, lnode, elt)
            return
        _check_enum(ltype, lnode, rnode)
        _check_enum(rtype, rnode, lnode)
        if isinstance(op, ast.Eq | ast.NotEq):
            return
        kinds = {ltype.kind, rtype.kind}
        if "any" in kinds or len(kinds) == 1 or kinds <= {"number", "bool"}:
            return
        if kinds <= _ORDERED_WITH_TEXT:
            return
        raise ExprError(
            f"type mismatch: cannot order {_name(lnode)} ({ltype.kind}) "
            f"against {_name(rnode)} ({rtype.kind})",
            _col(lnode),
        )

    def _comparator(self, op: ast.cmpop, node: ast.AST) -> Callable[[Any, Any], bool]:
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(node, ast.Constant) and node.value is None):
                raise ExprError("'is' only compares with None", _col(node))
            return (
                (lambda a, _b: a is None)
                if isinstance(op, ast.Is)
                else (lambda a, _b: a is not None)
            )
        if isinstance(op, ast.In | ast.NotIn):
            negate = isinstance(op, ast.NotIn)
            return lambda a, b: a is not None and b is not None and ((a in b) != negate)
        base = _COMPARE[type(op)]
        ordered = not isinstance(op, ast.Eq | ast.NotEq)
        return lambda a, b: _safe_compare(base, a, b, ordered=ordered)

    def _IfExp(self, node: ast.IfExp, depth: int) -> _Typed:
        test, body, orelse = (self.visit(n, depth) for n in (node.test, node.body, node.orelse))
        tfn, bfn, ofn = test.fn, body.fn, orelse.fn
        kinds = {body.type.kind, orelse.type.kind} - {"any"}
        result = body.type if len(kinds) == 1 and body.type.kind != "any" else orelse.type
        if len(kinds) > 1:
            result = ANY
        return _Typed(lambda s: bfn(s) if tfn(s) else ofn(s), result)

    def _Call(self, node: ast.Call, depth: int) -> _Typed:
        if not isinstance(node.func, ast.Name):
            raise ExprError(f"calling {_describe(node.func)} is not allowed", _col(node))
        name = node.func.id
        if name in HISTORY and not node.keywords:
            return self._history(node, name)
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted([*FUNCTIONS, *HISTORY]))
            raise ExprError(f"function {name!r} is not allowed (allowed: {allowed})", _col(node))
        if node.keywords:
            raise ExprError("keyword arguments are not allowed", _col(node))
        impl, lo, hi = FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            raise ExprError(f"{name}() takes {lo} to {hi} arguments", _col(node))
        typed = [self.visit(a, depth) for a in node.args]
        for arg, t in zip(node.args, typed, strict=True):
            _check_argument(name, t.type, arg)
        args = [t.fn for t in typed]
        result = _RESULT.get(name) or (typed[0].type if name in {"min", "max"} else ANY)
        return _Typed(lambda s: impl(s, *(a(s) for a in args)), result)

    def _history(self, node: ast.Call, how: str) -> _Typed:
        usage = f"{how}(field, days): a field name and a whole number of days"
        if len(node.args) != 2 or not isinstance(node.args[0], ast.Name):
            raise ExprError(usage, _col(node))
        field_node, days_node = node.args
        assert isinstance(field_node, ast.Name)  # noqa: S101 - checked above, for mypy
        if not (isinstance(days_node, ast.Constant) and type(days_node.value) is int):
            raise ExprError(usage, _col(days_node))
        days = days_node.value
        if not 1 <= days <= MAX_HISTORY_DAYS:
            raise ExprError(f"days must be 1 to {MAX_HISTORY_DAYS}", _col(days_node))
        field = field_node.id
        if field not in self.history_names:
            raise ExprError(f"unknown field {field!r} in {how}()", _col(field_node))
        self.history.add((how, field, days))
        key = history_key(how, field, days)
        result = self.types.get(field, ANY) if how == "ago" else NUMBER
        return _Typed(lambda s: s.get(key), result)


_RESULT: dict[str, ValueType] = {
    "abs": NUMBER,
    "round": NUMBER,
    "lower": TEXT,
    "upper": TEXT,
    "len": NUMBER,
    "days_until": NUMBER,
    "days_since": NUMBER,
    "pct_change": NUMBER,
    "count_where": NUMBER,
    "last_where": ValueType("date"),
    "working_day": BOOL,
    "in_season": BOOL,
}
_ARG_KINDS: dict[str, set[str]] = {
    "abs": {"number", "bool"},
    "round": {"number", "bool"},
    "min": {"number", "bool", "text", "date", "datetime"},
    "max": {"number", "bool", "text", "date", "datetime"},
    "len": {"text", "list"},
    "days_until": {"date", "datetime", "text"},
    "days_since": {"date", "datetime", "text"},
    "pct_change": {"number", "bool"},
    "count_where": {"list", "text", "number", "bool"},
    "last_where": {"list", "text", "number", "bool"},
    "working_day": {"date", "datetime", "text"},
    "in_season": {"date", "datetime", "text"},
}


def _type_of(value: Any) -> ValueType:
    if value is None:
        return ANY
    if isinstance(value, bool):
        return BOOL
    return NUMBER if isinstance(value, int | float) else TEXT


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant):
        return repr(node.value)
    return "the expression"


def _expect_number(vtype: ValueType, node: ast.AST) -> None:
    if vtype.kind not in {"any", "number", "bool"}:
        raise ExprError(
            f"type mismatch: {_name(node)} is {vtype.kind}, arithmetic needs a number", _col(node)
        )


def _check_enum(vtype: ValueType, node: ast.AST, other: ast.AST) -> None:
    if vtype.enum is None or not isinstance(other, ast.Constant):
        return
    value = other.value
    if isinstance(value, str) and value not in vtype.enum:
        allowed = ", ".join(repr(v) for v in sorted(vtype.enum))
        raise ExprError(
            f"wrong enum value {value!r} for {_name(node)} (allowed: {allowed})", _col(other)
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ExprError(f"type mismatch: {_name(node)} is text, not a number", _col(other))


def _check_argument(function: str, vtype: ValueType, node: ast.AST) -> None:
    kinds = _ARG_KINDS.get(function)
    if kinds is None or vtype.kind == "any" or vtype.kind in kinds:
        return
    raise ExprError(
        f"type mismatch: {function}() does not take {_name(node)} ({vtype.kind})", _col(node)
    )


def _safe_compare(op: Callable[[Any, Any], bool], a: Any, b: Any, *, ordered: bool) -> bool:
    if a is None or b is None:
        return op(a, b) if not ordered else False
    try:
        return bool(op(a, b))
    except TypeError:
        raise ExprRuntimeError(
            f"cannot compare {type(a).__name__} with {type(b).__name__}"
        ) from None


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprRuntimeError(f"expected a number, got {type(value).__name__}")
    return value


def _col(node: ast.AST) -> int | None:
    offset = getattr(node, "col_offset", None)
    return None if offset is None else offset + 1


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access",
        "Subscript": "indexing",
        "Pow": "the power operator (**)",
        "Lambda": "lambda",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "DictComp": "a comprehension",
        "SetComp": "a comprehension",
        "NamedExpr": "assignment (:=)",
        "Await": "await",
        "Starred": "unpacking",
        "JoinedStr": "an f-string",
        "Dict": "a dict literal",
        "Set": "a set literal",
    }
    kind = type(node).__name__
    return names.get(kind, kind)
