"""Decide, not just add up: the per-token API alternative, the break-even volume, capacity.

The API side is priced per token for the same traffic. The default comparison is the
same class of open model bought per token (Amazon Bedrock's on-demand Llama 3.1 price
for the nearest size), dated and sourced in the catalog; settings api_input_usd_per_m
and api_output_usd_per_m override it with the API you would actually use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ownllm.cost.catalog import Catalog
from ownllm.cost.usage import Usage

if TYPE_CHECKING:
    from ownllm.settings import Settings

# (largest model size in billions of parameters, catalog key, label)
API_PRESETS = (
    (10.0, "llama3-1-8b", "Amazon Bedrock Llama 3.1 8B Instruct"),
    (100.0, "llama3-1-70b", "Amazon Bedrock Llama 3.1 70B Instruct"),
    (math.inf, "llama3-1-405b", "Amazon Bedrock Llama 3.1 405B Instruct"),
)
API_PRICE_REGION = "us-east-1"
MAX_REQUESTS_PER_DAY = 1e10


@dataclass(frozen=True)
class ApiPrice:
    input_usd_per_m: float
    output_usd_per_m: float
    label: str
    source: str

    def per_request(self, usage: Usage) -> float:
        return (usage.avg_input_tokens * self.input_usd_per_m + usage.avg_output_tokens * self.output_usd_per_m) / 1e6

    def daily(self, usage: Usage, requests_per_day: float | None = None) -> float:
        r = usage.requests_per_day if requests_per_day is None else requests_per_day
        return r * self.per_request(usage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_usd_per_m": self.input_usd_per_m,
            "output_usd_per_m": self.output_usd_per_m,
            "label": self.label,
            "source": self.source,
        }


class ApiQuery(Protocol):
    """What pricing the API reads: the model's size and optional explicit prices (Settings has them)."""

    @property
    def resolved_model_size_b(self) -> float: ...
    @property
    def api_input_usd_per_m(self) -> float | None: ...
    @property
    def api_output_usd_per_m(self) -> float | None: ...


def model_size_b(settings: ApiQuery) -> float:
    return settings.resolved_model_size_b


def api_price(settings: ApiQuery, catalog: Catalog) -> ApiPrice:
    size = model_size_b(settings)
    key, label = next((k, lbl) for limit, k, lbl in API_PRESETS if size <= limit)
    p_in = catalog.get(f"api.{key}:input", API_PRICE_REGION)
    p_out = catalog.get(f"api.{key}:output", API_PRICE_REGION)
    in_usd = settings.api_input_usd_per_m
    out_usd = settings.api_output_usd_per_m
    if in_usd is not None and out_usd is not None:
        return ApiPrice(
            float(in_usd),
            float(out_usd),
            "per-token API (settings)",
            "settings api_input_usd_per_m / api_output_usd_per_m",
        )
    if p_in is None or p_out is None:
        raise ValueError(
            f"the price catalog lacks api.{key}:input/output; set api_input_usd_per_m and api_output_usd_per_m"
        )
    source = f"{p_in.source}, {p_in.date}; chosen as the same class of open model as a {size:g}B model"
    if in_usd is not None or out_usd is not None:
        source = "settings, the other side from " + source
    return ApiPrice(
        float(in_usd) if in_usd is not None else p_in.usd,
        float(out_usd) if out_usd is not None else p_out.usd,
        label,
        source,
    )


def find_breakeven(own_daily: Callable[[float], float], api: ApiPrice, usage: Usage) -> float | None:
    """Smallest requests/day at which the API costs at least as much as owning; None if never.

    Owning is a step function of traffic (whole instances) plus per-request lines, so the
    crossing is found on a log grid and then refined by bisection.
    """
    a = api.per_request(usage)
    if a <= 0:
        return None

    def gap(r: float) -> float:
        return a * r - own_daily(r)

    if gap(0.0) >= 0:
        return 0.0
    low = 0.0
    r = 1.0
    while r <= MAX_REQUESTS_PER_DAY:
        if gap(r) >= 0:
            high = r
            for _ in range(60):
                mid = (low + high) / 2
                if gap(mid) >= 0:
                    high = mid
                else:
                    low = mid
                if high - low <= max(1.0, high * 1e-9):
                    break
            return high
        low = r
        r *= 10**0.125
    return None


def chart_points(center_values: list[float]) -> list[float]:
    """Round request volumes (decades) spanning the assumed traffic and the break-even."""
    finite = [v for v in center_values if v and v > 0]
    lo = min(finite) if finite else 1000.0
    hi = max(finite) if finite else 1000.0
    start = 10 ** max(1, math.floor(math.log10(lo)) - 1)
    end = 10 ** min(10, math.ceil(math.log10(hi)) + 1)
    points: list[float] = []
    r = start
    while r <= end and len(points) < 8:
        points.append(float(r))
        r *= 10
    return points


# ----- a capacity-honest decision ----------------------------------------------------------------


def instances_for(requests_per_day: float, per_instance: float) -> int:
    """Whole instances that serve `requests_per_day` when each serves `per_instance` a day."""
    return math.ceil(requests_per_day / per_instance - 1e-9) if per_instance > 0 else 0


def own_beyond_capacity(
    own_daily: Callable[[float], float], per_instance: float, max_instances: int, extra_instance_daily_usd: float
) -> Callable[[float], float]:
    """The own-cost curve past max_instances: the bill the estimator prices stops at max_instances
    (autoscaling cannot add more), so each instance the load would need beyond it is added at its
    daily price. Only this curve may be compared with the API: a capped bill looks cheap because
    it no longer serves the load."""

    def daily(requests_per_day: float) -> float:
        extra = max(0, instances_for(requests_per_day, per_instance) - max_instances)
        return own_daily(requests_per_day) + extra * extra_instance_daily_usd

    return daily


@dataclass(frozen=True)
class Decision:
    own_usd_per_1k_requests_at_full_load: float  # one more instance, fully used, with its requests' lines
    api_usd_per_1k_requests: float
    requests_per_day_per_instance: float  # at the instance throughput, over the active hours
    never_breaks_even: bool
    breakeven_requests_per_day: float | None
    breakeven_instances: int | None
    max_instances: int
    max_requests_per_day_at_max_capacity: float
    beyond_capacity: bool  # the break-even or the assumed load needs more than max_instances
    assumed_load_within_capacity: bool


def decide(
    own_daily: Callable[[float], float],
    api: ApiPrice,
    usage: Usage,
    per_instance: float,
    min_instances: int,
    max_instances: int,
) -> Decision:
    """Compare owning fully used instances with the API, per request, then find the volume.

    `own_daily` must already continue past max_instances (own_beyond_capacity). Owning one more
    fully used instance costs (own(k+1 full) - own(k full)) / its requests, where k is the floor
    of always-on instances: its instance-hours plus the per-request lines of the requests it
    serves. When that is above the API's price per request, no volume ever breaks even: every
    further request costs more to own than to buy.
    """
    k = max(min_instances, 1)
    low, high = k * per_instance * (1 - 1e-9), (k + 1) * per_instance * (1 - 1e-9)
    own_per_request = (own_daily(high) - own_daily(low)) / (high - low) if per_instance > 0 else math.inf
    api_per_request = api.per_request(usage)
    breakeven = (
        None if own_per_request >= api_per_request else _first_crossing(own_daily, api_per_request, per_instance)
    )
    servable = max_instances * per_instance
    needed = None if breakeven is None else max(1, instances_for(breakeven, per_instance))
    within = usage.requests_per_day <= servable * (1 + 1e-9)
    return Decision(
        own_usd_per_1k_requests_at_full_load=own_per_request * 1000,
        api_usd_per_1k_requests=api_per_request * 1000,
        requests_per_day_per_instance=per_instance,
        never_breaks_even=breakeven is None,
        breakeven_requests_per_day=breakeven,
        breakeven_instances=needed,
        max_instances=max_instances,
        max_requests_per_day_at_max_capacity=servable,
        beyond_capacity=(needed is not None and needed > max_instances) or not within,
        assumed_load_within_capacity=within,
    )


def _first_crossing(own_daily: Callable[[float], float], api_per_request: float, per_instance: float) -> float | None:
    """The smallest volume where the API costs at least as much as owning, on a curve that steps
    up by one instance every `per_instance` requests. Within a step the gap (API - own) grows with
    volume, so its best point is the step's end: the first step whose end has a gap >= 0 holds the
    crossing (found by doubling then halving the step count), which bisection then pins down.
    A grid over volumes would miss a crossing that only touches a step's end."""

    def gap(r: float) -> float:
        return api_per_request * r - own_daily(r)

    def end(k: int) -> float:
        return k * per_instance * (1 - 1e-9)

    if gap(0.0) >= 0:
        return 0.0
    high = 1
    while gap(end(high)) < 0:
        high *= 2
        if end(high) > MAX_REQUESTS_PER_DAY:
            return None
    low = high // 2  # gap(end(low)) < 0, or low == 0
    while high - low > 1:
        mid = (low + high) // 2
        if gap(end(mid)) >= 0:
            high = mid
        else:
            low = mid
    lo, hi = low * per_instance, end(high)
    for _ in range(100):
        if hi - lo <= max(1.0, hi * 1e-9):
            break
        middle = (lo + hi) / 2
        if gap(middle) >= 0:
            hi = middle
        else:
            lo = middle
    return hi


def step_points(per_instance: float, max_instances: int, limit: int = 6) -> list[float]:
    """Volumes where the own-cost curve steps: each instance full, up to one past max_instances."""
    return [float(round(k * per_instance)) for k in range(1, min(max_instances + 1, limit) + 1)]


@dataclass(frozen=True)
class Remedy:
    """One change that would make owning cheaper per request than the API."""

    kind: str  # "instance_type", "precision" or "api_price"
    value: str  # the instance type, the precision, or "" for the API price
    own_usd_per_1k_requests: float
    prequantized: bool = False  # needs a checkpoint quantized ahead of time (int4)


def remedies(settings: Settings, usage: Usage, catalog: Catalog, region: str, per_request_usd: float) -> list[Remedy]:
    """What would make owning break even when it never does: cheaper instance types that fit
    (ownllm plan), another precision on the same instance, or an API priced above owning.

    Each is priced per 1,000 requests at full load: instance daily cost / requests it serves a day
    x 1,000, plus the per-request lines (`per_request_usd`) as they are today.
    """
    from ownllm.cost.catalog import hosting_item
    from ownllm.perf.hardware import for_instance
    from ownllm.perf.plan import Traffic, plan
    from ownllm.perf.predict import PredictionError, saturation

    arch = settings.model_arch
    hours = usage.active_hours_per_week / 7
    traffic = Traffic(
        usage.requests_per_day,
        usage.avg_input_tokens,
        usage.avg_output_tokens,
        active_hours=hours,
        min_tokens_per_s=settings.min_tokens_per_s_per_request,
    )

    def per_1k(hourly: float, tokens_per_s: float) -> float:
        served = tokens_per_s * hours * 3600 / usage.avg_output_tokens
        return (hourly * 24 / served + per_request_usd) * 1000 if served else math.inf

    out: list[Remedy] = []
    options = plan(
        arch,
        traffic,
        catalog,
        region,
        settings.resolved_precision,
        settings.engine,
        max_batch=settings.max_batch_size,
    )
    for o in sorted(
        (o for o in options if o.fits and o.instance_type != settings.instance_type),
        key=lambda o: per_1k(o.hourly_usd, o.instance_output_tokens_per_s),
    )[:3]:
        out.append(Remedy("instance_type", o.instance_type, per_1k(o.hourly_usd, o.instance_output_tokens_per_s)))
    price = catalog.get(hosting_item(settings.instance_type), region) or catalog.get(
        hosting_item(settings.instance_type), API_PRICE_REGION
    )
    if price is not None:
        hw = for_instance(settings.instance_type)
        for precision in ("fp8", "int4"):
            if precision == settings.resolved_precision:
                continue
            try:
                _, tps = saturation(
                    arch,
                    hw,
                    precision,
                    settings.engine,
                    usage.avg_input_tokens,
                    usage.avg_output_tokens,
                    min_tokens_per_s=settings.min_tokens_per_s_per_request,
                    max_batch=settings.max_batch_size,
                )
            except PredictionError:
                continue
            if tps:
                out.append(Remedy("precision", precision, per_1k(price.usd, tps), prequantized=precision == "int4"))
    return out
