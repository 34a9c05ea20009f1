"""Working time: SLA clocks that count only the team's working hours (PRODUCT.md §12).

A Calendar is a time zone, working hours per weekday and holidays. Due times are computed here and stored
as absolute instants, so the minute sweep stays a plain comparison. Day boundaries are taken in the team's
zone on each date, so a day of a DST change is as long as the clock on the wall says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

MAX_DAYS = 3 * 366  # a calendar that never opens within this many days is refused when saved


@dataclass(frozen=True)
class Calendar:
    zone: str = "UTC"
    # Weekday (Monday 0) → (start, end); a missing weekday is not worked.
    hours: dict[int, tuple[time, time]] | None = None
    holidays: frozenset[date] = frozenset()

    @classmethod
    def of(cls, desk) -> Calendar | None:
        """The desk's calendar, or None when its clocks run around the clock (also, logged, when what is stored
        cannot be read: clocks keep running rather than scoring and the queue failing)."""
        if not desk.business_hours:
            return None
        try:
            ZoneInfo(desk.time_zone)
            hours = {
                int(day): (time.fromisoformat(start), time.fromisoformat(end))
                for day, (start, end) in desk.hours.items()
            }
            return cls(
                zone=desk.time_zone, hours=hours, holidays=frozenset(date.fromisoformat(d) for d in desk.holidays)
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            log.error("the desk's calendar cannot be read; SLA clocks run around the clock")
            return None

    def windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals (UTC) from ``start`` on, in order; the first may begin before ``start``."""
        zone = ZoneInfo(self.zone)
        day = start.astimezone(zone).date()
        for _ in range(MAX_DAYS):
            opening = (self.hours or {}).get(day.weekday())
            if opening and day not in self.holidays:
                begin = datetime.combine(day, opening[0], zone).astimezone(UTC)
                end = datetime.combine(day, opening[1], zone).astimezone(UTC)
                if end > start and end > begin:
                    yield begin, end
            day += timedelta(days=1)
        raise ValueError("This calendar has no working hours.")

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` of working time after ``start``."""
        left = timedelta(minutes=minutes)
        for begin, end in self.windows(start):
            begin = max(begin, start)
            if end - begin >= left:
                return begin + left
            left -= end - begin
        raise AssertionError("unreachable")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        if end < start:
            return -self.between(end, start)
        total = timedelta()
        for begin, close in self.windows(start):
            if begin >= end:
                break
            total += min(close, end) - max(begin, start)
        return total

    def is_open(self, at: datetime) -> bool:
        begin, _ = next(self.windows(at))
        return begin <= at


def due(calendar: Calendar | None, start: datetime, minutes: float) -> datetime:
    """``minutes`` after ``start``: of working time with a calendar, else of clock time (also when the working
    time would end beyond the calendar's horizon)."""
    if calendar is not None:
        try:
            return calendar.add(start, minutes)
        except ValueError:
            pass
    return start + timedelta(minutes=minutes)


def left(calendar: Calendar | None, now: datetime, due_at: datetime) -> timedelta:
    """Working time from now to ``due_at`` (clock time without a calendar)."""
    return due_at - now if calendar is None else calendar.between(now, due_at)
