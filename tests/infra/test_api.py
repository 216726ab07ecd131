"""The API stack: a keyed, throttled, logged REST API in front of the forwarder Lambda."""

import json

import pytest
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


def test_lambda_runs_the_newest_python_runtime_inside_its_streaming_integrations_budget(default):
    """api_timeout_s 300 is the streaming methods' timeout; the function stops a second earlier."""
    fn = function(default.api)
    assert fn["Runtime"] == "python3.14"
    assert fn["Timeout"] == 299 < 300
    assert fn["MemorySize"] == 128
    assert fn["TracingConfig"] == {"Mode": "Active"}


def test_lambda_gets_the_endpoint_engine_and_limits_it_enforces(default):
    env = function(default.api)["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == "ownllm-llm"
    assert env["ENGINE"] == "vllm"
    assert env["MODEL_NAME"] == "Qwen/Qwen2.5-7B-Instruct"
    # MAX_TOTAL_TOKENS - MAX_INPUT_TOKENS is the forwarder's max_tokens cap: what finishes within the
    # Lambda timeout at the modelled speed (Settings.max_output_tokens), below the engine's 8,192 - 4,096.
    cap = default.settings.max_output_tokens
    assert cap < 4096
    assert (env["MAX_REQUEST_BYTES"], env["MAX_INPUT_TOKENS"], env["MAX_TOTAL_TOKENS"]) == (
        "262144",
        "4096",
        str(4096 + cap),
    )
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
    assert {m["Properties"]["Integration"]["Type"] for m in methods.values()} == {"AWS_PROXY"}
    [proxy] = [m for lid, m in methods.items() if lid.startswith("ApiRestApiv1proxyANY")]
    assert proxy["Properties"]["Integration"]["TimeoutInMillis"] == 29000


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


def test_the_stage_throttle_lies_above_what_the_usage_plans_allow_together(default, synth_app):
    """Keyless traffic counts against the stage too: with stage == plan it could throttle the
    key holders. One plan of 10 rps / burst 20 -> stage 2 x 10 = 20 rps, burst 2 x 20 = 40."""
    [stage] = default.api.find_resources("AWS::ApiGateway::Stage").values()
    [method_settings] = stage["Properties"]["MethodSettings"]
    [plan] = default.api.find_resources("AWS::ApiGateway::UsagePlan").values()
    plans = plan["Properties"]["Throttle"]
    assert (plans["RateLimit"], plans["BurstLimit"]) == (10, 20)
    assert (method_settings["ThrottlingRateLimit"], method_settings["ThrottlingBurstLimit"]) == (20, 40)
    s = synth_app((("api_rate_limit_rps", 3), ("api_burst_limit", 5)))
    [stage] = s.api.find_resources("AWS::ApiGateway::Stage").values()
    [method_settings] = stage["Properties"]["MethodSettings"]
    assert (method_settings["ThrottlingRateLimit"], method_settings["ThrottlingBurstLimit"]) == (6, 10)


def test_only_api_gateway_stage_traffic_may_invoke_the_forwarder_no_console_test_invoke(default):
    permissions = [
        p["Properties"]
        for p in default.api.find_resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": ["ForwarderFunctionB3355642", "Arn"]}
    ]
    # One per method: /v1/{proxy+} and the two streaming completion routes, each path-scoped.
    assert sorted(p["SourceArn"]["Fn::Join"][1][-1] for p in permissions) == [
        "/*/v1/*",
        "/*/v1/chat/completions",
        "/*/v1/completions",
    ]
    assert all(
        p["SourceArn"]["Fn::Join"][1][-2] == {"Ref": "ApiRestApiDeploymentStageprodE828476C"} for p in permissions
    )
    assert "test-invoke-stage" not in json.dumps(permissions)


def test_outputs_give_the_openai_base_url_the_key_command_and_the_endpoint(default):
    outputs = default.api.to_json()["Outputs"]
    rest_api = {"Ref": next(k for k in default.api.find_resources("AWS::ApiGateway::RestApi"))}
    stage = {"Ref": next(k for k in default.api.find_resources("AWS::ApiGateway::Stage"))}
    region, suffix = {"Ref": "AWS::Region"}, {"Ref": "AWS::URLSuffix"}
    assert outputs["OpenAIBaseUrl"]["Value"] == {
        "Fn::Join": ["", ["https://", rest_api, ".execute-api.", region, ".", suffix, "/", stage, "/v1"]]
    }
    key = {"Ref": next(k for k in default.api.find_resources("AWS::ApiGateway::ApiKey"))}
    assert outputs["GetApiKeyCommand"]["Value"] == {
        "Fn::Join": [
            "",
            [
                "aws apigateway get-api-key --api-key ",
                key,
                " --include-value --query value --output text --region ",
                region,
            ],
        ]
    }
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


def test_the_forwarder_declares_one_custom_metric_per_name_and_per_error_class(default):
    """The declaration prices the EMF metrics: 5 names always (Requests, ModelLatency, PromptTokens,
    CompletionTokens, ColdStart), and at most one Errors metric per each of the 13 error classes."""
    [fn] = [
        f
        for lid, f in default.api.find_resources("AWS::Lambda::Function").items()
        if lid.startswith("ForwarderFunction")
    ]
    assert fn["Metadata"]["ownllm:custom-metrics"] == {"always": 5, "at_most": 18}


def test_the_forwarder_refuses_to_emit_an_error_class_the_stack_does_not_declare():
    from ownllm.forwarder import forwarder_module

    errors = forwarder_module("errors")
    with pytest.raises(ValueError, match="error_class 'brand_new' is not one of ERROR_CLASSES"):
        errors.ApiError(500, "x", error_class="brand_new")


# -- API Gateway's own errors, in the forwarder's OpenAI shape -------------------------------

# Every gateway response type API Gateway documents (supported-gateway-response-types).
RESPONSE_TYPES = {
    "ACCESS_DENIED",
    "API_CONFIGURATION_ERROR",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE",
    "BAD_REQUEST_BODY",
    "BAD_REQUEST_PARAMETERS",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "EXPIRED_TOKEN",
    "INTEGRATION_FAILURE",
    "INTEGRATION_TIMEOUT",
    "INVALID_API_KEY",
    "INVALID_SIGNATURE",
    "MISSING_AUTHENTICATION_TOKEN",
    "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "RESOURCE_NOT_FOUND",
    "THROTTLED",
    "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE",
    "WAF_FILTERED",
}


def gateway_responses(t) -> dict[str, dict]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in t.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }


def body(response: dict, request_id: str = "req-1", message: str = "Forbidden") -> dict:
    """The body API Gateway would send: the template with its two variables substituted
    ($context.error.messageString is the message already in quotes)."""
    template = response["ResponseTemplates"]["application/json"]
    text = template.replace("$context.error.messageString", json.dumps(message)).replace(
        "$context.requestId", request_id
    )
    return json.loads(text)


def test_every_gateway_response_type_answers_in_the_openai_error_shape(default):
    responses = gateway_responses(default.api)
    assert set(responses) == RESPONSE_TYPES
    for name, response in responses.items():
        error = body(response)["error"]
        assert list(error) == ["message", "type", "param", "code", "request_id"], name
        assert error["type"] in ("invalid_request_error", "rate_limit_error", "server_error"), name
        assert error["request_id"] == "req-1" and error["param"] is None and error["code"], name


@pytest.mark.parametrize(
    ("response_type", "status", "type_", "code", "headers"),
    [
        ("UNAUTHORIZED", "401", "invalid_request_error", "missing_api_key", None),
        ("INVALID_API_KEY", "403", "invalid_request_error", "invalid_api_key", None),
        ("ACCESS_DENIED", "403", "invalid_request_error", "invalid_api_key", None),
        ("MISSING_AUTHENTICATION_TOKEN", "404", "invalid_request_error", "unknown_url", None),
        ("RESOURCE_NOT_FOUND", "404", "invalid_request_error", "unknown_url", None),
        ("REQUEST_TOO_LARGE", "413", "invalid_request_error", "request_too_large", None),
        ("THROTTLED", "429", "rate_limit_error", "rate_limit_exceeded", {"gatewayresponse.header.Retry-After": "'1'"}),
        (
            "QUOTA_EXCEEDED",
            "429",
            "rate_limit_error",
            "quota_exceeded",
            {"gatewayresponse.header.x-should-retry": "'false'"},
        ),
        ("INTEGRATION_TIMEOUT", "504", "server_error", "timeout", {"gatewayresponse.header.x-should-retry": "'false'"}),
        (
            "INTEGRATION_FAILURE",
            "504",
            "server_error",
            "internal_error",
            {"gatewayresponse.header.x-should-retry": "'false'"},
        ),
        ("AUTHORIZER_FAILURE", "500", "server_error", "authorizer_error", None),
        ("DEFAULT_4XX", None, "invalid_request_error", "invalid_request", None),
        ("DEFAULT_5XX", None, "server_error", "internal_error", None),
    ],
)
def test_gateway_response_status_type_code_and_headers(default, response_type, status, type_, code, headers):
    response = gateway_responses(default.api)[response_type]
    assert response.get("StatusCode") == status
    error = body(response)["error"]
    assert (error["type"], error["code"]) == (type_, code)
    assert response.get("ResponseParameters") == headers


def test_gateway_errors_say_what_to_do_in_plain_words(default):
    responses = gateway_responses(default.api)
    assert body(responses["UNAUTHORIZED"])["error"]["message"] == (
        "No API key was sent. Send the API key as 'Authorization: Bearer <key>' (OpenAI clients' api_key) "
        "or as 'x-api-key'."
    )
    assert body(responses["QUOTA_EXCEEDED"])["error"]["message"] == (
        "This API key has used its quota of 50000 requests per day; it resets at the start of the next day."
    )
    assert body(responses["INTEGRATION_TIMEOUT"])["error"]["message"] == (
        "The model did not answer in time. Ask for fewer tokens (max_tokens) or try again."
    )
    # The catch-alls keep API Gateway's own message, JSON-quoted by API Gateway itself.
    assert body(responses["DEFAULT_4XX"], message='Bad "thing"')["error"]["message"] == 'Bad "thing"'


def test_gateway_errors_share_the_forwarders_types_codes_and_retry_after():
    """One source: the gateway's 429 and 504 are the forwarder's own answers for the same conditions."""
    from ownllm.gateway_responses import forwarder_errors, gateway_errors

    e = forwarder_errors()
    by_type = {g.response_type: g for g in gateway_errors(quota_per_day=10)}
    throttled = e.map_upstream(e.UpstreamFailure("service", code="ThrottlingException"))
    assert (by_type["THROTTLED"].status, by_type["THROTTLED"].code) == (throttled.status, throttled.code)
    assert by_type["THROTTLED"].headers == {"Retry-After": str(e.RETRY_AFTER_THROTTLED_S)}
    timeout = e.map_upstream(e.UpstreamFailure("read_timeout"))
    assert (by_type["INTEGRATION_TIMEOUT"].type, by_type["INTEGRATION_TIMEOUT"].code) == (timeout.type, timeout.code)
    unknown = e.unknown_route("GET", "/x")
    assert (by_type["MISSING_AUTHENTICATION_TOKEN"].status, by_type["MISSING_AUTHENTICATION_TOKEN"].code) == (
        unknown.status,
        unknown.code,
    )
