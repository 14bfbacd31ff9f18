"""Why: each trigger, health measure, segment and decision of one account.

Why: for one account, each trigger's clauses with the values they read and the thresholds of its
segment (and which override supplied them), the health breakdown, the segments and stage, and the
decisions on its open episodes (the play chosen, and why others were suppressed, capped or held
out).

Imports: stdlib, definitions, expr, evaluator, segments, vector.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import Trigger
from signalplay.evaluate.evaluator import threshold_columns
from signalplay.evaluate.segments import by_specificity, matches, resolve_column
from signalplay.lang.expr import compile_expr
from signalplay.lang.frame import Frame
from signalplay.lang.functions import NUMBER, ExprError, ExprRuntimeError, history_key
from signalplay.models import Episode


def _clauses(text: str) -> list[str]:
    """The leaves of a condition's and/or tree, as source text."""
    source = text.strip()
    tree = ast.parse(source, mode="eval").body
    out: list[str] = []

    def walk(node: ast.expr) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                walk(value)
            return
        segment = ast.get_source_segment(source, node)
        out.append(segment if segment is not None else ast.unparse(node))

    walk(tree)
    return out


def _threshold_sources(trigger: Trigger, profile: Mapping[str, Any]) -> dict[str, str]:
    """Where each threshold comes from for this account: the default or a segment's match."""
    out = dict.fromkeys(trigger.thresholds, "default")
    for name in trigger.thresholds:
        for override in by_specificity(
            [o for o in trigger.segments if name in o.thresholds], lambda o: o.match
        ):
            if matches(profile, override.match):
                out[name] = "segment " + ", ".join(
                    f"{k}={v if isinstance(v, str) else '|'.join(v)}"
                    for k, v in override.match.items()
                )
                break
    return out


def explain_trigger(
    defs: Definitions, trigger: Trigger, frame: Frame, index: int
) -> dict[str, Any]:
    """One trigger on one account: fired or not, each clause's value, the values it read."""
    row = frame.rows[index]
    thresholds = {k: float(v[index]) for k, v in threshold_columns(frame, trigger).items()}
    scope = {**row, **thresholds}
    types = {**defs.types, **dict.fromkeys(trigger.thresholds, NUMBER)}
    names = frozenset(types)
    history = frozenset(types)
    condition = defs.trigger_conditions[trigger.id]
    error: str | None = None
    try:
        fired = bool(condition(scope))
    except ExprRuntimeError as exc:
        fired, error = False, str(exc)
    clauses = []
    for text in _clauses(trigger.when):
        try:
            clause = compile_expr(text, names=names, types=types, history_names=history)
            value: Any = clause(scope)
        except (ExprError, ExprRuntimeError) as exc:
            value = f"error: {exc}"
        clauses.append({"clause": text, "value": value})
    read = sorted(condition.names - set(trigger.thresholds))
    values = {n: row.get(n) for n in read}
    for how, name, days in condition.history:
        values[f"{how}({name}, {days})"] = row.get(history_key(how, name, days))
    return {
        "trigger": trigger.id,
        "name": trigger.name,
        "group": trigger.group,
        "fired": fired,
        "error": error,
        "when": trigger.when,
        "clauses": clauses,
        "values": values,
        "thresholds": {
            k: {"value": v, "from": src}
            for (k, v), src in zip(
                thresholds.items(), _threshold_sources(trigger, row).values(), strict=True
            )
        },
    }


def explain_health(defs: Definitions, frame: Frame, index: int) -> dict[str, Any]:
    """The scorecard of one account.

    Each measure's value, the score the evaluator gave it and the weight of the account's
    segment.
    """
    row = frame.rows[index]
    card = defs.health
    measures = []
    for m in card.measures:
        try:
            value = defs.health_values[m.id](row)
        except ExprRuntimeError:
            value = None
        overrides = [(o.match, o.weights[m.id]) for o in card.segments if m.id in o.weights]
        measures.append(
            {
                "measure": m.id,
                "label": m.label or m.id,
                "expression": m.value,
                "value": value,
                "score": row.get(f"health_{m.id}"),
                "weight": float(resolve_column(frame, m.weight, overrides)[index]),
            }
        )
    return {
        "score": row.get("health_score"),
        "band": row.get("health_band"),
        "trend": row.get("health_trend"),
        "drivers": row.get("health_drivers"),
        "measures": measures,
    }


def explain_account(
    defs: Definitions, frame: Frame, index: int, episodes: Iterable[Episode] = ()
) -> dict[str, Any]:
    """Everything about why signalplay does (or does not do) something for one account."""
    row = frame.rows[index]
    segments = {name: row.get(name) for name in defs.segments.dimensions}
    return {
        "account": frame.accounts[index],
        "name": row.get("name"),
        "stage": row.get("stage"),
        "risk": row.get("risk"),
        "segments": segments,
        "health": explain_health(defs, frame, index),
        "triggers": [
            explain_trigger(defs, t, frame, index) for t in defs.triggers.triggers if t.enabled
        ],
        "episodes": [
            {
                "episode": e.key,
                "trigger": e.trigger_id,
                "opened_at": e.opened_at.isoformat(),
                "status": e.status,
                "decision": e.decision,
            }
            for e in episodes
        ],
    }
