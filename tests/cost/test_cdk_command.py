"""`cdk synth`/`deploy` print the bill; `cdk ls`, `diff`, `destroy` print one line."""

from __future__ import annotations

import io

import pytest

from ownllm.cost import synth_hook
from ownllm.cost.cdk_command import command_after_cdk

from .builders import serving_resources


@pytest.mark.parametrize(
    "argv, command",
    [
        (["node", "/app/node_modules/.bin/cdk", "synth", "--quiet"], "synth"),
        (["node", "/usr/lib/node_modules/aws-cdk/bin/cdk", "-c", "instance_type=ml.g5.4xlarge", "ls"], "ls"),
        (["node", "/x/cdk", "--profile", "prod", "deploy", "--all"], "deploy"),
        (["/bin/sh", "-c", ".venv/bin/python app.py"], None),
        (["python", "-m", "pytest"], None),
    ],
)
def test_the_cdk_command_is_read_from_the_cli_command_line(argv, command):
    assert command_after_cdk(argv) == command


@pytest.mark.parametrize("command, lines", [("ls", 1), ("diff", 1), ("destroy", 1), ("synth", None), (None, None)])
def test_only_synth_and_deploy_print_the_whole_bill(cdk_out, settings, monkeypatch, command, lines):
    monkeypatch.setattr(synth_hook, "cdk_command", lambda: command)
    stream = io.StringIO()
    synth_hook.report_after_synth(cdk_out({"S": serving_resources()}), settings(), stream=stream)
    printed = stream.getvalue().splitlines()
    if lines is None:
        assert len(printed) > 5
    else:
        assert printed == ["ownllm cost estimate: $48.74/day, $1,482.37/month (cost-estimate.md in cdk.out)"]


@pytest.mark.parametrize("command", ["ls", "diff", "destroy"])
def test_an_over_budget_estimate_stays_one_line_under_ls_diff_and_destroy(cdk_out, settings, monkeypatch, command):
    monkeypatch.setattr(synth_hook, "cdk_command", lambda: command)
    stream = io.StringIO()
    with pytest.raises(synth_hook.BudgetExceeded):
        synth_hook.report_after_synth(cdk_out({"S": serving_resources()}), settings(max_daily_usd=5), stream=stream)
    assert stream.getvalue().splitlines() == [
        "ownllm cost estimate: $48.74/day, $1,482.37/month (cost-estimate.md in cdk.out); "
        "over max_daily_usd $5.00/day, so cdk deploy is refused"
    ]


@pytest.mark.parametrize(("command", "fails"), [("synth", True), ("deploy", True), ("ls", False), (None, False)])
def test_only_synth_and_deploy_fail_over_budget(command, fails):
    from ownllm.cost.cdk_command import guards_budget

    assert guards_budget(command) is fails
