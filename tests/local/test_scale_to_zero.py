"""An endpoint scaled to zero, emulated by the local stack: the first calls answer 503 "starting"
with Retry-After while the component wakes, then the same call answers 200."""

from __future__ import annotations

import time

import pytest

from ownllm.local.stack import INFERENCE_COMPONENT_NAME, LocalStack, LocalStackError

KEY = "test-key-0123456789"
WAKE_S = 1.0


@pytest.fixture
def asleep():
    stack = LocalStack(api_key=KEY, scale_to_zero_wake_s=WAKE_S, max_instances=2).start()
    yield stack
    stack.stop()


def _chat(call, stack: LocalStack):
    body = {"model": stack.model_name or "ownllm-stand-in", "messages": [{"role": "user", "content": "Hi"}]}
    return call(stack.url, "POST", "/v1/chat/completions", {**body, "max_tokens": 4})


def test_a_sleeping_endpoint_answers_503_starting_with_retry_after_then_200_once_awake(api, asleep):
    first = _chat(api, asleep)
    assert first.status == 503
    assert first.headers["retry-after"] == "60"
    assert first.error["code"] == "model_starting"
    assert first.error["type"] == "server_error"
    assert "5-10 minutes" in first.error["message"]

    still_waking = _chat(api, asleep)
    assert still_waking.status == 503

    time.sleep(WAKE_S + 0.2)
    awake = _chat(api, asleep)
    assert awake.status == 200
    assert awake.json()["choices"][0]["message"]["role"] == "assistant"


def test_the_forwarder_invokes_the_inference_component_by_name(api, asleep):
    asleep.runtime.keep_requests = 1
    _chat(api, asleep)
    sent = asleep.runtime.requests[-1]
    assert sent.headers["x-amzn-sagemaker-inference-component"] == INFERENCE_COMPONENT_NAME


def test_an_always_on_endpoint_is_invoked_without_a_component_name(api):
    stack = LocalStack(api_key=KEY, max_instances=1).start()
    try:
        stack.runtime.keep_requests = 1
        assert _chat(api, stack).status == 200
        assert "x-amzn-sagemaker-inference-component" not in stack.runtime.requests[-1].headers
    finally:
        stack.stop()


@pytest.mark.parametrize("wake_s", [-1.0, 3601.0])
def test_a_wake_time_outside_zero_to_an_hour_is_refused_naming_the_option(wake_s):
    with pytest.raises(LocalStackError, match=r"--scale-to-zero .*expected 0 to 3600 seconds"):
        LocalStack(api_key=KEY, scale_to_zero_wake_s=wake_s)
