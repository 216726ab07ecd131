"""The monitoring stack: alarms on one secure topic, a daily cost budget, one dashboard."""

import json

from aws_cdk.assertions import Match


def alarms(t) -> dict[str, dict]:
    return {lid: a["Properties"] for lid, a in t.find_resources("AWS::CloudWatch::Alarm").items()}


def alarm(t, metric: str, namespace: str) -> dict:
    [a] = [a for a in alarms(t).values() if a.get("MetricName") == metric and a.get("Namespace") == namespace]
    return a


def test_api_p95_latency_alarm_uses_the_configured_threshold(default):
    a = alarm(default.monitoring, "Latency", "AWS/ApiGateway")
    assert (a["ExtendedStatistic"], a["Threshold"]) == ("p95", 20000)


def test_api_5xx_rate_lambda_errors_throttles_and_duration_are_alarmed(default):
    t = default.monitoring
    assert alarm(t, "5XXError", "AWS/ApiGateway")["Threshold"] == 0.05
    assert alarm(t, "Errors", "AWS/Lambda")["Statistic"] == "Sum"
    assert alarm(t, "Throttles", "AWS/Lambda")["Threshold"] == 1
    duration = alarm(t, "Duration", "AWS/Lambda")
    assert duration["ExtendedStatistic"] == "p99" and duration["Threshold"] == 0.9 * 28_000


def test_sagemaker_model_latency_is_alarmed_in_microseconds(default):
    a = alarm(default.monitoring, "ModelLatency", "AWS/SageMaker")
    assert a["Threshold"] == 20_000 * 1000
    assert {"Name": "EndpointName", "Value": "ownllm-llm"} in a["Dimensions"]


def test_invocation_5xx_errors_and_gpu_memory_are_alarmed(default):
    assert alarm(default.monitoring, "Invocation5XXErrors", "AWS/SageMaker")["Threshold"] == 5
    assert alarm(default.monitoring, "GPUMemoryUtilization", "/aws/sagemaker/Endpoints")["Threshold"] == 95


def test_gpu_memory_threshold_scales_with_the_gpu_count(synth_app):
    s = synth_app((("instance_type", "ml.g5.12xlarge"),))
    assert alarm(s.monitoring, "GPUMemoryUtilization", "/aws/sagemaker/Endpoints")["Threshold"] == 95 * 4


def test_every_alarm_notifies_the_alarm_topic(default):
    [topic_id] = default.monitoring.find_resources("AWS::SNS::Topic")
    assert len(alarms(default.monitoring)) == 8
    for a in alarms(default.monitoring).values():
        assert a["AlarmActions"] == [{"Ref": topic_id}]


def test_the_alarm_topic_is_encrypted_and_ssl_only(default):
    default.monitoring.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    [policy] = default.monitoring.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert (allow["Action"], sorted(allow["Principal"]["Service"])) == (
        "sns:Publish",
        ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"],
    )


def test_no_email_subscription_without_an_alarm_email(default):
    default.monitoring.resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_subscribes_to_the_topic(synth_app):
    s = synth_app((("alarm_email", "ops@example.com"),))
    s.monitoring.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


def test_the_daily_cost_budget_is_sized_from_the_settings(default, synth_app):
    [budget] = default.monitoring.find_resources("AWS::Budgets::Budget").values()
    data = budget["Properties"]["Budget"]
    # Default: 2 x ml.g5.2xlarge (max_instances) x 24 h x $1.515/h x 1.2 headroom = $87.26.
    assert (data["TimeUnit"], data["BudgetType"]) == ("DAILY", "COST")
    assert data["BudgetLimit"] == {"Amount": 87.26, "Unit": "USD"}
    kinds = {n["Notification"]["NotificationType"] for n in budget["Properties"]["NotificationsWithSubscribers"]}
    assert kinds == {"ACTUAL", "FORECASTED"}
    explicit = synth_app((("max_daily_usd", 60),))
    [budget] = explicit.monitoring.find_resources("AWS::Budgets::Budget").values()
    assert budget["Properties"]["Budget"]["BudgetLimit"]["Amount"] == 60


def test_one_dashboard_shows_requests_latency_errors_model_gpu_and_instances(default):
    [dash] = default.monitoring.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    for title in ("Requests", "API latency", "Errors", "Model latency", "GPU utilisation", "Instances"):
        assert title in body
    for metric in ("ModelLatency", "GPUUtilization", "InvocationsPerInstance", "p99"):
        assert metric in body


def test_the_dashboard_graphs_the_forwarders_token_and_error_metrics(default):
    [dash] = default.monitoring.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dash["Properties"]["DashboardBody"])
    assert "PromptTokens" in body and "CompletionTokens" in body
    assert "ErrorClass" in body
