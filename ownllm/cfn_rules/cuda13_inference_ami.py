"""E9002: a variant serving a CUDA 13 image must pick a host AMI (InferenceAmiVersion)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._facts import CUDA13_AMI_EXAMPLE, CUDA13_TAG
from ownllm.cfn_rules._template import possible_strings, referenced_id, resources_of


def _cuda13_images(model: Mapping[str, Any], template: Mapping[str, Any]) -> list[str]:
    containers = [model.get("PrimaryContainer")] + list(model.get("Containers") or [])
    images: list[str] = []
    for container in containers:
        if isinstance(container, Mapping):
            images += [i for i in possible_strings(container.get("Image"), template) if CUDA13_TAG.search(i)]
    return images


class Cuda13NeedsInferenceAmi(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "CUDA 13 images need InferenceAmiVersion on their production variant"
    description = (
        "The default SageMaker host AMI's NVIDIA driver is too old for CUDA 13 images (tags with "
        "cu13x); a production variant serving one must set InferenceAmiVersion."
    )
    source_url = "https://github.com/aws/deep-learning-containers/blob/main/docs/vllm/deployment/sagemaker.md"
    tags = ["resources", "sagemaker", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        template = cfn.template
        models = dict(resources_of(template, "AWS::SageMaker::Model"))
        configs = dict(resources_of(template, "AWS::SageMaker::EndpointConfig"))
        # (config id, variant index) -> the models it serves: its own ModelName, or the
        # models of the inference components placed on it (scale-to-zero endpoints have no ModelName).
        served: dict[tuple[str, int], list[str]] = {}
        for name, props in configs.items():
            for i, variant in enumerate(props.get("ProductionVariants") or []):
                model_id = referenced_id(variant.get("ModelName")) if isinstance(variant, Mapping) else None
                if model_id in models:
                    served.setdefault((name, i), []).append(model_id)
        endpoints = dict(resources_of(template, "AWS::SageMaker::Endpoint"))
        for _, props in resources_of(template, "AWS::SageMaker::InferenceComponent"):
            spec = props.get("Specification")
            model_id = referenced_id(spec.get("ModelName")) if isinstance(spec, Mapping) else None
            endpoint = endpoints.get(referenced_id(props.get("EndpointName")) or "")
            config_id = referenced_id(endpoint.get("EndpointConfigName")) if endpoint else None
            if model_id not in models or config_id not in configs:
                continue
            for i, variant in enumerate(configs[config_id].get("ProductionVariants") or []):
                if isinstance(variant, Mapping) and variant.get("VariantName") == props.get("VariantName"):
                    served.setdefault((config_id, i), []).append(model_id)

        matches: list[RuleMatch] = []
        for (name, i), model_ids in sorted(served.items()):
            variant = configs[name]["ProductionVariants"][i]
            if "InferenceAmiVersion" in variant:
                continue
            for model_id in dict.fromkeys(model_ids):
                images = _cuda13_images(models[model_id], template)
                if images:
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "ProductionVariants", i],
                            f"EndpointConfig {name}: variant {variant.get('VariantName', i)!r} serves CUDA 13 "
                            f"image {images[0].rsplit('/', 1)[-1]!r} (model {model_id}) without "
                            "InferenceAmiVersion; set one of the GPU AMIs, e.g. "
                            f"{CUDA13_AMI_EXAMPLE!r}",
                        )
                    )
        return matches
