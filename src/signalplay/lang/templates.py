"""The sandbox play templates render in.

Jinja2's immutable sandbox with limits on what a hostile or careless template can cost (no `**` with
large exponents, no huge repetition, short ranges, bounded loop nesting and output), compiled once
per text.

Imports: stdlib, jinja2.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RANGE = 1_000
MAX_OUTPUT = 20_000
MAX_LOOP_NESTING = 2
MAX_EXPONENT = 64
MAX_REPEAT = 10_000
_DICT_ATTRIBUTES = frozenset(dir(dict))


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        msg = f"range() is limited to {MAX_RANGE} items in templates"
        raise SecurityError(msg)
    return rng


class PlayTemplate(Template):
    """A play template.

    Its environment has no globals (`render` passes `range`), so a render's context is made of
    its variables alone, without walking the template's ChainMap of globals, empty as it is,
    twice a render (a third of a short template's time).
    """

    def new_context(
        self,
        vars: dict[str, Any] | None = None,  # noqa: A002 - Jinja's parameter name
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,  # noqa: A002
    ) -> Context:
        """The context of one render: `vars` (and `locals`), no globals."""
        return new_context(self.environment, self.name, self.blocks, vars, shared, None, locals)


class PlayEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed environment of play templates."""

    intercepted_binops = frozenset({"**", "*"})
    template_class = PlayTemplate

    def __init__(self) -> None:
        super().__init__(autoescape=False, trim_blocks=True, lstrip_blocks=True)
        self.globals = {}  # see PlayTemplate

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`a.b` on a plain dict.

        The item, exactly as the sandbox finds it after `getattr(dict, "b")` fails, without
        raising and catching that AttributeError first (most of a play's lookups are
        `account.x`).
        """
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        """`**` and `*` with bounded operands; everything else as the sandbox does it."""
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                msg = f"exponents above {MAX_EXPONENT} are not allowed in templates"
                raise SecurityError(msg)
            return operator.pow(left, right)
        if operator_name == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_REPEAT:
                    msg = f"repetition above {MAX_REPEAT} items is not allowed in templates"
                    raise SecurityError(msg)
            return operator.mul(left, right)
        return super().call_binop(context, operator_name, left, right)


ENV = PlayEnvironment()


def check_template(text: str) -> str | None:
    """Why `text` is not an acceptable template (syntax, loop nesting, imports), or None."""
    try:
        tree = ENV.parse(text)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"template error: {exc}" + (f" (template line {line})" if line else "")
    for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        return f"template error: {type(node).__name__.lower()} is not allowed in play templates"
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = getattr(access, "attr", None) or getattr(getattr(access, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return f"template error: access to {name!r} is not allowed (no names starting with _)"
    depth = _loop_depth(tree)
    if depth > MAX_LOOP_NESTING:
        return f"template error: loops nested {depth} deep (at most {MAX_LOOP_NESTING})"
    return None


def _loop_depth(node: nodes.Node) -> int:
    inner = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return inner + (1 if isinstance(node, nodes.For | nodes.Macro) else 0)


@lru_cache(maxsize=4096)
def compiled(text: str) -> Template:
    """The template compiled once."""
    return ENV.from_string(text)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render one template; a failure renders a readable marker instead of raising."""
    try:
        out: list[str] = []
        size = 0
        for chunk in compiled(text).generate(context, range=_safe_range):
            out.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                break
        return "".join(out)[:MAX_OUTPUT]
    except (TemplateError, TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        return f"[template error: {exc}]"
