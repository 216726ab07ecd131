"""Expected instance-hours and cold starts of an endpoint that scales to zero, worked by hand."""

from __future__ import annotations

import math

import pytest

from ownllm.scale_to_zero import WakeAssumptions, expected_usage


def usage(requests_per_day: float, hours: float, busy: int = 1, max_instances: int = 2):
    return expected_usage(
        requests_per_day=requests_per_day,
        active_hours_per_day=hours,
        instances_when_busy=busy,
        max_instances=max_instances,
    )


def test_business_hours_traffic_bills_the_window_plus_one_idle_tail_and_one_wake():
    """1,000 requests over 12 h: r = 83.3/h, gaps average 43 s, so it never idles 15 min by day.
    Billed: 999 gaps x (1 - e^(-83.3 x 25/60)) / 83.3 h = 11.99 h, + the last tail 25/60 h = 12.41 h,
    capped at 12 h + 25 min = 12.417 h; + 1 cold start x 6.5 min = 0.108 h -> 12.52 h (vs 24 h always on)."""
    u = usage(1000, 12)
    assert u.cold_starts_per_day == pytest.approx(1 + 999 * math.exp(-1000 / 12 * 0.25), rel=1e-12)
    assert u.instance_hours_per_day == pytest.approx(999 / (1000 / 12) + 25 / 60 + 6.5 / 60, abs=0.005)
    assert u.wait_s_per_cold_start == 450.0


def test_the_same_traffic_around_the_clock_saves_nothing():
    """1,000 requests over 24 h: gaps average 86 s; P(gap > 15 min) = e^(-41.7/4) = 3e-5: always on."""
    assert usage(1000, 24).instance_hours_per_day == pytest.approx(24.0)


def test_sparse_traffic_pays_for_idle_tails_and_a_wake_per_request():
    """10 requests over 10 h: r = 1/h. Gaps: 9 x (1 - e^(-25/60)) = 9 x 0.3408 = 3.067 h, + 25/60 h;
    cold starts 1 + 9 x e^(-15/60) = 1 + 7.009 = 8.009, each billed 6.5 min = 0.868 h. Total 4.351 h."""
    u = usage(10, 10)
    assert u.cold_starts_per_day == pytest.approx(1 + 9 * math.exp(-0.25), rel=1e-9)
    expected = 9 * -math.expm1(-25 / 60) + 25 / 60 + u.cold_starts_per_day * 6.5 / 60
    assert u.instance_hours_per_day == pytest.approx(expected, rel=1e-9)
    assert u.instance_hours_per_day == pytest.approx(4.351, abs=0.001)


def test_no_traffic_bills_nothing_and_the_range_runs_to_every_instance_all_day():
    u = usage(0, 12, max_instances=3)
    assert (u.instance_hours_per_day, u.cold_starts_per_day) == (0.0, 0.0)
    assert (u.min_instance_hours_per_day, u.max_instance_hours_per_day) == (0.0, 72.0)


def test_a_load_that_needs_two_instances_bills_the_window_twice():
    assert usage(100_000, 12, busy=2, max_instances=4).instance_hours_per_day == pytest.approx(
        2 * (12 + 25 / 60) + 6.5 / 60, abs=0.01
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_day": -1.0}, "requests_per_day: -1.0 must be a finite number >= 0"),
        ({"requests_per_day": math.nan}, "requests_per_day: nan must be a finite number >= 0"),
        ({"active_hours_per_day": 0.0}, "active_hours_per_day: 0.0 must be above 0 and at most 24"),
        ({"active_hours_per_day": 25.0}, "active_hours_per_day: 25.0 must be above 0 and at most 24"),
        ({"instances_when_busy": 0}, "instances_when_busy and max_instances must be at least 1"),
    ],
)
def test_bad_traffic_is_refused_naming_the_value(kwargs, message):
    args = {"requests_per_day": 10.0, "active_hours_per_day": 8.0, "instances_when_busy": 1, "max_instances": 1}
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        expected_usage(**{**args, **kwargs})


def test_assumptions_are_checked():
    with pytest.raises(ValueError, match="billed_wake_min 9 cannot exceed wake_min 7.5"):
        WakeAssumptions(billed_wake_min=9)
    with pytest.raises(ValueError, match="release_min: inf must be a finite number of minutes"):
        WakeAssumptions(release_min=math.inf)
