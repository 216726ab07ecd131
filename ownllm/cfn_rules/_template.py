"""Reading CloudFormation values that may be intrinsic functions, for the project rules.

Pure functions over the decoded template dictionary: no cfn-lint import, so they are unit
testable and cfn-lint's loader (which imports every public module in the rules folder) finds
no rule classes here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

# Stands for a part whose value is only known at deploy time (a Ref to a parameter, a GetAtt...).
UNKNOWN = "\x00"
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
# More combinations than this means the value is not worth enumerating (nested maps in joins).
_MAX_CANDIDATES = 256


def resources_of(template: Mapping[str, Any], *types: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(logical id, properties) of every resource of the given types."""
    for name, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, Mapping) and resource.get("Type") in types:
            props = resource.get("Properties")
            yield name, props if isinstance(props, Mapping) else {}


def referenced_id(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` points at, else None."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and isinstance(arg, str):
            return arg
        if fn == "Fn::GetAtt":
            if isinstance(arg, list) and arg and isinstance(arg[0], str):
                return arg[0]
            if isinstance(arg, str):
                return arg.split(".", 1)[0]
    return None


def possible_strings(value: Any, template: Mapping[str, Any]) -> list[str]:
    """Every string the value can take on deploy, with UNKNOWN for parts known only then.

    A literal is itself; `Fn::FindInMap` with a deploy-time key (`Ref: AWS::Region`) is every
    value the mapping holds for that entry; `Fn::Join` and `Fn::Sub` combine their parts.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool | int | float):
        return [str(value).lower() if isinstance(value, bool) else str(value)]
    if not (isinstance(value, Mapping) and len(value) == 1):
        return [UNKNOWN]
    ((fn, arg),) = value.items()
    if fn == "Fn::FindInMap" and isinstance(arg, list) and len(arg) >= 3:
        return _find_in_map(arg, template)
    if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list):
        delimiter = arg[0] if isinstance(arg[0], str) else UNKNOWN
        parts = [possible_strings(p, template) for p in arg[1]]
        return _combine(parts, delimiter)
    if fn == "Fn::Sub":
        return _sub(arg, template)
    return [UNKNOWN]


def _find_in_map(arg: list[Any], template: Mapping[str, Any]) -> list[str]:
    name, top, second = arg[0], arg[1], arg[2]
    mapping = (template.get("Mappings") or {}).get(name) if isinstance(name, str) else None
    if not isinstance(mapping, Mapping):
        return [UNKNOWN]
    entries = [mapping[top]] if isinstance(top, str) and top in mapping else list(mapping.values())
    found: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        values = [entry[second]] if isinstance(second, str) and second in entry else list(entry.values())
        found.extend(v if isinstance(v, str) else UNKNOWN for v in values)
    return sorted(set(found)) or [UNKNOWN]


def _combine(parts: list[list[str]], delimiter: str) -> list[str]:
    total = 1
    for options in parts:
        total *= len(options)
    if total > _MAX_CANDIDATES:
        return [UNKNOWN]
    return [delimiter.join(combo) for combo in itertools.product(*parts)]


def _sub(arg: Any, template: Mapping[str, Any]) -> list[str]:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if isinstance(arg, list) else ("", {})
    if not isinstance(text, str) or not isinstance(variables, Mapping):
        return [UNKNOWN]
    pieces: list[list[str]] = []
    last = 0
    for m in _SUB_VARIABLE.finditer(text):
        pieces.append([text[last : m.start()]])
        name = m.group(1)
        pieces.append(possible_strings(variables[name], template) if name in variables else [UNKNOWN])
        last = m.end()
    pieces.append([text[last:]])
    return _combine(pieces, "")


def resource_ids_in(value: Any, template: Mapping[str, Any]) -> set[str]:
    """Logical ids of resources (not parameters) that the value refers to, at any depth."""
    resources = template.get("Resources") or {}
    found: set[str] = set()
    if isinstance(value, Mapping):
        target = referenced_id(value)
        if target is not None and target in resources:
            found.add(target)
        for v in value.values():
            found |= resource_ids_in(v, template)
    elif isinstance(value, list):
        for v in value:
            found |= resource_ids_in(v, template)
    return found


def trailing_resource(value: Any, template: Mapping[str, Any]) -> str | None:
    """The logical id of the resource whose attribute the string value ends with, if any.

    `Fn::Join` ends with its last part; `Fn::Sub` with its last `${...}` when nothing follows.
    A resource attribute (a bucket name, an ARN) never ends in '/'; a parameter might.
    """
    resources = template.get("Resources") or {}
    while isinstance(value, Mapping) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list) and arg[1]:
            value = arg[1][-1]
            continue
        if fn == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0] if isinstance(arg, list) and arg else None
            tail = list(_SUB_VARIABLE.finditer(text)) if isinstance(text, str) else []
            if not tail or tail[-1].end() != len(text or ""):
                return None
            name = tail[-1].group(1).split(".", 1)[0]
            variables = arg[1] if isinstance(arg, list) and len(arg) > 1 and isinstance(arg[1], Mapping) else {}
            if name in variables:
                value = variables[name]
                continue
            return name if name in resources else None
        target = referenced_id(value)
        return target if target is not None and target in resources else None
    return None
