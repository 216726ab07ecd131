"""Static checks over the synthesized app: cdk-nag (AwsSolutions) and cfn-lint."""

import json
from pathlib import Path

import pytest
from aws_cdk import aws_s3 as s3
from cfnlint.api import lint_file

from ownllm.artifacts import ModelArtifacts
from ownllm.settings import Settings

# cfn-lint warnings we accept, and why (also listed in README):
# W3005: CDK adds DependsOn on a role and its policy where a GetAtt already orders the role;
#        the explicit edge keeps the *policy* ahead of the model/function, which GetAtt does not.
ACCEPTED_WARNINGS = {"W3005"}

VARIANTS = {
    "default": (),
    "tgi-multi-gpu-business-hours": (
        ("engine", "tgi"),
        ("instance_type", "ml.g5.12xlarge"),
        ("active_hours", "08:00-20:00"),
        ("alarm_email", "ops@example.com"),
    ),
    "lmi-s3-weights-in-a-region": (
        ("engine", "lmi"),
        ("model_id", "s3://my-weights/llama/"),
        ("model_size_b", 8),
        ("region", "eu-west-1"),
    ),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, synth_app):
    return synth_app(VARIANTS[request.param])


def test_the_app_synthesizes_with_zero_unacknowledged_cdk_nag_findings(variant):
    """The AwsSolutions plugin ran (its report exists) and found nothing it was not told about."""
    [report] = json.loads((variant.outdir / "validation-report.json").read_text())["pluginReports"]
    assert (report["pluginName"], report["conclusion"], report["violations"]) == ("AwsSolutions", "success", [])
    assert report["suppressedViolations"], "the acknowledged findings are reported as suppressed"


def test_every_acknowledgement_names_a_rule_and_gives_a_reason(variant):
    acks = {}
    for meta in variant.outdir.glob("*.metadata.json"):
        for entries in json.loads(meta.read_text()).values():
            for e in entries:
                if e["type"] == "aws:cdk:acknowledged-rules":
                    acks.update(e["data"])
    assert acks, "the stacks acknowledge some findings; none found means the check read nothing"
    for rule, reason in acks.items():
        assert rule.startswith("AwsSolutions::AwsSolutions-")
        assert len(reason) > 40, f"{rule}: the reason must explain the decision"


def test_a_deliberately_insecure_construct_is_caught(new_app):
    from stacks.ownllm_app import build_stacks

    app = new_app()
    stacks = build_stacks(app, Settings.from_context({}), ModelArtifacts(Path("model_artifacts")))
    s3.Bucket(stacks.api, "PlainHttpBucket")  # no SSL-only policy, no access logs
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((Path(app.outdir) / "validation-report.json").read_text())
    caught = {
        (v["ruleName"], c["constructPath"])
        for r in report["pluginReports"]
        for v in r["violations"]
        for c in v["violatingConstructs"]
    }
    assert ("AwsSolutions-S10", "OwnLlm-Api/PlainHttpBucket/Resource") in caught
    assert {path for _, path in caught} == {"OwnLlm-Api/PlainHttpBucket/Resource"}  # nothing else is flagged


def test_cfn_lint_finds_no_errors_in_any_template(variant):
    templates = sorted(variant.outdir.glob("*.template.json"))
    assert len(templates) == 3
    findings = [(t.name, m.rule.id, m.message) for t in templates for m in lint_file(Path(t))]
    errors = [f for f in findings if f[1].startswith("E")]
    assert errors == []
    unexplained = [f for f in findings if f[1] not in ACCEPTED_WARNINGS and not f[1].startswith("I")]
    assert unexplained == []
