"""Assembles the three stacks on an app, with cdk-nag AwsSolutions as a validation plugin."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from ownllm.artifacts import ModelArtifacts
from ownllm.settings import Settings
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


def build_stacks(app: App, settings: Settings, artifacts: ModelArtifacts, *, nag: bool = True) -> OwnLlmStacks:
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
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return OwnLlmStacks(serving, api, monitoring)
