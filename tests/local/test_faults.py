"""Faults injected at the stand-in's SageMaker runtime, seen through the whole local path over HTTP.

The API answers each with the status the deployed API maps it to, never waits past its
timeout, and answers normally again as soon as the fault stops. Timeouts are short here:
a 3 s function keeps 1 s back, so the model gets 2 s and no retry fits in the budget.
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


def _chat(api, stack, **headers):
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return api(stack.url, "POST", "/v1/chat/completions", body, headers or None)


@pytest.mark.parametrize(
    ("fault", "params", "status", "code", "retry_after"),
    [
        ("slow", {"delay_s": 4.0}, 504, "timeout", None),
        ("model_error", {"original_status": 500}, 502, "upstream_error", None),
        (
            "model_error",
            {"original_status": 429, "original_message": '{"error": "queue full"}'},
            429,
            "rate_limit_exceeded",
            "1",
        ),
        (
            "model_error",
            {"original_status": 400, "original_message": '{"error": "bad stop"}'},
            400,
            "model_rejected_request",
            None,
        ),
        ("throttle", {}, 429, "rate_limit_exceeded", "1"),
        ("not_ready", {}, 503, "model_not_ready", "30"),
        ("unavailable", {}, 503, "service_unavailable", "5"),
        ("drop", {}, 502, "upstream_unreachable", None),
        ("garbage", {}, 502, "bad_upstream_response", None),
    ],
)
def test_a_fault_answers_its_mapped_status_in_time_and_the_api_recovers_when_it_stops(
    faulty, api, fault, params, status, code, retry_after
):
    faulty.runtime.set_fault(fault, **params)
    reply = _chat(api, faulty)
    assert (reply.status, reply.error["code"]) == (status, code)
    assert reply.headers.get("retry-after") == retry_after
    assert reply.elapsed_s < FUNCTION_TIMEOUT_S
    faulty.runtime.set_fault(None)
    assert _chat(api, faulty).status == 200


def test_a_slow_model_makes_every_concurrent_caller_wait_no_longer_than_the_function_allows(faulty, api):
    faulty.runtime.set_fault("slow", delay_s=5.0)
    replies: list = []
    threads = [threading.Thread(target=lambda: replies.append(_chat(api, faulty))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [r.status for r in replies] == [504] * 4
    assert max(r.elapsed_s for r in replies) < FUNCTION_TIMEOUT_S


def test_the_engines_own_refusal_reaches_the_client_in_its_words(faulty, api):
    faulty.runtime.set_fault("model_error", original_status=422, original_message='{"error": "Input validation error"}')
    reply = _chat(api, faulty)
    assert reply.status == 422
    assert "Input validation error" in reply.error["message"]


@pytest.mark.parametrize("fault", ["throttle", "drop"])
def test_a_single_transient_fault_is_retried_inside_the_budget_and_the_caller_sees_200(make_stack, api, fault):
    stack = make_stack()  # the default 28 s function: time for botocore's standard-mode retry
    stack.runtime.set_fault(fault, times=1)
    reply = _chat(api, stack)
    assert reply.status == 200
    assert len(stack.runtime.requests) == 2  # the failed attempt and its retry


def test_a_model_slower_than_the_integration_timeout_gets_api_gateways_504_and_the_api_recovers(make_stack, api):
    stack = make_stack(gateway_timeout_s=1.0)
    stack.runtime.set_fault("slow", delay_s=3.0, times=1)
    reply = _chat(api, stack)
    assert (reply.status, reply.json()) == (504, {"message": "Endpoint request timed out"})
    assert reply.elapsed_s < 1.6
    assert _chat(api, stack).status == 200
