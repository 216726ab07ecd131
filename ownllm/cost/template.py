"""Small helpers for reading CloudFormation values as CDK writes them."""

from __future__ import annotations

from typing import Any


def refs(value: Any) -> set[str]:
    """Logical ids a value refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    _collect(value, found)
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str) and not inner.startswith("AWS::"):
                found.add(inner)
            elif key == "Fn::GetAtt":
                if isinstance(inner, list) and inner and isinstance(inner[0], str):
                    found.add(inner[0])
                elif isinstance(inner, str):
                    found.add(inner.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(text, str):
                    for part in text.split("${")[1:]:
                        name = part.split("}", 1)[0].split(".", 1)[0]
                        if name and not name.startswith("AWS::"):
                            found.add(name)
                if isinstance(inner, list) and len(inner) > 1:
                    _collect(inner[1], found)
            else:
                _collect(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _collect(inner, found)


def literal(value: Any, parameters: dict[str, Any] | None = None) -> Any:
    """The plain value, following Ref to a template parameter's Default; None if unknown."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        param = (parameters or {}).get(value["Ref"])
        if isinstance(param, dict) and "Default" in param:
            return param["Default"]
    return None


def number(value: Any, parameters: dict[str, Any] | None = None, default: float | None = None) -> float | None:
    v = literal(value, parameters)
    if v is None:
        return default
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def join_text(value: Any) -> str:
    """A readable rendering of Fn::Join / Fn::Sub strings, references as {LogicalId}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(join_text(p) for p in parts)
        if "Ref" in value:
            return "{" + str(value["Ref"]) + "}"
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return "{" + (".".join(att) if isinstance(att, list) else str(att)) + "}"
        if "Fn::Sub" in value:
            inner = value["Fn::Sub"]
            return inner[0] if isinstance(inner, list) else str(inner)
    return ""
