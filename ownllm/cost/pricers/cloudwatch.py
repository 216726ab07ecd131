"""CloudWatch alarms and the flat monthly fees (dashboards, keys, secrets), schedules and nested stacks."""

from __future__ import annotations

from ownllm.cost.basis import (
    AlarmMetrics,
    AlarmResolution,
    Fee,
    MonthlyFee,
    NestedStack,
    ScheduledInvocations,
    UnknownSchedule,
    Unpriced,
    UnpricedReason,
)
from ownllm.cost.graph import invocations_per_day
from ownllm.cost.model import FIXED, FREE, PER_REQUEST, UNPRICED, Item, per_month_to_daily
from ownllm.cost.pricers.base import Pricer, PricingContext, component, first_note, line_item, pricer
from ownllm.cost.usage import Usage

ALARM_PRICES = {
    AlarmResolution.STANDARD: "cloudwatch.alarm.standard",
    AlarmResolution.HIGH: "cloudwatch.alarm.high-resolution",
}


@pricer("AWS::CloudWatch::Alarm")
def price_alarm(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    metrics = props.get("Metrics")
    if metrics:
        n = sum(1 for m in metrics if m.get("MetricStat")) or 1
        periods = [
            ctx.number((m.get("MetricStat") or {}).get("Period"), 60, lid=lid, prop=f"Metrics[{k}].MetricStat.Period")
            for k, m in enumerate(metrics)
            if m.get("MetricStat")
        ]
        period = min([p for p in periods if p] or [60])
    else:
        n = 1
        period = ctx.number(props.get("Period"), 60, lid=lid, prop="Period", minimum=1) or 60
    if props.get("ThresholdMetricId"):
        n = max(n, 3)  # an anomaly-detection band is billed as three metrics
    resolution = AlarmResolution.HIGH if period < 60 else AlarmResolution.STANDARD
    price, note = ctx.price(ALARM_PRICES[resolution])
    return [
        line_item(
            ctx,
            lid,
            res["Type"],
            None,
            AlarmMetrics(n, price.usd, resolution, period, first_note(note)),
            FIXED,
            [price],
            components=[component("Alarm metrics", per_month_to_daily(n), price)],
        )
    ]


# Flat monthly fees: resource type -> (catalog item, the fee; wording says what it leaves out).
MONTHLY_FEES = {
    "AWS::CloudWatch::CompositeAlarm": ("cloudwatch.alarm.composite", Fee.COMPOSITE_ALARM),
    "AWS::CloudWatch::Dashboard": ("cloudwatch.dashboard", Fee.DASHBOARD),
    "AWS::KMS::Key": ("kms.key", Fee.KMS_KEY),
    "AWS::SecretsManager::Secret": ("secretsmanager.secret", Fee.SECRET),
}


def _monthly_fee(catalog_item: str, fee: Fee) -> Pricer:
    def price_monthly(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
        price, note = ctx.price(catalog_item)
        return [
            line_item(
                ctx,
                lid,
                res["Type"],
                None,
                MonthlyFee(fee, price.usd, first_note(note)),
                FIXED,
                [price],
                components=[component("Monthly fee", per_month_to_daily(1), price)],
            )
        ]

    return price_monthly


for _rtype, _fee in MONTHLY_FEES.items():
    pricer(_rtype)(_monthly_fee(*_fee))


@pricer("AWS::Scheduler::Schedule")
def price_schedule(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    expression = ctx.literal((res.get("Properties") or {}).get("ScheduleExpression"))
    per_day = invocations_per_day(expression) if isinstance(expression, str) else None
    if per_day is None or not isinstance(expression, str):
        unknown = UnknownSchedule(expression if isinstance(expression, str) else None)
        return [line_item(ctx, lid, res["Type"], None, unknown, UNPRICED)]
    price, note = ctx.price("scheduler.invocations")
    return [
        line_item(
            ctx,
            lid,
            res["Type"],
            None,
            ScheduledInvocations(per_day, expression, price.usd, first_note(note)),
            PER_REQUEST,
            [price],
            components=[component("Invocations", per_day / 1e6, price)],
        )
    ]


@pricer("AWS::CloudFormation::Stack")
def price_nested_stack(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    asset = (res.get("Metadata") or {}).get("aws:asset:path")
    if asset:
        return [line_item(ctx, lid, res["Type"], 0.0, NestedStack(ctx.stack.name, lid), FREE)]
    return [line_item(ctx, lid, res["Type"], None, Unpriced(UnpricedReason.NESTED_TEMPLATE_MISSING), UNPRICED)]
