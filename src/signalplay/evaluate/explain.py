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
from dataclasses import dataclass
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import Trigger
from signalplay.evaluate.evaluator import threshold_columns
from signalplay.evaluate.segments import by_specificity, matches, resolve_column
from signalplay.lang.expr import compile_expr
from signalplay.lang.frame import Frame
from signalplay.lang.functions import NUMBER, ExprError, ExprRuntimeError, history_key
from signalplay.models import Episode


@dataclass(frozen=True)
class Clause:
    """One leaf of a trigger's condition and what it gave for the account."""

    clause: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {"clause": self.clause, "value": self.value}


@dataclass(frozen=True)
class Threshold:
    """A threshold's value for the account and where it comes from (default or a segment)."""

    value: float
    source: str

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {"value": self.value, "from": self.source}


@dataclass(frozen=True)
class TriggerWhy:
    """One trigger on one account: fired or not, each clause, the values and thresholds read."""

    trigger: str
    name: str
    group: str
    fired: bool
    error: str | None
    when: str
    clauses: tuple[Clause, ...]
    values: dict[str, Any]
    thresholds: dict[str, Threshold]

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {
            "trigger": self.trigger,
            "name": self.name,
            "group": self.group,
            "fired": self.fired,
            "error": self.error,
            "when": self.when,
            "clauses": [c.to_json() for c in self.clauses],
            "values": self.values,
            "thresholds": {k: t.to_json() for k, t in self.thresholds.items()},
        }


@dataclass(frozen=True)
class MeasureWhy:
    """One health measure of one account: its value, score and segment weight."""

    measure: str
    label: str
    expression: str
    value: Any
    score: Any
    weight: float

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {
            "measure": self.measure,
            "label": self.label,
            "expression": self.expression,
            "value": self.value,
            "score": self.score,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class HealthWhy:
    """The scorecard of one account."""

    score: Any
    band: Any
    trend: Any
    drivers: Any
    measures: tuple[MeasureWhy, ...]

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {
            "score": self.score,
            "band": self.band,
            "trend": self.trend,
            "drivers": self.drivers,
            "measures": [m.to_json() for m in self.measures],
        }


@dataclass(frozen=True)
class Explanation:
    """Everything about why signalplay does (or does not do) something for one account."""

    account: str
    name: Any
    stage: Any
    risk: Any
    segments: dict[str, Any]
    health: HealthWhy
    triggers: tuple[TriggerWhy, ...]
    episodes: tuple[Episode, ...]

    def to_json(self) -> dict[str, Any]:
        """As `explain --json` prints it."""
        return {
            "account": self.account,
            "name": self.name,
            "stage": self.stage,
            "risk": self.risk,
            "segments": self.segments,
            "health": self.health.to_json(),
            "triggers": [t.to_json() for t in self.triggers],
            "episodes": [
                {
                    "episode": e.key,
                    "trigger": e.trigger_id,
                    "opened_at": e.opened_at.isoformat(),
                    "status": e.status,
                    "decision": e.decision,
                }
                for e in self.episodes
            ],
        }


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


def explain_trigger(defs: Definitions, trigger: Trigger, frame: Frame, index: int) -> TriggerWhy:
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
        clauses.append(Clause(text, value))
    read = sorted(condition.names - set(trigger.thresholds))
    values = {n: row.get(n) for n in read}
    for how, name, days in condition.history:
        values[f"{how}({name}, {days})"] = row.get(history_key(how, name, days))
    sources = _threshold_sources(trigger, row).values()
    return TriggerWhy(
        trigger=trigger.id,
        name=trigger.name,
        group=trigger.group,
        fired=fired,
        error=error,
        when=trigger.when,
        clauses=tuple(clauses),
        values=values,
        thresholds={
            k: Threshold(v, src) for (k, v), src in zip(thresholds.items(), sources, strict=True)
        },
    )


def explain_health(defs: Definitions, frame: Frame, index: int) -> HealthWhy:
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
            MeasureWhy(
                measure=m.id,
                label=m.label or m.id,
                expression=m.value,
                value=value,
                score=row.get(f"health_{m.id}"),
                weight=float(resolve_column(frame, m.weight, overrides)[index]),
            )
        )
    return HealthWhy(
        score=row.get("health_score"),
        band=row.get("health_band"),
        trend=row.get("health_trend"),
        drivers=row.get("health_drivers"),
        measures=tuple(measures),
    )


def explain_account(
    defs: Definitions, frame: Frame, index: int, episodes: Iterable[Episode] = ()
) -> Explanation:
    """Everything about why signalplay does (or does not do) something for one account."""
    row = frame.rows[index]
    return Explanation(
        account=frame.accounts[index],
        name=row.get("name"),
        stage=row.get("stage"),
        risk=row.get("risk"),
        segments={name: row.get(name) for name in defs.segments.dimensions},
        health=explain_health(defs, frame, index),
        triggers=tuple(
            explain_trigger(defs, t, frame, index) for t in defs.triggers.triggers if t.enabled
        ),
        episodes=tuple(episodes),
    )
