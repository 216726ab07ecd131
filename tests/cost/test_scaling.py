"""The weekly instance timeline: AWS cron parsing and scheduled actions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownllm.cost.scaling import (
    MINUTES_PER_WEEK,
    ScheduledAction,
    ScheduleError,
    capacity_from_target,
    cron_minutes_of_week,
)


def test_weekday_mornings_fire_five_times_a_week_at_eight():
    assert cron_minutes_of_week("cron(0 8 ? * MON-FRI *)") == [d * 1440 + 8 * 60 for d in range(5)]


def test_aws_day_numbers_start_on_sunday():
    """AWS cron day-of-week 1 is SUN, 2 is MON (not ISO)."""
    assert cron_minutes_of_week("cron(30 6 ? * 2 *)") == [6 * 60 + 30]
    assert cron_minutes_of_week("cron(0 0 ? * 1 *)") == [6 * 1440]


def test_lists_steps_and_wrapping_ranges_expand():
    assert len(cron_minutes_of_week("cron(0/30 9,17 ? * FRI-MON *)")) == 4 * 2 * 2


@pytest.mark.parametrize("expr", ["rate(1 hour)", "at(2026-12-01T08:00:00)", "cron(0 8 1 * ? *)", "cron(0 8 ? *)"])
def test_schedules_that_do_not_repeat_weekly_are_refused(expr):
    with pytest.raises(ScheduleError):
        cron_minutes_of_week(expr)


def test_an_unparseable_action_is_noted_and_the_plain_bounds_remain():
    cap = capacity_from_target(1, 3, [ScheduledAction("rate(5 minutes)", 2, 2)])
    assert (cap.min_count, cap.max_count) == (1, 3)
    assert cap.ignored_actions == ["'rate(5 minutes)' is not a cron() expression (at() and rate() are not weekly)"]


def test_the_state_at_monday_midnight_is_what_friday_evening_left():
    cap = capacity_from_target(
        5, 5, [ScheduledAction("cron(0 8 ? * MON-FRI *)", 2, 2), ScheduledAction("cron(0 18 ? * MON-FRI *)", 1, 1)]
    )
    assert (cap.segments[0].start, cap.segments[0].low, cap.segments[0].high) == (0, 1, 1)
    assert sum(s.end - s.start for s in cap.segments) == MINUTES_PER_WEEK


@given(
    lo=st.integers(0, 4),
    extra=st.integers(0, 4),
    needed=st.integers(0, 12),
    hour_on=st.integers(0, 11),
    hour_off=st.integers(12, 23),
    active=st.integers(0, 6),
    idle=st.integers(0, 6),
)
def test_expected_instance_hours_always_lie_between_the_floor_and_the_ceiling(
    lo, extra, needed, hour_on, hour_off, active, idle
):
    cap = capacity_from_target(
        lo,
        lo + extra,
        [
            ScheduledAction(f"cron(0 {hour_on} ? * MON-FRI *)", active, active + extra),
            ScheduledAction(f"cron(0 {hour_off} ? * MON-FRI *)", idle, idle + extra),
        ],
    )
    hours = cap.instance_hours_per_day(lambda d, h: needed)
    assert cap.bound_hours_per_day(high=False) - 1e-9 <= hours <= cap.bound_hours_per_day(high=True) + 1e-9
