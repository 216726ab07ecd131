"""The local runtime's InvokeEndpointWithResponseStream, read by boto3's real client: parts
arrive while the backend is still generating, in each engine's streaming shape."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from ownllm.local.runtime import RuntimeServer, StandIn

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def client_for(monkeypatch):
    servers: list[RuntimeServer] = []

    def make(backend, pool: int = 10) -> tuple[RuntimeServer, object]:
        server = RuntimeServer(backend=backend).start()
        servers.append(server)
        for key, value in FAKE_AWS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        config = Config(retries={"total_max_attempts": 1}, read_timeout=10, max_pool_connections=pool)
        client = boto3.client("sagemaker-runtime", config=config)
        return server, client

    yield make
    for server in servers:
        server.stop()


def _stream(client, body: dict) -> tuple[dict, list[bytes]]:
    response = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=json.dumps(body).encode())
    return response, [event["PayloadPart"]["Bytes"] for event in response["Body"]]


class _Gated:
    """A backend that sends one part, then waits for the test to say it has read it."""

    def __init__(self, wait_s: float = 10.0) -> None:
        self.read_first = threading.Event()
        self.wait_s = wait_s
        self.waited_in_vain = False  # by any stream

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        return 200, {"Content-Type": "text/plain"}, b"whole"

    def stream(self, endpoint_name: str, body: bytes, headers: dict):
        def pieces():
            yield b"first\n"
            if not self.read_first.wait(self.wait_s):
                self.waited_in_vain = True
            yield b"second\n"

        return 200, {"Content-Type": "text/plain"}, pieces()


def test_a_part_reaches_boto3_before_the_backend_has_generated_the_next(client_for):
    backend = _Gated()
    _, client = client_for(backend)
    response = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")
    events = iter(response["Body"])
    assert next(events)["PayloadPart"]["Bytes"] == b"first\n"
    backend.read_first.set()
    assert [e["PayloadPart"]["Bytes"] for e in events] == [b"second\n"]
    assert backend.waited_in_vain is False
    assert response["ContentType"] == "text/plain"


def test_standin_parts_arrive_paced_while_it_generates(client_for):
    """20 tokens at 40 tokens/s take 0.5 s to generate: the first part must be in before the last."""
    _, client = client_for(StandIn(engine="vllm", model_name="m", tokens_per_s=40, fill_max_tokens=True))
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=json.dumps({"prompt": "x", "max_tokens": 20, "stream": True}).encode()
    )
    arrivals = [(time.monotonic(), event["PayloadPart"]["Bytes"]) for event in response["Body"]]
    assert len(arrivals) == 21  # 20 tokens and [DONE]
    assert arrivals[0][0] < arrivals[-1][0]
    assert arrivals[-1][1] == b"data: [DONE]\n\n"


def test_vllm_streams_sse_chunks_with_exactly_max_tokens_when_filling(client_for):
    _, client = client_for(StandIn(engine="vllm", model_name="m", fill_max_tokens=True))
    response, parts = _stream(
        client,
        {"model": "m", "prompt": "x", "max_tokens": 40, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert response["ContentType"] == "text/event-stream; charset=utf-8"
    chunks = [json.loads(p[len(b"data: ") :]) for p in parts[:-1]]
    assert parts[-1] == b"data: [DONE]\n\n"
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert len(texts) == 40
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    # vLLM's usage (UsageInfo) carries prompt_tokens_details, null without prefix caching details.
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 40,
        "total_tokens": 41,
        "prompt_tokens_details": None,
    }


def test_lmi_streams_json_lines_ending_with_a_blank_line_and_no_done(client_for):
    _, client = client_for(StandIn(engine="lmi", model_name="m"))
    response, parts = _stream(
        client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    )
    assert response["ContentType"] == "application/jsonlines"
    assert parts[-1] == b"\n"
    lines = [json.loads(p) for p in parts[:-1]]
    assert lines[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [line["choices"][0]["finish_reason"] for line in lines[1:]] == [None, None, "length"]


def test_tgi_native_streams_token_events_with_details_on_the_last(client_for):
    _, client = client_for(StandIn(engine="tgi", model_name="m"))
    _, parts = _stream(client, {"inputs": "a b", "parameters": {"max_new_tokens": 2, "details": True}, "stream": True})
    events = [json.loads(p[len(b"data: ") :]) for p in parts]
    assert [e["token"]["text"] for e in events] == ["[stand-in for m]", " This"]
    assert events[-1]["details"] == {"finish_reason": "length", "generated_tokens": 2, "seed": None, "input_length": 2}
    assert events[-1]["generated_text"] == "[stand-in for m] This"


def test_a_refusal_before_streaming_is_a_model_error_with_the_engines_status(client_for):
    _, client = client_for(StandIn(engine="vllm", model_name="m"))
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint_with_response_stream(
            EndpointName="e", Body=json.dumps({"model": "nope", "prompt": "x", "stream": True}).encode()
        )
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 404


def test_an_injected_stream_error_ends_the_stream_with_model_stream_error_after_the_parts_sent(client_for):
    server, client = client_for(StandIn(engine="vllm", model_name="m"))
    server.set_fault("stream_error", times=1, after_parts=2)
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="e", Body=json.dumps({"prompt": "x", "max_tokens": 5, "stream": True}).encode()
    )
    received = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert len(received) == 2
    assert caught.value.response["Error"] == {"Code": "ModelStreamError", "Message": "Model stream broken (injected)."}


def test_a_throttle_before_the_stream_is_raised_by_the_call(client_for):
    server, client = client_for(StandIn(engine="vllm", model_name="m"))
    server.set_fault("throttle", times=1)
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint_with_response_stream(EndpointName="e", Body=b'{"prompt": "x", "stream": true}')
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"


def test_a_backend_without_a_stream_method_sends_its_whole_answer_as_one_part(client_for):
    _, client = client_for(_Gated().__call__)
    _, parts = _stream(client, {})
    assert parts == [b"whole"]


def test_streams_waiting_on_their_backend_hold_up_no_other_request(client_for):
    """Twelve streams, each stopped in its backend after one part (more than asyncio's default
    executor has threads on a small machine), and a thirteenth request is still answered at once."""
    backend = _Gated(wait_s=5.0)
    _, client = client_for(backend, pool=16)
    streams = [
        iter(client.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")["Body"]) for _ in range(12)
    ]
    firsts = [next(events)["PayloadPart"]["Bytes"] for events in streams]
    answer = client.invoke_endpoint(EndpointName="e", Body=b"{}")["Body"].read()
    backend.read_first.set()
    rests = [[e["PayloadPart"]["Bytes"] for e in events] for events in streams]
    assert (firsts, answer, rests) == ([b"first\n"] * 12, b"whole", [[b"second\n"]] * 12)
    assert backend.waited_in_vain is False


class _Endless:
    """A stream that never ends by itself: one part every 10 ms, counting the parts generated."""

    def __init__(self) -> None:
        self.generated = 0
        self.closed = threading.Event()

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        return 200, {}, b""

    def stream(self, endpoint_name: str, body: bytes, headers: dict):
        def pieces():
            try:
                while True:
                    time.sleep(0.01)
                    self.generated += 1
                    yield b"part\n"
            finally:
                self.closed.set()

        return 200, {"Content-Type": "text/plain"}, pieces()


def test_a_client_that_leaves_mid_stream_stops_the_backend_generating(client_for):
    backend = _Endless()
    _, client = client_for(backend)
    response = client.invoke_endpoint_with_response_stream(EndpointName="e", Body=b"{}")
    events = iter(response["Body"])
    assert next(events)["PayloadPart"]["Bytes"] == b"part\n"
    response["Body"].close()
    assert backend.closed.wait(5)
    generated = backend.generated
    time.sleep(0.1)
    assert backend.generated == generated
