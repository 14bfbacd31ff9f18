"""YAML read with the position of every node, and pydantic errors turned into file:line issues.

Imports: yaml, pydantic, signalplay.errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from signalplay.errors import ConfigError, Issue, SignalplayError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 5_000_000
MAX_ALIAS_NODES = 20_000  # nodes reached again through aliases: a real file reuses a few dozen


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false: `no` and `on` stay strings."""


_StrictLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@dataclass(frozen=True)
class ValuePos:
    """Where a scalar value starts, and its style: None (plain), quote, or | > for blocks."""

    line: int
    column: int
    style: str | None


@dataclass
class YamlDoc:
    """A parsed YAML document and where each of its nodes stands in the file.

    `positions` are where each key (or list item) starts: what an issue points at.
    `values` are where each scalar value starts, for errors inside an expression or template.
    """

    path: str
    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    values: dict[Loc, ValuePos] = field(default_factory=dict)

    def where(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """The line and column of the deepest known node on `loc` (1-based)."""
        key = tuple(loc)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return self.positions.get((), (None, None))

    def issue(self, loc: Sequence[str | int], message: str, hint: str = "") -> Issue:
        """An issue at `loc`, positioned in this file."""
        line, column = self.where(loc)
        return Issue(self.path, line, column, dotted(loc), message, hint)


def dotted(loc: Sequence[str | int]) -> str:
    """`('fields', 3, 'cast')` → `fields[3].cast`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class AliasBombError(SignalplayError):
    """YAML aliases that expand to more nodes than any RevOps file needs (a "billion laughs")."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__(node.start_mark.line + 1)
        self.node = node


@dataclass
class _Seen:
    """The nodes a walk has visited, and how many visits came again through an alias."""

    nodes: set[int] = field(default_factory=set)
    again: int = 0


def _walk(  # noqa: PLR0917 - a recursive walk, its state passed down
    node: yaml.Node,
    loc: Loc,
    out: dict[Loc, tuple[int, int]],
    values: dict[Loc, ValuePos],
    loader: _StrictLoader,
    seen: _Seen,
) -> Any:
    if id(node) in seen.nodes:  # reached again through an alias: its subtree is walked again
        seen.again += 1
        if seen.again > MAX_ALIAS_NODES:
            raise AliasBombError(node)
    else:
        seen.nodes.add(id(node))
    out[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        values[loc] = ValuePos(*out[loc], node.style)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            child = (*loc, key if isinstance(key, str | int) else str(key))
            if key in result:
                raise DuplicateKeyError(child, key_node)
            result[key] = _walk(value_node, child, out, values, loader, seen)
            out[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(item, (*loc, i), out, values, loader, seen) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


class DuplicateKeyError(SignalplayError):
    """A key twice in one YAML mapping."""

    def __init__(self, loc: Loc, node: yaml.Node) -> None:
        super().__init__(loc)
        self.loc = loc
        self.node = node


def parse_yaml(text: str, *, path: str) -> YamlDoc:
    """Parse one YAML document, keeping positions; syntax errors become a ConfigError."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError([Issue(path, None, None, "", "file is too large to be a RevOps file")])
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc}"
        start = exc.context_mark
        if exc.context and start is not None and (mark is None or start.line != mark.line):
            message += f" ({exc.context} that starts at line {start.line + 1})"
        raise ConfigError([Issue(path, line, col, "", message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Issue(path, None, None, "", f"invalid YAML: {exc}")]) from None
    if node is None:
        return YamlDoc(path, None, {(): (1, 1)})
    positions: dict[Loc, tuple[int, int]] = {}
    values: dict[Loc, ValuePos] = {}
    try:
        # A loader of its own: PyYAML's constructor keeps every node it has constructed (and,
        # through their marks, the whole text) until its document ends, which a walk node by
        # node never reaches; a shared one grew by ~1.3 MB per definitions load.
        data = _walk(node, (), positions, values, _StrictLoader(""), _Seen())
    except AliasBombError as exc:
        mark = exc.node.start_mark
        message = (
            f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} repeated nodes "
            "(an alias bomb?); write the values out or use fewer nested aliases"
        )
        raise ConfigError([Issue(path, mark.line + 1, mark.column + 1, "", message)]) from None
    except DuplicateKeyError as exc:
        mark = exc.node.start_mark
        issue = Issue(path, mark.line + 1, mark.column + 1, dotted(exc.loc), "duplicate key")
        raise ConfigError([issue]) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise ConfigError([Issue(path, None, None, "", f"invalid YAML: {exc}")]) from None
    return YamlDoc(path, data, positions, values)


def read_yaml(path: Path, *, display: str | None = None) -> YamlDoc:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Issue(shown, None, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(shown, None, None, "", f"cannot read file: {exc}")]) from None
    return parse_yaml(text, path=shown)


def validation_issues(doc: YamlDoc, error: ValidationError, *, prefix: Loc = ()) -> list[Issue]:
    """Each pydantic error as an Issue at its file position."""
    grouped: dict[Loc, list[Any]] = {}
    for err in error.errors(include_url=False):
        grouped.setdefault((*prefix, *_clean_loc(err["loc"])), []).append(err)
    issues = []
    for loc, errs in grouped.items():
        if len(errs) == 1:
            issues.append(doc.issue(loc, _message(errs[0]), _hint(errs[0])))
            continue
        # A union's members each failed: say what would have been accepted, once.
        kinds = dict.fromkeys(_UNION_WORDS.get(str(e["type"]), _message(e)) for e in errs)
        issues.append(doc.issue(loc, "expected " + " or ".join(kinds)))
    return sorted(issues, key=lambda i: (i.line or 0, i.column or 0))


_TAG = re.compile(r"^(function-\w+|str|int|float|bool|none|constrained-str|[a-z-]+\[.*\])$")
_UNION_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true/false",
    "none_required": "nothing",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _clean_loc(loc: Sequence[str | int]) -> Loc:
    # Unions put each member's tag in the location (`map.x.str`); function validators add a
    # name that is not in the file. Keep only real keys.
    return tuple(p for p in loc if not (isinstance(p, str) and _TAG.match(p)))


def _message(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _hint(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "check the spelling against the documented fields"
    if kind == "literal_error":
        return "use one of the listed values"
    return ""


def validate_doc(model: type[M], doc: YamlDoc, *, context: dict[str, Any] | None = None) -> M:
    """Validate a parsed document against `model`, raising every issue at once."""
    if doc.data is None:
        raise ConfigError([doc.issue((), "file is empty")])
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ConfigError(validation_issues(doc, exc)) from None
