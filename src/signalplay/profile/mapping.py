"""Map a stream's records into profile facts with lineage, one record at a time.

Memory grows with accounts times fields (times days, in a backfill), never with records:
aggregates keep running accumulators. One pass serves several days at once, so a backfill reads
history once. A record that fails casting is quarantined with its reason; the rest go on.
Imports: stdlib, definitions, expr, identity, models, transforms.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from signalplay.definitions.compiled import CompiledMapping
from signalplay.lang.functions import ExprRuntimeError
from signalplay.lang.transforms import CastError, compile_path, to_moment, zone
from signalplay.models import Fact, IdentityIssue, SourceRecord, Timeline
from signalplay.profile.identity import IdentityMap, learn_keys, resolve
from signalplay.types import JSONValue

MAX_DISTINCT = 100_000
_NEVER = datetime(1, 1, 1, tzinfo=UTC)
ZERO_WHEN_EMPTY = frozenset({"count", "sum", "distinct"})


class _Acc:
    """A running aggregate of one field for one account (and day).

    `at` orders records for `last`: the record's date in a dated stream, else its update time.
    """

    __slots__ = (
        "count",
        "hi",
        "last",
        "last_at",
        "lo",
        "numbers",
        "record_id",
        "seen",
        "total",
        "values",
    )

    def __init__(self) -> None:
        self.count = 0
        self.numbers = 0
        self.total = 0.0
        self.lo: Any = None
        self.hi: Any = None
        self.last: Any = None
        self.last_at: Any = None
        self.record_id = ""
        self.seen: set[str] | None = None
        self.values: list[float] | None = None  # kept for a median only

    def add(
        self, value: Any, at: Any, record_id: str, *, distinct: bool, keep: bool = False
    ) -> None:
        self.count += 1
        kind = value.__class__
        if kind is int or kind is float:  # not bool: True is no number of anything
            self.numbers += 1
            self.total += value
            if self.lo is None or value < self.lo:
                self.lo = value
            if self.hi is None or value > self.hi:
                self.hi = value
            if keep:
                if self.values is None:
                    self.values = []
                self.values.append(value)
        elif kind is str and value:
            if self.lo is None or str(self.lo) > value:
                self.lo = value
            if self.hi is None or str(self.hi) < value:
                self.hi = value
        if distinct and value is not None:
            self.seen = self.seen if self.seen is not None else set()
            if len(self.seen) < MAX_DISTINCT:
                self.seen.add(str(value))
        if self.last_at is None or at >= self.last_at:
            self.last, self.last_at, self.record_id = value, at, record_id

    def result(self, how: str | None) -> JSONValue:
        results: dict[str | None, Any] = {
            "count": self.count,
            "sum": round(self.total, 6),
            "avg": round(self.total / self.numbers, 6) if self.numbers else None,
            "min": self.lo,
            "max": self.hi,
            "distinct": len(self.seen or ()),
            "median": _median(self.values),
        }
        value: JSONValue = results.get(how, self.last)
        return value

    def observed(self) -> datetime | None:
        """When the newest record counted was dated or updated."""
        at = self.last_at
        if at is None or at == _NEVER:
            return None
        if isinstance(at, datetime):
            return at
        return datetime(at.year, at.month, at.day, tzinfo=UTC)


def _median(values: list[float] | None) -> float | None:
    """The middle value (the mean of the two middle ones); None without numbers."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    middle = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return round(middle, 6)


@dataclass
class MapReport:
    """What mapping one stream did: how many records, and the ones it could not use."""

    records: int = 0
    mapped: int = 0
    identity: list[IdentityIssue] = field(default_factory=list)
    quarantined: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def unmatched(self) -> list[IdentityIssue]:
        """Records whose keys match no account."""
        return [i for i in self.identity if i.problem == "unmatched"]

    @property
    def conflicts(self) -> list[IdentityIssue]:
        """Records whose keys match two accounts."""
        return [i for i in self.identity if i.problem == "conflict"]


@dataclass(frozen=True)
class _Field:
    name: str
    aggregate: str | None
    window: int | None
    where: Callable[[Any], Any] | None
    # Per day: the record dates that count, as (after, through); None is open. Precomputed so
    # the hot loop compares dates and does no arithmetic.
    spans: tuple[tuple[date | None, date], ...]


def _spans(
    window: int | None, offset: int, days: Sequence[date]
) -> tuple[tuple[date | None, date], ...]:
    out = []
    for today in days:
        end = today - timedelta(days=offset)
        out.append((None if window is None else end - timedelta(days=window), end))
    return tuple(out)


class StreamMapper:
    """Feeds a stream's records through one mapping file into per-account accumulators.

    `days` are the days the profile is computed for (windows end on each); the first is the
    run's day. Records dated after a day do not count for it.
    """

    def __init__(
        self, mapping: CompiledMapping, identity: IdentityMap, *, days: Sequence[date]
    ) -> None:
        self.mapping = mapping
        self.spec = mapping.spec
        self.identity = identity
        self.days = list(days)
        self.report = MapReport()
        self._fields = [
            _Field(
                name,
                fs.aggregate,
                fs.window_days,
                mapping.wheres[name].fn if name in mapping.wheres else None,
                _spans(fs.window_days, fs.offset_days, self.days),
            )
            for name, fs in self.spec.fields.items()
        ]
        # One identity key (the usual case): look it up directly; resolve() explains misses.
        self._single = mapping.identity[0] if len(mapping.identity) == 1 else None
        self._accs: list[dict[tuple[str, str], _Acc]] = [{} for _ in self.days]
        self._members: list[dict[str, dict[str, dict[str, JSONValue]]]] = [{} for _ in self.days]
        self._date = compile_path(self.spec.date_field) if self.spec.date_field else None
        self._tz = zone(self.spec.timezone)
        # Per day, the accounts with a record that day (kept for the master stream: the book of
        # that day), and those with a record whose state that day is unknown (their facts from
        # this stream are unknown too).
        self.present: list[set[str]] = [set() for _ in self.days]
        self._unknown: list[set[str]] = [set() for _ in self.days]
        self._ends = [
            datetime.combine(d + timedelta(days=1), datetime.min.time(), self._tz) for d in days
        ]
        self._all = range(len(self.days))

    def add(self, record: SourceRecord) -> None:
        """Map one record; a bad one is quarantined, an unmatched one reported."""
        self.report.records += 1
        self._add(record.record_id, record.data, record.updated_at, self._all)

    def add_timeline(self, timeline: Timeline) -> None:
        """Map one record as it was on each day: the state that held at the day's end.

        Before its first state a record did not exist when that state began it (`origin`), nor
        when it is dated after the day; otherwise its state that day is unknown, and so are
        its account's facts from this stream.
        """
        self.report.records += 1
        versions = timeline.versions
        starts = [v.valid_from for v in versions]
        on: dict[int, list[int]] = {}
        unknown: list[int] = []
        for i, end in enumerate(self._ends):
            j = bisect_left(starts, end)
            if j:
                on.setdefault(j - 1, []).append(i)
            elif not timeline.origin:
                unknown.append(i)
        for j, days in on.items():
            data = versions[j].data
            if data is not None:
                self._add(timeline.record_id, data, versions[j].valid_from, days)
        first = next((v.data for v in versions if v.data is not None), None)
        if unknown and first is not None:
            self._unknown_on(timeline.record_id, first, unknown)

    def _unknown_on(self, record_id: str, data: dict[str, Any], days: list[int]) -> None:
        account, _ = resolve(self.identity, self.mapping.identity, data)
        if account is None:
            return
        try:
            day = self._record_day(data)
        except CastError:
            day = None
        for i in days:
            if day is None or day <= self.days[i]:  # a record dated later did not exist yet
                self._unknown[i].add(account)

    def _add(
        self, record_id: str, data: Any, updated_at: datetime | None, days: Sequence[int]
    ) -> None:
        account = self._account(record_id, data)
        if account is None:
            return
        try:
            values = extract_values(self.mapping, data)
            day = self._record_day(data)
        except CastError as exc:
            self.report.quarantined.append((record_id, str(exc), data))
            return
        self.report.mapped += 1
        if self.spec.master:
            for i in days:
                self.present[i].add(account)
        if self.spec.collect:
            for i in days:
                self._members[i].setdefault(account, {})[record_id] = values
            return
        at = day if day is not None else (updated_at or _NEVER)
        self._accumulate(account, values, data, day=day, at=at, record_id=record_id, days=days)

    def _account(self, record_id: str, data: Any) -> str | None:
        if self._single is not None:
            kind, read = self._single
            value = read(data)
            account = None if value is None else self.identity.keys.get((kind, value))
            if account is not None:
                return account
        account, problem = resolve(self.identity, self.mapping.identity, data)
        if account is None:
            self._report_identity(record_id, problem)
        return account

    def _accumulate(
        self,
        account: str,
        values: dict[str, Any],
        data: Any,
        *,
        day: date | None,
        at: date | datetime,
        record_id: str,
        days: Sequence[int],
    ) -> None:
        every = len(days) == len(self.days)
        for f in self._fields:
            if f.where is not None and not _holds(f.where, data):
                continue
            value = 1 if f.aggregate == "count" else values[f.name]
            key = (account, f.name)
            distinct = f.aggregate == "distinct"
            keep = f.aggregate == "median"
            pairs = (
                zip(self._accs, f.spans, strict=True)
                if every
                else ((self._accs[i], f.spans[i]) for i in days)
            )
            for accs, (after, through) in pairs:
                if day is None:
                    if f.window is not None:
                        continue
                elif day > through or (after is not None and day <= after):
                    continue
                acc = accs.get(key)
                if acc is None:
                    acc = accs[key] = _Acc()
                acc.add(value, at, record_id, distinct=distinct, keep=keep)

    def _report_identity(
        self, record_id: str, problem: tuple[str, str | None, tuple[str, ...]] | None
    ) -> None:
        kind, value, accounts = problem or ("", None, ())
        self.report.identity.append(
            IdentityIssue(
                source=self.spec.source,
                stream=self.spec.stream,
                record_id=record_id,
                problem="conflict" if len(accounts) > 1 else "unmatched",
                key_kind=kind,
                key_value=value,
                accounts=accounts,
            )
        )

    def _record_day(self, data: Any) -> date | None:
        if self._date is None:
            return None
        raw = self._date(data)
        if raw is None or raw == "":
            raise CastError(f"date_field {self.spec.date_field!r} is missing")
        try:
            if isinstance(raw, str) and len(raw) == 10:
                return date.fromisoformat(raw)
            return to_moment(raw, tz=self._tz).astimezone(self._tz).date()
        except (TypeError, ValueError, OverflowError) as exc:
            shown = str(raw)[:40]
            raise CastError(
                f"date_field {self.spec.date_field!r}: {shown!r} is not a date ({exc})"
            ) from None

    def facts(self, index: int = 0, *, accounts: Iterable[str] = ()) -> dict[str, dict[str, Fact]]:
        """The facts this stream contributes on `days[index]`, per account.

        Once the stream has records, a count, sum or distinct of an account with none of them
        is 0 (no tickets is zero tickets), for each of `accounts`. An account with a record
        whose state that day is unknown gets nothing from this stream: its facts are unknown.
        """
        src, stream = self.spec.source, self.spec.stream
        out: dict[str, dict[str, Fact]] = {}
        hows = {f.name: f.aggregate for f in self._fields}
        zeros = [f.name for f in self._fields if f.aggregate in ZERO_WHEN_EMPTY]
        if self.report.records and zeros:
            for account in accounts:
                out[account] = {
                    n: Fact(value=0, source=src, stream=stream, record_id="0 records")
                    for n in zeros
                }
        for (account, name), acc in self._accs[index].items():
            how = hows[name]
            rid = acc.record_id if how in (None, "last") else f"{acc.count} records"
            out.setdefault(account, {})[name] = Fact(
                value=acc.result(how),
                source=src,
                stream=stream,
                record_id=rid,
                observed_at=acc.observed(),
            )
        if self.spec.collect:
            for account, members in self._members[index].items():
                items: list[JSONValue] = [
                    {"id": rid, **vals} for rid, vals in sorted(members.items())
                ]
                out.setdefault(account, {})[self.spec.collect] = Fact(
                    value=items, source=src, stream=stream, record_id=f"{len(items)} records"
                )
        for account in self._unknown[index]:
            out.pop(account, None)
        return out


def extract_values(mapping: CompiledMapping, data: Any) -> dict[str, Any]:
    """Every field of one record; a failing field raises CastError naming it."""
    values = {}
    for name, extract in mapping.extractors.items():
        try:
            values[name] = extract(data)
        except CastError as exc:
            raise CastError(f"fields.{name}: {exc}") from None
    return values


def _holds(where: Callable[[Any], Any], data: Any) -> bool:
    try:
        return bool(where(data))
    except ExprRuntimeError:
        return False


def _teaching_order(mappings: Sequence[CompiledMapping]) -> list[CompiledMapping]:
    """The streams that provide keys, each after those providing the keys it joins by.

    The streams that provide keys, each after the streams providing the keys it joins by
    (organizations teach `zendesk_org_id` before tickets, joined by it, teach ticket ids);
    stable, and a cycle keeps the files' order.
    """
    pending, done = list(mappings), []
    while pending:
        ready = [
            m
            for m in pending
            if not any(
                kind in {k for k, _ in o.provides}
                for kind, _ in m.identity
                for o in pending
                if o is not m
            )
        ] or pending[:1]
        for m in ready:
            pending.remove(m)
            done.append(m)
    return done


def build_identity(
    mappings: Sequence[CompiledMapping],
    records_of: Callable[[CompiledMapping], Iterable[SourceRecord]],
) -> IdentityMap:
    """The identity map.

    Accounts and keys from the master stream, then the keys other streams provide for the
    accounts they join (e.g. a support organization's domain).
    """
    identity = IdentityMap()
    master = next(m for m in mappings if m.spec.master)
    read_id = master.identity[0][1]
    for record in records_of(master):
        account = read_id(record.data)
        if account is None:
            continue
        identity.add("crm_id", account, account)
        for kind, read in master.provides:
            identity.add(kind, read(record.data), account)
    for mapping in _teaching_order([m for m in mappings if not m.spec.master and m.provides]):
        learn_keys(
            identity,
            mapping.identity,
            mapping.provides,
            (r.data for r in records_of(mapping)),
        )
    return identity
