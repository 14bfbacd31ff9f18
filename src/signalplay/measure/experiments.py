"""MEASURE · experiments.

Each play variant's lift over its holdout, with Wilson and Newcombe intervals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signalplay.measure.kpis import ACTIONED, HOLDOUT, EpisodeFacts, Period, _ratio

Z95 = 1.959963984540054


# ---- experiments ----------------------------------------------------------------------------
def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2.

    Newcombe's hybrid score interval of p1 - p2 (his method 10), from the arms' Wilson
    intervals: sound at small samples and near 0 or 1, where the Wald interval is not.
    """
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@dataclass(frozen=True)
class Lift:
    """A play variant's outcome rate against its experiment's holdout."""

    experiment: str
    variant: str
    n: int
    successes: int
    holdout_n: int
    holdout_successes: int

    @property
    def rate(self) -> float | None:
        """The variant's outcome rate."""
        return _ratio(self.successes, self.n)

    @property
    def holdout_rate(self) -> float | None:
        """The holdout's outcome rate."""
        return _ratio(self.holdout_successes, self.holdout_n)

    @property
    def lift(self) -> float | None:
        """The variant's rate minus the holdout's."""
        if not self.n or not self.holdout_n:
            return None
        return self.successes / self.n - self.holdout_successes / self.holdout_n

    @property
    def interval(self) -> tuple[float, float] | None:
        """Newcombe's 95% interval of the lift (None without both arms)."""
        if not self.n or not self.holdout_n:
            return None
        return newcombe(self.successes, self.n, self.holdout_successes, self.holdout_n)

    def as_dict(self) -> dict[str, Any]:
        """The figures, as the report and `--json` show them."""
        low, high = self.interval or (None, None)
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "n": self.n,
            "rate": self.rate,
            "holdout_n": self.holdout_n,
            "holdout_rate": self.holdout_rate,
            "lift": self.lift,
            "ci_low": low,
            "ci_high": high,
        }


def experiment_lift(facts: Sequence[EpisodeFacts], period: Period) -> list[Lift]:
    """Per experiment, each variant's outcome rate against the holdout's.

    Per experiment, each variant's rate of outcomes (the condition cleared within the window)
    against the holdout's, over the episodes opened in `period` whose outcome is known.
    """
    arms: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for fact in facts:
        experiment = fact.episode.decision.get("experiment")
        if not experiment or fact.recovered is None or not period.holds(fact.episode.opened_at):
            continue
        if fact.status not in (ACTIONED, HOLDOUT):
            continue
        arms[experiment][fact.variant or "-"].append(fact.recovered)
    out = []
    for experiment, by_variant in sorted(arms.items()):
        hold = by_variant.get("holdout", [])
        for variant, results in sorted(by_variant.items()):
            if variant == "holdout":
                continue
            out.append(Lift(experiment, variant, len(results), sum(results), len(hold), sum(hold)))
    return out
