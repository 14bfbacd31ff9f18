"""Backtest: replay triggers and health over past snapshots against known churn.

Backtest: replay the trigger library and the health score over historical profile snapshots against
known outcomes (the day each account churned, if it did).

Per trigger: the episodes it would have opened (a false → true transition, closed by its
auto-close condition, re-armed after its cool-down), their precision (episodes followed by churn
within the horizon), recall (churned accounts warned within the horizon before churning), the
lead time before churn and the episodes per account per month. Health: the AUC of the score
against churn within the horizon (the chance that a churner scored lower than a retained
account) and the churn rate per band. Imports: stdlib, numpy, definitions, evaluator, profile,
settings.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

import numpy as np

from signalplay.definitions.compiled import Definitions
from signalplay.evaluate.evaluator import fire_triggers, new_frame
from signalplay.lang.functions import as_date
from signalplay.profile.values import history_values
from signalplay.settings import MeasureSettings

DAYS_PER_MONTH = 30.4375


@dataclass
class TriggerBacktest:
    """One trigger's replay."""

    trigger_id: str
    group: str
    episodes: int = 0
    true_positives: int = 0
    warned: int = 0  # churned accounts warned within the horizon before churning
    churned: int = 0
    leads: list[float] = field(default_factory=list)
    accounts: int = 0
    months: float = 0.0
    flagged: set[str] = field(default_factory=set)  # accounts with at least one episode

    @property
    def precision(self) -> float | None:
        """Share of the trigger's episodes on accounts that churned (None without any)."""
        return self.true_positives / self.episodes if self.episodes else None

    @property
    def recall(self) -> float | None:
        """Share of the churners the trigger warned of."""
        return self.warned / self.churned if self.churned else None

    @property
    def lead_days(self) -> float | None:
        """Median days from the warning to the churn."""
        return statistics.median(self.leads) if self.leads else None

    @property
    def episodes_per_account_month(self) -> float | None:
        """Alert load: episodes per account and month of the replay."""
        if not self.accounts or not self.months:
            return None
        return self.episodes / self.accounts / self.months

    @property
    def flagged_share(self) -> float | None:
        """Alert load: the share of the accounts replayed that the trigger flagged at all."""
        return len(self.flagged) / self.accounts if self.accounts else None

    def as_dict(self) -> dict[str, Any]:
        """The figures, as the report and `--json` show them."""
        return {
            "trigger": self.trigger_id,
            "group": self.group,
            "episodes": self.episodes,
            "precision": self.precision,
            "recall": self.recall,
            "lead_days": self.lead_days,
            "episodes_per_account_month": self.episodes_per_account_month,
            "flagged_accounts": len(self.flagged),
            "flagged_share": self.flagged_share,
        }


@dataclass(frozen=True)
class HealthBacktest:
    """The health score on the first day against churn within the horizon.

    And at fixed horizons before each account's decision date (its churn, else its renewal,
    else the replay's last day), per segment with the accounts and churners behind each AUC.
    """

    auc: float | None
    bands: dict[str, tuple[int, int]]  # band → (accounts, churned)
    # days before the decision → segment ("all" too) → (AUC, accounts, churners)
    at_horizons: dict[int, dict[str, tuple[float | None, int, int]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The figures, as the report and `--json` show them."""
        return {
            "auc": self.auc,
            "bands": {
                b: {"accounts": n, "churned": c, "churn_rate": c / n if n else None}
                for b, (n, c) in sorted(self.bands.items())
            },
            "at_horizons": {
                str(h): {
                    seg: {"auc": a, "accounts": n, "churned": c}
                    for seg, (a, n, c) in sorted(by_segment.items())
                }
                for h, by_segment in sorted(self.at_horizons.items())
            },
        }


HORIZONS = (60, 120)  # days before the decision at which the score is judged
SNAPSHOT_SLACK = 7  # the nearest snapshot up to this many days before the horizon day counts


def health_at_horizons(
    scores: Mapping[date, Mapping[str, tuple[float, str]]],
    decisions: Mapping[str, tuple[date, bool]],
    horizons: Sequence[int] = HORIZONS,
) -> dict[int, dict[str, tuple[float | None, int, int]]]:
    """The score `h` days before each account's decision against whether it churned then.

    `scores` is day → account → (score, segment); `decisions` account → (day, churned).
    """
    days = sorted(scores)
    out: dict[int, dict[str, tuple[float | None, int, int]]] = {}
    for h in horizons:
        groups: dict[str, tuple[list[float], list[bool]]] = {}
        for account, (decided, churned) in decisions.items():
            target = decided - timedelta(days=h)
            seen = None
            for day in reversed(days[: bisect.bisect_right(days, target)]):
                if day < target - timedelta(days=SNAPSHOT_SLACK):
                    break
                if account in scores[day]:
                    seen = scores[day][account]
                    break
            if seen is None:
                continue
            score, segment = seen
            for key in ("all", segment):
                values, flags = groups.setdefault(key, ([], []))
                values.append(score)
                flags.append(churned)
        out[h] = {k: (auc(v, f), len(f), sum(f)) for k, (v, f) in groups.items()}
    return out


@dataclass
class ReplayedEpisode:
    """One episode the replay opened: when, until when, why it closed, and the outcome."""

    account: str
    trigger_id: str
    opened: date
    closed: date | None = None
    reason: str = "open"  # condition_cleared, or open at the replay's end
    churned_on: date | None = None
    churned_within_horizon: bool = False

    FIELDS: ClassVar[tuple[str, ...]] = (
        "account",
        "trigger",
        "opened",
        "closed",
        "reason",
        "churned_on",
        "churned_within_horizon",
    )

    def row(self) -> list[str]:
        """As a CSV row, in the order of FIELDS."""
        return [
            self.account,
            self.trigger_id,
            self.opened.isoformat(),
            self.closed.isoformat() if self.closed else "",
            self.reason,
            self.churned_on.isoformat() if self.churned_on else "",
            "true" if self.churned_within_horizon else "false",
        ]


@dataclass(frozen=True)
class Backtest:
    """A whole replay."""

    start: date
    end: date
    days: int
    accounts: int
    churned: int
    base_rate: float | None  # churned within the horizon of the first day, of all accounts
    triggers: list[TriggerBacktest]
    health: HealthBacktest
    episodes: tuple[ReplayedEpisode, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The figures, as the report and `--json` show them."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "days": self.days,
            "accounts": self.accounts,
            "churned": self.churned,
            "base_rate": self.base_rate,
            "triggers": [t.as_dict() for t in self.triggers],
            "health": self.health.as_dict(),
        }


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """The chance that a positive scores lower than a negative (ties count half).

    The Mann-Whitney U statistic over the pairs. None without both classes.
    """
    pos = np.array([s for s, p in zip(scores, positive, strict=True) if p], dtype=float)
    neg = np.array([s for s, p in zip(scores, positive, strict=True) if not p], dtype=float)
    if not len(pos) or not len(neg):
        return None
    neg.sort()
    lower = np.searchsorted(neg, pos, side="left")  # negatives scoring below each positive
    upper = np.searchsorted(neg, pos, side="right")
    above = len(neg) - upper  # negatives scoring above: the positive scored lower
    ties = upper - lower
    return float((above.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))


def _churned_within(churn: date | None, start: date, days: int) -> bool:
    return churn is not None and start < churn <= start + timedelta(days=days)


class _Replay:
    """Episodes per (account, trigger) as the evaluator would have kept them.

    Opened on a transition, closed by the auto-close condition, re-armed after the cool-down.
    """

    def __init__(self, triggers: Sequence[Any], churn: Mapping[str, date | None], horizon: int):
        self.stats = {t.id: TriggerBacktest(t.id, t.group) for t in triggers}
        self.cooldown = {t.id: t.cooldown_days for t in triggers}
        self.churn, self.horizon = churn, horizon
        self.open: dict[tuple[str, str], ReplayedEpisode] = {}
        self.closed_at: dict[tuple[str, str], date] = {}
        self.warnings: dict[tuple[str, str], list[date]] = {}
        self.episodes: list[ReplayedEpisode] = []

    def day(self, day: date, names: Sequence[str], tid: str, fired: Any, clears: Any) -> None:
        stat = self.stats[tid]
        for i in np.flatnonzero(fired | clears).tolist():
            pair = (names[i], tid)
            if pair in self.open:
                if clears[i]:
                    episode = self.open.pop(pair)
                    episode.closed, episode.reason = day, "condition_cleared"
                    self.closed_at[pair] = day
                continue
            if not fired[i]:
                continue
            last = self.closed_at.get(pair)
            if last is not None and day < last + timedelta(days=self.cooldown[tid]):
                continue
            gone = self.churn.get(names[i])
            hit = _churned_within(gone, day, self.horizon)
            self.open[pair] = episode = ReplayedEpisode(names[i], tid, day, churned_on=gone)
            episode.churned_within_horizon = hit
            self.episodes.append(episode)
            stat.flagged.add(names[i])
            stat.episodes += 1
            stat.true_positives += hit
            self.warnings.setdefault(pair, []).append(day)

    def finish(self, accounts: int, months: float, churners: Mapping[str, date]) -> None:
        for stat in self.stats.values():
            stat.accounts, stat.months, stat.churned = accounts, months, len(churners)
            for account, gone in churners.items():
                warned = [
                    d
                    for d in self.warnings.get((account, stat.trigger_id), ())
                    if gone - timedelta(days=self.horizon) <= d < gone
                ]
                if warned:
                    stat.warned += 1
                    stat.leads.append(float((gone - min(warned)).days))


def run_backtest(
    defs: Definitions,
    days: Sequence[date],
    profiles_on: Callable[[date], Mapping[str, dict[str, Any]]],
    churn: Mapping[str, date | None],
    settings: MeasureSettings,
    *,
    history: Callable[[date], Mapping[date, Mapping[str, Mapping[str, Any]]]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Replay the enabled triggers of `defs` over the snapshot `days`.

    Replay the enabled triggers of `defs` over the snapshot `days` (oldest first), each day's
    profiles read by `profiles_on`; `churn` is each account's churn day (None: retained).
    `history` gives the snapshots the history functions read on a day (ago, avg_over).
    """
    horizon = settings.horizon_days
    triggers = [t for t in defs.triggers.triggers if t.enabled]
    replay = _Replay(triggers, churn, horizon)
    accounts: set[str] = set()
    scored: dict[date, dict[str, tuple[float, str]]] = {}
    renewals: dict[str, date] = {}
    health: tuple[list[float], list[bool], list[str]] = ([], [], [])
    for n, day in enumerate(days):
        profiles = profiles_on(day)
        accounts.update(profiles)
        scored[day] = _scored(profiles, settings, renewals)
        names = sorted(profiles)
        rows = [dict(profiles[a]) for a in names]
        if defs.history and history is not None:
            past = history(day)
            for a, row in zip(names, rows, strict=True):
                row.update(history_values(a, defs.history, past, today=day))
        frame = new_frame(defs, names, rows, day)
        if n == 0:
            _health_on(frame.rows, names, churn, (day, horizon), settings, out=health)
        for res in fire_triggers(defs, frame):
            replay.day(day, names, res.trigger.id, res.fired, res.clears)
        if progress:
            progress(n + 1, len(days))
    start, end = days[0], days[-1]
    months = max((end - start).days + 1, 1) / DAYS_PER_MONTH
    churners = {a: c for a in accounts if (c := churn.get(a)) is not None and start < c}
    replay.finish(len(accounts), months, churners)
    scores, churned_flags, bands = health
    band_counts: dict[str, tuple[int, int]] = {}
    for band, gone in zip(bands, churned_flags, strict=True):
        total, lost = band_counts.get(band, (0, 0))
        band_counts[band] = (total + 1, lost + gone)
    base = sum(_churned_within(churn.get(a), start, horizon) for a in accounts)
    return Backtest(
        start=start,
        end=end,
        days=len(days),
        accounts=len(accounts),
        churned=len(churners),
        base_rate=base / len(accounts) if accounts else None,
        triggers=[replay.stats[t.id] for t in triggers],
        health=HealthBacktest(
            auc(scores, churned_flags),
            band_counts,
            health_at_horizons(scored, _decisions(accounts, churn, renewals, (start, end))),
        ),
        episodes=tuple(replay.episodes),
    )


def _scored(
    profiles: Mapping[str, Mapping[str, Any]],
    settings: MeasureSettings,
    renewals: dict[str, date],
) -> dict[str, tuple[float, str]]:
    """Each account's score and segment that day; its renewal date noted as it goes."""
    out = {}
    for account, p in profiles.items():
        score = p.get(settings.health_field)
        if isinstance(score, int | float) and not isinstance(score, bool):
            out[account] = (float(score), str(p.get(settings.segment_field) or "-"))
        renewal = as_date(p.get(settings.renewal_field))
        if renewal is not None:
            renewals[account] = renewal
    return out


def _decisions(
    accounts: Iterable[str],
    churn: Mapping[str, date | None],
    renewals: Mapping[str, date],
    period: tuple[date, date],
) -> dict[str, tuple[date, bool]]:
    """Each account's decision: its churn in the period, else its renewal in it, else the end."""
    start, end = period
    out = {}
    for account in accounts:
        gone = churn.get(account)
        if gone is not None and start < gone <= end:
            out[account] = (gone, True)
            continue
        if gone is not None and gone <= start:
            continue  # churned before the replay: no decision in it
        renewal = renewals.get(account)
        out[account] = (renewal if renewal is not None and start < renewal <= end else end, False)
    return out


def _health_on(
    rows: Iterable[Mapping[str, Any]],
    names: Sequence[str],
    churn: Mapping[str, date | None],
    window: tuple[date, int],
    settings: MeasureSettings,
    *,
    out: tuple[list[float], list[bool], list[str]],
) -> None:
    day, horizon = window
    scores, flags, bands = out
    for account, row in zip(names, rows, strict=True):
        score = row.get(settings.health_field)
        if score is None or isinstance(score, bool):
            continue
        scores.append(float(score))
        flags.append(_churned_within(churn.get(account), day, horizon))
        bands.append(str(row.get(settings.band_field) or "-"))
