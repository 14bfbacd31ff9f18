"""The evaluator.

Every account's derived profile (signals, segments, health, stage, risk) and which triggers hold,
computed column-wise over a frame of all accounts at once.

Definitions are compiled once into column functions (`compile_definitions`); each step falls
back to the per-row closures where an expression cannot be vectorised, so the results are the
same either way. Imports: stdlib, numpy, definitions, expr, vector, segments, health.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import Trigger
from signalplay.evaluate.health import drivers_texts, score_health
from signalplay.evaluate.segments import dimension, resolve_column, risk, stage
from signalplay.lang.frame import NUM, TEXT, Frame, Val
from signalplay.lang.functions import Expression, ValueType, history_key
from signalplay.lang.vector import VecFn, compile_vector, evaluate, truthy

Pair = tuple[str, str]
Compiled = tuple[Expression, VecFn | None]
Mask = npt.NDArray[np.bool_]


@contextmanager
def batch_gc() -> Iterator[None]:
    """Evaluating many accounts allocates millions of objects that all live to the end.

    The cyclic collector would walk the growing heap again and again. Until the batch is done,
    what exists is frozen and young collections run 400x less often: a 5,000-account shard (tens
    of thousands of tracked objects) is done before one, and the few reference cycles a batch
    makes (evaluation makes none: see plays._block_value) wait at most 300k allocations. The
    collector is never switched off.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(300_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


@dataclass(frozen=True)
class Firing:
    """A trigger that is true for an account, with the values its condition read."""

    account: str
    trigger_id: str
    evidence: dict[str, Any]


@dataclass
class CompiledDefinitions:
    """Every expression of the definitions with its column function."""

    defs: Definitions
    signals: list[tuple[str, Compiled]]
    dimensions: dict[str, list[tuple[str, Expression | None, VecFn | None]]]
    stages: dict[tuple[str, str], Compiled]
    health: dict[str, Compiled]
    triggers: dict[str, Compiled]
    closers: dict[str, Compiled]
    suppress: dict[str, Compiled]


_CACHE: dict[int, CompiledDefinitions] = {}


def compile_definitions(defs: Definitions) -> CompiledDefinitions:
    """Column functions for every expression of `defs`, built once per Definitions."""
    hit = _CACHE.get(id(defs))
    if hit is not None and hit.defs is defs:
        return hit
    types = defs.types

    def pair(expr: Expression) -> Compiled:
        return expr, compile_vector(expr, types)

    dims = {
        name: [
            (v.id, e, compile_vector(e, types) if e else None)
            for v in values
            for e in [defs.segment_conditions.get((name, v.id))]
        ]
        for name, values in defs.segments.dimensions.items()
    }
    compiled = CompiledDefinitions(
        defs=defs,
        signals=[(n, pair(e)) for n, e in defs.signals.items()],
        dimensions=dims,
        stages={k: pair(e) for k, e in defs.stage_conditions.items()},
        health={k: pair(e) for k, e in defs.health_values.items()},
        triggers={k: pair(e) for k, e in defs.trigger_conditions.items()},
        closers={k: pair(e) for k, e in defs.close_conditions.items()},
        suppress={k: pair(e) for k, e in defs.suppress_conditions.items()},
    )
    _CACHE.clear()
    _CACHE[id(defs)] = compiled
    return compiled


def new_frame(
    defs: Definitions, accounts: Iterable[str], rows: Iterable[dict[str, Any]], today: date
) -> Frame:
    """A frame over the accounts' rows (each row holds facts, history lookups and builtins)."""
    return Frame(list(accounts), list(rows), dict(defs.types), today)


def base_row(account: str, values: dict[str, Any], today: date) -> dict[str, Any]:
    """A profile row of the account's fact values, its key and today's date.

    `values` is taken over, not copied: at 100k accounts a copy is hundreds of MB. A whole
    float is an int, as every computed value is, so a value reads the same after a
    trip through JSON.
    """
    row = values
    for k, v in values.items():
        if type(v) is float and v.is_integer() and abs(v) < 2**53:
            row[k] = int(v)
    row["account_key"] = account
    row["today"] = today.isoformat()
    return row


@dataclass
class Derived:
    """What deriving the profiles found wrong, per step (rows where an expression failed)."""

    errors: Counter[str] = field(default_factory=Counter)


def derive(defs: Definitions, frame: Frame) -> Derived:
    """Signals, dimensions, health, stage and risk of every account, written into the frame."""
    cd = compile_definitions(defs)
    out = Derived()
    frame.prefetch(_inputs(defs, frame))
    for name, (expr, vec) in cd.signals:
        col, bad = evaluate(expr, vec, frame)
        frame.put(name, col)
        if bad:
            out.errors[f"signal {name}"] += bad
    for name in cd.dimensions:
        if name not in defs.late_dimensions:
            _put_dimension(cd, frame, name, out)
    _put_health(defs, cd, frame, out)
    for name in cd.dimensions:
        if name in defs.late_dimensions:
            _put_dimension(cd, frame, name, out)
    previous = frame.column(history_key("ago", "stage", 1), ValueType("text"))
    if previous.kind == NUM:  # no snapshot holds a stage yet: every value is missing
        previous = Val(np.full(len(frame), None, dtype=object), TEXT)
    col, bad = stage(frame, defs.segments, cd.stages, previous)
    frame.put("stage", col)
    if bad:
        out.errors["stage"] += bad
    frame.put("risk", risk(frame.column("health_band"), defs.segments.risk))
    frame.flush()
    return out


def _inputs(defs: Definitions, frame: Frame) -> list[str]:
    """The stored fields and history lookups the expressions read (computed ones excluded)."""
    exprs = [
        *defs.signals.values(),
        *defs.health_values.values(),
        *defs.trigger_conditions.values(),
        *defs.segment_conditions.values(),
        *defs.stage_conditions.values(),
        *defs.close_conditions.values(),
        *defs.suppress_conditions.values(),
    ]
    computed = set(defs.signals) | set(defs.segments.dimensions) | {"stage", "risk"}
    names = {n for e in exprs for n in e.names} - computed
    names = {n for n in names if not n.startswith("health_")}
    history = {history_key(how, f, d) for how, f, d in defs.history}
    return sorted(n for n in names if n in defs.types) + sorted(history)


def _put_dimension(cd: CompiledDefinitions, frame: Frame, name: str, out: Derived) -> None:
    col, bad = dimension(frame, cd.dimensions[name])
    frame.put(name, col)
    if bad:
        out.errors[f"segment {name}"] += bad


def _put_health(defs: Definitions, cd: CompiledDefinitions, frame: Frame, out: Derived) -> None:
    card = defs.health
    hc = score_health(card, cd.health, frame)
    if hc.failed:
        out.errors["health"] += hc.failed
    frame.put("health_score", Val(hc.score, NUM))
    frame.put("health_band", hc.band)
    frame.put("health_trend", Val(hc.trend, NUM))
    before: dict[str, Any] = {}
    for m in card.measures:
        frame.put(f"health_{m.id}", Val(hc.measures[m.id], NUM))
        key = history_key("ago", f"health_{m.id}", card.trend_days)
        before[m.id] = frame.column(key, ValueType("number")).data
    ids = [m.id for m in card.measures]
    texts = drivers_texts(
        card,
        score=hc.score,
        trend=hc.trend,
        measures=np.column_stack([hc.measures[m] for m in ids]),
        before=np.column_stack([np.asarray(before[m], dtype=float) for m in ids]),
        weights=np.column_stack([hc.weights[m] for m in ids]),
    )
    frame.put_values("health_drivers", texts, ValueType("text"))


# --- triggers ----------------------------------------------------------------------------------


@dataclass
class TriggerResult:
    """One trigger over the frame: where it holds, where its episodes may close, thresholds."""

    trigger: Trigger
    fired: Mask
    clears: Mask
    thresholds: dict[str, npt.NDArray[np.float64]]
    failed: int = 0


def threshold_columns(frame: Frame, trig: Trigger) -> dict[str, npt.NDArray[np.float64]]:
    """Each threshold per account: the most specific matching segment's value, else the default."""
    return {
        name: resolve_column(
            frame,
            default,
            [(o.match, o.thresholds[name]) for o in trig.segments if name in o.thresholds],
        )
        for name, default in trig.thresholds.items()
    }


def fire_triggers(defs: Definitions, frame: Frame) -> list[TriggerResult]:
    """Every enabled trigger's condition (and auto-close condition) over every account."""
    cd = compile_definitions(defs)
    n = len(frame)
    results = []
    for trig in defs.triggers.triggers:
        if not trig.enabled:
            continue
        thresholds = threshold_columns(frame, trig)
        frame.overlay = {k: Val(v, NUM) for k, v in thresholds.items()}
        try:
            col, failed = evaluate(*cd.triggers[trig.id], frame)
            fired = truthy(col, n)
            if trig.id in cd.closers:
                close_col, bad = evaluate(*cd.closers[trig.id], frame)
                failed += bad
                clears = truthy(close_col, n)
            else:
                clears = ~fired
        finally:
            frame.overlay = {}
        results.append(TriggerResult(trig, fired, clears, thresholds, failed))
    return results


def firings(defs: Definitions, frame: Frame, results: Iterable[TriggerResult]) -> list[Firing]:
    """The (account, trigger) pairs that hold, with the values each condition read."""
    out = []
    for res in results:
        names = sorted(defs.trigger_conditions[res.trigger.id].names - set(res.thresholds))
        for i in np.flatnonzero(res.fired).tolist():
            row = frame.rows[i]
            evidence = {name: row.get(name) for name in names}
            evidence.update({k: _plain(v[i]) for k, v in res.thresholds.items()})
            out.append(Firing(frame.accounts[i], res.trigger.id, evidence))
    return out


CONDITION_CLEARED = "condition_cleared"
TRIGGER_RETIRED = "trigger_retired"  # removed from the library, or disabled
ACCOUNT_REMOVED = "account_removed"  # archived or deleted in the CRM: no longer in the book


def cleared(
    frame: Frame, results: Iterable[TriggerResult], open_pairs: Iterable[Pair]
) -> dict[Pair, str]:
    """The open (account, trigger) pairs whose episode closes now, and why.

    The trigger's auto-close condition holds (or, without one, its condition no longer does):
    `condition_cleared`. The trigger is no longer in the library (or is disabled):
    `trigger_retired`, never a cleared condition. The account left the book: `account_removed`.
    """
    index = {a: i for i, a in enumerate(frame.accounts)}
    by_trigger = {r.trigger.id: r for r in results}
    out: dict[Pair, str] = {}
    for account, trigger_id in open_pairs:
        i = index.get(account)
        res = by_trigger.get(trigger_id)
        if i is None:
            out[account, trigger_id] = ACCOUNT_REMOVED
        elif res is None:
            out[account, trigger_id] = TRIGGER_RETIRED
        elif bool(res.clears[i]):
            out[account, trigger_id] = CONDITION_CLEARED
    return out


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _plain(value: float) -> float | int | None:
    if math.isnan(value):
        return None
    return int(value) if float(value).is_integer() else float(value)
