"""Assembles the three stacks on an app, with cdk-nag AwsSolutions as a validation plugin.

Every stack carries two CloudFormation Rules, evaluated when a stack is created or updated
(also when `cdk deploy` creates its change set) and never on delete
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html):
- `SupportedRegion`: an environment-agnostic template refuses, with the list, a region that
  ownllm.regions does not support;
- `CostGuard`, only when the cost estimate exceeds max_daily_usd: an assertion that is false
  by construction, whose description is the refusal. See app.py for why the guard lives in
  the template rather than in synth.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Aws, CfnRule, Environment, Fn, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from ownllm import regions
from ownllm.artifacts import ModelArtifacts
from ownllm.settings import Settings, SettingsError
from stacks.api import ApiStack
from stacks.monitoring import MonitoringStack
from stacks.serving import ServingStack

# Headroom over the most the configured instances can cost in a day, before the budget alerts.
BUDGET_HEADROOM = 1.2


@dataclass
class OwnLlmStacks:
    serving: ServingStack
    api: ApiStack
    monitoring: MonitoringStack


def daily_budget_usd(settings: Settings) -> float:
    """max_daily_usd when set; else every allowed instance all day, plus headroom."""
    if settings.max_daily_usd:
        return settings.max_daily_usd
    from ownllm.cost.catalog import hosting_item, load_catalog

    price = load_catalog().get(hosting_item(settings.instance_type), settings.region or "us-east-1")
    hourly = price.usd if price else 0.0
    return max(1.0, settings.max_instances * 24 * hourly * BUDGET_HEADROOM)


def check_region(settings: Settings) -> None:
    """Raises SettingsError (one line: region, why, supported list) for an unsupported region."""
    problem = regions.unsupported_region_problem(settings.region) if settings.region else None
    if problem is None and settings.region and settings.scale_to_zero:
        problem = regions.scale_to_zero_region_problem(settings.region)
    if problem:
        raise SettingsError([problem])


def add_region_rule(stack: Stack, *, scale_to_zero: bool = False) -> CfnRule:
    allowed, what = (
        (regions.SCALE_TO_ZERO_REGIONS, "scales to zero (min_instances 0) only in these regions")
        if scale_to_zero
        else (regions.SUPPORTED_REGIONS, "supports only these regions")
    )
    return CfnRule(
        stack,
        "SupportedRegion",
        assertions=[
            {
                "assert": Fn.condition_contains(list(allowed), Aws.REGION),
                "assertDescription": f"ownllm {what} (ownllm/data/regions.json): " + ", ".join(allowed),
            }
        ],
    )


# No region has this name, so the assertion below is false wherever the stack deploys. It
# compares against AWS::Region, the shape AWS's own samples use for region rules.
NEVER_A_REGION = "ownllm-estimate-exceeds-max-daily-usd"


def add_cost_guard(stack: Stack, refusal: str) -> CfnRule:
    """A rule that refuses create/update with `refusal` as CloudFormation's error message."""
    return CfnRule(
        stack,
        "CostGuard",
        assertions=[{"assert": Fn.condition_equals(Aws.REGION, NEVER_A_REGION), "assertDescription": refusal}],
    )


def build_stacks(
    app: App,
    settings: Settings,
    artifacts: ModelArtifacts,
    *,
    nag: bool = True,
    refuse_deploy: str | None = None,
) -> OwnLlmStacks:
    """The three stacks. `refuse_deploy`: a message that makes every stack's create/update fail
    (the cost guard); synth, ls, diff and destroy are unaffected."""
    check_region(settings)
    env = Environment(region=settings.region) if settings.region else None
    prefix = settings.stack_prefix
    serving = ServingStack(
        app,
        f"{prefix}-Serving",
        settings=settings,
        artifacts=artifacts,
        env=env,
        description=f"ownllm: SageMaker endpoint serving {settings.model_id} on {settings.instance_type}",
    )
    api = ApiStack(
        app,
        f"{prefix}-Api",
        settings=settings,
        serving=serving.serving,
        artifacts=artifacts,
        env=env,
        description="ownllm: OpenAI-compatible REST API (API Gateway + Lambda) in front of the endpoint",
    )
    monitoring = MonitoringStack(
        app,
        f"{prefix}-Monitoring",
        settings=settings,
        serving=serving.serving,
        api=api.api,
        function=api.forwarder.function,
        daily_budget_usd=daily_budget_usd(settings),
        env=env,
        description="ownllm: alarms, daily cost budget and dashboard",
    )
    for stack in (serving, api, monitoring):
        Tags.of(stack).add("project", "ownllm")
        Tags.of(stack).add("ownllm:stack-prefix", prefix)
        add_region_rule(stack, scale_to_zero=settings.scale_to_zero)
        if refuse_deploy:
            add_cost_guard(stack, refuse_deploy)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return OwnLlmStacks(serving, api, monitoring)
