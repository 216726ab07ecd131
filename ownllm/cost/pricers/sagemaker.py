"""SageMaker real-time endpoints: instance-hours per variant, and data processed."""

from __future__ import annotations

import math
from dataclasses import replace

from ownllm.cost.catalog import Price, hosting_item
from ownllm.cost.graph import VariantPlan
from ownllm.cost.model import FREE, INSTANCES, PER_REQUEST, UNPRICED, Item, price_text, usd
from ownllm.cost.pricers.base import PricingContext, Unpriceable, component, line_item, pricer
from ownllm.cost.usage import GB, Usage
from ownllm.scale_to_zero import ScaleToZeroUsage, expected_usage


def variant_instance_hours(plan: VariantPlan, usage: Usage) -> tuple[float, int]:
    """(expected instance-hours per day, instances the variant's share of the load needs)."""
    share_tps = usage.tokens_per_s_while_active() * plan.weight_share
    needed = math.ceil(share_tps / usage.instance_tokens_per_s - 1e-9) if usage.instance_tokens_per_s else 0

    def needed_at(weekday: int, hour: int) -> int:
        return needed if usage.is_active(weekday, hour) else 0

    hours = plan.capacity.instance_hours_per_day(needed_at)
    wake = scale_to_zero_usage(plan, usage, needed)
    if wake is not None:
        # Billed while requests come and for each idle tail and wake, never below the floor the
        # schedule holds (one warm copy through active_hours, for one) nor above its ceiling (a
        # schedule that caps the count at 0 off hours cuts the idle tail short).
        floor = plan.capacity.instance_hours_per_day(lambda _weekday, _hour: 0)
        ceiling = plan.capacity.instance_hours_per_day(lambda _weekday, _hour: plan.capacity.max_count)
        hours = min(max(floor, wake.instance_hours_per_day), ceiling)
    return hours, needed


def scale_to_zero_usage(plan: VariantPlan, usage: Usage, needed: int) -> ScaleToZeroUsage | None:
    """Expected instance-hours of a variant whose floor reaches zero, averaged over the week; None
    for one that never goes below an instance."""
    cap = plan.capacity
    if cap.min_count > 0 or cap.max_count < 1:
        return None
    days = len({weekday for weekday in range(7) for hour in range(24) if usage.is_active(weekday, hour)}) or 7
    per_active_day = expected_usage(
        requests_per_day=usage.requests_per_day * plan.weight_share * 7 / days,
        active_hours_per_day=min(24.0, usage.active_hours_per_week / days) or 24.0,
        instances_when_busy=min(max(needed, 1), cap.max_count),
        max_instances=cap.max_count,
    )
    return replace(
        per_active_day,
        instance_hours_per_day=per_active_day.instance_hours_per_day * days / 7,
        cold_starts_per_day=per_active_day.cold_starts_per_day * days / 7,
    )


@pricer("AWS::SageMaker::Endpoint")
def price_endpoint(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    plans = ctx.endpoint_plans.get(lid) or []
    items: list[Item] = []
    for plan in plans:
        item_id = lid if len(plans) == 1 else f"{lid}/{plan.variant}"
        rtype = "AWS::SageMaker::Endpoint"
        if plan.problem or not plan.instance_type:
            items.append(line_item(ctx, item_id, rtype, None, plan.problem or "no instance type", UNPRICED))
            continue
        priced: list[tuple[str, Price, str]] = []
        missing: list[str] = []
        for itype in plan.instance_types:
            try:
                priced.append((itype, *ctx.price(hosting_item(itype))))
            except Unpriceable:
                missing.append(itype)
        if missing:
            choice = f" (an intrinsic chooses between {', '.join(plan.instance_types)})" if plan.alternatives else ""
            items.append(
                line_item(
                    ctx,
                    item_id,
                    rtype,
                    None,
                    f"{', '.join(missing)} is not in the price catalog for {ctx.region}{choice}",
                    UNPRICED,
                )
            )
            continue
        if plan.alternatives:
            items.append(_alternatives_item(ctx, item_id, rtype, plan, priced))
            continue
        _, price, note = priced[0]
        hours, needed = variant_instance_hours(plan, usage)
        low_hours = plan.capacity.bound_hours_per_day(high=False)
        high_hours = plan.capacity.bound_hours_per_day(high=True)
        usage_part = component("Instance usage", hours, price, min_quantity=low_hours, max_quantity=high_hours)
        low, high = usage_part.min_daily_usd, usage_part.max_daily_usd
        rate = f"{plan.instance_type} x {price_text(price.usd)}/h"
        cap = plan.capacity
        if cap.scaling == "fixed":
            basis = f"{plan.initial_count} x {plan.instance_type} x 24 h x {price_text(price.usd)}/h"
        elif cap.scaling == "autoscaling":
            expected = hours / 24
            extra = max(0, min(needed, cap.max_count) - cap.min_count)
            basis = (
                f"expected {expected:g} x {rate} x 24 h ({cap.described}: min {cap.min_count} all day"
                + (
                    f" + {extra} more for the assumed load ({needed} needed)"
                    if extra
                    else f"; the assumed load needs {needed}"
                )
                + f"); range {cap.min_count}..{cap.max_count} instances = {usd(low)}..{usd(high)}/day"
            )
        else:
            basis = (
                f"{rate} x {hours:.2f} instance-h/day, the weekly average of: {cap.summary()} "
                f"({cap.described}; the assumed load needs {needed} while traffic arrives); "
                f"range {usd(low)}..{usd(high)}/day"
            )
        wake = scale_to_zero_usage(plan, usage, needed)
        if wake is not None:
            basis += (
                f"; scales to zero: about {wake.cold_starts_per_day:.2g} cold starts/day, each a "
                f"~{wake.wait_s_per_cold_start / 60:.1f} min wait ({wake.assumptions.scale_in_idle_min:g} min idle "
                f"to scale in, {wake.assumptions.release_min:g} min to release)"
            )
        if needed > cap.max_count:
            basis += f"; CAPACITY: the load needs {needed} instances, at most {cap.max_count} can run"
        items.append(line_item(ctx, item_id, rtype, None, basis + note, INSTANCES, [price], components=[usage_part]))
    if plans and any(p.instance_type and not p.problem for p in plans):
        try:
            price, note = ctx.price("sagemaker.data-processed")
            gb = usage.requests_per_day * (usage.request_bytes + usage.response_bytes) / GB
            items.append(
                line_item(
                    ctx,
                    f"{lid}/DataProcessed",
                    "AWS::SageMaker::Endpoint (data processed)",
                    None,
                    f"{usage.requests_per_day:,.0f} requests x {usage.request_bytes + usage.response_bytes:,} B "
                    f"= {gb:.4g} GB in+out x {price_text(price.usd)}/GB" + note,
                    PER_REQUEST,
                    [price],
                    components=[component("Data processed", gb, price)],
                )
            )
        except Unpriceable as exc:
            items.append(
                line_item(
                    ctx, f"{lid}/DataProcessed", "AWS::SageMaker::Endpoint (data processed)", None, str(exc), UNPRICED
                )
            )
    return items


def _alternatives_item(
    ctx: PricingContext, item_id: str, rtype: str, plan: VariantPlan, priced: list[tuple[str, Price, str]]
) -> Item:
    """A variant whose instance type or count an intrinsic (Fn::If, Fn::FindInMap) picks at deploy
    time: priced as the range over every choice; the total counts the dearest, so a guard is safe."""
    cap = plan.capacity
    low = min(p.usd for _, p, _ in priced) * cap.bound_hours_per_day(high=False)
    high = max(p.usd for _, p, _ in priced) * cap.bound_hours_per_day(high=True)
    types = ", ".join(f"{t} ({price_text(p.usd)}/h)" for t, p, _ in priced)
    basis = (
        f"chosen at deploy time: {types}; {cap.min_count}..{cap.max_count} instances ({cap.described}); "
        f"range {usd(low)}..{usd(high)}/day, counted at the top of the range"
    ) + "".join(sorted({n for _, _, n in priced if n}))
    return line_item(
        ctx, item_id, rtype, high, basis, INSTANCES, [p for _, p, _ in priced], min_daily_usd=low, max_daily_usd=high
    )


@pricer("AWS::SageMaker::EndpointConfig")
def price_endpoint_config(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    if lid in ctx.used_configs:
        basis = "no charge: its instances are billed on the endpoint line"
    else:
        basis = "no charge: no endpoint in this stack uses it, so it runs nothing"
    return [line_item(ctx, lid, res["Type"], 0.0, basis, FREE)]
