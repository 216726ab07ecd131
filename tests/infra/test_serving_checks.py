"""cdk-nag and cfn-lint over serving variants the general checks do not synthesize: packaged
LoRA adapters (artifacts bucket, its deployment, the prefix grant), an LMI endpoint whose
active hours end at midnight, and a non-default instance type."""

import json
from pathlib import Path

import pytest
from cfnlint.api import lint_file

# As in test_checks.py: CDK's role/policy DependsOn edges (explained in the README).
ACCEPTED_WARNINGS = {"W3005"}


@pytest.fixture(scope="module")
def adapters_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("artifacts")
    for name, rank in (("alpha", 8), ("beta", 16), ("gamma", 64)):
        (root / "adapters" / name).mkdir(parents=True)
        (root / "adapters" / name / "adapter_config.json").write_text(json.dumps({"r": rank}))
    return str(root)


VARIANTS = {
    "vllm-three-adapters": (),
    "lmi-adapters-midnight-g6e": (
        ("engine", "lmi"),
        ("instance_type", "ml.g6e.2xlarge"),
        ("active_hours", "08:00-24:00"),
    ),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, synth_app, adapters_root):
    return synth_app(VARIANTS[request.param], artifacts_dir=adapters_root)


def test_the_serving_variant_passes_cdk_nag_with_only_acknowledged_findings(variant):
    [report] = json.loads((variant.outdir / "validation-report.json").read_text())["pluginReports"]
    assert (report["pluginName"], report["conclusion"], report["violations"]) == ("AwsSolutions", "success", [])


def test_cfn_lint_finds_nothing_unexplained_in_the_serving_variant(variant):
    [template] = [t for t in variant.outdir.glob("*.template.json") if "Serving" in t.name]
    findings = [(m.rule.id, m.message) for m in lint_file(Path(template))]
    assert [f for f in findings if f[0] not in ACCEPTED_WARNINGS and not f[0].startswith("I")] == []
