"""Estimate the daily bill of a synthesized cloud assembly under the assumed usage."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ownllm.cost import breakeven as be
from ownllm.cost import wording
from ownllm.cost.assembly import Assembly, AssemblyError, load_assembly
from ownllm.cost.catalog import FALLBACK_REGION, Catalog, CatalogError, hosting_item, load_catalog
from ownllm.cost.graph import link
from ownllm.cost.model import Estimate, Item, monthly
from ownllm.cost.pricers import PricingContext, implicit_log_items, price_resource, variant_instance_hours
from ownllm.cost.template import TemplateValueError
from ownllm.cost.usage import Usage, usage_from_settings

if TYPE_CHECKING:
    from ownllm.perf.models import ModelArch
    from ownllm.settings import Settings


# What reading a property of another shape raises (a list where CloudFormation has an object, a number
# where it has a list): the template is not one `cdk synth` writes or CloudFormation takes.
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)
_OWN_ERRORS = (TemplateValueError, AssemblyError, CatalogError)  # already one line naming file and value


@contextmanager
def _template_shape(template_file: str, resource: str = "") -> Iterator[None]:
    """Turn a property of a shape no template has into one AssemblyError naming the file (and resource)."""
    try:
        yield
    except _OWN_ERRORS:
        raise
    except _SHAPE_ERRORS as exc:
        where = f"{template_file}: resource {resource}" if resource else template_file
        raise AssemblyError(
            f"{where}: a property has a shape no CloudFormation template has ({type(exc).__name__}: {exc}); "
            "run `cdk synth` again"
        ) from None


class Estimator:
    """A cloud assembly read once, priced for any usage (the break-even search re-prices it)."""

    def __init__(self, assembly: Assembly, catalog: Catalog):
        self.assembly = assembly
        self.catalog = catalog
        self.contexts = [PricingContext(s, catalog=catalog) for s in assembly.stacks]
        for ctx in self.contexts:
            with _template_shape(ctx.stack.template_file):
                link(ctx)

    def items(self, usage: Usage) -> list[Item]:
        items: list[Item] = []
        for ctx in self.contexts:
            for lid, res in ctx.resources.items():
                with _template_shape(ctx.stack.template_file, f"{lid} ({res.get('Type')})"):
                    items.extend(price_resource(ctx, lid, res, usage))
            with _template_shape(ctx.stack.template_file):
                items.extend(implicit_log_items(ctx, usage))
        return items

    def daily_usd(self, usage: Usage) -> float:
        return sum(i.daily_usd for i in self.items(usage) if i.daily_usd is not None)

    def capacity(self, usage: Usage, settings: Settings) -> list[dict[str, Any]]:
        from ownllm import gpus
        from ownllm.capacity import CapacityError, fit_problem

        size = be.model_size_b(settings)
        arch = settings.model_arch
        rows = []
        for ctx in self.contexts:
            for eid, plans in ctx.endpoint_plans.items():
                for plan in plans:
                    if not plan.instance_type:
                        continue
                    _, needed = variant_instance_hours(plan, usage)
                    info = gpus.gpu_info(plan.instance_type)
                    cap = plan.capacity
                    try:  # the template's instance may differ from the settings' (edited by hand)
                        problem = fit_problem(
                            arch,
                            plan.instance_type,
                            settings.resolved_precision,
                            settings.engine,
                            usage.avg_input_tokens,
                            usage.avg_output_tokens,
                        )
                    except CapacityError as exc:
                        problem = str(exc)
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
                            "scaling_detail": wording.capacity_text(cap.rule),
                            "min_instances": cap.min_count,
                            "max_instances": cap.max_count,
                            "instances_needed": needed,
                            "instance_tokens_per_s": usage.instance_tokens_per_s,
                            "serves_assumed_load": needed <= cap.max_count,
                            "max_requests_per_day": None if servable is None else round(servable),
                            "gpu_memory_gib": None if info is None else round(info.gpu_memory_gib, 1),
                            "model_size_b": size,
                            "precision": settings.resolved_precision,
                            "weights_gib": round(_weights_gib(arch, settings.resolved_precision), 1),
                            "model_fits": None if info is None else not problem,
                            "fit_problem": problem,
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

    capacity = estimator.capacity(usage, settings)
    own_today = sum(i.daily_usd for i in items if i.daily_usd is not None)
    api_today = api.daily(usage)
    rows = [c for c in capacity if c["max_requests_per_day"]]
    servable = min((c["max_requests_per_day"] for c in rows), default=None)
    own_curve: Callable[[float], float] = own_at
    decision: be.Decision | None = None
    if rows:
        row = rows[0]
        per_instance = usage.instance_tokens_per_s * usage.active_hours_per_week / 7 * 3600 / usage.avg_output_tokens
        hourly = catalog.get(hosting_item(row["instance_type"]), region) or catalog.get(
            hosting_item(row["instance_type"]), be.API_PRICE_REGION
        )
        extra_daily = (hourly.usd if hourly else 0.0) * usage.active_hours_per_week / 7
        own_curve = be.own_beyond_capacity(own_at, per_instance, row["max_instances"], extra_daily)
        decision = be.decide(own_curve, api, usage, per_instance, row["min_instances"], row["max_instances"])
        breakeven = decision.breakeven_requests_per_day
    else:
        breakeven = be.find_breakeven(own_at, api, usage)
    within = decision is None or decision.assumed_load_within_capacity
    breakeven_info: dict[str, Any] = {
        "api": api.to_dict(),
        "api_usd_per_request": api.per_request(usage),
        "api_daily_usd": round(api_today, 4),
        "own_daily_usd": round(own_today, 4),
        # A load beyond what max_instances serves is never cheaper to own: owning does not serve it.
        "cheaper": "own" if own_today < api_today and within else "api",
        "breakeven_requests_per_day": None if breakeven is None else round(breakeven),
        "max_requests_per_day_at_max_capacity": servable,
    }
    if decision is not None:
        breakeven_info |= {
            "own_usd_per_1k_requests_at_full_load": round(decision.own_usd_per_1k_requests_at_full_load, 6),
            "api_usd_per_1k_requests": round(decision.api_usd_per_1k_requests, 6),
            "never_breaks_even": decision.never_breaks_even,
            "beyond_capacity": decision.beyond_capacity,
            "breakeven_instances": decision.breakeven_instances,
            "max_instances": decision.max_instances,
            "requests_per_day_per_instance": round(decision.requests_per_day_per_instance),
            "assumed_load_within_capacity": decision.assumed_load_within_capacity,
            "serving": settings.capacity.label,
            "remedies": [],
        }
        if decision.never_breaks_even:
            per_request = decision.own_usd_per_1k_requests_at_full_load / 1000 - _instance_per_request(
                extra_daily, decision.requests_per_day_per_instance
            )
            found = be.remedies(settings, usage, catalog, region, per_request)
            breakeven_info["remedies"] = [
                {
                    "kind": r.kind,
                    "value": r.value,
                    "own_usd_per_1k_requests": round(r.own_usd_per_1k_requests, 6),
                    "breaks_even": r.own_usd_per_1k_requests < decision.api_usd_per_1k_requests,
                    "note": wording.PREQUANTIZED_NOTE if r.prequantized else "",
                }
                for r in found
            ]
    breakeven_info["summary"] = wording.breakeven_summary(breakeven_info, usage.requests_per_day)

    steps = be.step_points(decision.requests_per_day_per_instance, decision.max_instances) if decision else []
    points = sorted({*be.chart_points([usage.requests_per_day, breakeven or 0]), *steps})
    chart: dict[str, Any] = {
        "requests_per_day": points,
        "own_daily_usd": [round(own_curve(r), 2) for r in points],
        "api_daily_usd": [round(api.daily(usage, r), 2) for r in points],
        "beyond_capacity": [servable is not None and r > servable * (1 + 1e-9) for r in points],
    }

    warnings = [wording.warning_text(w) for ctx in estimator.contexts for w in ctx.warnings]
    for row in capacity:
        if not row["serves_assumed_load"]:
            warnings.append(wording.over_capacity_warning(row))
        if row["model_fits"] is False:
            warnings.append(wording.fit_warning(row))
    for ctx in estimator.contexts:
        if ctx.fallbacks:
            warnings.append(
                wording.fallback_warning(ctx.stack.name, sorted(ctx.fallbacks), FALLBACK_REGION, ctx.region)
            )
    if any(i.uses_estimated_price for i in items if i.daily_usd):
        warnings.append(wording.ESTIMATED_PRICES_WARNING)

    limit = settings.max_daily_usd
    return Estimate(
        items=items,
        region=region,
        region_source=region_source,
        catalog_date=catalog.date,
        assumptions=usage.to_dict(),
        assumption_lines=wording.assumption_lines(usage),
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


def _weights_gib(arch: ModelArch, precision: str) -> float:
    from ownllm.perf.hardware import GIB
    from ownllm.perf.predict import PRECISIONS, weight_bytes

    return weight_bytes(arch, PRECISIONS[precision]) / GIB


def _instance_per_request(instance_daily_usd: float, per_instance: float) -> float:
    return instance_daily_usd / per_instance if per_instance else 0.0
