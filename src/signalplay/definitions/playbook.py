"""PARSE · plays and routing.

SLAs, actions and their templates, calendars, suppressions, and every trigger's play.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from signalplay.definitions.compiled import (
    _Collector,
)
from signalplay.definitions.schema import (
    PlaysFile,
    RoutingFile,
    SegmentsFile,
    TriggersFile,
)
from signalplay.errors import Issue
from signalplay.lang.calendar import check_calendar
from signalplay.lang.functions import Expression, ValueType
from signalplay.lang.templates import ENV, check_template
from signalplay.lang.yamlsrc import Loc, YamlDoc, dotted


def _check_sla(
    col: _Collector, doc: YamlDoc, loc: Loc, sla: str, types: dict[str, ValueType]
) -> None:
    if not sla.startswith("by "):
        return
    name = sla[3:].split(" ", 1)[0]
    vtype = types.get(name)
    if vtype is None:
        col.add(doc, loc, f"unknown field {name!r} in the SLA", "'by' needs a date field")
    elif vtype.kind not in ("date", "datetime", "any"):
        col.add(doc, loc, f"type mismatch: 'by' needs a date field, {name!r} is {vtype}")


def _check_plays(
    col: _Collector,
    spec: PlaysFile,
    doc: YamlDoc,
    *,
    fields: frozenset[str],
    roles: ValueType | None,
    segments: tuple[SegmentsFile, YamlDoc] | None,
) -> None:
    seen: set[str] = set()
    stages = {s.id for s in segments[0].stages} if segments else set()
    role_names = set(roles.enum) if roles is not None and roles.enum is not None else None
    for block, by_stage in spec.content.items():
        for stage, by_role in by_stage.items():
            if stages and stage not in stages | {"any"}:
                allowed = ", ".join(sorted(stages | {"any"}))
                col.add(
                    doc, ("content", block, stage), f"unknown stage {stage!r} (stages: {allowed})"
                )
            for role, text in by_role.items():
                loc: Loc = ("content", block, stage, role)
                if role_names is not None and role not in role_names | {"any"}:
                    col.add(doc, loc, f"wrong enum value {role!r}: no contact gets this role")
                _check_template(col, doc, loc, text, fields=fields)
    for i, play in enumerate(spec.plays):
        if play.id in seen:
            col.add(doc, ("plays", i, "id"), f"duplicate play id {play.id!r}")
        seen.add(play.id)
        action_ids: set[str] = set()
        for k, action in enumerate(play.actions):
            loc = ("plays", i, "actions", k)
            if action.id in action_ids:
                col.add(doc, (*loc, "id"), f"duplicate action id {action.id!r}")
            action_ids.add(action.id)
            _check_action(col, doc, loc, action, fields=fields, roles=roles)


def _check_action(
    col: _Collector,
    doc: YamlDoc,
    loc: Loc,
    action: Any,
    *,
    fields: frozenset[str],
    roles: ValueType | None,
) -> None:
    for j, role in enumerate(action.audience):
        if roles is not None and roles.enum is not None and role not in roles.enum:
            allowed = ", ".join(sorted(roles.enum))
            col.add(
                doc,
                (*loc, "audience", j),
                f"wrong enum value {role!r}: no contact gets this role (roles: {allowed})",
            )
    if action.kind == "sequence" and not action.sequence:
        col.add(doc, (*loc, "sequence"), "a sequence action names the sequence to enroll in")
    if action.kind == "webhook" and not action.event:
        col.add(doc, (*loc, "event"), "a webhook action names its event, e.g. in_app_guidance")
    if action.kind in ("sequence", "webhook") and not action.audience:
        col.add(doc, (*loc, "audience"), f"a {action.kind} action needs an audience of roles")
    needs_text = action.kind not in ("sequence", "webhook")
    for part in ("subject", "body"):
        text = getattr(action, part)
        if text is None:
            if needs_text:
                col.add(doc, (*loc, part), f"a {action.kind} action needs a {part}")
            continue
        _check_template(col, doc, (*loc, part), text, fields=fields)


def _check_template(
    col: _Collector, doc: YamlDoc, loc: Loc, text: str, *, fields: frozenset[str]
) -> None:
    problem = check_template(text)
    if problem is not None:
        line, column = doc.where(loc)
        value = doc.values.get(loc)
        match = re.search(r"\(template line (\d+)\)$", problem)
        if value is not None and match:
            block = value.style in ("|", ">")
            line = value.line + int(match.group(1)) - 1 + block
            problem = problem[: match.start()].rstrip()
        col.issues.append(Issue(doc.path, line, column, dotted(loc), problem))
        return
    _check_template_fields(col, doc, loc, text, fields=fields)


def _check_template_fields(
    col: _Collector, doc: YamlDoc, loc: Loc, text: str, *, fields: frozenset[str]
) -> None:
    try:
        tree = ENV.parse(text)
    except TemplateSyntaxError:
        return
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "account"):
            continue
        name = getattr(node, "attr", None) or getattr(getattr(node, "arg", None), "value", None)
        if isinstance(name, str) and name not in fields:
            col.add(
                doc,
                loc,
                f"unknown field {name!r} in template (account.{name})",
                "fields are defined in the mapping files and signals.yaml",
            )


def _check_routing(
    col: _Collector,
    loaded: tuple[RoutingFile, YamlDoc] | None,
    *,
    triggers: tuple[TriggersFile, YamlDoc] | None,
    plays: tuple[PlaysFile, YamlDoc] | None,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> dict[str, Expression]:
    if loaded is None:
        return {}
    spec, doc = loaded
    _check_calendars(col, spec, doc)
    trigger_ids = {t.id for t in triggers[0].triggers} if triggers else None
    play_ids = {p.id for p in plays[0].plays} if plays else None
    for i, exp in enumerate(spec.experiments):
        if trigger_ids is not None and exp.trigger not in trigger_ids:
            col.add(doc, ("experiments", i, "trigger"), f"unknown trigger {exp.trigger!r}")
        for variant in exp.variants:
            if play_ids is not None and variant not in play_ids:
                col.add(doc, ("experiments", i, "variants", variant), f"unknown play {variant!r}")
    return _check_suppressions(col, spec, doc, trigger_ids, types=types, history=history)


def _check_calendars(col: _Collector, spec: RoutingFile, doc: YamlDoc) -> None:
    if "default" not in spec.calendars:
        col.add(doc, ("calendars",), "a calendar named 'default' is required")
    for name, cal in spec.calendars.items():
        problem = check_calendar(cal)
        if problem:
            col.add(doc, ("calendars", name), problem)
    for owner, name in spec.owner_calendars.items():
        if name not in spec.calendars:
            col.add(doc, ("owner_calendars", owner), f"unknown calendar {name!r}")


def _check_suppressions(
    col: _Collector,
    spec: RoutingFile,
    doc: YamlDoc,
    trigger_ids: set[str] | None,
    *,
    types: dict[str, ValueType],
    history: frozenset[str],
) -> dict[str, Expression]:
    out: dict[str, Expression] = {}
    for i, rule in enumerate(spec.suppress):
        for part in ("suppress", "while_open"):
            for j, tid in enumerate(getattr(rule, part)):
                if trigger_ids is not None and tid not in trigger_ids:
                    col.add(doc, ("suppress", i, part, j), f"unknown trigger {tid!r}")
        if not rule.while_open and rule.when is None:
            col.add(doc, ("suppress", i), "a suppression needs 'while_open' or 'when'")
        if rule.when is not None:
            loc: Loc = ("suppress", i, "when")
            expr = col.expr(doc, loc, rule.when, frozenset(types), types=types, history=history)
            if expr is not None:
                out[rule.id] = expr
    return out


def _check_trigger_plays(
    col: _Collector, loaded: tuple[TriggersFile, YamlDoc], play_ids: set[str]
) -> None:
    spec, doc = loaded
    for i, trig in enumerate(spec.triggers):
        if trig.play not in play_ids:
            col.add(
                doc,
                ("triggers", i, "play"),
                f"unknown play {trig.play!r}",
                "plays are defined in plays.yaml",
            )
