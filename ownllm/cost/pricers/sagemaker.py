"""SageMaker real-time endpoints: instance-hours per variant, and data processed."""

from __future__ import annotations

import math
from dataclasses import replace

from ownllm.cost.basis import (
    ChosenAtDeploy,
    DataProcessed,
    InstanceChoice,
    InstanceHours,
    NoCharge,
    NoChargeReason,
    NotInCatalog,
    PriceNote,
    ScaleToZero,
    Scaling,
    Unpriced,
    UnpricedReason,
    WeeklyBound,
)
from ownllm.cost.catalog import Price, hosting_item
from ownllm.cost.graph import VariantPlan
from ownllm.cost.model import FREE, INSTANCES, PER_REQUEST, UNPRICED, Item
from ownllm.cost.pricers.base import PricingContext, Unpriceable, component, first_note, line_item, pricer
from ownllm.cost.usage import GB, Usage
from ownllm.scale_to_zero import ScaleToZeroUsage, expected_usage

# A single-type variant's scaling; "alternatives" (a count chosen at deploy time) is priced apart.
SCALINGS = {"fixed": Scaling.FIXED, "autoscaling": Scaling.AUTOSCALING, "scheduled": Scaling.SCHEDULED}


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
            why = plan.problem or Unpriced(UnpricedReason.NO_INSTANCE_TYPE)
            items.append(line_item(ctx, item_id, rtype, None, why, UNPRICED))
            continue
        priced: list[tuple[str, Price, PriceNote | None]] = []
        missing: list[str] = []
        for itype in plan.instance_types:
            try:
                priced.append((itype, *ctx.price(hosting_item(itype))))
            except Unpriceable:
                missing.append(itype)
        if missing:
            choices = plan.instance_types if plan.alternatives else ()
            items.append(
                line_item(ctx, item_id, rtype, None, NotInCatalog(tuple(missing), ctx.region, choices), UNPRICED)
            )
            continue
        if plan.alternatives:
            items.append(_alternatives_item(ctx, item_id, rtype, plan, priced))
            continue
        items.append(_instances_item(ctx, item_id, rtype, plan, priced[0][1], priced[0][2], usage))
    if plans and any(p.instance_type and not p.problem for p in plans):
        try:
            price, note = ctx.price("sagemaker.data-processed")
            per_request = usage.request_bytes + usage.response_bytes
            gb = usage.requests_per_day * per_request / GB
            items.append(
                line_item(
                    ctx,
                    f"{lid}/DataProcessed",
                    "AWS::SageMaker::Endpoint (data processed)",
                    None,
                    DataProcessed(usage.requests_per_day, per_request, gb, price.usd, first_note(note)),
                    PER_REQUEST,
                    [price],
                    components=[component("Data processed", gb, price)],
                )
            )
        except Unpriceable as exc:
            items.append(
                line_item(
                    ctx, f"{lid}/DataProcessed", "AWS::SageMaker::Endpoint (data processed)", None, exc.basis, UNPRICED
                )
            )
    return items


def _instances_item(
    ctx: PricingContext,
    item_id: str,
    rtype: str,
    plan: VariantPlan,
    price: Price,
    note: PriceNote | None,
    usage: Usage,
) -> Item:
    """A variant of one instance type: its expected instance-hours, between its floor and ceiling."""
    assert plan.instance_type is not None
    hours, needed = variant_instance_hours(plan, usage)
    cap = plan.capacity
    usage_part = component(
        "Instance usage",
        hours,
        price,
        min_quantity=cap.bound_hours_per_day(high=False),
        max_quantity=cap.bound_hours_per_day(high=True),
    )
    wake = scale_to_zero_usage(plan, usage, needed)
    basis = InstanceHours(
        scaling=SCALINGS[cap.scaling],
        instance_type=plan.instance_type,
        hourly_usd=price.usd,
        initial_count=plan.initial_count,
        hours_per_day=hours,
        min_count=cap.min_count,
        max_count=cap.max_count,
        needed=needed,
        low_usd=usage_part.min_daily_usd,
        high_usd=usage_part.max_daily_usd,
        capacity=cap.rule,
        weekly=tuple(WeeklyBound(low, high, h) for low, high, h in cap.weekly_bounds()),
        scale_to_zero=None
        if wake is None
        else ScaleToZero(
            wake.cold_starts_per_day,
            wake.wait_s_per_cold_start,
            wake.assumptions.scale_in_idle_min,
            wake.assumptions.release_min,
        ),
        notes=first_note(note),
    )
    return line_item(ctx, item_id, rtype, None, basis, INSTANCES, [price], components=[usage_part])


def _alternatives_item(
    ctx: PricingContext,
    item_id: str,
    rtype: str,
    plan: VariantPlan,
    priced: list[tuple[str, Price, PriceNote | None]],
) -> Item:
    """A variant whose instance type or count an intrinsic (Fn::If, Fn::FindInMap) picks at deploy
    time: priced as the range over every choice; the total counts the dearest, so a guard is safe."""
    cap = plan.capacity
    low = min(p.usd for _, p, _ in priced) * cap.bound_hours_per_day(high=False)
    high = max(p.usd for _, p, _ in priced) * cap.bound_hours_per_day(high=True)
    basis = ChosenAtDeploy(
        choices=tuple(InstanceChoice(t, p.usd) for t, p, _ in priced),
        min_count=cap.min_count,
        max_count=cap.max_count,
        capacity=cap.rule,
        low_usd=low,
        high_usd=high,
        notes=tuple(n for _, _, n in priced if n is not None),
    )
    return line_item(
        ctx, item_id, rtype, high, basis, INSTANCES, [p for _, p, _ in priced], min_daily_usd=low, max_daily_usd=high
    )


@pricer("AWS::SageMaker::EndpointConfig")
def price_endpoint_config(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    used = lid in ctx.used_configs
    reason = NoChargeReason.ENDPOINT_CONFIG_USED if used else NoChargeReason.ENDPOINT_CONFIG_UNUSED
    return [line_item(ctx, lid, res["Type"], 0.0, NoCharge(reason), FREE)]
