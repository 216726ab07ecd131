"""`ownllm plan` prices each fitting option with min_instances 0 too (scale to zero)."""

from __future__ import annotations

import math

import pytest

from ownllm.cost.catalog import load_catalog
from ownllm.perf.models import resolve
from ownllm.perf.plan import Traffic, plan

QWEN = resolve("Qwen/Qwen2.5-7B-Instruct")


def _option(traffic: Traffic, instance_type: str = "ml.g5.2xlarge"):
    return next(o for o in plan(QWEN, traffic, load_catalog()) if o.instance_type == instance_type)


def test_business_hours_traffic_bills_the_window_an_idle_tail_and_one_wake_at_zero():
    """1,000 requests over 12 h: 999 gaps x (1 - e^(-83.3 x 25/60))/83.3 h = 11.99 h + 25/60 h tail,
    + 6.5 min of wake = 12.51 h x $1.515 = $18.96/day, against 24 h = $36.36 always on."""
    option = _option(Traffic(1000, 512, 256, active_hours=12))
    rate = 1000 / 12
    hours = 999 * -math.expm1(-rate * 25 / 60) / rate + 25 / 60 + 6.5 / 60
    assert option.daily_usd == pytest.approx(24 * 1.515)
    assert option.scale_to_zero_daily_usd == pytest.approx(hours * 1.515, rel=1e-6)
    assert option.scale_to_zero_cold_starts_per_day == pytest.approx(1.0, abs=1e-3)


def test_sparse_traffic_pays_for_a_wake_per_request_and_far_less_than_always_on():
    option = _option(Traffic(10, 512, 256, active_hours=10))
    assert option.scale_to_zero_cold_starts_per_day == pytest.approx(1 + 9 * math.exp(-0.25))
    assert option.scale_to_zero_daily_usd < option.daily_usd / 5


def test_an_option_that_does_not_fit_has_no_scale_to_zero_price():
    option = _option(Traffic(1000, 512, 256), "ml.g5.48xlarge")  # 28 heads do not split over 8 GPUs
    assert not option.fits
    assert (option.scale_to_zero_daily_usd, option.scale_to_zero_cold_starts_per_day) == (0.0, 0.0)
