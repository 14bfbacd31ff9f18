"""The unified profile: facts from every stream merged per account, and derived signals.

Imports: stdlib, definitions, expr, models.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from signalplay.expr import Expression, ExprRuntimeError
from signalplay.models import Fact


def merge_facts(parts: list[dict[str, dict[str, Fact]]]) -> dict[str, dict[str, Fact]]:
    """Facts of several streams, per account (each profile field has one owning stream)."""
    merged: dict[str, dict[str, Fact]] = {}
    for part in parts:
        for account, facts in part.items():
            merged.setdefault(account, {}).update(facts)
    return merged


def profile_values(
    account: str,
    facts: Mapping[str, Fact],
    signals: Mapping[str, Expression],
    *,
    today: date,
) -> tuple[dict[str, Any], list[str]]:
    """Flat values of one account's profile with its signals; errors name the failing signal."""
    values: dict[str, Any] = {name: fact.value for name, fact in facts.items()}
    values["account_key"] = account
    values["today"] = today.isoformat()
    errors = []
    for name, expr in signals.items():
        try:
            values[name] = expr(values)
        except ExprRuntimeError as exc:
            values[name] = None
            errors.append(f"signal {name}: {exc}")
    return values, errors
