"""Business calendars: when an SLA runs out in an owner's working time.

`2h` is two hours of elapsed time (a P1 does not wait for Monday), `3d` three calendar days at the
same local time, `8bh` eight working hours, `5bd` the same local time five working days later, and
`by renewal_date - 60d` the end of the working day 60 days before a date of the profile. Working
days skip weekends, the region's public holidays (the `holidays` package) and extra days off;
arithmetic is done in UTC and read in the owner's timezone, so DST changes land right.

Imports: stdlib, holidays, definitions.schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import holidays as holiday_data
from pydantic import BaseModel, ConfigDict, Field

from signalplay.errors import SignalplayError
from signalplay.lang.functions import ExprRuntimeError, as_date

_SLA = re.compile(r"^(?:(\d+)(h|bh|d|bd)|by ([a-z][a-z0-9_]*)(?: - (\d+)d)?)$")
MAX_DAYS_AHEAD = 3660


class SlaError(SignalplayError, ValueError):
    """An SLA the calendar cannot read."""


DUE_CACHE = 10_000  # (start, SLA) pairs kept per calendar


class Calendar(BaseModel):
    """An owner's working calendar: timezone, working days and hours, public holidays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    subdiv: str | None = None
    workdays: tuple[Annotated[int, Field(ge=0, le=6)], ...] = (0, 1, 2, 3, 4)
    start_hour: int = Field(default=9, ge=0, le=23)
    end_hour: int = Field(default=17, ge=1, le=24)
    extra_holidays: tuple[date, ...] = ()


class BusinessCalendar:
    """One region's working time."""

    def __init__(self, spec: Calendar) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.opens = time(spec.start_hour)
        self.closes = time(spec.end_hour) if spec.end_hour < 24 else time(23, 59, 59)
        self._extra = frozenset(spec.extra_holidays)
        self._due: dict[tuple[datetime, str], datetime] = {}  # a run's episodes share `now`
        self._holidays: Any = (
            holiday_data.country_holidays(spec.country, subdiv=spec.subdiv)
            if spec.country
            else None
        )

    def is_workday(self, day: date) -> bool:
        """A working day: a workday of the week, not a public holiday, not an extra day off."""
        if day.weekday() not in self.spec.workdays or day in self._extra:
            return False
        return not (self._holidays is not None and day in self._holidays)

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on `day`, if any."""
        if day in self._extra:
            return "day off"
        if self._holidays is None:
            return None
        name = self._holidays.get(day)
        return str(name) if name else None

    def _local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone)

    def _next_workday(self, day: date) -> date:
        for _ in range(MAX_DAYS_AHEAD):
            day += timedelta(days=1)
            if self.is_workday(day):
                return day
        raise SlaError("the calendar has no working day in ten years")

    def _first_open(self, moment: datetime) -> datetime:
        """`moment` if it is working time, else the next opening (aware, local)."""
        local = moment.astimezone(self.zone)
        day = local.date()
        if self.is_workday(day):
            if local.timetz().replace(tzinfo=None) < self.opens:
                return self._local(day, self.opens)
            if local.timetz().replace(tzinfo=None) < self.closes:
                return local
        return self._local(self._next_workday(day), self.opens)

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        """`hours` of working time after `start`."""
        remaining = timedelta(hours=hours)
        current = self._first_open(start)
        for _ in range(MAX_DAYS_AHEAD):
            closing = self._local(current.date(), self.closes)
            available = closing.astimezone(UTC) - current.astimezone(UTC)
            if remaining <= available:
                return (current.astimezone(UTC) + remaining).astimezone(self.zone)
            remaining -= available
            current = self._local(self._next_workday(current.date()), self.opens)
        raise SlaError("business hours run past ten years")

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The same local time `days` working days later.

        The same local time `days` working days later (from the next opening when `start` is
        outside working time).
        """
        current = self._first_open(start)
        day = current.date()
        for _ in range(days):
            day = self._next_workday(day)
        return self._local(day, current.timetz().replace(tzinfo=None))

    def end_of_day(self, day: date) -> datetime:
        """Closing time of `day`, moved back to the last working day before it if needed."""
        for _ in range(MAX_DAYS_AHEAD):
            if self.is_workday(day):
                return self._local(day, self.closes)
            day -= timedelta(days=1)
        raise SlaError("the calendar has no working day in ten years")

    def due(self, start: datetime, sla: str, values: Mapping[str, Any] | None = None) -> datetime:
        """When `sla` runs out for work that starts at `start` (aware); returned in UTC."""
        known = self._due.get((start, sla))
        if known is not None:
            return known
        match = _SLA.match(sla)
        if match is None:
            raise SlaError(f"not an SLA: {sla!r} (e.g. 4h, 8bh, 3d, 5bd, by renewal_date - 60d)")
        amount, unit, field, minus = match.groups()
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if unit == "h":  # elapsed time: in UTC, or an aware datetime adds wall-clock hours
            result = start.astimezone(UTC) + timedelta(hours=int(amount))
        elif unit == "bh":
            result = self.add_business_hours(start, int(amount))
        elif unit == "d":
            local = start.astimezone(self.zone)
            result = datetime.combine(
                local.date() + timedelta(days=int(amount)), local.timetz()
            ).astimezone(UTC)
        elif unit == "bd":
            result = self.add_business_days(start, int(amount))
        else:  # depends on the account's date: not kept
            return self._by(start, (values or {}).get(field), int(minus or 0)).astimezone(UTC)
        if len(self._due) < DUE_CACHE:
            self._due[start, sla] = result.astimezone(UTC)
        return result.astimezone(UTC)

    def _by(self, start: datetime, value: Any, minus: int) -> datetime:
        """End of the working day `minus` days before a date.

        A date already past (or missing) still gives one working day.
        """
        day = _as_date(value)
        if day is not None:
            deadline = self.end_of_day(day - timedelta(days=minus))
            if deadline > start:
                return deadline
        return self.add_business_days(start, 1)


def _as_date(value: Any) -> date | None:
    try:
        return as_date(value)
    except ExprRuntimeError:
        return None


@lru_cache(maxsize=64)
def calendar_for(spec: Calendar) -> BusinessCalendar:
    """A calendar per spec, built once (holiday tables are loaded lazily per year)."""
    return BusinessCalendar(spec)


def check_calendar(spec: Calendar) -> str | None:
    """Why `spec` cannot be used (unknown timezone, country or region), or None."""
    try:
        ZoneInfo(spec.timezone)
    except (KeyError, ValueError):
        return f"unknown timezone {spec.timezone!r} (an IANA name such as Europe/Berlin)"
    if spec.country:
        try:
            holiday_data.country_holidays(spec.country)
        except (NotImplementedError, KeyError, ValueError):
            return f"the holidays package has no country {spec.country!r}"
        try:
            holiday_data.country_holidays(spec.country, subdiv=spec.subdiv)
        except (NotImplementedError, KeyError, ValueError) as exc:
            return f"no holiday region {spec.subdiv!r} in {spec.country}: {exc}"
    if spec.end_hour <= spec.start_hour:
        return "end_hour must be after start_hour"
    if not spec.workdays:
        return "a calendar needs at least one working day"
    return None
