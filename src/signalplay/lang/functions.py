"""The expression language's values and library.

Its types (`ValueType`, `Expression`), errors, the whitelisted functions RevOps can call, and the
history functions' keys. Imports: stdlib, holidays (public holidays, read when first asked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from signalplay.errors import SignalplayError

Scope = Mapping[str, Any]


Compiled = Callable[[Scope], Any]


class ExprError(SignalplayError, ValueError):
    """An expression is not valid; `column` is 1-based within the expression text."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class ExprRuntimeError(SignalplayError, ValueError):
    """An expression failed on one account's values (e.g. text compared with a number)."""


@dataclass(frozen=True)
class ValueType:
    """What a profile field or expression holds, for checks at load time.

    `enum` lists the only values a text field can take.
    """

    kind: str = "any"
    enum: frozenset[str] | None = None

    def __str__(self) -> str:
        return self.kind if self.enum is None else "one of " + ", ".join(sorted(self.enum))


@dataclass(frozen=True)
class Expression:
    """A compiled expression, the names it reads, its result type and the history it needs."""

    text: str
    names: frozenset[str]
    fn: Compiled
    type: ValueType = field(default_factory=ValueType)
    history: frozenset[tuple[str, str, int]] = frozenset()

    def __call__(self, scope: Scope) -> Any:
        """Evaluate against `scope`; names missing from it are None."""
        return self.fn(scope)


def as_date(value: Any) -> date | None:
    """A date from a date, a datetime or ISO text (its first ten characters); None for None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise ExprRuntimeError(f"not a date: {value[:40]!r}") from None
    raise ExprRuntimeError(f"not a date: {type(value).__name__}")


def _days_until(scope: Scope, value: Any) -> int | None:
    day, today = as_date(value), as_date(scope.get("today"))
    return None if day is None or today is None else (day - today).days


def _days_since(scope: Scope, value: Any) -> int | None:
    result = _days_until(scope, value)
    return None if result is None else -result


def _coalesce(_scope: Scope, *values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _nullable(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(_scope: Scope, *args: Any) -> Any:
        if any(a is None for a in args):
            return None
        try:
            return fn(*args)
        except (TypeError, ValueError) as exc:
            raise ExprRuntimeError(str(exc)) from None

    return call


def _matching(items: Any, field: Any, value: Any) -> list[Mapping[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        raise ExprRuntimeError(f"expected a list, got {type(items).__name__}")
    rows = [i for i in items if isinstance(i, Mapping)]
    return rows if field is None else [i for i in rows if i.get(str(field)) == value]


def _count_where(_scope: Scope, items: Any, field: Any = None, value: Any = None) -> int:
    return len(_matching(items, field, value))


def _last_where(
    _scope: Scope, items: Any, date_field: Any, field: Any = None, value: Any = None
) -> Any:
    found = [
        v for i in _matching(items, field, value) if (v := i.get(str(date_field))) not in (None, "")
    ]
    try:
        return max(found) if found else None
    except TypeError:
        raise ExprRuntimeError(f"{date_field} holds values that cannot be ordered") from None


@lru_cache(maxsize=64)
def _public_holidays(country: str, subdiv: str | None) -> Any:
    import holidays

    try:
        return holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError:
        raise ExprRuntimeError(f"no public holidays known for {country!r}") from None


def _working_day(_scope: Scope, value: Any, country: Any = None, subdiv: Any = None) -> bool | None:
    """Monday to Friday, and not a public holiday of `country` (and `subdiv`) when given."""
    day = as_date(value)
    if day is None:
        return None
    if day.weekday() >= 5:
        return False
    if country is None:
        return True
    calendar = _public_holidays(str(country).upper(), None if subdiv is None else str(subdiv))
    return day not in calendar


def _month_day(text: Any) -> tuple[int, int]:
    try:
        month, day = (int(p) for p in str(text).split("-"))
        date(2024, month, day)  # a leap year: 02-29 is a day
    except ValueError:
        raise ExprRuntimeError(f"in_season takes 'MM-DD' days, not {text!r}") from None
    return month, day


def _in_season(_scope: Scope, value: Any, first: Any, last: Any) -> bool | None:
    """Whether the day falls from `first` to `last` ('MM-DD', both included) in any year.

    A season may wrap the year's end ('12-24' to '01-01').
    """
    day = as_date(value)
    if day is None:
        return None
    at, lo, hi = (day.month, day.day), _month_day(first), _month_day(last)
    return lo <= at <= hi if lo <= hi else (at >= lo or at <= hi)


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (implementation taking the scope first, min args, max args)
    "abs": (_nullable(abs), 1, 1),
    "min": (_nullable(min), 1, 8),
    "max": (_nullable(max), 1, 8),
    "round": (_nullable(lambda v, n=0: round(v, n)), 1, 2),
    "lower": (_nullable(lambda v: str(v).lower()), 1, 1),
    "upper": (_nullable(lambda v: str(v).upper()), 1, 1),
    "len": (_nullable(len), 1, 1),
    "coalesce": (_coalesce, 1, 8),
    "days_until": (_days_until, 1, 1),
    "days_since": (_days_since, 1, 1),
    "pct_change": (_nullable(lambda new, old: (new - old) / old if old else None), 2, 2),
    # over a list of records such as the contacts: how many have field == value, and the
    # latest value of a date field among them
    "count_where": (_count_where, 1, 3),
    "last_where": (_last_where, 2, 4),
    # a working day: Monday to Friday and not a public holiday of the country (the `holidays`
    # package), for usage windows that compare like days with like days
    "working_day": (_working_day, 1, 3),
    # a season of the year ('12-24' to '01-01'): a business's quiet weeks, when usage falls
    # for everyone and a drop says nothing about one account
    "in_season": (_in_season, 3, 3),
}


ANY = ValueType()


NUMBER, TEXT, BOOL = ValueType("number"), ValueType("text"), ValueType("bool")


# History functions read the daily profile snapshots: ago(field, 7) is the field's value seven
# days ago; avg_over / min_over / max_over summarise the last N days (today excluded).
HISTORY = ("ago", "avg_over", "min_over", "max_over")


MAX_HISTORY_DAYS = 400


def history_key(how: str, name: str, days: int) -> str:
    """The scope key a history value is looked up under (names never start with `@`)."""
    return f"@{how}:{name}:{days}"
