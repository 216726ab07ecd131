"""The `ownllm wake` and `ownllm sleep` commands (ownllm/wake.py holds what they do)."""

from __future__ import annotations

import argparse
import sys

from ownllm.naming import deployed_names
from ownllm.wake import WAIT_LIMIT_S, plan, run_plan, wait_for_copies


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, copies, text in (
        ("wake", 1, "hold a scale-to-zero endpoint awake (min_instances 0): floor and copies to N"),
        ("sleep", 0, "let a scale-to-zero endpoint go back to zero now: floor and copies to 0"),
    ):
        p = subparsers.add_parser(name, help=text, description=text)
        if copies:
            p.add_argument("--copies", type=int, default=1, help="model copies to hold (default 1)")
            p.add_argument("--wait", action="store_true", help="return once the copies serve (polls every 15 s)")
        p.add_argument("--stack-prefix", help="the deployed stack_prefix (default: cdk.json's, else OwnLlm)")
        p.add_argument(
            "--cdk-json", help="where stack_prefix and region are read from (default: ./cdk.json if present)"
        )
        p.add_argument("--region", help="AWS region (default: cdk.json's region, else the AWS CLI's)")
        p.add_argument("--print", action="store_true", help="print the aws commands instead of calling AWS")
        p.set_defaults(func=_run, copies=copies, wait=False, waking=bool(copies))


def _fail(message: str) -> int:
    print(f"ownllm: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    if args.waking and not 1 <= args.copies <= 100:
        return _fail(f"--copies {args.copies}: expected a whole number from 1 to 100")
    from ownllm.settings import SettingsError, load_settings, named_cdk_json

    given = {"stack_prefix": args.stack_prefix, "region": args.region}
    try:  # the one loader: the same precedence and checks as synth, before any AWS call
        cdk_json = named_cdk_json(args.cdk_json, "--cdk-json")  # a typo must not wake the default stack
        settings = load_settings(cdk_json, {k: v for k, v in given.items() if v is not None})
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"ownllm: {problem}", file=sys.stderr)
        return 2
    prefix, region = settings.stack_prefix, settings.region
    names = deployed_names(prefix, settings.instance_type)
    calls = plan(names, args.copies)
    if args.print:
        for call in calls:
            print(call.as_cli(region))
        return 0
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return _fail("boto3 is not installed; use --print for the aws commands")
    try:
        sagemaker = boto3.client("sagemaker", region_name=region)
        run_plan(calls, sagemaker, boto3.client("application-autoscaling", region_name=region))
        verb = f"holding {args.copies} cop{'y' if args.copies == 1 else 'ies'} of" if args.copies else "scaling to zero"
        print(f"{verb} {names.inference_component} on {names.endpoint}")
        if args.wait and not wait_for_copies(sagemaker, names, args.copies):
            return _fail(
                f"{names.inference_component} did not reach {args.copies} copies in {WAIT_LIMIT_S / 60:.0f} min"
            )
    except (BotoCoreError, ClientError) as exc:
        return _fail(f"AWS refused: {exc} (credentials, region and the deployed stack_prefix {prefix!r} must match)")
    return 0
