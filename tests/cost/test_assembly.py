"""Reading cdk.out: stacks from manifest.json, nested assemblies and stacks, and the region."""

from __future__ import annotations

import json

import pytest

from ownllm.cost.assembly import AssemblyError, load_assembly, resolve_region
from ownllm.cost.basis import NoteKind, PriceNote
from ownllm.cost.estimate import estimate_cdk_out

from .builders import ENDPOINT, serving_resources


def test_a_concrete_stack_environment_sets_the_region(cdk_out, settings):
    """eu-west-1 hosting is the catalog's estimate 2.03 x 1.12 = $2.2736/h; x 24 = $54.5664/day."""
    out = cdk_out({"OwnLlm": serving_resources()}, environment="aws://123456789012/eu-west-1")
    est = estimate_cdk_out(out, settings(region="us-west-2"))
    assert (est.region, est.region_source) == ("eu-west-1", "stack environment")
    assert next(i.daily_usd for i in est.items if i.logical_id == ENDPOINT) == pytest.approx(54.5664)


def test_an_environment_agnostic_stack_uses_settings_region(cdk_out, settings):
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources()}), settings(region="us-west-2"))
    assert (est.region, est.region_source) == ("us-west-2", "settings.region")


def test_without_any_region_the_estimate_says_it_assumed_us_east_1(cdk_out, settings):
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources()}), settings())
    assert est.region == "us-east-1"
    assert est.region_source.startswith("default")


def test_a_region_missing_from_the_catalog_falls_back_to_us_east_1_and_warns(cdk_out, settings):
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources()}, environment="aws://1/ap-southeast-2"), settings())
    endpoint = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert endpoint.daily_usd == pytest.approx(48.72)
    assert endpoint.basis.notes == (PriceNote(NoteKind.OTHER_REGION, "us-east-1", "ap-southeast-2"),)
    assert any("priced at us-east-1 rates" in w and "ap-southeast-2" in w for w in est.warnings)


@pytest.mark.parametrize(
    "environment, expected",
    [
        ("aws://unknown-account/unknown-region", None),
        ("aws://123456789012/unknown-region", None),
        ("aws://123456789012/eu-west-1", "eu-west-1"),
        ("", None),
    ],
)
def test_only_concrete_regions_count(environment, expected):
    region, source = resolve_region(environment, None)
    assert (region == expected) if expected else source.startswith("default")


def test_stacks_inside_a_stage_assembly_are_priced_under_the_stage_name(tmp_path, settings):
    root = tmp_path / "cdk.out"
    stage = root / "assembly-Prod"
    stage.mkdir(parents=True)
    (stage / "ProdOwnLlm.template.json").write_text(json.dumps({"Resources": serving_resources()}))
    (stage / "manifest.json").write_text(
        json.dumps(
            {
                "version": "55.0.0",
                "artifacts": {
                    "ProdOwnLlm": {
                        "type": "aws:cloudformation:stack",
                        "environment": "aws://unknown-account/unknown-region",
                        "properties": {"templateFile": "ProdOwnLlm.template.json"},
                        "displayName": "Prod/OwnLlm",
                    }
                },
            }
        )
    )
    (root / "manifest.json").write_text(
        json.dumps(
            {
                "version": "55.0.0",
                "artifacts": {
                    "assembly-Prod": {
                        "type": "cdk:cloud-assembly",
                        "properties": {"directoryName": "assembly-Prod", "displayName": "Prod"},
                    }
                },
            }
        )
    )
    est = estimate_cdk_out(root, settings())
    assert [s["name"] for s in est.stacks] == ["Prod/OwnLlm"]
    assert est.daily_usd > 48.72


def test_nested_stack_resources_are_priced_under_parent_and_logical_id(cdk_out, settings):
    out = cdk_out(
        {
            "Parent": {
                "ServingNestedStack1A2B3C4D": {
                    "Type": "AWS::CloudFormation::Stack",
                    "Properties": {
                        "TemplateURL": {
                            "Fn::Join": ["", ["https://s3.", {"Ref": "AWS::Region"}, ".amazonaws.com/x.json"]]
                        }
                    },
                    "Metadata": {"aws:asset:path": "ParentServingNested.nested.template.json"},
                }
            }
        }
    )
    (out / "ParentServingNested.nested.template.json").write_text(json.dumps({"Resources": serving_resources()}))
    est = estimate_cdk_out(out, settings())
    endpoint = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert endpoint.stack == "Parent/ServingNestedStack1A2B3C4D"
    assert next(i for i in est.items if i.logical_id == "ServingNestedStack1A2B3C4D").daily_usd == 0.0


def test_a_folder_without_manifest_is_reported_clearly(tmp_path):
    with pytest.raises(AssemblyError, match="no manifest.json"):
        load_assembly(tmp_path)


NOT_A_RESOURCE = "is not an object with a 'Type' name (and 'Properties' object), so not a stack template"


@pytest.mark.parametrize(
    "template, problem",
    [
        ({"Resources": 5}, "'Resources' is not an object, so not a stack template"),
        ({"Resources": {"X": 5}}, f"resource 'X' {NOT_A_RESOURCE}"),
        ({"Resources": {"X": {"Type": 5}}}, f"resource 'X' {NOT_A_RESOURCE}"),
        ({"Resources": {"X": {"Type": "AWS::Logs::LogGroup", "Properties": 5}}}, f"resource 'X' {NOT_A_RESOURCE}"),
        ({"Parameters": {"P": 5}, "Resources": {}}, "parameter 'P' is not an object, so not a stack template"),
    ],
)
def test_a_template_of_another_shape_is_refused_naming_it_not_priced_without_its_lines(
    cdk_out, settings, template, problem
):
    """`Resources: 5` dropped the endpoint from the total without a word; a resource that was not an object
    was an AttributeError traceback."""
    out = cdk_out({"OwnLlm": serving_resources()})
    path = out / "OwnLlm.template.json"
    path.write_text(json.dumps(template))
    with pytest.raises(AssemblyError) as caught:
        estimate_cdk_out(out, settings())
    assert str(caught.value) == f"{path}: {problem}; run `cdk synth` again"


@pytest.mark.parametrize("variants", [5, "AllTraffic", [5]])
def test_a_property_of_a_shape_no_template_has_is_one_line_naming_the_file_not_a_traceback(cdk_out, settings, variants):
    """ProductionVariants must be a list of objects; 5 was "TypeError: 'int' object is not iterable"."""
    from .builders import CONFIG

    resources = serving_resources()
    resources[CONFIG]["Properties"]["ProductionVariants"] = variants
    out = cdk_out({"OwnLlm": resources})
    with pytest.raises(AssemblyError) as caught:
        estimate_cdk_out(out, settings())
    assert str(caught.value).startswith(
        f"{out / 'OwnLlm.template.json'}: a property has a shape no CloudFormation template has ("
    )
    assert str(caught.value).endswith("); run `cdk synth` again")


def test_a_count_above_what_cloudformation_takes_is_refused_not_an_overflow(cdk_out, settings):
    """MaxCapacity 1e308 overflowed `round` in the capacity table; CloudFormation integers are 32-bit."""
    from ownllm.cost.template import TemplateValueError

    out = cdk_out({"OwnLlm": serving_resources(autoscaling=(1, 2))})
    path = out / "OwnLlm.template.json"
    template = json.loads(path.read_text())
    target = next(k for k, v in template["Resources"].items() if v["Type"].endswith("ScalableTarget"))
    template["Resources"][target]["Properties"]["MaxCapacity"] = 1e308
    path.write_text(json.dumps(template))
    with pytest.raises(TemplateValueError) as caught:
        estimate_cdk_out(out, settings())
    assert str(caught.value) == (f"{path}: {target} MaxCapacity: 1e+308 is not a whole number >= 0 and <= 2147483647")
