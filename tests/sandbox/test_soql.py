"""The stand-in's SOQL subset: what it accepts, what it refuses, and how values compare."""

from __future__ import annotations

import pytest

from signalplay.sandbox.soql import SoqlError, parse

ROWS = [
    {"Id": "1", "Name": "Acme", "Amount": 10, "CloseDate": "2026-01-02",
     "SystemModstamp": "2026-01-02T10:00:00.000+0000", "Type": None},
    {"Id": "2", "Name": "Beta", "Amount": 30, "CloseDate": "2026-03-01",
     "SystemModstamp": "2026-03-01T10:00:00.000+0000", "Type": "Renewal"},
]  # fmt: skip


def matching(where: str) -> list[str]:
    q = parse("SELECT Id FROM Opportunity WHERE " + where)
    assert q.where is not None
    return [r["Id"] for r in ROWS if q.where(r)]


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        ("Amount > 10", ["2"]),
        ("Amount >= 10 AND Name != 'Beta'", ["1"]),
        ("Name IN ('Acme', 'Zed') OR Amount = 30", ["1", "2"]),
        ("Name NOT IN ('Acme')", ["2"]),
        ("Name LIKE 'ac%'", ["1"]),
        ("NOT (Amount < 20)", ["2"]),
        ("CloseDate < 2026-02-01", ["1"]),
        ("SystemModstamp > 2026-02-01T00:00:00Z", ["2"]),
        ("Type = null", ["1"]),
        ("Type != null", ["2"]),
        ("Type > 'A'", ["2"]),
    ],
)
def test_where_clauses(where: str, ids: list[str]) -> None:
    assert matching(where) == ids


def test_order_limit_and_parent_fields_parse() -> None:
    q = parse("SELECT Id, Account.Name FROM Contact ORDER BY LastName DESC NULLS LAST, Id LIMIT 5")
    assert q.fields == ("Id", "Account.Name")
    assert q.order == (("LastName", True, True), ("Id", False, False))
    assert q.limit == 5


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Account",
        "SELECT Id FROM",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name",
        "SELECT Id FROM Account WHERE Name = 'x' GARBAGE",
        "SELECT Id FROM Account LIMIT many",
        "SELECT Id FROM Account WHERE Name NOT = 'x'",
        "DELETE FROM Account",
    ],
)
def test_malformed_queries_are_refused(text: str) -> None:
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert info.value.code == "MALFORMED_QUERY"
