"""`ownllm local` streams as the deployed API's STREAM integration does: `stream: true` completions
run the function's own `main:app` under uvicorn and reach the client chunk by chunk while the
model is still generating; everything else keeps the buffered path."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import openai
import pytest

from ownllm.forwarder import contract
from ownllm.local.cli import streams
from ownllm.local.gateway import StreamTarget
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


def test_stream_false_still_answers_whole_through_the_buffered_path(paced):
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


def test_the_streaming_function_stops_with_the_stack(api):
    stack = LocalStack(engine="vllm", api_key=KEY).start()
    try:
        body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        assert api(stack.url, "POST", "/v1/chat/completions", {**body, "stream": True}).status == 200
        assert stack.asgi is not None
        process = stack.asgi.process
        assert process is not None
        assert process.poll() is None
    finally:
        stack.stop()
    assert process.poll() is not None
    assert stack.asgi is None


class _StallingFunction:
    """A streaming function that answers headers and one chunk, then (if `stall_headers`, before
    the headers) goes silent until the test ends."""

    def __init__(self, stall_headers: bool) -> None:
        self.stall_headers = stall_headers
        self.release = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)
            if not self.stall_headers:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                conn.sendall(b"6\r\ndata: \r\n")
            self.release.wait(10)

    def stop(self) -> None:
        self.release.set()
        self.listener.close()


@pytest.fixture
def stalled(paced):
    """stalled(stall_headers) -> (stack, function): the vllm stack's streams go to a stalling function
    under an integration timeout of 0.5 s."""
    made: list[_StallingFunction] = []
    stack = paced("vllm")
    assert stack.gateway is not None
    previous = stack.gateway.stream_target

    def make(stall_headers: bool) -> LocalStack:
        function = _StallingFunction(stall_headers)
        made.append(function)
        target = StreamTarget("127.0.0.1", function.port, integration_timeout_s=0.5, function_timeout_s=0.4)
        stack.gateway.stream_target = lambda: target
        return stack

    yield make
    stack.gateway.stream_target = previous
    for function in made:
        function.stop()


def test_a_stream_without_headers_within_the_integration_timeout_is_the_gateways_504(stalled, api):
    stack = stalled(stall_headers=True)
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    reply = api(stack.url, "POST", "/v1/chat/completions", body)
    assert reply.status == 504
    assert reply.error["code"] == "timeout"
    assert reply.headers["x-should-retry"] == "false"


def test_a_stream_past_the_integration_timeout_is_cut_without_its_final_chunk(stalled):
    stack = stalled(stall_headers=False)
    body = {"model": stack.model_name, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"x-api-key": KEY})
        response = conn.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        assert cut.value.partial == b"data: "
    finally:
        conn.close()


def test_the_banner_says_streams_run_main_app_under_uvicorn_with_the_stand_in():
    assert streams(LocalStack(engine="vllm", api_key=KEY)) == (
        "stream: true -> lambda/forwarder main:app under uvicorn, relayed chunk by chunk (STREAM mode, up to 300 s)"
    )


def test_the_banner_says_streams_are_buffered_without_uvicorn():
    assert streams(LocalStack(engine="vllm", api_key=KEY, streaming=False)) == (
        "stream: true is buffered like the rest (uvicorn is not installed: pip install uvicorn==0.54.0)"
    )


def test_an_upstream_backend_streams_through_main_app_too():  # live: tests/local/test_upstream_stream.py
    stack = LocalStack(engine="vllm", api_key=KEY, upstream="http://127.0.0.1:9/v1")
    assert stack.streaming is True
    assert streams(stack) == (
        "stream: true -> lambda/forwarder main:app under uvicorn, relayed chunk by chunk (STREAM mode, up to 300 s)"
    )
