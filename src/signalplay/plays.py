"""Plays: the actions an actioned episode's play asks for (CSM tasks, meetings, enablement,
escalations, tasks for the sales owner, sequence enrollments, outbound events), addressed to
contacts by role and written from modular content blocks chosen by stage and role, rendered in the
template sandbox.

Imports: stdlib, definitions, templates, episodes, orchestration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signalplay.definitions.loader import Definitions
from signalplay.definitions.schema import Action, PlaysFile
from signalplay.episodes import Episode
from signalplay.orchestration import PRIORITY_RANK, Decision, resolve_owner
from signalplay.templates import attributes_used, render

TASK_KINDS = frozenset({"task", "meeting", "enablement", "escalation", "sales_task"})
KIND_OWNER = {"sales_task": "sales", "escalation": "escalation"}


@dataclass(frozen=True)
class ActionIntent:
    """One thing signalplay wants done in the CRM (or sent to the messaging tool)."""

    key: str
    kind: str
    account: str
    episode_keys: tuple[str, ...]
    trigger_ids: tuple[str, ...]
    play_id: str
    action_id: str
    subject: str
    body: str
    priority: str
    task_type: str
    owner_id: str | None
    due_at: str
    contact_ids: tuple[str, ...]
    sequence: str | None = None
    event: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def contacts_for(profile: Mapping[str, Any], roles: Sequence[str]) -> list[dict[str, Any]]:
    """The account's contacts whose role is in `roles` (all contacts when `roles` is empty),
    ordered by the roles' order."""
    contacts = [c for c in profile.get("contacts") or [] if isinstance(c, dict)]
    if not roles:
        return contacts
    rank = {r: i for i, r in enumerate(roles)}
    chosen = [c for c in contacts if c.get("role") in rank]
    return sorted(chosen, key=lambda c: rank[c["role"]])


def content_blocks(
    plays: PlaysFile,
    *,
    stage: str | None,
    role: str | None,
    context: Mapping[str, Any],
    only: frozenset[str] | None = None,
) -> dict[str, str]:
    """The content blocks (all, or `only` these) rendered for this stage and role: (stage,
    role), then (stage, any), (any, role), (any, any); a block with none of them is empty."""
    out: dict[str, str] = {}
    for name, by_stage in plays.content.items():
        if only is not None and name not in only:
            continue
        text = ""
        for s, r in ((stage, role), (stage, "any"), ("any", role), ("any", "any")):
            found = by_stage.get(s or "", {}).get(r or "")
            if found is not None:
                text = found
                break
        out[name] = render(text, context).strip() if text else ""
    return out


def _context(
    episode: Episode,
    defs: Definitions,
    profile: Mapping[str, Any],
    decision: Decision,
    contacts: list[dict[str, Any]],
) -> dict[str, Any]:
    trig = defs.trigger(episode.trigger_id)
    return {
        "account": profile,
        "trigger": {"id": trig.id, "name": trig.name, "group": trig.group, "why": trig.why},
        "play": {"id": decision.play_id, "name": defs.play(decision.play_id).name},
        "evidence": episode.evidence,
        "contacts": contacts,
        "episode_key": episode.key,
        "decision": decision,
        "stage": profile.get("stage"),
    }


def intents_for(
    episode: Episode,
    decision: Decision,
    profile: Mapping[str, Any],
    defs: Definitions,
    *,
    skip: Callable[[str, str], bool] | None = None,
) -> list[ActionIntent]:
    """The actions of one actioned episode's play, rendered; `skip(kind, key)` leaves out
    (without rendering) actions already done."""
    play = defs.play(decision.play_id)
    out = []
    for action in play.actions:
        if skip is not None and skip(action.kind, f"{episode.key}:{action.id}"):
            continue
        audience = [
            c
            for c in contacts_for(profile, action.audience)
            if str(c.get("id")) not in decision.capped_contacts
        ]
        if action.kind in ("sequence", "webhook") and not audience:
            continue
        role = audience[0].get("role") if audience else None
        context = _context(episode, defs, profile, decision, audience)
        context["role"] = role
        used = frozenset().union(
            *(attributes_used(t, "content") for t in (action.subject, action.body) if t)
        )
        context["content"] = content_blocks(
            defs.plays,
            stage=profile.get("stage"),
            role=role,
            context=context,
            only=None if action.kind == "webhook" else used,
        )
        owner_rule = action.owner or KIND_OWNER.get(action.kind)
        owner = (
            resolve_owner(owner_rule, profile, defs.routing) if owner_rule else decision.owner_id
        )
        subject = render(action.subject, context).strip()[:255] if action.subject else ""
        if decision.of > 1 and subject and not defs.routing.consolidate:
            subject = f"[{decision.rank}/{decision.of}] {subject}"[:255]
        out.append(
            ActionIntent(
                key=f"{episode.key}:{action.id}",
                kind=action.kind,
                account=episode.account,
                episode_keys=(episode.key,),
                trigger_ids=(episode.trigger_id,),
                play_id=play.id,
                action_id=action.id,
                subject=subject,
                body=render(action.body, context).strip() if action.body else "",
                priority=decision.priority,
                task_type=action.type,
                owner_id=owner,
                due_at=decision.due_at,
                contact_ids=tuple(str(c["id"]) for c in audience if c.get("id")),
                sequence=action.sequence,
                event=action.event,
                payload=_payload(
                    action,
                    episode=episode,
                    decision=decision,
                    profile=profile,
                    audience=audience,
                    context=context,
                )
                if action.kind == "webhook"
                else {},
            )
        )
    return out


def _payload(
    action: Action,
    *,
    episode: Episode,
    decision: Decision,
    profile: Mapping[str, Any],
    audience: list[dict[str, Any]],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """The outbound event: who gets which in-app message or invitation, personalised by role."""
    return {
        "event": action.event,
        "episode_key": episode.key,
        "account": {"key": episode.account, "name": profile.get("name")},
        "trigger": episode.trigger_id,
        "play": decision.play_id,
        "recipients": [
            {
                "contact_id": str(c.get("id")),
                "email": c.get("email"),
                "role": c.get("role"),
                "first_name": c.get("first_name"),
            }
            for c in audience
        ],
        "content": dict(context.get("content") or {}),
    }


def consolidate(intents: Iterable[ActionIntent]) -> list[ActionIntent]:
    """One task per account for the task actions of several episodes (others pass through):
    subject and body list each play in rank order; the earliest due date and highest priority."""
    tasks: dict[str, list[ActionIntent]] = {}
    out: list[ActionIntent] = []
    for intent in intents:
        if intent.kind in TASK_KINDS:
            tasks.setdefault(intent.account, []).append(intent)
        else:
            out.append(intent)
    for account, group in sorted(tasks.items()):
        if len(group) == 1:
            out.append(group[0])
            continue
        keys = tuple(sorted({k for i in group for k in i.episode_keys}))
        digest = hashlib.sha256("|".join(keys).encode()).hexdigest()[:29]
        first = min(group, key=lambda i: (PRIORITY_RANK[i.priority], i.due_at))
        subjects = [i.subject for i in group]
        body = "\n\n".join(f"{n}. {i.subject}\n{i.body}" for n, i in enumerate(group, 1))
        out.append(
            ActionIntent(
                key=f"sp_{digest}:all",
                kind="task",
                account=account,
                episode_keys=keys,
                trigger_ids=tuple(t for i in group for t in i.trigger_ids),
                play_id="+".join(sorted({i.play_id for i in group})),
                action_id="consolidated",
                subject=f"{len(group)} plays: " + "; ".join(subjects),
                body=body,
                priority=first.priority,
                task_type=first.task_type,
                owner_id=first.owner_id,
                due_at=min(i.due_at for i in group),
                contact_ids=tuple(dict.fromkeys(c for i in group for c in i.contact_ids)),
            )
        )
    return out
