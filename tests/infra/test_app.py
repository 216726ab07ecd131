"""app.py as `cdk synth` runs it: settings from context, clear errors, no stack trace."""

import json
import os
import subprocess
import sys
from pathlib import Path

from cfnlint.api import lint_file

from ownllm.cost.model import usd
from ownllm.regions import unsupported_region_problem

ROOT = Path(__file__).resolve().parents[2]


def run_app(tmp_path: Path, context: dict, **env) -> subprocess.CompletedProcess:
    cdk_context = json.loads((ROOT / "cdk.json").read_text())["context"]
    cdk_context.update(context)
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps(cdk_context), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bad_settings_fail_synth_with_one_line_per_problem_and_no_traceback(tmp_path):
    result = run_app(tmp_path, {"instance_type": "ml.g5.2xlargeX", "min_instances": "3", "max_instances": "2"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "instance_type: 'ml.g5.2xlargeX' is not a supported GPU instance type" in result.stderr
    assert "min_instances: 3 is greater than max_instances 2" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))  # failed before any construct was built


def test_flat_overrides_win_over_the_cdk_json_object(tmp_path):
    result = run_app(tmp_path, {"instance_type": "ml.g6e.xlarge"}, OWNLLM_SKIP_COST="1")
    assert result.returncode == 0, result.stderr
    template = json.loads((tmp_path / "OwnLlm-Serving.template.json").read_text())
    [config] = [r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.g6e.xlarge"


def rules(tmp_path: Path, stack: str) -> dict:
    return json.loads((tmp_path / f"OwnLlm-{stack}.template.json").read_text()).get("Rules", {})


def refusal(daily_usd: str) -> str:
    return (
        f"ownllm: estimated cost {daily_usd}/day exceeds max_daily_usd $5.00/day; deploy refused. Lower "
        "instance_count/max_instances, pick a smaller instance_type, set active_hours, or raise max_daily_usd "
        "(details: cost-estimate.md in cdk.out)."
    )


def test_over_budget_synth_succeeds_for_ls_diff_and_destroy_but_every_template_refuses_deploy(tmp_path):
    """cdk ls/diff/destroy run the app too: it must exit 0. CloudFormation evaluates Rules on
    create/update (cdk deploy's change set) and never on delete, so the rule refuses only deploys.
    Default settings cost about $36.59/day (1 x ml.g5.2xlarge x $1.515/h x 24 h = $36.36, plus API and
    monitoring); the figure is read from the estimate so a price update does not break this test."""
    result = run_app(tmp_path, {"max_daily_usd": 5})
    assert result.returncode == 0, result.stderr
    daily = usd(json.loads((tmp_path / "cost-estimate.json").read_text())["daily_usd"])
    assert f"ownllm: estimated cost {daily}/day exceeds max_daily_usd $5.00/day" in result.stderr
    assert "The templates carry a CostGuard rule: cdk deploy will be refused." in result.stderr
    for stack in ("Serving", "Api", "Monitoring"):
        [assertion] = rules(tmp_path, stack)["CostGuard"]["Assertions"]
        assert assertion == {
            "Assert": {"Fn::Equals": [{"Ref": "AWS::Region"}, "ownllm-estimate-exceeds-max-daily-usd"]},
            "AssertDescription": refusal(daily),
        }
        # CloudFormation must accept the rule itself: cfn-lint checks the Rules section's shape.
        findings = lint_file(tmp_path / f"OwnLlm-{stack}.template.json")
        assert [m.rule.id for m in findings if m.rule.id.startswith("E")] == []


def test_strict_mode_fails_an_over_budget_synth_after_writing_it(tmp_path):
    result = run_app(tmp_path, {"max_daily_usd": 5}, OWNLLM_BUDGET_STRICT="1")
    assert result.returncode == 1
    assert "exceeds max_daily_usd $5.00/day" in result.stderr and "Traceback" not in result.stderr
    assert "CostGuard" in rules(tmp_path, "Serving")


def test_a_synth_within_budget_has_no_cost_guard(default):
    for template in default.templates().values():
        assert "CostGuard" not in template.to_json()["Rules"]


def test_an_unsupported_region_fails_synth_with_one_line_naming_it(tmp_path):
    result = run_app(tmp_path, {"region": "me-central-1"}, OWNLLM_SKIP_COST="1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"  - {unsupported_region_problem('me-central-1')}"
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


def test_a_key_repeated_in_cdk_json_fails_synth_naming_it(tmp_path):
    (tmp_path / "cdk.json").write_text('{"context": {"ownllm": {"max_instances": 2, "max_instances": 4}}}')
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env={**os.environ, "CDK_OUTDIR": str(tmp_path / "out"), "CDK_CONTEXT_JSON": "{}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        1,
        [
            "ownllm settings are not valid (set them in cdk.json context 'ownllm' or with -c key=value):",
            "  - cdk.json: key 'max_instances' appears twice in one object; JSON readers keep only the last, "
            "so say it once",
        ],
    )
