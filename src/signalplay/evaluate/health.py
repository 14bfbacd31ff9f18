"""The health scorecard.

Each measure scored 0-100 through its bands, weighted per segment into one score, banded green /
yellow / red, compared with the score `trend_days` ago, and the drivers that moved it (or the
weakest measures) as text ready for the CRM.

Column-wise over a frame of accounts. Imports: stdlib, numpy, definitions.schema, expr, vector,
segments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from signalplay.definitions.schema import HealthFile, Measure
from signalplay.evaluate.segments import resolve_column
from signalplay.lang.frame import NUM, TEXT, Frame, Val
from signalplay.lang.functions import Expression, history_key
from signalplay.lang.vector import VecFn, evaluate

Floats = npt.NDArray[np.float64]
WEAK_BELOW = 70


def score_measure(measure: Measure, values: Floats) -> Floats:
    """The score of the first band whose `below` exceeds the value (missing stays missing)."""
    out = np.full(values.shape, np.nan)
    open_ = ~np.isnan(values)
    for band in measure.bands:
        hit = open_ if band.below is None else open_ & (values < band.below)
        out[hit] = band.score
        open_ &= ~hit
    return out


@dataclass
class HealthColumns:
    """The scorecard of every account of a frame."""

    score: Floats
    band: Val
    trend: Floats
    measures: dict[str, Floats]
    weights: dict[str, Floats]
    failed: int


def score_health(
    card: HealthFile,
    values: Mapping[str, tuple[Expression, VecFn | None]],
    frame: Frame,
) -> HealthColumns:
    """Score every account of `frame`; measures without data are left out of the weighting."""
    n = len(frame)
    scores: dict[str, Floats] = {}
    weights: dict[str, Floats] = {}
    failed = 0
    total = np.zeros(n)
    weight = np.zeros(n)
    for m in card.measures:
        expr, vec = values[m.id]
        col, bad = evaluate(expr, vec, frame)
        failed += bad
        raw = col.data.astype(float) if col.kind in (NUM, "bool") else _floats(col)
        s = score_measure(m, raw)
        w = resolve_column(
            frame,
            m.weight,
            [(o.match, o.weights[m.id]) for o in card.segments if m.id in o.weights],
        )
        scores[m.id], weights[m.id] = s, w
        present = ~np.isnan(s)
        total += np.where(present, s * w, 0.0)
        weight += np.where(present, w, 0.0)
    with np.errstate(all="ignore"):
        overall = np.where(weight > 0, np.round(total / np.where(weight > 0, weight, 1.0)), np.nan)
    band = np.full(n, None, dtype=object)
    band[overall >= card.green_at] = "green"
    band[(overall < card.green_at) & (overall >= card.yellow_at)] = "yellow"
    band[overall < card.yellow_at] = "red"
    before = frame.column(history_key("ago", "health_score", card.trend_days)).data
    trend = overall - _floats_data(before)
    return HealthColumns(overall, Val(band, TEXT), trend, scores, weights, failed)


def _floats(col: Val) -> Floats:
    return np.array([_float(v) for v in col.data.tolist()], dtype=float)


def _floats_data(data: object) -> Floats:
    arr = np.asarray(data)
    return arr.astype(float) if arr.dtype != object else np.array([_float(v) for v in arr.tolist()])


def _float(value: object) -> float:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else math.nan


def drivers_text(
    card: HealthFile,
    *,
    score: float,
    trend: float,
    measures: Mapping[str, float],
    before: Mapping[str, float],
    weights: Mapping[str, float],
) -> str:
    """What moved the score since `trend_days` ago, or else the weakest measures; for the CRM."""
    if math.isnan(score):
        return "No health data"
    labels = {m.id: m.label or m.id.replace("_", " ") for m in card.measures}
    head = f"Health {int(score)}"
    moved = []
    if not math.isnan(trend):
        head += f" ({'+' if trend > 0 else ''}{int(trend)} in {card.trend_days}d)"
        deltas = [
            (abs(measures[m] - before[m]) * weights[m], m)
            for m in measures
            if not math.isnan(measures[m])
            and not math.isnan(before.get(m, math.nan))
            and measures[m] != before[m]
        ]
        moved = [
            f"{labels[m]} {int(before[m])}→{int(measures[m])}"
            for _, m in sorted(deltas, key=lambda d: (-d[0], d[1]))[:3]
        ]
    if moved:
        return f"{head}: " + "; ".join(moved)
    weak = sorted((v, m) for m, v in measures.items() if not math.isnan(v) and v < WEAK_BELOW)[:3]
    if not weak:
        return f"{head}: every measure healthy"
    return f"{head}: weakest " + "; ".join(f"{labels[m]} {int(v)}/100" for v, m in weak)


def drivers_texts(
    card: HealthFile,
    *,
    score: Floats,
    trend: Floats,
    measures: Floats,
    before: Floats,
    weights: Floats,
) -> list[str]:
    """`drivers_text` for every account at once, orderings computed column-wise.

    `measures`, `before` and `weights` hold one row per account, one column per measure in the
    card's order.
    """
    ids = [m.id for m in card.measures]
    labels = [m.label or m.id.replace("_", " ") for m in card.measures]
    rank = np.broadcast_to(
        np.array(sorted(range(len(ids)), key=ids.__getitem__)).argsort(), measures.shape
    )
    with np.errstate(invalid="ignore"):
        moved_ok = ~np.isnan(measures) & ~np.isnan(before) & (measures != before)
        delta = np.where(moved_ok, np.abs(measures - before) * weights, -1.0)
        weak_ok = ~np.isnan(measures) & (measures < WEAK_BELOW)
    by_delta = np.lexsort((rank, -delta), axis=-1).tolist()
    by_score = np.lexsort((rank, np.where(weak_ok, measures, np.inf)), axis=-1).tolist()
    moved_rows, weak_rows = moved_ok.tolist(), weak_ok.tolist()
    now_rows, before_rows = measures.tolist(), before.tolist()
    out = []
    for i, (s, t) in enumerate(zip(score.tolist(), trend.tolist(), strict=True)):
        if math.isnan(s):
            out.append("No health data")
            continue
        head = f"Health {int(s)}"
        if not math.isnan(t):
            head += f" ({'+' if t > 0 else ''}{int(t)} in {card.trend_days}d)"
            moved = [j for j in by_delta[i] if moved_rows[i][j]][:3]
            if moved:
                out.append(
                    f"{head}: "
                    + "; ".join(
                        f"{labels[j]} {int(before_rows[i][j])}→{int(now_rows[i][j])}" for j in moved
                    )
                )
                continue
        weak = [j for j in by_score[i] if weak_rows[i][j]][:3]
        if not weak:
            out.append(f"{head}: every measure healthy")
        else:
            out.append(
                f"{head}: weakest "
                + "; ".join(f"{labels[j]} {int(now_rows[i][j])}/100" for j in weak)
            )
    return out
