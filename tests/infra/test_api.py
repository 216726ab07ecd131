"""The API stack: a keyed, throttled, logged REST API in front of the forwarder Lambda."""

import json

from aws_cdk.assertions import Match


def function(t, construct: str = "Forwarder") -> dict:
    """The Lambda function under a construct (CDK logical ids start with the construct path)."""
    [fn] = [f for lid, f in t.find_resources("AWS::Lambda::Function").items() if lid.startswith(f"{construct}Function")]
    return fn["Properties"]


def test_lambda_may_only_invoke_its_own_endpoint(default):
    statements = [
        s
        for p in default.api.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    invoke = [s for s in statements if "sagemaker" in json.dumps(s["Action"])]
    assert len(invoke) == 1
    assert invoke[0]["Action"] == "sagemaker:InvokeEndpoint"
    assert invoke[0]["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":sagemaker:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":endpoint/ownllm-llm",
            ],
        ]
    }


def test_lambda_runs_the_newest_python_runtime_inside_api_gateways_budget(default):
    fn = function(default.api)
    assert fn["Runtime"] == "python3.14"
    assert fn["Timeout"] == 28 < 29
    assert fn["MemorySize"] == 128
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert "AWSLambdaPowertoolsPythonV3-python314-arm64" in json.dumps(fn["Layers"])


def test_lambda_gets_the_endpoint_engine_and_limits_it_enforces(default):
    env = function(default.api)["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == "ownllm-llm"
    assert env["ENGINE"] == "vllm"
    assert env["MODEL_NAME"] == "Qwen/Qwen2.5-7B-Instruct"
    assert (env["MAX_REQUEST_BYTES"], env["MAX_INPUT_TOKENS"], env["MAX_TOTAL_TOKENS"]) == ("262144", "4096", "8192")
    assert env["LOG_PROMPTS"] == "false"


def test_every_log_group_has_a_finite_retention(default):
    groups = default.api.find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 3  # forwarder, authorizer, access logs
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in groups.values())


def test_log_retention_follows_the_setting(synth_app):
    s = synth_app((("log_retention_days", 7),))
    assert {g["Properties"]["RetentionInDays"] for g in s.api.find_resources("AWS::Logs::LogGroup").values()} == {7}


def test_the_api_is_regional_and_needs_an_api_key_on_every_method(default):
    default.api.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}, "ApiKeySourceType": "AUTHORIZER"}
    )
    methods = default.api.find_resources("AWS::ApiGateway::Method")
    assert methods and all(m["Properties"]["ApiKeyRequired"] for m in methods.values())
    assert all(m["Properties"]["AuthorizationType"] == "CUSTOM" for m in methods.values())
    proxy = [m for m in methods.values() if m["Properties"]["HttpMethod"] == "ANY"]
    assert proxy[0]["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    assert proxy[0]["Properties"]["Integration"]["TimeoutInMillis"] == 29000


def test_the_usage_plan_carries_throttle_and_a_daily_quota(default):
    default.api.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 10, "BurstLimit": 20},
            "Quota": {"Limit": 50000, "Period": "DAY"},
            "ApiStages": [Match.object_like({"Stage": Match.any_value()})],
        },
    )
    default.api.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


def test_the_stage_writes_json_access_logs_and_traces_with_xray(default):
    [stage] = default.api.find_resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    fmt = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "ip"} <= set(fmt)
    settings = props["MethodSettings"][0]
    assert settings["DataTraceEnabled"] is False  # never logs prompts
    assert settings["ThrottlingRateLimit"] == 10


def test_outputs_give_the_openai_base_url_the_key_command_and_the_endpoint(default):
    outputs = default.api.to_json()["Outputs"]
    assert "v1" in json.dumps(outputs["OpenAIBaseUrl"]["Value"])
    assert "get-api-key" in json.dumps(outputs["GetApiKeyCommand"]["Value"])
    assert outputs["EndpointName"]["Value"] == "ownllm-llm"
    assert "DashboardUrl" in default.monitoring.to_json()["Outputs"]


def test_the_account_logging_role_can_be_left_to_another_stack(synth_app):
    s = synth_app((("apigw_cloudwatch_role", False),))
    s.api.resource_count_is("AWS::ApiGateway::Account", 0)


def test_the_key_authorizer_runs_on_every_request_so_x_api_key_alone_also_works(default):
    [auth] = default.api.find_resources("AWS::ApiGateway::Authorizer").values()
    props = auth["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["AuthorizerResultTtlInSeconds"] == 0
    assert "IdentitySource" not in props or props["IdentitySource"] == ""
    fn = function(default.api, "ApiKeyAuthorizer")
    assert (fn["Runtime"], fn["MemorySize"], fn["Timeout"]) == ("python3.14", 128, 3)
    assert "Layers" not in fn


def test_lambda_roles_use_no_managed_policies(default):
    roles = default.api.find_resources("AWS::IAM::Role")
    lambda_roles = [
        r for r in roles.values() if "lambda.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(lambda_roles) == 2
    assert all("ManagedPolicyArns" not in r["Properties"] for r in lambda_roles)


def test_the_forwarder_declares_the_custom_metrics_its_code_emits(default):
    """The declaration prices the EMF metrics; it must match what lambda/forwarder emits."""
    import re
    from pathlib import Path

    from stacks.api import FORWARDER_ERROR_CLASSES, FORWARDER_METRICS

    code = Path(__file__).resolve().parents[2] / "lambda" / "forwarder"
    app = (code / "app.py").read_text()
    emitted = set(re.findall(r'add_metric\(name="(\w+)"', app)) | {"ColdStart"}  # cold start: Powertools' own
    assert emitted == set(FORWARDER_METRICS)
    errors = (code / "errors.py").read_text()
    classes = (
        set(re.findall(r'error_class(?:: str)?\s*=\s*"(\w+)"', errors))
        | set(re.findall(r'"\w+", "(\w+)", detail', errors))
        | set(re.findall(r'"(\w+)", detail', errors))
    )
    assert classes <= set(FORWARDER_ERROR_CLASSES)
    [fn] = [
        f
        for lid, f in default.api.find_resources("AWS::Lambda::Function").items()
        if lid.startswith("ForwarderFunction")
    ]
    assert fn["Metadata"]["ownllm:custom-metrics"] == {"always": 5, "at_most": 18}
