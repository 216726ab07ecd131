#!/usr/bin/env python3
"""ownllm CDK app: settings from cdk.json context (and -c overrides), three stacks, and the
daily cost estimate of what was synthesized.

The budget guard (max_daily_usd) never fails the app. `cdk ls`, `cdk diff` and `cdk destroy`
all run the app first, and the CLI does not tell it which command is running, so a synth
that fails over budget would also block listing, diffing and, worst, destroying the stacks
that cost too much. Instead, when the estimate is above max_daily_usd, the app synthesizes
again with a `CostGuard` rule in every template (stacks/ownllm_app.py): CloudFormation
evaluates rules on create and update, also when `cdk deploy` creates its change set, so the
deploy is refused with the estimate in the message, while delete never evaluates them.
`cdk diff` falls back to a template diff when its change set is refused (its default
`--method=auto`; aws/aws-cdk-cli PR #1266). With OWNLLM_BUDGET_STRICT=1 (for `make synth`
and CI), and under `cdk synth` or `cdk deploy` (ownllm/cost/cdk_command.py), an over-budget
synth also exits 1 after writing its output; `cdk ls`, `diff` and `destroy` never fail over it.
"""

import os
import sys
from pathlib import Path

from aws_cdk import App

from ownllm.artifacts import check_compatible, load_artifacts
from ownllm.settings import SettingsError, read_cdk_json, settings_from_app_context, write_recorded_settings

ROOT = Path(__file__).resolve().parent


def main() -> int:
    app = App()
    try:
        read_cdk_json("cdk.json")  # the CDK CLI reads it too, but keeps the last of a repeated key silently
        settings = settings_from_app_context(app.node.get_all_context())
        artifacts = load_artifacts(ROOT / "model_artifacts")
        check_compatible(settings, artifacts)
        from stacks.ownllm_app import build_stacks, check_region

        check_region(settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1

    build_stacks(app, settings, artifacts)  # after validation: no construct for bad settings
    assembly = app.synth()
    write_recorded_settings(assembly.directory, settings)  # `ownllm cost estimate` prices with these
    if os.environ.get("OWNLLM_SKIP_COST") == "1":
        return 0
    from ownllm.cost.cdk_command import cdk_command, guards_budget, shows_bill
    from ownllm.cost.model import usd
    from ownllm.cost.synth_hook import BudgetExceeded, report_after_synth, write_reports

    try:
        report_after_synth(assembly.directory, settings)
    except BudgetExceeded as over:
        refusal = (
            f"ownllm: estimated cost {usd(over.estimate.daily_usd)}/day exceeds max_daily_usd {usd(over.limit)}/day; "
            "deploy refused. Lower instance_count/max_instances, pick a smaller instance_type, set active_hours, "
            "or raise max_daily_usd (details: cost-estimate.md in cdk.out)."
        )
        guarded = App(outdir=assembly.directory)  # same context (CDK_CONTEXT_JSON) and output directory
        build_stacks(guarded, settings, artifacts, refuse_deploy=refusal)
        write_reports(over.estimate, guarded.synth().directory)
        command = cdk_command()
        if shows_bill(command):  # `cdk ls`, `diff` and `destroy` keep to the one headline line
            print(f"{over.code}\nThe templates carry a CostGuard rule: cdk deploy will be refused.", file=sys.stderr)
        strict = os.environ.get("OWNLLM_BUDGET_STRICT") == "1" or guards_budget(command)
        return 1 if strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
