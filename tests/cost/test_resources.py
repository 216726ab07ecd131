"""Per-resource pricing rules: who is on the request path, what is free, what cannot be priced."""

from __future__ import annotations

import pytest

from ownllm.cost.basis import NoCharge, NoChargeReason, NoPricer, NotInCatalog
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.graph import invocations_per_day
from ownllm.cost.model import FREE, UNPRICED
from ownllm.cost.pricers import PRICERS
from ownllm.cost.pricers.free import FREE_TYPES
from ownllm.cost.wording import basis_text

from .builders import CONFIG, ENDPOINT, FUNCTION, monitoring_resources, serving_resources

DAYS_PER_MONTH = 730 / 24


def item(est, logical_id):
    return next(i for i in est.items if i.logical_id == logical_id)


def test_the_instance_type_comes_from_the_endpoint_config_not_a_default(cdk_out, settings):
    """cdk-cost-analyzer's bug: it priced every endpoint as ml.m5.large. 1 x 24 x $20.36 = $488.64."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources("ml.g5.48xlarge")}), settings())
    assert item(est, ENDPOINT).daily_usd == pytest.approx(488.64)


def test_an_endpoint_config_found_by_literal_name_is_resolved(cdk_out, settings):
    r = serving_resources()
    r[CONFIG]["Properties"]["EndpointConfigName"] = "ownllm-config"
    r[ENDPOINT]["Properties"]["EndpointConfigName"] = "ownllm-config"
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, ENDPOINT).daily_usd == pytest.approx(48.72)


def test_an_endpoint_whose_config_lives_elsewhere_is_unpriced(cdk_out, settings):
    r = serving_resources()
    r[ENDPOINT]["Properties"]["EndpointConfigName"] = {"Fn::ImportValue": "OtherStack:ConfigName"}
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, ENDPOINT).category == UNPRICED


def test_an_instance_type_given_as_a_parameter_default_is_followed(cdk_out, settings):
    r = serving_resources()
    r[CONFIG]["Properties"]["ProductionVariants"][0]["InstanceType"] = {"Ref": "InstanceType"}
    out = cdk_out({"S": r}, parameters={"InstanceType": {"Type": "String", "Default": "ml.g5.2xlarge"}})
    assert item(estimate_cdk_out(out, settings()), ENDPOINT).daily_usd == pytest.approx(1.515 * 24)


def test_an_instance_type_missing_from_the_catalog_is_unpriced_not_zero(cdk_out, settings):
    est = estimate_cdk_out(cdk_out({"S": serving_resources("ml.m5.large")}), settings())
    assert item(est, ENDPOINT).daily_usd is None
    assert item(est, ENDPOINT).basis == NotInCatalog(("ml.m5.large",), "us-east-1")


def test_an_unused_endpoint_config_costs_nothing_and_says_why(cdk_out, settings):
    r = serving_resources()
    del r[ENDPOINT]
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, CONFIG).daily_usd == 0.0
    assert item(est, CONFIG).basis == NoCharge(NoChargeReason.ENDPOINT_CONFIG_UNUSED)


def test_arm64_lambdas_use_the_arm_duration_price(cdk_out, settings):
    """1,000 x 5 s x 0.125 GB x $0.0000133334 + 1,000 x $0.20/1M = 0.00833338 + 0.0002."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources(architecture="arm64")}), settings())
    assert item(est, FUNCTION).daily_usd == pytest.approx(0.00853338)


def test_lambda_duration_is_capped_by_its_timeout(cdk_out, settings):
    """1,000 x 3 s (timeout) x 0.5 GB x $0.0000166667 + $0.0002 = 0.02500005 + 0.0002."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources(lambda_memory=512, lambda_timeout=3)}), settings())
    assert item(est, FUNCTION).daily_usd == pytest.approx(0.02520005)
    assert components(est, FUNCTION)["Duration"] == ("GB-second", pytest.approx(1000 * 3 * 0.5), 0.0000166667)


def test_a_custom_resource_handler_is_deploy_time_only(cdk_out, settings):
    r = serving_resources()
    r["ProviderHandler1A2B3C4D"] = {"Type": "AWS::Lambda::Function", "Properties": {"MemorySize": 512}}
    r["Warmup5E6F7A8B"] = {
        "Type": "Custom::Warmup",
        "Properties": {"ServiceToken": {"Fn::GetAtt": ["ProviderHandler1A2B3C4D", "Arn"]}},
    }
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    handler = item(est, "ProviderHandler1A2B3C4D")
    assert (handler.daily_usd, handler.category) == (0.0, FREE)
    assert handler.basis == NoCharge(NoChargeReason.DEPLOY_TIME_FUNCTION)
    assert item(est, "Warmup5E6F7A8B").category == UNPRICED


def test_a_lambda_with_no_trigger_is_unpriced(cdk_out, settings):
    r = serving_resources()
    r["Orphan1A2B3C4D"] = {"Type": "AWS::Lambda::Function", "Properties": {}}
    assert item(estimate_cdk_out(cdk_out({"S": r}), settings()), "Orphan1A2B3C4D").category == UNPRICED


def test_a_scheduled_lambda_is_billed_per_run(cdk_out, settings):
    """rate(5 minutes) = 288 runs/day x 1 s x 0.125 GB x $0.0000166667 + 288 x $0.20/1M."""
    r = serving_resources()
    r["Pinger1A2B3C4D"] = {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 10}}
    r["PingRule5E6F7A8B"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "ScheduleExpression": "rate(5 minutes)",
            "Targets": [{"Arn": {"Fn::GetAtt": ["Pinger1A2B3C4D", "Arn"]}, "Id": "Target0"}],
        },
    }
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, "Pinger1A2B3C4D").daily_usd == pytest.approx(288 * 0.125 * 0.0000166667 + 288 * 0.2e-6)


def test_a_function_without_a_log_group_in_the_template_still_pays_for_its_logs(cdk_out, settings):
    """/aws/lambda/<fn> never expires unless set: 0.001 GB x $0.50 + 0.001 x 365 x $0.03 / 30.41667."""
    r = serving_resources()
    del r["ApiForwarderLogGroup1A2B3C4D"]
    del r[FUNCTION]["Properties"]["LoggingConfig"]
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    implicit = item(est, f"{FUNCTION}/LogGroup")
    assert implicit.daily_usd == pytest.approx(0.0005 + 0.001 * 365 * 0.03 / DAYS_PER_MONTH)
    assert components(est, f"{FUNCTION}/LogGroup")["Storage"] == (
        "GB-month",
        pytest.approx(0.001 * 365 / DAYS_PER_MONTH),
        0.03,
    )


def test_an_http_api_is_priced_at_the_http_rate(cdk_out, settings):
    r = {"HttpApi1A2B3C4D": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "HTTP"}}}
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, "HttpApi1A2B3C4D").daily_usd == pytest.approx(1000 * 1.00 / 1e6)


def test_a_stage_cache_cannot_be_priced_silently(cdk_out, settings):
    r = serving_resources()
    r["ApiDeploymentStageprod9F8E7D6C"]["Properties"]["CacheClusterEnabled"] = True
    assert item(estimate_cdk_out(cdk_out({"S": r}), settings()), "ApiDeploymentStageprod9F8E7D6C").category == UNPRICED


def test_monitoring_lines_are_monthly_fees_spread_over_the_day(cdk_out, settings):
    """3 alarms x $0.10 + 1 dashboard x $3.00 = $3.30/month = $0.108493/day; topic and budget free."""
    est = estimate_cdk_out(cdk_out({"M": monitoring_resources(alarms=3, dashboards=1)}), settings())
    assert est.daily_usd == pytest.approx(3.30 / DAYS_PER_MONTH)
    assert item(est, "AlarmTopicD01E77F9").category == FREE
    assert item(est, "DailyBudget7F6E5D4C").daily_usd == 0.0


@pytest.mark.parametrize(
    "props, per_month",
    [
        ({"Period": 10, "MetricName": "X", "Namespace": "N"}, 0.30),
        (
            {
                "Metrics": [
                    {"Id": "a", "MetricStat": {"Period": 60}},
                    {"Id": "b", "MetricStat": {"Period": 60}},
                    {"Id": "e", "Expression": "a/b"},
                ]
            },
            0.20,
        ),
        ({"Metrics": [{"Id": "m", "MetricStat": {"Period": 300}}], "ThresholdMetricId": "ad"}, 0.30),
    ],
)
def test_alarm_price_follows_resolution_and_metric_count(cdk_out, settings, props, per_month):
    est = estimate_cdk_out(cdk_out({"M": {"A1": {"Type": "AWS::CloudWatch::Alarm", "Properties": props}}}), settings())
    assert item(est, "A1").daily_usd == pytest.approx(per_month / DAYS_PER_MONTH)


def test_an_unknown_resource_type_is_unpriced_with_the_type_named(cdk_out, settings):
    est = estimate_cdk_out(cdk_out({"S": {"Thing": {"Type": "AWS::Foo::Bar"}}}), settings())
    assert (item(est, "Thing").daily_usd, item(est, "Thing").basis) == (None, NoPricer("AWS::Foo::Bar"))


def test_cdk_metadata_is_not_a_line():
    assert "AWS::CDK::Metadata" not in PRICERS and "AWS::CDK::Metadata" not in FREE_TYPES


def test_every_free_type_says_no_charge():
    assert all(basis_text(NoCharge(reason)).startswith("no charge") for reason in FREE_TYPES.values())


@pytest.mark.parametrize(
    "expr, per_day",
    [
        ("rate(1 hour)", 24),
        ("rate(5 minutes)", 288),
        ("cron(0 8 ? * MON-FRI *)", 5 / 7),
        ("at(2027-01-01T00:00:00)", None),
    ],
)
def test_invocations_per_day_of_schedule_expressions(expr, per_day):
    assert invocations_per_day(expr) == (pytest.approx(per_day) if per_day else None)


def test_an_eventbridge_scheduler_schedule_is_billed_per_invocation(cdk_out, settings):
    """cron(0 8 ? * MON-FRI *): 5 runs a week = 0.714/day x $1.00/1M."""
    r = {
        "Warm1A2B3C4D": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "ScheduleExpression": "cron(0 8 ? * MON-FRI *)",
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "Target": {
                    "Arn": "arn:aws:scheduler:::aws-sdk:sagemaker:describeEndpoint",
                    "RoleArn": "arn:aws:iam::1:role/r",
                },
            },
        }
    }
    est = estimate_cdk_out(cdk_out({"S": r}), settings())
    assert item(est, "Warm1A2B3C4D").daily_usd == pytest.approx(5 / 7 * 1.00 / 1e6)


def components(est, logical_id):
    return {c.name: (c.unit, c.quantity_per_day, c.unit_usd) for c in item(est, logical_id).components}


def test_a_lambda_line_is_its_requests_and_its_duration_priced_separately(cdk_out, settings):
    """1,000 invocations = 0.001 x 1M requests at $0.20; 1,000 x 5 s x 0.125 GB = 625 GB-s at $0.0000166667."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings())
    assert components(est, FUNCTION) == {
        "Requests": ("1M requests", pytest.approx(0.001), 0.2),
        "Duration": ("GB-second", pytest.approx(625.0), 0.0000166667),
    }


def test_an_endpoint_line_is_instance_hours_at_the_hourly_price(cdk_out, settings):
    """Fixed 2 x ml.g5.4xlarge: 48 instance-hours a day at $2.03."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources("ml.g5.4xlarge", 2)}), settings(instance_count=2))
    assert components(est, ENDPOINT) == {"Instance usage": ("hour", pytest.approx(48.0), 2.03)}


def test_a_log_group_is_ingestion_plus_storage_in_gb_and_gb_months(cdk_out, settings):
    """Access log: 1,000 x 450 B = 0.00045 GB/day ingested; kept 30 days = 0.0135 GB, a day's share of a
    month is 0.0135 / 30.41667 GB-months."""
    est = estimate_cdk_out(cdk_out({"S": serving_resources()}), settings())
    assert components(est, "ApiAccessLogsE4F5A6B7") == {
        "Ingestion": ("GB", pytest.approx(0.00045), 0.5),
        "Storage": ("GB-month", pytest.approx(0.0135 / (730 / 24)), 0.03),
    }


def test_a_diff_names_the_component_that_moved(cdk_out, settings):
    """Longer answers lengthen the Lambda's duration; its request count, and so its request charge, stays."""
    from ownllm.cost.diff import diff_estimates

    out = cdk_out({"S": serving_resources()})
    base = estimate_cdk_out(out, settings(avg_output_tokens=192))
    head = estimate_cdk_out(out, settings(avg_output_tokens=392))
    change = next(c for c in diff_estimates(base, head).changes if c.logical_id == FUNCTION)
    assert change.moved == ("Duration",)
