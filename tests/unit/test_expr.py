from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalplay.lang.expr import compile_expr
from signalplay.lang.functions import ExprError, ExprRuntimeError

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


def test_typed_compile_rejects_wrong_enum_values_and_mismatched_types() -> None:
    from signalplay.lang.functions import NUMBER, ValueType

    types = {
        "tier": ValueType("text", frozenset({"smb", "enterprise"})),
        "arr": NUMBER,
        "renewal_date": ValueType("date"),
    }
    with pytest.raises(ExprError, match="wrong enum value 'smbb' for tier") as info:
        compile_expr("arr > 5 and tier == 'smbb'", types=types)
    assert info.value.column == 21  # the quote that opens the wrong value
    with pytest.raises(ExprError, match="wrong enum value 'gold'"):
        compile_expr("tier in ('smb', 'gold')", types=types)
    with pytest.raises(ExprError, match="type mismatch"):
        compile_expr("renewal_date > 30", types=types)
    with pytest.raises(ExprError, match="type mismatch"):
        compile_expr("tier * 2", types=types)
    assert compile_expr("renewal_date < '2027-01-01' and tier != 'smb'", types=types).type.kind == (
        "bool"
    )


def test_history_functions_read_their_snapshot_keys() -> None:
    from signalplay.lang.functions import history_key

    expr = compile_expr("pct_change(x, ago(x, 7))", history_names={"x"})
    assert expr.history == {("ago", "x", 7)}
    assert expr({"x": 12, history_key("ago", "x", 7): 10}) == pytest.approx(0.2)
    assert expr({"x": 12}) is None
    for bad in ("ago(x, 0)", "ago(x, 'seven')", "ago(1, 7)", "ago(y, 7)", "ago(x)"):
        with pytest.raises(ExprError):
            compile_expr(bad, history_names={"x"})


def test_working_day_skips_weekends_and_the_country_s_public_holidays() -> None:
    def working(text: str) -> object:
        return compile_expr(text, names={"day"})({"day": None})

    assert compile_expr("working_day('2026-11-25')")({}) is True  # a Wednesday
    assert compile_expr("working_day('2026-11-28')")({}) is False  # a Saturday
    assert compile_expr("working_day('2026-11-26')")({}) is True  # Thanksgiving, no country
    assert compile_expr("working_day('2026-11-26', 'US')")({}) is False
    assert compile_expr("working_day('2026-11-26', 'DE')")({}) is True
    assert compile_expr("working_day('2026-10-03', 'DE')")({}) is False  # a Saturday anyway
    assert compile_expr("working_day('2026-11-19', 'DE', 'BY')")({}) is True
    assert compile_expr("working_day('2026-11-18', 'DE', 'SN')")({}) is False  # Buß- und Bettag
    assert working("working_day(day)") is None  # no date, no answer
    with pytest.raises(ExprRuntimeError, match="no public holidays known"):
        compile_expr("working_day('2026-11-25', 'XX')")({})
