"""Faults injected at the stand-in's SageMaker runtime, seen over HTTP through the whole local path.

Which answer each fault maps to is asserted once, in tests/lambda/test_forwarder_upstream_errors.py.
Here: what only the HTTP path adds. The function's answer (status, Retry-After, body) crosses
the gateway intact; a slow model is answered by the function itself, inside its own timeout,
never by the gateway killing it; and the API answers normally as soon as the fault stops.
Timeouts are short: a 3 s function keeps 1 s back, so the model gets 2 s and no retry fits.
"""

from __future__ import annotations

import threading

import pytest

from ownllm.local.stack import LocalStack

KEY = "test-key-0123456789"
FUNCTION_TIMEOUT_S = 3.0
SHORT = {"UPSTREAM_CONNECT_TIMEOUT_S": "0.2"}


@pytest.fixture(scope="module")
def short_stack():
    stack = LocalStack(api_key=KEY, lambda_timeout_s=FUNCTION_TIMEOUT_S, lambda_env=SHORT, max_instances=4).start()
    yield stack
    stack.stop()


@pytest.fixture
def faulty(short_stack):
    yield short_stack
    short_stack.runtime.set_fault(None)


def _chat(api, stack):
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return api(stack.url, "POST", "/v1/chat/completions", body)


@pytest.mark.parametrize(
    ("fault", "params", "status", "retry_after"),
    [
        ("throttle", {}, 429, "1"),
        ("not_ready", {}, 503, "30"),
        ("drop", {}, 502, None),
    ],
)
def test_the_functions_fault_answer_crosses_the_gateway_intact_and_the_api_recovers(
    faulty, api, fault, params, status, retry_after
):
    faulty.runtime.set_fault(fault, **params)
    reply = _chat(api, faulty)
    assert (reply.status, reply.headers.get("retry-after")) == (status, retry_after)
    assert set(reply.error) == {"message", "type", "param", "code", "request_id"}  # the function's, not the gateway's
    assert reply.error["request_id"] == reply.headers["x-amzn-requestid"] == reply.headers["x-request-id"]
    faulty.runtime.set_fault(None)
    assert _chat(api, faulty).status == 200


def test_the_engines_own_refusal_reaches_the_http_client_in_its_words(faulty, api):
    faulty.runtime.set_fault("model_error", original_status=422, original_message='{"error": "Input validation error"}')
    reply = _chat(api, faulty)
    assert (reply.status, reply.error["message"]) == (422, "The model rejected the request: Input validation error")


def test_a_slow_model_is_answered_by_the_function_inside_its_timeout_not_by_the_gateway_killing_it(faulty, api):
    """Were the forwarder's deadline missing, the 3 s function would be killed and the gateway answer 502."""
    faulty.runtime.set_fault("slow", delay_s=4.0)
    reply = _chat(api, faulty)
    assert (reply.status, reply.error["code"]) == (504, "timeout")
    faulty.runtime.set_fault(None)
    assert _chat(api, faulty).status == 200


def test_every_concurrent_caller_of_a_slow_model_gets_the_functions_504_not_a_killed_functions_502(faulty, api):
    faulty.runtime.set_fault("slow", delay_s=5.0)
    replies: list = []
    threads = [threading.Thread(target=lambda: replies.append(_chat(api, faulty))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)  # only against a hang: each answer comes within the 3 s function timeout
    assert [r.status for r in replies] == [504] * 4  # a killed function's would be the gateway's 502
    assert [r.error["code"] for r in replies] == ["timeout"] * 4
