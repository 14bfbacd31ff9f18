"""Episodes: when a trigger holds for an account, from opening to cool-down.

Episodes: open on a false → true transition, hold while true, resolve when the condition clears,
then cool down before re-arming. Keys are deterministic, so a replay opens nothing twice.

Imports: stdlib, evaluator, models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from signalplay.evaluate.evaluator import Firing
from signalplay.models import Episode

Pair = tuple[str, str]


def episode_key(account: str, trigger_id: str, opened_at: datetime) -> str:
    """The episode's key: account, trigger and the day it opened."""
    raw = f"{account}|{trigger_id}|{opened_at.date().isoformat()}"
    return "sp_" + hashlib.sha256(raw.encode()).hexdigest()[:29]


@dataclass
class EpisodeChanges:
    """What one evaluation did to the episodes."""

    opened: list[Episode] = field(default_factory=list)
    held: list[Episode] = field(default_factory=list)
    resolved: list[Episode] = field(default_factory=list)
    cooling: list[Firing] = field(default_factory=list)


def advance_episodes(
    *,
    open_episodes: Mapping[Pair, Episode],
    last_resolved: Mapping[Pair, datetime],
    firings: Collection[Firing],
    cleared: Collection[Pair] | Mapping[Pair, str],
    cooldown_days: Mapping[str, int],
    now: datetime,
) -> EpisodeChanges:
    """Move episodes forward given what fired now and which open episodes `cleared` (and why).

    `cleared` maps each closing pair to its resolution (a plain collection: all
    `condition_cleared`).
    """
    changes = EpisodeChanges()
    fired = {(f.account, f.trigger_id): f for f in firings}
    closing = set(cleared)
    for pair, firing in sorted(fired.items()):
        if pair in open_episodes and pair in closing:
            continue
        if pair in open_episodes:
            changes.held.append(open_episodes[pair])
            continue
        resolved_at = last_resolved.get(pair)
        cooldown = timedelta(days=cooldown_days.get(pair[1], 0))
        if resolved_at is not None and now < resolved_at + cooldown:
            changes.cooling.append(firing)
            continue
        key = episode_key(pair[0], pair[1], now)
        changes.opened.append(Episode(key, pair[0], pair[1], now, dict(firing.evidence)))
    for pair, episode in sorted(open_episodes.items()):
        if pair in closing:
            changes.resolved.append(
                Episode(
                    episode.key,
                    episode.account,
                    episode.trigger_id,
                    episode.opened_at,
                    episode.evidence,
                    "resolved",
                    now,
                    cleared.get(pair, "condition_cleared")
                    if isinstance(cleared, Mapping)
                    else "condition_cleared",
                    episode.decision,
                )
            )
    return changes
