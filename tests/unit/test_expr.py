from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalplay.expr import ExprError, ExprRuntimeError, compile_expr

HOSTILE = [
    ("__import__('os').system('id')", "not allowed"),
    ("().__class__.__bases__", "attribute access"),
    ("x.__dict__", "attribute access"),
    ("2 ** 999999999", "power operator"),
    ("x[0]", "indexing"),
    ("(lambda: 1)()", "not allowed"),
    ("[y for y in x]", "comprehension"),
    ("open('/etc/passwd')", "not allowed"),
    ("-" * 200 + "1", "too deeply nested"),
    ("a" * 3000, "longer than"),
    ("f'{x}'", "f-string"),
    ("(y := 3)", "assignment"),
    ("round(x, ndigits=2)", "keyword"),
    ("_private", "not allowed"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE, ids=[h[1] for h in HOSTILE])
def test_compile_expr_hostile_input_is_rejected_with_reason(text: str, fragment: str) -> None:
    with pytest.raises(ExprError, match=fragment):
        compile_expr(text)


def test_compile_expr_unknown_field_names_the_field() -> None:
    with pytest.raises(ExprError, match="unknown field 'usage_drop'") as info:
        compile_expr("usage_drop > 3", names={"usage_wow_change"})
    assert info.value.column == 1


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("a > 3", {}, False),
        ("a is None", {}, True),
        ("a + 1", {}, None),
        ("a / b", {"a": 1, "b": 0}, None),
        ("coalesce(a, 5) * 2", {}, 10),
        ("x in ('new', 'open')", {"x": "open"}, True),
        ("days_until(d)", {"d": "2026-12-01", "today": "2026-11-22"}, 9),
        ("(a - b) / b if b else None", {"a": 7, "b": 10}, -0.3),
    ],
)
def test_compiled_expression_evaluates_with_missing_data_semantics(
    text: str, scope: dict, expected: object
) -> None:
    assert compile_expr(text)(scope) == expected


def test_expression_comparing_text_with_number_raises_runtime_error() -> None:
    with pytest.raises(ExprRuntimeError, match="cannot compare"):
        compile_expr("a > 3")({"a": "x"})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_compile_expr_any_text_yields_expression_or_expr_error(text: str) -> None:
    with contextlib.suppress(ExprError):
        compile_expr(text)
