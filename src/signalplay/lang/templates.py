"""The sandbox play templates render in.

Jinja2's immutable sandbox with limits on what a hostile or careless template can cost (no `**` with
large exponents, no huge repetition, short ranges, bounded loop nesting and output), compiled once
per text. Each render also has a budget: loop iterations (every `for`'s iterable is counted as it is
walked), wall-clock time, and the size a string method or filter may produce (`center`, `ljust`,
`indent`, `wordwrap`, `replace`, `format`, `join` and their kin) checked before it runs.

Imports: stdlib, jinja2.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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
MAX_ITERATIONS = 20_000  # loop iterations of one render, nested loops counted in full
MAX_RENDER_SECONDS = 0.5
MAX_STRING = 100_000  # characters one string method or filter may produce
LOOP_BUDGET = "sp_loop_budget"  # the name every `for` iterable is wrapped in (not for templates)
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_DICT_ATTRIBUTES = frozenset(dir(dict))


class Budget:
    """What one render may still spend: loop iterations and time."""

    def __init__(self) -> None:
        self.iterations = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Walk `iterable`, counting each item against the render's budget."""
        for item in iterable:
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                msg = f"loops are limited to {MAX_ITERATIONS:,} iterations per render"
                raise SecurityError(msg)
            if self.iterations % 512 == 0:
                self.check_time()
            yield item

    def check_time(self) -> None:
        """Stop a render that has run past its time."""
        if time.monotonic() > self.deadline:
            msg = f"a render is limited to {MAX_RENDER_SECONDS:g} s"
            raise SecurityError(msg)


def _sized(result_size: int, what: str) -> None:
    if result_size > MAX_STRING:
        msg = f"{what} would make {result_size:,} characters (at most {MAX_STRING:,})"
        raise SecurityError(msg)


def _str_call_size(method: str, text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """The most characters `text.<method>(*args)` can make, before it runs."""
    if method in _WIDTH_METHODS:
        width = args[0] if args else kwargs.get("width", 0)
        return max(len(text), width) if isinstance(width, int) else len(text)
    if method == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) * max(1, tab if isinstance(tab, int) else 8)
    if method == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = text.count(old) if old else len(text) + 1
        return len(text) + hits * max(0, len(new) - len(old))
    if method == "join" and args:
        items = list(args[0])
        return sum(len(str(i)) for i in items) + len(text) * max(0, len(items) - 1)
    if method in ("format", "format_map"):
        filled = [*args, *kwargs.values()]
        return len(text) + sum(len(str(a)) for a in filled)
    return len(text)


def _bounded_filter(
    name: str, original: Callable[..., Any], size: Callable[..., int]
) -> Callable[..., Any]:
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _sized(size(str(value), *args, **kwargs), f"the {name} filter")
        return original(value, *args, **kwargs)

    bounded.__name__ = name
    return bounded


def _width(text: str, width: Any = 80, *_: Any, **__: Any) -> int:
    return max(len(text), width if isinstance(width, int) else 0)


def _indent(text: str, width: Any = 4, *_: Any, **__: Any) -> int:
    pad = width if isinstance(width, int) else len(str(width))
    return len(text) + (text.count("\n") + 1) * max(0, pad)


def _replace(text: str, old: Any = "", new: Any = "", *_: Any, **__: Any) -> int:
    return _str_call_size("replace", text, (old, new), {})


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
        sizes: dict[str, Callable[..., int]] = {
            "center": _width,
            "indent": _indent,
            "wordwrap": _width,
            "replace": _replace,
        }
        for name, size in sizes.items():
            self.filters[name] = _bounded_filter(name, self.filters[name], size)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's tree, with every `for` walking its iterable through the budget."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.Name(LOOP_BUDGET, "load"), [loop.iter], [], None, None, lineno=loop.lineno
            )
        return tree

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call, with a string method's result size checked before it runs."""
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            _sized(_str_call_size(method, owner, args, kwargs), f"str.{method}()")
        return super().call(__context, __obj, *args, **kwargs)

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
    refused = _refused_names(text, tree)
    if refused:
        return refused
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = getattr(access, "attr", None) or getattr(getattr(access, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return f"template error: access to {name!r} is not allowed (no names starting with _)"
    depth = _loop_depth(tree)
    if depth > MAX_LOOP_NESTING:
        return f"template error: loops nested {depth} deep (at most {MAX_LOOP_NESTING})"
    return None


def _refused_names(text: str, tree: nodes.Template) -> str | None:
    """The budget's reserved name, or a width written in that no render could afford."""
    if LOOP_BUDGET in text:
        return f"template error: the name {LOOP_BUDGET!r} is reserved"
    too_wide = _constant_width(tree)
    if too_wide:
        return f"template error: {too_wide} (at most {MAX_STRING:,} characters)"
    return None


def _constant_width(tree: nodes.Template) -> str | None:
    """A width written into the template that no render could afford (`center(10**9)`)."""
    calls = [(f.name, f.args) for f in tree.find_all(nodes.Filter)]
    calls += [
        (c.node.attr, c.args)
        for c in tree.find_all(nodes.Call)
        if isinstance(c.node, nodes.Getattr)
    ]
    for name, args in calls:
        if name not in {"center", "ljust", "rjust", "zfill", "indent", "wordwrap"}:
            continue
        for arg in args[:1]:
            try:
                width = arg.as_const()
            except nodes.Impossible:
                continue
            if isinstance(width, int) and width > MAX_STRING:
                return f"{name}({width:,}) is wider than a render may make"
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
    budget = Budget()
    try:
        out: list[str] = []
        size = 0
        extra = {"range": _safe_range, LOOP_BUDGET: budget.loop}
        for chunk in compiled(text).generate(context, **extra):
            out.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                break
            budget.check_time()
        return "".join(out)[:MAX_OUTPUT]
    except (TemplateError, TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        return f"[template error: {exc}]"
