"""CloudWatch alarms and the flat monthly fees (dashboards, keys, secrets), schedules and nested stacks."""

from __future__ import annotations

from ownllm.cost.graph import invocations_per_day
from ownllm.cost.model import FIXED, FREE, PER_REQUEST, UNPRICED, Item, per_month_to_daily, price_text
from ownllm.cost.pricers.base import Pricer, PricingContext, component, line_item, pricer
from ownllm.cost.usage import Usage


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
    kind = "high-resolution" if period < 60 else "standard"
    price, note = ctx.price(f"cloudwatch.alarm.{kind}")
    return [
        line_item(
            ctx,
            lid,
            res["Type"],
            None,
            f"{n} metric(s) x {price_text(price.usd)}/alarm-metric-month ({kind}, {period:g} s period)" + note,
            FIXED,
            [price],
            components=[component("Alarm metrics", per_month_to_daily(n), price)],
        )
    ]


# Flat monthly fees: resource type -> (catalog item, what is billed, what the fee leaves out).
MONTHLY_FEES = {
    "AWS::CloudWatch::CompositeAlarm": ("cloudwatch.alarm.composite", "1 composite alarm", ""),
    "AWS::CloudWatch::Dashboard": ("cloudwatch.dashboard", "1 dashboard", " (the 3 free dashboards are not applied)"),
    "AWS::KMS::Key": ("kms.key", "1 key", " (requests not estimated)"),
    "AWS::SecretsManager::Secret": ("secretsmanager.secret", "1 secret", " (API calls not estimated)"),
}


def _monthly_fee(catalog_item: str, what: str, remark: str) -> Pricer:
    def price_monthly(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
        price, note = ctx.price(catalog_item)
        return [
            line_item(
                ctx,
                lid,
                res["Type"],
                None,
                f"{what} x {price_text(price.usd)}/month{remark}" + note,
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
    if per_day is None:
        return [
            line_item(ctx, lid, res["Type"], None, f"schedule {expression!r}: invocations per day unknown", UNPRICED)
        ]
    price, note = ctx.price("scheduler.invocations")
    return [
        line_item(
            ctx,
            lid,
            res["Type"],
            None,
            f"{per_day:g} invocations/day ({expression}) x {price_text(price.usd)}/1M "
            "(the 14M/month free tier is not applied)" + note,
            PER_REQUEST,
            [price],
            components=[component("Invocations", per_day / 1e6, price)],
        )
    ]


@pricer("AWS::CloudFormation::Stack")
def price_nested_stack(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    asset = (res.get("Metadata") or {}).get("aws:asset:path")
    if asset:
        return [
            line_item(
                ctx,
                lid,
                res["Type"],
                0.0,
                f"no charge: a nested stack; its resources are priced under {ctx.stack.name}/{lid}",
                FREE,
            )
        ]
    return [line_item(ctx, lid, res["Type"], None, "nested stack whose template is not in cdk.out", UNPRICED)]
