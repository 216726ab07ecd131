"""Break-even against a per-token API, capacity and GPU-memory fit."""

from __future__ import annotations

import pytest

from ownllm.cost.breakeven import ApiPrice, api_price, decide, find_breakeven, own_beyond_capacity
from ownllm.cost.catalog import load_catalog
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.usage import Usage, usage_from_settings
from ownllm.perf.hardware import for_instance
from ownllm.perf.predict import predict

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


def test_uncalibrated_speeds_come_from_the_performance_model_at_the_autoscaling_target(settings):
    """Qwen2.5-7B bf16 on ml.g5.4xlarge (one A10G), 500 in / 192 out: the model's figures at the
    target concurrency; a request's speed is 192 tokens / (TTFT + 191 x time per token)."""
    s = settings(generation_tokens_per_s=None, instance_tokens_per_s=None)
    usage = usage_from_settings(s)
    target = s.autoscaling_target
    p = predict(s.model_arch, for_instance("ml.g5.4xlarge"), "bf16", "vllm", 500, 192, concurrency=target, max_batch=64)
    assert usage.instance_tokens_per_s == pytest.approx(p.output_tokens_per_s)
    request_s = p.time_to_first_token_s + 191 / p.per_request_tokens_per_s
    assert usage.generation_tokens_per_s == pytest.approx(192 / request_s)
    assert usage.lambda_duration_s == pytest.approx(request_s + 0.2)
    assert usage.instance_tokens_per_s_source.startswith("model: ownllm.perf")


def test_calibrated_speeds_beat_the_model(settings):
    usage = usage_from_settings(settings(generation_tokens_per_s=31.5, instance_tokens_per_s=900))
    assert (usage.generation_tokens_per_s, usage.instance_tokens_per_s) == (31.5, 900)
    assert usage.instance_tokens_per_s_source == "settings.instance_tokens_per_s"


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
    """Llama 3.1 8B at fp16: 8.03e9 x 2 B = 16.06e9 B = 15.0 GiB of weights, more than the T4 of an
    ml.g4dn.xlarge leaves after the engine's runtime (template edited by hand)."""
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources("ml.g4dn.xlarge")}),
        settings(model_id="meta-llama/Llama-3.1-8B-Instruct", precision="fp16"),
    )
    row = est.capacity[0]
    assert (row["model_fits"], row["gpu_memory_gib"], row["weights_gib"], row["precision"]) == (False, 16, 15.0, "fp16")
    assert [w for w in est.warnings if "does not fit" in w] == [
        f"{row['stack']}/{row['endpoint']} (ml.g4dn.xlarge): {row['fit_problem']}"
    ]


def test_the_chart_spans_the_assumed_traffic_and_the_breakeven(cdk_out, settings):
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources()}), settings(api_input_usd_per_m=3, api_output_usd_per_m=15)
    )
    points = est.chart["requests_per_day"]
    assert points[0] <= 1000 and points[-1] >= est.breakeven["breakeven_requests_per_day"]
    assert est.chart["api_daily_usd"][points.index(1000.0)] == pytest.approx(4.38)


def _own(cap: int):
    """$10/day fixed + $24/day per instance (1,000 requests/day each, at least 1) + $0.001 per request;
    autoscaling stops at `cap` instances, as the estimator's bill does."""
    return lambda r: 10 + 24 * min(max(1, -(-int(r) // 1000)), cap) + 0.001 * r


def test_owning_never_breaks_even_when_a_fully_used_instance_costs_more_per_request_than_the_api():
    """Full load: ($24 + 1,000 x $0.001) / 1,000 requests = $25 per 1,000; the API 1,000 tokens x
    $20/1M = $0.02 per request = $20 per 1,000: no volume ever breaks even."""
    usage = Usage(1000, 1000, 0, 40.0, 320.0, "test")
    own = own_beyond_capacity(_own(2), 1000, 2, 24)
    d = decide(own, ApiPrice(20.0, 0.0, "api", "test"), usage, 1000, 1, 2)
    assert d.own_usd_per_1k_requests_at_full_load == pytest.approx(25)
    assert d.api_usd_per_1k_requests == pytest.approx(20)
    assert (d.never_breaks_even, d.breakeven_requests_per_day, d.beyond_capacity) == (True, None, False)


def test_the_breakeven_is_the_first_volume_where_the_api_costs_as_much_as_the_instances_it_needs():
    """API $0.031 per request. One instance: 0.031 r >= 34 + 0.001 r needs r >= 1,133 > 1,000, so not
    with one; two: 0.030 r >= 10 + 48 gives r = 1,933, served by 2 instances, which max_instances 2 allows."""
    usage = Usage(1000, 1000, 0, 40.0, 320.0, "test")
    d = decide(own_beyond_capacity(_own(2), 1000, 2, 24), ApiPrice(31.0, 0.0, "api", "test"), usage, 1000, 1, 2)
    assert d.breakeven_requests_per_day == pytest.approx(58 / 0.030, abs=1)
    assert (d.breakeven_instances, d.never_breaks_even, d.beyond_capacity) == (2, False, False)
    assert d.max_requests_per_day_at_max_capacity == 2000


def test_a_breakeven_that_needs_more_than_max_instances_is_beyond_capacity():
    """With max_instances 1 the bill stops at one instance; the curve adds the second ($24/day) the
    1,933 requests need, so the break-even stays 58 / 0.030 = 1,933, beyond what one instance serves."""
    usage = Usage(1000, 1000, 0, 40.0, 320.0, "test")
    own = own_beyond_capacity(_own(1), 1000, 1, 24)
    assert own(2000) == pytest.approx(10 + 2 * 24 + 2)
    d = decide(own, ApiPrice(31.0, 0.0, "api", "test"), usage, 1000, 1, 1)
    assert d.breakeven_requests_per_day == pytest.approx(58 / 0.030, abs=1)
    assert (d.breakeven_instances, d.beyond_capacity) == (2, True)


def test_a_load_beyond_max_instances_is_never_called_cheaper_to_own(cdk_out, settings):
    """One fixed ml.g5.4xlarge serves 320 x 86,400 / 192 = 144,000 requests/day; 200,000 need 2.
    The capped bill ($48.72 + per-request lines) is far below the API's 200,000 x $0.00438 = $876,
    but owning as configured does not serve that load."""
    est = estimate_cdk_out(
        cdk_out({"S": serving_resources()}),
        settings(requests_per_day=200_000, api_input_usd_per_m=3, api_output_usd_per_m=15),
    )
    b = est.breakeven
    assert (b["cheaper"], b["beyond_capacity"], b["assumed_load_within_capacity"]) == ("api", True, False)
    assert b["max_requests_per_day_at_max_capacity"] == 144_000
    assert b["own_daily_usd"] < b["api_daily_usd"]


def test_full_load_cost_per_1000_requests_is_one_instance_day_over_its_requests_plus_their_lines(cdk_out, settings):
    """ml.g5.4xlarge: $2.03 x 24 = $48.72/day for 144,000 requests = $0.338333 per 1,000; plus the
    per-request lines, $0.0000153290 per request (see the first test) = $0.015329 per 1,000:
    $0.353662. The API at $0.22 / $0.22 per 1M: (500 + 192) x 0.22 / 1M x 1,000 = $0.15224."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings())
    b = est.breakeven
    assert b["own_usd_per_1k_requests_at_full_load"] == pytest.approx(0.338333 + 0.015329, abs=2e-4)
    assert b["api_usd_per_1k_requests"] == pytest.approx(0.15224)
    assert (b["never_breaks_even"], b["breakeven_requests_per_day"], b["beyond_capacity"]) == (True, None, False)
    cheaper = [m for m in b["remedies"] if m["breaks_even"]]
    assert all(m["own_usd_per_1k_requests"] < 0.15224 for m in cheaper)
    assert {m["kind"] for m in b["remedies"]} <= {"instance_type", "precision"}


def test_the_own_cost_curve_steps_up_with_each_instance_and_marks_volumes_beyond_capacity(cdk_out, settings):
    """Autoscaling 1..2 of ml.g5.4xlarge, 144,000 requests/day each: steps at 144,000, 288,000 and
    432,000 (one past max_instances, priced with a third instance at $48.72/day and marked)."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources(autoscaling=(1, 2))}), settings())
    c = est.chart
    for k in (1, 2, 3):
        assert k * 144_000.0 in c["requests_per_day"]
    at = {r: (o, b) for r, o, b in zip(c["requests_per_day"], c["own_daily_usd"], c["beyond_capacity"], strict=True)}
    assert at[288_000.0][0] - at[144_000.0][0] == pytest.approx(48.72 + 144_000 * 0.0000153290, abs=0.02)
    assert at[432_000.0][0] - at[288_000.0][0] == pytest.approx(48.72 + 144_000 * 0.0000153290, abs=0.02)
    assert (at[288_000.0][1], at[432_000.0][1]) == (False, True)


def test_the_default_deployment_never_breaks_even_and_says_why_in_quantities(cdk_out, settings):
    """Qwen2.5-7B bf16 on ml.g5.2xlarge at the model's speeds (tps output tokens/s at the target):
    one instance serves tps x 86,400 / 250 requests a day for $1.515 x 24 = $36.36, so at full load
    $36.36 / (tps x 86,400 / 250) x 1,000 plus the per-request lines per 1,000 requests; the API
    (500 + 250) x $0.22 / 1M x 1,000 = $0.165 per 1,000. With the model's 464 tokens/s that is
    $0.2267 + ~$0.02 > $0.165: never."""
    s = settings(
        instance_type="ml.g5.2xlarge", avg_output_tokens=250, generation_tokens_per_s=None, instance_tokens_per_s=None
    )
    est = estimate_cdk_out(cdk_out({"S": serving_resources("ml.g5.2xlarge", autoscaling=(1, 2))}), s)
    b = est.breakeven
    per_instance = s.capacity.instance_tokens_per_s.value * 86_400 / 250
    assert b["requests_per_day_per_instance"] == round(per_instance)
    instance_share = 36.36 / per_instance * 1000
    assert instance_share < b["own_usd_per_1k_requests_at_full_load"] < instance_share + 0.03
    assert b["api_usd_per_1k_requests"] == pytest.approx(0.165)
    assert (b["never_breaks_even"], b["breakeven_requests_per_day"], b["cheaper"]) == (True, None, "api")
    assert all(m["own_usd_per_1k_requests"] < 0.165 for m in b["remedies"] if m["breaks_even"])


def test_a_million_requests_a_day_on_two_instances_is_not_called_cheaper_to_own(cdk_out, settings):
    """At $0.50 / $1.50 per 1M the API costs 1,000,000 x (500 x 0.5 + 250 x 1.5) / 1M = $625/day; two
    ml.g5.2xlarge serve about 2 x 160,000 requests a day, so the million is beyond capacity."""
    s = settings(
        instance_type="ml.g5.2xlarge",
        avg_output_tokens=250,
        generation_tokens_per_s=None,
        instance_tokens_per_s=None,
        requests_per_day=1_000_000,
        api_input_usd_per_m=0.5,
        api_output_usd_per_m=1.5,
    )
    est = estimate_cdk_out(cdk_out({"S": serving_resources("ml.g5.2xlarge", autoscaling=(1, 2))}), s)
    b = est.breakeven
    assert b["api_daily_usd"] == pytest.approx(625)
    assert (b["cheaper"], b["beyond_capacity"], b["assumed_load_within_capacity"]) == ("api", True, False)
    assert b["breakeven_requests_per_day"] <= b["max_requests_per_day_at_max_capacity"]
