"""Names of the deployed resources that tools outside CloudFormation address (the CLI's
`wake`/`sleep`, the forwarder's environment): one rule, read by the stacks and the tools."""

from __future__ import annotations

from dataclasses import dataclass

VARIANT = "AllTraffic"


@dataclass(frozen=True)
class DeployedNames:
    endpoint: str
    inference_component: str

    @property
    def component_resource_id(self) -> str:
        """Application Auto Scaling's resource id for the component's copy count."""
        return f"inference-component/{self.inference_component}"

    @property
    def variant_resource_id(self) -> str:
        return f"endpoint/{self.endpoint}/variant/{VARIANT}"


def deployed_names(stack_prefix: str) -> DeployedNames:
    base = f"{stack_prefix.lower()}-llm"
    return DeployedNames(endpoint=base, inference_component=f"{base}-component")
