"""The monitoring stack: alarms that can fire on one secure topic, a daily cost budget that
Budgets accepts, one dashboard."""

import json
import math

from aws_cdk.assertions import Annotations, Match

from ownllm import regions

ACCOUNT = {"Ref": "AWS::AccountId"}
SM_DIMS = [{"Name": "EndpointName", "Value": "ownllm-llm"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def alarms(t) -> dict[str, dict]:
    return {lid: a["Properties"] for lid, a in t.find_resources("AWS::CloudWatch::Alarm").items()}


def alarm(t, metric: str, namespace: str) -> dict:
    [a] = [a for a in alarms(t).values() if a.get("MetricName") == metric and a.get("Namespace") == namespace]
    return a


def dashboard(t) -> dict:
    """The dashboard body as JSON, with each CloudFormation token shown as `<Ref>`-like text."""
    [dash] = t.find_resources("AWS::CloudWatch::Dashboard").values()
    _, parts = dash["Properties"]["DashboardBody"]["Fn::Join"]
    text = "".join(p if isinstance(p, str) else f"<{next(iter(p))}>" for p in parts)
    return json.loads(text)


def widgets(t) -> dict[str, dict]:
    return {w["properties"]["title"]: w["properties"] for w in dashboard(t)["widgets"]}


def test_api_p95_latency_alarm_uses_the_configured_threshold(synth_app):
    a = alarm(synth_app((("latency_p95_ms", 20000),)).monitoring, "Latency", "AWS/ApiGateway")
    assert (a["ExtendedStatistic"], a["Threshold"]) == ("p95", 20000)


def test_unset_latency_alarms_default_to_twice_the_predicted_request_time(synth_app):
    """The model's per-request speed s for 250 output tokens: ceil(2 x 250 / s) s, in ms for the API
    alarm and in microseconds for ModelLatency."""
    s = synth_app()
    expected = math.ceil(2 * 250 / s.settings.capacity.request_tokens_per_s.value) * 1000
    assert alarm(s.monitoring, "Latency", "AWS/ApiGateway")["Threshold"] == expected
    assert alarm(s.monitoring, "ModelLatency", "AWS/SageMaker")["Threshold"] == expected * 1000


def test_api_5xx_rate_lambda_errors_throttles_and_duration_are_alarmed(default):
    t = default.monitoring
    assert alarm(t, "5XXError", "AWS/ApiGateway")["Threshold"] == 0.05
    assert alarm(t, "Errors", "AWS/Lambda")["Statistic"] == "Sum"
    assert alarm(t, "Throttles", "AWS/Lambda")["Threshold"] == 1
    duration = alarm(t, "Duration", "AWS/Lambda")
    assert (
        duration["ExtendedStatistic"] == "p99" and duration["Threshold"] == 0.9 * 299_000
    )  # the function runs up to api_timeout_s - 1 s (streams)


def test_model_latency_is_alarmed_on_its_average_in_microseconds(synth_app):
    """ModelLatency offers Average/Sum/Min/Max/SampleCount only: a percentile alarm never gets data."""
    a = alarm(synth_app((("latency_p95_ms", 20000),)).monitoring, "ModelLatency", "AWS/SageMaker")
    assert (a["Statistic"], a["Threshold"], a["EvaluationPeriods"]) == ("Average", 20_000 * 1000, 3)
    assert "ExtendedStatistic" not in a
    assert a["Dimensions"] == SM_DIMS


def test_no_alarm_uses_a_percentile_on_a_sagemaker_metric(default):
    sagemaker = [
        a
        for a in alarms(default.monitoring).values()
        if a.get("Namespace", "").lower().startswith(("aws/sagemaker", "/aws/sagemaker"))
    ]
    assert sagemaker and all("ExtendedStatistic" not in a for a in sagemaker)


def test_gpu_memory_is_not_alarmed_because_vllm_reserves_it_at_start(default):
    assert [a for a in alarms(default.monitoring).values() if a.get("MetricName") == "GPUMemoryUtilization"] == []


def test_queueing_is_alarmed_when_concurrency_stays_above_the_scaling_target(default, synth_app):
    """Unset, the target is the performance model's (Qwen2.5-7B bf16 on one A10G: 15 concurrent
    requests at the 20 tokens/s floor): 1.5 x 15 = 22.5 concurrent requests, for 3 x 5 minutes."""
    a = alarm(default.monitoring, "ConcurrentRequestsPerModel", "AWS/SageMaker")
    assert default.settings.autoscaling_target == 15
    assert (a["Statistic"], a["Threshold"], a["EvaluationPeriods"], a["Period"]) == ("Average", 22.5, 3, 300)
    assert (a["ComparisonOperator"], a["Dimensions"]) == ("GreaterThanThreshold", SM_DIMS)
    s = synth_app((("target_concurrency_per_instance", 4),))
    assert alarm(s.monitoring, "ConcurrentRequestsPerModel", "AWS/SageMaker")["Threshold"] == 6


def test_running_at_max_instances_for_half_an_hour_is_alarmed(default):
    [a] = [a for a in alarms(default.monitoring).values() if "Metrics" in a]
    expression, invocations, per_instance = a["Metrics"]
    assert expression["Expression"] == "invocations / perInstance"
    assert invocations["MetricStat"]["Metric"]["MetricName"] == "Invocations"
    assert per_instance["MetricStat"]["Metric"]["MetricName"] == "InvocationsPerInstance"
    # max_instances 2: a 5-minute average above 1.5 instances, 6 periods in a row.
    assert (a["Threshold"], a["EvaluationPeriods"], a["ComparisonOperator"]) == (1.5, 6, "GreaterThanThreshold")


def test_a_fixed_fleet_has_no_at_max_alarm(synth_app):
    s = synth_app((("min_instances", 2), ("instance_count", 2), ("max_instances", 2)))
    assert [a for a in alarms(s.monitoring).values() if "Metrics" in a] == []


def test_every_alarm_notifies_the_alarm_topic(default):
    [topic_id] = default.monitoring.find_resources("AWS::SNS::Topic")
    assert len(alarms(default.monitoring)) == 9
    for a in alarms(default.monitoring).values():
        assert a["AlarmActions"] == [{"Ref": topic_id}]


def source_arn(service: str, region: bool) -> dict:
    middle = [":", {"Ref": "AWS::Region"}, ":"] if region else ["::"]
    suffix = ":alarm:*" if service == "cloudwatch" else ":*"
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":{service}", *middle, ACCOUNT, suffix]]}


def merged(parts: list) -> list:
    """Fn::Join parts with adjacent strings merged, for comparison with `source_arn`."""
    out: list = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        else:
            out.append(p)
    return out


def conditions_for(service: str) -> dict:
    arn = source_arn(service, region=service == "cloudwatch")
    return {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": {"Fn::Join": ["", merged(arn["Fn::Join"][1])]}},
    }


def test_the_alarm_topic_is_encrypted_and_ssl_only_and_services_publish_only_for_this_account(default):
    default.monitoring.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    [policy] = default.monitoring.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = {s["Principal"]["Service"]: s for s in statements if s["Effect"] == "Allow"}
    assert sorted(allow) == ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]
    for service, statement in allow.items():
        assert statement["Action"] == "sns:Publish"
        assert statement["Condition"] == conditions_for(service.split(".")[0])


def test_the_key_lets_only_this_accounts_alarms_and_budgets_encrypt_for_the_topic(default):
    [key] = default.monitoring.find_resources("AWS::KMS::Key").values()
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s.get("Principal", {})]
    assert sorted(s["Principal"]["Service"] for s in services) == ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]
    for s in services:
        assert s["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert s["Condition"] == conditions_for(s["Principal"]["Service"].split(".")[0])


def test_no_email_subscription_without_an_alarm_email(default):
    default.monitoring.resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_subscribes_to_the_topic(synth_app):
    s = synth_app((("alarm_email", "ops@example.com"),))
    s.monitoring.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


def test_the_daily_budget_notifies_on_actual_cost_only(default, synth_app):
    """Budgets rejects FORECASTED notifications on a DAILY budget (InvalidParameterException)."""
    [budget] = default.monitoring.find_resources("AWS::Budgets::Budget").values()
    data = budget["Properties"]["Budget"]
    # Default: 2 x ml.g5.2xlarge (max_instances) x 24 h x $1.515/h x 1.2 headroom = $87.26.
    assert (data["TimeUnit"], data["BudgetType"]) == ("DAILY", "COST")
    assert data["BudgetLimit"] == {"Amount": 87.26, "Unit": "USD"}
    [notification] = budget["Properties"]["NotificationsWithSubscribers"]
    assert notification["Notification"] == {
        "NotificationType": "ACTUAL",
        "ComparisonOperator": "GREATER_THAN",
        "Threshold": 100,
        "ThresholdType": "PERCENTAGE",
    }
    explicit = synth_app((("max_daily_usd", 60),))
    [budget] = explicit.monitoring.find_resources("AWS::Budgets::Budget").values()
    assert budget["Properties"]["Budget"]["BudgetLimit"]["Amount"] == 60


def or_terms(expression: dict) -> list[str]:
    """The region names in a (nested) Fn::Or of Fn::Equals [AWS::Region, name]."""
    if "Fn::Or" in expression:
        assert 2 <= len(expression["Fn::Or"]) <= 10  # CloudFormation's limit per Fn::Or
        return [name for term in expression["Fn::Or"] for name in or_terms(term)]
    ref, name = expression["Fn::Equals"]
    assert ref == {"Ref": "AWS::Region"}
    return [name]


def test_an_environment_agnostic_budget_exists_only_where_budgets_does(default):
    [budget] = default.monitoring.find_resources("AWS::Budgets::Budget").values()
    assert budget["Condition"] == "BudgetsAvailable"
    condition = default.monitoring.to_json()["Conditions"]["BudgetsAvailable"]
    assert or_terms(condition) == list(regions.BUDGET_REGIONS)
    assert "us-east-1" in regions.BUDGET_REGIONS and "eu-north-1" not in regions.BUDGET_REGIONS


def test_a_region_without_budgets_gets_no_budget_and_a_synth_warning(synth_app):
    s = synth_app((("region", "eu-north-1"),))
    s.monitoring.resource_count_is("AWS::Budgets::Budget", 0)
    Annotations.from_stack(s.stacks.monitoring).has_warning(
        "*", Match.string_like_regexp("AWS::Budgets::Budget is not available in eu-north-1")
    )
    [policy] = s.monitoring.find_resources("AWS::SNS::TopicPolicy").values()
    services = [
        st["Principal"]["Service"]
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Allow"
    ]
    assert services == ["cloudwatch.amazonaws.com"]  # no grant for a service that has nothing to send


def test_a_region_with_budgets_gets_an_unconditional_budget(synth_app):
    s = synth_app((("region", "eu-west-1"),))
    [budget] = s.monitoring.find_resources("AWS::Budgets::Budget").values()
    assert "Condition" not in budget
    assert "Conditions" not in s.monitoring.to_json()


def metric_rows(widget: dict) -> list[list]:
    """Each plotted metric as [namespace, name, dimension pairs..., options]."""
    return widget["metrics"]


def test_the_dashboard_has_exactly_these_widgets(default):
    assert list(widgets(default.monitoring)) == [
        "Requests",
        "API latency (ms)",
        "Errors",
        "Model latency (ms)",
        "Concurrent requests per instance",
        "GPU utilisation (%, x GPU count)",
        "Instances",
        "Tokens",
        "Forwarder errors by class",
    ]


def test_the_dashboard_plots_api_requests_latency_percentiles_and_errors(default):
    w = widgets(default.monitoring)
    api = ["AWS/ApiGateway"]
    dims = ["ApiName", "OwnLlm-llm-api", "Stage", "prod"]
    assert metric_rows(w["Requests"]) == [[*api, "Count", *dims, {"stat": "Sum"}]]
    assert metric_rows(w["API latency (ms)"]) == [
        [*api, "Latency", *dims, {"stat": p}] for p in ("p50", "p90", "p95", "p99")
    ]
    assert w["API latency (ms)"]["annotations"]["horizontal"] == [
        {"value": default.settings.latency_alarm_ms, "label": "p95 alarm", "yAxis": "left"}
    ]
    assert default.settings.latency_alarm_ms == 17000  # 2 x 8.28 s per request, rounded up
    errors = metric_rows(w["Errors"])
    assert [row[:2] for row in errors] == [
        [*api, "4XXError"],
        [*api, "5XXError"],
        ["AWS/Lambda", "Errors"],
        ["AWS/SageMaker", "Invocation5XXErrors"],
    ]


def test_the_dashboard_shows_model_latency_in_ms_from_average_and_maximum(default):
    rows = metric_rows(widgets(default.monitoring)["Model latency (ms)"])
    sm = ["AWS/SageMaker", "ModelLatency", "EndpointName", "ownllm-llm", "VariantName", "AllTraffic"]
    assert rows == [
        [{"label": "ModelLatency Average", "expression": "latencyAverage / 1000"}],
        [*sm, {"id": "latencyAverage", "visible": False}],  # Average is a GraphWidget's default stat
        [{"label": "ModelLatency Maximum", "expression": "latencyMaximum / 1000"}],
        [*sm, {"id": "latencyMaximum", "visible": False, "stat": "Maximum"}],
    ]


def test_the_dashboard_shows_concurrency_against_the_scaling_target_and_the_queueing_alarm(default):
    w = widgets(default.monitoring)["Concurrent requests per instance"]
    sm_dims = ["EndpointName", "ownllm-llm", "VariantName", "AllTraffic"]
    assert metric_rows(w) == [["AWS/SageMaker", "ConcurrentRequestsPerModel", *sm_dims]]
    assert [(a["value"], a["label"]) for a in w["annotations"]["horizontal"]] == [
        (15, "scaling target"),
        (22.5, "queueing alarm"),
    ]


def test_the_dashboard_graphs_gpu_use_and_the_instance_count(default):
    w = widgets(default.monitoring)
    sm_dims = ["EndpointName", "ownllm-llm", "VariantName", "AllTraffic"]
    assert metric_rows(w["GPU utilisation (%, x GPU count)"]) == [
        ["/aws/sagemaker/Endpoints", "GPUUtilization", *sm_dims],
        ["/aws/sagemaker/Endpoints", "GPUMemoryUtilization", *sm_dims, {"stat": "Maximum"}],
    ]
    expression, *_ = metric_rows(w["Instances"])
    assert expression[0]["expression"] == "invocations / perInstance"


def test_the_dashboard_graphs_the_forwarders_token_and_error_metrics(default):
    w = widgets(default.monitoring)
    assert metric_rows(w["Tokens"]) == [
        ["ownllm", name, "service", "ownllm-forwarder", {"stat": "Sum"}]
        for name in ("PromptTokens", "CompletionTokens")
    ]
    [[search]] = metric_rows(w["Forwarder errors by class"])
    assert search["expression"] == "SEARCH('{ownllm,ErrorClass,service} MetricName=\"Errors\"', 'Sum', 300)"
