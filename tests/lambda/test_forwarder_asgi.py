"""main:app, the ASGI entry point for Lambda Web Adapter: `stream: true` is sent chunk by chunk
while the engine generates; everything else is the Lambda handler's answer, unchanged."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time

import openai
import pytest
from asgi_server import AsgiServer
from lambda_testkit import FORWARDER, MODEL, GatedEngine


@pytest.fixture(scope="session")
def main_module(forwarder_app):
    """lambda/forwarder/main.py, whose `import app` must find the forwarder's app.py."""
    previous = sys.modules.get("app")
    sys.modules["app"] = forwarder_app
    try:
        spec = importlib.util.spec_from_file_location("forwarder_main", FORWARDER / "main.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del sys.modules["app"]
        else:
            sys.modules["app"] = previous
    return module


def _call(
    main_module, method: str, path: str, body: dict | None = None, on_body=None, lambda_context: dict | None = None
) -> tuple[int, dict, list]:
    """(status, headers, body messages) of one request through the ASGI app."""
    raw = json.dumps(body).encode() if body is not None else b""
    messages: list = []
    received = False

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)
        if message["type"] == "http.response.body" and on_body is not None:
            on_body(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-amzn-request-context", json.dumps({"requestId": "apigw-1", "stage": "prod"}).encode()),
        ],
    }
    if lambda_context is not None:
        scope["headers"].append((b"x-amzn-lambda-context", json.dumps(lambda_context).encode()))
    asyncio.run(main_module.app(scope, receive, send))
    start = messages[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, [m for m in messages[1:] if m["body"]]


def _events(bodies: list) -> list:
    wire = b"".join(m["body"] for m in bodies).decode()
    return [p if p == "[DONE]" else json.loads(p) for p in (b[6:] for b in wire.split("\n\n") if b)]


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def test_a_streamed_chat_sends_its_first_chunk_while_the_engine_is_still_generating(main_module, make_forwarder):
    backend = GatedEngine()
    make_forwarder("vllm", backend=backend)
    status, headers, bodies = _call(
        main_module, "POST", "/v1/chat/completions", {**CHAT, "stream": True}, on_body=lambda _m: backend.go_on.set()
    )
    assert (status, headers["content-type"], headers["x-request-id"]) == (
        200,
        "text/event-stream; charset=utf-8",
        "apigw-1",
    )
    assert backend.waited_in_vain is False
    assert len(bodies) == 2
    assert [e["choices"][0] for e in _events(bodies)[:3]] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None},
        {"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None},
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"},
    ]
    assert _events(bodies)[-1] == "[DONE]"


def test_a_streamed_completion_reports_usage_when_asked(main_module, make_forwarder):
    make_forwarder("tgi")
    body = {
        "model": MODEL,
        "prompt": "a b c",
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, _, bodies = _call(main_module, "POST", "/v1/completions", body)
    events = _events(bodies)
    assert status == 200
    assert events[-2]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_a_request_without_stream_is_the_lambda_handlers_answer(main_module, make_forwarder):
    make_forwarder("vllm")
    status, headers, bodies = _call(main_module, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 2})
    answer = json.loads(b"".join(m["body"] for m in bodies))
    assert (status, headers["x-request-id"], headers["x-ownllm-usage"]) == (200, "apigw-1", "reported")
    assert (answer["object"], answer["model"], answer["id"]) == ("chat.completion", MODEL, "chatcmpl-apigw-1")


def test_a_stream_refused_before_its_first_chunk_gets_todays_status_and_headers(main_module, make_forwarder):
    harness = make_forwarder("vllm")
    harness.server.set_fault("throttle")
    status, headers, bodies = _call(main_module, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    error = json.loads(b"".join(m["body"] for m in bodies))["error"]
    assert (status, headers["retry-after"], error["code"], error["request_id"]) == (
        429,
        "1",
        "rate_limit_exceeded",
        "apigw-1",
    )


def test_a_bad_streaming_request_is_a_400_naming_the_field(main_module, make_forwarder):
    make_forwarder("vllm")
    status, _, bodies = _call(
        main_module, "POST", "/v1/chat/completions", {"model": MODEL, "messages": [], "stream": True}
    )
    error = json.loads(b"".join(m["body"] for m in bodies))["error"]
    assert (status, error["param"]) == (400, "messages")


def test_the_readiness_path_answers_200(main_module):
    status, _, bodies = _call(main_module, "GET", "/health")
    assert (status, bodies[0]["body"]) == (200, b'{"status":"ok"}')


def test_a_stream_ends_in_band_with_a_timeout_before_the_lambdas_deadline(main_module, make_forwarder, logs):
    """1.5 s left and a 1 s margin: the stream stops about 0.5 s in, long before 100 tokens at 20/s."""
    make_forwarder("vllm", tokens_per_s=20, fill_max_tokens=True)
    deadline_ms = int((time.time() + 1.5) * 1000)
    context = {"request_id": "lambda-1", "deadline": deadline_ms, "invoked_function_arn": "arn:aws:lambda:x"}
    body = {**CHAT, "stream": True, "max_tokens": 100}
    status, _, bodies = _call(main_module, "POST", "/v1/chat/completions", body, lambda_context=context)
    events = _events(bodies)
    assert status == 200
    assert events[-2]["error"]["code"] == "timeout"
    assert events[-1] == "[DONE]"
    assert len(events) < 60
    [line] = [entry for entry in logs() if entry.get("message") == "request failed"]
    assert (line["status"], line["error_class"], line["lambda_request_id"]) == (200, "timeout", "lambda-1")


# -- over HTTP, read by the official openai client -----------------------------------------


def test_the_openai_client_reads_each_chunk_while_the_engine_is_still_generating(main_module, make_forwarder):
    backend = GatedEngine()
    make_forwarder("vllm", backend=backend)
    with AsgiServer(main_module.app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0, timeout=30)
        stream = client.chat.completions.create(model=MODEL, messages=CHAT["messages"], stream=True)
        first = next(iter(stream))
        backend.go_on.set()
        rest = list(stream)
    assert (first.choices[0].delta.role, first.choices[0].delta.content) == ("assistant", "")
    assert [c.choices[0].delta.content for c in rest[:1]] == ["Hi"]
    assert rest[-1].choices[0].finish_reason == "stop"
    assert backend.waited_in_vain is False


def test_the_openai_client_sees_a_refusal_before_the_stream_as_its_own_exception(main_module, make_forwarder):
    harness = make_forwarder("vllm")
    harness.server.set_fault("throttle")
    with AsgiServer(main_module.app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0, timeout=30)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=CHAT["messages"], stream=True)
    assert caught.value.status_code == 429
    assert caught.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(("left_s", "expected_s"), [(600.0, 599.0), (3600.0, 899.0)])
def test_a_stream_may_outlast_api_gateways_29_s_up_to_the_lambdas_deadline_and_15_minutes(
    main_module, make_forwarder, monkeypatch, left_s, expected_s
):
    """Time left minus the 1 s margin, capped by API Gateway's 15-minute stream (900 s)."""
    make_forwarder("vllm")
    seen: dict = {}
    real = main_module.upstream.invoke_stream

    def spy(*args, **kwargs):
        seen["until_in_s"] = kwargs["stream_deadline"] - time.monotonic()
        return real(*args, **kwargs)

    monkeypatch.setattr(main_module.upstream, "invoke_stream", spy)
    context = {"request_id": "lambda-1", "deadline": int((time.time() + left_s) * 1000)}
    status, _, _ = _call(main_module, "POST", "/v1/chat/completions", {**CHAT, "stream": True}, lambda_context=context)
    assert status == 200
    assert expected_s - 1 < seen["until_in_s"] <= expected_s


def test_a_streamed_answer_is_logged_with_its_prompt_only_with_log_prompts(main_module, make_forwarder, logs):
    make_forwarder("vllm", env={"LOG_PROMPTS": "true"})
    _call(main_module, "POST", "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 2})
    [line] = [entry for entry in logs() if entry.get("message") == "prompt"]
    assert (line["prompt"], line["completion"]) == (CHAT["messages"], f"[stand-in for {MODEL}] This")


@pytest.mark.parametrize(
    "path, left_s, expected_s",
    [
        ("/v1/chat/completions", 299, 60),  # a completion route: SageMaker's InvokeEndpoint waits 60 s
        ("/v1/completions", 299, 60),
        ("/v1/chat/completions", 20, 20),  # the Lambda's own deadline first
        ("/v1/models", 299, 29),  # the {proxy+} routes are buffered integrations: API Gateway's 29 s
    ],
)
def test_a_buffered_answer_gets_the_time_its_route_allows(
    main_module, make_forwarder, monkeypatch, path, left_s, expected_s
):
    """The context app.handler sees: the Lambda's deadline, narrowed to 29 s on routes whose
    integration API Gateway ends at 29 s; app.handler itself stops at InvokeEndpoint's 60 s."""
    make_forwarder("vllm")
    seen: dict = {}
    real = main_module.forwarder.handler

    def spy(event, context):
        seen["left_s"] = context.get_remaining_time_in_millis() / 1000
        return real(event, context)

    monkeypatch.setattr(main_module.forwarder, "handler", spy)
    context = {"request_id": "lambda-1", "deadline": int((time.time() + left_s) * 1000)}
    body = {"/v1/chat/completions": CHAT, "/v1/completions": {"model": MODEL, "prompt": "Hi"}}.get(path)
    method = "POST" if body else "GET"
    status, _, _ = _call(main_module, method, path, body, lambda_context=context)
    assert status == 200
    expected_left = min(left_s, 299 if path != "/v1/models" else 29)
    assert expected_left - 1 < seen["left_s"] <= expected_left


def test_a_buffered_completion_may_take_longer_than_29_s_up_to_invoke_endpoints_60(forwarder_app, make_forwarder):
    """app.handler's budget on a 299 s function: 60 s less 0.5 s, less the 1 s answer margin."""
    make_forwarder("vllm")

    class Context:
        aws_request_id = "lambda-1"
        function_name = "ownllm-forwarder"
        memory_limit_in_mb = 128
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ownllm-forwarder"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 299_000

    event = {
        "httpMethod": "POST",
        "path": "/v1/chat/completions",
        "headers": {"content-type": "application/json"},
        "requestContext": {"requestId": "apigw-1"},
        "body": json.dumps(CHAT),
        "isBase64Encoded": False,
    }
    started = time.monotonic()
    assert forwarder_app.handler(event, Context())["statusCode"] == 200
    assert forwarder_app._current.deadline - started == pytest.approx(58.5, abs=0.05)
