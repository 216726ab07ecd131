"""Read a cloud assembly (cdk.out): which stacks, their templates and their regions.

Follows manifest.json, including nested assemblies (CDK Stages, `cdk:cloud-assembly`
artifacts) and nested stacks (`AWS::CloudFormation::Stack` whose template CDK wrote beside
the parent, named in the resource's `aws:asset:path` metadata).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
# Where an environment-agnostic stack will most likely be deployed when settings.region is
# unset: the CLI's region (AWS_REGION) and the one `cdk synth` resolved from the profile.
REGION_VARIABLES = ("AWS_REGION", "CDK_DEFAULT_REGION")


class AssemblyError(ValueError):
    """cdk.out is missing or is not a cloud assembly."""


@dataclass
class Stack:
    name: str
    template: dict[str, Any]
    region: str
    region_source: str  # "stack environment", "settings.region" or "default"
    template_file: str = ""

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources = self.template.get("Resources") or {}
        return resources if isinstance(resources, dict) else {}

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Parameters") or {}


@dataclass
class Assembly:
    directory: Path
    stacks: list[Stack] = field(default_factory=list)


def _concrete_region(environment: str | None) -> str | None:
    """'aws://123456789012/eu-west-1' -> 'eu-west-1'; unknown-region -> None."""
    if not environment or not environment.startswith("aws://"):
        return None
    parts = environment[len("aws://") :].split("/")
    region = parts[1] if len(parts) > 1 else ""
    if not region or region.startswith("unknown-") or "${" in region:
        return None
    return region


def resolve_region(environment: str | None, settings_region: str | None) -> tuple[str, str]:
    """The region to price a stack in, and where that answer came from."""
    region = _concrete_region(environment)
    if region:
        return region, "stack environment"
    if settings_region:
        return settings_region, "settings.region"
    for variable in REGION_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable], variable
    return DEFAULT_REGION, "default (environment-agnostic stack, no settings.region)"


def load_assembly(outdir: str | os.PathLike, settings_region: str | None = None) -> Assembly:
    directory = Path(outdir)
    if not (directory / "manifest.json").is_file():
        raise AssemblyError(f"{directory}: no manifest.json; run `cdk synth` first (or pass --cdk-out DIR)")
    assembly = Assembly(directory)
    assembly.stacks.extend(_stacks_in(directory, settings_region, prefix="", seen=set()))
    return assembly


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from a cloud assembly file, or AssemblyError naming the file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise AssemblyError(f"{path}: missing ({what} named in the cloud assembly)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AssemblyError(f"{path}: cannot be read ({exc})") from None
    except ValueError as exc:
        raise AssemblyError(f"{path}: not valid JSON, truncated or corrupt ({exc}); run `cdk synth` again") from None
    if not isinstance(doc, dict):
        raise AssemblyError(f"{path}: not a {what} (a JSON object was expected)")
    return doc


def read_template(path: Path, what: str) -> dict[str, Any]:
    """A CloudFormation template: an object whose Resources (and Parameters) are objects, each resource
    with a string Type. AssemblyError otherwise: a template of another shape was priced without the
    lines it hid (Resources: 5 dropped the endpoint from the total) or crashed the pricing."""
    template = read_json_object(path, what)
    for section in ("Resources", "Parameters"):
        if not isinstance(template.get(section, {}), dict):
            raise AssemblyError(f"{path}: '{section}' is not an object, so not a {what}; run `cdk synth` again")
    for logical_id, resource in template.get("Resources", {}).items():
        if (
            not isinstance(resource, dict)
            or not isinstance(resource.get("Type"), str)
            or not isinstance(resource.get("Properties", {}), dict)
        ):
            raise AssemblyError(
                f"{path}: resource {logical_id!r} is not an object with a 'Type' name (and 'Properties' object), "
                f"so not a {what}; run `cdk synth` again"
            )
    for name, parameter in template.get("Parameters", {}).items():
        if not isinstance(parameter, dict):
            raise AssemblyError(f"{path}: parameter {name!r} is not an object, so not a {what}; run `cdk synth` again")
    return template


def _stacks_in(directory: Path, settings_region: str | None, prefix: str, seen: set[Path]) -> Iterator[Stack]:
    here = directory.resolve()
    if here in seen:
        raise AssemblyError(f"{directory / 'manifest.json'}: a nested cloud assembly refers back to {here}")
    seen.add(here)
    manifest = read_json_object(directory / "manifest.json", "cloud assembly manifest")
    artifacts = manifest.get("artifacts") or {}
    if not isinstance(artifacts, dict):
        raise AssemblyError(f"{directory / 'manifest.json'}: 'artifacts' is not an object")
    for artifact_id, artifact in artifacts.items():
        if not isinstance(artifact, dict):
            continue
        kind = artifact.get("type")
        props = artifact.get("properties") or {}
        if kind == "aws:cloudformation:stack":
            template_file = props.get("templateFile")
            if not template_file:
                continue
            path = directory / template_file
            template = read_template(path, "stack template")
            region, source = resolve_region(artifact.get("environment"), settings_region)
            name = artifact.get("displayName") or (prefix + artifact_id)
            stack = Stack(name, template, region, source, str(path))
            yield stack
            yield from _nested_stacks(directory, stack)
        elif kind == "cdk:cloud-assembly" and props.get("directoryName"):
            sub = directory / props["directoryName"]
            if (sub / "manifest.json").is_file():
                label = props.get("displayName") or artifact_id
                yield from _stacks_in(sub, settings_region, prefix=f"{label}/", seen=seen)


def _nested_stacks(directory: Path, parent: Stack, chain: tuple[str, ...] = ()) -> Iterator[Stack]:
    chain = chain or (parent.template_file,)
    for logical_id, resource in parent.resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        asset = (resource.get("Metadata") or {}).get("aws:asset:path")
        if not isinstance(asset, str) or not (directory / asset).is_file():
            continue
        path = str(directory / asset)
        if path in chain:
            raise AssemblyError(f"{parent.template_file}: nested stack {logical_id} includes {path}, which includes it")
        child = Stack(
            f"{parent.name}/{logical_id}",
            read_template(directory / asset, "nested stack template"),
            parent.region,
            parent.region_source,
            path,
        )
        yield child
        yield from _nested_stacks(directory, child, (*chain, path))
