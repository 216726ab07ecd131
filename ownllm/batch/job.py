"""What a batch job costs before it is sent: hours on the endpoint from the performance model,
the per-request lines of the API in front of it, and the per-token API's bill for the same tokens.

A batch goes through ownllm's synchronous API (API Gateway -> Lambda -> SageMaker), so each
request must finish inside the Lambda's timeout: the engine is run at its saturation
concurrency *within that speed floor*, and the job takes output tokens / (instances x tokens/s).
Instances are billed for the hours the job runs (fractional hours; the endpoint's start-up and
idle time are not counted). Everything here is pure arithmetic over the performance model
(ownllm.perf) and the price catalog (ownllm.cost.catalog); words are the CLI's business.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ownllm.cost.breakeven import ApiPrice
from ownllm.cost.catalog import Catalog
from ownllm.cost.usage import LAMBDA_OVERHEAD_S
from ownllm.perf.hardware import for_instance
from ownllm.perf.models import ModelArch
from ownllm.perf.plan import Option, Traffic, plan
from ownllm.perf.predict import predict, saturation

# Batch APIs bill half the synchronous per-token price: OpenAI "50% cost discount vs. the
# synchronous APIs" (https://help.openai.com/en/articles/9197833-batch-api-faq); Amazon Bedrock
# batch inference "50% cost savings vs on-demand", 24-hour window
# (https://docs.aws.amazon.com/bedrock/latest/userguide/capacity-limits-cost-optimization.html).
# Bedrock offers batch for some models only; the figure is the published discount where it does.
BATCH_DISCOUNT = 0.5
# The forwarder Lambda runs on arm64 (stacks/api.py ARCHITECTURE; tests/batch/test_job.py checks it).
LAMBDA_ARCHITECTURE = "arm64"
# Lambda bills duration in GB-seconds of configured memory; 128 MB counts as 0.125 GB (the worked
# bill in shared/reference/economics.md: 5 s x 0.125 GB x $0.0000166667).
MB_PER_GB = 1024
CHEAPEST_SHOWN = 3
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])", re.IGNORECASE)
_HOURS_PER_UNIT = {"m": 1 / 60, "h": 1.0, "d": 24.0}


class JobError(ValueError):
    """A job that cannot be estimated; one line naming the option or setting."""


@dataclass(frozen=True)
class Job:
    requests: int
    input_tokens: int  # the whole job's
    output_tokens: int  # the whole job's (the most the requests allow, for a file)

    @property
    def mean_input(self) -> int:
        return max(1, round(self.input_tokens / self.requests)) if self.requests else 1

    @property
    def mean_output(self) -> int:
        return max(1, round(self.output_tokens / self.requests)) if self.requests else 1


@dataclass(frozen=True)
class RequestPrices:
    """The per-request lines' unit prices and the Lambda's shape."""

    apigateway_usd_per_m: float  # REST API requests
    lambda_usd_per_m: float  # Lambda invocations
    lambda_usd_per_gb_s: float  # Lambda duration
    lambda_memory_mb: int
    lambda_timeout_s: float
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Serving:
    """One instance type serving this job's requests, per instance, at saturation within the floor."""

    instance_type: str
    concurrency: int
    tokens_per_s: float
    request_s: float  # one request's time in the engine at that concurrency
    hourly_usd: float
    price_source: str
    note: str = ""

    @property
    def price_is_estimate(self) -> bool:
        """The catalog marks derived or unconfirmed prices 'estimate' in their source."""
        return "estimate" in self.price_source.lower()

    @property
    def usd_per_m_output(self) -> float:
        return self.hourly_usd / (self.tokens_per_s * 3600) * 1e6


@dataclass(frozen=True)
class Run:
    """The job on `instances` instances of one type."""

    serving: Serving
    instances: int
    hours: float
    instance_usd: float
    lambda_s: float  # billed Lambda time per request
    apigateway_usd: float
    lambda_requests_usd: float
    lambda_duration_usd: float

    @property
    def own_usd(self) -> float:
        return self.instance_usd + self.apigateway_usd + self.lambda_requests_usd + self.lambda_duration_usd


@dataclass(frozen=True)
class ApiBill:
    label: str
    source: str
    input_usd_per_m: float
    output_usd_per_m: float
    usd: float

    @property
    def batch_usd(self) -> float:
        return self.usd * (1 - BATCH_DISCOUNT)


def parse_duration_hours(text: str) -> float:
    """'24h', '90m', '2d' (also '1.5h') -> hours; JobError otherwise."""
    match = _DURATION_RE.fullmatch(text.strip())
    hours = float(match.group(1)) * _HOURS_PER_UNIT[match.group(2).lower()] if match else 0.0
    if hours <= 0:
        raise JobError(f"--within {text!r}: must be a duration above zero like 24h, 90m or 2d")
    return hours


def speed_floor(job: Job, lambda_timeout_s: float) -> float:
    """Per-request decode speed (tokens/s) at which a mean request still ends inside the Lambda's timeout."""
    return job.mean_output / (lambda_timeout_s - LAMBDA_OVERHEAD_S)


def servings(
    model: ModelArch,
    job: Job,
    catalog: Catalog,
    region: str,
    *,
    precision: str,
    engine: str,
    max_batch: int,
    lambda_timeout_s: float,
) -> tuple[list[Serving], list[Option]]:
    """Every priced instance type that can serve the job, cheapest per output token first, and
    the ones that cannot (with plan's reason). Reuses ownllm.perf.plan's fit, saturation and price."""
    traffic = Traffic(
        requests_per_day=job.requests,
        input_tokens=job.mean_input,
        output_tokens=job.mean_output,
        min_tokens_per_s=speed_floor(job, lambda_timeout_s),
    )
    options = plan(model, traffic, catalog, region, precision, engine, max_batch=max_batch)
    fitting = [_serving(model, job, o, precision, engine, max_batch) for o in options if o.fits]
    fitting.sort(key=lambda s: (s.usd_per_m_output, s.instance_type))
    return fitting, [o for o in options if not o.fits]


def _serving(model: ModelArch, job: Job, option: Option, precision: str, engine: str, max_batch: int) -> Serving:
    request_s = _request_s(
        model, option.instance_type, job, option.saturation_concurrency, precision, engine, max_batch
    )
    return Serving(
        option.instance_type,
        option.saturation_concurrency,
        option.instance_output_tokens_per_s,
        request_s,
        option.hourly_usd,
        option.price_source,
        option.note,
    )


def _precision_on(instance_type: str, precision: str) -> str:
    """As plan does: a bf16 checkpoint runs in fp16 on a GPU without bf16 (same size and speed)."""
    return "fp16" if precision == "bf16" and not for_instance(instance_type).gpu.bf16 else precision


def _request_s(
    model: ModelArch, instance_type: str, job: Job, concurrency: int, precision: str, engine: str, max_batch: int
) -> float:
    """One mean request's time in the engine at `concurrency`: first token, then the rest at its decode speed."""
    hw = for_instance(instance_type)
    p = predict(
        model,
        hw,
        _precision_on(instance_type, precision),
        engine,
        job.mean_input,
        job.mean_output,
        concurrency,
        max_batch=max_batch,
    )
    return p.time_to_first_token_s + (job.mean_output - 1) / p.per_request_tokens_per_s


def instances_within(job: Job, serving: Serving, within_hours: float) -> int:
    """The fewest instances that generate the job's output tokens in `within_hours`."""
    return max(1, math.ceil(job.output_tokens / (serving.tokens_per_s * within_hours * 3600) - 1e-9))


def run_cost(job: Job, serving: Serving, instances: int, prices: RequestPrices) -> Run:
    """Hours = output tokens / (instances x tokens/s); instances x hours x price; plus per-request lines."""
    hours = job.output_tokens / (instances * serving.tokens_per_s) / 3600
    lambda_s = min(serving.request_s + LAMBDA_OVERHEAD_S, prices.lambda_timeout_s)
    gb_s = job.requests * lambda_s * prices.lambda_memory_mb / MB_PER_GB
    return Run(
        serving=serving,
        instances=instances,
        hours=hours,
        instance_usd=instances * hours * serving.hourly_usd,
        lambda_s=lambda_s,
        apigateway_usd=job.requests * prices.apigateway_usd_per_m / 1e6,
        lambda_requests_usd=job.requests * prices.lambda_usd_per_m / 1e6,
        lambda_duration_usd=gb_s * prices.lambda_usd_per_gb_s,
    )


def request_prices(catalog: Catalog, region: str, lambda_memory_mb: int, lambda_timeout_s: float) -> RequestPrices:
    items = ("apigateway.rest.requests", "lambda.requests", f"lambda.duration:{LAMBDA_ARCHITECTURE}")
    found = [catalog.get(item, region) for item in items]
    missing = [item for item, price in zip(items, found, strict=True) if price is None]
    if missing:
        raise JobError(f"the price catalog lacks {', '.join(missing)}; add them (ownllm prices refresh)")
    apigw, requests, duration = (p for p in found if p is not None)
    return RequestPrices(
        apigw.usd,
        requests.usd,
        duration.usd,
        lambda_memory_mb,
        lambda_timeout_s,
        tuple(f"{p.item}: {p.source} ({p.region}, {p.date})" for p in (apigw, requests, duration)),
    )


def api_bill(job: Job, price: ApiPrice) -> ApiBill:
    usd = (job.input_tokens * price.input_usd_per_m + job.output_tokens * price.output_usd_per_m) / 1e6
    return ApiBill(price.label, price.source, price.input_usd_per_m, price.output_usd_per_m, usd)


def default_concurrency(serving: Serving, instances: int, rate_limit_rps: float, max_concurrency: int) -> int:
    """Requests in flight for `batch run`: the engine's saturation concurrency on every instance,
    but no more than the usage plan's rate keeps busy (Little's law: rate x time per request)."""
    by_rate = math.ceil(rate_limit_rps * (serving.request_s + LAMBDA_OVERHEAD_S))
    return max(1, min(serving.concurrency * instances, by_rate, max_concurrency))


def serving_on(
    model: ModelArch,
    instance_type: str,
    job: Job,
    *,
    precision: str,
    engine: str,
    max_batch: int,
    lambda_timeout_s: float,
) -> Serving | None:
    """The engine point on one instance type (unpriced), or None when the model does not fit or
    no concurrency keeps a request inside the Lambda's timeout."""
    floor = speed_floor(job, lambda_timeout_s)
    concurrency, tokens_per_s = saturation(
        model,
        for_instance(instance_type),
        _precision_on(instance_type, precision),
        engine,
        job.mean_input,
        job.mean_output,
        min_tokens_per_s=floor,
        max_batch=max_batch,
    )
    if concurrency == 0:
        return None
    request_s = _request_s(model, instance_type, job, concurrency, precision, engine, max_batch)
    return Serving(instance_type, concurrency, tokens_per_s, request_s, 0.0, "unpriced")
