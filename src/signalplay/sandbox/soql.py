"""The SOQL subset the Salesforce stand-in answers.

SELECT fields (parent dot-paths too) FROM one sObject, WHERE with =, !=, <, >, <=, >=, IN (...), NOT
IN, LIKE, AND, OR, NOT and parentheses over text, number, true/false/null, date and datetime
literals, ORDER BY one or more fields ASC/DESC (NULLS FIRST/LAST), LIMIT. Anything else is a
MALFORMED_QUERY, as Salesforce answers it.

Imports: stdlib.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from signalplay.errors import SignalplayError

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "in",
    "like",
    "order",
    "by",
    "asc",
    "desc",
    "limit",
    "nulls",
    "first",
    "last",
    "null",
    "true",
    "false",
}


class SoqlError(SignalplayError, ValueError):
    """A query the stand-in (and Salesforce) refuses: `code` is the errorCode."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Query:
    """A parsed query."""

    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None
    order: tuple[tuple[str, bool, bool], ...]  # field, descending, nulls last
    limit: int | None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SoqlError(f"unexpected token at: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_datetime(text: str) -> datetime:
    """A SOQL or API datetime (`2016-09-13T15:31:37Z`, `...000+0000`) as an aware datetime."""
    value = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", value):
        value = value[:-2] + ":" + value[-2:]
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def word(self, *expected: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() in expected:
            self.i += 1
            return True
        return False

    def expect_word(self, expected: str) -> None:
        if not self.word(expected):
            raise SoqlError(f"expecting {expected.upper()}")

    def op(self, *expected: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in expected:
            self.i += 1
            return tok[1]
        return None

    def name(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] != "word" or tok[1].lower() in KEYWORDS:
            raise SoqlError("expecting a field name")
        self.i += 1
        return tok[1]

    def query(self) -> Query:
        self.expect_word("select")
        fields = [self.name()]
        while self.op(","):
            fields.append(self.name())
        self.expect_word("from")
        sobject = self.name()
        where = self.disjunction() if self.word("where") else None
        order: list[tuple[str, bool, bool]] = []
        if self.word("order"):
            self.expect_word("by")
            while True:
                name = self.name()
                desc = self.word("desc")
                if not desc:
                    self.word("asc")
                nulls_last = desc
                if self.word("nulls"):
                    nulls_last = self.word("last")
                    if not nulls_last:
                        self.expect_word("first")
                order.append((name, desc, nulls_last))
                if not self.op(","):
                    break
        limit = None
        if self.word("limit"):
            tok = self.peek()
            if tok is None or tok[0] != "num":
                raise SoqlError("expecting a number after LIMIT")
            self.i += 1
            limit = int(tok[1])
        if self.peek() is not None:
            raise SoqlError(f"unexpected token: {self.peek()[1]!r}")  # type: ignore[index]
        return Query(tuple(fields), sobject, where, tuple(order), limit)

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.word("or"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def unary(self) -> Predicate:
        if self.word("not"):
            inner = self.unary()
            return lambda r: not inner(r)
        if self.op("("):
            inner = self.disjunction()
            if not self.op(")"):
                raise SoqlError("expecting )")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        field = self.name()
        negate = self.word("not")
        if self.word("in"):
            if not self.op("("):
                raise SoqlError("expecting ( after IN")
            values = [self.literal()]
            while self.op(","):
                values.append(self.literal())
            if not self.op(")"):
                raise SoqlError("expecting )")
            return lambda r: (lookup(r, field) in values) != negate
        if negate:
            raise SoqlError("expecting IN after NOT")
        if self.word("like"):
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise SoqlError("LIKE needs a text value")
            rx = re.compile(
                "^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$", re.IGNORECASE
            )
            return lambda r: isinstance(v := lookup(r, field), str) and bool(rx.match(v))
        op = self.op("=", "!=", "<>", "<", ">", "<=", ">=")
        if op is None:
            raise SoqlError(f"expecting an operator after {field}")
        value = self.literal()
        return _compare(field, op, value)

    def literal(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise SoqlError("expecting a value")
        self.i += 1
        kind, text = tok
        if kind == "str":
            return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "dt":
            return parse_datetime(text)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise SoqlError(f"unexpected value: {text!r}")


def _coerce(stored: Any, wanted: Any) -> Any:
    """A stored API value read as the literal's type (datetimes and dates are kept as text)."""
    if stored is None:
        return None
    if isinstance(wanted, datetime) and isinstance(stored, str):
        return parse_datetime(stored)
    if isinstance(wanted, date) and isinstance(stored, str):
        return date.fromisoformat(stored[:10])
    return stored


def _compare(field: str, op: str, value: Any) -> Predicate:
    def test(record: Record) -> bool:
        stored = _coerce(lookup(record, field), value)
        if op == "=":
            return bool(stored == value)
        if op in ("!=", "<>"):
            return bool(stored != value)
        if stored is None or value is None:
            return False
        try:
            return bool(
                {
                    "<": stored < value,
                    ">": stored > value,
                    "<=": stored <= value,
                    ">=": stored >= value,
                }[op]
            )
        except TypeError:
            return False

    return test


def lookup(record: Record, path: str) -> Any:
    """A field or a parent dot-path (`Account.Name`), case-insensitive as SOQL is."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        match = next((k for k in current if k.lower() == part.lower()), None)
        current = current.get(match) if match is not None else None
    return current


def parse(text: str) -> Query:
    """Parse one query; a SoqlError names what is wrong."""
    return _Parser(text).query()
