"""Plays: the task a trigger's play creates, rendered from its templates in a sandbox.

Imports: stdlib, jinja2, definitions, episodes, orchestration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from signalplay.definitions.loader import Definitions, template_env
from signalplay.definitions.schema import Trigger
from signalplay.episodes import Episode
from signalplay.orchestration import due_at

_ENV = template_env()


@dataclass(frozen=True)
class TaskIntent:
    """A CRM task signalplay wants to exist for one episode."""

    episode_key: str
    account: str
    trigger_id: str
    play_id: str
    subject: str
    body: str
    priority: str
    task_type: str
    owner_id: str | None
    due_at: str
    contact_ids: tuple[str, ...]


def contacts_for(profile: Mapping[str, Any], roles: tuple[str, ...]) -> list[dict[str, Any]]:
    """The account's contacts whose role is in `roles` (all contacts when `roles` is empty)."""
    contacts = profile.get("contacts") or []
    return [c for c in contacts if isinstance(c, dict) and (not roles or c.get("role") in roles)]


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render one template; a failure renders a readable marker instead of raising."""
    try:
        return _ENV.from_string(text).render(**context)[:20000]
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        return f"[template error: {exc}]"


def task_for(
    episode: Episode,
    trigger: Trigger,
    profile: Mapping[str, Any],
    definitions: Definitions,
    *,
    workdays: tuple[int, ...],
) -> TaskIntent:
    """The task one episode's play asks for, with owner, priority and SLA due date."""
    play = definitions.play(trigger.play)
    audience = contacts_for(profile, play.audience)
    context = {
        "account": profile,
        "trigger": trigger.model_dump(),
        "play": play.model_dump(),
        "evidence": episode.evidence,
        "contacts": audience,
        "episode_key": episode.key,
    }
    due = due_at(episode.opened_at, trigger.sla, workdays=workdays)
    owner = profile.get("owner_id")
    return TaskIntent(
        episode_key=episode.key,
        account=episode.account,
        trigger_id=trigger.id,
        play_id=play.id,
        subject=render(play.task.subject, context).strip()[:255],
        body=render(play.task.body, context).strip(),
        priority=trigger.priority,
        task_type=play.task.type,
        owner_id=str(owner) if owner not in (None, "") else None,
        due_at=due.isoformat(),
        contact_ids=tuple(str(c["id"]) for c in audience if c.get("id")),
    )
