"""The project's cfn-lint rules (ownllm/cfn_rules): each catches its defect in a minimal
hand-written template and passes the fixed one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ownllm.cfn_rules import RULES_DIR
from ownllm.lint import Finding, lint_text, project_rules

ROOT = Path(__file__).resolve().parents[2]
CU130 = "763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.30.0-gpu-py312-cu130-ubuntu24.04-sagemaker"
CU124 = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04"
ROLE = "arn:aws:iam::123456789012:role/sm"


@pytest.fixture(scope="module")
def rules():
    return project_rules()


@pytest.fixture(scope="module")
def findings(rules):
    """findings(template dict) -> [(rule id, message)] of the project rules only."""

    def run(template: dict) -> list[tuple[str, str]]:
        found: list[Finding] = lint_text(json.dumps(template), name="t.json", regions=["us-east-1"], rules=rules)
        return [(f.rule, f.message) for f in found if f.rule.startswith("E9")]

    return run


def budget(time_unit: str, *kinds: str) -> dict:
    notifications = [
        {
            "Notification": {
                "NotificationType": k,
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": 100,
                "ThresholdType": "PERCENTAGE",
            },
            "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "ops@example.com"}],
        }
        for k in kinds
    ]
    return {
        "Resources": {
            "Budget": {
                "Type": "AWS::Budgets::Budget",
                "Properties": {
                    "Budget": {
                        "BudgetType": "COST",
                        "TimeUnit": time_unit,
                        "BudgetLimit": {"Amount": 50, "Unit": "USD"},
                    },
                    "NotificationsWithSubscribers": notifications,
                },
            }
        }
    }


def test_a_daily_budget_with_a_forecasted_notification_is_an_error(findings):
    assert findings(budget("DAILY", "ACTUAL", "FORECASTED")) == [
        (
            "E9001",
            "Budget Budget: NotificationType 'FORECASTED' is not accepted with TimeUnit 'DAILY'; use 'ACTUAL', "
            "or a TimeUnit of ANNUALLY, MONTHLY, QUARTERLY",
        )
    ]


def test_a_daily_budget_with_actual_notifications_and_a_monthly_forecast_pass(findings):
    assert findings(budget("DAILY", "ACTUAL")) == []
    assert findings(budget("MONTHLY", "ACTUAL", "FORECASTED")) == []


def endpoint(image: object, *, ami: str | None = None, mappings: dict | None = None) -> dict:
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
        "InstanceType": "ml.g5.2xlarge",
        "InitialInstanceCount": 1,
    }
    if ami:
        variant["InferenceAmiVersion"] = ami
    template: dict = {
        "Resources": {
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {"ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": image}},
            },
            "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {"ProductionVariants": [variant]}},
        }
    }
    if mappings:
        template["Mappings"] = mappings
    return template


CUDA13_MESSAGE = (
    "EndpointConfig Config: variant 'AllTraffic' serves CUDA 13 image "
    "'vllm:0.30.0-gpu-py312-cu130-ubuntu24.04-sagemaker' (model Model) without InferenceAmiVersion; "
    "set one of the GPU AMIs, e.g. 'al2023-ami-sagemaker-inference-gpu-4-1'"
)


def test_a_cuda_13_image_without_an_inference_ami_is_an_error(findings):
    assert findings(endpoint(CU130)) == [("E9002", CUDA13_MESSAGE)]


def test_a_cuda_13_image_chosen_by_region_map_is_seen_through_find_in_map(findings):
    mappings = {"Images": {"us-east-1": {"uri": CU130}, "eu-west-1": {"uri": CU130.replace("us-east-1", "eu-west-1")}}}
    image = {"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "uri"]}
    assert findings(endpoint(image, mappings=mappings)) == [("E9002", CUDA13_MESSAGE)]


def test_a_cuda_13_image_with_an_inference_ami_and_a_cuda_12_image_without_pass(findings):
    assert findings(endpoint(CU130, ami="al2023-ami-sagemaker-inference-gpu-4-1")) == []
    assert findings(endpoint(CU124)) == []


def model_data(uri: object, *, data_type: str = "S3Prefix", bucket: bool = False) -> dict:
    template = endpoint(CU124)
    template["Resources"]["Model"]["Properties"]["PrimaryContainer"]["ModelDataSource"] = {
        "S3DataSource": {"S3Uri": uri, "S3DataType": data_type, "CompressionType": "None"}
    }
    if bucket:
        template["Resources"]["Bucket"] = {"Type": "AWS::S3::Bucket"}
    return template


def test_an_s3_prefix_without_a_trailing_slash_is_an_error(findings):
    assert findings(model_data("s3://weights/llama")) == [
        (
            "E9003",
            "Model Model: S3Uri with S3DataType 'S3Prefix' ends with 's3://weights/llama'; "
            "a key-name prefix must end in '/'",
        )
    ]


@pytest.mark.parametrize(
    "uri",
    [{"Fn::Join": ["", ["s3://", {"Ref": "Bucket"}]]}, {"Fn::Sub": "s3://${Bucket}"}],
    ids=["join", "sub"],
)
def test_an_s3_prefix_that_ends_with_a_bucket_reference_is_an_error(findings, uri):
    assert findings(model_data(uri, bucket=True)) == [
        (
            "E9003",
            "Model Model: S3Uri with S3DataType 'S3Prefix' ends with the value of resource Bucket; "
            "a key-name prefix must end in '/'",
        )
    ]


def test_s3_prefixes_ending_in_a_slash_pass_whether_literal_joined_or_substituted(findings):
    assert findings(model_data("s3://weights/llama/")) == []
    assert findings(model_data({"Fn::Join": ["", ["s3://", {"Ref": "Bucket"}, "/adapters/"]]}, bucket=True)) == []
    assert findings(model_data({"Fn::Sub": "s3://${Bucket}/adapters/"}, bucket=True)) == []
    assert findings(model_data("s3://weights/model.tar.gz", data_type="S3Object")) == []


def test_a_model_data_url_must_name_an_archive_or_a_prefix(findings):
    template = endpoint(CU124)
    container = template["Resources"]["Model"]["Properties"]["PrimaryContainer"]
    container["ModelDataUrl"] = "s3://weights/llama"
    assert findings(template) == [
        (
            "E9003",
            "Model Model: ModelDataUrl ends with 's3://weights/llama'; it must name a .tar.gz or .tgz archive "
            "or a prefix ending in '/'",
        )
    ]
    container["ModelDataUrl"] = "s3://weights/llama/model.tar.gz"
    assert findings(template) == []


def lora(value: str) -> dict:
    template = endpoint(CU130, ami="al2023-ami-sagemaker-inference-gpu-4-1")
    template["Resources"]["Model"]["Properties"]["PrimaryContainer"]["Environment"] = {
        "SM_VLLM_ENABLE_LORA": "true",
        "SM_VLLM_LORA_MODULES": value,
    }
    return template


def test_space_joined_lora_pairs_are_an_error_because_they_reach_vllm_as_one_item(findings):
    value = "a=/opt/ml/model/adapters/a b=/opt/ml/model/adapters/b"
    [(rule, message)] = findings(lora(value))
    assert rule == "E9004"
    assert message.startswith(
        f"Model Model: SM_VLLM_LORA_MODULES {value!r} holds 2 '=' (several name=path pairs in one token); accepted: "
    )


@pytest.mark.parametrize(
    "value",
    [
        "a=/opt/ml/model/adapters/a",
        '["a=/opt/ml/model/adapters/a", "b=/opt/ml/model/adapters/b"]',
        '[{"name": "a", "path": "/opt/ml/model/adapters/a"}, {"name": "b", "path": "/opt/ml/model/adapters/b"}]',
        '{"name": "a", "path": "/opt/ml/model/adapters/a"} {"name": "b", "path": "/opt/ml/model/adapters/b"}',
    ],
)
def test_lora_modules_in_a_form_the_entrypoint_splits_pass(findings, value):
    assert findings(lora(value)) == []


def test_a_json_array_of_objects_without_a_path_is_an_error(findings):
    [(rule, message)] = findings(lora('[{"name": "a"}]'))
    assert (rule, message.split("; accepted")[0]) == (
        "E9004",
        "Model Model: SM_VLLM_LORA_MODULES '{\"name\": \"a\"}' is not a JSON object with string 'name' and 'path'",
    )


REQUIRED = (
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "UNAUTHORIZED",
    "ACCESS_DENIED",
    "INVALID_API_KEY",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "INTEGRATION_TIMEOUT",
)
OPENAI_BODY = '{"error": {"message": $context.error.messageString, "type": "api_error", "code": null}}'


def api(*, responses: tuple[str, ...] = (), body: str = OPENAI_BODY, stage_rate: int = 100, plan_rates=(10,)) -> dict:
    resources: dict = {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "llm"}},
        "Method": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                "HttpMethod": "ANY",
                "AuthorizationType": "NONE",
                "Integration": {"Type": "MOCK"},
            },
        },
        "Deployment": {
            "Type": "AWS::ApiGateway::Deployment",
            "Properties": {"RestApiId": {"Ref": "Api"}},
            "DependsOn": ["Method"],
        },
        "Stage": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "DeploymentId": {"Ref": "Deployment"},
                "StageName": "prod",
                "MethodSettings": [
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "ThrottlingRateLimit": stage_rate,
                        "ThrottlingBurstLimit": stage_rate * 2,
                    }
                ],
            },
        },
    }
    for i, rate in enumerate(plan_rates):
        resources[f"Plan{i}"] = {
            "Type": "AWS::ApiGateway::UsagePlan",
            "Properties": {
                # The first plan names the stage by Ref, the others by name.
                "ApiStages": [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Stage"} if i == 0 else "prod"}],
                "Throttle": {"RateLimit": rate, "BurstLimit": rate * 2},
            },
        }
    for kind in responses:
        resources[f"Response{kind.replace('_', '')}"] = {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResponseType": kind,
                "ResponseTemplates": {"application/json": body},
            },
        }
    return {"Resources": resources}


def test_a_rest_api_without_gateway_responses_is_an_error_naming_the_missing_types(findings):
    assert findings(api(responses=REQUIRED[:7])) == [
        (
            "E9005",
            "RestApi Api: no gateway response for REQUEST_TOO_LARGE, INTEGRATION_TIMEOUT; API Gateway would "
            'answer those errors as {"message": ...} instead of an OpenAI error object',
        )
    ]


def test_a_gateway_response_with_the_default_message_body_is_an_error(findings):
    found = findings(api(responses=REQUIRED, body='{"message": $context.error.messageString}'))
    assert sorted(found) == sorted(
        (
            "E9005",
            f"GatewayResponse Response{kind.replace('_', '')} ({kind}): its application/json template must be an "
            'OpenAI error body {"error": {...}}',
        )
        for kind in REQUIRED
    )


def test_a_rest_api_with_every_openai_shaped_gateway_response_passes(findings):
    assert findings(api(responses=REQUIRED)) == []


def test_a_stage_throttle_not_above_the_sum_of_the_plans_is_an_error(findings):
    assert findings(api(responses=REQUIRED, stage_rate=20, plan_rates=(10, 10))) == [
        (
            "E9006",
            "Stage Stage: ThrottlingBurstLimit 40 is not above the usage plans' BurstLimit total 40 (Plan0, Plan1); "
            "raise it above 40 or drop it",
        ),
        (
            "E9006",
            "Stage Stage: ThrottlingRateLimit 20 is not above the usage plans' RateLimit total 20 (Plan0, Plan1); "
            "raise it above 20 or drop it",
        ),
    ]


def test_a_stage_throttle_above_the_sum_of_the_plans_passes(findings):
    assert findings(api(responses=REQUIRED, stage_rate=21, plan_rates=(10, 10))) == []


def test_every_rule_in_the_folder_is_loaded_with_a_distinct_project_id(rules):
    ids = sorted(r.id for r in rules if r.id.startswith("E9"))
    assert ids == ["E9001", "E9002", "E9003", "E9004", "E9005", "E9006"]


def test_the_cfn_lint_command_loads_the_rules_folder_with_append_rules(tmp_path):
    """What a user runs by hand: the folder form of --append-rules, as cfn-lint documents it."""
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(budget("DAILY", "FORECASTED")))
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "parseable",
            "--append-rules",
            str(RULES_DIR),
            "--",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    # parseable: file:line:column:end line:end column:rule:message; exit code 2 means errors
    assert [line.split(":", 6)[5:] for line in done.stdout.splitlines()] == [
        [
            "E9001",
            "Budget Budget: NotificationType 'FORECASTED' is not accepted with TimeUnit 'DAILY'; use 'ACTUAL', "
            "or a TimeUnit of ANNUALLY, MONTHLY, QUARTERLY",
        ]
    ]
    assert done.returncode == 2


def cdk_out(tmp_path: Path, **templates: dict) -> Path:
    out = tmp_path / "cdk.out"
    out.mkdir()
    for name, template in templates.items():
        (out / f"{name}.template.json").write_text(json.dumps(template, indent=1))
    return out


def test_ownllm_lint_prints_each_finding_and_fails_on_errors(tmp_path, capsys):
    from ownllm.cli import main

    out = cdk_out(tmp_path, Good=budget("MONTHLY", "FORECASTED"), Bad=budget("DAILY", "FORECASTED"))
    assert main(["lint", "--cdk-out", str(out), "--regions", "us-east-1,eu-west-1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "Bad.template.json:17: E9001 Budget Budget: NotificationType 'FORECASTED' is not accepted with TimeUnit "
        "'DAILY'; use 'ACTUAL', or a TimeUnit of ANNUALLY, MONTHLY, QUARTERLY"
    ]
    assert captured.err == "1 error(s), 0 other finding(s) in 2 template(s) over 2 region(s); accepted: W3005\n"


def test_ownllm_lint_reports_a_resource_type_missing_from_regions_once_naming_them(tmp_path, capsys):
    """Budgets is absent from some regions (cfn-lint's per-region schemas, E3006)."""
    from ownllm.cli import main

    out = cdk_out(tmp_path, Budget=budget("DAILY", "ACTUAL"))
    assert main(["lint", "--cdk-out", str(out), "--regions", "us-east-1,ap-east-1,eu-west-1,il-central-1"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "Budget.template.json:4: E3006 Resource type 'AWS::Budgets::Budget' does not exist in 'ap-east-1', "
        "'il-central-1'"
    ]


def test_ownllm_lint_without_templates_says_to_synth_first(tmp_path, capsys):
    from ownllm.cli import main

    assert main(["lint", "--cdk-out", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (
        f"--cdk-out {str(tmp_path / 'missing')!r}: no *.template.json found; run `npx cdk synth --quiet` first\n"
    )


def test_ownllm_lint_checks_every_supported_region_and_each_hosts_every_pinned_engine_image():
    from ownllm.images import engine_image_map
    from ownllm.lint import supported_regions
    from ownllm.regions import SUPPORTED_REGIONS

    regions = supported_regions()
    assert regions == tuple(SUPPORTED_REGIONS)
    for engine in ("vllm", "lmi", "tgi"):
        assert set(regions) <= set(engine_image_map(engine)), engine
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(regions)


def test_a_cuda_13_model_placed_by_an_inference_component_needs_the_ami_too(findings):
    """Scale-to-zero endpoints: the variant has no ModelName; the component names the model."""
    template = endpoint(CU130)
    variant = template["Resources"]["Config"]["Properties"]["ProductionVariants"][0]
    del variant["ModelName"]
    template["Resources"]["Endpoint"] = {
        "Type": "AWS::SageMaker::Endpoint",
        "Properties": {"EndpointConfigName": {"Fn::GetAtt": ["Config", "EndpointConfigName"]}},
    }
    template["Resources"]["Component"] = {
        "Type": "AWS::SageMaker::InferenceComponent",
        "Properties": {
            "EndpointName": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
            "VariantName": "AllTraffic",
            "Specification": {
                "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
                "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": 1, "MinMemoryRequiredInMb": 1024},
            },
            "RuntimeConfig": {"CopyCount": 1},
        },
    }
    assert findings(template) == [("E9002", CUDA13_MESSAGE)]
    variant["InferenceAmiVersion"] = "al2023-ami-sagemaker-inference-gpu-4-1"
    assert findings(template) == []


def test_ownllm_lint_names_a_misspelt_region_and_suggests_the_right_one(tmp_path, capsys):
    from ownllm.cli import main

    out = cdk_out(tmp_path, Budget=budget("MONTHLY", "ACTUAL"))
    assert main(["lint", "--cdk-out", str(out), "--regions", "us-east-1,us-east1"]) == 2
    assert capsys.readouterr().err == (
        "--regions: 'us-east1' is not a region cfn-lint knows (did you mean 'us-east-1'?); "
        "expected comma-separated region names like 'us-east-1,eu-west-1'\n"
    )


@pytest.mark.parametrize(
    "text", ["[]", '{"Rules": []}', '{"Rules": {"R": 5}}', '{"Rules": {"R": {"Assertions": [7]}}}']
)
def test_ownllm_lint_of_a_template_that_is_json_but_not_an_object_of_rules_reports_it_not_a_traceback(
    tmp_path, capsys, text
):
    from ownllm.cli import main

    (tmp_path / "X.template.json").write_text(text)
    assert main(["lint", "--cdk-out", str(tmp_path), "--regions", "us-east-1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("X.template.json:1: E")
    assert captured.err.endswith("in 1 template(s) over 1 region(s); accepted: W3005\n")


def test_ownllm_lint_of_a_template_that_is_not_utf8_reports_it_not_a_traceback(tmp_path, capsys):
    from ownllm.cli import main

    (tmp_path / "X.template.json").write_bytes(b"\xff{}")
    assert main(["lint", "--cdk-out", str(tmp_path), "--regions", "us-east-1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "X.template.json:1: E0000 not UTF-8 text (byte 0); run cdk synth again\n"


def test_ownllm_lint_with_an_empty_regions_list_is_refused_not_widened_to_every_region(tmp_path, capsys):
    from ownllm.cli import main

    (tmp_path / "X.template.json").write_text("{}")
    assert main(["lint", "--cdk-out", str(tmp_path), "--regions", ""]) == 2
    assert capsys.readouterr().err == (
        "--regions '': no region given; expected comma-separated region names like 'us-east-1,eu-west-1'\n"
    )
