"""Hostile play templates: rejected when the files load, or, for what only shows at render time,
rendered as a short error marker instead of running away (time, memory, the interpreter)."""

from __future__ import annotations

import pytest

from signalplay.lang.templates import MAX_OUTPUT, check_template, render

REJECTED_AT_LOAD = [
    ("{{ ''.__class__.__mro__ }}", "is not allowed (no names starting with _)"),
    ("{{ cycler.__init__.__globals__ }}", "is not allowed (no names starting with _)"),
    ("{{ account['__class__'] }}", "'__class__' is not allowed"),
    ("{{ account._secret }}", "'_secret' is not allowed"),
    ("{% import 'os' as os %}", "import is not allowed"),
    ("{% from 'x' import y %}", "fromimport is not allowed"),
    ("{% include 'other' %}", "include is not allowed"),
    ("{% extends 'base' %}", "extends is not allowed"),
    (
        "{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}x"
        "{% endfor %}{% endfor %}{% endfor %}",
        "nested 3 deep",
    ),
    ("{% if %}", "template error"),
]

FAILS_AT_RENDER = [
    ("{{ 10 ** 100000 }}", "exponents above"),
    ("{% for i in range(10**9) %}x{% endfor %}", "range() is limited"),
    ("{{ 'x' * 100000000 }}", "repetition above"),
    ("{{ [0] * 100000000 }}", "repetition above"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "template error"),
    ("{{ account.update(name='x') }}", "template error"),
]


@pytest.mark.parametrize(("text", "fragment"), REJECTED_AT_LOAD)
def test_hostile_template_is_rejected_when_loaded(text: str, fragment: str) -> None:
    problem = check_template(text)
    assert problem is not None
    assert fragment in problem


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("text", "fragment"), FAILS_AT_RENDER)
def test_hostile_template_renders_an_error_marker(text: str, fragment: str) -> None:
    out = render(text, {"account": {"name": "Acme"}})
    assert out.startswith("[template error"), out[:200]
    assert fragment in out or fragment == "template error"


def test_output_is_capped() -> None:
    out = render("{% for i in range(1000) %}{{ 'y' * 9999 }}{% endfor %}", {})
    assert len(out) == MAX_OUTPUT


def test_ordinary_templates_render() -> None:
    text = (
        "{{ account.name }}: {{ (0.31 * 100) | round | int }}%"
        "{% for c in contacts %} {{ c }}{% endfor %}"
    )
    assert render(text, {"account": {"name": "Acme"}, "contacts": ["a", "b"]}) == "Acme: 31% a b"
    assert check_template(text) is None


def test_dict_lookups_read_as_the_sandbox_reads_them() -> None:
    """`a.b` on a dict: the item, except where dict itself has the attribute; missing is
    undefined (renders empty)."""
    account = {"name": "Acme", "items": "seven", "keys": 3}
    out = render(
        "{{ a.name }}|{{ a.missing }}|{{ a.items is callable }}|{{ a['items'] }}|{{ a.keys }}",
        {"a": account},
    )
    assert out.split("|")[:2] == ["Acme", ""]
    assert out.split("|")[2:4] == ["True", "seven"]
    assert out.split("|")[4].startswith("<built-in method keys")
