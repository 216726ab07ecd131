"""`ownllm cost estimate|diff` and `ownllm prices refresh`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    cost = subparsers.add_parser("cost", help="estimate the daily bill of a synthesized app, or diff two estimates")
    cost_sub = cost.add_subparsers(dest="cost_command", required=True, metavar="ACTION")

    est = cost_sub.add_parser("estimate", help="(re)print the estimate from an existing cdk.out")
    est.add_argument("--cdk-out", default="cdk.out", help="cloud assembly directory (default: cdk.out)")
    _settings_args(est)
    est.add_argument("--write", action="store_true", help="also write cost-estimate.json/.md into the cdk.out")
    est.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="table (stderr, default), json or markdown (stdout)",
    )
    est.set_defaults(func=cmd_estimate)

    diff = cost_sub.add_parser("diff", help="compare two estimates (JSON files or cdk.out folders) as Markdown")
    diff.add_argument("base", help="base estimate: cost-estimate.json or a cdk.out (may be missing)")
    diff.add_argument("head", help="head estimate: cost-estimate.json or a cdk.out")
    diff.add_argument(
        "--comment", action="store_true", help="write a pull-request comment body, led by the hidden marker"
    )
    diff.add_argument("--output", "-o", help="write the Markdown here instead of stdout")
    _settings_args(diff)
    diff.add_argument(
        "--base-settings", help="cdk.json for a base cdk.out that has no written estimate (default: --settings)"
    )
    diff.set_defaults(func=cmd_diff)

    prices = subparsers.add_parser("prices", help="the bundled price catalog")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    refresh = prices_sub.add_parser("refresh", help="rebuild the catalog from the AWS Price List API")
    refresh.add_argument("--regions", default="us-east-1,us-west-2,eu-west-1", help="comma-separated regions")
    refresh.add_argument("--instance-types", help="comma-separated (default: every type the kit accepts)")
    refresh.add_argument("--output", help="catalog file to write (default: the bundled ownllm/data/prices.csv)")
    refresh.set_defaults(func=cmd_refresh)


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--settings",
        default="cdk.json",
        help="cdk.json whose 'ownllm' context gives the settings (default: ./cdk.json if present)",
    )
    p.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, as with `cdk synth -c`",
    )


def load_settings(path: str | None, overrides: list[str]):
    from ownllm.settings import Settings, SettingsError

    context: dict[str, Any] = {}
    if path and Path(path).is_file():
        raw = json.loads(Path(path).read_text()).get("context") or {}
        context = dict(raw.get("ownllm") or {})
        names = set(Settings.__dataclass_fields__) - {"resolved_model_size_b"}
        context.update({k: v for k, v in raw.items() if k in names})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"-c {item!r}: expected KEY=VALUE")
        context[key.strip()] = value
    try:
        return Settings.from_context(context)
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None


def cmd_estimate(args: argparse.Namespace) -> int:
    from ownllm.cost.assembly import AssemblyError
    from ownllm.cost.estimate import estimate_cdk_out
    from ownllm.cost.report import markdown, print_terminal
    from ownllm.cost.synth_hook import write_reports

    settings = load_settings(args.settings, args.context)
    try:
        est = estimate_cdk_out(args.cdk_out, settings)
    except AssemblyError as exc:
        print(f"ownllm: {exc}", file=sys.stderr)
        return 2
    if args.write:
        write_reports(est, args.cdk_out)
    if args.format == "json":
        json.dump(est.to_dict(), sys.stdout, indent=2)
        print()
    elif args.format == "markdown":
        print(markdown(est))
    else:
        print_terminal(est)
    if est.budget.get("exceeded"):
        print(
            f"ownllm: estimate {est.daily_usd:,.2f} USD/day exceeds max_daily_usd {est.budget['max_daily_usd']:,.2f}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from ownllm.cost.diff import diff_estimates, load_estimate, markdown_diff
    from ownllm.cost.estimate import estimate_cdk_out

    def estimating_with(settings_path: str | None):
        return lambda path: estimate_cdk_out(path, load_settings(settings_path, args.context))

    base, base_note = load_estimate(args.base, estimating_with(args.base_settings or args.settings))
    head, head_note = load_estimate(args.head, estimating_with(args.settings))
    if head is None:
        print(f"ownllm: {head_note}", file=sys.stderr)
        return 2
    note = "; ".join(n for n in (base_note, head_note) if n)
    text = markdown_diff(diff_estimates(base, head), comment=args.comment, base_note=note)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from ownllm.cost.catalog import CATALOG_PATH, load_catalog, write_rows
    from ownllm.cost.refresh import pricing_client, refresh_catalog

    output = Path(args.output) if args.output else CATALOG_PATH
    existing = load_catalog(output if output.is_file() else None)
    types = [t.strip() for t in args.instance_types.split(",")] if args.instance_types else None
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    rows, missing = refresh_catalog(pricing_client(), existing, regions=regions, instance_types=types)
    write_rows(output, rows)
    print(f"wrote {len(rows)} prices to {output}", file=sys.stderr)
    if missing:
        print(f"not found, previous figure kept ({len(missing)}): {', '.join(missing)}", file=sys.stderr)
    return 0
