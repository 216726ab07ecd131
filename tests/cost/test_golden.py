"""Golden estimates, each worked by hand in its docstring (instances x hours x price, requests x
duration x GB x price), the way Infracost checks its golden files against the AWS calculator.

Prices (us-east-1, bundled catalog): ml.g5.4xlarge $2.03/h; Lambda x86 $0.0000166667/GB-s and
$0.20/1M requests; REST API $3.50/1M; Logs $0.50/GB ingested, $0.03/GB-month stored; transfer
out $0.09/GB; SageMaker data processed $0.016/GB. A month is 730 h = 30.41667 days.
Usage: 500 input + 192 output tokens; 192 / 40 tokens/s + 0.2 s overhead = 5.0 s per request;
request 500 x 4 + 600 = 2,600 B, response 192 x 4 + 600 = 1,368 B.
"""

from __future__ import annotations

import json

import pytest

from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.synth_hook import BudgetExceeded, report_after_synth

from .builders import ENDPOINT, FUNCTION, serving_resources

DAYS_PER_MONTH = 730 / 24


def lines(est) -> dict[str, float | None]:
    return {i.logical_id: i.daily_usd for i in est.items}


def test_one_g5_4xlarge_all_day_costs_24_hours_of_its_hourly_price(cdk_out, settings):
    """1 x ml.g5.4xlarge x 24 h x $2.03/h = $48.72/day."""
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)}), settings())
    assert lines(est)[ENDPOINT] == pytest.approx(48.72)


def test_one_g5_4xlarge_at_1000_requests_a_day_behind_a_rest_api_adds_up_to_the_hand_worked_bill(cdk_out, settings):
    """1,000 requests/day, 5 s each in a 128 MB Lambda, through a REST API.

    endpoint   1 x 24 h x $2.03                                   = 48.72
    lambda     1,000 x 5 s x 0.125 GB x $0.0000166667 = 0.0104166875
               + 1,000 / 1M x $0.20 = 0.0002                      =  0.0106166875
    REST API   1,000 / 1M x $3.50                                 =  0.0035
    transfer   1,000 x 1,368 B = 0.001368 GB x $0.09              =  0.00012312
    processed  1,000 x (2,600 + 1,368) B = 0.003968 GB x $0.016   =  0.000063488
    lambda log 1,000 x 1,000 B = 0.001 GB x $0.50 = 0.0005
               + 0.001 GB x 30 days x $0.03 / 30.41667 = 0.0000295890 = 0.000529589
    access log 1,000 x 450 B = 0.00045 GB x $0.50 = 0.000225
               + 0.00045 x 30 x $0.03 / 30.41667 = 0.0000133151    =  0.0002383151
    model log  1,000 x 300 B = 0.0003 GB x $0.50 = 0.00015
               + 0.0003 x 365 days (never expires) x $0.03 / 30.41667 = 0.000108 = 0.000258
    total                                                         = 48.7353295
    """
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)}), settings())
    got = lines(est)
    assert got[FUNCTION] == pytest.approx(0.0106166875)
    assert got["ApiRestApi0B1C2D3E"] == pytest.approx(0.0035)
    assert got["ApiRestApi0B1C2D3E/DataTransferOut"] == pytest.approx(0.00012312)
    assert got[f"{ENDPOINT}/DataProcessed"] == pytest.approx(0.000063488)
    assert got["ApiForwarderLogGroup1A2B3C4D"] == pytest.approx(0.000529589)
    assert got["ApiAccessLogsE4F5A6B7"] == pytest.approx(0.0002383151)
    assert got[f"{ENDPOINT}/LogGroup"] == pytest.approx(0.000258)
    assert est.daily_usd == pytest.approx(48.7353295, abs=1e-6)
    assert est.monthly_usd == pytest.approx(48.7353295 * DAYS_PER_MONTH, abs=1e-4)


def usage_of(est, logical_id: str) -> dict[str, tuple[float, float]]:
    """{component: (quantity per day, unit price)} of one line."""
    item = next(i for i in est.items if i.logical_id == logical_id)
    return {c.name: (pytest.approx(c.quantity_per_day), c.unit_usd) for c in item.components}


def test_the_lambda_line_is_its_requests_and_gb_seconds_at_their_prices(cdk_out, settings):
    """1,000 invocations x 5.00 s x 0.125 GB (128 MB, x86_64) = 625 GB-s at $0.0000166667;
    1,000 requests = 0.001 x 1M at $0.20."""
    est = estimate_cdk_out(cdk_out({"OwnLlm": serving_resources()}), settings())
    assert usage_of(est, FUNCTION) == {"Requests": (0.001, 0.2), "Duration": (625.0, 0.0000166667)}


def test_at_1_5_million_requests_a_day_the_per_request_lines_grow_but_the_instance_does_not(cdk_out, settings):
    """1.5M requests/day on the same single instance.

    endpoint   1 x 24 h x $2.03                                    = 48.72
    lambda     1.5M x 5 s x 0.125 GB x $0.0000166667 = 15.62503125
               + 1.5 x $0.20 = 0.30                                = 15.92503125
    REST API   1.5 x $3.50                                         =  5.25
    transfer   1.5M x 1,368 B = 2.052 GB x $0.09                   =  0.18468
    processed  1.5M x 3,968 B = 5.952 GB x $0.016                  =  0.095232
    lambda log 1.5 GB x $0.50 + 1.5 x 30 x $0.03 / 30.41667        =  0.7943835616
    access log 0.675 GB x $0.50 + 0.675 x 30 x $0.03 / 30.41667    =  0.3574726027
    model log  0.45 GB x $0.50 + 0.45 x 365 x $0.03 / 30.41667     =  0.387
    total                                                          = 71.7137997643
    The instance cannot keep up: 1.5M x 192 tokens / 86,400 s = 3,333 tokens/s,
    / 320 tokens/s per instance = 10.4, so 11 instances are needed.
    """
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)}), settings(requests_per_day=1_500_000)
    )
    got = lines(est)
    assert got[ENDPOINT] == pytest.approx(48.72)
    assert got[FUNCTION] == pytest.approx(15.92503125)
    assert got["ApiRestApi0B1C2D3E"] == pytest.approx(5.25)
    assert est.daily_usd == pytest.approx(71.7137997643, abs=1e-6)
    assert est.capacity[0]["instances_needed"] == 11
    assert any("needs 11 instances" in w for w in est.warnings)


def test_two_instances_cost_twice_one(cdk_out, settings):
    """2 x ml.g5.4xlarge x 24 h x $2.03/h = $97.44/day."""
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 2)}), settings(instance_count=2, max_instances=2)
    )
    item = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert item.daily_usd == pytest.approx(97.44)
    assert usage_of(est, ENDPOINT) == {"Instance usage": (48.0, 2.03)}


def test_autoscaling_1_to_4_at_low_load_bills_the_minimum_and_states_the_range(cdk_out, settings):
    """1,000 x 192 tokens / 86,400 s = 2.2 tokens/s needs 1 instance: 1 x 24 x $2.03 = $48.72;
    the range is min 1 ($48.72) .. max 4 (4 x 48.72 = $194.88)."""
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1, autoscaling=(1, 4))}), settings(max_instances=4)
    )
    item = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert item.daily_usd == pytest.approx(48.72)
    assert (item.min_daily_usd, item.max_daily_usd) == (pytest.approx(48.72), pytest.approx(194.88))
    [hours] = item.components
    assert (hours.min_quantity_per_day, hours.quantity_per_day, hours.max_quantity_per_day) == (24.0, 24.0, 96.0)
    assert est.to_dict()["daily_usd_range"]["max"] == pytest.approx(est.daily_usd + 3 * 48.72, abs=1e-4)


def test_autoscaling_adds_the_instances_the_assumed_load_needs(cdk_out, settings):
    """300,000 x 192 tokens / 86,400 s = 666.7 tokens/s; / 320 per instance = 2.08, so 3
    instances all day: 3 x 24 x $2.03 = $146.16/day."""
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1, autoscaling=(1, 4))}),
        settings(max_instances=4, requests_per_day=300_000),
    )
    item = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert item.daily_usd == pytest.approx(146.16)
    assert usage_of(est, ENDPOINT) == {"Instance usage": (72.0, 2.03)}
    assert est.capacity[0]["instances_needed"] == 3


def test_business_hours_scheduling_averages_active_and_off_hours_capacity_over_the_week(cdk_out, settings):
    """2 instances 08:00-18:00 Mon-Fri (10 h x 5 = 50 h/week), 1 otherwise (168 - 50 = 118 h).
    (2 x 50 + 1 x 118) = 218 instance-h/week / 7 = 31.142857 h/day x $2.03 = $63.22/day."""
    actions = [
        {
            "ScalableTargetAction": {"MaxCapacity": 2, "MinCapacity": 2},
            "Schedule": "cron(0 8 ? * MON-FRI *)",
            "ScheduledActionName": "StartOfActiveHours",
            "Timezone": "Europe/Paris",
        },
        {
            "ScalableTargetAction": {"MaxCapacity": 1, "MinCapacity": 1},
            "Schedule": "cron(0 18 ? * MON-FRI *)",
            "ScheduledActionName": "EndOfActiveHours",
            "Timezone": "Europe/Paris",
        },
    ]
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1, autoscaling=(1, 2), scheduled_actions=actions)}),
        settings(),
    )
    item = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert item.daily_usd == pytest.approx(63.22)
    assert usage_of(est, ENDPOINT) == {"Instance usage": (218 / 7, 2.03)}


def test_business_hours_only_cuts_the_instance_bill_by_about_two_thirds(cdk_out, settings):
    """An inference-component style schedule that scales to 0 off hours: 1 instance
    08:00-20:00 Mon-Fri = 60 h/week; 60 / 7 x $2.03 = $17.40/day against $48.72 all week:
    a 64% cut, within the 60-70% the economics literature reports."""
    actions = [
        {"ScalableTargetAction": {"MaxCapacity": 1, "MinCapacity": 1}, "Schedule": "cron(0 8 ? * MON-FRI *)"},
        {"ScalableTargetAction": {"MaxCapacity": 0, "MinCapacity": 0}, "Schedule": "cron(0 20 ? * MON-FRI *)"},
    ]
    est = estimate_cdk_out(
        cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1, autoscaling=(1, 1), scheduled_actions=actions)}),
        settings(active_hours="08:00-20:00"),
    )
    item = next(i for i in est.items if i.logical_id == ENDPOINT)
    assert item.daily_usd == pytest.approx(17.40)
    assert 0.60 <= 1 - item.daily_usd / 48.72 <= 0.70


def test_an_unpriced_resource_is_listed_as_unpriced_never_as_zero(cdk_out, settings):
    """A custom resource adds nothing to the total (48.7353295 as in the 1,000-request bill)
    and appears in `unpriced` with its reason."""
    resources = serving_resources()
    resources["ModelWarmup1A2B3C4D"] = {
        "Type": "Custom::ModelWarmup",
        "Properties": {"ServiceToken": {"Fn::GetAtt": [FUNCTION, "Arn"]}},
    }
    est = estimate_cdk_out(cdk_out({"OwnLlm": resources}), settings())
    warm = next(i for i in est.items if i.logical_id == "ModelWarmup1A2B3C4D")
    assert warm.daily_usd is None and not warm.priced
    doc = est.to_dict()
    assert {
        "stack": "OwnLlm",
        "logical_id": "ModelWarmup1A2B3C4D",
        "resource_type": "Custom::ModelWarmup",
        "reason": "custom resource: what it creates or calls is not in the template",
    } in doc["unpriced"]
    assert est.daily_usd == pytest.approx(48.7353295, abs=1e-6)


def test_a_budget_breach_fails_synth_with_estimate_limit_and_top_three_lines(cdk_out, settings, capsys):
    """$48.74/day against max_daily_usd $40: BudgetExceeded, a SystemExit, names both figures
    and the three largest lines (endpoint $48.72, Lambda $0.0106, REST API $0.0035)."""
    out = cdk_out({"OwnLlm": serving_resources()})
    with pytest.raises(BudgetExceeded) as info:
        report_after_synth(out, settings(max_daily_usd=40))
    message = str(info.value)
    assert isinstance(info.value, SystemExit)
    assert "$48.74/day exceeds max_daily_usd $40.00/day" in message
    top = [line for line in message.splitlines() if line.startswith("  $")]
    assert [line.split()[1].split("/")[1] for line in top] == [ENDPOINT, FUNCTION, "ApiRestApi0B1C2D3E"]
    written = json.loads((out / "cost-estimate.json").read_text())
    assert written["budget"] == {"max_daily_usd": 40.0, "exceeded": True, "incomplete": False}


def test_a_key_authorizer_is_billed_per_request_for_milliseconds_not_for_the_generation(cdk_out, settings):
    """The same API with a request authorizer (128 MB, arm64) invoked on every request:
    1,000 x 0.01 s x 0.125 GB x $0.0000133334 = 0.0000166668 + 1,000 / 1M x $0.20 = 0.0002
    = $0.0002166668/day, while the forwarder stays at 5 s per request ($0.0106166875)."""
    resources = serving_resources("ml.g5.4xlarge", 1)
    resources["ApiKeyAuthorizerFunction1A2B3C4D"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "app.handler",
            "Runtime": "python3.14",
            "MemorySize": 128,
            "Timeout": 3,
            "Architectures": ["arm64"],
            "Role": {"Fn::GetAtt": ["ServingModelRoleB1C2D3E4", "Arn"]},
        },
    }
    resources["ApiKeyAuthorizer5E6F7A8B"] = {
        "Type": "AWS::ApiGateway::Authorizer",
        "Properties": {
            "Type": "REQUEST",
            "AuthorizerResultTtlInSeconds": 0,
            "RestApiId": {"Ref": "ApiRestApi0B1C2D3E"},
            "AuthorizerUri": {
                "Fn::Join": [
                    "",
                    [
                        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/",
                        {"Fn::GetAtt": ["ApiKeyAuthorizerFunction1A2B3C4D", "Arn"]},
                        "/invocations",
                    ],
                ]
            },
        },
    }
    resources["ApiKeyAuthorizerPermission9C0D1E2F"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": ["ApiKeyAuthorizerFunction1A2B3C4D", "Arn"]},
        },
    }
    got = lines(estimate_cdk_out(cdk_out({"OwnLlm": resources}), settings()))
    assert got["ApiKeyAuthorizerFunction1A2B3C4D"] == pytest.approx(0.0002166668)
    assert got[FUNCTION] == pytest.approx(0.0106166875)


def test_custom_metrics_a_function_declares_are_priced_per_metric_month(cdk_out, settings):
    """5 metrics on every request x $0.30/metric-month = $1.50/month = 1.5 / 30.41667 = $0.049315/day;
    at most 19 metrics x $0.30 = $5.70/month = $0.187397/day."""
    resources = serving_resources("ml.g5.4xlarge", 1)
    resources[FUNCTION]["Metadata"] = {"ownllm:custom-metrics": {"always": 5, "at_most": 19}}
    est = estimate_cdk_out(cdk_out({"OwnLlm": resources}), settings())
    [item] = [i for i in est.items if i.logical_id == f"{FUNCTION}/CustomMetrics"]
    assert item.daily_usd == pytest.approx(1.5 / DAYS_PER_MONTH)
    assert item.max_daily_usd == pytest.approx(5.7 / DAYS_PER_MONTH)
    [metrics] = item.components
    assert (metrics.unit, metrics.quantity_per_day, metrics.max_quantity_per_day) == (
        "metric-month",
        pytest.approx(5 / DAYS_PER_MONTH),
        pytest.approx(19 / DAYS_PER_MONTH),
    )
