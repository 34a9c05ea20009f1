"""Working-time arithmetic against a brute-force walk, minute by minute, through the team's calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.business_time import Calendar, due

BERLIN = "Europe/Berlin"
NINE_TO_FIVE = {d: (time(9), time(17)) for d in range(5)}  # Monday to Friday
CAL = Calendar(zone=BERLIN, hours=NINE_TO_FIVE, holidays=frozenset({date(2026, 12, 25), date(2026, 3, 30)}))


def working(calendar: Calendar, minute: datetime) -> bool:
    local = minute.astimezone(ZoneInfo(calendar.zone))
    hours = calendar.hours.get(local.weekday())
    return bool(hours) and local.date() not in calendar.holidays and hours[0] <= local.time() < hours[1]


def walk(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """The instant after ``minutes`` working minutes, one minute at a time (start on a whole minute)."""
    at = start
    while minutes:
        if working(calendar, at):
            minutes -= 1
        at += timedelta(minutes=1)
    while not working(calendar, at - timedelta(minutes=1)):  # the end of the last working minute
        at -= timedelta(minutes=1)
    return at


# Starts around the DST changes of 2026 (29 March, 25 October) and Christmas, on whole minutes.
starts = st.sampled_from(
    [datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 10, 22, tzinfo=UTC), datetime(2026, 12, 23, tzinfo=UTC)]
).flatmap(lambda base: st.integers(0, 6 * 24 * 60).map(lambda m: base + timedelta(minutes=m)))
calendars = st.sampled_from(
    [
        CAL,
        Calendar(zone="America/New_York", hours={0: (time(8, 30), time(12)), 3: (time(13), time(18, 45))}),
        Calendar(zone="Europe/London", hours={d: (time(0), time(23, 59)) for d in range(7)}),
    ]
)


@settings(max_examples=60, deadline=None)
@given(calendar=calendars, start=starts, minutes=st.integers(1, 3 * 8 * 60))
def test_adding_working_time_matches_a_minute_walk(calendar, start, minutes):
    assert calendar.add(start, minutes) == walk(calendar, start, minutes)


@settings(max_examples=60, deadline=None)
@given(calendar=calendars, start=starts, minutes=st.integers(1, 3 * 8 * 60))
def test_working_time_between_undoes_adding_it(calendar, start, minutes):
    end = calendar.add(start, minutes)
    assert calendar.between(start, end) == timedelta(minutes=minutes)
    assert calendar.between(end, start) == -timedelta(minutes=minutes)


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo(BERLIN))


def test_a_lead_arriving_friday_evening_is_due_monday_morning():
    assert CAL.add(at(4, 18), 60) == at(7, 10)  # Friday 4 December, 18:00 → Monday 10:00
    assert CAL.between(at(4, 18), at(7, 10)) == timedelta(hours=1)
    assert not CAL.is_open(at(5, 12)) and CAL.is_open(at(7, 9, 30))


def test_an_entry_waiting_over_a_weekend_and_christmas():
    # Thursday 24 December 16:30: 30 minutes that day; the 25th is a holiday; then the weekend.
    assert CAL.add(at(24, 16, 30), 90) == at(28, 10)


def test_across_the_spring_dst_change_an_hour_is_an_hour_of_the_wall_clock():
    friday = datetime(2026, 3, 27, 16, tzinfo=ZoneInfo(BERLIN))
    # The weekend has the change; Monday 30 March is a holiday here; Tuesday 9:00 + 1 h.
    assert due(CAL, friday, 120) == datetime(2026, 3, 31, 10, tzinfo=ZoneInfo(BERLIN))


def test_without_a_calendar_clocks_run_around_the_clock():
    start = at(5, 12)
    assert due(None, start, 90) == start + timedelta(minutes=90)


def test_beyond_the_calendars_horizon_the_clock_time_is_used():
    start = at(1, 9)
    assert due(CAL, start, 10**8) == start + timedelta(minutes=10**8)
