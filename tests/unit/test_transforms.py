"""Value transforms and compiled mapping fields: paths into lists, casts, money per currency,
time zones, title rules, value maps with lists, first_of."""

from __future__ import annotations

import pytest

from signalplay.definitions.fields import compile_field, field_type
from signalplay.definitions.schema import FieldSpec
from signalplay.lang.transforms import CastError, compile_path, make_cast, money, normalize_key

SUBSCRIPTION = {
    "id": "sub_1",
    "customer": "cus_9",
    "currency": "jpy",
    "items": {
        "data": [
            {"quantity": 3, "price": {"unit_amount": 1500, "recurring": {"interval": "month"}}},
            {"quantity": 2, "price": {"unit_amount": 900, "recurring": None}},
        ]
    },
}


def _field(**spec: object) -> object:
    fs = FieldSpec.model_validate(spec)
    return compile_field(fs, None, [None] * len(fs.first_of or ()))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("customer", "cus_9"),
        ("items.data[*].quantity", [3, 2]),
        ("items.data[0].price.unit_amount", 1500),
        ("items.data[*].price.recurring.interval", ["month"]),
        ("items.data[5].quantity", None),
        ("customer.name", None),
        ("nothing.here", None),
    ],
)
def test_compile_path_reads_nested_keys_items_and_lists(path: str, expected: object) -> None:
    assert compile_path(path)(SUBSCRIPTION) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1999, "usd", 19.99), (1999, "JPY", 1999.0), (1999, "kwd", 1.999), ("250", "eur", 2.5)],
    ids=["two-decimal", "zero-decimal", "three-decimal", "text"],
)
def test_money_divides_minor_units_by_the_currency_exponent(
    amount: object, currency: str, expected: float
) -> None:
    assert money(amount, currency) == expected


@pytest.mark.parametrize("bad", [12.5, "12.5", "ten", True, [1]])
def test_money_rejects_what_is_not_a_whole_number_of_minor_units(bad: object) -> None:
    with pytest.raises(ValueError, match="minor units"):
        money(bad, "usd")


def test_money_field_reads_the_currency_from_the_record_and_sums_a_list() -> None:
    mrr = _field(
        **{"from": "items.data[*].price.unit_amount", "cast": "money", "currency_from": "currency"},
        reduce="sum",
    )
    assert mrr(SUBSCRIPTION) == 2400.0
    assert mrr({**SUBSCRIPTION, "currency": "usd"}) == 24.0


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("2026-03-29T00:30:00Z", {"timezone": "Europe/Berlin"}, "2026-03-29"),
        ("2026-03-28T23:30:00Z", {"timezone": "America/New_York"}, "2026-03-28"),
        ("2026-03-29T01:30:00Z", {"timezone": "Asia/Tokyo"}, "2026-03-29"),
        ("2026-01-01T02:00:00+00:00", {"timezone": "America/Los_Angeles"}, "2025-12-31"),
        (1_767_225_600, {}, "2026-01-01"),
        (1_767_225_600_000, {}, "2026-01-01"),
        (1_767_225_600, {"epoch": "ms"}, "1970-01-21"),
        ("2026-11-18", {"timezone": "Pacific/Kiritimati"}, "2026-11-18"),
    ],
    ids=[
        "dst-day-berlin",
        "utc-evening-ny",
        "tokyo",
        "new-year-la",
        "epoch-s",
        "epoch-ms",
        "forced-ms",
        "plain-date",
    ],
)
def test_date_cast_takes_the_calendar_day_of_the_time_zone(
    value: object, options: dict[str, str], expected: str
) -> None:
    assert make_cast("date", **options)(value, {}) == expected


def test_datetime_cast_reads_naive_text_in_the_time_zone_and_returns_utc() -> None:
    cast = make_cast("datetime", timezone="Europe/Berlin")
    assert cast("2026-07-01 09:00:00", {}) == "2026-07-01T07:00:00+00:00"
    assert cast("2026-01-01T09:00:00", {}) == "2026-01-01T08:00:00+00:00"
    assert cast("2026-01-01T09:00:00.000+0000", {}) == "2026-01-01T09:00:00+00:00"


@pytest.mark.parametrize(
    ("cast", "bad"),
    [
        ("int", "7.5"),
        ("int", "seven"),
        ("float", "nan"),
        ("float", "1e400"),
        ("bool", "maybe"),
        ("date", "yesterday"),
        ("str", {"a": 1}),
        ("decimal", "1.2.3"),
    ],
)
def test_field_cast_failure_raises_cast_error_naming_value_and_type(cast: str, bad: object) -> None:
    extract = _field(**{"from": "v", "cast": cast})
    with pytest.raises(CastError, match=f"to {cast}"):
        extract({"v": bad})


def test_role_comes_from_the_property_then_the_title_rule_then_the_default() -> None:
    role = _field(
        first_of=[
            {"from": "cs_role", "map": {"Champion": "champion", "Admin": "admin"}},
            {"from": "labels", "map": {"Decision maker": "exec_sponsor"}},
            {
                "from": "jobtitle",
                "rules": [
                    {"contains": ["cfo", "finance"], "value": "finance"},
                    {"contains": ["vp", "chief"], "value": "exec_sponsor"},
                ],
            },
        ],
        default="other",
    )
    assert role({"cs_role": "Admin", "jobtitle": "CFO"}) == "admin"
    assert role({"labels": ["Billing", "Decision maker"]}) == "exec_sponsor"
    assert role({"cs_role": "", "jobtitle": "Head of Finance, EMEA"}) == "finance"
    assert role({"jobtitle": "SVP, Chief of Staff"}) == "exec_sponsor"
    assert role({"jobtitle": "MVP engineer"}) == "other"  # whole words only: "mvp" is not "vp"
    assert role({}) == "other"


def test_field_types_follow_maps_rules_casts_and_aggregates() -> None:
    tier = FieldSpec.model_validate({"from": "t", "map": {"a": "gold", "b": "silver"}})
    count = FieldSpec.model_validate({"aggregate": "count"})
    items = FieldSpec.model_validate({"from": "items.data[*].id"})
    assert field_type(tier, None, []).enum == {"gold", "silver"}
    assert field_type(count, None, []).kind == "number"
    assert field_type(items, None, []).kind == "list"


@pytest.mark.parametrize(
    ("raw", "how", "expected"),
    [
        ("https://www.Acme.example/pricing", "domain", "acme.example"),
        ("Jane@Acme.Example", "domain", "acme.example"),
        ("  ACME  ", "lower", "acme"),
        ("", "domain", None),
        ({"a": 1}, "strip", None),
    ],
)
def test_normalize_key(raw: object, how: str, expected: str | None) -> None:
    assert normalize_key(raw, how) == expected
