"""A stream may run until the function's longer timeout, so it has its own, higher max_tokens cap
(MAX_STREAM_TOKENS); a buffered answer keeps the cap that finishes within API Gateway's 29 s."""

from __future__ import annotations

import config as settings
import pytest

# Buffered cap 883 (MAX_TOTAL_TOKENS - MAX_INPUT_TOKENS), streamed cap 4096: the stack's defaults.
CAPS = {"MAX_INPUT_TOKENS": "4096", "MAX_TOTAL_TOKENS": "4979", "MAX_STREAM_TOKENS": "4096"}


@pytest.fixture
def capped(make_forwarder):
    return make_forwarder("vllm", env=CAPS)


def test_a_buffered_answer_over_its_cap_is_refused_naming_the_streamed_limit(capped):
    answer = capped.chat(max_tokens=1500)
    assert answer.status == 400
    assert (answer.error["param"], answer.error["code"]) == ("max_tokens", "max_tokens_exceeded")
    assert answer.error["message"] == (
        "'max_tokens' is 1500, above this API's limit of 883 tokens per answer. "
        'With "stream": true the limit is 4096.'
    )


def test_a_stream_may_ask_for_more_up_to_its_own_cap(capped):
    assert capped.chat(max_tokens=1500, stream=True).status == 200
    over = capped.chat(max_tokens=4097, stream=True)
    assert (over.status, over.error["message"]) == (
        400,
        "'max_tokens' is 4097, above this API's limit of 4096 tokens per answer.",
    )


def test_without_a_stream_cap_streams_share_the_buffered_one():
    base = {
        "ENDPOINT_NAME": "e",
        "ENGINE": "vllm",
        "MODEL_NAME": "m",
        "MAX_INPUT_TOKENS": "10",
        "MAX_TOTAL_TOKENS": "20",
        "DEFAULT_MAX_TOKENS": "5",
    }
    config = settings.load(base)
    assert (config.max_tokens_for(False), config.max_tokens_for(True)) == (10, 10)
    assert settings.load({**base, "MAX_STREAM_TOKENS": "50"}).max_tokens_for(True) == 50
