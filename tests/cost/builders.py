"""Templates shaped the way CDK synthesizes ownllm's stacks, written to a tmp cdk.out.

Logical ids carry CDK's 8-hex-digit suffix; intrinsic functions are the ones CDK emits
(Fn::GetAtt for names, Fn::Join for ARNs and the autoscaling ResourceId).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENDPOINT = "ServingEndpoint5B3C1A2F"
CONFIG = "ServingEndpointConfigD41E7A90"
MODEL = "ServingModel3F2A9C1B"
TARGET = "ServingScalingTarget9A8B7C6D"
FUNCTION = "ApiForwarderFunction6C2D1E0F"
FUNCTION_LOGS = "ApiForwarderLogGroup1A2B3C4D"
API = "ApiRestApi0B1C2D3E"
ACCESS_LOGS = "ApiAccessLogsE4F5A6B7"
METADATA = {"aws:cdk:path": "OwnLlm/Serving/Resource"}


def _arn(service: str, resource: list[Any]) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":{service}:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":",
                *resource,
            ],
        ]
    }


def serving_resources(
    instance_type: str = "ml.g5.4xlarge",
    count: int = 1,
    *,
    autoscaling: tuple[int, int] | None = None,
    scheduled_actions: list[dict[str, Any]] | None = None,
    lambda_memory: int = 128,
    lambda_timeout: int = 28,
    architecture: str = "x86_64",
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "ServingModelRoleB1C2D3E4": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {"Service": "sagemaker.amazonaws.com"},
                        }
                    ],
                    "Version": "2012-10-17",
                }
            },
        },
        "ServingModelRoleDefaultPolicyA1B2C3D4": {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyDocument": {"Statement": [], "Version": "2012-10-17"},
                "PolicyName": "ServingModelRoleDefaultPolicyA1B2C3D4",
                "Roles": [{"Ref": "ServingModelRoleB1C2D3E4"}],
            },
        },
        MODEL: {
            "Type": "AWS::SageMaker::Model",
            "Properties": {
                "ExecutionRoleArn": {"Fn::GetAtt": ["ServingModelRoleB1C2D3E4", "Arn"]},
                "PrimaryContainer": {
                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.33.0-lmi15.0.0-cu128",
                    "Environment": {"HF_MODEL_ID": "Qwen/Qwen2.5-7B-Instruct"},
                },
            },
            "DependsOn": ["ServingModelRoleDefaultPolicyA1B2C3D4", "ServingModelRoleB1C2D3E4"],
        },
        CONFIG: {
            "Type": "AWS::SageMaker::EndpointConfig",
            "Properties": {
                "ProductionVariants": [
                    {
                        "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
                        "InitialInstanceCount": count,
                        "InitialVariantWeight": 1,
                        "InstanceType": instance_type,
                        "ModelName": {"Fn::GetAtt": [MODEL, "ModelName"]},
                        "ModelDataDownloadTimeoutInSeconds": 1800,
                        "VariantName": "AllTraffic",
                    }
                ],
            },
        },
        ENDPOINT: {
            "Type": "AWS::SageMaker::Endpoint",
            "Properties": {"EndpointConfigName": {"Fn::GetAtt": [CONFIG, "EndpointConfigName"]}},
        },
        "FunctionServiceRole675BB04A": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                        }
                    ],
                    "Version": "2012-10-17",
                }
            },
        },
        FUNCTION_LOGS: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"RetentionInDays": 30},
            "UpdateReplacePolicy": "Delete",
            "DeletionPolicy": "Delete",
        },
        FUNCTION: {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Architectures": [architecture],
                "Code": {
                    "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                    "S3Key": "4f1e7c0d.zip",
                },
                "Environment": {"Variables": {"ENDPOINT_NAME": {"Fn::GetAtt": [ENDPOINT, "EndpointName"]}}},
                "Handler": "app.handler",
                "LoggingConfig": {"LogGroup": {"Ref": FUNCTION_LOGS}},
                "MemorySize": lambda_memory,
                "Role": {"Fn::GetAtt": ["FunctionServiceRole675BB04A", "Arn"]},
                "Runtime": "python3.13",
                "Timeout": lambda_timeout,
            },
            "DependsOn": ["FunctionServiceRole675BB04A"],
        },
        API: {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "ownllm"}},
        "ApiDeployment3B2A1C0D": {
            "Type": "AWS::ApiGateway::Deployment",
            "Properties": {"RestApiId": {"Ref": API}},
            "DependsOn": ["Apiv1chatcompletionsPOST7E6D5C4B"],
        },
        ACCESS_LOGS: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"RetentionInDays": 30},
            "UpdateReplacePolicy": "Retain",
            "DeletionPolicy": "Retain",
        },
        "ApiDeploymentStageprod9F8E7D6C": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "AccessLogSetting": {
                    "DestinationArn": {"Fn::GetAtt": [ACCESS_LOGS, "Arn"]},
                    "Format": '{"requestId":"$context.requestId"}',
                },
                "DeploymentId": {"Ref": "ApiDeployment3B2A1C0D"},
                "MethodSettings": [
                    {
                        "DataTraceEnabled": False,
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "ThrottlingBurstLimit": 20,
                        "ThrottlingRateLimit": 10,
                    }
                ],
                "RestApiId": {"Ref": API},
                "StageName": "prod",
            },
        },
        "Apiv1A1B2C3D4": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "ParentId": {"Fn::GetAtt": [API, "RootResourceId"]},
                "PathPart": "v1",
                "RestApiId": {"Ref": API},
            },
        },
        "Apiv1chatcompletionsB5C6D7E8": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {"ParentId": {"Ref": "Apiv1A1B2C3D4"}, "PathPart": "chat", "RestApiId": {"Ref": API}},
        },
        "Apiv1chatcompletionsPOSTApiPermissionOwnLlm0A1B2C3D": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": [FUNCTION, "Arn"]},
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": _arn(
                    "execute-api",
                    [{"Ref": API}, "/", {"Ref": "ApiDeploymentStageprod9F8E7D6C"}, "/POST/v1/chat/completions"],
                ),
            },
        },
        "Apiv1chatcompletionsPOST7E6D5C4B": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "ApiKeyRequired": True,
                "AuthorizationType": "NONE",
                "HttpMethod": "POST",
                "Integration": {
                    "IntegrationHttpMethod": "POST",
                    "Type": "AWS_PROXY",
                    "Uri": {
                        "Fn::Join": [
                            "",
                            [
                                "arn:",
                                {"Ref": "AWS::Partition"},
                                ":apigateway:",
                                {"Ref": "AWS::Region"},
                                ":lambda:path/2015-03-31/functions/",
                                {"Fn::GetAtt": [FUNCTION, "Arn"]},
                                "/invocations",
                            ],
                        ]
                    },
                },
                "RequestValidatorId": {"Ref": "ApiBodyValidator1F2E3D4C"},
                "ResourceId": {"Ref": "Apiv1chatcompletionsB5C6D7E8"},
                "RestApiId": {"Ref": API},
            },
        },
        "ApiBodyValidator1F2E3D4C": {
            "Type": "AWS::ApiGateway::RequestValidator",
            "Properties": {"RestApiId": {"Ref": API}, "ValidateRequestBody": True},
        },
        "ApiKey5A6B7C8D": {"Type": "AWS::ApiGateway::ApiKey", "Properties": {"Enabled": True}},
        "ApiUsagePlan1B2C3D4E": {
            "Type": "AWS::ApiGateway::UsagePlan",
            "Properties": {
                "ApiStages": [{"ApiId": {"Ref": API}, "Stage": {"Ref": "ApiDeploymentStageprod9F8E7D6C"}}],
                "Quota": {"Limit": 50000, "Period": "DAY"},
            },
        },
        "ApiUsagePlanKey9E8D7C6B": {
            "Type": "AWS::ApiGateway::UsagePlanKey",
            "Properties": {
                "KeyId": {"Ref": "ApiKey5A6B7C8D"},
                "KeyType": "API_KEY",
                "UsagePlanId": {"Ref": "ApiUsagePlan1B2C3D4E"},
            },
        },
        "CDKMetadata": {
            "Type": "AWS::CDK::Metadata",
            "Properties": {"Analytics": "v2:deflate64:H4sIAAAA"},
            "Metadata": {"aws:cdk:path": "OwnLlm/CDKMetadata/Default"},
        },
    }
    if autoscaling is not None:
        lo, hi = autoscaling
        target: dict[str, Any] = {
            "MaxCapacity": hi,
            "MinCapacity": lo,
            "ResourceId": {
                "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [ENDPOINT, "EndpointName"]}, "/variant/AllTraffic"]]
            },
            "RoleARN": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":iam::",
                        {"Ref": "AWS::AccountId"},
                        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                    ],
                ]
            },
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ServiceNamespace": "sagemaker",
        }
        if scheduled_actions:
            target["ScheduledActions"] = scheduled_actions
        r[TARGET] = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": target}
        r["ServingScalingTargetConcurrency4D3C2B1A"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": "ConcurrencyTracking",
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": TARGET},
                "TargetTrackingScalingPolicyConfiguration": {
                    "CustomizedMetricSpecification": {
                        "MetricName": "ConcurrentRequestsPerModel",
                        "Namespace": "AWS/SageMaker",
                        "Statistic": "Average",
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": {"Fn::GetAtt": [ENDPOINT, "EndpointName"]}},
                            {"Name": "VariantName", "Value": "AllTraffic"},
                        ],
                    },
                    "TargetValue": 8,
                },
            },
        }
    return r


def monitoring_resources(alarms: int = 3, dashboards: int = 1) -> dict[str, Any]:
    r: dict[str, Any] = {
        "AlarmTopicD01E77F9": {"Type": "AWS::SNS::Topic"},
        "AlarmTopicPolicy5E6F7A8B": {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {"PolicyDocument": {"Statement": []}, "Topics": [{"Ref": "AlarmTopicD01E77F9"}]},
        },
        "AlarmTopicownerexamplecom1A2B3C4D": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "Endpoint": "owner@example.com",
                "Protocol": "email",
                "TopicArn": {"Ref": "AlarmTopicD01E77F9"},
            },
        },
        "DailyBudget7F6E5D4C": {
            "Type": "AWS::Budgets::Budget",
            "Properties": {
                "Budget": {"BudgetLimit": {"Amount": 100, "Unit": "USD"}, "BudgetType": "COST", "TimeUnit": "MONTHLY"}
            },
        },
    }
    for n in range(alarms):
        r[f"Alarm{n}Latency0A1B2C{n:02d}"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "ComparisonOperator": "GreaterThanThreshold",
                "EvaluationPeriods": 3,
                "MetricName": "ModelLatency",
                "Namespace": "AWS/SageMaker",
                "Period": 60,
                "Statistic": "Average",
                "Threshold": 20_000_000,
                "AlarmActions": [{"Ref": "AlarmTopicD01E77F9"}],
            },
        }
    for n in range(dashboards):
        r[f"Dashboard{n}9C8B7A{n:02d}"] = {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {"DashboardBody": '{"widgets":[]}'},
        }
    return r


def write_cdk_out(
    root: Path,
    stacks: dict[str, dict[str, Any]],
    *,
    environment: str = "aws://unknown-account/unknown-region",
    parameters: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A cloud assembly with manifest.json and one template per stack, as `cdk synth` writes it."""
    root.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {}
    for name, resources in stacks.items():
        template_file = f"{name}.template.json"
        template: dict[str, Any] = {"Resources": resources}
        if parameters:
            template["Parameters"] = parameters
        template.setdefault("Parameters", {})["BootstrapVersion"] = {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version",
        }
        (root / template_file).write_text(json.dumps(template, indent=1))
        artifacts[f"{name}.assets"] = {"type": "cdk:asset-manifest", "properties": {"file": f"{name}.assets.json"}}
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": environment,
            "properties": {
                "templateFile": template_file,
                "validateOnSynth": False,
                "stackTemplateAssetObjectUrl": f"s3://cdk-hnb659fds-assets/{name}.json",
            },
            "dependencies": [f"{name}.assets"],
            "displayName": name,
        }
    artifacts["Tree"] = {"type": "cdk:tree", "properties": {"file": "tree.json"}}
    (root / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}, indent=1))
    return root
