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
from typing import TYPE_CHECKING, Any

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


def model_size_b(settings: Settings) -> float:
    return settings.resolved_model_size_b


def api_price(settings: Settings, catalog: Catalog) -> ApiPrice:
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


def short_number(r: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if r >= div:
            v = r / div
            return f"{v:.0f}{suffix}" if v == int(v) else f"{v:.1f}{suffix}"
    return f"{r:.0f}"
