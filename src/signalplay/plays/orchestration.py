"""Orchestration.

For each episode that wants action, the play (or experiment variant), owner, priority and due date
in the owner's business calendar, and whether it is actioned, held out, suppressed or capped.
Decisions are deterministic: the same inputs decide the same way on any worker and on every re-run.

- Experiments assign accounts by a stable hash: a holdout share is logged, never actioned.
- Suppression holds a trigger's play while listed episodes are open or a condition holds;
  suppressed episodes are reconsidered on every run while they stay open.
- Caps limit actioned episodes per account and per contact over a window; urgent episodes are
  never capped. Several episodes of one account are ranked by priority, then due date.

Imports: stdlib, definitions, calendar, segments, episodes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import Experiment, RoutingFile, Trigger
from signalplay.evaluate.segments import most_specific
from signalplay.lang.calendar import BusinessCalendar, calendar_for
from signalplay.models import Episode

PRIORITY_RANK = {"urgent": 0, "high": 1, "medium": 2, "low": 3}
ACTIONED, HOLDOUT, SUPPRESSED, CAPPED = "actioned", "holdout", "suppressed", "capped"
FINAL = frozenset({ACTIONED, HOLDOUT})


def unit_hash(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts` (sha256), the same on every machine and run."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, account: str) -> tuple[str | None, bool]:
    """The play variant an account gets in `experiment`, and whether it is in the holdout."""
    if unit_hash(experiment.id, "holdout", account) * 100 < experiment.holdout_pct:
        return None, True
    pick = unit_hash(experiment.id, "variant", account) * sum(experiment.variants.values())
    for variant, weight in sorted(experiment.variants.items()):
        pick -= weight
        if pick < 0:
            return variant, False
    return sorted(experiment.variants)[-1], False


def resolve_owner(rule: str, profile: Mapping[str, Any], routing: RoutingFile) -> str | None:
    """The owner an owner rule names for one account (the account owner when it names none)."""
    account_owner = _text(profile.get("owner_id"))
    if rule == "sales":
        return _text(profile.get(routing.sales_owner_field)) or account_owner
    if rule == "escalation":
        return routing.escalation_owner or account_owner
    if rule.startswith("queue:"):
        return routing.queues.get(rule[6:]) or account_owner
    if rule.startswith("role:"):
        role = rule[5:]
        for contact in profile.get("contacts") or ():
            if isinstance(contact, dict) and contact.get("role") == role:
                owner = _text(contact.get("owner_id"))
                if owner:
                    return owner
    return account_owner


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class Decision:
    """What signalplay does about one episode, and why."""

    status: str
    reason: str
    play_id: str
    owner_id: str | None
    owner_rule: str
    priority: str
    sla: str
    due_at: str
    calendar: str
    experiment: str | None = None
    variant: str | None = None
    rank: int = 1
    of: int = 1
    contacts: tuple[str, ...] = ()
    capped_contacts: tuple[str, ...] = ()
    play_version: str = ""  # Definitions.play_version of the play when it was decided

    def as_dict(self) -> dict[str, Any]:
        """As stored with the episode."""
        data = {f: getattr(self, f) for f in _DECISION_FIELDS}
        data["contacts"] = list(self.contacts)
        data["capped_contacts"] = list(self.capped_contacts)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Read back a stored decision."""
        values = dict(data)
        values["contacts"] = tuple(values.get("contacts") or ())
        values["capped_contacts"] = tuple(values.get("capped_contacts") or ())
        return cls(**values)


_DECISION_FIELDS = tuple(f.name for f in fields(Decision))


@dataclass
class RecentActions:
    """Actioned episodes within the caps' windows: per account, and per contact."""

    accounts: Counter[str] = field(default_factory=Counter)
    contacts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_episodes(
        cls, episodes: Iterable[Episode], routing: RoutingFile, now: datetime
    ) -> RecentActions:
        """Count the actioned episodes that fall inside each cap's window."""
        out = cls()
        caps = routing.caps
        for ep in episodes:
            if ep.decision.get("status") != ACTIONED:
                continue
            age = now - ep.opened_at
            if caps.per_account and age < timedelta(days=caps.per_account.days):
                out.accounts[ep.account] += 1
            if caps.per_contact and age < timedelta(days=caps.per_contact.days):
                out.contacts.update(ep.decision.get("contacts") or ())
        return out


def override(trigger: Trigger, profile: Mapping[str, Any]) -> tuple[str, str]:
    """The SLA and priority of `trigger` for this account's segment."""
    routed = [o for o in trigger.segments if o.sla or o.priority]
    best = most_specific(profile, routed, lambda o: o.match) if routed else None
    sla = best.sla if best and best.sla else trigger.sla
    priority = best.priority if best and best.priority else trigger.priority
    return sla, priority


def audience_ids(defs: Definitions, play_id: str, profile: Mapping[str, Any]) -> list[str]:
    """Ids of the contacts the play's actions address, in contact order."""
    roles = {r for a in defs.play(play_id).actions for r in a.audience}
    out = []
    for contact in profile.get("contacts") or ():
        if isinstance(contact, dict) and contact.get("id") and contact.get("role") in roles:
            out.append(str(contact["id"]))
    return out


def decide(
    defs: Definitions,
    *,
    episodes: Iterable[Episode],
    profiles: Mapping[str, Mapping[str, Any]],
    open_pairs: Collection[tuple[str, str]],
    suppressed_by: Mapping[str, Collection[str]],
    recent: RecentActions,
    now: datetime,
) -> dict[str, Decision]:
    """Decide every episode given.

    `suppressed_by` maps a suppression rule to the accounts its condition holds for,
    `open_pairs` are the episodes open after this evaluation. Due dates count from an episode's
    opening, or from `now` for one held back on an earlier run (its owner starts working on it
    now).
    """
    triggers = {t.id: t for t in defs.triggers.triggers}
    calendars = {name: calendar_for(spec) for name, spec in defs.routing.calendars.items()}
    drafts = [
        (
            ep,
            _draft(
                defs,
                ep,
                trig,
                profile=profiles.get(ep.account, {}),
                open_pairs=open_pairs,
                suppressed_by=suppressed_by,
                calendars=calendars,
                start=now if ep.decision else ep.opened_at,
            ),
        )
        for ep in episodes
        if (trig := triggers.get(ep.trigger_id)) is not None
    ]
    drafts.sort(key=lambda d: (d[0].account, PRIORITY_RANK[d[1].priority], d[1].due_at, d[0].key))
    decided: dict[str, Decision] = {}
    per_account: dict[str, list[str]] = {}
    for ep, draft in drafts:
        dec = _capped(defs.routing, ep.account, draft, recent)
        if dec.status == ACTIONED:
            recent.accounts[ep.account] += 1
            recent.contacts.update(dec.contacts)
            per_account.setdefault(ep.account, []).append(ep.key)
        decided[ep.key] = dec
    for keys in per_account.values():
        if len(keys) > 1:
            for rank, key in enumerate(keys, 1):
                decided[key] = _replace(decided[key], rank=rank, of=len(keys))
    return decided


def _draft(
    defs: Definitions,
    ep: Episode,
    trig: Trigger,
    *,
    profile: Mapping[str, Any],
    open_pairs: Collection[tuple[str, str]],
    suppressed_by: Mapping[str, Collection[str]],
    calendars: Mapping[str, BusinessCalendar],
    start: datetime,
) -> Decision:
    """Play (or variant), holdout, suppression, owner and due date of one episode."""
    routing = defs.routing
    sla, priority = override(trig, profile)
    play_id, status, reason = trig.play, ACTIONED, f"trigger {trig.id} → play {trig.play}"
    exp = next((e for e in routing.experiments if e.trigger == trig.id), None)
    variant = None
    if exp is not None:
        variant, held = assign(exp, ep.account)
        if held:
            status, reason = HOLDOUT, f"holdout of experiment {exp.id}: logged, not actioned"
        elif variant:
            play_id, reason = variant, f"experiment {exp.id}: variant {variant}"
    if status == ACTIONED:
        why = _suppression(routing, trig.id, ep.account, open_pairs, suppressed_by)
        if why:
            status, reason = SUPPRESSED, why
    owner = resolve_owner(trig.owner, profile, routing)
    cal_name = routing.owner_calendars.get(owner or "", "default")
    cal = calendars.get(cal_name) or calendars["default"]
    return Decision(
        status=status,
        reason=reason,
        play_id=play_id,
        owner_id=owner,
        owner_rule=trig.owner,
        priority=priority,
        sla=sla,
        due_at=cal.due(start, sla, profile).isoformat(),
        calendar=cal_name,
        experiment=exp.id if exp else None,
        variant=variant,
        contacts=tuple(audience_ids(defs, play_id, profile)),
        play_version=defs.play_version(play_id),
    )


def _suppression(
    routing: RoutingFile,
    trigger_id: str,
    account: str,
    open_pairs: Collection[tuple[str, str]],
    suppressed_by: Mapping[str, Collection[str]],
) -> str | None:
    """Why the trigger's play is held back for this account now, or None."""
    for rule in routing.suppress:
        if trigger_id not in rule.suppress:
            continue
        blockers = [t for t in rule.while_open if (account, t) in open_pairs]
        if blockers or account in suppressed_by.get(rule.id, ()):
            why = f"open {', '.join(blockers)}" if blockers else "its condition holds"
            return f"suppressed by {rule.id} ({why})" + (f": {rule.reason}" if rule.reason else "")
    return None


def _capped(routing: RoutingFile, account: str, dec: Decision, recent: RecentActions) -> Decision:
    """The decision after the frequency caps (urgent episodes are never capped per account)."""
    caps = routing.caps
    if dec.status != ACTIONED:
        return dec
    cap = caps.per_account
    if cap and dec.priority != "urgent" and recent.accounts[account] >= cap.max:
        return _replace(
            dec,
            status=CAPPED,
            reason=f"capped: {cap.max} actioned episodes in {cap.days} days on this account",
        )
    if caps.per_contact:
        limit = caps.per_contact.max
        dropped = tuple(c for c in dec.contacts if recent.contacts[c] >= limit)
        if dropped:
            kept = tuple(c for c in dec.contacts if c not in dropped)
            return _replace(dec, contacts=kept, capped_contacts=dropped)
    return dec


def _replace(dec: Decision, **changes: Any) -> Decision:
    return replace(dec, **changes)
