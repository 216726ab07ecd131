"""min_instances 0: the model runs as an inference component on an endpoint with managed
instance scaling, copies scale to zero when idle, and a no-capacity alarm wakes it.
min_instances >= 1 keeps the instance-backed topology exactly."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from ownllm.regions import SCALE_TO_ZERO_REGIONS

TO_ZERO = (("min_instances", 0), ("max_instances", 3))
COMPONENT = "ownllm-llm-component"


@pytest.fixture(scope="module")
def to_zero(synth_app):
    return synth_app(TO_ZERO)


def _one(template, kind: str) -> dict:
    [resource] = template.find_resources(kind).values()
    return resource


def test_the_endpoint_config_names_no_model_and_lets_sagemaker_scale_instances_down_to_zero(to_zero):
    config = _one(to_zero.serving, "AWS::SageMaker::EndpointConfig")["Properties"]
    [variant] = config["ProductionVariants"]
    assert "ModelName" not in variant
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 3}
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
    role, attribute = config["ExecutionRoleArn"]["Fn::GetAtt"]
    assert role.startswith("LlmExecutionRole") and attribute == "Arn"


def test_the_inference_component_places_the_model_on_every_gpu_with_long_startup_timeouts(to_zero):
    component = _one(to_zero.serving, "AWS::SageMaker::InferenceComponent")
    props = component["Properties"]
    assert props["InferenceComponentName"] == COMPONENT
    assert props["VariantName"] == "AllTraffic"
    assert props["RuntimeConfig"] == {"CopyCount": 1}
    spec = props["Specification"]
    assert spec["ComputeResourceRequirements"] == {
        "NumberOfAcceleratorDevicesRequired": 1,
        "MinMemoryRequiredInMb": 1024,
    }
    assert spec["StartupParameters"] == {
        "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
        "ModelDataDownloadTimeoutInSeconds": 3600,
    }
    assert spec["ModelName"]["Fn::GetAtt"][1] == "ModelName"
    assert any(d.startswith("LlmEndpoint") for d in component["DependsOn"])


def test_copies_scale_between_zero_and_max_on_concurrent_requests_per_copy(to_zero):
    to_zero.serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ResourceId": f"inference-component/{COMPONENT}",
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 0,
            "MaxCapacity": 3,
        },
    )
    to_zero.serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
                    }
                }
            ),
        },
    )


def test_a_refused_request_wakes_it_through_an_alarm_and_a_one_copy_step(to_zero):
    policies = to_zero.serving.find_resources(
        "AWS::ApplicationAutoScaling::ScalingPolicy", {"Properties": {"PolicyType": "StepScaling"}}
    )
    [(policy_id, policy)] = policies.items()
    assert policy["Properties"]["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]
    assert policy["Properties"]["StepScalingPolicyConfiguration"]["AdjustmentType"] == "ChangeInCapacity"
    alarm = _one(to_zero.serving, "AWS::CloudWatch::Alarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "NoCapacityInvocationFailures")
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": COMPONENT}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 1, 60)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": policy_id}]


def test_the_forwarder_invokes_the_component_and_may_invoke_only_it_and_its_endpoint(to_zero):
    fn = next(
        f["Properties"]
        for lid, f in to_zero.api.find_resources("AWS::Lambda::Function").items()
        if lid.startswith("ForwarderFunction")
    )
    assert fn["Environment"]["Variables"]["INFERENCE_COMPONENT_NAME"] == COMPONENT
    statements = [
        s
        for p in to_zero.api.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sagemaker:InvokeEndpoint"
    ]
    [statement] = statements
    resources = [r["Fn::Join"][1][-1] for r in statement["Resource"]]
    assert resources == [":endpoint/ownllm-llm", f":inference-component/{COMPONENT}"]


def test_business_hours_keep_one_copy_warm_and_let_it_go_to_zero_outside(synth_app):
    synthesized = synth_app((*TO_ZERO, ("active_hours", "08:00-20:00")))
    target = _one(synthesized.serving, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    actions = {a["ScheduledActionName"]: a for a in target["ScheduledActions"]}
    assert actions["StartOfActiveHours"]["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 3}
    assert actions["EndOfActiveHours"]["ScalableTargetAction"] == {"MinCapacity": 0, "MaxCapacity": 3}
    assert actions["EndOfActiveHours"]["Schedule"] == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)"


def test_the_template_deploys_only_where_cloudformation_has_inference_components(to_zero):
    rule = to_zero.serving.to_json()["Rules"]["SupportedRegion"]
    [assertion] = rule["Assertions"]
    assert assertion["Assert"]["Fn::Contains"][0] == list(SCALE_TO_ZERO_REGIONS)
    assert "us-west-1" not in SCALE_TO_ZERO_REGIONS and "us-east-1" in SCALE_TO_ZERO_REGIONS


def test_alarms_watch_the_component_not_a_variant(to_zero):
    alarms = to_zero.monitoring.find_resources("AWS::CloudWatch::Alarm")
    latency = next(a["Properties"] for lid, a in alarms.items() if lid.startswith("MonitoringModelLatencyAverage"))
    assert latency["Dimensions"] == [{"Name": "InferenceComponentName", "Value": COMPONENT}]
    queue = next(a["Properties"] for lid, a in alarms.items() if lid.startswith("MonitoringConcurrencyAboveTarget"))
    assert queue["MetricName"] == "ConcurrentRequestsPerCopy"


def test_always_on_keeps_the_instance_backed_variant_and_no_component(default):
    assert default.serving.find_resources("AWS::SageMaker::InferenceComponent") == {}
    [variant] = _one(default.serving, "AWS::SageMaker::EndpointConfig")["Properties"]["ProductionVariants"]
    assert "ManagedInstanceScaling" not in variant and variant["ModelName"]["Fn::GetAtt"][1] == "ModelName"
