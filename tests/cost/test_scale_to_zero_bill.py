"""The endpoint line of a scale-to-zero deploy (min_instances 0), priced from the kit's real synths
(tests/cost/golden), worked by hand with ownllm/scale_to_zero.py's model."""

from __future__ import annotations

import math

import pytest

from .test_real_synths import estimate_of

PRICE = 1.515  # ml.g5.2xlarge, us-east-1, $/h (bundled catalog)
ENDPOINT = "OwnLlm-Serving/LlmEndpoint0550A83E"


def _endpoint(name: str, tmp_path):
    estimate = estimate_of(name, tmp_path)
    [line] = [i for i in estimate.items if f"{i.stack}/{i.logical_id}" == ENDPOINT]
    return estimate, line


def test_business_hours_at_1000_requests_a_day_bill_the_window_an_idle_tail_and_one_wake(tmp_path):
    """1,000 requests/day (7,000 a week) over 08:00-20:00 MON-FRI: 1,400 per weekday, r = 116.7/h.
    Each weekday: 1,399 gaps x (1 - e^(-116.7 x 25/60))/116.7 h = 11.99 h + 25/60 h tail, capped at
    12 h + 25 min = 12.417 h; + 1 wake x 6.5 min = 0.108 h -> 12.525 h. Weekly average x 5/7 = 8.946 h/day
    x $1.515/h = $13.55/day, against 24 h x $1.515 = $36.36 always on."""
    rate = 1400 / 12
    per_weekday = min(1399 * -math.expm1(-rate * 25 / 60) / rate + 25 / 60, 12 + 25 / 60) + 6.5 / 60
    hours = per_weekday * 5 / 7
    _, line = _endpoint("scale-to-zero-business-hours", tmp_path)
    [usage] = line.components
    assert usage.quantity_per_day == pytest.approx(hours, rel=1e-4)
    assert line.daily_usd == pytest.approx(hours * PRICE, abs=0.01)
    assert line.daily_usd == pytest.approx(13.55, abs=0.01)
    assert (usage.min_quantity_per_day, usage.max_quantity_per_day) == pytest.approx((12 * 5 / 7, 48.0))


def test_the_same_traffic_around_the_clock_never_idles_long_enough_to_scale_in(tmp_path):
    """1,000 requests over 24 h: gaps average 86 s; P(gap > 15 min) = e^(-10.4): on all day, $36.36."""
    _, line = _endpoint("scale-to-zero", tmp_path)
    assert line.daily_usd == pytest.approx(24 * PRICE, abs=0.01)
    assert line.components[0].min_quantity_per_day == 0.0
