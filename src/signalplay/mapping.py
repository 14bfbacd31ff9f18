"""Map a stream's records into profile facts with lineage, one record at a time.

Memory grows with accounts times fields, never with records: aggregates keep running accumulators.
A record that fails casting is quarantined with its reason; the rest go on. Imports: stdlib,
definitions, expr, identity, models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from signalplay.definitions.loader import CompiledMapping
from signalplay.definitions.schema import FieldSpec
from signalplay.expr import ExprRuntimeError
from signalplay.identity import IdentityMap, get_path, normalize_key, read_key
from signalplay.models import Fact, SourceRecord
from signalplay.types import JSONValue


class CastError(ValueError):
    """A value could not be cast to the declared type."""


def cast_value(value: Any, cast: str | None) -> JSONValue:
    """Cast a raw value to a profile value; dates become ISO text."""
    if value is None or value == "" or cast is None:
        return None if value == "" else value
    try:
        return _CASTS[cast](value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise CastError(f"cannot cast {str(value)[:60]!r} to {cast}: {exc}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "y", "t"}:
        return True
    if text in {"false", "0", "no", "n", "f"}:
        return False
    raise ValueError("not a boolean")


def _to_date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC).date().isoformat()
    return date.fromisoformat(str(value).strip()[:10]).isoformat()


def _to_datetime(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    else:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _to_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not a whole number")
    return int(float(value)) if isinstance(value, str) and "." in value else int(value)


_CASTS: dict[str, Callable[[Any], JSONValue]] = {
    "str": str,
    "int": _to_int,
    "float": float,
    "bool": _to_bool,
    "date": _to_date,
    "datetime": _to_datetime,
    "minor_units": lambda v: round(int(v) / 100, 2),
}


@dataclass
class _Acc:
    """A running aggregate of one field for one account."""

    count: int = 0
    total: float = 0.0
    lo: Any = None
    hi: Any = None
    last: Any = None
    last_at: str = ""
    seen: set[str] = field(default_factory=set)
    record_id: str = ""

    def add(self, value: Any, at: str, record_id: str) -> None:
        self.count += 1
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.total += value
            self.lo = value if self.lo is None else min(self.lo, value)
            self.hi = value if self.hi is None else max(self.hi, value)
        if value is not None and len(self.seen) < 100_000:
            self.seen.add(str(value))
        if at >= self.last_at:
            self.last, self.last_at, self.record_id = value, at, record_id

    def result(self, how: str | None) -> JSONValue:
        results: dict[str | None, JSONValue] = {
            "count": self.count,
            "sum": round(self.total, 6),
            "avg": round(self.total / self.count, 6) if self.count else None,
            "min": self.lo,
            "max": self.hi,
            "distinct": len(self.seen),
        }
        return results.get(how, self.last) if how in results else self.last


@dataclass
class MapReport:
    """What mapping one stream did: facts per account and what it could not use."""

    records: int = 0
    unmatched: list[tuple[str, str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)
    quarantined: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


class StreamMapper:
    """Feeds a stream's records through one mapping file into per-account accumulators."""

    def __init__(self, mapping: CompiledMapping, identity: IdentityMap, *, today: date) -> None:
        self.mapping = mapping
        self.spec = mapping.spec
        self.identity = identity
        self.today = today
        self.report = MapReport()
        self._accs: dict[tuple[str, str], _Acc] = {}
        self._members: dict[str, dict[str, dict[str, JSONValue]]] = {}

    def add(self, record: SourceRecord) -> None:
        """Map one record; a bad one is quarantined, an unmatched one reported."""
        self.report.records += 1
        account = self._account(record)
        if account is None:
            return
        try:
            values = self._values(record)
        except (CastError, ExprRuntimeError) as exc:
            self.report.quarantined.append((record.record_id, str(exc), record.data))
            return
        if self.spec.collect:
            self._members.setdefault(account, {})[record.record_id] = values
            return
        at = self._record_time(record)
        for name, value in values.items():
            fs = self.spec.fields[name]
            if fs.aggregate and not self._in_window(fs, record):
                continue
            if fs.aggregate and name in self.mapping.wheres and not self._where(name, record):
                continue
            acc = self._accs.setdefault((account, name), _Acc())
            if fs.aggregate == "count":
                acc.add(1, at, record.record_id)
            else:
                acc.add(value, at, record.record_id)

    def _account(self, record: SourceRecord) -> str | None:
        ident = self.spec.identity
        key = read_key(record.data, ident)
        if key is None:
            self.report.unmatched.append((record.record_id, ident.key, ""))
            return None
        account = self.identity.resolve(ident.key, key)
        if account is None:
            bucket = (
                self.report.conflicts
                if self.identity.is_conflict(ident.key, key)
                else self.report.unmatched
            )
            bucket.append((record.record_id, ident.key, key))
        return account

    def _values(self, record: SourceRecord) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        for name, fs in self.spec.fields.items():
            out[name] = self._field(name, fs, record.data)
        return out

    def _field(self, name: str, fs: FieldSpec, data: dict[str, Any]) -> JSONValue:
        if fs.expr is not None:
            raw = self.mapping.exprs[name](data) if name in self.mapping.exprs else None
        elif fs.from_ is not None:
            raw = get_path(data, fs.from_)
        else:
            return None
        value = cast_value(raw, fs.cast)
        if fs.normalize is not None:
            value = normalize_key(value, fs.normalize)
        if fs.map is not None:
            value = fs.map.get(str(value), fs.default) if value is not None else fs.default
        elif value is None and fs.default is not None:
            value = fs.default
        return value

    def _where(self, name: str, record: SourceRecord) -> bool:
        try:
            return bool(self.mapping.wheres[name](record.data))
        except ExprRuntimeError:
            return False

    def _record_day(self, record: SourceRecord) -> date | None:
        if self.spec.date_field is None:
            return None
        raw = get_path(record.data, self.spec.date_field)
        try:
            return date.fromisoformat(_to_date(raw)) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def _in_window(self, fs: FieldSpec, record: SourceRecord) -> bool:
        if fs.window_days is None:
            return True
        day = self._record_day(record)
        if day is None:
            return False
        end = self.today - timedelta(days=fs.offset_days)
        return end - timedelta(days=fs.window_days) < day <= end

    def _record_time(self, record: SourceRecord) -> str:
        day = self._record_day(record)
        if day is not None:
            return day.isoformat()
        return record.updated_at.isoformat() if record.updated_at else ""

    def facts(self) -> dict[str, dict[str, Fact]]:
        """The facts this stream contributes, per account."""
        src, stream = self.spec.source, self.spec.stream
        out: dict[str, dict[str, Fact]] = {}
        for (account, name), acc in self._accs.items():
            how = self.spec.fields[name].aggregate
            rid = acc.record_id if how in (None, "last") else f"{acc.count} records"
            out.setdefault(account, {})[name] = Fact(
                value=acc.result(how),
                source=src,
                stream=stream,
                record_id=rid,
                observed_at=_parse_at(acc.last_at),
            )
        if self.spec.collect:
            for account, members in self._members.items():
                items: list[JSONValue] = [
                    {"id": rid, **vals} for rid, vals in sorted(members.items())
                ]
                out.setdefault(account, {})[self.spec.collect] = Fact(
                    value=items, source=src, stream=stream, record_id=f"{len(items)} records"
                )
        return out


def _parse_at(text: str) -> datetime | None:
    if not text:
        return None
    moment = (
        datetime.fromisoformat(text) if "T" in text else datetime.fromisoformat(text + "T00:00:00")
    )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_identity(master: CompiledMapping, records: Iterable[SourceRecord]) -> IdentityMap:
    """The identity map from the master stream: every account and the keys it is known by."""
    identity = IdentityMap()
    for record in records:
        account = read_key(record.data, master.spec.identity)
        if account is None:
            continue
        identity.add("crm_id", account, account)
        for kind, spec in master.spec.provides.items():
            identity.add(kind, read_key(record.data, spec), account)
    return identity
