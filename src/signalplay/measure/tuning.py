"""Calibrate the health score on outcomes: measure weights and band cut-offs, fitted, proposed.

Each sample is one account on one snapshot day: its measure scores (as the scorecard computes
them) and whether it churned within the horizon after that day. A logistic regression
(scikit-learn) of churn on each measure's risk, `(100 - score) / 100`, is fitted on the older
days and judged on the newer ones (a time split: the newer part is what the proposal is judged
on). A measure's weight is its coefficient's share of the positive ones. A measure whose
coefficient is negative (its risk goes with staying) gets weight 0 and is named. The bands are
cut so that red holds the accounts most at risk. Nothing is written here: the use case writes
the proposal beside `health.yaml` for RevOps to review.

Imports: stdlib, numpy, scikit-learn, definitions, evaluate.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import HealthFile
from signalplay.errors import SignalplayError
from signalplay.evaluate.evaluator import compile_definitions, new_frame
from signalplay.evaluate.health import score_health

Floats = npt.NDArray[np.float64]
DayRows = tuple[date, Sequence[str], Sequence[dict[str, Any]]]


class TuneError(SignalplayError):
    """The history cannot support a fit (too few outcomes, too few days); says what is missing."""


@dataclass(frozen=True)
class Samples:
    """Account-days: measure scores (NaN: no data), the current score, the outcome."""

    measures: tuple[str, ...]
    scores: Floats  # one row a sample, one column a measure: 0-100
    current: Floats  # the scorecard's score that day (NaN: none)
    churned: npt.NDArray[np.bool_]
    day: npt.NDArray[np.int64]  # date ordinals
    segment: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.churned)


def samples_from(
    defs: Definitions,
    days: Iterable[DayRows],
    churn: Mapping[str, date | None],
    *,
    horizon: int,
    segment_field: str,
) -> Samples:
    """The samples of these snapshot days: customers that day, churned within `horizon` days."""
    card = defs.health
    compiled = compile_definitions(defs).health
    names = tuple(m.id for m in card.measures)
    parts: list[Floats] = []
    current: list[float] = []
    churned: list[bool] = []
    ordinals: list[int] = []
    segments: list[str] = []
    for day, accounts, rows in days:
        keep = [i for i, a in enumerate(accounts) if not _gone(churn.get(a), day)]
        if not keep:
            continue
        frame = new_frame(defs, [accounts[i] for i in keep], [dict(rows[i]) for i in keep], day)
        hc = score_health(card, compiled, frame)
        parts.append(np.column_stack([hc.measures[m] for m in names]))
        current.extend(float(s) for s in hc.score)
        for i in keep:
            ends = churn.get(accounts[i])
            churned.append(ends is not None and day < ends <= day + timedelta(days=horizon))
            ordinals.append(day.toordinal())
            segments.append(str(rows[i].get(segment_field) or "-"))
    return Samples(
        measures=names,
        scores=np.vstack(parts) if parts else np.zeros((0, len(names))),
        current=np.array(current, dtype=float),
        churned=np.array(churned, dtype=bool),
        day=np.array(ordinals, dtype=np.int64),
        segment=tuple(segments),
    )


def _gone(ends: date | None, day: date) -> bool:
    return ends is not None and ends <= day


@dataclass(frozen=True)
class Fit:
    """Weights fitted on one set of samples (all, or one segment)."""

    weights: dict[str, float]
    coefficients: dict[str, float]
    samples: int
    churners: int


@dataclass(frozen=True)
class Proposal:
    """The fitted scorecard and its figures, before and after, on the newer days."""

    overall: Fit
    segments: dict[str, Fit]
    green_at: int
    yellow_at: int
    split_day: date
    train: dict[str, Any]
    test: dict[str, Any]
    anti_predictive: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """As `tune health --json` prints it."""
        return {
            "weights": self.overall.weights,
            "coefficients": self.overall.coefficients,
            "segments": {s: f.weights for s, f in self.segments.items()},
            "green_at": self.green_at,
            "yellow_at": self.yellow_at,
            "split_day": self.split_day.isoformat(),
            "train": self.train,
            "test": self.test,
            "anti_predictive": list(self.anti_predictive),
        }


def fit_logistic(risk: Floats, churned: npt.NDArray[np.bool_], names: Sequence[str]) -> Fit:
    """Churn on each measure's risk; weights are the positive coefficients' shares.

    A health score is a weighted mean, so no weight may be negative: a measure whose
    coefficient comes out negative (often one that says less than a correlated other, such as
    a usage trend beside utilisation) is dropped, the most negative first, and the rest
    refitted, until every coefficient left is positive. A dropped measure keeps the
    coefficient it had when it went, to show why.
    """
    from sklearn.linear_model import LogisticRegression

    coef = [0.0] * len(names)
    active = list(range(len(names)))
    while active:
        model = LogisticRegression(max_iter=2000, C=10.0)
        model.fit(risk[:, active], churned)
        fitted = [float(c) for c in model.coef_[0]]
        for i, c in zip(active, fitted, strict=True):
            coef[i] = c
        worst = min(range(len(active)), key=lambda k: fitted[k])
        if fitted[worst] >= 0:
            break
        active.pop(worst)
    positive = sum(max(coef[i], 0.0) for i in active)
    coef = [c if i in active else min(c, 0.0) for i, c in enumerate(coef)]
    weights = {
        n: round(max(c, 0.0) / positive, 3) if positive > 0 else round(1 / len(names), 3)
        for n, c in zip(names, coef, strict=True)
    }
    return Fit(
        weights=weights,
        coefficients={n: round(c, 3) for n, c in zip(names, coef, strict=True)},
        samples=len(churned),
        churners=int(churned.sum()),
    )


def propose(
    samples: Samples,
    *,
    split: float = 0.6,
    min_churners: int = 10,
    min_segment_churners: int = 30,
) -> Proposal:
    """Fit on the older `split` of the days, judge on the rest (see the module docstring)."""
    days = np.unique(samples.day)
    if len(days) < 2:
        raise TuneError(f"the history has {len(days)} snapshot day(s): backfill more days first")
    cut = int(days[min(max(int(len(days) * split), 1), len(days) - 1)])
    train, test = samples.day < cut, samples.day >= cut
    y = samples.churned
    for part, name in ((train, "older"), (test, "newer")):
        if int(y[part].sum()) < min_churners or int((~y[part]).sum()) == 0:
            raise TuneError(
                f"the {name} part of the history has {int(y[part].sum())} account-days that "
                f"churned within the horizon (at least {min_churners} are needed)"
            )
    risk = _risk(samples.scores, train)
    names = samples.measures
    overall = fit_logistic(risk[train], y[train], names)
    segments: dict[str, Fit] = {}
    for seg in sorted(set(samples.segment)):
        mine = train & np.array([s == seg for s in samples.segment])
        if int(y[mine].sum()) >= min_segment_churners and int((~y[mine]).sum()) > 0:
            segments[seg] = fit_logistic(risk[mine], y[mine], names)
    proposed = _scores(samples, overall, segments)
    yellow_at, green_at = cut_bands(proposed[train], y[train])
    return Proposal(
        overall=overall,
        segments=segments,
        green_at=green_at,
        yellow_at=yellow_at,
        split_day=date.fromordinal(cut),
        train=_figures(samples, proposed, train, yellow_at, green_at),
        test=_figures(samples, proposed, test, yellow_at, green_at),
        anti_predictive=tuple(n for n, c in overall.coefficients.items() if c < 0),
    )


def _risk(scores: Floats, train: npt.NDArray[np.bool_]) -> Floats:
    """(100 - score) / 100, a missing score as the older part's mean (0 when never seen)."""
    risk = (100.0 - scores) / 100.0
    with warnings.catch_warnings():  # a measure never seen in the older part: its mean is 0
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(np.where(train[:, None], risk, np.nan), axis=0)
    means = np.where(np.isnan(means), 0.0, means)
    return np.where(np.isnan(risk), means[None, :], risk)


def _scores(samples: Samples, overall: Fit, segments: Mapping[str, Fit]) -> Floats:
    """The scorecard's own formula with the fitted weights: the weighted mean of present scores."""
    out = np.full(len(samples), np.nan)
    for i in range(len(samples)):
        fit = segments.get(samples.segment[i], overall)
        w = np.array([fit.weights[m] for m in samples.measures])
        row = samples.scores[i]
        present = ~np.isnan(row)
        total = float((w * present).sum())
        if total > 0:
            out[i] = float((np.where(present, row, 0.0) * w).sum()) / total
    return out


def cut_bands(scores: Floats, churned: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """Red below the first cut, green from the second.

    Red is the lowest scores where churn runs at twice the base rate or more (the largest such
    set up to a quarter of the accounts); green is where it runs at or below the base rate.
    Falls back to the 20th and 60th percentiles.
    """
    ok = ~np.isnan(scores)
    s, y = scores[ok], churned[ok]
    if len(s) == 0:
        return 40, 70
    base = float(y.mean())
    red = int(np.percentile(s, 20))
    for cut in range(95, 4, -5):
        below = s < cut
        if 0 < below.mean() <= 0.25 and float(y[below].mean()) >= 2 * base:
            red = cut
            break
    green = int(np.percentile(s, 60))
    for cut in range(red + 10, 100, 5):
        above = s >= cut
        if above.any() and float(y[above].mean()) <= base:
            green = cut
            break
    return red, max(green, red + 5)


def _figures(
    samples: Samples, proposed: Floats, part: npt.NDArray[np.bool_], red: int, green: int
) -> dict[str, Any]:
    y = samples.churned[part]
    new, old = proposed[part], samples.current[part]
    in_red = new < red
    return {
        "account_days": int(part.sum()),
        "churned": int(y.sum()),
        "auc_current": roc_auc(old, y),
        "auc_proposed": roc_auc(new, y),
        "red_share_proposed": round(float(in_red.mean()), 3) if len(y) else None,
        "churners_in_red_proposed": round(float(in_red[y].mean()), 3) if y.any() else None,
    }


def roc_auc(scores: Floats, churned: npt.NDArray[np.bool_]) -> float | None:
    """How often a churner scored below a stayer (a low score is the risk); None: one class."""
    from sklearn.metrics import roc_auc_score

    ok = ~np.isnan(scores)
    if len(set(churned[ok].tolist())) < 2:
        return None
    return round(float(roc_auc_score(churned[ok], -scores[ok])), 4)


def proposal_yaml(
    text: str, card: HealthFile, proposal: Proposal, *, segment_field: str = "tier"
) -> str:
    """health.yaml with the fitted weights and bands, its layout and comments kept.

    Each measure's `weight:` and the top-level `green_at:` and `yellow_at:` are rewritten in
    place; the `segments:` block is replaced by the fitted segment weights (a segment too small
    to fit keeps the overall weights). A header names the figures.
    """
    out = text
    for m in card.measures:
        pattern = re.compile(
            rf"(- id: {re.escape(m.id)}\n(?:(?!  - id:).*\n)*?\s+weight: )[0-9.]+", re.MULTILINE
        )
        out = pattern.sub(rf"\g<1>{_num(proposal.overall.weights[m.id])}", out, count=1)
    out = re.sub(r"(?m)^green_at: .*$", f"green_at: {proposal.green_at}", out, count=1)
    out = re.sub(r"(?m)^yellow_at: .*$", f"yellow_at: {proposal.yellow_at}", out, count=1)
    out = re.split(r"(?m)^segments:", out)[0].rstrip("\n") + "\n"
    if proposal.segments:
        out += "segments:\n"
        for seg, fit in sorted(proposal.segments.items()):
            weights = ", ".join(f"{k}: {_num(v)}" for k, v in fit.weights.items())
            out += f"  # fitted on {fit.samples} account-days, {fit.churners} churned\n"
            out += f"  - match: {{{segment_field}: {seg}}}\n    weights: {{{weights}}}\n"
    t = proposal.test
    head = (
        "# PROPOSED by `signalplay tune health`: review, then replace health.yaml with it.\n"
        f"# Fitted on the days before {proposal.split_day} "
        f"({proposal.train['account_days']} account-days, {proposal.train['churned']} churned);"
        f" judged on the days after ({t['account_days']}, {t['churned']} churned):\n"
        f"# AUC {t['auc_current']} with the current weights, {t['auc_proposed']} with these;"
        f" red holds {t['red_share_proposed']} of account-days and "
        f"{t['churners_in_red_proposed']} of the churners.\n"
    )
    return head + out


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if not math.isnan(value) else "0"
