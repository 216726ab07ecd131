"""Lambda functions: requests and GB-seconds, for whatever invokes them."""

from __future__ import annotations

from ownllm.cost.model import FIXED, FREE, PER_REQUEST, UNPRICED, Item, per_month_to_daily, price_text
from ownllm.cost.pricers.base import PricingContext, component, line_item, pricer
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


def lambda_invocations(ctx: PricingContext, lid: str, usage: Usage) -> tuple[float, float, str] | None:
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
        why = "on the request path"
        if usage.lambda_duration_s > timeout:
            why += f"; capped at its {timeout:g} s timeout"
        return usage.requests_per_day, duration, why
    if lid in ctx.authorizer_lambdas:
        return (
            usage.requests_per_day,
            min(AUTHORIZER_DURATION_S, timeout),
            f"API authorizer, once per request; {AUTHORIZER_DURATION_S * 1000:g} ms per run assumed",
        )
    if lid in ctx.scheduled_lambdas:
        return (
            ctx.scheduled_lambdas[lid],
            min(SCHEDULED_LAMBDA_DURATION_S, timeout),
            f"scheduled; {SCHEDULED_LAMBDA_DURATION_S:g} s per run assumed",
        )
    return None


@pricer("AWS::Lambda::Function")
def price_lambda(ctx: PricingContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    rtype = res["Type"]
    if lid in ctx.deploy_lambdas and lid not in ctx.request_lambdas:
        return [
            line_item(
                ctx, lid, rtype, 0.0, "no daily charge: a custom-resource handler, invoked only while deploying", FREE
            )
        ]
    calls = lambda_invocations(ctx, lid, usage)
    if calls is None and lid in ctx.unknown_schedules:
        return [
            line_item(
                ctx, lid, rtype, None, f"schedule {ctx.unknown_schedules[lid]!r}: invocations per day unknown", UNPRICED
            )
        ]
    if calls is None:
        return [
            line_item(
                ctx,
                lid,
                rtype,
                None,
                "no trigger found in the templates (API integration, permission for API Gateway, "
                "schedule or custom resource): invocations per day unknown",
                UNPRICED,
            )
        ]
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
    basis = (
        f"{invocations:,.0f} invocations x {seconds:.2f} s x {gb:g} GB ({memory_mb:g} MB, {arch}) "
        f"x {price_text(duration_price.usd)}/GB-s + {invocations:,.0f} x {price_text(request_price.usd)}/1M requests"
        f" ({why})" + (n1 or n2)
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
        f"{always} metric(s) emitted on every request x {price_text(price.usd)}/metric-month "
        f"(up to {at_most} when every error class occurs)" + note,
        FIXED,
        [price],
        components=[component("Metrics", per_month_to_daily(always), price, max_quantity=per_month_to_daily(at_most))],
    )
