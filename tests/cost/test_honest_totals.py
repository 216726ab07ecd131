"""An estimate never prices what it cannot price as $0, never prices impossible numbers, and
never crashes on a template it cannot read.

Prices (us-east-1, bundled catalog): ml.g5.2xlarge $1.515/h, ml.g5.4xlarge $2.03/h.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from ownllm.cli import main
from ownllm.cost.basis import UnreadableVariant, VariantProblem
from ownllm.cost.diff import diff_estimates, total_line
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.model import INSTANCES, UNPRICED
from ownllm.cost.report import headline, markdown, print_terminal
from ownllm.cost.synth_hook import BudgetExceeded, report_after_synth
from ownllm.cost.template import TemplateValueError

from .builders import CONFIG, ENDPOINT, FUNCTION, serving_resources


def variant(resources: dict) -> dict:
    return resources[CONFIG]["Properties"]["ProductionVariants"][0]


def endpoint_line(est):
    return next(i for i in est.items if i.logical_id == ENDPOINT)


def test_an_instance_type_chosen_by_fn_if_is_priced_as_the_range_of_its_branches(cdk_out, settings):
    """ml.g5.2xlarge: 1 x 24 h x $1.515 = $36.36/day; ml.g5.4xlarge: 1 x 24 h x $2.03 = $48.72/day.
    The total counts the top of the range, so a budget guard errs on the safe side."""
    r = serving_resources()
    variant(r)["InstanceType"] = {"Fn::If": ["UseBig", "ml.g5.4xlarge", "ml.g5.2xlarge"]}
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    line = endpoint_line(est)
    assert (line.category, line.min_daily_usd, line.max_daily_usd, line.daily_usd) == pytest.approx(
        (INSTANCES, 36.36, 48.72, 48.72)
    )
    assert est.complete


def test_a_count_chosen_by_fn_if_is_priced_as_the_range_of_its_branches_not_as_one(cdk_out, settings):
    """1 or 3 x ml.g5.4xlarge x 24 h x $2.03 = $48.72..$146.16/day."""
    r = serving_resources()
    variant(r)["InitialInstanceCount"] = {"Fn::If": ["Prod", 3, 1]}
    line = endpoint_line(estimate_cdk_out(cdk_out({"S": r}), settings()))
    assert (line.min_daily_usd, line.max_daily_usd, line.daily_usd) == pytest.approx((48.72, 146.16, 146.16))


def test_a_count_that_is_not_a_literal_or_a_choice_is_unpriced_not_one(cdk_out, settings):
    r = serving_resources()
    variant(r)["InitialInstanceCount"] = {"Fn::ImportValue": "SharedCount"}
    line = endpoint_line(estimate_cdk_out(cdk_out({"S": r}), settings()))
    assert (line.category, line.daily_usd) == (UNPRICED, None)


def test_an_instance_type_missing_from_the_catalog_makes_the_estimate_incomplete_everywhere(cdk_out, settings):
    r = serving_resources()
    variant(r)["InstanceType"] = "ml.g5.48xlarge-new"
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert (endpoint_line(est).category, endpoint_line(est).daily_usd) == (UNPRICED, None)
    doc = est.to_dict()
    assert (doc["complete"], [u["logical_id"] for u in doc["unpriced"]]) == (False, [ENDPOINT])
    assert headline(est).startswith("INCOMPLETE, 1 unpriced resource(s) not counted: at least $")
    assert markdown(est).splitlines()[0] == "# ownllm cost estimate (INCOMPLETE: 1 unpriced)"
    assert markdown(est).splitlines()[2].startswith("**INCOMPLETE, 1 unpriced resource(s) not counted")
    out = io.StringIO()
    print_terminal(est, file=out)
    assert out.getvalue().lstrip().startswith("ownllm cost estimate: INCOMPLETE")


def test_the_budget_guard_fails_an_incomplete_estimate_even_under_the_limit(cdk_out, settings):
    """Priced lines come to about $0.02/day, far under $40, but the endpoint has no price."""
    r = serving_resources()
    variant(r)["InstanceType"] = {"Ref": "AWS::NoValue"}
    with pytest.raises(BudgetExceeded) as info:
        report_after_synth(cdk_out({"S": r}), settings(max_daily_usd=40), stream=io.StringIO())
    assert str(info.value).startswith(
        "ownllm: the estimate is incomplete, so it cannot show the bill stays under max_daily_usd $40.00/day: "
        f"1 unpriced: S/{ENDPOINT} (InstanceType is neither a literal"
    )


def test_cost_diff_flags_an_incomplete_side_instead_of_a_percentage(cdk_out, settings):
    base = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings())
    r = serving_resources()
    variant(r)["InstanceType"] = "ml.unknown.xlarge"
    head = estimate_cdk_out(cdk_out({"S": r}), settings())
    d = diff_estimates(base, head)
    assert d.percent is None
    assert total_line(d) == (
        "**Incomplete: head has 1 unpriced, so the totals ($48.74/day → $0.0153/day) "
        "leave them out and no change is given.**"
    )


@pytest.mark.parametrize(
    "prop, value",
    [("InitialInstanceCount", -1), ("InitialInstanceCount", 1.5), ("InitialVariantWeight", math.nan)],
)
def test_impossible_numbers_are_refused_naming_file_resource_and_property(cdk_out, settings, prop, value):
    r = serving_resources()
    variant(r)[prop] = value
    out = cdk_out({"S": r})
    with pytest.raises(TemplateValueError) as info:
        estimate_cdk_out(out, settings())
    assert str(info.value).startswith(
        f"{out / 'S.template.json'}: {CONFIG} ProductionVariants[0].{prop}: {value!r} is not a"
    )


@pytest.mark.parametrize("memory", [-128, 1e9])
def test_a_lambda_memory_no_function_can_have_is_refused_by_cost_estimate_in_one_line(
    cdk_out, tmp_path, capsys, memory
):
    r = serving_resources()
    r[FUNCTION]["Properties"]["MemorySize"] = memory
    out = cdk_out({"S": r})
    assert main(["cost", "estimate", "--cdk-out", str(out), "--settings", str(_empty_cdk_json(tmp_path))]) == 2
    assert capsys.readouterr().err == (
        f"ownllm: {out / 'S.template.json'}: {FUNCTION} MemorySize: {memory!r} is not a finite number >= 128 "
        "and <= 10240\n"
    )


@pytest.mark.parametrize("expression", ["cron(0 9 ? * MON#1 *)", "cron(0 9 ? * 6L *)", "rate(five minutes)"])
def test_a_valid_aws_cron_that_is_not_weekly_leaves_its_lambda_unpriced_with_a_warning(cdk_out, settings, expression):
    r = serving_resources()
    r["Report1A2B3C4D"] = {"Type": "AWS::Lambda::Function", "Properties": {}}
    r["ReportRule5E6F7A8B"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "ScheduleExpression": expression,
            "Targets": [{"Arn": {"Fn::GetAtt": ["Report1A2B3C4D", "Arn"]}, "Id": "Target0"}],
        },
    }
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    line = next(i for i in est.items if i.logical_id == "Report1A2B3C4D")
    assert (line.category, line.daily_usd) == (UNPRICED, None)
    assert f"S/Report1A2B3C4D: schedule {expression!r} cannot be averaged over a week; its invocations are unknown" in (
        est.warnings
    )


def test_a_scheduled_action_that_is_not_weekly_is_ignored_with_a_warning(cdk_out, settings):
    r = serving_resources(
        autoscaling=(1, 2),
        scheduled_actions=[
            {
                "ScheduledActionName": "x",
                "Schedule": "cron(0 8 ? * MON#1 *)",
                "ScalableTargetAction": {"MinCapacity": 2},
            }
        ],
    )
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert any("scheduled action ignored: 'MON#1' depends on the month" in w for w in est.warnings)


def test_a_truncated_template_fails_synths_estimate_in_one_line_naming_the_file(cdk_out, settings):
    out = cdk_out({"S": serving_resources()})
    (out / "S.template.json").write_text('{"Resources": {"A": ')
    stream = io.StringIO()
    with pytest.raises(SystemExit) as info:
        report_after_synth(out, settings(), stream=stream)
    assert info.value.code == 2
    [line] = stream.getvalue().splitlines()
    assert line.startswith(
        f"ownllm: cost estimate failed: {out / 'S.template.json'}: not valid JSON, truncated or corrupt"
    )


def test_a_nested_assembly_that_refers_to_itself_is_one_line_not_a_recursion_error(tmp_path: Path, capsys):
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "version": "55.0.0",
                "artifacts": {"Stage": {"type": "cdk:cloud-assembly", "properties": {"directoryName": "."}}},
            }
        )
    )
    assert main(["cost", "estimate", "--cdk-out", str(tmp_path), "--settings", str(_empty_cdk_json(tmp_path))]) == 2
    assert capsys.readouterr().err == (
        f"ownllm: {tmp_path / '.' / 'manifest.json'}: a nested cloud assembly refers back to {tmp_path.resolve()}\n"
    )


def test_an_environment_agnostic_stack_is_priced_in_aws_region_when_settings_have_none(cdk_out, settings, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    est = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings())
    assert (est.region, est.region_source) == ("eu-west-1", "AWS_REGION")


def test_min_capacity_above_max_capacity_is_warned(cdk_out, settings):
    r = serving_resources(autoscaling=(3, 2))
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert any("MinCapacity 3 is above MaxCapacity 2" in w for w in est.warnings)


def test_an_autoscaling_ceiling_chosen_by_fn_if_is_priced_up_to_its_highest_branch(cdk_out, settings):
    """MaxCapacity 2 or 4: the range reaches 4 x 24 h x $2.03 = $194.88/day."""
    r = serving_resources(autoscaling=(1, 2))
    target = next(v for v in r.values() if v["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget")
    target["Properties"]["MaxCapacity"] = {"Fn::If": ["Prod", 4, 2]}
    line = endpoint_line(estimate_cdk_out(cdk_out({"S": r}), settings()))
    assert (line.min_daily_usd, line.max_daily_usd) == pytest.approx((48.72, 194.88))


def test_an_autoscaling_floor_that_cannot_be_read_leaves_the_endpoint_unpriced(cdk_out, settings):
    r = serving_resources(autoscaling=(1, 2))
    target_id, target = next((k, v) for k, v in r.items() if v["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget")
    target["Properties"]["MinCapacity"] = {"Fn::ImportValue": "Floor"}
    line = endpoint_line(estimate_cdk_out(cdk_out({"S": r}), settings()))
    assert (line.category, line.daily_usd) == (UNPRICED, None)
    assert line.basis == UnreadableVariant(VariantProblem.BOUND_UNKNOWN, target_id, "MinCapacity")


def _empty_cdk_json(folder):
    """A cdk.json with no settings: every setting at its default, ./cdk.json not read."""
    path = folder / "empty-cdk.json"
    path.write_text("{}")
    return path
