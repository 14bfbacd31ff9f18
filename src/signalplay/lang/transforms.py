"""Value transforms of the mapping files, compiled once per field.

Paths into nested records and lists, casts (numbers, money in minor units per currency, dates and
datetimes with time zones), key normalisation, value maps and title rules. Imports: stdlib.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signalplay.errors import SignalplayError

Getter = Callable[[Any], Any]

PATH_SEGMENT = r"[A-Za-z0-9_\-$@]+(?:\[(?:\d+|\*)\])*"
PATH_PATTERN = rf"^{PATH_SEGMENT}(?:\.{PATH_SEGMENT})*$"
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
EPOCH_MS_ABOVE = 100_000_000_000  # a number above this is epoch milliseconds (year 5138 in s)

# ISO 4217 exponents that differ from 2, as Stripe documents them (stripe.com/docs/currencies):
# zero-decimal currencies are charged in whole units, three-decimal ones in thousandths.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


class CastError(SignalplayError, ValueError):
    """A value could not be cast to the declared type."""


# ---- paths ------------------------------------------------------------------------------------
def compile_path(path: str) -> Getter:
    """A getter for `a.b`, `items.data[*].quantity` (a list) or `lines[0].amount`.

    A missing step gives None; `[*]` maps the rest of the path over a list and drops Nones.
    """
    steps: list[str | int | None] = []
    for key, index in _STEP.findall(path):
        steps.append(key if key else (None if index == "*" else int(index)))
    if len(steps) == 1 and isinstance(steps[0], str):
        only = steps[0]
        return lambda data: data.get(only) if isinstance(data, dict) else None
    return lambda data: _walk(data, steps, 0)


def _walk(data: Any, steps: Sequence[str | int | None], start: int) -> Any:
    current = data
    for i in range(start, len(steps)):
        step = steps[i]
        if step is None:
            if not isinstance(current, list):
                return None
            items = (_walk(item, steps, i + 1) for item in current)
            return [v for v in items if v is not None]
        if isinstance(step, str):
            current = current.get(step) if isinstance(current, dict) else None
        elif isinstance(current, list) and -len(current) <= step < len(current):
            current = current[step]
        else:
            return None
        if current is None:
            return None
    return current


def get_path(data: Any, path: str) -> Any:
    """The value at a path, or None when any step is missing (compiles the path each call)."""
    return compile_path(path)(data)


# ---- normalisation ----------------------------------------------------------------------------
def normalize_key(value: Any, how: str | None) -> str | None:
    """A key as text: `lower`, `strip`, or `domain` (scheme, `www.`, path, e-mail user dropped)."""
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    if how == "lower":
        return text.lower() or None
    if how == "domain":
        text = text.lower().removeprefix("https://").removeprefix("http://")
        text = text.split("/", 1)[0].split("@")[-1].removeprefix("www.").rstrip(".")
        return text or None
    return text or None


# ---- casts ------------------------------------------------------------------------------------
def zone(name: str | None) -> tzinfo:
    """The time zone called `name` (UTC when None); unknown names raise ValueError."""
    if name is None or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _finite(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _to_float(value: Any) -> float:
    if isinstance(value, bool | dict | list):
        raise ValueError("not a number")
    if isinstance(value, str):
        value = value.strip().replace(",", "")
    try:
        return _finite(float(value))
    except (TypeError, ValueError):
        raise ValueError("not a number") from None


def _to_int(value: Any) -> int:
    number = _to_float(value)
    if not number.is_integer():
        raise ValueError("not a whole number")
    if abs(number) > 2**63:
        raise ValueError("number is too large")
    return int(value) if isinstance(value, int) else int(number)


def _to_decimal(value: Any) -> float:
    if isinstance(value, bool | dict | list):
        raise ValueError("not a number")
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    return float(number)


def currency_exponent(currency: str | None) -> int:
    """Digits after the decimal point of a currency's major unit (2 unless Stripe lists it)."""
    code = (currency or "").strip().lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def money(value: Any, currency: str | None) -> float:
    """An integer amount in minor units (cents, yen, fils) as a decimal amount in major units."""
    try:
        minor = _to_int(value)
    except ValueError as exc:
        raise ValueError(f"minor units: {exc}") from None
    return float(Decimal(minor).scaleb(-currency_exponent(currency)))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "y", "t"}:
        return True
    if text in {"false", "0", "no", "n", "f"}:
        return False
    raise ValueError("not a boolean")


def to_moment(value: Any, *, tz: tzinfo = UTC, epoch: str | None = None) -> datetime:
    """A timestamp (ISO text, epoch seconds or milliseconds) as an aware datetime.

    Naive text is read in `tz`; epoch numbers are milliseconds above 1e11 unless `epoch` says.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=tz)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = _finite(float(value))
        if epoch == "ms" or (epoch is None and abs(seconds) > EPOCH_MS_ABOVE):
            seconds /= 1000
        return datetime.fromtimestamp(seconds, tz=UTC)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a date or time: {type(value).__name__}")
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _to_date(value: Any, tz: tzinfo, epoch: str | None) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip()).isoformat()
    return to_moment(value, tz=tz, epoch=epoch).astimezone(tz).date().isoformat()


def _to_datetime(value: Any, tz: tzinfo, epoch: str | None) -> str:
    return to_moment(value, tz=tz, epoch=epoch).astimezone(UTC).isoformat()


def _to_str(value: Any) -> str:
    if isinstance(value, dict | list):
        raise ValueError("a nested object is not text")
    return str(value)


def make_cast(
    cast: str | None,
    *,
    timezone: str | None = None,
    epoch: str | None = None,
    currency: Getter | None = None,
    currency_code: str | None = None,
) -> Callable[[Any, Any], Any]:
    """A function (value, record) → cast value; the record is read for a currency field."""
    if cast is None:
        return lambda value, _record: value
    tz = zone(timezone)
    simple: dict[str, Callable[[Any], Any]] = {
        "str": _to_str,
        "int": _to_int,
        "float": _to_float,
        "decimal": _to_decimal,
        "bool": _to_bool,
        "date": lambda v: _to_date(v, tz, epoch),
        "datetime": lambda v: _to_datetime(v, tz, epoch),
        "minor_units": lambda v: money(v, "usd"),
    }
    if cast == "money":
        fixed = currency_code

        def to_money(value: Any, record: Any) -> float:
            code = fixed if currency is None else currency(record)
            return money(value, code if isinstance(code, str) else fixed)

        return to_money
    fn = simple[cast]
    return lambda value, _record: fn(value)


# ---- reductions, maps and rules -----------------------------------------------------------
def _numbers(values: list[Any]) -> list[float | int]:
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


REDUCE: dict[str, Callable[[list[Any]], Any]] = {
    "sum": lambda vs: sum(_numbers(vs)) if vs else None,
    "min": lambda vs: min(_numbers(vs), default=None),
    "max": lambda vs: max(_numbers(vs), default=None),
    "count": len,
    "distinct": lambda vs: len({str(v) for v in vs}),
    "first": lambda vs: vs[0] if vs else None,
    "last": lambda vs: vs[-1] if vs else None,
    "join": lambda vs: ", ".join(str(v) for v in vs) if vs else None,
}


def title_words(text: str) -> str:
    """Lower-cased words of a text joined by single spaces, padded for whole-word search."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def make_rules(rules: Sequence[tuple[Sequence[str], Any]]) -> Callable[[Any], Any]:
    """First rule one of whose phrases occurs as whole words in the text (case-insensitive)."""
    compiled = [([title_words(p) for p in phrases], value) for phrases, value in rules]

    def apply(value: Any) -> Any:
        if value is None:
            return None
        words = title_words(str(value))
        for phrases, result in compiled:
            if any(p in words for p in phrases):
                return result
        return None

    return apply


def make_map(table: Mapping[str, Any]) -> Callable[[Any], Any]:
    """Look a value up as text; for a list, the first element found. None when nothing is found."""

    def lookup(value: Any) -> Any:
        if isinstance(value, list):
            return next((table[str(v)] for v in value if str(v) in table), None)
        return table.get(_key_text(value))

    return lookup


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
