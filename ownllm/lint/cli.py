"""`ownllm lint`: cfn-lint with the project rules over every template in cdk.out and every
supported region. Run it after editing the stacks: `npx cdk synth --quiet && ownllm lint`."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lint",
        help="cfn-lint every template in cdk.out with the project rules, over every supported region",
        description=__doc__,
    )
    p.add_argument("--cdk-out", default="cdk.out", help="cloud assembly directory (default: cdk.out)")
    p.add_argument(
        "--regions",
        help="comma-separated regions to lint for (default: every region that hosts the pinned engine images)",
    )
    p.set_defaults(func=cmd_lint)


def cmd_lint(args: argparse.Namespace) -> int:
    from ownllm.lint import ACCEPTED_FINDINGS, lint_templates, supported_regions

    cdk_out = Path(args.cdk_out)
    templates = sorted(cdk_out.glob("*.template.json"))
    if not templates:
        print(
            f"--cdk-out {str(cdk_out)!r}: no *.template.json found; run `npx cdk synth --quiet` first", file=sys.stderr
        )
        return 2
    given = args.regions is not None  # `--regions ''` names no region; it does not mean every region
    regions = tuple(r.strip() for r in args.regions.split(",") if r.strip()) if given else supported_regions()
    problem = _region_problem(regions, args.regions)
    if problem:
        print(problem, file=sys.stderr)
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


def _region_problem(regions: tuple[str, ...], given: str | None) -> str | None:
    """One line naming the first region cfn-lint cannot lint for, with a suggestion."""
    from cfnlint.helpers import REGIONS

    accepted = "comma-separated region names like 'us-east-1,eu-west-1'"
    if not regions:
        return f"--regions {given!r}: no region given; expected {accepted}"
    for region in regions:
        if region not in REGIONS:
            close = difflib.get_close_matches(region, REGIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"--regions: {region!r} is not a region cfn-lint knows{hint}; expected {accepted}"
    return None
