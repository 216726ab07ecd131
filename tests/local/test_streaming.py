"""`ownllm local` streams as the deployed API's STREAM integrations do: every request runs the
function's own `main:app` under uvicorn in an execution environment, and `stream: true`
completions reach the client chunk by chunk while the model is still generating.

How the gateway times out and cuts an answer is checked with a probe function in
test_lambda_runtime.py."""

from __future__ import annotations

import time

import openai
import pytest

from ownllm.forwarder import contract
from ownllm.local.cli import streams
from ownllm.local.stack import LocalStack

KEY = "test-key-0123456789"
ENGINES = contract().ENGINES
TOKENS_PER_S = 40.0
MAX_TOKENS = 40  # 1 s of generation at TOKENS_PER_S


@pytest.fixture(scope="module")
def paced():
    """paced(engine) -> a stack whose stand-in fills max_tokens at TOKENS_PER_S."""
    started: dict[str, LocalStack] = {}

    def get(engine: str) -> LocalStack:
        if engine not in started:
            started[engine] = LocalStack(
                engine=engine, api_key=KEY, tokens_per_s=TOKENS_PER_S, fill_max_tokens=True, max_instances=2
            ).start()
        return started[engine]

    yield get
    for stack in started.values():
        stack.stop()


def _client(stack: LocalStack, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_first_chunk_arrives_while_the_model_is_still_generating(paced, engine):
    stack = paced(engine)
    client = _client(stack)
    ask = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": MAX_TOKENS}
    list(client.chat.completions.create(**ask, stream=True))  # the streaming function's cold start
    started = time.monotonic()
    arrivals: list[float] = []
    text = []
    for chunk in client.chat.completions.create(**ask, stream=True):
        arrivals.append(time.monotonic() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
    total = arrivals[-1]
    generation_s = MAX_TOKENS / TOKENS_PER_S
    assert total >= generation_s * 0.9  # the stand-in really paced it
    # Chunks arrive spread over the generation, not together at its end (a buffered answer's
    # chunks all arrive within milliseconds of each other).
    assert arrivals[-1] - arrivals[0] >= generation_s / 2
    assert len(text) == MAX_TOKENS


def test_a_completions_stream_arrives_chunk_by_chunk_too(paced):
    stack = paced("vllm")
    client = _client(stack)
    started = time.monotonic()
    arrivals = [
        time.monotonic() - started
        for _ in client.completions.create(model=stack.model_name, prompt="Hi", max_tokens=MAX_TOKENS, stream=True)
    ]
    # Spread over the generation whatever the streaming function's cold start added before it.
    assert arrivals[-1] - arrivals[0] >= MAX_TOKENS / TOKENS_PER_S / 2


def test_stream_false_answers_whole_through_the_same_path(paced):
    stack = paced("vllm")
    answer = _client(stack).chat.completions.create(
        model=stack.model_name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4


def test_a_streamed_answer_is_chunked_and_carries_the_gateways_request_id(paced, api):
    stack = paced("vllm")
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}
    reply = api(stack.url, "POST", "/v1/chat/completions", body)
    assert reply.status == 200
    assert reply.headers["transfer-encoding"] == "chunked"
    assert reply.headers["content-type"].split(";")[0] == "text/event-stream"
    assert len(reply.headers["x-amzn-requestid"]) == 36
    assert reply.body.endswith(b"data: [DONE]\n\n")


def test_a_stream_without_a_key_gets_the_gateways_401_not_the_functions(paced, api):
    stack = paced("vllm")
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    reply = api(stack.url, "POST", "/v1/chat/completions", body, key=None)
    assert reply.status == 401
    assert reply.headers["x-amzn-errortype"] == "UnauthorizedException"
    assert "transfer-encoding" not in reply.headers


def test_the_banner_says_every_answer_is_relayed_from_main_app_with_both_timeouts():
    assert streams(LocalStack(engine="vllm", api_key=KEY)) == (
        "every answer is relayed chunk by chunk from main:app under uvicorn (STREAM mode, as Lambda Web Adapter "
        "runs it): 29 s, the completion routes up to 300 s"
    )
