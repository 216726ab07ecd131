"""Small helpers for reading CloudFormation values as CDK writes them."""

from __future__ import annotations

import math
from typing import Any


class TemplateValueError(ValueError):
    """A value in a template that no deployment could have: one line naming file, resource and property."""

    def __init__(self, template_file: str, logical_id: str, prop: str, value: object, accepted: str):
        self.template_file, self.logical_id, self.prop, self.value = template_file, logical_id, prop, value
        super().__init__(f"{template_file}: {logical_id} {prop}: {value!r} is not {accepted}")


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


def branches(value: Any, template: dict[str, Any]) -> list[Any] | None:
    """Every plain value `value` can take: [v] for a literal or a parameter's Default, the
    branches of Fn::If, the candidates of Fn::FindInMap; None when one of them is unknown."""
    if isinstance(value, (str, int, float, bool)):
        return [value]
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, inner),) = value.items()
    if key == "Ref":
        plain = literal(value, template.get("Parameters") or {})
        return None if plain is None else [plain]
    if key == "Fn::If" and isinstance(inner, list) and len(inner) == 3:
        out: list[Any] = []
        for branch in inner[1:]:
            if branch == {"Ref": "AWS::NoValue"}:
                continue
            values = branches(branch, template)
            if values is None:
                return None
            out.extend(v for v in values if v not in out)
        return out or None
    if key == "Fn::FindInMap" and isinstance(inner, list) and len(inner) == 3:
        mapping = (template.get("Mappings") or {}).get(inner[0]) if isinstance(inner[0], str) else None
        if not isinstance(mapping, dict):
            return None
        first = [inner[1]] if isinstance(inner[1], str) else list(mapping)
        out = []
        for top in first:
            row = mapping.get(top)
            if not isinstance(row, dict):
                return None
            seconds = [inner[2]] if isinstance(inner[2], str) else list(row)
            for second in seconds:
                if second not in row:
                    return None
                if row[second] not in out:
                    out.append(row[second])
        return out or None
    return None


def checked_number(
    value: Any,
    *,
    where: tuple[str, str, str],
    minimum: float = 0.0,
    maximum: float = math.inf,
    whole: bool = False,
) -> float:
    """A template number that a deployment could have: finite, in [minimum, maximum], whole if a count.
    A count is also at most INT32_MAX: CloudFormation takes whole numbers as 32-bit integers (so a
    MaxCapacity of 1e308 is no deployment's, and its totals would overflow)."""
    from ownllm.settings import INT32_MAX

    if whole:
        maximum = min(maximum, INT32_MAX)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    out_of_range = number < minimum or number > maximum
    if isinstance(value, bool) or not math.isfinite(number) or out_of_range or (whole and not number.is_integer()):
        accepted = f"a whole number >= {_bound(minimum)}" if whole else f"a finite number >= {_bound(minimum)}"
        if maximum < math.inf:
            accepted += f" and <= {_bound(maximum)}"
        raise TemplateValueError(*where, value, accepted)
    return number


def _bound(value: float) -> str:
    """2147483647, not 2.14748e+09."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
