"""E9003: S3 model-data prefixes end in '/'; ModelDataUrl names a .tar.gz archive or a prefix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._facts import MODEL_ARCHIVE_SUFFIXES, S3_PREFIX_DATA_TYPE
from ownllm.cfn_rules._template import UNKNOWN, possible_strings, resources_of, trailing_resource


def _bad_ending(value: Any, template: Mapping[str, Any], allowed: tuple[str, ...]) -> str | None:
    """How the value ends when that is not one of `allowed`; None when it does or is unknowable."""
    for candidate in possible_strings(value, template):
        if not candidate.endswith(UNKNOWN):
            if not candidate.endswith(allowed):
                return repr(candidate)
            continue
        resource = trailing_resource(value, template)
        if resource is not None:
            return f"the value of resource {resource}"
    return None


class S3ModelDataPrefix(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "S3 model-data prefixes end in '/'"
    description = (
        "A SageMaker model's S3Prefix model data (ModelDataSource.S3DataSource.S3Uri) is a key-name "
        "prefix that must end in '/'; a ModelDataUrl is a .tar.gz archive or, for a prefix, ends in '/'."
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3ModelDataSource.html"
    tags = ["resources", "sagemaker", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        template = cfn.template
        for name, props in resources_of(template, "AWS::SageMaker::Model"):
            containers: list[tuple[list[str | int], Any]] = [(["PrimaryContainer"], props.get("PrimaryContainer"))]
            containers += [(["Containers", i], c) for i, c in enumerate(props.get("Containers") or [])]
            for where, container in containers:
                if not isinstance(container, Mapping):
                    continue
                base: list[str | int] = ["Resources", name, "Properties", *where]
                data_source = container.get("ModelDataSource")
                source = data_source.get("S3DataSource") if isinstance(data_source, Mapping) else None
                if isinstance(source, Mapping) and source.get("S3DataType") == S3_PREFIX_DATA_TYPE:
                    bad = _bad_ending(source.get("S3Uri"), template, ("/",))
                    if bad:
                        matches.append(
                            RuleMatch(
                                [*base, "ModelDataSource", "S3DataSource", "S3Uri"],
                                f"Model {name}: S3Uri with S3DataType 'S3Prefix' ends with {bad}; "
                                "a key-name prefix must end in '/'",
                            )
                        )
                if "ModelDataUrl" in container:
                    bad = _bad_ending(container["ModelDataUrl"], template, (*MODEL_ARCHIVE_SUFFIXES, "/"))
                    if bad:
                        matches.append(
                            RuleMatch(
                                [*base, "ModelDataUrl"],
                                f"Model {name}: ModelDataUrl ends with {bad}; it must name a "
                                f"{' or '.join(MODEL_ARCHIVE_SUFFIXES)} archive or a prefix ending in '/'",
                            )
                        )
        return matches
