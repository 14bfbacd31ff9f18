"""How well signalplay's signals found what the world planted.

For each shipped risk trigger with planted ground truth: its recall (the planted risks it opened
an episode for within the risk's window: from the onset to the trigger's SLA, plus the days a
detector needs to have evidence, plus the wait for the next sync), its false-positive share
(episodes with no planted risk of its kind in such a window; a seat cut makes a usage drop
true too) and the accounts it flagged. The
health score's AUC on the day before each decision and 60 days before it, by segment, beside
the oracle's (the world's own planted risk as known that day). Imports: stdlib, definitions, demo,
measure.backtest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from signalplay.definitions.loader import load_definitions
from signalplay.demo.rehearse import Rehearsal
from signalplay.demo.world import World
from signalplay.measure.backtest import ReplayedEpisode, auc

# trigger → (the planted risk it is there to catch, days of evidence its detector needs)
PLANTED = {
    # a week's level moves once half its working days are down, and the trigger wants the drop
    # for four days running
    "adoption_drop": ("usage_drop", 10),
    "support_p1": ("urgent_ticket", 0),
    "champion_left": ("champion_departure", 0),
    "payment_risk": ("payment_failure", 0),
    "contraction": ("seat_cut", 0),
}
# Other planted risks that make an episode of the trigger true, not false: active users cannot
# outnumber the seats, so a seat cut is a real usage drop (it counts for no recall).
ALSO_TRUE = {"adoption_drop": ("seat_cut",)}
HORIZONS = (1, 60)  # days before the decision
SLACK = 7  # the nearest snapshot up to this many days earlier stands in for a missing one


def sla_days(sla: str) -> int:
    """An SLA ("72h", "4bh", "5bd", "2d") in whole calendar days, at least one."""
    match = re.fullmatch(r"(\d+)(h|bh|d|bd)", sla.strip())
    if match is None:
        return 7
    n, unit = int(match[1]), match[2]
    days = {"h": n / 24, "bh": n / 8 * 7 / 5, "d": n, "bd": n * 7 / 5}[unit]
    return max(1, math.ceil(days))


@dataclass
class TriggerScore:
    """One trigger against its planted risks."""

    trigger: str
    kind: str
    window_days: int
    planted: int = 0
    found: int = 0
    episodes: int = 0
    false_positives: int = 0
    flagged: set[str] = field(default_factory=set)

    @property
    def recall(self) -> float | None:
        """The share of planted risks an episode found in time."""
        return self.found / self.planted if self.planted else None

    @property
    def false_positive_share(self) -> float | None:
        """The share of episodes with no planted risk behind them."""
        return self.false_positives / self.episodes if self.episodes else None


@dataclass(frozen=True)
class HealthScore:
    """The health score's AUC and the oracle's, on the same accounts, at one horizon."""

    horizon: int
    segment: str
    accounts: int
    churners: int
    auc: float | None
    oracle: float | None

    @property
    def ratio(self) -> float | None:
        """The score's AUC over the oracle's."""
        if self.auc is None or not self.oracle:
            return None
        return self.auc / self.oracle


@dataclass(frozen=True)
class Scorecard:
    """Every figure of the signals benchmark."""

    triggers: list[TriggerScore]
    health: list[HealthScore]
    accounts: int
    at_risk: int  # accounts with a planted risk in the replay
    flagged: int  # accounts any of the scored triggers flagged

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data."""
        return {
            "accounts": self.accounts,
            "accounts_at_risk": self.at_risk,
            "accounts_flagged": self.flagged,
            "triggers": [
                {
                    "trigger": t.trigger,
                    "planted": t.planted,
                    "found": t.found,
                    "recall": t.recall,
                    "episodes": t.episodes,
                    "false_positive_share": t.false_positive_share,
                    "flagged_accounts": len(t.flagged),
                    "window_days": t.window_days,
                }
                for t in self.triggers
            ],
            "health": [h.__dict__ | {"ratio": h.ratio} for h in self.health],
        }


def score(
    world: World,
    episodes: Sequence[ReplayedEpisode],
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
    names: Mapping[str, str],
    slas: Mapping[str, str],
    *,
    replay: tuple[date, date],
    sync_every: int,
) -> Scorecard:
    """Score the replay's episodes and the snapshots' health against the world's truth.

    `names` maps the store's account keys to the world's; `slas` each trigger's SLA; only
    planted risks whose whole window falls in `replay` count.
    """
    first, last = replay
    out = []
    at_risk: set[str] = set()
    flagged: set[str] = set()
    for trigger, (kind, evidence) in PLANTED.items():
        if trigger not in slas:
            continue
        window = sla_days(slas[trigger]) + evidence + sync_every
        stat = TriggerScore(trigger, kind, window)
        risks = [
            r
            for r in world.risks
            if r.kind == kind and first <= r.day and r.day + timedelta(days=window) <= last
        ]
        spans: dict[str, list[tuple[date, date]]] = {}
        for r in world.risks:
            if r.kind == kind or r.kind in ALSO_TRUE.get(trigger, ()):
                spans.setdefault(r.account, []).append((r.day, r.day + timedelta(days=window)))
        opened: dict[str, list[date]] = {}
        for e in episodes:
            if e.trigger_id != trigger:
                continue
            account = names.get(e.account, e.account)
            opened.setdefault(account, []).append(e.opened)
            stat.episodes += 1
            stat.flagged.add(account)
            if not any(lo <= e.opened <= hi for lo, hi in spans.get(account, ())):
                stat.false_positives += 1
        for r in risks:
            stat.planted += 1
            at_risk.add(r.account)
            end = r.day + timedelta(days=window)
            stat.found += any(r.day <= d <= end for d in opened.get(r.account, ()))
        flagged |= stat.flagged
        out.append(stat)
    return Scorecard(
        out, _health(world, snapshots, names), len(world.accounts), len(at_risk), len(flagged)
    )


def score_rehearsal(world: World, run: Rehearsal, *, sync_every: int) -> Scorecard:
    """`score` of a rehearsal, with the SLAs of the trigger library it replayed."""
    defs = load_definitions(run.directory / "mappings")
    return score(
        world,
        run.backtest.episodes,
        run.snapshots,
        run.names,
        {t.id: t.sla for t in defs.triggers.triggers},
        replay=(run.backtest.start, run.backtest.end),
        sync_every=sync_every,
    )


def _health(
    world: World,
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
    names: Mapping[str, str],
) -> list[HealthScore]:
    keys = {v: k for k, v in names.items()}
    by_name = {a.key: a for a in world.accounts}
    days = sorted(snapshots)
    out = []
    for h in HORIZONS:
        groups: dict[str, tuple[list[float], list[float], list[bool]]] = {}
        for name, (decided, churned) in world.decisions().items():
            target = decided - timedelta(days=h)
            key = keys.get(name)
            seen = _score_near(snapshots, days, key, target) if key else None
            if seen is None:
                continue
            acct = by_name[name]
            known = world.known_risk(acct, target)
            for segment in ("all", acct.tier):
                scores, oracle, flags = groups.setdefault(segment, ([], [], []))
                scores.append(seen)
                oracle.append(-known)  # riskier is lower, as health is
                flags.append(churned)
        for segment, (scores, oracle, flags) in sorted(groups.items()):
            out.append(
                HealthScore(
                    h, segment, len(flags), sum(flags), auc(scores, flags), auc(oracle, flags)
                )
            )
    return out


def _score_near(
    snapshots: Mapping[date, Mapping[str, Mapping[str, Any]]],
    days: Sequence[date],
    key: str,
    target: date,
) -> float | None:
    for day in reversed([d for d in days if target - timedelta(days=SLACK) <= d <= target]):
        value = snapshots[day].get(key, {}).get("health_score")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
