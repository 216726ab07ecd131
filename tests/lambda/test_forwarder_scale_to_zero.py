"""An endpoint whose model runs as an inference component (the scale-to-zero topology): every
call names the component; at zero copies the client reads that the model is starting.
(The mapping itself is a row of MAPPING in test_forwarder_upstream_errors.py.)"""

from __future__ import annotations

import errors
import pytest

COMPONENT = {"INFERENCE_COMPONENT_NAME": "ownllm-llm-component"}


@pytest.fixture
def scaled_to_zero(make_forwarder):
    return make_forwarder("vllm", env=COMPONENT)


def test_every_call_names_the_inference_component(scaled_to_zero):
    scaled_to_zero.chat(max_tokens=4)
    assert scaled_to_zero.server.requests[-1].headers["x-amzn-sagemaker-inference-component"] == "ownllm-llm-component"


def test_the_starting_answer_says_how_long_a_wake_takes(scaled_to_zero):
    scaled_to_zero.server.set_fault("no_capacity", wake_s=60.0)
    answer = scaled_to_zero.chat(max_tokens=4)
    assert answer.status == 503
    assert answer.error["message"] == (
        f"The model is scaled to zero and is starting now; that takes about {errors.WAKE_MINUTES} minutes "
        f"for a 7-8B model. Retry after {errors.RETRY_AFTER_STARTING_S} s."
    )


def test_the_call_that_finds_it_awake_answers_200(scaled_to_zero):
    scaled_to_zero.server.set_fault("no_capacity", wake_s=0.0)
    assert scaled_to_zero.chat(max_tokens=4).status == 200
