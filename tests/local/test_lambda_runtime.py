"""What the function receives and how the gateway treats its answers, seen from a probe function.

The probe (written to a temporary Lambda asset) answers with the event and the context it
got, or misbehaves on purpose, chosen by the path: the gateway's side of the contract,
checked without the forwarder in between.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import uuid

import pytest

from ownllm.local.stack import LocalStackError

PROBE = textwrap.dedent("""
    import base64, json, os, pathlib, time, uuid

    def handler(event, context):
        action = event["pathParameters"]["proxy"]
        if action == "rendezvous":  # check in, then wait (at most 5 s) until `n` invocations have checked in
            folder, n = pathlib.Path(event["queryStringParameters"]["dir"]), int(event["queryStringParameters"]["n"])
            (folder / str(uuid.uuid4())).touch()
            deadline = time.monotonic() + 5
            while len(list(folder.iterdir())) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            return {"statusCode": 200, "body": json.dumps({"met": len(list(folder.iterdir())), "pid": os.getpid()})}
        if action == "raise":
            raise ValueError("on purpose")
        if action == "garbage":
            return "not a proxy response"
        if action == "sleep":
            time.sleep(float(event["queryStringParameters"]["s"]))
        if action == "exit":
            os._exit(3)
        if action == "binary":
            return {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b"\\x00\\xff").decode(),
                    "headers": {"Content-Type": "application/octet-stream"}}
        seen = {
            "event": event,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "context": {k: getattr(context, k) for k in ("aws_request_id", "function_name", "memory_limit_in_mb",
                                                           "invoked_function_arn")},
            "pid": os.getpid(),
            "env": {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
                                                   "ENDPOINT_NAME", "AWS_CONFIG_FILE")},
        }
        return {"statusCode": 201, "headers": {"x-probe": "1"}, "multiValueHeaders": {"x-multi": ["a", "b"]},
                "body": json.dumps(seen)}
""")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    (folder / "app.py").write_text(PROBE)
    return folder


@pytest.fixture
def probe(make_stack, probe_dir):
    def make(**kwargs):
        return make_stack(code_dir=probe_dir, **kwargs)

    return make


def test_the_function_receives_an_api_gateway_rest_proxy_event_for_v1_proxy(probe, api):
    stack = probe()
    before = int(time.time() * 1000)
    reply = api(
        stack.url,
        "POST",
        "/v1/echo?a=1&b=2&a=3",
        b'{"hello": "world"}',
        {"User-Agent": "probe/1.0", "X-Forwarded-For": "198.51.100.1"},
    )
    assert reply.status == 201
    event = reply.json()["event"]
    assert event["resource"] == "/v1/{proxy+}"
    assert event["path"] == "/v1/echo"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "echo"}
    assert event["queryStringParameters"] == {"a": "3", "b": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "3"], "b": ["2"]}
    assert event["headers"]["x-api-key"] == "test-key-0123456789"
    assert event["multiValueHeaders"]["User-Agent"] == ["probe/1.0"]
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod"
    assert context["path"] == "/prod/v1/echo"
    assert context["resourcePath"] == "/v1/{proxy+}"
    assert context["requestId"] == reply.headers["x-amzn-requestid"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKey"] == "test-key-0123456789"
    assert before <= context["requestTimeEpoch"] <= int(time.time() * 1000)


def test_a_body_that_is_not_utf8_arrives_base64_encoded(probe, api):
    event = api(probe().url, "POST", "/v1/echo", b"\xff\xfe\x00").json()["event"]
    assert event["isBase64Encoded"] is True
    assert event["body"] == "//4A"


def test_the_context_counts_down_from_the_functions_timeout_and_names_the_function(probe, api):
    stack = probe(lambda_timeout_s=28)
    seen = api(stack.url, "GET", "/v1/echo").json()
    assert 25_000 < seen["remaining_ms"] <= 28_000  # this function's 28 s, counted from the invocation
    assert seen["context"]["function_name"] == "ownllm-forwarder-local"
    assert seen["context"]["memory_limit_in_mb"] == 128
    assert seen["context"]["invoked_function_arn"].endswith(":function:ownllm-forwarder-local")
    assert uuid.UUID(seen["context"]["aws_request_id"])  # Lambda's id, not API Gateway's
    assert seen["context"]["aws_request_id"] != seen["event"]["requestContext"]["requestId"]


def test_the_function_sees_fake_aws_credentials_and_the_local_runtime_not_the_callers_aws(probe, api, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    stack = probe()
    env = api(stack.url, "GET", "/v1/echo").json()["env"]
    assert env["AWS_ACCESS_KEY_ID"] == "ownlocal"
    assert env["AWS_PROFILE"] is None
    assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == stack.runtime.url
    assert env["ENDPOINT_NAME"] == "ownllm-local-endpoint"


def test_the_functions_headers_and_multi_value_headers_reach_the_client(probe, api):
    reply = api(probe().url, "GET", "/v1/echo")
    assert reply.headers["x-probe"] == "1"
    assert reply.headers["x-multi"] == "a, b"


def test_a_base64_proxy_response_is_decoded(probe, api):
    reply = api(probe().url, "GET", "/v1/binary")
    assert (reply.status, reply.body) == (200, b"\x00\xff")


@pytest.mark.parametrize("action", ["raise", "garbage", "exit"])
def test_a_function_that_fails_answers_502_internal_server_error_and_the_next_request_works(probe, api, action):
    stack = probe()
    reply = api(stack.url, "GET", f"/v1/{action}")
    assert (reply.status, reply.error["message"], reply.error["code"]) == (
        502,
        "Internal server error",
        "internal_error",
    )
    assert api(stack.url, "GET", "/v1/echo").status == 201


def test_a_function_past_its_own_timeout_answers_502_and_its_environment_is_replaced(probe, api):
    stack = probe(lambda_timeout_s=0.5)
    first_pid = api(stack.url, "GET", "/v1/echo").json()["pid"]
    reply = api(stack.url, "GET", "/v1/sleep?s=5")
    assert (reply.status, reply.error["message"], reply.error["code"]) == (
        502,
        "Internal server error",
        "internal_error",
    )
    again = api(stack.url, "GET", "/v1/echo")
    assert again.status == 201
    assert again.json()["pid"] != first_pid  # a cold start, as after a Lambda timeout


def test_no_answer_within_the_integration_timeout_is_504_endpoint_request_timed_out(probe, api):
    stack = probe(gateway_timeout_s=0.6)
    reply = api(stack.url, "GET", "/v1/sleep?s=5")
    assert (reply.status, reply.error["code"], reply.headers["x-should-retry"]) == (504, "timeout", "false")
    assert reply.elapsed_s >= 0.6  # not before the timeout
    assert api(stack.url, "GET", "/v1/echo").status == 201


def test_concurrent_requests_run_in_separate_environments_at_once(probe, api, tmp_path):
    """Each invocation waits until all four have checked in: run one after another, none would see four."""
    stack = probe(max_instances=4)
    replies: list = []

    def one() -> None:
        replies.append(api(stack.url, "GET", f"/v1/rendezvous?n=4&dir={tmp_path}"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [r.status for r in replies] == [200] * 4
    assert [r.json()["met"] for r in replies] == [4] * 4
    assert len({r.json()["pid"] for r in replies}) == 4


def test_requests_beyond_max_instances_wait_for_a_free_environment_and_succeed(probe, api):
    stack = probe(max_instances=1)
    replies: list = []
    threads = [
        threading.Thread(target=lambda: replies.append(api(stack.url, "GET", "/v1/sleep?s=0.1"))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [r.status for r in replies] == [201] * 3
    assert len({r.json()["pid"] for r in replies}) == 1
    assert stack.pool.instances == 1


def test_environments_left_idle_are_reclaimed_down_to_one_warm_one(probe, api):
    stack = probe(max_instances=3, idle_timeout_s=0.2)
    threads = [threading.Thread(target=lambda: api(stack.url, "GET", "/v1/sleep?s=0.3")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert stack.pool.instances == 3
    deadline = time.monotonic() + 5
    while stack.pool.instances > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.pool.instances == 1
    assert api(stack.url, "GET", "/v1/echo").status == 201


def test_a_function_that_cannot_be_imported_stops_the_stack_from_starting_with_its_error(make_stack, tmp_path):
    (tmp_path / "app.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(LocalStackError, match="ModuleNotFoundError: No module named 'no_such_module_anywhere'"):
        make_stack(code_dir=tmp_path)


def test_stopping_the_stack_ends_every_environment(probe, api):
    stack = probe()
    api(stack.url, "GET", "/v1/echo")
    pids = stack.pool.pids
    assert pids
    stack.stop()
    deadline = time.monotonic() + 5

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_the_access_log_gets_one_record_per_request_with_status_and_reason(probe_dir, make_stack, api):
    records = []
    stack = make_stack(code_dir=probe_dir, on_request=records.append)
    api(stack.url, "GET", "/v1/echo")
    api(stack.url, "GET", "/v1/raise")
    api(stack.url, "GET", "/v1/echo", key=None)
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/v1/echo", 201),
        ("GET", "/v1/raise", 502),
        ("GET", "/v1/echo", 401),
    ]
    assert "ValueError: on purpose" in records[1].note


def test_the_functions_own_log_lines_go_to_the_lambda_log_file(make_stack, api, tmp_path):
    log = tmp_path / "lambda.log"
    stack = make_stack(lambda_log=log)
    reply = api(stack.url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})

    def request_lines() -> list[dict]:  # the forwarder's EMF lines with its Requests metric, as CloudWatch gets them
        text = log.read_text() if log.exists() else ""
        return [line for line in map(json.loads, text.splitlines()) if "Requests" in line]

    deadline = time.monotonic() + 5  # only against a hang: the environment writes the line after answering
    while not request_lines() and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = request_lines()
    assert line["Requests"] == [1.0]
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ownllm"
    assert line["request"]["request_id"] == reply.headers["x-amzn-requestid"]
