"""One list of supported regions, derived from each dependency's own data, enforced at synth
(named region) and at deploy (environment-agnostic templates)."""

import json
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from ownllm import regions
from ownllm.regions import (
    BUDGET_RESOURCE_TYPE,
    REQUIRED_RESOURCE_TYPES,
    SUPPORTED_REGIONS,
    RegionTable,
    derive,
    derive_from_dependencies,
    unsupported_region_problem,
)

ALL_TYPES = frozenset(REQUIRED_RESOURCE_TYPES) | {BUDGET_RESOURCE_TYPE}


def test_the_committed_table_is_what_the_dependencies_say_today():
    """Fails when cfn-lint's schemas, the SDK's image config or the layer list move:
    run `python -m ownllm.regions --write` and review the diff."""
    assert derive_from_dependencies() == regions.table()


def test_the_committed_table_file_round_trips():
    data = json.loads(regions.DATA_FILE.read_text())
    assert RegionTable.from_json(data).to_json() == data


def test_a_region_is_supported_only_when_every_dependency_offers_it():
    table = derive(
        {
            "us-east-1": ALL_TYPES,
            "eu-north-1": ALL_TYPES - {BUDGET_RESOURCE_TYPE},
            "me-central-1": ALL_TYPES - {"AWS::SageMaker::Endpoint"},
            "ca-west-1": ALL_TYPES,
            "ap-south-2": ALL_TYPES,
        },
        {
            "vllm": ["us-east-1", "eu-north-1", "me-central-1", "ca-west-1", "me-south-1"],
            "lmi": ["us-east-1", "eu-north-1", "me-central-1", "ca-west-1", "me-south-1"],
        },
        ["us-east-1", "eu-north-1", "me-central-1", "ca-west-1", "ap-south-2"],
    )
    assert table.supported == ("ca-west-1", "eu-north-1", "us-east-1")
    assert table.budgets == ("ca-west-1", "us-east-1")  # Budgets is optional: eu-north-1 stays, without a budget
    assert table.excluded == {
        "ap-south-2": "no SageMaker image for engine lmi, vllm",
        "me-central-1": "CloudFormation lacks AWS::SageMaker::Endpoint",
        "me-south-1": "cfn-lint has no CloudFormation resource schemas for it; "
        "the Lambda Web Adapter arm64 layer is not published there",
    }


def test_other_partitions_are_never_candidates():
    table = derive(
        {"cn-north-1": ALL_TYPES, "us-gov-west-1": ALL_TYPES, "us-iso-east-1": ALL_TYPES},
        {"vllm": []},
        adapter_regions=[],
    )
    assert (table.supported, table.excluded) == ((), {})


def test_known_gaps_are_excluded_with_their_reason():
    excluded = regions.table().excluded
    # Supported since the function has no Powertools layer (that layer is not published there).
    assert {"ca-west-1", "ap-east-2", "ap-southeast-6"} <= set(SUPPORTED_REGIONS)
    assert excluded["me-west-1"] == (
        "cfn-lint has no CloudFormation resource schemas for it; no SageMaker image for engine lmi; "
        "the Lambda Web Adapter arm64 layer is not published there"
    )
    assert "AWS::SageMaker::Endpoint" in excluded["me-central-1"]
    assert {"us-east-1", "eu-west-1", "ap-northeast-1"} <= set(SUPPORTED_REGIONS)
    assert {"eu-north-1", "af-south-1"} <= set(SUPPORTED_REGIONS) - set(regions.BUDGET_REGIONS)


def test_an_unsupported_region_is_one_line_naming_it_why_and_the_supported_ones():
    problem = unsupported_region_problem("me-central-1")
    assert problem == (
        "region: 'me-central-1' is not supported (CloudFormation lacks AWS::SageMaker::Endpoint, "
        "AWS::SageMaker::EndpointConfig, AWS::SageMaker::Model); supported: " + ", ".join(SUPPORTED_REGIONS)
    )
    assert "\n" not in problem
    assert unsupported_region_problem("xx-nowhere-1").startswith(
        "region: 'xx-nowhere-1' is not supported (not a commercial AWS region that ownllm knows); supported: af-south-1"
    )
    assert unsupported_region_problem("eu-west-1") is None


def synthesized_types(s) -> set[str]:
    return {r["Type"] for t in s.templates().values() for r in t.to_json()["Resources"].values()}


def test_the_required_types_cover_everything_the_stacks_create(tmp_path, synth_app):
    adapter = tmp_path / "adapters" / "bot"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    with_adapters = synth_app((("alarm_email", "ops@example.com"),), artifacts_dir=str(tmp_path))
    types = synthesized_types(synth_app()) | synthesized_types(with_adapters)
    assert {t for t in types if not t.startswith("Custom::")} <= ALL_TYPES
    assert {"AWS::S3::Bucket", "AWS::SNS::Subscription", "AWS::ApiGateway::GatewayResponse"} <= types


def test_every_stack_refuses_an_unsupported_region_at_deploy(default):
    for name, template in default.templates().items():
        rule = template.to_json()["Rules"]["SupportedRegion"]
        [assertion] = rule["Assertions"]
        assert assertion["Assert"] == {"Fn::Contains": [list(SUPPORTED_REGIONS), {"Ref": "AWS::Region"}]}, name
        assert assertion["AssertDescription"].endswith(", ".join(SUPPORTED_REGIONS))


def test_a_named_unsupported_region_fails_before_any_construct(new_app):
    from ownllm.artifacts import ModelArtifacts
    from ownllm.settings import Settings, SettingsError
    from stacks.ownllm_app import build_stacks

    app = new_app()
    with pytest.raises(SettingsError) as raised:
        build_stacks(app, Settings.from_context({"region": "me-central-1"}), ModelArtifacts(Path("model_artifacts")))
    assert raised.value.problems == [unsupported_region_problem("me-central-1")]
    assert app.node.children == []


def lint(path: Path, region_names) -> list[tuple[str, str]]:
    return [(m.rule.id, m.message) for m in lint_file(path, config=ManualArgs(regions=list(region_names)))]


def test_cfn_lint_finds_no_errors_in_any_supported_region(default):
    """E3006 (resource type not in a region) and friends, for all supported regions at once."""
    for template in sorted(default.outdir.glob("*.template.json")):
        errors = [f for f in lint(template, SUPPORTED_REGIONS) if f[0].startswith("E")]
        assert errors == [], template.name


def test_without_its_condition_the_budget_would_fail_in_regions_without_budgets(default, tmp_path):
    """The condition is what keeps af-south-1 deployable: drop it and cfn-lint reports E3006."""
    template = json.loads((default.outdir / "OwnLlm-Monitoring.template.json").read_text())
    [budget] = [r for r in template["Resources"].values() if r["Type"] == BUDGET_RESOURCE_TYPE]
    del budget["Condition"]
    path = tmp_path / "unconditioned.template.json"
    path.write_text(json.dumps(template))
    assert [rule for rule, _ in lint(path, ["af-south-1"]) if rule.startswith("E")] == ["E3006"]
    assert [rule for rule, _ in lint(path, ["us-east-1"]) if rule.startswith("E")] == []


def test_a_region_without_the_web_adapter_layer_is_not_supported():
    """The forwarder streams through the Lambda Web Adapter layer: no layer, no API."""
    both = ["us-east-1", "eu-west-1"]
    table = derive(dict.fromkeys(both, ALL_TYPES), {"vllm": both}, adapter_regions=["us-east-1"])
    assert table.supported == ("us-east-1",)
    assert table.excluded == {"eu-west-1": "the Lambda Web Adapter arm64 layer is not published there"}
