#!/usr/bin/env python3
"""ownllm CDK app: settings from cdk.json context (and -c overrides), three stacks, and the
daily cost estimate of what was synthesized."""

import os
import sys
from pathlib import Path

from aws_cdk import App

from ownllm.artifacts import check_compatible, load_artifacts
from ownllm.settings import SettingsError, settings_from_app_context, write_recorded_settings

ROOT = Path(__file__).resolve().parent


def main() -> int:
    app = App()
    try:
        settings = settings_from_app_context(app.node.get_all_context())
        artifacts = load_artifacts(ROOT / "model_artifacts")
        check_compatible(settings, artifacts)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1

    from stacks.ownllm_app import build_stacks  # after validation: no construct for bad settings

    build_stacks(app, settings, artifacts)
    assembly = app.synth()
    write_recorded_settings(assembly.directory, settings)  # `ownllm cost estimate` prices with these
    if os.environ.get("OWNLLM_SKIP_COST") != "1":
        from ownllm.cost.synth_hook import report_after_synth

        report_after_synth(assembly.directory, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
