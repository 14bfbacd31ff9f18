"""USE CASE · evaluate.

Health, segments, triggers, episodes and decisions for the profiles of a run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import timedelta

from signalplay.definitions.compiled import Definitions
from signalplay.evaluate.episodes import advance_episodes
from signalplay.evaluate.evaluator import (
    cleared,
    compile_definitions,
    fire_triggers,
    firings,
)
from signalplay.jobs.context import Context
from signalplay.jobs.profiles import Profiles
from signalplay.jobs.results import EvaluationCounts
from signalplay.lang.frame import Frame
from signalplay.lang.vector import evaluate as vec_evaluate
from signalplay.lang.vector import truthy
from signalplay.models import Episode
from signalplay.plays.orchestration import FINAL, RecentActions, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found.

    Its summary, the episodes open after it (with their decisions) and those it resolved; a
    preview's exist only here, not in the store.
    """

    summary: EvaluationCounts
    open: list[Episode]
    resolved: list[Episode]


def evaluate(
    ctx: Context, profiles: Profiles, *, shard: Collection[str] | None = None
) -> EvaluationCounts:
    """Evaluate every trigger for every account, move episodes, decide their plays.

    Evaluate every trigger for every account, move episodes forward, and decide what each
    episode that wants action gets (play, owner, due date; actioned, held out, suppressed or
    capped). A `shard` (its accounts) reads only its own episodes: all that is decided about an
    account reads that account's episodes only, so memory follows the shard, not the book.
    """
    return assess(ctx, profiles, shard=shard).summary


def assess(
    ctx: Context, profiles: Profiles, *, shard: Collection[str] | None = None, save: bool = True
) -> Evaluation:
    """`evaluate`, keeping its episodes.

    Without `save` (a preview) the store is left as it was: no episode opens or resolves there
    and no decision is recorded.
    """
    defs = ctx.definitions
    frame = profiles.frame
    now = ctx.clock()
    results = fire_triggers(defs, frame)
    fired = firings(defs, frame, results)
    renames = {old: t.id for t in defs.triggers.triggers for old in t.renamed_from}
    if save:
        for old, new in renames.items():
            ctx.store.rename_trigger(old, new)
    open_episodes = _renamed(ctx.store.open_episodes(shard), renames)
    changes = advance_episodes(
        open_episodes=open_episodes,
        last_resolved={
            (a, renames.get(tr, tr)): at for (a, tr), at in ctx.store.last_resolved(shard).items()
        },
        firings=fired,
        cleared=cleared(frame, results, open_episodes.keys()),
        cooldown_days={t.id: t.cooldown_days for t in defs.triggers.triggers},
        now=now,
    )
    if save:
        ctx.store.save_episodes([*changes.opened, *changes.resolved])
    resolved = {(e.account, e.trigger_id) for e in changes.resolved}
    open_pairs = (set(open_episodes) - resolved) | {
        (e.account, e.trigger_id) for e in changes.opened
    }
    pending = [e for e in changes.held if e.decision.get("status") not in FINAL]
    decisions = decide(
        defs,
        episodes=[*changes.opened, *pending],
        profiles=profiles.values,
        open_pairs=open_pairs,
        suppressed_by=_suppressed_by(defs, frame),
        recent=RecentActions.from_episodes(
            ctx.store.episodes_since(now - timedelta(days=_cap_window(defs)), shard),
            defs.routing,
            now,
        ),
        now=now,
    )
    decided = {k: d.as_dict() for k, d in decisions.items()}
    if save:
        ctx.store.save_decisions(decided)
    failed = sum(r.failed for r in results)
    if failed:
        log.warning("trigger conditions failed on %d account rows", failed)
    summary = EvaluationCounts(
        triggers_fired=dict(sorted(Counter(f.trigger_id for f in fired).items())),
        episodes_opened=len(changes.opened),
        episodes_held=len(changes.held),
        episodes_resolved=len(changes.resolved),
        cooling_down=len(changes.cooling),
        decisions=dict(sorted(Counter(d.status for d in decisions.values()).items())),
    )
    still_open = [
        replace(e, decision=decided[e.key]) if e.key in decided else e
        for e in (*changes.opened, *changes.held)
    ]
    return Evaluation(summary, still_open, list(changes.resolved))


def _renamed(
    open_episodes: dict[tuple[str, str], Episode], renames: dict[str, str]
) -> dict[tuple[str, str], Episode]:
    """Open episodes under their triggers' current ids (what a preview sees before a rename)."""
    out: dict[tuple[str, str], Episode] = {}
    for (account, trigger_id), ep in open_episodes.items():
        new = renames.get(trigger_id)
        if new is None or (account, new) in open_episodes:
            out[account, trigger_id] = ep
        else:
            out[account, new] = replace(ep, trigger_id=new)
    return out


def _cap_window(defs: Definitions) -> int:
    caps = defs.routing.caps
    return max([c.days for c in (caps.per_account, caps.per_contact) if c] or [1])


def _suppressed_by(defs: Definitions, frame: Frame) -> dict[str, set[str]]:
    cd = compile_definitions(defs)
    out: dict[str, set[str]] = {}
    for rule_id, (expr, vec) in cd.suppress.items():
        col, _ = vec_evaluate(expr, vec, frame)
        mask = truthy(col, len(frame))
        out[rule_id] = {frame.accounts[i] for i in mask.nonzero()[0].tolist()}
    return out
