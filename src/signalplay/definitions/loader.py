"""Load a definitions folder.

Validate each file, cross-check them against the profile schema, compile fields, expressions and
templates once. Every problem is collected and raised together as one ConfigError naming file, line,
column and field.

Imports: definitions.schema, definitions.fields, definitions.yamlsrc, expr, transforms, jinja2.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

from signalplay.definitions.compiled import (
    Definitions,
    M,
    _Collector,
    _display,
    _unique,
)
from signalplay.definitions.fields import (
    builtin_types,
)
from signalplay.definitions.mappings import _contact_roles, _load_mappings, _profile_types
from signalplay.definitions.playbook import (
    _check_plays,
    _check_routing,
    _check_trigger_plays,
)
from signalplay.definitions.rules import (
    _compile_health,
    _compile_segments,
    _compile_signals,
    _generated_types,
    _load_conditions,
)
from signalplay.definitions.schema import (
    HealthFile,
    PlaysFile,
    RoutingFile,
    SegmentsFile,
    SignalsFile,
    TriggersFile,
    WritebackFile,
)
from signalplay.errors import ConfigError
from signalplay.lang.functions import ValueType
from signalplay.lang.yamlsrc import YamlDoc

LOADED_KEEP = 4  # definitions sets a process keeps (a worker usually serves one project)
_LOADED: OrderedDict[tuple[str, str], Definitions] = OrderedDict()


def load_definitions_cached(folder: Path) -> Definitions:
    """`load_definitions(folder)`, kept while the folder's files stay the same.

    `load_definitions(folder)`, kept while every file under `folder` stays byte for byte the
    same: a Celery worker opens the project for every task, and loading the files takes 60-100
    ms, a shard's own work a few hundred. An edit (or a `git pull`) is read by the next task; a
    broken edit raises as it would, and nothing is kept for it.
    """
    key = (str(folder.resolve()), _fingerprint(folder))
    hit = _LOADED.get(key)
    if hit is not None:
        _LOADED.move_to_end(key)
        return hit
    defs = load_definitions(folder)
    _LOADED[key] = defs
    while len(_LOADED) > LOADED_KEEP:
        _LOADED.popitem(last=False)
    return defs


def _fingerprint(folder: Path) -> str:
    """A digest of the names and contents of the files under `folder`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_definitions(
    folder: Path, *, replace: Path | None = None, triggers_file: Path | None = None
) -> Definitions:
    """Load and check every file under `folder`; raise one ConfigError listing every issue.

    `replace` is a mapping file read instead of the folder's file for the same stream (or in
    addition, when the folder has none): the file a RevOps user is editing, for a preview.
    `triggers_file` is read instead of the folder's triggers.yaml (a backtest of another version).
    """
    col = _Collector()
    mappings = _load_mappings(col, folder, replace)
    types = _profile_types(col, mappings)
    types.update({n: ValueType() for n in col.salvaged if n not in types})
    signals_doc = col.load(SignalsFile, *_file(folder, "signals"))
    signal_names = frozenset(signals_doc[0].signals) if signals_doc else frozenset()
    health = col.load(HealthFile, *_file(folder, "health"))
    segments = _load_optional(col, folder, "segments", SegmentsFile)
    generated = _generated_types(health[0] if health else None, segments[0] if segments else None)
    history = frozenset(types) | signal_names | frozenset(generated)
    signals = _compile_signals(col, signals_doc, types, history)
    types.update(builtin_types())
    types.update(generated)
    seg = _compile_segments(col, segments, types, history)
    health_values = _compile_health(col, health, types, history, late=seg.late)
    plays = col.load(PlaysFile, *_file(folder, "plays"))
    where = (
        _file(folder, "triggers") if triggers_file is None else (triggers_file, str(triggers_file))
    )
    triggers = col.load(TriggersFile, *where)
    conditions, closers = _load_conditions(col, triggers, types, history, late=frozenset())
    if plays:
        _check_plays(
            col,
            *plays,
            fields=frozenset(types),
            roles=_contact_roles(mappings),
            segments=segments,
        )
    if triggers and plays:
        _check_trigger_plays(col, triggers, {p.id for p in plays[0].plays})
    routing = _load_optional(col, folder, "routing", RoutingFile)
    suppress = _check_routing(
        col, routing, triggers=triggers, plays=plays, types=types, history=history
    )
    writeback = col.load(WritebackFile, *_file(folder, "writeback"))
    if writeback:
        for crm_field, name in writeback[0].account_fields.items():
            if name not in types:
                col.add(writeback[1], ("account_fields", crm_field), f"unknown field {name!r}")
    if col.issues or not (
        health and plays and triggers and writeback and signals_doc and segments and routing
    ):
        raise ConfigError(_unique(col.issues))
    return Definitions(
        mappings=mappings,
        signals=signals,
        health=health[0],
        health_values=health_values,
        triggers=triggers[0],
        trigger_conditions=conditions,
        plays=plays[0],
        writeback=writeback[0],
        profile_fields=frozenset(types),
        segments=segments[0],
        segment_conditions=seg.dimensions,
        stage_conditions=seg.stages,
        close_conditions=closers,
        routing=routing[0],
        suppress_conditions=suppress,
        late_dimensions=seg.late,
        types=types,
        files=[m.path for m in mappings],
    )


def _file(folder: Path, stem: str) -> tuple[Path, str]:
    path = folder / f"{stem}.yaml"
    return path, _display(path)


def _load_optional(
    col: _Collector, folder: Path, stem: str, model: type[M]
) -> tuple[M, YamlDoc] | None:
    """A file that may be left out: its defaults apply (a project scaffolded before it existed)."""
    path, display = _file(folder, stem)
    if not path.exists():
        doc = YamlDoc(display, {"version": 1}, {}, {})
        return model.model_validate({"version": 1}), doc
    return col.load(model, path, display)
