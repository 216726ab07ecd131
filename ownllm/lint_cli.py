"""`ownllm lint`: cfn-lint with the project rules over every template in cdk.out and region.

AWS's resource schemas catch a misspelt property; the project rules (ownllm/cfn_rules)
catch what deploys fine on paper and fails on AWS (see docs/aws-facts.md). Run it after
editing the stacks: `npx cdk synth --quiet && ownllm lint`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ownllm.cfn_rules import RULES_DIR

# Built-in cfn-lint findings the project accepts, with the reason (README and tests read this).
ACCEPTED_FINDINGS = {
    "W3005": "CDK adds DependsOn on a role and its policy where a GetAtt already orders the role; the explicit "
    "edge keeps the policy ahead of the model/function, which GetAtt does not.",
}
PROJECT_RULE_PREFIX = "E9"  # the ids of ownllm/cfn_rules (E9001...)


@dataclass(frozen=True)
class Finding:
    template: str
    line: int
    rule: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.rule.startswith("E")

    def render(self) -> str:
        return f"{self.template}:{self.line}: {self.rule} {self.message}"


def supported_regions() -> tuple[str, ...]:
    """The commercial regions that host every pinned engine image (the SDK's own image config).

    ownllm/regions.py (SUPPORTED_REGIONS) takes this role once it exists.
    """
    from ownllm.engines import ENGINE_IMAGES
    from ownllm.images import engine_image_map

    hosted = [set(engine_image_map(engine)) for engine in ENGINE_IMAGES]
    return tuple(sorted(set.intersection(*hosted)))


def project_rules() -> Any:
    """cfn-lint's rules plus the project's, loaded the way `--append-rules ownllm/cfn_rules` loads them."""
    from cfnlint.core import get_rules

    return get_rules([str(RULES_DIR)], [], [])


def lint_text(text: str, *, name: str, regions: Sequence[str], rules: Any = None) -> list[Finding]:
    """Every finding in one template (JSON or YAML text), accepted findings left out."""
    from cfnlint.api import lint

    matches = lint(text, rules=rules if rules is not None else project_rules(), regions=list(regions))
    found = {
        Finding(name, m.linenumber, m.rule.id, m.message) for m in matches if m.rule.id not in ACCEPTED_FINDINGS
    }
    return sorted(found, key=lambda f: (f.template, f.line, f.rule, f.message))


def lint_templates(paths: Iterable[Path], regions: Sequence[str]) -> list[Finding]:
    rules = project_rules()
    return [f for p in paths for f in lint_text(p.read_text(), name=p.name, regions=regions, rules=rules)]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lint",
        help="cfn-lint every template in cdk.out with the project rules, over every supported region",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cdk-out", default="cdk.out", help="cloud assembly directory (default: cdk.out)")
    p.add_argument(
        "--regions",
        help="comma-separated regions to lint for (default: every region that hosts the pinned engine images)",
    )
    p.set_defaults(func=cmd_lint)


def cmd_lint(args: argparse.Namespace) -> int:
    cdk_out = Path(args.cdk_out)
    templates = sorted(cdk_out.glob("*.template.json"))
    if not templates:
        print(f"--cdk-out {str(cdk_out)!r}: no *.template.json found; run `npx cdk synth --quiet` first", file=sys.stderr)
        return 2
    regions = _parse_regions(args.regions) if args.regions else supported_regions()
    if not regions:
        print(f"--regions {args.regions!r}: no region given; expected e.g. 'us-east-1,eu-west-1'", file=sys.stderr)
        return 2
    findings = lint_templates(templates, regions)
    for f in findings:
        print(f.render())
    errors = sum(f.is_error for f in findings)
    print(
        f"{errors} error(s), {len(findings) - errors} other finding(s) in {len(templates)} template(s) "
        f"over {len(regions)} region(s); accepted: {', '.join(sorted(ACCEPTED_FINDINGS))}",
        file=sys.stderr,
    )
    return 1 if errors else 0


def _parse_regions(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())
