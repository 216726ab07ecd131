"""Static checks over the synthesized app: cdk-nag (AwsSolutions) and cfn-lint with the
project rules (ownllm/cfn_rules), the same checks `ownllm lint` runs."""

import json
from functools import cache
from pathlib import Path

import pytest
from aws_cdk import aws_s3 as s3

from ownllm.artifacts import ModelArtifacts
from ownllm.lint import Finding, lint_templates, supported_regions
from ownllm.settings import Settings

# cfn-lint findings we accept, and why, live in ownllm.lint.ACCEPTED_FINDINGS (also listed in README).

# Variants that deploy LoRA adapters from model_artifacts: variant name -> adapter names.
ADAPTER_VARIANTS = {"vllm-two-lora-adapters": ("support-bot", "sql-writer")}

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
    "vllm-two-lora-adapters": (),
    "scale-to-zero-business-hours": (
        ("min_instances", 0),
        ("max_instances", 2),
        ("active_hours", "09:00-17:00"),
    ),
}
PROJECT_RULES = ("E9001", "E9002", "E9003", "E9004", "E9005", "E9006")


@pytest.fixture(scope="session")
def adapters_root(tmp_path_factory) -> dict[str, str]:
    """variant name -> a model_artifacts folder holding its adapters."""
    roots = {}
    for name, adapters in ADAPTER_VARIANTS.items():
        root = tmp_path_factory.mktemp(name)
        for adapter in adapters:
            (root / "adapters" / adapter).mkdir(parents=True)
            (root / "adapters" / adapter / "adapter_config.json").write_text('{"r": 8}')
        roots[name] = str(root)
    return roots


@pytest.fixture(scope="module")
def synth_variant(synth_app, adapters_root):
    """synth_variant(name) -> the synthesized variant (cached per settings by conftest)."""
    return lambda name: synth_app(VARIANTS[name], artifacts_dir=adapters_root.get(name))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request, synth_variant):
    return synth_variant(request.param)


@cache
def _findings(outdir: Path, regions: tuple[str, ...]) -> tuple[Finding, ...]:
    templates = sorted(outdir.glob("*.template.json"))
    assert len(templates) == 3
    return tuple(lint_templates(templates, regions))


def findings(variant, regions: tuple[str, ...] = ("us-east-1",)) -> tuple[Finding, ...]:
    """cfn-lint with the project rules over the variant's templates, accepted findings left out."""
    return _findings(variant.outdir, regions)


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


def test_cfn_lint_finds_no_errors_and_no_unexplained_warnings_in_any_template(variant):
    """AWS's own rules (the project rules are checked one by one below)."""
    unexplained = [f.render() for f in findings(variant) if not f.is_project_rule and not f.rule.startswith("I")]
    assert unexplained == []


@pytest.mark.parametrize(
    ("name", "rule"), [pytest.param(n, r, id=f"{n}-{r}") for n in sorted(VARIANTS) for r in PROJECT_RULES]
)
def test_project_rule_finds_nothing_in_the_variant(synth_variant, name, rule):
    assert [f.render() for f in findings(synth_variant(name)) if f.rule == rule] == []


def test_every_template_deploys_in_every_supported_region(default):
    """cfn-lint's per-region schemas: a resource type missing from a region is E3006."""
    missing = [f.render() for f in findings(default, supported_regions()) if f.rule == "E3006"]
    assert missing == []
