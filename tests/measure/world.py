"""A generated world whose outcomes are known by construction: accounts with a tier and an ARR,
episodes of a few triggers with their decisions (actioned, holdout in an experiment, or
suppressed), the tasks a CSM closed (when, and with which reason), whether each condition
cleared within 30 days (more often for the better play variant), churn days, and daily
snapshots. The tests compute the expected figures from these truths directly."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from signalplay.measure.kpis import TaskOutcome
from signalplay.models import Episode

START = date(2026, 6, 1)
END = date(2026, 8, 29)  # a 90-day period
NOW = datetime(2026, 10, 15, 12, tzinfo=UTC)
TIERS = ("enterprise", "mid_market", "smb")
# trigger → (false-positive share of CSM closures, SLA hours)
TRIGGERS = {"adoption_drop": (0.1, 24), "low_nps": (0.92, 48), "payment_risk": (0.55, 72)}
RECOVERY = {"usage_review": 0.6, "usage_review_quick_win": 0.15, "holdout": 0.3, None: 0.4}
REASONS = ("resolved", "adoption_recovered", "no_response", "other")


@dataclass
class Truth:
    """One episode as the world made it."""

    episode: Episode
    trigger: str
    tier: str
    status: str
    variant: str | None
    owner: str
    closed: bool
    hours: float | None
    sla_hours: int
    reason: str | None
    recovered: bool


@dataclass
class World:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    truths: list[Truth] = field(default_factory=list)
    tasks: dict[str, TaskOutcome] = field(default_factory=dict)
    churn: dict[str, date | None] = field(default_factory=dict)
    end_arr: dict[str, float] = field(default_factory=dict)
    snapshots: dict[date, dict[str, dict[str, Any]]] = field(default_factory=dict)


def make_world(seed: int = 1, accounts: int = 300, *, snapshots: bool = True) -> World:
    rng = random.Random(seed)
    w = World()
    for i in range(accounts):
        key = f"a{i:04d}"
        tier = TIERS[i % 3]
        arr = float(rng.choice([12_000, 30_000, 60_000, 150_000]))
        renewal = START + timedelta(days=rng.randint(-30, 120))
        churn = START + timedelta(days=rng.randint(5, 150)) if rng.random() < 0.15 else None
        w.churn[key] = churn
        change = rng.choice([0.0, 0.0, -0.2, 0.25])
        w.end_arr[key] = arr * (1 + change)
        started = START + timedelta(days=rng.randint(-10, 40))
        first_value = started + timedelta(days=rng.randint(3, 25))
        w.accounts[key] = {
            "tier": tier,
            "arr": arr,
            "renewal_date": renewal.isoformat(),
            "contract_start": started.isoformat(),
            "first_value": first_value,
            "churn_date": churn.isoformat() if churn else None,
        }
    _episodes(w, rng)
    if snapshots:
        _snapshots(w, rng)
    return w


def _episodes(w: World, rng: random.Random) -> None:
    n = 0
    for key, acct in w.accounts.items():
        for trigger, (fp, sla) in TRIGGERS.items():
            if rng.random() > 0.45:
                continue
            opened = datetime.combine(
                START + timedelta(days=rng.randint(-20, 100)), datetime.min.time(), UTC
            ) + timedelta(hours=rng.randint(9, 16))
            roll = rng.random()
            variant: str | None = None
            experiment = None
            if trigger == "adoption_drop":
                experiment = "adoption_drop_review"
                variant = rng.choice(["usage_review", "usage_review_quick_win", "holdout"])
                status = "holdout" if variant == "holdout" else "actioned"
            else:
                status = "actioned" if roll < 0.85 else "suppressed"
            recovered = rng.random() < RECOVERY[variant]
            cleared_after = rng.randint(2, 29) if recovered else rng.randint(31, 60)
            resolved = opened + timedelta(days=cleared_after)
            owner = f"10{n % 4}"
            closed = status == "actioned" and rng.random() < 0.8
            hours = rng.uniform(1, 2.2 * sla) if closed else None
            reason = None
            if closed:
                reason = "false_positive" if rng.random() < fp else rng.choice(REASONS)
            ep_key = f"ep{n:05d}"
            n += 1
            decision = {
                "status": status,
                "play_id": f"play_{trigger}",
                "owner_id": owner,
                "due_at": (opened + timedelta(hours=sla)).isoformat(),
                "experiment": experiment,
                "variant": None if variant == "holdout" else variant,
            }
            ep = Episode(
                key=ep_key,
                account=key,
                trigger_id=trigger,
                opened_at=opened,
                status="resolved" if resolved <= NOW else "open",
                resolved_at=resolved if resolved <= NOW else None,
                resolution="condition_cleared" if resolved <= NOW else None,
                decision=decision,
            )
            w.truths.append(
                Truth(
                    ep,
                    trigger,
                    acct["tier"],
                    status,
                    variant,
                    owner,
                    closed,
                    hours,
                    sla,
                    reason,
                    recovered,
                )
            )
            if status == "actioned":
                w.tasks[ep_key] = TaskOutcome(
                    key=f"task-{ep_key}",
                    episode_key=ep_key,
                    closed=closed,
                    completed_at=opened + timedelta(hours=hours) if hours is not None else None,
                    closure_reason=reason,
                )


def _snapshots(w: World, rng: random.Random) -> None:
    day = START - timedelta(days=130)
    while day <= NOW.date():
        snap = w.snapshots.setdefault(day, {})
        for key, acct in w.accounts.items():
            renewal = date.fromisoformat(acct["renewal_date"])
            snap[key] = {
                "tier": acct["tier"],
                "arr": w.end_arr[key] if day >= END else acct["arr"],
                "renewal_date": acct["renewal_date"],
                "contract_start": acct["contract_start"],
                "key_feature_days_all": 1 if day >= acct["first_value"] else 0,
                # confident 2 in 3 times for renewals that happen, 1 in 3 for churners
                "renewal_confidence": _confidence(key, renewal, w.churn[key], day),
                "active_users_7d": 10.0,
                "churn_date": acct["churn_date"],
                "churned_on": acct["churn_date"],
                # an urgent ticket open for three days, a month before each churn
                "open_urgent_tickets": 1 if _warned(w.churn[key], day) else 0,
                "health_score": 35.0 if w.churn[key] else 80.0,
                "health_band": "red" if w.churn[key] else "green",
            }
        day += timedelta(days=1)
    del rng


def _warned(churn: date | None, day: date) -> bool:
    return churn is not None and churn - timedelta(days=30) <= day < churn - timedelta(days=27)


def _confidence(key: str, renewal: date, churn: date | None, day: date) -> str:
    lost = churn is not None and churn <= renewal + timedelta(days=30)
    bucket = zlib.crc32(f"{key}{day}".encode()) % 3
    if lost:
        return "high" if bucket == 0 else "low"
    return "low" if bucket == 0 else "medium"
