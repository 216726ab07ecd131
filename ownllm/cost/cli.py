"""`ownllm cost estimate|diff` and `ownllm prices refresh`."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ownllm.cost.model import Estimate
    from ownllm.settings import Settings

DEFAULT_CDK_JSON = "cdk.json"


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
    show = prices_sub.add_parser("show", help="list the bundled catalog (offline)")
    show.add_argument("--region", help="only this region")
    show.add_argument("--item", help="only items containing this text, e.g. sagemaker.hosting")
    show.add_argument("--format", choices=("table", "csv"), default="table")
    show.set_defaults(func=cmd_show)


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--settings",
        default=None,
        help="cdk.json whose context gives the settings (default: the settings synth recorded in the cdk.out, "
        "else ./cdk.json if present)",
    )
    p.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one usage or price setting, as with `cdk synth -c` (keys that shape the templates "
        "need a new synth and are refused)",
    )


def load_settings(path: str | None, overrides: list[str], cdk_out: str | None = None) -> Settings:
    """The settings to price `cdk_out` with: what synth recorded there unless a cdk.json is named,
    then `-c` overrides. A key that would change the templates cannot be applied to an existing
    cdk.out and is refused. Raises SettingsError."""
    from ownllm.settings import (
        ESTIMATE_KEYS,
        SETTINGS_FILE,
        Settings,
        SettingsError,
        named_cdk_json,
        parse_overrides,
        read_recorded_settings,
    )
    from ownllm.settings import load_settings as from_cdk_json

    if path is not None:  # a typo must not price the defaults instead
        named_cdk_json(path)
    extra = parse_overrides(overrides)
    refused = [k for k in extra if k in Settings.model_fields and k not in ESTIMATE_KEYS]
    if refused:
        raise SettingsError(
            [
                f"-c {k}: shapes the synthesized templates, so it cannot be applied to an existing cdk.out; "
                f"run `cdk synth -c {k}=...` (keys an estimate applies: {', '.join(sorted(ESTIMATE_KEYS))})"
                for k in refused
            ]
        )
    recorded = read_recorded_settings(cdk_out) if cdk_out and path is None else None
    if recorded is not None:
        try:
            return Settings.from_context({**recorded, **extra})
        except SettingsError as exc:  # say where a key -c did not give comes from
            where = Path(str(cdk_out)) / SETTINGS_FILE
            raise SettingsError(
                [p if p.partition(":")[0] in extra else f"{where} (what synth recorded): {p}" for p in exc.problems]
            ) from None
    return from_cdk_json(path if path is not None else DEFAULT_CDK_JSON, extra)


def _settings_or_exit(path: str | None, overrides: list[str], cdk_out: str | None) -> Settings:
    from ownllm.settings import SettingsError

    try:
        return load_settings(path, overrides, cdk_out)
    except SettingsError as exc:
        raise CommandError(exc.problems) from None


class CommandError(Exception):
    """Bad input to a cost command: one line per problem, exit status 2."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _fail(exc: CommandError) -> int:
    for problem in exc.problems:
        print(f"ownllm: {problem}", file=sys.stderr)
    return 2


def cmd_estimate(args: argparse.Namespace) -> int:
    try:
        return _estimate(args)
    except CommandError as exc:
        return _fail(exc)


def _estimate(args: argparse.Namespace) -> int:
    from ownllm.cost.assembly import AssemblyError
    from ownllm.cost.catalog import CatalogError
    from ownllm.cost.estimate import estimate_cdk_out
    from ownllm.cost.report import markdown, print_terminal
    from ownllm.cost.synth_hook import write_reports
    from ownllm.cost.template import TemplateValueError
    from ownllm.settings import parse_overrides

    settings = _settings_or_exit(args.settings, args.context, args.cdk_out)
    try:
        est = estimate_cdk_out(args.cdk_out, settings)
    except (AssemblyError, TemplateValueError, CatalogError) as exc:
        raise CommandError([str(exc)]) from None
    pinned = sorted({s["region"] for s in est.stacks if s["region_source"] == "stack environment"})
    if "region" in parse_overrides(args.context) and pinned:
        raise CommandError(
            [
                f"-c region: the stacks were synthesized for {', '.join(pinned)} (their environment), so the "
                "estimate cannot move them; run `cdk synth -c region=...`"
            ]
        )
    if args.write:
        write_reports(est, args.cdk_out)
    if args.format == "json":
        _write_stdout(json.dumps(est.to_dict(), indent=2) + "\n")
    elif args.format == "markdown":
        _write_stdout(markdown(est) + "\n")
    else:
        print_terminal(est)
    if est.budget.get("exceeded") or est.budget.get("incomplete"):
        from ownllm.cost.synth_hook import BudgetExceeded

        print(str(BudgetExceeded(est, float(est.budget["max_daily_usd"])).code).splitlines()[0], file=sys.stderr)
        return 1
    return 0


def _write_stdout(text: str) -> None:
    """Write to stdout; a reader that went away (`| head`) ends the command quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        return _diff(args)
    except CommandError as exc:
        return _fail(exc)


def _diff(args: argparse.Namespace) -> int:
    from ownllm.cost.assembly import AssemblyError
    from ownllm.cost.catalog import CatalogError
    from ownllm.cost.diff import EstimateFileError, diff_estimates, load_estimate, markdown_diff
    from ownllm.cost.estimate import estimate_cdk_out
    from ownllm.cost.template import TemplateValueError

    def estimating_with(settings_path: str | None) -> Callable[[Path], Estimate]:
        return lambda path: estimate_cdk_out(path, _settings_or_exit(settings_path, args.context, str(path)))

    # Settings given: every cdk.out is priced again with them, never silently read as it was written.
    reprice_head = bool(args.context or args.settings)
    reprice_base = reprice_head or args.base_settings is not None
    try:
        base, base_note = load_estimate(
            args.base, estimating_with(args.base_settings or args.settings), reprice=reprice_base
        )
        head, head_note = load_estimate(args.head, estimating_with(args.settings), reprice=reprice_head)
    except (EstimateFileError, AssemblyError, TemplateValueError, CatalogError) as exc:
        raise CommandError([str(exc)]) from None
    if head is None:
        raise CommandError([head_note])
    note = "; ".join(n for n in (base_note, head_note) if n)
    text = markdown_diff(diff_estimates(base, head), comment=args.comment, base_note=note)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise CommandError([f"--output {args.output!r}: cannot be written ({exc.strerror or exc})"]) from None
    else:
        _write_stdout(text)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from ownllm.cost.catalog import CATALOG_PATH, CatalogError, load_catalog, write_rows
    from ownllm.cost.refresh import PricingUnavailable, pricing_client, refresh_catalog

    output = Path(args.output) if args.output else CATALOG_PATH
    if output.is_dir() or not output.parent.is_dir():  # found before any AWS call, not after the refresh
        why = (
            "is a folder; give a file name" if output.is_dir() else f"its folder {str(output.parent)!r} does not exist"
        )
        print(f"ownllm prices refresh: --output {str(output)!r}: {why}; nothing written", file=sys.stderr)
        return 2
    try:
        existing = load_catalog(output if output.is_file() else None)
    except CatalogError as exc:
        print(f"ownllm prices refresh: {exc}; nothing written", file=sys.stderr)
        return 2
    types = [t.strip() for t in args.instance_types.split(",")] if args.instance_types else None
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    try:
        rows, missing = refresh_catalog(pricing_client(), existing, regions=regions, instance_types=types)
    except PricingUnavailable as exc:
        print(f"ownllm prices refresh: {exc}", file=sys.stderr)
        return 2
    try:
        write_rows(output, rows)
    except OSError as exc:
        print(
            f"ownllm prices refresh: --output {str(output)!r}: cannot be written ({exc.strerror or exc})",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {len(rows)} prices to {output}", file=sys.stderr)
    if missing:
        print(f"not found, previous figure kept ({len(missing)}): {', '.join(missing)}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The bundled catalog, offline: one row per price."""
    from ownllm.cost.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog()
    except CatalogError as exc:
        print(f"ownllm prices show: {exc}", file=sys.stderr)
        return 2
    if args.region is not None and args.region not in catalog.regions:
        close = difflib.get_close_matches(args.region, catalog.regions, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(
            f"ownllm prices show: --region {args.region!r}: the catalog has {', '.join(catalog.regions)}{hint}",
            file=sys.stderr,
        )
        return 2
    rows = [p for p in catalog.prices if args.region in (None, p.region) and (not args.item or args.item in p.item)]
    if args.item and not rows:
        print(
            f"ownllm prices show: --item {args.item!r}: matches no catalog item (items look like "
            "sagemaker.hosting:ml.g5.2xlarge; --item matches any part of one)",
            file=sys.stderr,
        )
        return 2
    if args.format == "csv":
        lines = ["region,item,usd,unit,source,date"] + [
            f"{p.region},{p.item},{p.usd:.10g},{p.unit},{p.source},{p.date}" for p in rows
        ]
    else:
        width = max((len(p.item) for p in rows), default=4)
        lines = [f"{'region':<14} {'item':<{width}} {'usd':>14}  unit"] + [
            f"{p.region:<14} {p.item:<{width}} {p.usd:>14.10g}  {p.unit}" for p in rows
        ]
        lines.append(f"{len(rows)} prices; catalog {catalog.path} of {catalog.date}")
    _write_stdout("\n".join(lines) + "\n")
    return 0
