"""An endpoint whose inference component is at zero copies: SageMaker refuses at once with a 400
ValidationError "no capacity"; the client gets 503 "starting" with Retry-After, never a 500."""

from __future__ import annotations

import errors
import pytest

COMPONENT = {"INFERENCE_COMPONENT_NAME": "ownllm-llm-component"}


@pytest.fixture
def scaled_to_zero(make_forwarder):
    return make_forwarder("vllm", env=COMPONENT)


def test_no_capacity_answers_503_model_starting_with_retry_after(scaled_to_zero):
    scaled_to_zero.server.set_fault("no_capacity", wake_s=60.0)
    answer = scaled_to_zero.chat(max_tokens=4)
    assert answer.status == 503
    assert answer.headers["retry-after"] == str(errors.RETRY_AFTER_STARTING_S)
    assert answer.error["code"] == "model_starting"
    assert answer.error["type"] == "server_error"
    assert f"about {errors.WAKE_MINUTES} minutes" in answer.error["message"]


def test_the_call_that_finds_it_awake_answers_200(scaled_to_zero):
    scaled_to_zero.server.set_fault("no_capacity", wake_s=0.0)
    assert scaled_to_zero.chat(max_tokens=4).status == 200


def test_every_call_names_the_inference_component(scaled_to_zero):
    scaled_to_zero.chat(max_tokens=4)
    assert scaled_to_zero.server.requests[-1].headers["x-amzn-sagemaker-inference-component"] == "ownllm-llm-component"


def test_a_validation_error_that_is_not_about_capacity_stays_an_internal_error():
    failure = errors.UpstreamFailure("service", code="ValidationError", http_status=400, message="Bad header")
    mapped = errors.map_upstream(failure)
    assert (mapped.status, mapped.code) == (500, "internal_error")
