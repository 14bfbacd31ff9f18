"""PARSE · the compiled definitions and what loading them shares.

PARSE · the compiled definitions (`Definitions`, `CompiledMapping`) and what loading them shares:
the reserved file names, the built-in fields, and the collector of every issue found. Imports:
definitions.schema, lang, errors.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from signalplay.definitions.fields import (
    Extractor,
)
from signalplay.definitions.schema import (
    HealthFile,
    MappingFile,
    Play,
    PlaysFile,
    RoutingFile,
    SegmentsFile,
    Trigger,
    TriggersFile,
    WritebackFile,
)
from signalplay.errors import ConfigError, Issue
from signalplay.lang.expr import compile_expr
from signalplay.lang.functions import ExprError, Expression, ValueType
from signalplay.lang.transforms import compile_path, normalize_key
from signalplay.lang.yamlsrc import Loc, YamlDoc, dotted, read_yaml, validate_doc

RESERVED = {"signals", "health", "triggers", "plays", "writeback", "segments", "routing"}


BUILTIN_FIELDS = frozenset({"today", "account_key"})


HEALTH_FIELDS = frozenset({"health_score", "health_band", "health_drivers", "health_trend"})


SEGMENT_FIELDS = frozenset({"stage", "risk"})


OPTIONAL_FILES = ("segments", "routing")


DATE_CASTS = {"date", "datetime"}


M = TypeVar("M", bound=BaseModel)


KeyReader = Callable[[Any], str | None]


def key_reader(path: str, normalize: str | None) -> KeyReader:
    """A compiled reader of one identity key."""
    get = compile_path(path)
    return lambda data: normalize_key(get(data), normalize)


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping file with its fields, identity keys and filters compiled."""

    spec: MappingFile
    path: str
    extractors: dict[str, Extractor]
    wheres: dict[str, Expression]
    types: dict[str, ValueType]
    identity: tuple[tuple[str, KeyReader], ...]
    provides: tuple[tuple[str, KeyReader], ...]
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """`source.stream`."""
        return f"{self.spec.source}.{self.spec.stream}"


@dataclass
class Definitions:
    """Every RevOps file of a project, validated and compiled."""

    mappings: list[CompiledMapping]
    signals: dict[str, Expression]
    health: HealthFile
    health_values: dict[str, Expression]
    triggers: TriggersFile
    trigger_conditions: dict[str, Expression]
    plays: PlaysFile
    writeback: WritebackFile
    profile_fields: frozenset[str]
    segments: SegmentsFile
    segment_conditions: dict[tuple[str, str], Expression]
    stage_conditions: dict[tuple[str, str], Expression]
    close_conditions: dict[str, Expression]
    routing: RoutingFile
    suppress_conditions: dict[str, Expression]
    late_dimensions: frozenset[str] = frozenset()
    types: dict[str, ValueType] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def trigger(self, trigger_id: str) -> Trigger:
        """The trigger with this id."""
        return self._triggers_by_id[trigger_id]

    def play(self, play_id: str) -> Play:
        """The play with this id."""
        return self._plays_by_id[play_id]

    def play_version(self, play_id: str) -> str:
        """A fingerprint of what renders this play's actions: the play and the content blocks.

        An episode keeps the version it was actioned with, so that a play edited while its
        episodes are open is seen (and, when the plan is asked to, carried to their tasks).
        """
        return self._play_versions.get(play_id, "")

    @cached_property
    def _play_versions(self) -> dict[str, str]:
        content = json.dumps(self.plays.content, sort_keys=True)
        return {
            p.id: hashlib.sha256((p.model_dump_json() + content).encode()).hexdigest()[:16]
            for p in self.plays.plays
        }

    @cached_property
    def _triggers_by_id(self) -> dict[str, Trigger]:
        return {t.id: t for t in self.triggers.triggers}

    @cached_property
    def _plays_by_id(self) -> dict[str, Play]:
        return {p.id: p for p in self.plays.plays}

    @property
    def master(self) -> CompiledMapping:
        """The mapping of the stream that defines the accounts."""
        return next(m for m in self.mappings if m.spec.master)

    @cached_property
    def history(self) -> frozenset[tuple[str, str, int]]:
        """Every (function, field, days) the expressions read from the snapshots."""
        exprs = [
            *self.signals.values(),
            *self.health_values.values(),
            *self.trigger_conditions.values(),
            *self.segment_conditions.values(),
            *self.stage_conditions.values(),
            *self.close_conditions.values(),
            *self.suppress_conditions.values(),
        ]
        days = self.health.trend_days
        own = {("ago", "stage", 1), ("ago", "health_score", days)}
        own |= {("ago", f"health_{m.id}", days) for m in self.health.measures}
        return frozenset(own).union(*(e.history for e in exprs))


class _Collector:
    """Gathers issues across files so that one run reports all of them."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        # Field names of mapping files that failed: other files may use them without an
        # "unknown field" error each, so that one mistake reads as one error.
        self.salvaged: set[str] = set()
        self.masters = 0

    def load(self, model: type[M], path: Path, display: str) -> tuple[M, YamlDoc] | None:
        try:
            doc = read_yaml(path, display=display)
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self._salvage_text(path)
            return None
        try:
            return validate_doc(model, doc), doc
        except ConfigError as exc:
            self.issues.extend(exc.issues)
            self._salvage(doc.data)
            return None

    def _salvage_text(self, path: Path) -> None:
        """Field names of a file that does not parse: the keys indented under `fields:`."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        block = re.search(r"^fields:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.MULTILINE)
        if block:
            self.salvaged.update(re.findall(r"^  ([a-z][a-z0-9_]*)\s*:", block.group(1), re.M))
        if re.search(r"^master:\s*true\s*$", text, re.MULTILINE):
            self.masters += 1

    def _salvage(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        fields = data.get("fields")
        if isinstance(fields, dict):
            self.salvaged.update(str(k) for k in fields)
        if isinstance(data.get("collect"), str):
            self.salvaged.add(data["collect"])
        if data.get("master") in (True, "yes", "true"):
            self.masters += 1

    def add(self, doc: YamlDoc, loc: Loc, message: str, hint: str = "") -> None:
        self.issues.append(doc.issue(loc, message, hint))

    def expr(
        self,
        doc: YamlDoc,
        /,
        loc: Loc,
        text: str,
        names: frozenset[str] | None,
        *,
        types: dict[str, ValueType] | None = None,
        history: frozenset[str] | None = None,
    ) -> Expression | None:
        try:
            return compile_expr(text, names=names, types=types, history_names=history)
        except ExprError as exc:
            line, col = doc.where(loc)
            value = doc.values.get(loc)
            if value is not None and exc.column is not None and value.style not in ("|", ">"):
                line = value.line
                col = value.column + exc.column - 1 + (1 if value.style in ("'", '"') else 0)
            hint = (
                "fields are defined in the mapping files and signals.yaml"
                if "unknown field" in exc.message
                else ""
            )
            self.issues.append(Issue(doc.path, line, col, dotted(loc), exc.message, hint))
            return None


def _unique(issues: list[Issue]) -> list[Issue]:
    return list(dict.fromkeys(issues))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
