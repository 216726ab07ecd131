"""Break-even against a per-token API, capacity and GPU-memory fit."""

from __future__ import annotations

import pytest

from ownllm.cost.breakeven import ApiPrice, api_price, find_breakeven
from ownllm.cost.catalog import load_catalog
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.usage import Usage, usage_from_settings

from .builders import serving_resources


def test_breakeven_accounts_for_the_self_hosted_per_request_costs(cdk_out, settings):
    """API at $3 in / $15 out per 1M: (500 x 3 + 192 x 15) / 1M = $0.00438 per request.
    Owning per request: Lambda 0.0000106166875 + REST 0.0000035 + transfer 0.00000012312
    + processed 0.000000063488 + Lambda log 0.000000529589 + access log 0.0000002383151
    + model log 0.000000258 = $0.0000148329 + 0.000000496 = $0.0000153290 (logs incl. storage).
    Fixed: 1 x 24 x $2.03 = $48.72. Break-even = 48.72 / (0.00438 - 0.0000153290) = 11,162/day."""
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources()}), settings(api_input_usd_per_m=3, api_output_usd_per_m=15)
    )
    b = est.breakeven
    assert b["api_usd_per_request"] == pytest.approx(0.00438)
    assert b["breakeven_requests_per_day"] == pytest.approx(48.72 / (0.00438 - 0.0000153290), abs=2)
    assert b["api_daily_usd"] == pytest.approx(4.38)
    assert b["cheaper"] == "api"
    assert "breaks even at about 11,16" in b["summary"]


def test_owning_never_breaks_even_when_the_api_is_cheaper_per_request_than_owning():
    """API: 192 x $0.0001/1M = $0.0000000192 per request; owning: $10 + $0.001 per request."""
    usage = Usage(1000, 500, 192, 40.0, 320.0, "test")
    assert find_breakeven(lambda r: 10 + r * 1e-3, ApiPrice(0.0, 0.0001, "tiny", "test"), usage) is None


def test_breakeven_on_a_step_function_is_the_first_crossing():
    """Owning: $10 per 1,000 requests of capacity (steps) ; API $0.02 per request.
    At 500/day: own 10 vs api 10 -> break-even 500."""
    usage = Usage(1000, 1000, 0, 40.0, 320.0, "test")
    api = ApiPrice(20.0, 0.0, "step", "test")  # 1000 tokens x $20/1M = $0.02/request

    def own(requests_per_day: float) -> float:
        return 10.0 * max(1, -(-int(requests_per_day) // 1000))

    assert find_breakeven(own, api, usage) == pytest.approx(500, abs=1)


def test_the_default_api_is_the_same_class_of_open_model_with_a_dated_source(settings):
    catalog = load_catalog()
    small = api_price(settings(), catalog)  # Qwen2.5-7B
    large = api_price(settings(model_id="meta-llama/Llama-3.3-70B-Instruct", instance_type="ml.p4d.24xlarge"), catalog)
    assert (small.input_usd_per_m, small.output_usd_per_m) == (0.22, 0.22)
    assert (large.input_usd_per_m, large.output_usd_per_m) == (0.72, 0.72)
    assert "2025-01" in small.source and "Bedrock" in small.label


def test_settings_override_one_or_both_api_prices(settings):
    catalog = load_catalog()
    both = api_price(settings(api_input_usd_per_m=2.5, api_output_usd_per_m=10), catalog)
    one = api_price(settings(api_output_usd_per_m=10), catalog)
    assert (both.input_usd_per_m, both.output_usd_per_m, both.label) == (2.5, 10, "per-token API (settings)")
    assert (one.input_usd_per_m, one.output_usd_per_m) == (0.22, 10)


def test_default_instance_throughput_is_per_request_speed_times_target_concurrency(settings):
    usage = usage_from_settings(settings(generation_tokens_per_s=50, target_concurrency_per_instance=6))
    assert usage.instance_tokens_per_s == 300
    assert "50 tokens/s per request x 6 concurrent requests" in usage.instance_tokens_per_s_source
    assert usage_from_settings(settings(instance_tokens_per_s=900)).instance_tokens_per_s == 900


def test_capacity_says_how_many_instances_the_load_needs_and_whether_they_can_run(cdk_out, settings):
    """200,000 x 192 / 86,400 = 444 tokens/s; / 320 = 1.39 -> 2 needed; the fixed endpoint has 1;
    1 instance serves 320 x 86,400 / 192 = 144,000 requests/day."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings(requests_per_day=200_000))
    row = est.capacity[0]
    assert (row["instances_needed"], row["max_instances"], row["serves_assumed_load"]) == (2, 1, False)
    assert row["max_requests_per_day"] == 144_000


def test_traffic_confined_to_active_hours_needs_more_instances_while_it_arrives(settings):
    """100,000 requests over 12 h x 5 days = 60 h/week: 100,000 x 7 / 60 / 3,600 x 192 = 622 tokens/s -> 2."""
    usage = usage_from_settings(settings(requests_per_day=100_000, active_hours="08:00-20:00"))
    assert usage.active_hours_per_week == 60
    assert usage.instances_needed() == 2


def test_a_model_too_large_for_the_deployed_gpu_is_flagged(cdk_out, settings):
    """Llama 3.1 8B: 8e9 x 2 B x 1.2 = 17.9 GiB > 16 GiB on ml.g4dn.xlarge (template edited by hand)."""
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources("ml.g4dn.xlarge")}), settings(model_id="meta-llama/Llama-3.1-8B-Instruct")
    )
    row = est.capacity[0]
    assert row["model_fits"] is False and row["gpu_memory_gib"] == 16
    assert any("needs about 17.9 GiB" in w for w in est.warnings)


def test_the_chart_spans_the_assumed_traffic_and_the_breakeven(cdk_out, settings):
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources()}), settings(api_input_usd_per_m=3, api_output_usd_per_m=15)
    )
    points = est.chart["requests_per_day"]
    assert points[0] <= 1000 and points[-1] >= est.breakeven["breakeven_requests_per_day"]
    assert est.chart["api_daily_usd"][points.index(1000.0)] == pytest.approx(4.38)
