"""Rank every priced GPU instance type for a model and a traffic, cheapest first.

Each option serves the peak rate (the day's output tokens spread over the active hours)
with enough instances, each run at its saturation throughput while every request keeps the
speed floor. Endpoints are billed around the clock (a real-time endpoint does not scale to
zero; schedules are the cost estimate's business). The per-token API is priced for the
same traffic through ownllm.cost.breakeven.api_price.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ownllm.cost.breakeven import api_price
from ownllm.cost.catalog import Catalog, hosting_item
from ownllm.perf.hardware import for_instance, gpu_instance_types
from ownllm.perf.models import ModelArch
from ownllm.perf.predict import (
    Efficiency,
    PredictionError,
    calibrated,
    engine_for,
    precision_for,
    saturation,
    shard_problem,
)
from ownllm.scale_to_zero import expected_usage

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Traffic:
    requests_per_day: float
    input_tokens: int
    output_tokens: int
    active_hours: float = 24.0
    min_tokens_per_s: float = 20.0

    @property
    def output_tokens_per_day(self) -> float:
        return self.requests_per_day * self.output_tokens

    @property
    def peak_output_tokens_per_s(self) -> float:
        return self.output_tokens_per_day / (self.active_hours * 3600)


@dataclass(frozen=True)
class Option:
    instance_type: str
    gpu: str
    gpu_count: int
    fits: bool
    instances: int
    hourly_usd: float
    daily_usd: float
    usd_per_1m_output_tokens: float
    saturation_concurrency: int  # per instance, at the speed floor
    instance_output_tokens_per_s: float  # per instance, at the speed floor
    headroom: float  # spare share of capacity at peak (0.25 = 25% more traffic fits)
    price_source: str
    note: str = ""
    # The same instances with min_instances 0 (scale to zero): expected $/day for traffic spread
    # over the active hours, idle tails and wakes included (ownllm/scale_to_zero.py).
    scale_to_zero_daily_usd: float = 0.0
    scale_to_zero_cold_starts_per_day: float = 0.0


@dataclass(frozen=True)
class ApiOption:
    label: str
    daily_usd: float
    usd_per_1m_output_tokens: float
    input_usd_per_m: float
    output_usd_per_m: float
    source: str


@dataclass(frozen=True)
class _ApiQuery:
    """What api_price reads from settings: the model size and optional explicit prices."""

    model_size_b: float
    resolved_model_size_b: float
    api_input_usd_per_m: float | None = None
    api_output_usd_per_m: float | None = None


def _option(
    itype: str,
    model: ModelArch,
    traffic: Traffic,
    precision: str,
    engine: str,
    price: float,
    source: str,
    eff: Efficiency,
    kv_cache: str = "auto",
    max_batch: int | None = None,
) -> Option:
    hw = for_instance(itype)

    def build(fits: bool, instances: int, sat_c: int, sat_tps: float, note: str = "") -> Option:
        need = traffic.peak_output_tokens_per_s
        daily = instances * price * HOURS_PER_DAY
        to_zero = (
            expected_usage(
                requests_per_day=traffic.requests_per_day,
                active_hours_per_day=traffic.active_hours,
                instances_when_busy=instances,
                max_instances=instances,
            )
            if fits
            else None
        )
        per_m = daily / (traffic.output_tokens_per_day / 1e6) if traffic.output_tokens_per_day and fits else 0.0
        headroom = (instances * sat_tps / need - 1 if need else math.inf) if fits else 0.0
        return Option(
            instance_type=itype,
            gpu=hw.gpu.name,
            gpu_count=hw.count,
            fits=fits,
            instances=instances,
            hourly_usd=price,
            daily_usd=daily,
            usd_per_1m_output_tokens=per_m,
            saturation_concurrency=sat_c,
            instance_output_tokens_per_s=sat_tps,
            headroom=headroom,
            price_source=source,
            note=note,
            scale_to_zero_daily_usd=to_zero.instance_hours_per_day * price if to_zero else 0.0,
            scale_to_zero_cold_starts_per_day=to_zero.cold_starts_per_day if to_zero else 0.0,
        )

    mapped = ""
    if precision == "bf16" and not hw.gpu.bf16:
        # The same checkpoint runs in fp16 there (vLLM casts it), at the same size and speed.
        precision, mapped = "fp16", f"runs fp16: the {hw.gpu.name} has no bf16"
    try:
        prec = precision_for(precision, hw)
    except PredictionError as exc:
        return build(False, 0, 0, 0.0, str(exc))
    problem = shard_problem(model, hw)
    if problem:
        return build(False, 0, 0, 0.0, problem)
    sat_c, sat_tps = saturation(
        model,
        hw,
        prec,
        engine_for(engine),
        traffic.input_tokens,
        traffic.output_tokens,
        min_tokens_per_s=traffic.min_tokens_per_s,
        kv_cache=kv_cache,
        max_batch=max_batch,
        eff=eff,
    )
    if sat_c == 0:
        fits_memory = saturation(
            model, hw, prec, engine_for(engine), traffic.input_tokens, traffic.output_tokens, kv_cache=kv_cache, eff=eff
        )[0]
        note = (
            f"slower than {traffic.min_tokens_per_s:g} tokens/s per request"
            if fits_memory
            else "does not fit in GPU memory"
        )
        return build(False, 0, 0, 0.0, note)
    instances = max(1, math.ceil(traffic.peak_output_tokens_per_s / sat_tps))
    return build(True, instances, sat_c, sat_tps, mapped)


def plan(
    model: ModelArch,
    traffic: Traffic,
    catalog: Catalog,
    region: str = "us-east-1",
    precision: str = "bf16",
    engine: str = "vllm",
    eff: Efficiency | None = None,
    *,
    kv_cache: str = "auto",
    max_batch: int | None = None,
) -> list[Option]:
    """Every priced GPU instance type: the fitting ones cheapest first, then the ones that do not fit."""
    eff = eff or calibrated()
    options = []
    for itype in gpu_instance_types():
        price = catalog.get(hosting_item(itype), region)
        if price is None:
            continue
        source = price.source if price.region == region else f"{price.region} price ({price.source})"
        options.append(_option(itype, model, traffic, precision, engine, price.usd, source, eff, kv_cache, max_batch))
    return sorted(options, key=lambda o: (not o.fits, o.daily_usd if o.fits else o.hourly_usd, o.instance_type))


def api_option(model: ModelArch, traffic: Traffic, catalog: Catalog) -> ApiOption:
    price = api_price(_ApiQuery(model.params_b, model.params_b), catalog)
    per_request = (traffic.input_tokens * price.input_usd_per_m + traffic.output_tokens * price.output_usd_per_m) / 1e6
    daily = traffic.requests_per_day * per_request
    per_m = daily / (traffic.output_tokens_per_day / 1e6) if traffic.output_tokens_per_day else 0.0
    return ApiOption(price.label, daily, per_m, price.input_usd_per_m, price.output_usd_per_m, price.source)


def to_json(options: list[Option], api: ApiOption | None) -> dict[str, object]:
    """Plain JSON; an unbounded headroom (no traffic) becomes null."""

    def finite(d: dict[str, object]) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    return {"options": [finite(asdict(o)) for o in options], "api": asdict(api) if api else None}


class ApplyError(ValueError):
    """The cdk.json --apply would write cannot be updated safely (the file is left as it was)."""


def _read_cdk_json(path: Path) -> dict[str, object]:
    from ownllm.settings import CDK_JSON_ENCODING, DuplicateKeyError, unique_json_object  # the loader's rules

    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes().decode(CDK_JSON_ENCODING), object_pairs_hook=unique_json_object)
    except UnicodeDecodeError as exc:
        raise ApplyError(f"cannot be read as UTF-8 ({exc})") from None
    except DuplicateKeyError as exc:
        raise ApplyError(f"key {str(exc)!r} appears twice (a rewrite would keep only one)") from None
    except ValueError as exc:
        raise ApplyError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApplyError("not a JSON object")
    return data


def apply(option: Option, path: Path, model_id: str | None = None) -> dict[str, object]:
    """Write the option's instance type and counts where synth reads them in cdk.json; returns what was set.

    Each key goes where the settings loader reads it (a flat context key wins over context.ownllm).
    Raises ApplyError, writing nothing, when the file is not a cdk.json that can be rewritten as it was,
    or when it serves another model than `model_id`, the one planned for (an instance sized for one
    model would otherwise be deployed for another).
    """
    from ownllm.settings import Settings, SettingsError, setting_location, settings_from_app_context

    data = _read_cdk_json(path)
    context = data.setdefault("context", {})
    if not isinstance(context, dict):
        raise ApplyError("'context' is not an object")
    ownllm = context.setdefault("ownllm", {})
    if not isinstance(ownllm, dict):
        raise ApplyError("'context.ownllm' is not an object")

    def where(key: str) -> dict[str, object]:
        return context if setting_location(context, key) == (key,) else ownllm

    served = where("model_id").get("model_id", Settings.model_fields["model_id"].default)
    if model_id and isinstance(served, str) and not served.startswith("s3://") and served != model_id:
        raise ApplyError(
            f"it serves model_id {served!r}, not the planned --model {model_id!r}; set model_id to {model_id!r} "
            f"there first, or plan --model {served!r}"
        )
    current_max = where("max_instances").get("max_instances")
    try:  # a max above the plan's count is kept; a malformed one is the loader's to report
        keep_max = int(current_max) if isinstance(current_max, int | str) and not isinstance(current_max, bool) else 0
    except ValueError:
        keep_max = 0
    # A deploy that scales to zero (min_instances 0) keeps doing so: the plan sizes its maximum.
    scales_to_zero = where("min_instances").get("min_instances") in (0, "0")
    changes: dict[str, object] = {
        "instance_type": option.instance_type,
        "instance_count": option.instances,
        "min_instances": 0 if scales_to_zero else option.instances,
        "max_instances": max(option.instances, keep_max),
    }
    for key, value in changes.items():
        where(key)[key] = value
    try:  # what synth would make of the result: a cdk.json it refuses is not written
        settings_from_app_context(context)
    except SettingsError as exc:
        raise ApplyError(f"with the plan applied, synth would refuse it: {'; '.join(exc.problems)}") from None
    try:
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise ApplyError(f"cannot be written ({exc.strerror or exc})") from None
    return changes
