"""What the function receives and how the gateway treats its answers, seen from a probe function.

The probe (a temporary Lambda asset whose `main:app` is a small ASGI app) answers with the request
it got, or misbehaves on purpose, chosen by the last path segment or `?action=`: the gateway's
side of the contract, as Lambda Web Adapter and API Gateway's STREAM integration keep it,
checked without the forwarder in between.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import textwrap
import threading
import time
import uuid

import pytest

from ownllm.local.stack import LocalStackError

KEY = "test-key-0123456789"
PROBE = textwrap.dedent("""
    import asyncio, base64, json, os, pathlib, time, uuid

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
        action = query.get("action") or scope["path"].rsplit("/", 1)[-1]

        async def answer(status, data, headers=()):
            await send({"type": "http.response.start", "status": status, "headers": list(headers)})
            await send({"type": "http.response.body", "body": data})

        if action == "rendezvous":  # check in, then wait (at most 5 s) until `n` requests have checked in
            folder, n = pathlib.Path(query["dir"]), int(query["n"])
            (folder / str(uuid.uuid4())).touch()
            deadline = time.monotonic() + 5
            while len(list(folder.iterdir())) < n and time.monotonic() < deadline:
                time.sleep(0.01)  # blocks this environment, as a handler would
            return await answer(200, json.dumps({"met": len(list(folder.iterdir())), "pid": os.getpid()}).encode())
        if action == "raise":
            raise ValueError("on purpose")
        if action == "exit":
            os._exit(3)
        if action == "sleep":
            time.sleep(float(query["s"]))
        if action == "stall_headers":
            await asyncio.sleep(float(query["s"]))
        if action == "stall_body":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": b"data: ", "more_body": True})
            await asyncio.sleep(float(query["s"]))
            return await answer_rest(send)
        if action == "drip":  # five pieces, 0.1 s apart
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(5):
                await send({"type": "http.response.body", "body": b"drop", "more_body": True})
                await asyncio.sleep(0.1)
            return await send({"type": "http.response.body", "body": b""})
        if action == "binary":
            return await answer(200, b"\\x00\\xff", [(b"content-type", b"application/octet-stream")])
        seen = {
            "method": scope["method"],
            "target": scope["raw_path"].decode() + ("?" + scope["query_string"].decode() if scope["query_string"] else ""),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body": base64.b64encode(body).decode(),
            "pid": os.getpid(),
            "client_port": scope["client"][1],
            "received_ms": int(time.time() * 1000),
            "env": {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
                                                   "ENDPOINT_NAME", "AWS_CONFIG_FILE", "HTTPS_PROXY", "https_proxy")},
        }
        await answer(201, json.dumps(seen).encode(), [(b"x-probe", b"1"), (b"x-multi", b"a"), (b"x-multi", b"b")])

    async def answer_rest(send):
        await send({"type": "http.response.body", "body": b"never sent", "more_body": False})
""")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    (folder / "main.py").write_text(PROBE)
    return folder


@pytest.fixture
def probe(make_stack, probe_dir):
    def make(**kwargs):
        return make_stack(code_dir=probe_dir, **kwargs)

    return make


def _headers(seen: dict) -> dict[str, str]:
    return dict(seen["headers"])


def test_the_function_receives_the_clients_request_as_lambda_web_adapter_passes_it(probe, api):
    stack = probe()
    reply = api(
        stack.url,
        "POST",
        "/v1/echo?a=1&b=2&a=3",
        b'{"hello": "world"}',
        {"User-Agent": "probe/1.0", "X-Forwarded-For": "198.51.100.1"},
    )
    assert reply.status == 201
    seen = reply.json()
    assert (seen["method"], seen["target"]) == ("POST", "/v1/echo?a=1&b=2&a=3")  # the path without the stage
    assert base64.b64decode(seen["body"]) == b'{"hello": "world"}'
    headers = _headers(seen)
    assert (headers["user-agent"], headers["x-api-key"], headers["content-length"]) == ("probe/1.0", KEY, "18")


def test_the_request_context_header_is_api_gateways_rest_request_context(probe, api):
    stack = probe()
    before = int(time.time() * 1000)
    reply = api(stack.url, "GET", "/v1/echo", headers={"User-Agent": "probe/1.0", "X-Forwarded-For": "198.51.100.1"})
    context = json.loads(_headers(reply.json())["x-amzn-request-context"])
    assert (context["stage"], context["path"], context["resourcePath"], context["httpMethod"]) == (
        "prod",
        "/prod/v1/echo",
        "/v1/{proxy+}",
        "GET",
    )
    assert context["requestId"] == reply.headers["x-amzn-requestid"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"  # not the client's X-Forwarded-For
    assert (context["identity"]["apiKey"], context["identity"]["userAgent"]) == (KEY, "probe/1.0")
    assert before <= context["requestTimeEpoch"] <= int(time.time() * 1000)


def test_the_lambda_context_header_carries_the_functions_deadline_and_its_own_request_id(probe, api):
    stack = probe(lambda_timeout_s=28)
    reply = api(stack.url, "GET", "/v1/echo")
    seen = reply.json()
    lambda_context = json.loads(_headers(seen)["x-amzn-lambda-context"])
    assert 25_000 < lambda_context["deadline"] - seen["received_ms"] <= 28_000  # this function's 28 s
    assert (
        lambda_context["invoked_function_arn"]
        == "arn:aws:lambda:us-east-1:123456789012:function:ownllm-forwarder-local"
    )
    assert uuid.UUID(lambda_context["request_id"])  # Lambda's id, not API Gateway's
    assert lambda_context["request_id"] != reply.headers["x-amzn-requestid"]


def test_a_client_cannot_forge_the_context_headers(probe, api):
    forged = {"x-amzn-request-context": '{"stage": "forged"}', "x-amzn-lambda-context": '{"deadline": 1}'}
    headers = api(probe().url, "GET", "/v1/echo", headers=forged).json()["headers"]
    contexts = [value for name, value in headers if name.startswith("x-amzn-")]
    assert len(contexts) == 2
    assert json.loads(contexts[0])["stage"] == "prod"
    assert json.loads(contexts[1])["deadline"] > 1


def test_consecutive_requests_reach_an_environment_over_one_kept_connection(probe, api):
    stack = probe(max_instances=1)
    seen = [api(stack.url, "GET", "/v1/echo").json() for _ in range(3)]
    assert len({(s["pid"], s["client_port"]) for s in seen}) == 1


def test_a_body_that_is_not_utf8_reaches_the_function_byte_for_byte(probe, api):
    seen = api(probe().url, "POST", "/v1/echo", b"\xff\xfe\x00").json()
    assert base64.b64decode(seen["body"]) == b"\xff\xfe\x00"


def test_the_function_sees_fake_aws_credentials_and_the_local_runtime_not_the_callers_aws(probe, api, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    stack = probe()
    env = api(stack.url, "GET", "/v1/echo").json()["env"]
    assert env == {
        "AWS_ACCESS_KEY_ID": "ownlocal",
        "AWS_PROFILE": None,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": stack.runtime.url,
        "ENDPOINT_NAME": "ownllm-local-endpoint",
        "AWS_CONFIG_FILE": os.devnull,
        "HTTPS_PROXY": None,
        "https_proxy": None,
    }


def test_the_functions_headers_reach_the_client_repeated_ones_too(probe, api):
    reply = api(probe().url, "GET", "/v1/echo")
    assert (reply.headers["x-probe"], reply.headers["x-multi"]) == ("1", "a, b")


def test_a_binary_answer_reaches_the_client_byte_for_byte(probe, api):
    reply = api(probe().url, "GET", "/v1/binary")
    assert (reply.status, reply.headers["content-type"], reply.body) == (200, "application/octet-stream", b"\x00\xff")


def test_an_app_that_raises_is_uvicorns_500_passed_on_as_the_adapter_does_and_its_environment_stays(probe, api):
    stack = probe()
    first_pid = api(stack.url, "GET", "/v1/echo").json()["pid"]
    reply = api(stack.url, "GET", "/v1/raise")
    assert (reply.status, reply.body) == (500, b"Internal Server Error")
    assert api(stack.url, "GET", "/v1/echo").json()["pid"] == first_pid


def test_an_environment_that_dies_answers_502_internal_server_error_and_the_next_request_is_a_cold_start(
    probe_dir, make_stack, api
):
    records = []
    stack = make_stack(code_dir=probe_dir, on_request=records.append)
    first_pid = api(stack.url, "GET", "/v1/echo").json()["pid"]
    reply = api(stack.url, "GET", "/v1/exit")
    assert (reply.status, reply.error["message"], reply.error["code"]) == (
        502,
        "Internal server error",
        "internal_error",
    )
    assert records[-1].note == "the execution environment ended (exit code 3)"
    again = api(stack.url, "GET", "/v1/echo")
    assert again.status == 201
    assert again.json()["pid"] != first_pid
    assert records[-1].note.startswith("cold start, init ")


def test_a_function_past_its_own_timeout_answers_502_and_its_environment_is_replaced(probe, api):
    stack = probe(lambda_timeout_s=0.5)
    first_pid = api(stack.url, "GET", "/v1/echo").json()["pid"]
    reply = api(stack.url, "GET", "/v1/sleep?s=5")
    assert (reply.status, reply.error["message"], reply.error["code"]) == (
        502,
        "Internal server error",
        "internal_error",
    )
    assert reply.elapsed_s < 5  # the environment was ended, not waited for
    again = api(stack.url, "GET", "/v1/echo")
    assert again.status == 201
    assert again.json()["pid"] != first_pid  # a cold start, as after a Lambda timeout


def test_no_answer_within_the_integration_timeout_is_504_endpoint_request_timed_out(probe, api):
    stack = probe(gateway_timeout_s=0.6)
    reply = api(stack.url, "GET", "/v1/sleep?s=5")
    assert (reply.status, reply.error["code"], reply.headers["x-should-retry"]) == (504, "timeout", "false")
    assert 0.6 <= reply.elapsed_s < 5  # not before the timeout, and without waiting for the function
    assert api(stack.url, "GET", "/v1/echo").status == 201


def test_the_completion_routes_get_the_stream_timeout_and_every_other_route_the_29_s_one(probe, api):
    stack = probe(gateway_timeout_s=0.6, stream_timeout_s=5)
    assert api(stack.url, "POST", "/v1/chat/completions?action=sleep&s=1", b"{}").status == 201
    assert api(stack.url, "POST", "/v1/completions?action=sleep&s=1", b"{}").status == 201
    assert api(stack.url, "POST", "/v1/other?action=sleep&s=1", b"{}").status == 504


def test_an_answer_without_headers_within_the_stream_timeout_is_the_gateways_504(probe, api):
    stack = probe(stream_timeout_s=0.5)
    reply = api(stack.url, "POST", "/v1/chat/completions?action=stall_headers&s=5", b"{}")
    assert (reply.status, reply.error["code"], reply.headers["x-should-retry"]) == (504, "timeout", "false")


def test_an_answer_past_the_stream_timeout_is_cut_without_its_final_chunk(probe):
    stack = probe(stream_timeout_s=0.5)
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions?action=stall_body&s=5", b"{}", {"x-api-key": KEY})
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b"data: "
    finally:
        conn.close()


def test_a_client_that_leaves_mid_answer_does_not_end_the_invocation_or_its_environment(probe_dir, make_stack, api):
    records = []
    stack = make_stack(code_dir=probe_dir, max_instances=1, on_request=records.append)
    first_pid = api(stack.url, "GET", "/v1/echo").json()["pid"]
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    conn.request("GET", "/v1/drip", headers={"x-api-key": KEY})
    response = conn.getresponse()
    assert response.read1(4) == b"drop"
    conn.close()  # gone after the first piece
    assert api(stack.url, "GET", "/v1/echo").json()["pid"] == first_pid  # waited for, then reused
    assert [(r.path, r.note) for r in records[1:]] == [
        ("/v1/drip", "the client left before the end"),
        ("/v1/echo", ""),
    ]


def test_concurrent_requests_run_in_separate_environments_at_once(probe, api, tmp_path):
    """Each request waits until all four have checked in: run one after another, none would see four."""
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
    (tmp_path / "main.py").write_text("import no_such_module_anywhere\n")
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
    api(stack.url, "GET", "/v1/nothing", key=None)
    api(stack.url, "GET", "/v1/echo", key="wrong")
    assert [(r.method, r.path, r.status, r.note) for r in records] == [
        ("GET", "/v1/echo", 201, ""),
        ("GET", "/v1/nothing", 401, "Unauthorized"),
        ("GET", "/v1/echo", 403, "Forbidden"),
    ]


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
