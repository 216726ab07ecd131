"""Active hours as the two weekly moments a scheduled scaling action fires.

Pure: `window_moments(start_hour, end_hour, days)` gives the hour and week days of the
opening and the closing action. A window that ends at 24:00, or that crosses midnight
(20:00-04:00), closes on the *next* day: Friday 08:00-24:00 closes Saturday 00:00, and
closing "at hour 0 on Friday" would instead fire at the start of Friday and never after.
"""

from __future__ import annotations

from dataclasses import dataclass

WEEK = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Moment:
    """An hour (0-23) on some week days: one cron schedule."""

    hour: int
    days: tuple[str, ...]

    @property
    def week_day(self) -> str:
        """The days as a cron day-of-week list, e.g. `MON,TUE`."""
        return ",".join(self.days)


def next_day(day: str) -> str:
    return WEEK[(WEEK.index(day) + 1) % len(WEEK)]


def window_moments(start_hour: int, end_hour: int, days: tuple[str, ...]) -> tuple[Moment, Moment]:
    """(opening, closing) of a daily window that opens at `start_hour` on each of `days`.

    `end_hour` may be 24 (midnight at the end of the day) or at most `start_hour` (the
    window runs past midnight); either way the closing falls on the day after each day.
    """
    if not 0 <= start_hour < HOURS_PER_DAY or not 0 <= end_hour <= HOURS_PER_DAY or start_hour == end_hour:
        raise ValueError(f"active hours {start_hour}-{end_hour}: hours are 0-24 and the window cannot be empty")
    unknown = [d for d in days if d not in WEEK]
    if not days or unknown:
        raise ValueError(f"active days {days!r}: use {', '.join(WEEK)}")
    ordered = tuple(d for d in WEEK if d in days)
    opening = Moment(start_hour, ordered)
    if end_hour > start_hour and end_hour < HOURS_PER_DAY:
        return opening, Moment(end_hour, ordered)
    closing_days = {next_day(d) for d in ordered}
    return opening, Moment(end_hour % HOURS_PER_DAY, tuple(d for d in WEEK if d in closing_days))
