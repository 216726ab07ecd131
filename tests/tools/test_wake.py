"""`ownllm wake` / `ownllm sleep`: the floor and the copies of a scale-to-zero endpoint, against
botocore's Stubber (the real clients' parameter validation, no AWS)."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from botocore.stub import Stubber

from ownllm.naming import deployed_names
from ownllm.wake import plan, run_plan, wait_for_copies

NAMES = deployed_names("OwnLlm", "ml.g5.2xlarge")


def _clients():
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    autoscaling = boto3.client(
        "application-autoscaling", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return sagemaker, autoscaling


def test_names_follow_the_stack_prefix_and_the_instance_type():
    names = deployed_names("Team-A", "ml.g6e.12xlarge")
    assert names.endpoint == "team-a-llm-g6e-12xlarge"
    assert names.inference_component == "team-a-llm-g6e-12xlarge-component"
    assert names.component_resource_id == "inference-component/team-a-llm-g6e-12xlarge-component"
    assert deployed_names("Team-A", "ml.g5.2xlarge").endpoint == "team-a-llm"


@pytest.mark.parametrize("copies", [1, 0])
def test_wake_and_sleep_set_the_autoscaling_floor_before_the_copy_count(copies):
    sagemaker, autoscaling = _clients()
    with Stubber(sagemaker) as sm, Stubber(autoscaling) as aas:
        aas.add_response(
            "register_scalable_target",
            {},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": "inference-component/ownllm-llm-component",
                "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
                "MinCapacity": copies,
            },
        )
        sm.add_response(
            "update_inference_component_runtime_config",
            {"InferenceComponentArn": "arn:aws:sagemaker:us-east-1:123456789012:inference-component/x"},
            {"InferenceComponentName": "ownllm-llm-component", "DesiredRuntimeConfig": {"CopyCount": copies}},
        )
        calls = plan(NAMES, copies)
        assert [c.operation for c in calls] == ["register_scalable_target", "update_inference_component_runtime_config"]
        run_plan(calls, sagemaker, autoscaling)
        sm.assert_no_pending_responses()
        aas.assert_no_pending_responses()


def _described(current: int) -> dict:
    return {
        "InferenceComponentName": "ownllm-llm-component",
        "InferenceComponentArn": "arn:aws:sagemaker:us-east-1:123456789012:inference-component/x",
        "EndpointName": "ownllm-llm",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ownllm-llm",
        "CreationTime": "2026-12-02T00:00:00Z",
        "LastModifiedTime": "2026-12-02T00:00:00Z",
        "RuntimeConfig": {"DesiredCopyCount": 1, "CurrentCopyCount": current},
    }


def test_wait_polls_until_the_copies_serve():
    sagemaker, _ = _clients()
    slept: list[float] = []
    with Stubber(sagemaker) as sm:
        for current in (0, 0, 1):
            sm.add_response("describe_inference_component", _described(current))
        assert wait_for_copies(sagemaker, NAMES, 1, poll_s=15.0, sleep=slept.append, clock=lambda: 0.0)
    assert slept == [15.0, 15.0]


def test_wait_gives_up_at_its_limit():
    sagemaker, _ = _clients()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with Stubber(sagemaker) as sm:
        for _ in range(3):
            sm.add_response("describe_inference_component", _described(0))
        assert not wait_for_copies(sagemaker, NAMES, 1, limit_s=30.0, poll_s=15.0, sleep=sleep, clock=lambda: now[0])


def _ownllm(*args: str, cwd) -> subprocess.CompletedProcess:
    code = "import sys; from ownllm.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_print_shows_the_aws_commands_for_the_cdk_json_prefix_and_region(tmp_path):
    (tmp_path / "cdk.json").write_text('{"context": {"ownllm": {"stack_prefix": "Demo", "region": "eu-west-1"}}}')
    done = _ownllm("wake", "--print", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "aws application-autoscaling register-scalable-target --service-namespace sagemaker "
        "--resource-id inference-component/demo-llm-component "
        "--scalable-dimension sagemaker:inference-component:DesiredCopyCount --min-capacity 1 --region eu-west-1",
        "aws sagemaker update-inference-component-runtime-config --inference-component-name demo-llm-component "
        "--desired-runtime-config '{\"CopyCount\":1}' --region eu-west-1",
    ]


def test_a_cdk_json_that_does_not_exist_is_refused_rather_than_waking_the_default_stack(tmp_path):
    (tmp_path / "cdk.json").write_text('{"context": {"ownllm": {"stack_prefix": "Demo"}}}')
    done = _ownllm("sleep", "--print", "--cdk-json", "prod/cdk.jsn", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "ownllm: --cdk-json 'prod/cdk.jsn': no such file\n"


def test_a_copy_count_out_of_range_is_refused_naming_the_option(tmp_path):
    done = _ownllm("wake", "--copies", "0", "--print", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "ownllm: --copies 0: expected a whole number from 1 to 100"


@pytest.mark.parametrize(
    "cdk_json, args, problem",
    [
        ("[]", (), "ownllm: {path}: 'context' is not an object"),
        ('{"context": []}', (), "ownllm: {path}: 'context' is not an object"),
        ("{}", ("--region", "us-eats-1"), None),
        ("{}", ("--stack-prefix", "my stack"), None),
    ],
)
def test_a_bad_cdk_json_region_or_stack_prefix_is_one_line_before_any_aws_call(tmp_path, cdk_json, args, problem):
    from ownllm.regions import unsupported_region_problem

    (tmp_path / "cdk.json").write_text(cdk_json)
    done = _ownllm("wake", "--print", *args, cwd=tmp_path)
    expected = {
        "--region": f"ownllm: {unsupported_region_problem('us-eats-1')}",
        "--stack-prefix": "ownllm: stack_prefix: 'my stack' must start with a letter and use letters, digits and '-' "
        "(max 31)",
    }
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [problem.format(path="cdk.json") if problem else expected[args[0]]]
