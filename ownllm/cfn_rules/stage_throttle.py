"""E9006: a stage-wide throttle sits above the sum of its usage plans' throttles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._template import referenced_id, resources_of

# Stage MethodSettings key -> UsagePlan Throttle key, for the two limits.
LIMITS = (("ThrottlingRateLimit", "RateLimit"), ("ThrottlingBurstLimit", "BurstLimit"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _plans_on(stage: str, stage_name: Any, api: str | None, template: Mapping[str, Any]) -> list[tuple[str, Mapping]]:
    """(plan id, plan Throttle) of every usage plan attached to the stage, by Ref or by name."""
    plans = []
    for name, props in resources_of(template, "AWS::ApiGateway::UsagePlan"):
        for api_stage in props.get("ApiStages") or []:
            if not isinstance(api_stage, Mapping):
                continue
            target = api_stage.get("Stage")
            same = referenced_id(target) == stage or (
                isinstance(target, str) and target == stage_name and referenced_id(api_stage.get("ApiId")) == api
            )
            if same:
                throttle = props.get("Throttle")
                plans.append((name, throttle if isinstance(throttle, Mapping) else {}))
                break
    return plans


class StageThrottleAbovePlans(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "Stage throttle exceeds the sum of its usage plans' throttles"
    description = (
        "A stage-wide throttle (MethodSettings ThrottlingRateLimit/BurstLimit) applies to every "
        "request, keyed or not; at or below the sum of the usage plans' limits it throttles paying "
        "keys before their plans do. Each must exceed that sum."
    )
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html"
    tags = ["resources", "apigateway", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        template = cfn.template
        for stage, props in resources_of(template, "AWS::ApiGateway::Stage"):
            plans = _plans_on(stage, props.get("StageName"), referenced_id(props.get("RestApiId")), template)
            if not plans:
                continue
            for i, setting in enumerate(props.get("MethodSettings") or []):
                if not isinstance(setting, Mapping):
                    continue
                for stage_key, plan_key in LIMITS:
                    limit = _number(setting.get(stage_key))
                    plan_limits = [_number(t.get(plan_key)) for _, t in plans]
                    known = [v for v in plan_limits if v is not None]
                    if limit is None or not known:
                        continue
                    total = sum(known)
                    if limit <= total:
                        names = ", ".join(n for (n, _), v in zip(plans, plan_limits, strict=True) if v is not None)
                        matches.append(
                            RuleMatch(
                                ["Resources", stage, "Properties", "MethodSettings", i, stage_key],
                                f"Stage {stage}: {stage_key} {limit:g} is not above the usage plans' "
                                f"{plan_key} total {total:g} ({names}); raise it above {total:g} or drop it",
                            )
                        )
        return matches
