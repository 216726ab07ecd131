"""Names of the deployed resources that tools outside CloudFormation address (the CLI's
`wake`/`sleep`, the forwarder's environment): one rule, read by the stacks and the tools."""

from __future__ import annotations

from dataclasses import dataclass

VARIANT = "AllTraffic"
# The instance type whose endpoint keeps the plain name `<prefix>-llm` (see endpoint_name).
PLAIN_NAME_INSTANCE_TYPE = "ml.g5.2xlarge"


def endpoint_name(stack_prefix: str, instance_type: str) -> str:
    """The endpoint's name, which changes whenever the instance type does.

    SageMaker refuses an UpdateEndpoint that changes the instance type of a variant
    registered with Application Auto Scaling ("If the update would change the instance
    type for any model that is a target for auto scaling, the update fails": SageMaker
    developer guide, endpoint-scaling-update; removing such a variant fails the same way).
    With a fixed name, CloudFormation would do exactly that: it creates the new endpoint
    config, then updates the endpoint in place (UpdateEndpoint) while the scalable target
    is still registered, because it deletes replaced resources (the old config, an old
    scalable target under a new logical id) only in its cleanup phase, after every update.
    Renaming the config or the target therefore cannot help; renaming the endpoint does:

    1. EndpointName requires replacement, so CloudFormation creates a second endpoint from
       the new config (CreateEndpoint: no auto scaling involved yet);
    2. the scalable target's ResourceId (`endpoint/<name>/variant/...`) comes from the
       endpoint's name, which requires replacement too: a new target and its policies
       and scheduled actions are registered on the new endpoint once it is in service;
    3. cleanup deletes the old policy and target (deregistering the old variant), then the
       old endpoint and config, in reverse dependency order.

    The old endpoint serves until cleanup; the API and monitoring stacks pick up the new
    name when they deploy next (`cdk deploy --all` deploys them right after). For that
    minute or two the Lambda still calls the deleted endpoint. Both instance types run at
    once during the switch, so the account needs endpoint quota for both.

    The kit's default instance type keeps the plain name, so endpoints deployed before
    this rule on that type are not replaced when the kit is upgraded.
    """
    base = f"{stack_prefix.lower()}-llm"
    if instance_type == PLAIN_NAME_INSTANCE_TYPE:
        return base
    # `ml.g6e.12xlarge` -> `g6e-12xlarge`; endpoint names allow letters, digits and '-' (max 63).
    return f"{base}-{instance_type.removeprefix('ml.').replace('.', '-')}"


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


def deployed_names(stack_prefix: str, instance_type: str) -> DeployedNames:
    endpoint = endpoint_name(stack_prefix, instance_type)
    # A component is replaced with its endpoint, and names are unique per region: it follows the endpoint's.
    return DeployedNames(endpoint=endpoint, inference_component=f"{endpoint}-component")
