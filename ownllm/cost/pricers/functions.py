"""Lambda functions: requests and GB-seconds, for whatever invokes them."""

from __future__ import annotations

from ownllm.cost.basis import (
    EmittedMetrics,
    FunctionUsage,
    Invocation,
    NoCharge,
    NoChargeReason,
    Trigger,
    UnknownSchedule,
    Unpriced,
    UnpricedReason,
)
from ownllm.cost.model import FIXED, FREE, PER_REQUEST, UNPRICED, Item, per_month_to_daily
from ownllm.cost.pricers.base import PricingContext, component, first_note, line_item, pricer
from ownllm.cost.usage import Usage

LAMBDA_DEFAULT_MEMORY_MB = 128
LAMBDA_DEFAULT_TIMEOUT_S = 3
# Lambda memory is 128-10,240 MB; a timeout is at most 900 s, or 5,400 s for Lambda Managed
# Instances invoked asynchronously (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
# .../configuration-timeout.html). Anything outside is a template no deployment could have.
LAMBDA_MEMORY_MB_RANGE = (128, 10_240)
LAMBDA_MAX_TIMEOUT_S = 5_400
# A header-checking authorizer's billed time (Lambda bills per ms; ~1 ms of work plus runtime).
AUTHORIZER_DURATION_S = 0.01
# Function metadata key under which a stack declares the custom metrics the function emits.
CUSTOM_METRICS_METADATA = "ownllm:custom-metrics"
SCHEDULED_LAMBDA_DURATION_S = 1.0


def lambda_invocations(ctx: PricingContext, lid: str, usage: Usage) -> tuple[float, float, Invocation] | None:
    """(invocations/day, seconds each, why) or None when nothing in the templates calls it."""
    props = ctx.props(lid)
    timeout = (
        ctx.number(
            props.get("Timeout"),
            LAMBDA_DEFAULT_TIMEOUT_S,
            lid=lid,
            prop="Timeout",
            minimum=1,
            maximum=LAMBDA_MAX_TIMEOUT_S,
        )
        or LAMBDA_DEFAULT_TIMEOUT_S
    )
    if lid in ctx.request_lambdas:
        duration = min(usage.lambda_duration_s, timeout)
        capped = timeout if usage.lambda_duration_s > timeout else None
        return usage.requests_per_day, duration, Invocation(Trigger.REQUEST_PATH, capped_at_timeout_s=capped)
    if lid in ctx.authorizer_lambdas:
        return (
            usage.requests_per_day,
            min(AUTHORIZER_DURATION_S, timeout),
            Invocation(Trigger.AUTHORIZER, assumed_s=AUTHORIZER_DURATION_S),
        )
    if lid in ctx.scheduled_lambdas:
        return (
            ctx.scheduled_lambdas[lid],
            min(SCHEDULED_LAMBDA_DURATION_S, timeout),
            Invocation(Trigger.SCHEDULED, assumed_s=SCHEDULED_LAMBDA_DURATION_S),
        )
    return None


@pricer("AWS::Lambda::Function")
def price_lambda(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    rtype = res["Type"]
    if lid in ctx.deploy_lambdas and lid not in ctx.request_lambdas:
        return [line_item(ctx, lid, rtype, 0.0, NoCharge(NoChargeReason.DEPLOY_TIME_FUNCTION), FREE)]
    calls = lambda_invocations(ctx, lid, usage)
    if calls is None and lid in ctx.unknown_schedules:
        return [line_item(ctx, lid, rtype, None, UnknownSchedule(ctx.unknown_schedules[lid]), UNPRICED)]
    if calls is None:
        return [line_item(ctx, lid, rtype, None, Unpriced(UnpricedReason.NO_TRIGGER), UNPRICED)]
    invocations, seconds, why = calls
    memory_mb = (
        ctx.number(
            props.get("MemorySize"),
            LAMBDA_DEFAULT_MEMORY_MB,
            lid=lid,
            prop="MemorySize",
            minimum=LAMBDA_MEMORY_MB_RANGE[0],
            maximum=LAMBDA_MEMORY_MB_RANGE[1],
        )
        or LAMBDA_DEFAULT_MEMORY_MB
    )
    arch = ctx.literal((props.get("Architectures") or ["x86_64"])[0]) or "x86_64"
    gb = memory_mb / 1024
    duration_price, n1 = ctx.price(f"lambda.duration:{arch}")
    request_price, n2 = ctx.price("lambda.requests")
    parts = [
        component("Requests", invocations / 1e6, request_price),
        component("Duration", invocations * seconds * gb, duration_price),
    ]
    basis = FunctionUsage(
        invocations, seconds, memory_mb, str(arch), duration_price.usd, request_price.usd, why, first_note(n1, n2)
    )
    items = [line_item(ctx, lid, rtype, None, basis, PER_REQUEST, [duration_price, request_price], components=parts)]
    declared = (res.get("Metadata") or {}).get(CUSTOM_METRICS_METADATA)
    if isinstance(declared, dict) and isinstance(declared.get("always"), int):
        items.append(_custom_metrics_item(ctx, lid, declared))
    return items


def _custom_metrics_item(ctx: PricingContext, lid: str, declared: dict) -> Item:
    """Metrics the function emits at run time (EMF), declared by the stack in the function's
    metadata: `always` are sent on every request; up to `at_most` once every error class occurs."""
    price, note = ctx.price("cloudwatch.custom-metric")
    always, at_most = declared["always"], max(declared.get("at_most", declared["always"]), declared["always"])
    return line_item(
        ctx,
        f"{lid}/CustomMetrics",
        "CloudWatch custom metrics (EMF)",
        None,
        EmittedMetrics(always, at_most, price.usd, first_note(note)),
        FIXED,
        [price],
        components=[component("Metrics", per_month_to_daily(always), price, max_quantity=per_month_to_daily(at_most))],
    )
