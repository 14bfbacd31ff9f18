"""MEASURE · tuning the trigger library on outcomes.

Each trigger's numeric thresholds are varied (scaled by a few factors, its segment overrides with
them) and every variant is replayed beside the trigger over the same history. The variant that
does best on the older part of the history (F0.5: precision counts twice, a CSM acts on tasks
that are right) is proposed only when the newer part agrees; triggers no better than chance on
the newer part (under 1.5x the base churn rate) are flagged to retire, predictive ones that warn
too few churners to strengthen.
The proposal is triggers.yaml with those thresholds rewritten in place, comments kept, and the
before/after figures in its header. Imports: stdlib, definitions.schema, measure.backtest.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from signalplay.definitions.schema import Trigger
from signalplay.measure.backtest import ReplayedEpisode

FACTORS = (0.7, 0.85, 1.2, 1.4)
BETA = 0.5  # F-beta: precision weighs 1 / BETA times recall
RETIRE_LIFT = 1.5  # precision under this many times the base rate: not worth a CSM's time
LOOSEN_RECALL = 0.3  # a predictive trigger warning fewer of the churners than this: strengthen


@dataclass(frozen=True)
class Variant:
    """One replayed version of a trigger: its own thresholds (None: the trigger as it is)."""

    id: str
    trigger: str
    threshold: str | None = None
    value: float | None = None
    factor: float = 1.0


def variants(
    triggers: Sequence[Trigger], factors: Sequence[float] = FACTORS
) -> tuple[list[Trigger], dict[str, Variant]]:
    """The triggers and, beside each, a copy per numeric threshold and factor.

    A whole-number threshold stays whole; a factor that leaves it unchanged adds nothing.
    """
    out: list[Trigger] = []
    index: dict[str, Variant] = {}
    for t in triggers:
        if not t.enabled:
            continue
        out.append(t)
        index[t.id] = Variant(t.id, t.id)
        for key, value in sorted(t.thresholds.items()):
            seen = {value}
            for factor in factors:
                new = _scaled(value, factor)
                if new in seen:
                    continue
                seen.add(new)
                vid = f"{t.id}__v{len(index)}"
                segments = tuple(
                    s.model_copy(
                        update={
                            "thresholds": {
                                k: _scaled(v, factor) if k == key else v
                                for k, v in s.thresholds.items()
                            }
                        }
                    )
                    for s in t.segments
                )
                out.append(
                    t.model_copy(
                        update={
                            "id": vid,
                            "thresholds": {**t.thresholds, key: new},
                            "segments": segments,
                            "renamed_from": (),
                        }
                    )
                )
                index[vid] = Variant(vid, t.id, key, new, factor)
    return out, index


def _scaled(value: float, factor: float) -> float:
    if isinstance(value, int):
        return max(0, round(value * factor)) if value else 0
    return round(value * factor, 4)


@dataclass(frozen=True)
class Figures:
    """A variant's replay on one part of the history."""

    episodes: int
    precision: float | None
    recall: float | None
    lead_days: float | None
    flagged: int

    @property
    def f_score(self) -> float:
        """F-beta of precision and recall (0 without either)."""
        p, r = self.precision or 0.0, self.recall or 0.0
        if not p or not r:
            return 0.0
        return (1 + BETA**2) * p * r / (BETA**2 * p + r)

    def as_dict(self) -> dict[str, Any]:
        """As `tune triggers --json` prints it."""
        return {
            "episodes": self.episodes,
            "precision": self.precision,
            "recall": self.recall,
            "lead_days": self.lead_days,
            "flagged_accounts": self.flagged,
        }


def figures(
    episodes: Sequence[ReplayedEpisode],
    churn: Mapping[str, date | None],
    part: tuple[date, date],
    horizon: int,
) -> Figures:
    """Precision, recall and lead time of the episodes opened in `part`.

    Precision: the share of them on accounts that churned within the horizon. Recall: the share
    of the accounts that churned in `part` with an episode opened within the horizon before.
    """
    start, end = part
    inside = [e for e in episodes if start <= e.opened <= end]
    hits = sum(e.churned_within_horizon for e in inside)
    opened: dict[str, list[date]] = {}
    for e in episodes:
        opened.setdefault(e.account, []).append(e.opened)
    churners = {a: c for a, c in churn.items() if c is not None and start <= c <= end}
    leads = []
    for account, gone in churners.items():
        warned = [d for d in opened.get(account, ()) if gone - timedelta(days=horizon) <= d < gone]
        if warned:
            leads.append(float((gone - min(warned)).days))
    return Figures(
        episodes=len(inside),
        precision=hits / len(inside) if inside else None,
        recall=len(leads) / len(churners) if churners else None,
        lead_days=statistics.median(leads) if leads else None,
        flagged=len({e.account for e in inside}),
    )


def base_rate(
    churn: Mapping[str, date | None], part: tuple[date, date], horizon: int, step: int = 7
) -> float | None:
    """The chance that an account, on a day of `part`, churns within the horizon.

    What a trigger that knows nothing would score: its precision is judged against it. Over
    every `step`-th day, the accounts not churned yet that day.
    """
    start, end = part
    rates = []
    day = start
    while day <= end:
        alive = [c for c in churn.values() if c is None or c > day]
        if alive:
            soon = sum(c is not None and c <= day + timedelta(days=horizon) for c in alive)
            rates.append(soon / len(alive))
        day += timedelta(days=step)
    return statistics.fmean(rates) if rates else None


@dataclass(frozen=True)
class TriggerTuning:
    """What the replay says of one trigger: keep, change a threshold, retire or strengthen."""

    trigger: str
    verdict: str  # keep, change, retire, strengthen
    reason: str
    older: Figures  # the trigger as it is, on the older part (the fit)
    newer: Figures  # and on the newer part (the judgement)
    proposed: Variant | None = None
    proposed_older: Figures | None = None
    proposed_newer: Figures | None = None

    def as_dict(self) -> dict[str, Any]:
        """As `tune triggers --json` prints it."""
        out: dict[str, Any] = {
            "trigger": self.trigger,
            "verdict": self.verdict,
            "reason": self.reason,
            "current": {"older": self.older.as_dict(), "newer": self.newer.as_dict()},
        }
        if self.proposed is not None and self.proposed_newer and self.proposed_older:
            out["proposed"] = {
                "threshold": self.proposed.threshold,
                "value": self.proposed.value,
                "factor": self.proposed.factor,
                "older": self.proposed_older.as_dict(),
                "newer": self.proposed_newer.as_dict(),
            }
        return out


def judge(
    index: Mapping[str, Variant],
    by_variant: Mapping[str, tuple[Figures, Figures]],
    *,
    base_rate: float | None,
    min_episodes: int,
) -> list[TriggerTuning]:
    """Per trigger: the best variant on the older part, kept if the newer part agrees."""
    out = []
    for tid in sorted({v.trigger for v in index.values()}):
        older, newer = by_variant[tid]
        candidates = [
            (by_variant[v.id][0].f_score, v)
            for v in index.values()
            if v.trigger == tid and v.threshold is not None
            if by_variant[v.id][0].episodes >= min_episodes
        ]
        best = max(candidates, key=lambda c: c[0], default=None)
        chance = base_rate or 0.0
        bar = RETIRE_LIFT * chance
        if newer.episodes >= min_episodes and (newer.precision or 0.0) < bar:
            judged = by_variant[best[1].id][1] if best is not None else None
            # a better bar rescues it only if that makes it predictive (2x the base rate)
            better = (
                judged is not None
                and judged.episodes >= min_episodes
                and _predictive(judged, chance)
            )
            if not better:
                reason = (
                    f"precision {_pct(newer.precision)} on the newer part is under "
                    f"{RETIRE_LIFT:g}x the base churn rate {_pct(chance)} "
                    f"({newer.episodes} episodes): no better than knowing nothing"
                )
                out.append(TriggerTuning(tid, "retire", reason, older, newer))
                continue
        if best is not None and best[0] > older.f_score:
            variant = best[1]
            p_older, p_newer = by_variant[variant.id]
            if p_newer.f_score >= newer.f_score and p_newer.episodes:
                reason = (
                    f"{variant.threshold} {_num(variant.value)}: F0.5 {older.f_score:.2f} -> "
                    f"{p_older.f_score:.2f} on the older part, {newer.f_score:.2f} -> "
                    f"{p_newer.f_score:.2f} on the newer"
                )
                # a predictive trigger that warns more churners this way: strengthen it
                warns_more = (p_newer.recall or 0) > (newer.recall or 0)
                verdict = "strengthen" if warns_more and _predictive(newer, chance) else "change"
                out.append(
                    TriggerTuning(tid, verdict, reason, older, newer, variant, p_older, p_newer)
                )
                continue
        if newer.episodes < min_episodes:
            reason = f"{newer.episodes} episodes on the newer part: too few to judge"
            out.append(TriggerTuning(tid, "keep", reason, older, newer))
            continue
        if _predictive(newer, chance) and (newer.recall or 0) < LOOSEN_RECALL:
            reason = (
                f"precision {_pct(newer.precision)} is {(newer.precision or 0) / chance:.1f}x the "
                f"base rate but it warned {_pct(newer.recall)} of the churners: no looser "
                "threshold did better; widen its condition"
            )
            out.append(TriggerTuning(tid, "strengthen", reason, older, newer))
            continue
        out.append(TriggerTuning(tid, "keep", "no variant did better on both parts", older, newer))
    return out


def _predictive(f: Figures, chance: float) -> bool:
    return bool(chance) and f.precision is not None and f.precision >= 2 * chance


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def proposal_yaml(text: str, tunings: Sequence[TriggerTuning], *, split: date) -> str:
    """triggers.yaml with each changed threshold rewritten in place.

    Its segment overrides are scaled by the same factor; comments and layout are kept, and the
    figures go in a header.
    """
    out = text
    head = [
        "# PROPOSED by `signalplay tune triggers`: review, then replace triggers.yaml with it.",
        f"# Fitted on the days before {split}, judged on the days after; F0.5 weighs precision",
        "# twice. Figures: precision / recall / episodes, older part -> newer part.",
    ]
    for t in tunings:
        if t.verdict == "keep":
            continue
        head.append(f"# {t.trigger}: {t.verdict.upper()}. {t.reason}")
        variant = t.proposed
        if variant is None or variant.threshold is None:
            continue
        out = _rewrite(out, t.trigger, variant.threshold, variant.factor, variant.value)
    return "\n".join(head) + "\n" + out


def _rewrite(text: str, trigger: str, key: str, factor: float, value: float | None) -> str:
    block = re.search(rf"(?ms)^  - id: {re.escape(trigger)}\n.*?(?=^  - id: |^\S|\Z)", text)
    if block is None:
        return text
    lines = block.group(0).split("\n")
    top = True
    for i, line in enumerate(lines):
        if "thresholds:" not in line:
            continue

        def put(m: re.Match[str], *, first: bool = top) -> str:
            old: float = int(m.group(2)) if m.group(2).lstrip("-").isdigit() else float(m.group(2))
            new = value if first and value is not None else _scaled(old, factor)
            return f"{m.group(1)}{_num(new)}"

        lines[i] = re.sub(rf"(\b{re.escape(key)}: )(-?[0-9.]+)", put, line)
        top = False
    return text[: block.start()] + "\n".join(lines) + text[block.end() :]
