"""The batch job's arithmetic: hours from tokens/s, instances x hours x price, the per-request
lines, the API's bill and its batch discount, and batch run's default concurrency."""

from __future__ import annotations

import pytest

from ownllm.batch.job import (
    BATCH_DISCOUNT,
    LAMBDA_ARCHITECTURE,
    ApiBill,
    Job,
    JobError,
    RequestPrices,
    Serving,
    api_bill,
    default_concurrency,
    instances_within,
    parse_duration_hours,
    request_prices,
    run_cost,
    servings,
    speed_floor,
)
from ownllm.cost.breakeven import ApiPrice
from ownllm.cost.catalog import load_catalog
from ownllm.perf.hardware import for_instance
from ownllm.perf.models import resolve
from ownllm.perf.predict import saturation

PRICES = RequestPrices(
    apigateway_usd_per_m=3.5,
    lambda_usd_per_m=0.2,
    lambda_usd_per_gb_s=0.0000133334,
    lambda_memory_mb=128,
    lambda_timeout_s=28,
)
G5 = Serving("ml.g5.2xlarge", concurrency=18, tokens_per_s=250.0, request_s=14.8, hourly_usd=1.515, price_source="t")
JOB = Job(requests=1_000_000, input_tokens=500_000_000, output_tokens=200_000_000)


def test_the_job_takes_its_output_tokens_over_the_instances_throughput():
    """hours = 200,000,000 tokens / (2 instances x 250 tokens/s) / 3600 = 400,000 s = 111.111 h.
    instances: 2 x 111.111 h x $1.515/h = $336.67.
    API Gateway: 1,000,000 requests x $3.50/1M = $3.50. Lambda requests: 1,000,000 x $0.20/1M = $0.20.
    Lambda duration: (14.8 s in the engine + 0.2 s overhead) = 15 s x 128/1024 GB = 1.875 GB-s per request,
    x 1,000,000 = 1,875,000 GB-s x $0.0000133334 = $25.000125. Total $365.366792."""
    run = run_cost(JOB, G5, 2, PRICES)

    assert run.hours == pytest.approx(111.111111, rel=1e-6)
    assert run.instance_usd == pytest.approx(336.666667, rel=1e-6)
    assert run.apigateway_usd == pytest.approx(3.5)
    assert run.lambda_requests_usd == pytest.approx(0.2)
    assert run.lambda_s == pytest.approx(15.0)
    assert run.lambda_duration_usd == pytest.approx(25.000125)
    assert run.own_usd == pytest.approx(365.366792, rel=1e-6)


def test_the_instance_bill_does_not_depend_on_how_many_instances_share_the_job():
    """1 instance: 222.222 h x $1.515 = $336.67; 4 instances: 4 x 55.556 h x $1.515 = $336.67."""
    one, four = run_cost(JOB, G5, 1, PRICES), run_cost(JOB, G5, 4, PRICES)

    assert (one.hours, four.hours) == (pytest.approx(222.222222), pytest.approx(55.555556))
    assert one.instance_usd == pytest.approx(four.instance_usd)


def test_a_request_longer_than_the_lambda_timeout_is_billed_at_the_timeout():
    """40 s in the engine + 0.2 s > 28 s: billed 28 s x 0.125 GB x 1,000,000 = 3,500,000 GB-s x $0.0000133334 = $46.6669."""
    slow = Serving("ml.g5.2xlarge", 18, 250.0, 40.0, 1.515, "t")

    run = run_cost(JOB, slow, 1, PRICES)

    assert run.lambda_s == 28
    assert run.lambda_duration_usd == pytest.approx(46.6669)


def test_within_picks_the_fewest_instances_that_finish_in_time():
    """One instance: 200,000,000 / 250 = 800,000 s = 222.2 h. In 24 h: ceil(222.2 / 24) = ceil(9.26) = 10.
    In 222.3 h: 1. In exactly 111.111... h (400,000 s): 2, not 3."""
    assert instances_within(JOB, G5, 24) == 10
    assert instances_within(JOB, G5, 222.3) == 1
    assert instances_within(JOB, G5, 400_000 / 3600) == 2


def test_the_api_bills_every_token_and_half_in_batch():
    """The published job: 4,000,000 prompts x 1,000 in = 4,000,000,000 x $0.22/1M = $880;
    x 200 out = 800,000,000 x $0.22/1M = $176. $1,056 on demand; 50% off in batch: $528."""
    job = Job(4_000_000, 4_000_000_000, 800_000_000)

    bill = api_bill(job, ApiPrice(0.22, 0.22, "Bedrock Llama 3.1 8B", "catalog"))

    assert bill == ApiBill("Bedrock Llama 3.1 8B", "catalog", 0.22, 0.22, pytest.approx(1056.0))
    assert bill.batch_usd == pytest.approx(528.0)
    assert BATCH_DISCOUNT == 0.5


@pytest.mark.parametrize(("text", "hours"), [("24h", 24), ("90m", 1.5), ("2d", 48), ("1.5h", 1.5), (" 36H ", 36)])
def test_within_takes_minutes_hours_or_days(text, hours):
    assert parse_duration_hours(text) == hours


@pytest.mark.parametrize("text", ["24", "3x", "0h", "h", "-1h", ""])
def test_within_refuses_anything_else_naming_the_option(text):
    with pytest.raises(JobError) as caught:
        parse_duration_hours(text)

    assert str(caught.value) == f"--within {text!r}: must be a duration above zero like 24h, 90m or 2d"


def test_the_speed_floor_keeps_a_mean_request_inside_the_lambda_timeout():
    """200 output tokens in 28 s - 0.2 s overhead: 200 / 27.8 = 7.194 tokens/s."""
    assert speed_floor(Job(10, 10_000, 2_000), 28) == pytest.approx(7.194245)


def test_run_concurrency_is_saturation_times_instances_capped_by_the_rate():
    """18 per instance x 2 instances = 36; the rate keeps ceil(10 rps x (14.8 + 0.2) s) = 150 busy: 36.
    At 1 rps: ceil(1 x 15) = 15. Never above the CLI's cap."""
    assert default_concurrency(G5, 2, 10.0, 1024) == 36
    assert default_concurrency(G5, 2, 1.0, 1024) == 15
    assert default_concurrency(G5, 100, 1000.0, 1024) == 1024


def test_request_prices_come_from_the_catalog_for_the_arm64_lambda():
    """us-east-1: REST $3.50/1M, Lambda $0.20/1M and $0.0000133334 per GB-s on arm64 (economics.md)."""
    prices = request_prices(load_catalog(), "us-east-1", 256, 28)

    assert (prices.apigateway_usd_per_m, prices.lambda_usd_per_m, prices.lambda_usd_per_gb_s) == (
        3.5,
        0.2,
        0.0000133334,
    )
    assert prices.lambda_memory_mb == 256


def test_the_priced_lambda_architecture_is_the_one_the_stack_deploys():
    from stacks.api import ARCHITECTURE

    assert ARCHITECTURE.name == LAMBDA_ARCHITECTURE


def test_instance_types_are_ranked_by_cost_per_output_token_from_the_performance_model():
    """Each option's throughput is the model's saturation within the Lambda's speed floor
    (200 / 27.8 tokens/s), at the deployed engine's batch cap (max_batch_size 64)."""
    model = resolve("Qwen/Qwen2.5-7B-Instruct")
    job = Job(4_000_000, 4_000_000_000, 800_000_000)

    fitting, unfit = servings(
        model, job, load_catalog(), "us-east-1", precision="bf16", engine="vllm", max_batch=64, lambda_timeout_s=28
    )

    costs = [s.hourly_usd / s.tokens_per_s for s in fitting]
    assert costs == sorted(costs)
    g5 = next(s for s in fitting if s.instance_type == "ml.g5.2xlarge")
    expected = saturation(
        model, for_instance("ml.g5.2xlarge"), "bf16", "vllm", 1000, 200, min_tokens_per_s=200 / 27.8, max_batch=64
    )
    assert (g5.concurrency, g5.tokens_per_s) == expected
    assert g5.hourly_usd == 1.515
    assert 0 < g5.request_s < 28 - 0.2
    assert all(not o.fits for o in unfit)


def test_an_unconfirmed_catalog_price_is_flagged_as_such():
    """The catalog writes 'estimate' into the source of derived or unconfirmed prices (ml.g6e.xlarge's $2.61/h)."""
    catalog = load_catalog()
    model = resolve("Qwen/Qwen2.5-7B-Instruct")
    fitting, _ = servings(
        model,
        Job(10, 10_000, 2_000),
        catalog,
        "us-east-1",
        precision="bf16",
        engine="vllm",
        max_batch=64,
        lambda_timeout_s=28,
    )
    flags = {s.instance_type: s.price_is_estimate for s in fitting}

    assert (flags["ml.g6e.xlarge"], flags["ml.g5.2xlarge"]) == (True, False)
