"""cfn-lint with the project rules (ownllm/cfn_rules) over synthesized templates.

AWS's resource schemas catch a misspelt property or a resource type missing from a region;
the project rules catch what validates on paper and fails on deploy (docs/aws-facts.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ownllm.cfn_rules import RULES_DIR

# Built-in cfn-lint findings the project accepts, with the reason (tests and `ownllm lint` read this).
ACCEPTED_FINDINGS = {
    "W3005": "CDK adds DependsOn on a role and its policy where a GetAtt already orders the role; the explicit "
    "edge keeps the policy ahead of the model/function, which GetAtt does not.",
}
PROJECT_RULE_PREFIX = "E9"  # ownllm/cfn_rules: E9001...
_REGIONS = "\x00regions\x00"  # where the region names go in a message shared by several regions


@dataclass(frozen=True)
class Finding:
    template: str
    line: int
    rule: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.rule.startswith("E")

    @property
    def is_project_rule(self) -> bool:
        return self.rule.startswith(PROJECT_RULE_PREFIX)

    def render(self) -> str:
        return f"{self.template}:{self.line}: {self.rule} {self.message}"


def supported_regions() -> tuple[str, ...]:
    """The regions the kit deploys to (ownllm/regions.py: every dependency is offered there)."""
    from ownllm.regions import SUPPORTED_REGIONS

    return tuple(SUPPORTED_REGIONS)


def project_rules() -> Any:
    """cfn-lint's rules plus the project's, loaded as `cfn-lint --append-rules ownllm/cfn_rules` loads them."""
    from cfnlint.core import get_rules

    return get_rules([str(RULES_DIR)], [], [])


def lint_text(text: str, *, name: str, regions: Sequence[str], rules: Any = None) -> list[Finding]:
    """Every finding in one template (JSON or YAML text), accepted findings left out; a finding
    that differs only by region is one finding naming every region."""
    from cfnlint.api import lint

    matches = lint(text, rules=rules if rules is not None else project_rules(), regions=list(regions))
    by_region: dict[tuple[int, str, str], list[str]] = {}
    for m in matches:
        if m.rule.id in ACCEPTED_FINDINGS:
            continue
        region = next((r for r in regions if f"'{r}'" in m.message), None)
        shape = m.message.replace(f"'{region}'", _REGIONS) if region else m.message
        by_region.setdefault((m.linenumber, m.rule.id, shape), []).append(region or "")
    found = [
        Finding(name, line, rule, shape.replace(_REGIONS, ", ".join(f"'{r}'" for r in sorted(set(rs)))))
        for (line, rule, shape), rs in by_region.items()
    ]
    return sorted(found, key=lambda f: (f.template, f.line, f.rule, f.message))


def deployable_regions(text: str, regions: Sequence[str]) -> list[str]:
    """The regions a template's own region rule lets it deploy to (`Fn::Contains [[...],
    {"Ref": "AWS::Region"}]` in any rule assertion), among `regions`; all of them without a rule.
    A scale-to-zero serving stack, for one, allows only regions with inference components."""
    try:
        template = json.loads(text)
    except ValueError:  # YAML or broken JSON: cfn-lint reports it
        return list(regions)
    rules = template.get("Rules") if isinstance(template, dict) else None
    allowed: set[str] | None = None
    for rule in rules.values() if isinstance(rules, dict) else ():  # malformed shapes: cfn-lint reports them
        assertions = rule.get("Assertions") if isinstance(rule, dict) else None
        for assertion in assertions if isinstance(assertions, list) else ():
            test = assertion.get("Assert") if isinstance(assertion, dict) else None
            contains = test.get("Fn::Contains") if isinstance(test, dict) else None
            if isinstance(contains, list) and len(contains) == 2 and contains[1] == {"Ref": "AWS::Region"}:
                names = {r for r in contains[0] if isinstance(r, str)}
                allowed = names if allowed is None else allowed & names
    return [r for r in regions if allowed is None or r in allowed]


def lint_templates(paths: Iterable[Path], regions: Sequence[str]) -> list[Finding]:
    rules = project_rules()
    found: list[Finding] = []
    for path in paths:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:  # cfn-lint would raise it: report it as the parse error it is
            found.append(Finding(path.name, 1, "E0000", f"not UTF-8 text (byte {exc.start}); run cdk synth again"))
            continue
        found += lint_text(text, name=path.name, regions=deployable_regions(text, regions) or regions, rules=rules)
    return found
