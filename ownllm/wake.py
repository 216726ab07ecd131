"""`ownllm wake` and `ownllm sleep`: hold a scale-to-zero endpoint awake (before a batch job or a
demo), then let it go back to zero.

wake raises the component's autoscaling floor to N copies and asks for N copies now; sleep puts
the floor back to 0 and the copies to 0. A later `cdk deploy` resets both to the template's
values (floor 0), so a forgotten wake ends at the next deploy at the latest.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ownllm.naming import DeployedNames

SERVICE_NAMESPACE = "sagemaker"
COPY_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"  # stacks/serving.py registers the same
WAIT_POLL_S = 15.0
WAIT_LIMIT_S = 30 * 60.0  # AWS documents 5-10 minutes for a 7-8B model; bigger models take longer


class _SageMaker(Protocol):
    def update_inference_component_runtime_config(self, **kwargs: Any) -> Any: ...
    def describe_inference_component(self, **kwargs: Any) -> Any: ...


class _AutoScaling(Protocol):
    def register_scalable_target(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Call:
    """One AWS API call, so the same plan can be run or printed as `aws` commands."""

    service: str  # boto3 client name
    operation: str  # boto3 method name
    params: dict[str, Any]

    def as_cli(self, region: str | None) -> str:
        words = ["aws", self.service, self.operation.replace("_", "-")]
        for key, value in self.params.items():
            flag = "--" + "".join("-" + c.lower() if c.isupper() else c for c in key).lstrip("-")
            words += [flag, json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)]
        if region:
            words += ["--region", region]
        return shlex.join(words)


def plan(names: DeployedNames, copies: int) -> list[Call]:
    """Floor first, then copies: the other order lets target tracking scale a fresh copy back in."""
    return [
        Call(
            "application-autoscaling",
            "register_scalable_target",
            {
                "ServiceNamespace": SERVICE_NAMESPACE,
                "ResourceId": names.component_resource_id,
                "ScalableDimension": COPY_DIMENSION,
                "MinCapacity": copies,
            },
        ),
        Call(
            "sagemaker",
            "update_inference_component_runtime_config",
            {"InferenceComponentName": names.inference_component, "DesiredRuntimeConfig": {"CopyCount": copies}},
        ),
    ]


def run_plan(calls: list[Call], sagemaker: _SageMaker, autoscaling: _AutoScaling) -> None:
    clients: dict[str, Any] = {"sagemaker": sagemaker, "application-autoscaling": autoscaling}
    for call in calls:
        getattr(clients[call.service], call.operation)(**call.params)


def wait_for_copies(
    sagemaker: _SageMaker,
    names: DeployedNames,
    copies: int,
    *,
    limit_s: float = WAIT_LIMIT_S,
    poll_s: float = WAIT_POLL_S,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> bool:
    """True once the component runs `copies` copies; False when limit_s passes first."""
    deadline = clock() + limit_s
    while True:
        described = sagemaker.describe_inference_component(InferenceComponentName=names.inference_component)
        current = (described.get("RuntimeConfig") or {}).get("CurrentCopyCount")
        if current == copies:
            return True
        if clock() + poll_s > deadline:
            return False
        sleep(poll_s)
