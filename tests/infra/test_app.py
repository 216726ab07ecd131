"""app.py as `cdk synth` runs it: settings from context, clear errors, no stack trace."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
