"""The template graph: which resource calls, logs to, scales or configures which.

Pure template reading, no prices and no usage: `link` fills a StackGraph once per stack, and
every pricer reads the relationships from it (who is on the request path, which log group a
function writes to, how many instances an endpoint variant can run, hour by hour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ownllm.cost import scaling
from ownllm.cost.assembly import Stack
from ownllm.cost.basis import (
    CapacityKind,
    CapacityRule,
    IgnoredAction,
    InvertedBounds,
    TemplateWarning,
    UnaveragedSchedule,
    UnreadableVariant,
    VariantProblem,
)
from ownllm.cost.template import branches, checked_number, join_text, literal, refs


@dataclass
class VariantPlan:
    endpoint_id: str
    config_id: str | None
    variant: str
    instance_type: str | None  # the first of instance_types
    initial_count: int
    capacity: scaling.Capacity
    weight_share: float
    problem: UnreadableVariant | None = None
    # Every instance type an intrinsic (Fn::If, Fn::FindInMap) can choose; one for a literal.
    instance_types: tuple[str, ...] = ()

    @property
    def alternatives(self) -> bool:
        return len(self.instance_types) > 1 or self.capacity.scaling == "alternatives"


@dataclass
class StackGraph:
    """One stack's template, read once: who calls whom, which group each log goes to."""

    stack: Stack
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
    warnings: list[TemplateWarning] = field(default_factory=list)

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

    def literal(self, value: Any) -> Any:
        return literal(value, self.stack.parameters)

    def number(
        self,
        value: Any,
        default: float | None,
        *,
        lid: str,
        prop: str,
        minimum: float = 0.0,
        maximum: float = math.inf,
        whole: bool = False,
    ) -> float | None:
        """A plain number from the template (or `default` when it is not set or not a literal);
        a negative, non-finite or fractional-count value raises TemplateValueError."""
        plain = self.literal(value)
        if plain is None:
            return default
        where = (self.stack.template_file, lid, prop)
        return checked_number(plain, where=where, minimum=minimum, maximum=maximum, whole=whole)

    def alternatives(self, value: Any, *, lid: str, prop: str, whole: bool = False) -> list[Any] | None:
        """Every value an intrinsic can resolve to (Fn::If branches, mapping rows); numbers checked."""
        found = branches(value, self.stack.template)
        if found is None or not whole:
            return found
        where = (self.stack.template_file, lid, prop)
        return [int(checked_number(v, where=where, whole=True)) for v in found]


# ----- preparation: the relationships pricers need ------------------------------------------


def link(ctx: StackGraph) -> None:
    """Fill in the relationships of `ctx.stack`'s resources."""
    lambdas = set(ctx.of_type("AWS::Lambda::Function"))
    custom = {k for k, v in ctx.resources.items() if is_custom(v.get("Type", ""))}

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
                ctx.warnings.append(UnaveragedSchedule(ctx.stack.name, fid, str(expression)))
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


def is_custom(rtype: str) -> bool:
    return rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource"


def _prepare_endpoints(ctx: StackGraph) -> None:
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
                    UnreadableVariant(VariantProblem.CONFIG_MISSING),
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
                problem = UnreadableVariant(VariantProblem.SERVERLESS)
            elif types is None or not all(isinstance(t, str) for t in types):
                problem = UnreadableVariant(VariantProblem.INSTANCE_TYPE_UNKNOWN)
            elif raw_count is None:
                problem = UnreadableVariant(VariantProblem.COUNT_MISSING)
            elif counts is None:
                problem = UnreadableVariant(VariantProblem.COUNT_UNKNOWN)
            count_range = counts or [0]
            try:
                capacity = _variant_capacity(
                    ctx, eid, endpoint_name, name, min(count_range), max(count_range), variant, targets
                )
            except UnknownCapacity as exc:
                capacity = scaling.Capacity.fixed(0)
                problem = problem or UnreadableVariant(VariantProblem.BOUND_UNKNOWN, exc.target_id, exc.prop)
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


class UnknownCapacity(ValueError):
    """A scaling bound that is neither a literal nor a choice between literals."""

    def __init__(self, target_id: str, prop: str):
        super().__init__(target_id, prop)
        self.target_id = target_id
        self.prop = prop


def _counts(ctx: StackGraph, value: Any, default: int, *, lid: str, prop: str) -> list[int]:
    """The instance counts a bound can take (one for a literal, each branch of Fn::If)."""
    if value is None:
        return [default]
    found = ctx.alternatives(value, lid=lid, prop=prop, whole=True)
    if found is None:
        raise UnknownCapacity(lid, prop)
    return [int(v) for v in found]


def _component_on_variant(ctx: StackGraph, text: str, referenced: set[str], eid: str, variant_name: str) -> bool:
    """A scalable target of an inference component's copies hosted on this endpoint's variant
    (scale to zero): one copy per instance, so its bounds are the variant's instance bounds."""
    if not text.startswith("inference-component/"):
        return False
    for cid, component in ctx.of_type("AWS::SageMaker::InferenceComponent").items():
        c = component.get("Properties") or {}
        same = cid in referenced or text == f"inference-component/{ctx.literal(c.get('InferenceComponentName'))}"
        hosted = eid in refs(c.get("EndpointName")) and ctx.literal(c.get("VariantName")) in (None, variant_name)
        if same and hosted:
            return True
    return False


def _variant_capacity(
    ctx: StackGraph,
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
        on_variant = names_endpoint and text.endswith(f"/variant/{variant_name}")
        if not on_variant and not _component_on_variant(ctx, text, refs(resource_id), eid, variant_name):
            continue
        lo = min(_counts(ctx, p.get("MinCapacity"), low_count, lid=tid, prop="MinCapacity"))
        hi = max(_counts(ctx, p.get("MaxCapacity"), high_count, lid=tid, prop="MaxCapacity"))
        if lo > hi:
            ctx.warnings.append(InvertedBounds(ctx.stack.name, tid, lo, hi))
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
        cap.rule = replace(cap.rule, target_id=tid)
        ctx.warnings.extend(IgnoredAction(ctx.stack.name, tid, reason) for reason in cap.ignored_actions)
        return cap
    managed = variant.get("ManagedInstanceScaling") or {}
    if ctx.literal(managed.get("Status")) == "ENABLED":
        cfg = "ManagedInstanceScaling"
        lo = min(_counts(ctx, managed.get("MinInstanceCount"), low_count, lid=eid, prop=f"{cfg}.MinInstanceCount"))
        hi = max(_counts(ctx, managed.get("MaxInstanceCount"), high_count, lid=eid, prop=f"{cfg}.MaxInstanceCount"))
        cap = scaling.capacity_from_target(lo, hi, [])
        cap.rule = CapacityRule(CapacityKind.MANAGED, lo, hi)
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
