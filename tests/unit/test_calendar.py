"""SLA arithmetic in owners' calendars: elapsed hours, business hours and days across weekends,
public holidays (the `holidays` package) and DST changes, and deadlines before a date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from signalplay.definitions.schema import Calendar
from signalplay.lang.calendar import BusinessCalendar, SlaError, check_calendar

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
US = BusinessCalendar(Calendar(timezone="America/New_York", country="US"))
DE = BusinessCalendar(Calendar(timezone="Europe/Berlin", country="DE", subdiv="BE"))


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_hours_are_elapsed_time_even_on_a_friday_evening() -> None:
    assert US.due(ny(2026, 11, 20, 16, 0), "2h") == ny(2026, 11, 20, 18, 0)


def test_hours_across_the_dst_change_are_real_hours() -> None:
    start = ny(2026, 11, 1, 0, 30)  # EDT; clocks go back at 02:00
    due = US.due(start, "2h")
    assert due - start.astimezone(UTC) == timedelta(hours=2)
    assert due.astimezone(NY).hour == 1  # 01:30 EST, the second 01:30 of the night


def test_business_hours_skip_the_weekend() -> None:
    assert US.due(ny(2026, 11, 20, 15, 0), "8bh") == ny(2026, 11, 23, 15, 0)


def test_business_hours_started_on_a_saturday_count_from_monday_opening() -> None:
    assert US.due(ny(2026, 11, 21, 11, 0), "8bh") == ny(2026, 11, 23, 17, 0)


def test_business_hours_skip_thanksgiving() -> None:
    # Wednesday 16:00 + 2 working hours: one hour on Wednesday, Thursday is a holiday.
    assert US.due(ny(2026, 11, 25, 16, 0), "2bh") == ny(2026, 11, 27, 10, 0)


def test_five_business_days_skip_the_weekend_and_thanksgiving() -> None:
    assert US.due(ny(2026, 11, 20, 10, 0), "5bd") == ny(2026, 11, 30, 10, 0)


def test_business_days_keep_the_local_time_across_dst() -> None:
    due = DE.due(berlin(2026, 3, 27, 10, 0), "1bd")  # CET; CEST from Sunday 29 March
    assert due.astimezone(BERLIN) == berlin(2026, 3, 30, 10, 0)
    assert due - berlin(2026, 3, 27, 10, 0).astimezone(UTC) == timedelta(hours=71)


def test_calendar_days_keep_the_local_time_across_dst() -> None:
    due = DE.due(berlin(2026, 3, 27, 10, 0), "3d")
    assert due.astimezone(BERLIN).hour == 10
    assert due.astimezone(BERLIN).date() == date(2026, 3, 30)


def test_christmas_in_berlin_is_two_days_off() -> None:
    assert DE.due(berlin(2026, 12, 24, 10, 0), "1bd") == berlin(2026, 12, 28, 10, 0)
    assert DE.holiday_name(date(2026, 12, 25))


def test_regional_holiday_only_in_its_region() -> None:
    # International Women's Day is a public holiday in Berlin only (a Monday in 2027).
    bavaria = BusinessCalendar(Calendar(timezone="Europe/Berlin", country="DE", subdiv="BY"))
    assert not DE.is_workday(date(2027, 3, 8))
    assert bavaria.is_workday(date(2027, 3, 8))


def test_by_a_date_is_the_end_of_that_working_day() -> None:
    start = ny(2026, 11, 18, 12, 0)
    assert US.due(start, "by renewal_date - 60d", {"renewal_date": "2027-03-01"}) == ny(
        2026, 12, 31, 17, 0
    )


def test_by_a_date_on_a_holiday_moves_back_to_the_working_day_before() -> None:
    start = ny(2026, 11, 18, 12, 0)
    # 2027-02-23 - 60 days = Friday 25 December 2026 (Christmas): due Thursday the 24th.
    due = US.due(start, "by renewal_date - 60d", {"renewal_date": date(2027, 2, 23)})
    assert due == ny(2026, 12, 24, 17, 0)


def test_by_a_date_already_past_or_missing_gives_one_working_day() -> None:
    start = ny(2026, 11, 18, 12, 0)
    past = US.due(start, "by renewal_date - 60d", {"renewal_date": "2026-12-01"})
    missing = US.due(start, "by renewal_date - 60d", {})
    assert past == missing == ny(2026, 11, 19, 12, 0)


def test_a_sunday_to_thursday_week_with_an_extra_day_off() -> None:
    cal = BusinessCalendar(
        Calendar(
            timezone="Asia/Dubai", workdays=(6, 0, 1, 2, 3), extra_holidays=(date(2026, 11, 22),)
        )
    )
    start = datetime(2026, 11, 19, 10, 0, tzinfo=ZoneInfo("Asia/Dubai"))  # Thursday
    # Friday and Saturday are the weekend, Sunday the 22nd is a day off.
    assert cal.due(start, "1bd").astimezone(ZoneInfo("Asia/Dubai")).date() == date(2026, 11, 23)


def test_naive_start_is_read_as_utc() -> None:
    assert US.due(datetime(2026, 11, 18, 12, 0), "4h") == datetime(2026, 11, 18, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("sla", ["2 hours", "5 bd", "by", "by renewal_date - x", "-1h"])
def test_an_unreadable_sla_is_an_error(sla: str) -> None:
    with pytest.raises(SlaError):
        US.due(ny(2026, 11, 18, 12, 0), sla)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Calendar(timezone="Mars/Olympus"), "unknown timezone"),
        (Calendar(country="XX"), "no country"),
        (Calendar(country="DE", subdiv="ZZ"), "no holiday region"),
        (Calendar(start_hour=17, end_hour=9), "end_hour"),
    ],
)
def test_a_bad_calendar_is_named(spec: Calendar, message: str) -> None:
    problem = check_calendar(spec)
    assert problem is not None
    assert message in problem
