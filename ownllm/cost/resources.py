"""One pricer per CloudFormation resource type, registered in PRICERS.

A pricer turns one resource into one or more `Item`s under the assumed usage. Types that
AWS does not charge for are listed in FREE with the reason; types nobody registered are
reported as unpriced, never as $0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ownllm.cost import scaling
from ownllm.cost.assembly import Stack
from ownllm.cost.catalog import Catalog, Price, hosting_item
from ownllm.cost.model import (
    FIXED,
    FREE,
    INSTANCES,
    PER_REQUEST,
    UNPRICED,
    Item,
    per_month_to_daily,
    price_text,
    usd,
)
from ownllm.cost.template import branches, checked_number, join_text, literal, refs
from ownllm.cost.usage import GB, Usage

LAMBDA_DEFAULT_MEMORY_MB = 128
LAMBDA_DEFAULT_TIMEOUT_S = 3
# A header-checking authorizer's billed time (Lambda bills per ms; ~1 ms of work plus runtime).
AUTHORIZER_DURATION_S = 0.01
# Function metadata key under which a stack declares the custom metrics the function emits.
CUSTOM_METRICS_METADATA = "ownllm:custom-metrics"
SCHEDULED_LAMBDA_DURATION_S = 1.0
NEVER_EXPIRE_STORAGE_DAYS = 365


class Unpriceable(Exception):
    """Raised by a pricer that cannot price its resource; the message is the reason."""


@dataclass
class VariantPlan:
    endpoint_id: str
    config_id: str | None
    variant: str
    instance_type: str | None  # the first of instance_types
    initial_count: int
    capacity: scaling.Capacity
    weight_share: float
    problem: str | None = None
    # Every instance type an intrinsic (Fn::If, Fn::FindInMap) can choose; one for a literal.
    instance_types: tuple[str, ...] = ()

    @property
    def alternatives(self) -> bool:
        return len(self.instance_types) > 1 or self.capacity.scaling == "alternatives"


@dataclass
class StackContext:
    """One stack's template, read once: who calls whom, which group each log goes to."""

    stack: Stack
    catalog: Catalog
    request_lambdas: set[str] = field(default_factory=set)
    authorizer_lambdas: set[str] = field(default_factory=set)
    deploy_lambdas: set[str] = field(default_factory=set)
    scheduled_lambdas: dict[str, float] = field(default_factory=dict)  # id -> invocations/day
    unknown_schedules: dict[str, str] = field(default_factory=dict)  # id -> a schedule that cannot be read
    lambda_log_group: dict[str, str] = field(default_factory=dict)  # function id -> log group id
    access_log_groups: set[str] = field(default_factory=set)
    endpoint_log_group: dict[str, str] = field(default_factory=dict)  # endpoint id -> log group id
    endpoint_plans: dict[str, list[VariantPlan]] = field(default_factory=dict)
    used_configs: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    fallbacks: set[str] = field(default_factory=set)  # catalog items priced at another region's rate

    @property
    def region(self) -> str:
        return self.stack.region

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.stack.resources

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resources.get(logical_id, {}).get("Properties") or {}

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") in types}

    def price(self, item: str) -> tuple[Price, str]:
        """The catalog price and a note when it is not the stack region's own figure."""
        p = self.catalog.get(item, self.region)
        if p is None:
            raise Unpriceable(f"no price for {item} in the catalog")
        note = ""
        if p.region != self.region:
            self.fallbacks.add(item)
            note = f" [{p.region} price: the catalog has none for {self.region}]"
        elif p.is_estimate:
            note = " [estimated price]"
        return p, note

    def literal(self, value: Any) -> Any:
        return literal(value, self.stack.parameters)

    def number(
        self, value: Any, default: float | None, *, lid: str, prop: str, minimum: float = 0.0, whole: bool = False
    ) -> float | None:
        """A plain number from the template (or `default` when it is not set or not a literal);
        a negative, non-finite or fractional-count value raises TemplateValueError."""
        plain = self.literal(value)
        if plain is None:
            return default
        return checked_number(plain, where=(self.stack.template_file, lid, prop), minimum=minimum, whole=whole)

    def alternatives(self, value: Any, *, lid: str, prop: str, whole: bool = False) -> list[Any] | None:
        """Every value an intrinsic can resolve to (Fn::If branches, mapping rows); numbers checked."""
        found = branches(value, self.stack.template)
        if found is None or not whole:
            return found
        where = (self.stack.template_file, lid, prop)
        return [int(checked_number(v, where=where, whole=True)) for v in found]


Pricer = Callable[[StackContext, str, dict[str, Any], Usage], list[Item]]
PRICERS: dict[str, Pricer] = {}


def pricer(*types: str) -> Callable[[Pricer], Pricer]:
    def register(fn: Pricer) -> Pricer:
        for t in types:
            PRICERS[t] = fn
        return fn

    return register


def _item(
    ctx: StackContext,
    logical_id: str,
    rtype: str,
    daily: float | None,
    basis: str,
    category: str,
    prices: Sequence[Price] = (),
    *,
    min_daily_usd: float | None = None,
    max_daily_usd: float | None = None,
) -> Item:
    return Item(
        ctx.stack.name,
        logical_id,
        rtype,
        daily,
        basis,
        category,
        sources=sorted({f"{p.item} ({p.region}): {p.source}, {p.date}" for p in prices}),
        uses_estimated_price=any(p.is_estimate or p.region != ctx.region for p in prices),
        min_daily_usd=min_daily_usd,
        max_daily_usd=max_daily_usd,
    )


# ----- preparation: the relationships pricers need ------------------------------------------


def prepare(stack: Stack, catalog: Catalog) -> StackContext:
    ctx = StackContext(stack, catalog)
    lambdas = set(ctx.of_type("AWS::Lambda::Function"))
    custom = {k for k, v in ctx.resources.items() if _is_custom(v.get("Type", ""))}

    # Request path: API Gateway integrations and invoke permissions for API Gateway.
    for res in ctx.of_type("AWS::ApiGateway::Method").values():
        integration = (res.get("Properties") or {}).get("Integration") or {}
        ctx.request_lambdas |= refs(integration.get("Uri")) & lambdas
    for res in ctx.of_type("AWS::ApiGatewayV2::Integration").values():
        ctx.request_lambdas |= refs((res.get("Properties") or {}).get("IntegrationUri")) & lambdas
    for res in ctx.of_type("AWS::Lambda::Permission").values():
        p = res.get("Properties") or {}
        principal = ctx.literal(p.get("Principal")) or ""
        if isinstance(principal, str) and principal.startswith("apigateway."):
            ctx.request_lambdas |= refs(p.get("FunctionName")) & lambdas
    for res in ctx.of_type("AWS::Lambda::Url").values():
        ctx.request_lambdas |= refs((res.get("Properties") or {}).get("TargetFunctionArn")) & lambdas
    # Authorizers run once per request too (no result caching assumed: an upper bound), but
    # only check a header: they do not wait for the model.
    for res in ctx.of_type("AWS::ApiGateway::Authorizer", "AWS::ApiGatewayV2::Authorizer").values():
        ctx.authorizer_lambdas |= refs((res.get("Properties") or {}).get("AuthorizerUri")) & lambdas
    ctx.request_lambdas -= ctx.authorizer_lambdas

    # Deploy time: handlers of custom resources, and the functions those handlers call.
    frontier = set()
    for rid in custom:
        frontier |= refs(ctx.props(rid).get("ServiceToken")) & lambdas
    while frontier:
        fid = frontier.pop()
        if fid in ctx.deploy_lambdas:
            continue
        ctx.deploy_lambdas.add(fid)
        env = (ctx.props(fid).get("Environment") or {}).get("Variables")
        frontier |= (refs(env) & lambdas) - ctx.deploy_lambdas
    # Scheduled: EventBridge rules and Scheduler schedules targeting a function.
    for res in ctx.of_type("AWS::Events::Rule", "AWS::Scheduler::Schedule").values():
        p = res.get("Properties") or {}
        expression = p.get("ScheduleExpression")
        targets = p.get("Targets") if res["Type"] == "AWS::Events::Rule" else [p.get("Target")]
        hit = refs(targets) & lambdas
        if not hit:
            continue
        per_day = invocations_per_day(expression) if isinstance(expression, str) else None
        for fid in hit:
            if per_day is None:
                ctx.unknown_schedules[fid] = str(expression)
                ctx.warnings.append(
                    f"{ctx.stack.name}/{fid}: schedule {expression!r} cannot be averaged over a week; "
                    "its invocations are unknown"
                )
            else:
                ctx.scheduled_lambdas[fid] = ctx.scheduled_lambdas.get(fid, 0.0) + per_day

    # Where each function logs.
    groups = set(ctx.of_type("AWS::Logs::LogGroup"))
    for fid in lambdas:
        cfg = ctx.props(fid).get("LoggingConfig") or {}
        target = refs(cfg.get("LogGroup")) & groups
        if target:
            ctx.lambda_log_group[fid] = sorted(target)[0]
    for gid in groups:
        name = ctx.props(gid).get("LogGroupName")
        text = join_text(name)
        if "/aws/lambda/" in text:
            for fid in refs(name) & lambdas:
                ctx.lambda_log_group.setdefault(fid, gid)
    endpoints = ctx.of_type("AWS::SageMaker::Endpoint")
    for gid in groups:
        name = ctx.props(gid).get("LogGroupName")
        if "/aws/sagemaker/Endpoints/" in join_text(name):
            for eid, res in endpoints.items():
                literal_name = ctx.literal((res.get("Properties") or {}).get("EndpointName"))
                if eid in refs(name) or (literal_name and join_text(name).endswith(f"/{literal_name}")):
                    ctx.endpoint_log_group.setdefault(eid, gid)
    for res in ctx.of_type("AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Stage").values():
        p = res.get("Properties") or {}
        setting = p.get("AccessLogSetting") or p.get("AccessLogSettings") or {}
        ctx.access_log_groups |= refs(setting.get("DestinationArn")) & groups

    _prepare_endpoints(ctx)
    return ctx


def _is_custom(rtype: str) -> bool:
    return rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource"


def _prepare_endpoints(ctx: StackContext) -> None:
    configs = ctx.of_type("AWS::SageMaker::EndpointConfig")
    endpoints = ctx.of_type("AWS::SageMaker::Endpoint")
    targets = ctx.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    for eid, res in endpoints.items():
        p = res.get("Properties") or {}
        cfg_ref = p.get("EndpointConfigName")
        cfg_id = next(iter(sorted(refs(cfg_ref) & set(configs))), None)
        if cfg_id is None and isinstance(cfg_ref, str):
            cfg_id = next(
                (
                    c
                    for c, r in configs.items()
                    if ctx.literal((r.get("Properties") or {}).get("EndpointConfigName")) == cfg_ref
                ),
                None,
            )
        if cfg_id is None:
            ctx.endpoint_plans[eid] = [
                VariantPlan(
                    eid,
                    None,
                    "?",
                    None,
                    0,
                    scaling.Capacity.fixed(0),
                    1.0,
                    "its endpoint config is not in this template",
                )
            ]
            continue
        ctx.used_configs.add(cfg_id)
        variants = (configs[cfg_id].get("Properties") or {}).get("ProductionVariants") or []
        weights = [
            ctx.number(
                v.get("InitialVariantWeight"), 1.0, lid=cfg_id, prop=f"ProductionVariants[{n}].InitialVariantWeight"
            )
            or 0.0
            for n, v in enumerate(variants)
        ]
        total_weight = sum(weights) or 1.0
        endpoint_name = ctx.literal(p.get("EndpointName"))
        plans = []
        for n, (variant, weight) in enumerate(zip(variants, weights, strict=True)):
            name = ctx.literal(variant.get("VariantName")) or "AllTraffic"
            where = f"ProductionVariants[{n}]"
            types = ctx.alternatives(variant.get("InstanceType"), lid=cfg_id, prop=f"{where}.InstanceType")
            raw_count = variant.get("InitialInstanceCount")
            counts = (
                None
                if raw_count is None
                else ctx.alternatives(raw_count, lid=cfg_id, prop=f"{where}.InitialInstanceCount", whole=True)
            )
            problem = None
            if variant.get("ServerlessConfig"):
                problem = "serverless inference variant: billed per ms of compute, not in the catalog"
            elif types is None or not all(isinstance(t, str) for t in types):
                problem = "InstanceType is neither a literal nor a choice between literals (Fn::If, Fn::FindInMap)"
            elif raw_count is None:
                problem = "InitialInstanceCount is not set"
            elif counts is None:
                problem = (
                    "InitialInstanceCount is neither a literal nor a choice between literals (Fn::If, Fn::FindInMap)"
                )
            count_range = counts or [0]
            capacity = _variant_capacity(
                ctx, eid, endpoint_name, name, min(count_range), max(count_range), variant, targets
            )
            itypes = tuple(t for t in types or [] if isinstance(t, str))
            plans.append(
                VariantPlan(
                    eid,
                    cfg_id,
                    name,
                    itypes[0] if itypes else None,
                    min(count_range),
                    capacity,
                    weight / total_weight,
                    problem,
                    itypes,
                )
            )
        ctx.endpoint_plans[eid] = plans


def _variant_capacity(
    ctx: StackContext,
    eid: str,
    endpoint_name: Any,
    variant_name: str,
    low_count: int,
    high_count: int,
    variant: dict[str, Any],
    targets: dict[str, dict[str, Any]],
) -> scaling.Capacity:
    for tid, res in targets.items():
        p = res.get("Properties") or {}
        if ctx.literal(p.get("ServiceNamespace")) not in (None, "sagemaker"):
            continue
        resource_id = p.get("ResourceId")
        text = join_text(resource_id)
        names_endpoint = eid in refs(resource_id) or (
            isinstance(endpoint_name, str) and f"endpoint/{endpoint_name}/" in text
        )
        if not names_endpoint or not text.endswith(f"/variant/{variant_name}"):
            continue
        lo = int(ctx.number(p.get("MinCapacity"), low_count, lid=tid, prop="MinCapacity", whole=True) or 0)
        hi = int(ctx.number(p.get("MaxCapacity"), high_count, lid=tid, prop="MaxCapacity", whole=True) or 0)
        if lo > hi:
            ctx.warnings.append(
                f"{ctx.stack.name}/{tid}: MinCapacity {lo} is above MaxCapacity {hi}, which Application Auto "
                f"Scaling refuses; priced as {lo} instances"
            )
        actions = []
        for n, a in enumerate(p.get("ScheduledActions") or []):
            target_action = a.get("ScalableTargetAction") or {}
            mn = ctx.number(
                target_action.get("MinCapacity"), None, lid=tid, prop=f"ScheduledActions[{n}].MinCapacity", whole=True
            )
            mx = ctx.number(
                target_action.get("MaxCapacity"), None, lid=tid, prop=f"ScheduledActions[{n}].MaxCapacity", whole=True
            )
            actions.append(
                scaling.ScheduledAction(
                    str(ctx.literal(a.get("Schedule")) or ""),
                    None if mn is None else int(mn),
                    None if mx is None else int(mx),
                    ctx.literal(a.get("Timezone")),
                )
            )
        cap = scaling.capacity_from_target(lo, hi, actions)
        cap.described = f"ScalableTarget {tid}: " + cap.described
        ctx.warnings.extend(f"{ctx.stack.name}/{tid}: {n}" for n in cap.notes)
        return cap
    managed = variant.get("ManagedInstanceScaling") or {}
    if ctx.literal(managed.get("Status")) == "ENABLED":
        cfg = "ManagedInstanceScaling"
        lo = int(
            ctx.number(managed.get("MinInstanceCount"), low_count, lid=eid, prop=f"{cfg}.MinInstanceCount", whole=True)
            or 0
        )
        hi = int(
            ctx.number(managed.get("MaxInstanceCount"), high_count, lid=eid, prop=f"{cfg}.MaxInstanceCount", whole=True)
            or 0
        )
        cap = scaling.capacity_from_target(lo, hi, [])
        cap.described = f"managed instance scaling {lo}..{hi}"
        return cap
    if low_count != high_count:
        return scaling.Capacity.alternatives(low_count, high_count)
    return scaling.Capacity.fixed(low_count)


def invocations_per_day(expression: str) -> float | None:
    """Invocations per day of rate() or weekly cron() schedule expressions; None if unknown."""
    text = expression.strip()
    if text.startswith("rate(") and text.endswith(")"):
        amount, _, unit = text[5:-1].strip().partition(" ")
        per = {"minute": 1440, "minutes": 1440, "hour": 24, "hours": 24, "day": 1, "days": 1}.get(unit.strip())
        return per / int(amount) if per and amount.isdigit() and int(amount) > 0 else None
    try:
        return len(scaling.cron_minutes_of_week(text)) / 7
    except scaling.ScheduleError:
        return None


# ----- SageMaker ------------------------------------------------------------------------------


def variant_instance_hours(plan: VariantPlan, usage: Usage) -> tuple[float, int]:
    """(expected instance-hours per day, instances the variant's share of the load needs)."""
    share_tps = usage.tokens_per_s_while_active() * plan.weight_share
    needed = math.ceil(share_tps / usage.instance_tokens_per_s - 1e-9) if usage.instance_tokens_per_s else 0

    def needed_at(weekday: int, hour: int) -> int:
        return needed if usage.is_active(weekday, hour) else 0

    return plan.capacity.instance_hours_per_day(needed_at), needed


@pricer("AWS::SageMaker::Endpoint")
def price_endpoint(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    plans = ctx.endpoint_plans.get(lid) or []
    items: list[Item] = []
    for plan in plans:
        item_id = lid if len(plans) == 1 else f"{lid}/{plan.variant}"
        rtype = "AWS::SageMaker::Endpoint"
        if plan.problem or not plan.instance_type:
            items.append(_item(ctx, item_id, rtype, None, plan.problem or "no instance type", UNPRICED))
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
                _item(
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
        daily = hours * price.usd
        low = plan.capacity.bound_hours_per_day(high=False) * price.usd
        high = plan.capacity.bound_hours_per_day(high=True) * price.usd
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
        if needed > cap.max_count:
            basis += f"; CAPACITY: the load needs {needed} instances, at most {cap.max_count} can run"
        items.append(
            _item(ctx, item_id, rtype, daily, basis + note, INSTANCES, [price], min_daily_usd=low, max_daily_usd=high)
        )
    if plans and any(p.instance_type and not p.problem for p in plans):
        try:
            price, note = ctx.price("sagemaker.data-processed")
            gb = usage.requests_per_day * (usage.request_bytes + usage.response_bytes) / GB
            items.append(
                _item(
                    ctx,
                    f"{lid}/DataProcessed",
                    "AWS::SageMaker::Endpoint (data processed)",
                    gb * price.usd,
                    f"{usage.requests_per_day:,.0f} requests x {usage.request_bytes + usage.response_bytes:,} B "
                    f"= {gb:.4g} GB in+out x {price_text(price.usd)}/GB" + note,
                    PER_REQUEST,
                    [price],
                )
            )
        except Unpriceable as exc:
            items.append(
                _item(
                    ctx, f"{lid}/DataProcessed", "AWS::SageMaker::Endpoint (data processed)", None, str(exc), UNPRICED
                )
            )
    return items


def _alternatives_item(
    ctx: StackContext, item_id: str, rtype: str, plan: VariantPlan, priced: list[tuple[str, Price, str]]
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
    return _item(
        ctx, item_id, rtype, high, basis, INSTANCES, [p for _, p, _ in priced], min_daily_usd=low, max_daily_usd=high
    )


@pricer("AWS::SageMaker::EndpointConfig")
def price_endpoint_config(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    if lid in ctx.used_configs:
        basis = "no charge: its instances are billed on the endpoint line"
    else:
        basis = "no charge: no endpoint in this stack uses it, so it runs nothing"
    return [_item(ctx, lid, res["Type"], 0.0, basis, FREE)]


# ----- Lambda -----------------------------------------------------------------------------


def _lambda_invocations(ctx: StackContext, lid: str, usage: Usage) -> tuple[float, float, str] | None:
    """(invocations/day, seconds each, why) or None when nothing in the templates calls it."""
    props = ctx.props(lid)
    timeout = (
        ctx.number(props.get("Timeout"), LAMBDA_DEFAULT_TIMEOUT_S, lid=lid, prop="Timeout", minimum=1)
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
def price_lambda(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    rtype = res["Type"]
    if lid in ctx.deploy_lambdas and lid not in ctx.request_lambdas:
        return [
            _item(
                ctx, lid, rtype, 0.0, "no daily charge: a custom-resource handler, invoked only while deploying", FREE
            )
        ]
    calls = _lambda_invocations(ctx, lid, usage)
    if calls is None and lid in ctx.unknown_schedules:
        return [
            _item(
                ctx, lid, rtype, None, f"schedule {ctx.unknown_schedules[lid]!r}: invocations per day unknown", UNPRICED
            )
        ]
    if calls is None:
        return [
            _item(
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
        ctx.number(props.get("MemorySize"), LAMBDA_DEFAULT_MEMORY_MB, lid=lid, prop="MemorySize", minimum=128)
        or LAMBDA_DEFAULT_MEMORY_MB
    )
    arch = ctx.literal((props.get("Architectures") or ["x86_64"])[0]) or "x86_64"
    gb = memory_mb / 1024
    duration_price, n1 = ctx.price(f"lambda.duration:{arch}")
    request_price, n2 = ctx.price("lambda.requests")
    daily = invocations * seconds * gb * duration_price.usd + invocations / 1e6 * request_price.usd
    basis = (
        f"{invocations:,.0f} invocations x {seconds:.2f} s x {gb:g} GB ({memory_mb:g} MB, {arch}) "
        f"x {price_text(duration_price.usd)}/GB-s + {invocations:,.0f} x {price_text(request_price.usd)}/1M requests"
        f" ({why})" + (n1 or n2)
    )
    items = [_item(ctx, lid, rtype, daily, basis, PER_REQUEST, [duration_price, request_price])]
    declared = (res.get("Metadata") or {}).get(CUSTOM_METRICS_METADATA)
    if isinstance(declared, dict) and isinstance(declared.get("always"), int):
        items.append(_custom_metrics_item(ctx, lid, declared))
    return items


def _custom_metrics_item(ctx: StackContext, lid: str, declared: dict) -> Item:
    """Metrics the function emits at run time (EMF), declared by the stack in the function's
    metadata: `always` are sent on every request; up to `at_most` once every error class occurs."""
    price, note = ctx.price("cloudwatch.custom-metric")
    always, at_most = declared["always"], max(declared.get("at_most", declared["always"]), declared["always"])
    return _item(
        ctx,
        f"{lid}/CustomMetrics",
        "CloudWatch custom metrics (EMF)",
        per_month_to_daily(always * price.usd),
        f"{always} metric(s) emitted on every request x {price_text(price.usd)}/metric-month "
        f"(up to {at_most} when every error class occurs)" + note,
        FIXED,
        [price],
        max_daily_usd=per_month_to_daily(at_most * price.usd),
    )


# ----- API Gateway ------------------------------------------------------------------------


def _data_transfer_item(ctx: StackContext, lid: str, usage: Usage) -> Item:
    price, note = ctx.price("datatransfer.out.internet")
    gb = usage.requests_per_day * usage.response_bytes / GB
    return _item(
        ctx,
        f"{lid}/DataTransferOut",
        "data transfer out (internet)",
        gb * price.usd,
        f"{usage.requests_per_day:,.0f} responses x {usage.response_bytes:,} B = {gb:.4g} GB "
        f"x {price_text(price.usd)}/GB" + note,
        PER_REQUEST,
        [price],
    )


@pricer("AWS::ApiGateway::RestApi")
def price_rest_api(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    price, note = ctx.price("apigateway.rest.requests")
    daily = usage.requests_per_day / 1e6 * price.usd
    basis = f"{usage.requests_per_day:,.0f} requests x {price_text(price.usd)}/1M (REST API)" + note
    return [_item(ctx, lid, res["Type"], daily, basis, PER_REQUEST, [price]), _data_transfer_item(ctx, lid, usage)]


@pricer("AWS::ApiGatewayV2::Api")
def price_http_api(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    protocol = ctx.literal((res.get("Properties") or {}).get("ProtocolType")) or "HTTP"
    if protocol != "HTTP":
        return [
            _item(
                ctx,
                lid,
                res["Type"],
                None,
                f"{protocol} API: billed per message and connection-minute, not in the catalog",
                UNPRICED,
            )
        ]
    price, note = ctx.price("apigateway.http.requests")
    daily = usage.requests_per_day / 1e6 * price.usd
    basis = (
        f"{usage.requests_per_day:,.0f} requests x {price_text(price.usd)}/1M "
        f"(HTTP API; each request under 512 KB counts once)" + note
    )
    return [_item(ctx, lid, res["Type"], daily, basis, PER_REQUEST, [price]), _data_transfer_item(ctx, lid, usage)]


@pricer("AWS::ApiGateway::Stage")
def price_rest_stage(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    props = res.get("Properties") or {}
    if ctx.literal(props.get("CacheClusterEnabled")) is True:
        return [
            _item(
                ctx,
                lid,
                res["Type"],
                None,
                f"stage cache ({props.get('CacheClusterSize', '0.5')} GB) is billed per hour; not in the catalog",
                UNPRICED,
            )
        ]
    return [_item(ctx, lid, res["Type"], 0.0, "no charge: requests are billed on the API line", FREE)]


# ----- Logs -------------------------------------------------------------------------------


def _log_item(
    ctx: StackContext,
    lid: str,
    rtype: str,
    writers: list[tuple[str, float]],
    retention_days: float | None,
    usage: Usage,
    prefix: str = "",
) -> Item:
    bytes_per_day = sum(b for _, b in writers)
    ingest, n1 = ctx.price("logs.ingestion")
    storage, n2 = ctx.price("logs.storage")
    gb = bytes_per_day / GB
    kept = retention_days if retention_days else NEVER_EXPIRE_STORAGE_DAYS
    stored_gb = gb * kept
    daily = gb * ingest.usd + per_month_to_daily(stored_gb * storage.usd)
    who = " + ".join(w for w, _ in writers)
    retention = (
        f"{kept:g} days retention"
        if retention_days
        else (f"never expires: priced at {NEVER_EXPIRE_STORAGE_DAYS} days kept")
    )
    basis = (
        f"{prefix}{who}: {gb:.4g} GB/day x {price_text(ingest.usd)}/GB ingestion + "
        f"{stored_gb:.4g} GB stored ({retention}, uncompressed) x {price_text(storage.usd)}/GB-month" + (n1 or n2)
    )
    return _item(ctx, lid, rtype, daily, basis, PER_REQUEST, [ingest, storage])


def _lambda_log_writer(ctx: StackContext, fid: str, usage: Usage) -> tuple[str, float] | None:
    calls = _lambda_invocations(ctx, fid, usage)
    if calls is None or fid in ctx.deploy_lambdas and fid not in ctx.request_lambdas:
        return None
    per_day = calls[0]
    return (
        f"{per_day:,.0f} x {usage.lambda_log_bytes_per_request:,} B from {fid}",
        per_day * usage.lambda_log_bytes_per_request,
    )


@pricer("AWS::Logs::LogGroup")
def price_log_group(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    writers: list[tuple[str, float]] = []
    for fid, gid in ctx.lambda_log_group.items():
        if gid == lid:
            w = _lambda_log_writer(ctx, fid, usage)
            if w:
                writers.append(w)
    for eid, gid in ctx.endpoint_log_group.items():
        if gid == lid:
            writers.append(_endpoint_log_writer(eid, usage))
    if lid in ctx.access_log_groups:
        writers.append(
            (
                f"{usage.requests_per_day:,.0f} x {usage.access_log_bytes_per_request:,} B of API access log",
                usage.requests_per_day * usage.access_log_bytes_per_request,
            )
        )
    if not writers:
        return [
            _item(
                ctx,
                lid,
                res["Type"],
                0.0,
                "no charge for the group; no per-request writer found in the templates "
                "(deploy-time logs not estimated)",
                FREE,
            )
        ]
    retention = ctx.number(
        (res.get("Properties") or {}).get("RetentionInDays"), None, lid=lid, prop="RetentionInDays", minimum=1
    )
    return [_log_item(ctx, lid, res["Type"], writers, retention, usage)]


def _endpoint_log_writer(eid: str, usage: Usage) -> tuple[str, float]:
    return (
        f"{usage.requests_per_day:,.0f} x {usage.endpoint_log_bytes_per_request:,} B from {eid}'s container",
        usage.requests_per_day * usage.endpoint_log_bytes_per_request,
    )


def implicit_log_items(ctx: StackContext, usage: Usage) -> list[Item]:
    """Log groups the services create on first write, when the template has none for them:
    /aws/lambda/<function> and /aws/sagemaker/Endpoints/<endpoint>."""
    items = []
    for eid, plans in sorted(ctx.endpoint_plans.items()):
        if eid in ctx.endpoint_log_group or not any(p.instance_type and not p.problem for p in plans):
            continue
        items.append(
            _log_item(
                ctx,
                f"{eid}/LogGroup",
                "AWS::Logs::LogGroup (implicit)",
                [_endpoint_log_writer(eid, usage)],
                None,
                usage,
                prefix="/aws/sagemaker/Endpoints group created by SageMaker, not in the template; ",
            )
        )
    for fid in sorted(ctx.of_type("AWS::Lambda::Function")):
        if fid in ctx.lambda_log_group:
            continue
        w = _lambda_log_writer(ctx, fid, usage)
        if w:
            items.append(
                _log_item(
                    ctx,
                    f"{fid}/LogGroup",
                    "AWS::Logs::LogGroup (implicit)",
                    [w],
                    None,
                    usage,
                    prefix="/aws/lambda group created by Lambda, not in the template; ",
                )
            )
    return items


@pricer("AWS::Logs::MetricFilter")
def price_metric_filter(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    n = len((res.get("Properties") or {}).get("MetricTransformations") or []) or 1
    price, note = ctx.price("cloudwatch.custom-metric")
    return [
        _item(
            ctx,
            lid,
            res["Type"],
            per_month_to_daily(n * price.usd),
            f"{n} custom metric(s) x {price_text(price.usd)}/metric-month" + note,
            FIXED,
            [price],
        )
    ]


# ----- CloudWatch ----------------------------------------------------------------------------


@pricer("AWS::CloudWatch::Alarm")
def price_alarm(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
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
        _item(
            ctx,
            lid,
            res["Type"],
            per_month_to_daily(n * price.usd),
            f"{n} metric(s) x {price_text(price.usd)}/alarm-metric-month ({kind}, {period:g} s period)" + note,
            FIXED,
            [price],
        )
    ]


# ----- everything else with a price ------------------------------------------------------

# Flat monthly fees: resource type -> (catalog item, what is billed, what the fee leaves out).
MONTHLY_FEES = {
    "AWS::CloudWatch::CompositeAlarm": ("cloudwatch.alarm.composite", "1 composite alarm", ""),
    "AWS::CloudWatch::Dashboard": ("cloudwatch.dashboard", "1 dashboard", " (the 3 free dashboards are not applied)"),
    "AWS::KMS::Key": ("kms.key", "1 key", " (requests not estimated)"),
    "AWS::SecretsManager::Secret": ("secretsmanager.secret", "1 secret", " (API calls not estimated)"),
}


def _monthly_fee(catalog_item: str, what: str, remark: str) -> Pricer:
    def price_monthly(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
        price, note = ctx.price(catalog_item)
        return [
            _item(
                ctx,
                lid,
                res["Type"],
                per_month_to_daily(price.usd),
                f"{what} x {price_text(price.usd)}/month{remark}" + note,
                FIXED,
                [price],
            )
        ]

    return price_monthly


for _rtype, _fee in MONTHLY_FEES.items():
    pricer(_rtype)(_monthly_fee(*_fee))


@pricer("AWS::Scheduler::Schedule")
def price_schedule(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    expression = ctx.literal((res.get("Properties") or {}).get("ScheduleExpression"))
    per_day = invocations_per_day(expression) if isinstance(expression, str) else None
    if per_day is None:
        return [_item(ctx, lid, res["Type"], None, f"schedule {expression!r}: invocations per day unknown", UNPRICED)]
    price, note = ctx.price("scheduler.invocations")
    return [
        _item(
            ctx,
            lid,
            res["Type"],
            per_day / 1e6 * price.usd,
            f"{per_day:g} invocations/day ({expression}) x {price_text(price.usd)}/1M "
            "(the 14M/month free tier is not applied)" + note,
            PER_REQUEST,
            [price],
        )
    ]


@pricer("AWS::CloudFormation::Stack")
def price_nested_stack(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    asset = (res.get("Metadata") or {}).get("aws:asset:path")
    if asset:
        return [
            _item(
                ctx,
                lid,
                res["Type"],
                0.0,
                f"no charge: a nested stack; its resources are priced under {ctx.stack.name}/{lid}",
                FREE,
            )
        ]
    return [_item(ctx, lid, res["Type"], None, "nested stack whose template is not in cdk.out", UNPRICED)]


# ----- no charge -------------------------------------------------------------------------

_NO_CHARGE = "no charge"
FREE_TYPES: dict[str, str] = {
    "AWS::IAM::Role": _NO_CHARGE,
    "AWS::IAM::Policy": _NO_CHARGE,
    "AWS::IAM::ManagedPolicy": _NO_CHARGE,
    "AWS::IAM::InstanceProfile": _NO_CHARGE,
    "AWS::Lambda::Permission": _NO_CHARGE,
    "AWS::Lambda::Version": _NO_CHARGE,
    "AWS::Lambda::Alias": _NO_CHARGE,
    "AWS::Lambda::EventInvokeConfig": _NO_CHARGE,
    "AWS::Lambda::Url": "no charge: requests are billed on the function line",
    "AWS::ApiGateway::Deployment": _NO_CHARGE,
    "AWS::ApiGateway::Method": "no charge: requests are billed on the API line",
    "AWS::ApiGateway::Resource": _NO_CHARGE,
    "AWS::ApiGateway::ApiKey": _NO_CHARGE,
    "AWS::ApiGateway::UsagePlan": _NO_CHARGE,
    "AWS::ApiGateway::UsagePlanKey": _NO_CHARGE,
    "AWS::ApiGateway::Authorizer": "no charge (a Lambda authorizer's function is billed on its own line)",
    "AWS::ApiGateway::RequestValidator": _NO_CHARGE,
    "AWS::ApiGateway::Model": _NO_CHARGE,
    "AWS::ApiGateway::GatewayResponse": _NO_CHARGE,
    "AWS::ApiGateway::Account": _NO_CHARGE,
    "AWS::ApiGateway::BasePathMapping": _NO_CHARGE,
    "AWS::ApiGatewayV2::Stage": _NO_CHARGE,
    "AWS::ApiGatewayV2::Route": _NO_CHARGE,
    "AWS::ApiGatewayV2::Integration": _NO_CHARGE,
    "AWS::ApiGatewayV2::Authorizer": _NO_CHARGE,
    "AWS::SageMaker::Model": "no charge: a model definition; instances are billed on the endpoint line",
    "AWS::SageMaker::InferenceComponent": "no charge: billed through its endpoint's instances",
    "AWS::ApplicationAutoScaling::ScalableTarget": "no charge: its effect is in the endpoint line",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "no charge: its effect is in the endpoint line",
    "AWS::SNS::Topic": "no charge for a topic; alarm notifications fall within SNS's free tier",
    "AWS::SNS::TopicPolicy": _NO_CHARGE,
    "AWS::SNS::Subscription": _NO_CHARGE,
    "AWS::Budgets::Budget": "no charge for a budget (only action-enabled budgets beyond two are billed)",
    "AWS::Logs::ResourcePolicy": _NO_CHARGE,
    "AWS::Logs::SubscriptionFilter": "no charge for the filter (its destination is billed on its own line)",
    "AWS::Events::Rule": "no charge for scheduled rules and AWS service events",
    "AWS::Scheduler::ScheduleGroup": _NO_CHARGE,
    "AWS::S3::BucketPolicy": _NO_CHARGE,
    "AWS::SQS::QueuePolicy": _NO_CHARGE,
    "AWS::CertificateManager::Certificate": "no charge for public certificates",
    "AWS::CloudFormation::WaitConditionHandle": _NO_CHARGE,
    "AWS::CloudFormation::WaitCondition": _NO_CHARGE,
    # CDK's own deploy-time helpers: they run during deployment and leave nothing running.
    "Custom::LogRetention": "no charge: a CDK deploy-time helper",
    "Custom::S3AutoDeleteObjects": "no charge: a CDK deploy-time helper",
    "Custom::CDKBucketDeployment": "no charge: a CDK deploy-time helper (the bucket is priced on its own line)",
}
SKIPPED_TYPES = frozenset({"AWS::CDK::Metadata"})
USAGE_UNKNOWN: dict[str, str] = {
    "AWS::S3::Bucket": "storage and requests depend on what is stored; not estimated",
    "AWS::ECR::Repository": "storage depends on the images pushed; not estimated",
    "AWS::SQS::Queue": "billed per request; message volume unknown",
    "AWS::DynamoDB::Table": "billed per request or provisioned capacity; not estimated",
}


def price_resource(ctx: StackContext, lid: str, res: dict, usage: Usage) -> list[Item]:
    rtype = res.get("Type", "")
    if rtype in SKIPPED_TYPES:
        return []
    fn = PRICERS.get(rtype)
    if fn is not None:
        try:
            return fn(ctx, lid, res, usage)
        except Unpriceable as exc:
            return [_item(ctx, lid, rtype, None, str(exc), UNPRICED)]
    if rtype in FREE_TYPES:
        return [_item(ctx, lid, rtype, 0.0, FREE_TYPES[rtype], FREE)]
    if rtype in USAGE_UNKNOWN:
        return [_item(ctx, lid, rtype, None, USAGE_UNKNOWN[rtype], UNPRICED)]
    if _is_custom(rtype):
        return [
            _item(ctx, lid, rtype, None, "custom resource: what it creates or calls is not in the template", UNPRICED)
        ]
    return [_item(ctx, lid, rtype, None, f"no pricer for {rtype}", UNPRICED)]
