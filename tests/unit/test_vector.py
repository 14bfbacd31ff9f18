"""The column-wise evaluation gives what the per-row closures give, for any expression of the
language over any values (missing ones included): a property test, and a few named cases."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from signalplay.lang.expr import compile_expr
from signalplay.lang.frame import NUM, Frame, python_values
from signalplay.lang.functions import ExprRuntimeError, ValueType
from signalplay.lang.vector import compile_vector, evaluate, truthy

TODAY = date(2026, 11, 18)
TYPES = {
    "n1": ValueType("number"),
    "n2": ValueType("number"),
    "t": ValueType("text", frozenset({"a", "b", "c"})),
    "d": ValueType("date"),
    "b": ValueType("bool"),
    "today": ValueType("date"),
}

numbers = st.one_of(
    st.none(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2))
)
rows = st.fixed_dictionaries(
    {
        "n1": numbers,
        "n2": numbers,
        "t": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        "d": st.one_of(
            st.none(), st.integers(-40, 40).map(lambda k: (TODAY + timedelta(days=k)).isoformat())
        ),
        "b": st.one_of(st.none(), st.booleans()),
    }
)

leaf_num = st.sampled_from(["n1", "n2", "0", "1", "2.5", "-3", "days_until(d)", "days_since(d)"])


def _num(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"abs({c})"),
        children.map(lambda c: f"round({c})"),
        st.tuples(
            st.sampled_from(["min", "max", "coalesce", "pct_change"]), children, children
        ).map(lambda p: f"{p[0]}({p[1]}, {p[2]})"),
    )


num_expr = st.recursive(leaf_num, _num, max_leaves=6)
leaf_cond = st.one_of(
    st.tuples(num_expr, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), num_expr).map(
        lambda p: f"{p[0]} {p[1]} {p[2]}"
    ),
    st.sampled_from(
        [
            "t == 'a'",
            "t != 'b'",
            "t in ('a', 'b')",
            "t not in ('c',)",
            "n1 is None",
            "d is not None",
            "b",
            "b == true",
            "d < today",
            "n1",
            "t",
        ]
    ),
)


def _cond(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        children.map(lambda c: f"not ({c})"),
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda p: f"({p[0]}) {p[1]} ({p[2]})"
        ),
        st.tuples(children, num_expr, num_expr).map(lambda p: f"({p[1]} if {p[0]} else {p[2]})"),
    )


cond_expr = st.recursive(leaf_cond, _cond, max_leaves=5)


def _same(vec: Any, ref: Any) -> bool:
    if ref is None:
        return vec is None
    if isinstance(ref, bool) or isinstance(vec, bool):
        return bool(vec) == bool(ref)
    if vec is None:
        return False
    if isinstance(ref, str) or isinstance(vec, str):
        return vec == ref
    return math.isclose(float(vec), float(ref), rel_tol=1e-9, abs_tol=1e-9)


def _check(text: str, data: list[dict[str, Any]]) -> None:
    expr = compile_expr(text, names=frozenset(TYPES), types=TYPES)
    vec = compile_vector(expr, TYPES)
    frame = Frame(
        [f"a{i}" for i in range(len(data))],
        [dict(r, today=TODAY.isoformat()) for r in data],
        TYPES,
        TODAY,
    )
    col, _ = evaluate(expr, vec, frame)
    got = python_values(col, len(data))
    truth = truthy(col, len(data)).tolist()
    for i, row in enumerate(frame.rows):
        try:
            ref = expr(row)
        except ExprRuntimeError:
            continue
        if not isinstance(ref, bool) and isinstance(ref, float) and math.isinf(ref):
            continue
        assert truth[i] == bool(ref), (text, row, got[i], ref)
        if not isinstance(ref, bool) or col.kind != NUM:
            assert _same(got[i], ref), (text, row, got[i], ref)


@settings(max_examples=300, deadline=None)
@given(cond_expr, st.lists(rows, min_size=1, max_size=12))
def test_conditions_agree_with_the_row_closures(text: str, data: list[dict[str, Any]]) -> None:
    _check(text, data)


@settings(max_examples=200, deadline=None)
@given(num_expr, st.lists(rows, min_size=1, max_size=12))
def test_arithmetic_agrees_with_the_row_closures(text: str, data: list[dict[str, Any]]) -> None:
    _check(text, data)


def test_shipped_expressions_are_all_vectorised() -> None:
    from tests.evaluator.helpers import shipped

    defs = shipped()
    exprs = {
        **{f"signal {k}": e for k, e in defs.signals.items()},
        **{f"trigger {k}": e for k, e in defs.trigger_conditions.items()},
        **{f"close {k}": e for k, e in defs.close_conditions.items()},
        **{f"measure {k}": e for k, e in defs.health_values.items()},
        **{f"segment {k}": e for k, e in defs.segment_conditions.items()},
        **{f"stage {k}": e for k, e in defs.stage_conditions.items()},
    }
    types = {**defs.types}
    for trig in defs.triggers.triggers:
        types.update(dict.fromkeys(trig.thresholds, ValueType("number")))
    missing = [name for name, e in exprs.items() if compile_vector(e, types) is None]
    assert missing == []


def test_a_column_whose_values_break_its_type_falls_back_per_row() -> None:
    expr = compile_expr("n1 > 2", names=frozenset(TYPES), types=TYPES)
    rows_ = [{"n1": 3}, {"n1": "lots"}, {"n1": None}]
    frame = Frame(["a", "b", "c"], rows_, TYPES, TODAY)
    col, failed = evaluate(expr, compile_vector(expr, TYPES), frame)
    assert python_values(col, 3) == [True, None, False]
    assert failed == 1


def test_division_by_zero_is_missing_not_infinite() -> None:
    expr = compile_expr("n1 / n2", names=frozenset(TYPES), types=TYPES)
    frame = Frame(["a", "b"], [{"n1": 1, "n2": 0}, {"n1": 1, "n2": 4}], TYPES, TODAY)
    col, _ = evaluate(expr, compile_vector(expr, TYPES), frame)
    assert python_values(col, 2) == [None, 0.25]
    assert np.isnan(col.data[0])
