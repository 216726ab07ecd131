"""How many instances an endpoint variant runs, hour by hour over a week.

Application Auto Scaling gives a floor and a ceiling (MinCapacity/MaxCapacity) and
scheduled actions that move both at cron times. Within those bounds target tracking adds
instances when load needs them. The expected count for a slice of the week is therefore
clamp(instances the assumed load needs, floor, ceiling); averaged over the week it gives
the instance-hours per day that the estimate bills.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ownllm.cost.basis import CapacityKind, CapacityRule
from ownllm.cost.basis import ScheduledAction as ScheduledAction  # re-exported: the graph builds them here

MINUTES_PER_WEEK = 7 * 24 * 60
DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# AWS cron day-of-week numbers: 1=SUN .. 7=SAT.
_AWS_DOW = {1: 6, 2: 0, 3: 1, 4: 2, 5: 3, 6: 4, 7: 5}


class ScheduleError(ValueError):
    pass


def _expand(field_text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> list[int]:
    if any(mark in field_text.upper() for mark in ("L", "W", "#")) and not (
        names and all(part.strip().upper() in names or "-" in part for part in field_text.split(","))
    ):
        # AWS cron's L (last), W (nearest weekday) and # (nth weekday of the month) depend on
        # the month, so they have no weekly average.
        raise ScheduleError(f"{field_text!r} depends on the month (L, W or #), not the week")
    values: set[int] = set()
    for part in field_text.split(","):
        part = part.strip().upper()
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = _value(step_text, None)
            if step < 1:
                raise ScheduleError(f"{field_text!r}: the step must be at least 1")
        if part in ("*", "?"):
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = hi if step != 1 else start
        if start > end:  # wrap-around ranges such as FRI-MON
            values.update(range(start, hi + 1, step))
            values.update(range(lo, end + 1, step))
        else:
            values.update(range(start, end + 1, step))
    if not values or min(values) < lo or max(values) > hi:
        raise ScheduleError(f"{field_text!r} is out of range {lo}..{hi}")
    return sorted(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text in names:
        return names[text]
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a number{' or a day name' if names else ''}")
    return int(text)


_DOW_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_CRON_RE = re.compile(r"^cron\((.+)\)$")


def cron_minutes_of_week(expression: str) -> list[int]:
    """Minutes since Monday 00:00 at which an AWS cron() expression fires in a week.

    Only weekly-repeating expressions can be averaged over a week: day-of-month, month
    and year must be '*' or '?'.
    """
    m = _CRON_RE.match(expression.strip())
    if not m:
        raise ScheduleError(f"{expression!r} is not a cron() expression (at() and rate() are not weekly)")
    fields = m.group(1).split()
    if len(fields) != 6:
        raise ScheduleError(f"{expression!r}: AWS cron needs 6 fields")
    minute, hour, dom, month, dow, year = fields
    if dom not in ("*", "?") or month != "*" or year not in ("*", "?"):
        raise ScheduleError(f"{expression!r} does not repeat weekly")
    minutes = _expand(minute, 0, 59)
    hours = _expand(hour, 0, 23)
    days = [_AWS_DOW[d] for d in _expand(dow, 1, 7, _DOW_NAMES)]
    return sorted(d * 1440 + h * 60 + mi for d in days for h in hours for mi in minutes)


@dataclass(frozen=True)
class Segment:
    start: int  # minute of week
    end: int
    low: int
    high: int

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 60


@dataclass
class Capacity:
    """Floor and ceiling of one variant's instance count across a week."""

    segments: list[Segment]
    scaling: str  # "fixed", "alternatives", "autoscaling", "scheduled"
    rule: CapacityRule
    ignored_actions: list[str] = field(default_factory=list)  # why each was left out (ScheduleError)

    @classmethod
    def fixed(cls, count: int) -> Capacity:
        return cls(
            [Segment(0, MINUTES_PER_WEEK, count, count)], "fixed", CapacityRule(CapacityKind.FIXED, count, count)
        )

    @classmethod
    def alternatives(cls, low: int, high: int) -> Capacity:
        """A count an intrinsic chooses at deploy time (Fn::If): somewhere in low..high all week."""
        return cls(
            [Segment(0, MINUTES_PER_WEEK, low, high)],
            "alternatives",
            CapacityRule(CapacityKind.ALTERNATIVES, low, high),
        )

    @property
    def min_count(self) -> int:
        return min(s.low for s in self.segments)

    @property
    def max_count(self) -> int:
        return max(s.high for s in self.segments)

    def instance_hours_per_day(self, needed_at: Callable[[int, int], int]) -> float:
        """Average instance-hours per day when `needed_at(weekday, hour)` instances are wanted."""
        total = 0.0
        for seg in self.segments:
            for start, end in _split_by_hour(seg.start, seg.end):
                weekday, hour = divmod(start // 60, 24)
                count = min(max(needed_at(weekday, hour), seg.low), seg.high)
                total += count * (end - start) / 60
        return total / 7

    def bound_hours_per_day(self, high: bool) -> float:
        return sum((s.high if high else s.low) * s.hours for s in self.segments) / 7

    def weekly_bounds(self) -> list[tuple[int, int, float]]:
        """(floor, ceiling, hours/week) for each distinct pair of bounds, highest ceiling first."""
        by_bounds: dict[tuple[int, int], float] = {}
        for s in self.segments:
            by_bounds[(s.low, s.high)] = by_bounds.get((s.low, s.high), 0.0) + s.hours
        return [(low, high, hours) for (low, high), hours in sorted(by_bounds.items(), key=lambda kv: -kv[0][1])]


def _split_by_hour(start: int, end: int) -> Iterator[tuple[int, int]]:
    t = start
    while t < end:
        nxt = min(end, (t // 60 + 1) * 60)
        yield t, nxt
        t = nxt


def capacity_from_target(min_capacity: int, max_capacity: int, actions: list[ScheduledAction]) -> Capacity:
    """The weekly floor/ceiling timeline of a scalable target with scheduled actions."""
    ignored: list[str] = []
    events: list[tuple[int, int, ScheduledAction]] = []
    for order, action in enumerate(actions):
        try:
            for minute in cron_minutes_of_week(action.schedule):
                events.append((minute, order, action))
        except ScheduleError as exc:
            ignored.append(str(exc))
    if not events:
        cap = Capacity(
            [Segment(0, MINUTES_PER_WEEK, min_capacity, max(min_capacity, max_capacity))],
            "autoscaling",
            CapacityRule(CapacityKind.AUTOSCALING, min_capacity, max_capacity),
            ignored,
        )
        return cap
    events.sort(key=lambda e: (e[0], e[1]))
    low, high = min_capacity, max_capacity

    def apply(low: int, high: int, action: ScheduledAction) -> tuple[int, int]:
        if action.min_capacity is not None:
            low = action.min_capacity
        if action.max_capacity is not None:
            high = action.max_capacity
        return low, max(low, high)

    # The week repeats: the state at Monday 00:00 is what last week's actions left.
    for _, _, action in events:
        low, high = apply(low, high, action)
    segments: list[Segment] = []
    t = 0
    for minute, _, action in events:
        if minute > t:
            segments.append(Segment(t, minute, low, high))
        low, high = apply(low, high, action)
        t = minute
    if t < MINUTES_PER_WEEK:
        segments.append(Segment(t, MINUTES_PER_WEEK, low, high))
    rule = CapacityRule(CapacityKind.SCHEDULED, min_capacity, max_capacity, actions=tuple(actions))
    return Capacity(segments, "scheduled", rule, ignored)
