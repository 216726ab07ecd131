"""cdk-nag acknowledgements: every one names the rule (and the finding, where a rule reports
several per resource, e.g. `AwsSolutions-IAM5[Resource::*]`) and says why."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Token, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, finding: str | list[str], reason: str) -> None:
    for f in [finding] if isinstance(finding, str) else finding:
        Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{f}", reason=reason))


def partition_and_region(scope: IConstruct) -> tuple[str, str]:
    """How cdk-nag spells the partition and region in a finding: literals when the stack's
    region is known at synth time, else the pseudo-parameter placeholders."""
    region = Stack.of(scope).region
    if Token.is_unresolved(region):
        return "<AWS::Partition>", "<AWS::Region>"
    return "aws", region


def arn_placeholder(element: CfnElement, attribute: str = "Arn") -> str:
    """cdk-nag's spelling of a GetAtt in a finding, e.g. `<MyBucket1234ABCD.Arn>`."""
    stack = Stack.of(element)
    return f"<{stack.resolve(stack.get_logical_id(element))}.{attribute}>"
