"""Trigger conditions per account: which triggers are true now, and the values that made them so.

Imports: stdlib, definitions, expr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalplay.definitions.schema import Trigger
from signalplay.expr import Expression, ExprRuntimeError


@dataclass(frozen=True)
class Firing:
    """A trigger that is true for an account, with the values its condition read."""

    account: str
    trigger_id: str
    evidence: dict[str, Any]


def evaluate_triggers(
    account: str,
    profile: Mapping[str, Any],
    triggers: tuple[Trigger, ...],
    conditions: Mapping[str, Expression],
) -> tuple[list[Firing], list[str]]:
    """The enabled triggers whose condition holds; errors are reported per trigger."""
    fired: list[Firing] = []
    errors: list[str] = []
    for trig in triggers:
        if not trig.enabled:
            continue
        cond = conditions[trig.id]
        scope = {**profile, **trig.thresholds}
        try:
            hit = bool(cond(scope))
        except ExprRuntimeError as exc:
            errors.append(f"trigger {trig.id}: {exc}")
            continue
        if hit:
            evidence = {n: scope.get(n) for n in sorted(cond.names)}
            fired.append(Firing(account, trig.id, evidence))
    return fired, errors
