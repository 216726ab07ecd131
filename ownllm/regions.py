"""Where ownllm deploys: one explicit list of regions, derived from what every dependency offers.

A region is supported when all of these hold there:
- CloudFormation has every resource type the stacks create (cfn-lint's bundled per-region
  resource schemas, `cfnlint/data/schemas/providers/<region>.json`; a region without its own
  file is unverified, because cfn-lint then silently falls back to us-east-1's);
- the SageMaker SDK publishes the pinned image of every engine (`ownllm.images.engine_image_map`);
- the Lambda Web Adapter layer the forwarder streams through is published
  (`WEB_ADAPTER_LAYER_REGIONS`); it is the function's only layer (botocore and Powertools are
  bundled into its asset, so their layers' regions do not matter).

`AWS::Budgets::Budget` is optional: where CloudFormation lacks it the monitoring stack has no
budget (and says so). `AWS::SageMaker::InferenceComponent` is needed only to scale to zero
(min_instances 0), which is refused, by synth or by the template's region rule, elsewhere. The derived table is committed as ownllm/data/regions.json, so synth
needs neither cfn-lint nor the SDK; tests/infra/test_regions.py derives it again and fails
when a dependency's data moves. Regenerate with `python -m ownllm.regions --write`.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "regions.json"

# Every resource type any settings combination makes the three stacks create (Custom::*
# resources are Lambda-backed and need only Lambda). tests/infra/test_regions.py checks the
# synthesized templates against this list.
REQUIRED_RESOURCE_TYPES = (
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::Authorizer",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::KMS::Key",
    "AWS::Lambda::Function",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SageMaker::Endpoint",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Model",
)
BUDGET_RESOURCE_TYPE = "AWS::Budgets::Budget"
# min_instances 0 (scale to zero) runs the model as an inference component: fewer regions.
SCALE_TO_ZERO_RESOURCE_TYPE = "AWS::SageMaker::InferenceComponent"

# Regions where the Lambda Web Adapter arm64 layer (the streaming forwarder's) is published: its
# release pipeline, aws/aws-lambda-web-adapter .github/workflows/prod.json at 2912565 (read
# 2026-12-02; every one with arm64; me-south-1 was dropped in #691).
WEB_ADAPTER_LAYER_REGIONS = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)
# The `aws` partition only: China, GovCloud, ISO and the European Sovereign Cloud are other
# partitions with other image accounts and layer publishers.
_COMMERCIAL = re.compile(r"^(?!cn-|us-gov-)[a-z]{2}-[a-z]+-\d$")


@dataclass(frozen=True)
class RegionTable:
    supported: tuple[str, ...]
    budgets: tuple[str, ...]  # the supported regions that also have AWS::Budgets::Budget
    excluded: dict[str, str] = field(default_factory=dict)  # region -> why
    scale_to_zero: tuple[str, ...] = ()  # the supported regions that also have inference components

    def to_json(self) -> dict[str, object]:
        return {
            "_about": "Derived by ownllm/regions.py (python -m ownllm.regions --write); do not edit by hand.",
            "supported": {
                r: {"budgets": r in self.budgets, "scale_to_zero": r in self.scale_to_zero} for r in self.supported
            },
            "excluded": dict(sorted(self.excluded.items())),
        }

    @classmethod
    def from_json(cls, data: dict) -> RegionTable:
        supported = data["supported"]
        return cls(
            tuple(supported),
            tuple(r for r, facts in supported.items() if facts["budgets"]),
            dict(data["excluded"]),
            tuple(r for r, facts in supported.items() if facts["scale_to_zero"]),
        )


@cache
def table() -> RegionTable:
    return RegionTable.from_json(json.loads(DATA_FILE.read_text()))


SUPPORTED_REGIONS: tuple[str, ...] = table().supported
BUDGET_REGIONS: tuple[str, ...] = table().budgets
SCALE_TO_ZERO_REGIONS: tuple[str, ...] = table().scale_to_zero


def has_budgets(region: str) -> bool:
    return region in BUDGET_REGIONS


def unsupported_region_reason(region: str) -> str | None:
    """Why a region is out and what is supported (a typo gets a suggestion); None when supported."""
    if region in SUPPORTED_REGIONS:
        return None
    known = table().excluded.get(region)
    close = [] if known else difflib.get_close_matches(region, SUPPORTED_REGIONS, n=2, cutoff=0.8)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    why = known or "not a commercial AWS region that ownllm knows"
    return f"is not supported ({why}); supported: {', '.join(SUPPORTED_REGIONS)}{hint}"


def unsupported_region_problem(region: str) -> str | None:
    """One line naming the region, why it is out and what is supported; None when supported."""
    reason = unsupported_region_reason(region)
    return f"region: {region!r} {reason}" if reason else None


def scale_to_zero_region_problem(region: str) -> str | None:
    """One line when min_instances 0 cannot deploy to a region (no inference components there)."""
    if region in SCALE_TO_ZERO_REGIONS:
        return None
    return (
        f"min_instances: 0 (scale to zero) needs {SCALE_TO_ZERO_RESOURCE_TYPE}, which CloudFormation lacks in "
        f"region {region!r}; it is available in: {', '.join(SCALE_TO_ZERO_REGIONS)}"
    )


# -- derivation (needs cfn-lint and the SageMaker SDK's image config: dev dependencies) ---------


def cfnlint_resource_types() -> dict[str, frozenset[str]]:
    """region -> the CloudFormation resource types cfn-lint's bundled schemas list there."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or spec.origin is None:
        raise RuntimeError("cfn-lint is not installed (pip install -e '.[dev]'); it is needed to derive the table")
    folder = Path(spec.origin).parent / "data" / "schemas" / "providers"
    return {
        path.stem: frozenset(json.loads(path.read_text()))
        for path in sorted(folder.glob("*.json"))
        if _COMMERCIAL.match(path.stem)
    }


def derive(
    resource_types: dict[str, frozenset[str]],
    engine_regions: dict[str, Iterable[str]],
    adapter_regions: Iterable[str] = WEB_ADAPTER_LAYER_REGIONS,
) -> RegionTable:
    """The table from each dependency's own data (pure: the inputs are plain data)."""
    engines = {engine: set(regions) for engine, regions in engine_regions.items()}
    adapter = set(adapter_regions)
    candidates = set(resource_types) | adapter | {r for regions in engines.values() for r in regions}
    supported: list[str] = []
    excluded: dict[str, str] = {}
    for region in sorted(r for r in candidates if _COMMERCIAL.match(r)):
        reasons = []
        types = resource_types.get(region)
        if types is None:
            reasons.append("cfn-lint has no CloudFormation resource schemas for it")
        else:
            missing = [t for t in REQUIRED_RESOURCE_TYPES if t not in types]
            if missing:
                reasons.append(f"CloudFormation lacks {', '.join(missing)}")
        without = [engine for engine, regions in sorted(engines.items()) if region not in regions]
        if without:
            reasons.append(f"no SageMaker image for engine {', '.join(without)}")
        if region not in adapter:
            reasons.append("the Lambda Web Adapter arm64 layer is not published there")
        if reasons:
            excluded[region] = "; ".join(reasons)
        else:
            supported.append(region)
    budgets = tuple(r for r in supported if BUDGET_RESOURCE_TYPE in resource_types[r])
    to_zero = tuple(r for r in supported if SCALE_TO_ZERO_RESOURCE_TYPE in resource_types[r])
    return RegionTable(tuple(supported), budgets, excluded, to_zero)


def derive_from_dependencies() -> RegionTable:
    from ownllm.engines import ENGINE_IMAGES
    from ownllm.images import engine_image_map

    return derive(
        cfnlint_resource_types(),
        {engine: list(engine_image_map(engine)) for engine in ENGINE_IMAGES},
    )


def main(argv: list[str]) -> int:
    derived = derive_from_dependencies()
    if argv[1:] == ["--write"]:
        DATA_FILE.write_text(json.dumps(derived.to_json(), indent=1) + "\n")
        sys.stdout.write(f"wrote {DATA_FILE}: {len(derived.supported)} supported regions\n")
        return 0
    sys.stdout.write(json.dumps(derived.to_json(), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
