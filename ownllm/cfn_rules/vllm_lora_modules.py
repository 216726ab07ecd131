"""E9004: SM_VLLM_LORA_MODULES in a form the vLLM DLC entrypoint and vLLM both accept."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._facts import LORA_MODULES_ENV
from ownllm.cfn_rules._template import resources_of

ACCEPTED = (
    'one \'name=path\', one JSON object {"name": ..., "path": ...}, or a JSON array of either '
    '(e.g. \'["a=/opt/ml/model/adapters/a", "b=/opt/ml/model/adapters/b"]\')'
)


def entrypoint_tokens(value: str) -> list[str]:
    """The argv tokens the DLC entrypoint passes after --lora-modules for this value."""
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            items = json.loads(stripped)
        except ValueError:
            return [value]
        if isinstance(items, list):
            return [json.dumps(i) if isinstance(i, dict | list) else str(i) for i in items]
        return [value]
    if stripped.startswith("{") and stripped.endswith("}"):
        objects = _object_run(stripped)
        return [json.dumps(o) for o in objects] if len(objects) > 1 else [value]
    return [value]


def _object_run(text: str) -> list[Any]:
    """`{...} {...}` as its objects; [] when the text is anything else."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    index = 0
    while index < len(text):
        try:
            obj, index = decoder.raw_decode(text, index)
        except ValueError:
            return []
        if not isinstance(obj, dict):
            return []
        found.append(obj)
        while index < len(text) and text[index].isspace():
            index += 1
    return found


def token_problem(token: str) -> str | None:
    """Why vLLM's --lora-modules parser would reject one token; None when it accepts it."""
    if "=" in token and "," not in token:
        parts = token.split("=")
        if len(parts) != 2:
            return f"{token!r} holds {len(parts) - 1} '=' (several name=path pairs in one token)"
        if not all(p.strip() for p in parts):
            return f"{token!r} has an empty name or path"
        return None
    try:
        obj = json.loads(token)
    except ValueError:
        return f"{token!r} is neither name=path nor a JSON object"
    if not (isinstance(obj, dict) and isinstance(obj.get("name"), str) and isinstance(obj.get("path"), str)):
        return f"{token!r} is not a JSON object with string 'name' and 'path'"
    return None


class VllmLoraModules(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "SM_VLLM_LORA_MODULES is in a form the vLLM container splits into modules"
    description = (
        "The vLLM DLC entrypoint splits SM_VLLM_LORA_MODULES only when it is a JSON array or a run "
        "of JSON objects; vLLM then needs each item as name=path or {name, path}. Several name=path "
        "pairs joined by spaces reach vLLM as one item and the server fails to start."
    )
    source_url = "https://github.com/aws/deep-learning-containers/blob/main/scripts/docker/vllm/sagemaker_args.py"
    tags = ["resources", "sagemaker", "vllm", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for name, props in resources_of(cfn.template, "AWS::SageMaker::Model"):
            containers: list[tuple[list[str | int], Any]] = [(["PrimaryContainer"], props.get("PrimaryContainer"))]
            containers += [(["Containers", i], c) for i, c in enumerate(props.get("Containers") or [])]
            for where, container in containers:
                env = container.get("Environment") if isinstance(container, Mapping) else None
                value = env.get(LORA_MODULES_ENV) if isinstance(env, Mapping) else None
                if not isinstance(value, str):
                    continue  # absent, or only known on deploy
                problems = [p for p in map(token_problem, entrypoint_tokens(value)) if p]
                if problems:
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", *where, "Environment", LORA_MODULES_ENV],
                            f"Model {name}: {LORA_MODULES_ENV} {problems[0]}; accepted: {ACCEPTED}",
                        )
                    )
        return matches
