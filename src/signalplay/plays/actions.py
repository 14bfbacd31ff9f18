"""Plays: the actions an actioned episode's play asks for, rendered.

Plays: the actions an actioned episode's play asks for (CSM tasks, meetings, enablement,
escalations, tasks for the sales owner, sequence enrollments, outbound events), addressed to
contacts by role and written from modular content blocks chosen by stage and role, rendered in the
template sandbox.

Imports: stdlib, definitions, templates, episodes, orchestration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.schema import Action, PlaysFile
from signalplay.lang.templates import render
from signalplay.models import Episode
from signalplay.plays.orchestration import PRIORITY_RANK, Decision, resolve_owner

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
    """The account's contacts whose role is in `roles`, in the roles' order.

    The account's contacts whose role is in `roles` (all contacts when `roles` is empty),
    ordered by the roles' order.
    """
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
    """The content blocks (all, or `only` these) rendered for this stage and role.

    (stage, role), then (stage, any), (any, role), (any, any); a block with none of them is
    empty.
    """
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


SEP = "\x1e"  # between the parts of one combined template (an ASCII record separator)
_BLOCK_REF = re.compile(r"\bcontent\.([a-z][a-z0-9_]*)\b")
# Combined template texts per (plays file, play, action). The file object is kept with its
# entries: an id() can be reused once an object is freed, and must not serve another file's text.
_COMBINED: dict[tuple[int, str, str], tuple[PlaysFile, str]] = {}


def _cached(plays: PlaysFile, key: tuple[int, str, str], build: Callable[[], str]) -> str:
    hit = _COMBINED.get(key)
    if hit is not None and hit[0] is plays:
        return hit[1]
    text = build()
    _COMBINED[key] = (plays, text)
    return text


def _block_value(name: str, by_stage: Mapping[str, Mapping[str, str]]) -> str:
    """A content block as a block assignment choosing its text by stage and role.

    A content block as a block assignment (`sp_block_<name>`) choosing its text by `stage` and
    `role` in the fallback order of `content_blocks`: (stage, role), (stage, any), (any, role),
    (any, any). Not a macro: a macro and the render's context refer to each other, so every
    render would leave its context, and the account profile in it, to the cyclic collector (a
    worker's memory grew by a shard's profiles between collections).
    """
    branches: list[tuple[str, str]] = []
    for s, roles in by_stage.items():
        for r, text in roles.items():
            if s != "any" and r != "any":
                branches.append((f"stage == {s!r} and role == {r!r}", text))
    for s, roles in by_stage.items():
        if s != "any" and "any" in roles:
            branches.append((f"stage == {s!r}", roles["any"]))
    for r, text in by_stage.get("any", {}).items():
        if r != "any":
            branches.append((f"role == {r!r}", text))
    fallback = by_stage.get("any", {}).get("any")
    body = "".join(
        f"{{% {'if' if i == 0 else 'elif'} {cond} %}}{text}"
        for i, (cond, text) in enumerate(branches)
    )
    if fallback is not None:
        body += f"{{% else %}}{fallback}" if branches else fallback
    if branches:
        body += "{% endif %}"
    return f"{{% set sp_block_{name} %}}{body}{{% endset %}}"


def content_use(plays: PlaysFile) -> dict[str, set[str]]:
    """The content blocks each play's actions use, by play id."""
    return {
        play.id: {
            m
            for a in play.actions
            for p in (a.subject, a.body)
            for m in _BLOCK_REF.findall(p or "")
        }
        for play in plays.plays
    }


def combined_template(plays: PlaysFile, play_id: str, action: Action) -> str:
    """An action's subject and body as one template, content blocks inlined.

    Subject and body of an action as one template (rendered once), with the content blocks they
    use inlined as block assignments; the parts are separated by SEP.
    """

    def build() -> str:
        parts = [action.subject or "", action.body or ""]
        used = sorted({m for p in parts for m in _BLOCK_REF.findall(p)})
        blocks = "".join(_block_value(n, plays.content.get(n, {})) for n in used)
        inlined = [_BLOCK_REF.sub(r"(sp_block_\1 | trim)", p) for p in parts]
        return blocks + SEP.join(inlined)

    return _cached(plays, (id(plays), play_id, action.id), build)


def _render_parts(
    plays: PlaysFile, play_id: str, action: Action, context: dict[str, Any]
) -> list[str]:
    """The action's subject and body, rendered in one pass.

    The action's subject and body, rendered in one pass (separately when that fails, so an error
    marker names the part it comes from).
    """
    out = render(combined_template(plays, play_id, action), context)
    parts = out.split(SEP)
    if len(parts) == 2 and not out.startswith("[template error"):
        return parts
    scoped = {**context, "content": _blocks_one_by_one(plays, context)}
    return [render(t, scoped) if t else "" for t in (action.subject, action.body)]


def _blocks_one_by_one(plays: PlaysFile, context: Mapping[str, Any]) -> dict[str, str]:
    return content_blocks(
        plays, stage=context.get("stage"), role=context.get("role"), context=context
    )


def _all_blocks(plays: PlaysFile, context: Mapping[str, Any]) -> dict[str, str]:
    """Every content block for the context's stage and role, rendered in one pass."""
    names = list(plays.content)

    def build() -> str:
        blocks = "".join(_block_value(n, plays.content[n]) for n in names)
        return blocks + SEP.join(f"{{{{ sp_block_{n} | trim }}}}" for n in names)

    text = _cached(plays, (id(plays), "", "*all*"), build)
    parts = render(text, context).split(SEP) if names else []
    if len(parts) != len(names):
        return _blocks_one_by_one(plays, context)
    return dict(zip(names, parts, strict=True))


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
    """The actions of one actioned episode's play, rendered.

    `skip(kind, key)` leaves out (without rendering) actions already done.
    """
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
        subject_text, body_text = _render_parts(defs.plays, play.id, action, context)
        owner_rule = action.owner or KIND_OWNER.get(action.kind)
        owner = (
            resolve_owner(owner_rule, profile, defs.routing) if owner_rule else decision.owner_id
        )
        subject = subject_text.strip()[:255]
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
                body=body_text.strip(),
                priority=decision.priority,
                task_type=action.type,
                owner_id=owner,
                due_at=decision.due_at,
                contact_ids=tuple(str(c["id"]) for c in audience if c.get("id")),
                sequence=action.sequence,
                event=action.event,
                payload=_payload(
                    action,
                    plays=defs.plays,
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
    plays: PlaysFile,
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
        "content": _all_blocks(plays, context),
    }


def consolidate(intents: Iterable[ActionIntent]) -> list[ActionIntent]:
    """One task per account for the task actions of several episodes (others pass through).

    Subject and body list each play in rank order; the earliest due date and highest priority.
    """
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
