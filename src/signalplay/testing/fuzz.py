"""Fuzzing: generated input at every door, and what happened counted.

Fuzzing: Hypothesis throws generated input at every door RevOps files and sources come through, and
counts what happened. Whatever comes in, the only way out is the documented one: a model or a
ConfigError naming file, line and field (files, config); an expression or an ExprError
(expressions); a template error marker (templates); a mapped, quarantined or unmatched record (raw
records: none lost). Anything else is an unexpected exception.

`signalplay fuzz --cases 10000 --json` is the long form; the test suite runs a short one.
Hypothesis comes with the test extra (`pip install -e '.[test]'`). Imports: stdlib, yaml,
hypothesis (lazily), definitions, expr, identity, mapping, models, settings, templates.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.loader import load_definitions
from signalplay.errors import ConfigError
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.lang.expr import compile_expr
from signalplay.lang.functions import ExprError, ExprRuntimeError
from signalplay.lang.templates import check_template, render
from signalplay.models import SourceRecord
from signalplay.profile.identity import IdentityMap
from signalplay.profile.mapping import StreamMapper
from signalplay.settings import load_project

TARGETS = (
    "expression",
    "template",
    "record",
    "config",
    "mapping_file",
    "trigger_file",
    "play_file",
)


@dataclass
class Tally:
    """What one target's cases did."""

    target: str
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The target's figures, as `fuzz --json` prints them."""
        return {
            "target": self.target,
            "cases": self.cases,
            "outcomes": dict(self.outcomes),
            "unexpected": len(self.unexpected),
            "examples": self.unexpected[:3],
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class FuzzResult:
    """Every target's tally."""

    tallies: tuple[Tally, ...]

    @property
    def cases(self) -> int:
        """Cases run over all targets."""
        return sum(t.cases for t in self.tallies)

    @property
    def unexpected(self) -> int:
        """Exceptions that escaped over all targets (any is a bug)."""
        return sum(len(t.unexpected) for t in self.tallies)

    def to_json(self) -> dict[str, Any]:
        """As `fuzz --json` prints it."""
        return {
            "targets": [t.as_dict() for t in self.tallies],
            "cases": self.cases,
            "unexpected": self.unexpected,
        }


class _World:
    """The shipped definitions, a scratch folder and the strategies, built once."""

    def __init__(self) -> None:
        from hypothesis import strategies as st

        self.st = st
        self.shipped = shipped_mappings()
        self.defs: Definitions = load_definitions(self.shipped)
        self.scratch = Path(tempfile.mkdtemp(prefix="signalplay-fuzz-"))
        self.docs = {
            stem: yaml.safe_load((self.shipped / f"{stem}.yaml").read_text())
            for stem in ("triggers", "plays", "usage.usage_daily")
        }
        names = sorted(self.defs.types)
        scalar = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(10**20), 10**20),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=24),
            st.sampled_from(["__class__", "{{", "}}", "{%", "%}", "1e999", "9**9**9", *names[:20]]),
        )
        self.tree = st.recursive(
            scalar,
            lambda inner: st.one_of(
                st.lists(inner, max_size=4),
                st.dictionaries(
                    st.text(max_size=10) | st.sampled_from(names[:20]), inner, max_size=4
                ),
            ),
            max_leaves=12,
        )
        fragments = [
            *names,
            "and",
            "or",
            "not",
            "in",
            "is",
            "None",
            "True",
            "(",
            ")",
            "[",
            "]",
            ",",
            "+",
            "-",
            "*",
            "**",
            "/",
            "%",
            "==",
            "!=",
            "<",
            ">=",
            "'x'",
            "1",
            "0.5",
            "1e308",
            "ago(",
            "days_since(",
            "coalesce(",
            "count_where(",
            "__import__",
            "__class__",
            ".",
            "lambda",
            "if",
            "else",
            "[x for x in y]",
            "{}",
            ":",
            "@",
            "`",
            "\\",
            "\n",
        ]
        self.expression = st.one_of(
            st.text(max_size=120),
            st.lists(st.sampled_from(fragments), max_size=30).map(" ".join),
        )
        template_bits = [
            "{{ ",
            " }}",
            "{% ",
            " %}",
            "{# ",
            " #}",
            "for x in range(10**9)",
            "endfor",
            "if",
            "endif",
            "account.name",
            "account.__class__",
            "contact.first_name",
            "'a' * 10**9",
            "content.",
            "import os",
            "include 'x'",
            "macro m()",
            "endmacro",
            "| upper",
            "cycler",
            "self",
            "loop.index",
            "x",
            "(",
            ")",
            "9**9**9",
            "\n",
            "lipsum()",
        ]
        self.template = st.one_of(
            st.text(max_size=160),
            st.lists(st.sampled_from(template_bits), max_size=40).map("".join),
        )
        self.value = st.recursive(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(10**30), 10**30),
                st.floats(),
                st.text(max_size=12),
                st.sampled_from(["2026-11-27", "2026-13-45", "1e400", ""]),
            ),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3),
                st.dictionaries(st.text(max_size=6), inner, max_size=3),
            ),
            max_leaves=10,
        )

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _mutate(doc: Any, data: Any, world: _World) -> Any:
    """A copy of `doc` with a few random edits: a value replaced, a key dropped or added."""
    st = world.st
    out = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        node, path = out, []
        while isinstance(node, dict | list) and node and data.draw(st.booleans()):
            key = data.draw(
                st.sampled_from(list(node) if isinstance(node, dict) else range(len(node)))
            )
            path.append((node, key))
            node = node[key]
        action = data.draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            if isinstance(out, dict) and action == "add":
                out[data.draw(st.text(max_size=8))] = data.draw(world.tree)
            continue
        parent, key = path[-1]
        if action == "replace":
            parent[key] = data.draw(world.tree)
        elif action == "drop" and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(world.tree)
    return out


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return "{}"


def _expression(data: Any, world: _World) -> str:
    text = data.draw(world.expression)
    try:
        compiled = compile_expr(text, types=world.defs.types, history_names=set(world.defs.types))
    except ExprError:
        return "rejected"
    row = data.draw(
        world.st.dictionaries(
            world.st.sampled_from(sorted(world.defs.types)), world.value, max_size=6
        )
    )
    try:
        compiled(row)
    except ExprRuntimeError:
        return "runtime error"  # e.g. text compared with a number: the row breaks the types
    return "evaluated"


def _template(data: Any, world: _World) -> str:
    text = data.draw(world.template)
    if check_template(text) is not None:
        return "rejected"
    out = render(text, {"account": {"name": "Acme"}, "contact": {"first_name": "Jo"}})
    return "render error" if out.startswith("[template error") else "rendered"


def _record(data: Any, world: _World) -> str:
    mapping = data.draw(
        world.st.sampled_from([m for m in world.defs.mappings if not m.spec.master])
    )
    identity = IdentityMap()
    identity.add("crm_id", "A", "A")
    for kind in ("domain", "stripe_customer_id", "zendesk_org_id", "zendesk_ticket_id"):
        identity.add(kind, "k", "A")
    mapper = StreamMapper(mapping, identity, days=[date(2026, 11, 27)])
    spec = mapping.spec
    keys = sorted(
        {str(f.from_).split(".")[0].split("[")[0] for f in spec.fields.values() if f.from_}
        | {k.field.split(".")[0].split("[")[0] for k in spec.identity}
        | ({spec.date_field} if spec.date_field else set())
    )
    key = world.st.sampled_from(keys) | world.st.text(max_size=8) if keys else world.st.text()
    records = data.draw(
        world.st.lists(
            world.st.dictionaries(key, world.value | world.st.just("k"), max_size=8),
            min_size=1,
            max_size=5,
        )
    )
    for i, raw in enumerate(records):
        mapper.add(
            SourceRecord(
                source=mapping.spec.source, stream=mapping.spec.stream, record_id=str(i), data=raw
            )
        )
    mapper.facts(accounts=["A"])
    report = mapper.report
    if report.records != len(records) or report.mapped + len(report.quarantined) + len(
        report.identity
    ) < len(records):
        raise AssertionError(f"records lost: {report.records} read, {report.mapped} mapped")
    if any(not reason for _rid, reason, _data in report.quarantined):
        raise AssertionError("a record was quarantined without its reason")
    return "quarantined" if report.quarantined else "mapped"


def _config(data: Any, world: _World) -> str:
    folder = world.scratch / "config"
    folder.mkdir(exist_ok=True)
    base = {"version": 1, "crm": {"connector": "hubspot"}, "store": "sqlite:///x.db"}
    doc = _mutate(base, data, world) if data.draw(world.st.booleans()) else data.draw(world.tree)
    (folder / "signalplay.yaml").write_text(_dump(doc) if not isinstance(doc, str) else doc)
    try:
        load_project(folder)
    except ConfigError:
        return "rejected"
    return "loaded"


def _definitions_with(world: _World, stem: str, text: str) -> str:
    folder = world.scratch / f"defs-{stem}"
    if not folder.exists():
        shutil.copytree(world.shipped, folder)
    (folder / f"{stem}.yaml").write_text(text)
    try:
        load_definitions(folder)
    except ConfigError:
        return "rejected"
    finally:
        shutil.copy(world.shipped / f"{stem}.yaml", folder / f"{stem}.yaml")
    return "loaded"


def _file(stem: str) -> Callable[[Any, _World], str]:
    def target(data: Any, world: _World) -> str:
        doc = _mutate(world.docs[stem], data, world)
        return _definitions_with(world, stem, _dump(doc))

    return target


CHECKS: dict[str, Callable[[Any, _World], str]] = {
    "expression": _expression,
    "template": _template,
    "record": _record,
    "config": _config,
    "mapping_file": _file("usage.usage_daily"),
    "trigger_file": _file("triggers"),
    "play_file": _file("plays"),
}


def run(
    targets: tuple[str, ...] = TARGETS,
    *,
    cases: int = 10_000,
    seed: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> FuzzResult:
    """`cases` generated inputs per target.

    Every outcome counted, every unexpected exception kept with its traceback's last line.
    """
    world = _World()
    tallies = []
    try:
        for name in targets:
            tally = Tally(name)
            started = time.perf_counter()
            _cases(CHECKS[name], tally, world, cases=cases, seed=seed, progress=progress)()
            tally.seconds = time.perf_counter() - started
            tallies.append(tally)
    finally:
        world.close()
    return FuzzResult(tuple(tallies))


def _cases(
    check: Callable[[Any, _World], str],
    tally: Tally,
    world: _World,
    *,
    cases: int,
    seed: int | None,
    progress: Callable[[str, int, int], None] | None,
) -> Callable[[], None]:
    """One target's Hypothesis test: each case's outcome (or escaped exception) counted."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def case(data: Any) -> None:
        try:
            tally.outcomes[check(data, world)] += 1
        except Exception as exc:  # noqa: BLE001 - counting what escaped is the point
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            tally.unexpected.append(f"{type(exc).__name__}: {last[:300]}")
        tally.cases += 1  # (a case Hypothesis abandons mid-draw never gets here)
        if progress and tally.cases % 100 == 0:
            progress(tally.target, tally.cases, cases)

    return fix_seed(seed)(case) if seed is not None else case
