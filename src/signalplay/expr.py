"""Safe expressions for mappings, signals, health and triggers: parsed once, compiled to closures.

No eval, no attribute access, no subscripts, no power operator, only whitelisted functions;
a missing value (None) makes a comparison false and arithmetic None, as RevOps expect of
incomplete data. Imports: stdlib.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

MAX_EXPR_CHARS = 2_000
MAX_DEPTH = 32
MAX_STR = 10_000

Scope = Mapping[str, Any]
Compiled = Callable[[Scope], Any]


class ExprError(ValueError):
    """An expression is not valid; `column` is 1-based within the expression text."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class ExprRuntimeError(ValueError):
    """An expression failed on one account's values (e.g. text compared with a number)."""


@dataclass(frozen=True)
class Expression:
    """A compiled expression and the names it reads."""

    text: str
    names: frozenset[str]
    fn: Compiled

    def __call__(self, scope: Scope) -> Any:
        """Evaluate against `scope`; names missing from it are None."""
        return self.fn(scope)


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise ExprRuntimeError(f"not a date: {value[:40]!r}") from None
    raise ExprRuntimeError(f"not a date: {type(value).__name__}")


def _days_until(scope: Scope, value: Any) -> int | None:
    day, today = _as_date(value), _as_date(scope.get("today"))
    return None if day is None or today is None else (day - today).days


def _days_since(scope: Scope, value: Any) -> int | None:
    result = _days_until(scope, value)
    return None if result is None else -result


def _coalesce(_scope: Scope, *values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _nullable(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(_scope: Scope, *args: Any) -> Any:
        if any(a is None for a in args):
            return None
        try:
            return fn(*args)
        except (TypeError, ValueError) as exc:
            raise ExprRuntimeError(str(exc)) from None

    return call


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (implementation taking the scope first, min args, max args)
    "abs": (_nullable(abs), 1, 1),
    "min": (_nullable(min), 1, 8),
    "max": (_nullable(max), 1, 8),
    "round": (_nullable(lambda v, n=0: round(v, n)), 1, 2),
    "lower": (_nullable(lambda v: str(v).lower()), 1, 1),
    "upper": (_nullable(lambda v: str(v).upper()), 1, 1),
    "len": (_nullable(len), 1, 1),
    "coalesce": (_coalesce, 1, 8),
    "days_until": (_days_until, 1, 1),
    "days_since": (_days_since, 1, 1),
}

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


def compile_expr(text: str, *, names: Set[str] | None = None) -> Expression:
    """Parse and compile `text`; with `names`, an unknown name is an error at compile time."""
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
    compiler = _Compiler(names)
    fn = compiler.visit(tree.body, 0)
    return Expression(text=text, names=frozenset(compiler.seen), fn=fn)


class _Compiler:
    def __init__(self, names: Set[str] | None) -> None:
        self.known = names
        self.seen: set[str] = set()

    def visit(self, node: ast.AST, depth: int) -> Compiled:
        if depth > MAX_DEPTH:
            raise ExprError("expression is too deeply nested", _col(node))
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"{_describe(node)} is not allowed in expressions", _col(node))
        result: Compiled = method(node, depth + 1)
        return result

    def _Constant(self, node: ast.Constant, _depth: int) -> Compiled:
        value = node.value
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ExprError("only numbers, text, true/false and None are allowed", _col(node))
        if isinstance(value, str) and len(value) > MAX_STR:
            raise ExprError("text constant is too long", _col(node))
        if isinstance(value, int) and abs(value) > 10**18:
            raise ExprError("number is too large", _col(node))
        return lambda _s: value

    def _Name(self, node: ast.Name, _depth: int) -> Compiled:
        name = node.id
        if name.startswith("_"):
            raise ExprError(f"name {name!r} is not allowed", _col(node))
        constants = {"true": True, "false": False, "null": None, "none": None}
        if name in constants:
            value = constants[name]
            return lambda _s: value
        if self.known is not None and name not in self.known:
            raise ExprError(f"unknown field {name!r}", _col(node))
        self.seen.add(name)
        return lambda s: s.get(name)

    def _List(self, node: ast.List | ast.Tuple, depth: int) -> Compiled:
        if len(node.elts) > 1000:
            raise ExprError("list is too long", _col(node))
        items = [self.visit(e, depth) for e in node.elts]
        return lambda s: tuple(f(s) for f in items)

    _Tuple = _List

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> Compiled:
        parts = [self.visit(v, depth) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda s: all(bool(p(s)) for p in parts)
        return lambda s: any(bool(p(s)) for p in parts)

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> Compiled:
        inner = self.visit(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return lambda s: not inner(s)
        if isinstance(node.op, ast.USub | ast.UAdd):
            sign = -1 if isinstance(node.op, ast.USub) else 1

            def negate(s: Scope) -> Any:
                value = inner(s)
                return None if value is None else sign * _number(value)

            return negate
        raise ExprError(f"{_describe(node.op)} is not allowed", _col(node))

    def _BinOp(self, node: ast.BinOp, depth: int) -> Compiled:
        op = _ARITH.get(type(node.op))
        if op is None:
            raise ExprError(f"{_describe(node.op)} is not allowed in expressions", _col(node))
        left, right = self.visit(node.left, depth), self.visit(node.right, depth)
        concat = isinstance(node.op, ast.Add)

        def arith(s: Scope) -> Any:
            a, b = left(s), right(s)
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

        return arith

    def _Compare(self, node: ast.Compare, depth: int) -> Compiled:
        first = self.visit(node.left, depth)
        steps = [
            (self._comparator(o, c), self.visit(c, depth))
            for o, c in zip(node.ops, node.comparators, strict=True)
        ]

        def compare(s: Scope) -> bool:
            left = first(s)
            for test, right_fn in steps:
                right = right_fn(s)
                if not test(left, right):
                    return False
                left = right
            return True

        return compare

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

    def _IfExp(self, node: ast.IfExp, depth: int) -> Compiled:
        test, body, orelse = (self.visit(n, depth) for n in (node.test, node.body, node.orelse))
        return lambda s: body(s) if test(s) else orelse(s)

    def _Call(self, node: ast.Call, depth: int) -> Compiled:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            name = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
            raise ExprError(f"function {name!r} is not allowed (allowed: {allowed})", _col(node))
        if node.keywords:
            raise ExprError("keyword arguments are not allowed", _col(node))
        impl, lo, hi = FUNCTIONS[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise ExprError(f"{node.func.id}() takes {lo} to {hi} arguments", _col(node))
        args = [self.visit(a, depth) for a in node.args]
        return lambda s: impl(s, *(a(s) for a in args))


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
