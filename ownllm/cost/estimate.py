"""Estimate the daily bill of a synthesized cloud assembly under the assumed usage."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from ownllm.cost import breakeven as be
from ownllm.cost.assembly import Assembly, load_assembly
from ownllm.cost.catalog import Catalog, load_catalog
from ownllm.cost.graph import link
from ownllm.cost.model import Estimate, Item, monthly
from ownllm.cost.pricers import PricingContext, implicit_log_items, price_resource, variant_instance_hours
from ownllm.cost.usage import Usage, usage_from_settings

if TYPE_CHECKING:
    from ownllm.settings import Settings


class Estimator:
    """A cloud assembly read once, priced for any usage (the break-even search re-prices it)."""

    def __init__(self, assembly: Assembly, catalog: Catalog):
        self.assembly = assembly
        self.catalog = catalog
        self.contexts = [PricingContext(s, catalog=catalog) for s in assembly.stacks]
        for ctx in self.contexts:
            link(ctx)

    def items(self, usage: Usage) -> list[Item]:
        items: list[Item] = []
        for ctx in self.contexts:
            for lid, res in ctx.resources.items():
                items.extend(price_resource(ctx, lid, res, usage))
            items.extend(implicit_log_items(ctx, usage))
        return items

    def daily_usd(self, usage: Usage) -> float:
        return sum(i.daily_usd for i in self.items(usage) if i.daily_usd is not None)

    def capacity(self, usage: Usage, settings: Settings) -> list[dict[str, Any]]:
        from ownllm import gpus
        from ownllm.settings import model_memory_gib

        size = be.model_size_b(settings)
        need_gib = model_memory_gib(size) if size else None
        rows = []
        for ctx in self.contexts:
            for eid, plans in ctx.endpoint_plans.items():
                for plan in plans:
                    if not plan.instance_type:
                        continue
                    _, needed = variant_instance_hours(plan, usage)
                    info = gpus.gpu_info(plan.instance_type)
                    cap = plan.capacity
                    per_instance_per_day = usage.instance_tokens_per_s * usage.active_hours_per_week / 7 * 3600
                    servable = (
                        cap.max_count * per_instance_per_day / usage.avg_output_tokens / (plan.weight_share or 1)
                        if usage.avg_output_tokens
                        else None
                    )
                    rows.append(
                        {
                            "stack": ctx.stack.name,
                            "endpoint": eid,
                            "variant": plan.variant,
                            "instance_type": plan.instance_type,
                            "scaling": cap.scaling,
                            "scaling_detail": cap.described,
                            "min_instances": cap.min_count,
                            "max_instances": cap.max_count,
                            "instances_needed": needed,
                            "instance_tokens_per_s": usage.instance_tokens_per_s,
                            "serves_assumed_load": needed <= cap.max_count,
                            "max_requests_per_day": None if servable is None else round(servable),
                            "gpu_memory_gib": None if info is None else round(info.gpu_memory_gib, 1),
                            "model_size_b": size,
                            "model_memory_gib": None if need_gib is None else round(need_gib, 1),
                            "model_fits": None if info is None or need_gib is None else need_gib <= info.gpu_memory_gib,
                        }
                    )
        return rows


def estimate_cdk_out(outdir: str | os.PathLike, settings: Settings, catalog: Catalog | None = None) -> Estimate:
    catalog = catalog or load_catalog()
    assembly = load_assembly(outdir, settings.region)
    return estimate_assembly(assembly, settings, catalog, source=str(outdir))


def estimate_assembly(assembly: Assembly, settings: Settings, catalog: Catalog, source: str = "") -> Estimate:
    usage = usage_from_settings(settings)
    estimator = Estimator(assembly, catalog)
    items = estimator.items(usage)

    regions = Counter((s.region, s.region_source) for s in assembly.stacks)
    if regions:
        (region, region_source), _ = regions.most_common(1)[0]
        if len({r for r, _ in regions}) > 1:
            region_source += "; stacks span " + ", ".join(sorted({r for r, _ in regions}))
    else:
        region, region_source = (settings.region or "us-east-1"), "no stacks"

    stacks = []
    for s in assembly.stacks:
        daily = sum(i.daily_usd for i in items if i.stack == s.name and i.daily_usd is not None)
        stacks.append(
            {
                "name": s.name,
                "region": s.region,
                "region_source": s.region_source,
                "daily_usd": round(daily, 4),
                "monthly_usd": round(monthly(daily), 2),
                "resources": sum(1 for i in items if i.stack == s.name),
            }
        )

    api = be.api_price(settings, catalog)

    def own_at(requests_per_day: float) -> float:
        return estimator.daily_usd(usage.with_requests(requests_per_day))

    breakeven = be.find_breakeven(own_at, api, usage)
    capacity = estimator.capacity(usage, settings)
    own_today = sum(i.daily_usd for i in items if i.daily_usd is not None)
    api_today = api.daily(usage)
    servable = min((c["max_requests_per_day"] for c in capacity if c["max_requests_per_day"]), default=None)
    breakeven_info: dict[str, Any] = {
        "api": api.to_dict(),
        "api_usd_per_request": api.per_request(usage),
        "api_daily_usd": round(api_today, 4),
        "own_daily_usd": round(own_today, 4),
        "cheaper": "own" if own_today < api_today else "api",
        "breakeven_requests_per_day": None if breakeven is None else round(breakeven),
        "max_requests_per_day_at_max_capacity": servable,
    }
    breakeven_info["summary"] = _breakeven_sentence(breakeven_info, usage)

    points = be.chart_points([usage.requests_per_day, breakeven or 0])
    chart = {
        "requests_per_day": points,
        "own_daily_usd": [round(own_at(r), 2) for r in points],
        "api_daily_usd": [round(api.daily(usage, r), 2) for r in points],
    }

    warnings = [w for ctx in estimator.contexts for w in ctx.warnings]
    for row in capacity:
        where = f"{row['stack']}/{row['endpoint']} ({row['instance_type']})"
        if not row["serves_assumed_load"]:
            warnings.append(
                f"{where}: the assumed load needs {row['instances_needed']} instances but at most "
                f"{row['max_instances']} can run; raise max_instances or instance_tokens_per_s if measured"
            )
        if row["model_fits"] is False:
            warnings.append(
                f"{where}: a {row['model_size_b']:g}B model needs about {row['model_memory_gib']:g} GiB of GPU "
                f"memory; the instance has {row['gpu_memory_gib']:g} GiB"
            )
    for ctx in estimator.contexts:
        if ctx.fallbacks:
            warnings.append(
                f"{ctx.stack.name}: {', '.join(sorted(ctx.fallbacks))} priced at us-east-1 rates "
                f"(the catalog has none for {ctx.region})"
            )
    if any(i.uses_estimated_price for i in items if i.daily_usd):
        warnings.append("some lines use catalog figures marked 'estimate'; run `ownllm prices refresh` to confirm")

    limit = settings.max_daily_usd
    return Estimate(
        items=items,
        region=region,
        region_source=region_source,
        catalog_date=catalog.date,
        assumptions=usage.to_dict(),
        assumption_lines=usage.lines(),
        stacks=stacks,
        breakeven=breakeven_info,
        capacity=capacity,
        chart=chart,
        warnings=warnings,
        budget={
            "max_daily_usd": limit,
            "exceeded": bool(limit is not None and own_today > limit),
            # A guard cannot vouch for a bill with unpriced lines in it.
            "incomplete": bool(limit is not None and any(not i.priced for i in items)),
        },
        source=source,
    )


def _breakeven_sentence(info: dict[str, Any], usage: Usage) -> str:
    api = info["api"]
    r = info["breakeven_requests_per_day"]
    head = (
        f"At {usage.requests_per_day:,.0f} requests/day owning costs ${info['own_daily_usd']:,.2f}/day; "
        f"{api['label']} (${api['input_usd_per_m']:g} in / ${api['output_usd_per_m']:g} out per 1M tokens) "
        f"would cost ${info['api_daily_usd']:,.2f}/day."
    )
    if r is None:
        return head + " Owning never breaks even: per request it costs at least as much as the API."
    tail = f" Owning breaks even at about {r:,.0f} requests/day."
    servable = info.get("max_requests_per_day_at_max_capacity")
    if servable is not None and r > servable:
        tail += f" That is beyond what the configured maximum instances can serve (~{servable:,.0f}/day)."
    return head + tail
