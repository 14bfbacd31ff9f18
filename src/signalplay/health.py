"""Health score: weighted measures scored through bands, and the band of the total.

Imports: stdlib, definitions.schema, expr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signalplay.definitions.schema import HealthFile, Measure
from signalplay.expr import Expression, ExprRuntimeError


@dataclass(frozen=True)
class HealthResult:
    """One account's score, band and each measure's contribution."""

    score: int | None
    band: str | None
    measures: dict[str, int | None]

    def drivers(self, limit: int = 3) -> list[str]:
        """The weakest measures, worst first, as text for the CRM."""
        scored = sorted((s, m) for m, s in self.measures.items() if s is not None)
        return [f"{m} {s}/100" for s, m in scored[:limit] if s < 70]


def score_measure(measure: Measure, value: Any) -> int | None:
    """The measure's score: the first band whose `below` exceeds the value."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    for band in measure.bands:
        if band.below is None or value < band.below:
            return int(band.score)
    return None


def score_health(
    card: HealthFile, values_of: Mapping[str, Expression], profile: Mapping[str, Any]
) -> HealthResult:
    """Score one profile; measures without data are left out of the weighting."""
    scores: dict[str, int | None] = {}
    total = weight = 0.0
    for measure in card.measures:
        try:
            value = values_of[measure.id](profile)
        except ExprRuntimeError:
            value = None
        score = score_measure(measure, value)
        scores[measure.id] = score
        if score is not None:
            total += score * measure.weight
            weight += measure.weight
    if not weight:
        return HealthResult(None, None, scores)
    overall = round(total / weight)
    band = "green" if overall >= card.green_at else "yellow" if overall >= card.yellow_at else "red"
    return HealthResult(overall, band, scores)
