"""cdk-nag acknowledgements: every one names the rule (and the finding, where a rule reports
several per resource, e.g. `AwsSolutions-IAM5[Resource::*]`) and says why."""

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions::{finding}", reason=reason))
