"""`--upstream` streams: the upstream is asked with `stream: true` and each of its chunks reaches
the client, in the configured engine's stream shape on the way, while the upstream is still generating.

A fake OpenAI-compatible server (an ASGI app on ownllm.local.server.LocalServer) streams a fixed
answer one paced chunk at a time and records when it sent each. The adapter's output is read
back by the forwarder's own stream reader (lambda/forwarder/streaming.py Normaliser), fed the
body the forwarder's own translation (translate.to_engine) sends each engine.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from dataclasses import dataclass, field

import openai
import pytest

from ownllm.forwarder import FORWARDER_DIR, contract, forwarder_module
from ownllm.local.server import LocalServer, Receive, Scope, Send, read_body
from ownllm.local.upstream import OpenAIUpstream

if str(FORWARDER_DIR) not in sys.path:  # the forwarder's modules, imported as the Lambda imports them
    sys.path.insert(0, str(FORWARDER_DIR))

import config as forwarder_config
import streaming
import translate
import validate

KEY = "test-key-0123456789"
ENGINES = contract().ENGINES
WIRE = forwarder_module("wire")
MODEL = "fake-model"
TOKENS = ["The", " fake", " streams", " one", " word", " at", " a", " time", "."]
ANSWER = "".join(TOKENS)
PACE_S = 0.1  # between the fake's chunks: the stream takes 0.9 s, long enough to see it arrive in pieces


@dataclass
class Sent:
    """One request the fake got, and when (time.monotonic) it sent each chunk with text."""

    path: str
    body: dict
    chunks_at: list[float] = field(default_factory=list)


class StreamingFake:
    """An OpenAI-compatible server that streams TOKENS, one chunk each PACE_S apart.

    Chat: a role chunk, one delta per token, the finish_reason on the last. Completions: one
    text chunk per token, then an empty one with the finish_reason (as vLLM can). Usage counts
    words (prompt) and TOKENS (completion). The prompt or last message steers it: FAIL400 -> a
    400; ERRFIRST -> an error event before any chunk; ERRMID -> an error event after two chunks;
    CUT -> the connection closed after two chunks; WHOLE -> a JSON answer, not a stream; STOPSEQ
    -> ended by the stop string "END" (vLLM's stop_reason).
    """

    def __init__(self, pace_s: float = PACE_S) -> None:
        self.pace_s = pace_s
        self.requests: list[Sent] = []
        self.server = LocalServer(self, name="fake-openai").start()
        self.base_url = self.server.url + "/v1"

    def stop(self) -> None:
        self.server.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await _answer(send, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            return
        raw = await read_body(receive)
        if raw is None:  # the client left
            return
        body = json.loads(raw)
        sent = Sent(scope["path"], body)
        self.requests.append(sent)
        chat = scope["path"].endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        if "FAIL400" in prompt:
            await _answer(send, 400, {"error": {"message": "the fake refuses FAIL400", "type": "invalid"}})
            return
        if "WHOLE" in prompt:
            await _answer(send, 200, {"object": "text_completion", "choices": [{"index": 0, "text": ANSWER}]})
            return
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        base = {"id": "fake-1", "object": "chat.completion.chunk" if chat else "text_completion", "created": 0}
        base["model"] = body.get("model")
        if "ERRFIRST" in prompt:
            await _event(send, {"error": {"message": "the fake has no capacity", "code": 503}})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            return
        if chat:
            await _event(send, {**base, "choices": [_choice(chat, "", role=True)]})
        for i, token in enumerate(TOKENS):
            await asyncio.sleep(self.pace_s)
            if i == 2 and "ERRMID" in prompt:
                error = {"message": "the fake broke mid-answer", "type": "InternalServerError", "code": 500}
                await _event(send, {"error": error})
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
                return
            if i == 2 and "CUT" in prompt:
                raise ConnectionError("the fake hangs up mid-answer")
            last = chat and i == len(TOKENS) - 1
            await _event(send, {**base, "choices": [_choice(chat, token, finish="stop" if last else None)]})
            sent.chunks_at.append(time.monotonic())
        if not chat:
            stop = "END" if "STOPSEQ" in prompt else None
            await _event(send, {**base, "choices": [_choice(chat, "", finish="stop", stop_reason=stop)]})
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(TOKENS)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            await _event(send, {**base, "choices": [], "usage": usage})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _choice(chat: bool, text: str, *, role: bool = False, finish: str | None = None, stop_reason=None) -> dict:
    choice: dict = {"index": 0}
    if chat:
        choice["delta"] = {"role": "assistant", "content": text} if role else {"content": text}
    else:
        choice["text"] = text
        choice["stop_reason"] = stop_reason
    choice.update(logprobs=None, finish_reason=finish)
    return choice


async def _event(send: Send, event: dict) -> None:
    await send({"type": "http.response.body", "body": f"data: {json.dumps(event)}\n\n".encode(), "more_body": True})


async def _answer(send: Send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


@pytest.fixture(scope="module")
def fake():
    """Unpaced: the adapter's shapes, at once."""
    server = StreamingFake(pace_s=0.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def paced_fake():
    """A chunk each PACE_S: long enough to see the stream arrive in pieces."""
    server = StreamingFake()
    yield server
    server.stop()


# -- the adapter alone: the forwarder's body in, the engine's stream out ------------------------------


def _request(engine: str, kind: str, text: str, **fields) -> tuple[validate.Request, bytes]:
    """The client's request as the forwarder reads it, and the body it sends the engine for it."""
    config = forwarder_config.Config(endpoint_name="ownllm-endpoint", engine=engine, model_name=MODEL, adapters=())
    if kind == validate.CHAT:
        client_body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True, **fields}
    else:
        client_body = {"model": MODEL, "prompt": text, "stream": True, **fields}
    req = validate.parse(kind, json.dumps(client_body).encode(), config)
    return req, translate.engine_body(req, config, stream=True)


def _stream(fake: StreamingFake, engine: str, kind: str, text: str, **fields):
    req, body = _request(engine, kind, text, **fields)
    status, headers, pieces = OpenAIUpstream(fake.base_url, engine, model=MODEL).stream("endpoint", body, {})
    return req, status, headers, list(pieces)


def _normalised(req: validate.Request, engine: str, pieces: list[bytes]) -> streaming.Normaliser:
    normaliser = streaming.Normaliser(req, engine, "test")
    for piece in pieces:
        normaliser.feed(piece)
    normaliser.close()
    return normaliser


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", [validate.CHAT, validate.COMPLETION])
def test_the_forwarder_reads_the_upstreams_text_and_counts_from_each_engines_stream(fake, engine, kind):
    req, status, headers, pieces = _stream(fake, engine, kind, "tell me about lighthouses")
    normaliser = _normalised(req, engine, pieces)
    assert (status, headers) == (200, {"Content-Type": WIRE.for_engine(engine).stream_content_type})
    assert (normaliser.failure, normaliser.text, normaliser.finish) == (None, ANSWER, "stop")
    assert (normaliser.prompt_tokens, normaliser.completion_tokens) == (4, len(TOKENS))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", [validate.CHAT, validate.COMPLETION])
def test_the_upstream_is_asked_to_stream_with_counts_under_its_own_model_name(fake, engine, kind):
    _stream(fake, engine, kind, "hello there")
    sent = fake.requests[-1]
    assert sent.path == ("/v1/chat/completions" if kind == validate.CHAT else "/v1/completions")
    assert (sent.body["model"], sent.body["stream"], sent.body["stream_options"]) == (
        MODEL,
        True,
        {"include_usage": True},
    )
    assert "adapters" not in sent.body  # LMI's adapter field is not OpenAI's


def test_vllm_streams_sse_chunks_one_per_upstream_chunk_and_ends_with_done(fake):
    _, _, _, pieces = _stream(fake, "vllm", validate.CHAT, "hi")
    events = [json.loads(p.removeprefix(b"data: ")) for p in pieces[:-1]]
    assert all(p.startswith(b"data: ") and p.endswith(b"\n\n") for p in pieces)
    assert len(pieces) == 1 + len(TOKENS) + 2  # role, tokens, usage, [DONE]
    assert [e["choices"][0]["delta"]["content"] for e in events[1:-1]] == TOKENS
    assert pieces[-1] == b"data: [DONE]\n\n"


def test_lmi_streams_json_lines_and_a_blank_line_at_the_end_without_done(fake):
    _, _, _, pieces = _stream(fake, "lmi", validate.COMPLETION, "hi")
    events = [json.loads(p) for p in pieces[:-1]]
    assert all(p.endswith(b"\n") and p.count(b"\n") == 1 for p in pieces)
    assert [e["choices"][0]["text"] for e in events[:-2]] == TOKENS
    assert events[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": len(TOKENS), "total_tokens": 10}
    assert pieces[-1] == b"\n"


def test_tgi_chat_streams_the_messages_apis_sse_and_ends_with_done(fake):
    _, _, _, pieces = _stream(fake, "tgi", validate.CHAT, "hi")
    assert pieces[-1] == b"data: [DONE]\n\n"
    assert json.loads(pieces[-2].removeprefix(b"data: "))["usage"]["completion_tokens"] == len(TOKENS)


def test_tgi_completions_stream_native_token_events_with_details_on_the_last_and_no_done(fake):
    _, _, _, pieces = _stream(fake, "tgi", validate.COMPLETION, "one two three")
    events = [json.loads(p.removeprefix(b"data: ")) for p in pieces]
    assert [e["token"]["text"] for e in events[:-1]] == TOKENS
    assert [(e["index"], e["generated_text"], e["details"]) for e in events[:2]] == [(1, None, None), (2, None, None)]
    # The upstream ended with an empty chunk and no stop string: TGI's end-of-sequence token.
    assert events[-1] == {
        "index": len(TOKENS) + 1,
        "token": {"id": 0, "text": "", "logprob": None, "special": True},
        "generated_text": ANSWER,
        "details": {"finish_reason": "eos_token", "generated_tokens": len(TOKENS), "input_length": 3, "seed": None},
    }


def test_tgi_completions_put_the_stop_string_back_and_the_forwarder_cuts_it(fake):
    req, _, _, pieces = _stream(fake, "tgi", validate.COMPLETION, "STOPSEQ", stop=["END"])
    last = json.loads(pieces[-1].removeprefix(b"data: "))
    assert (last["token"]["text"], last["generated_text"], last["details"]["finish_reason"]) == (
        "END",
        ANSWER + "END",
        "stop_sequence",
    )
    normaliser = _normalised(req, "tgi", pieces)
    assert (normaliser.text, normaliser.finish) == (ANSWER, "stop")


@pytest.mark.parametrize(
    ("engine", "error"),
    [
        ("vllm", {"object": "error", "message": "the fake refuses FAIL400", "type": "BadRequestError", "param": None}),
        ("lmi", {"error": "the fake refuses FAIL400"}),
        ("tgi", {"error": "the fake refuses FAIL400", "error_type": "validation"}),
    ],
)
def test_an_upstream_refusal_is_a_status_with_the_engines_error_body_before_anything_streams(fake, engine, error):
    _, status, headers, pieces = _stream(fake, engine, validate.CHAT, "FAIL400")
    expected = {**error, "code": 400} if engine != "tgi" else error
    assert (status, headers, [json.loads(p) for p in pieces]) == (400, {"Content-Type": "application/json"}, [expected])


def test_an_error_event_before_the_first_chunk_is_a_status_too(fake):
    _, status, _, pieces = _stream(fake, "tgi", validate.COMPLETION, "ERRFIRST")
    assert (status, [json.loads(p) for p in pieces]) == (
        503,
        [{"error": "the fake has no capacity", "error_type": "generation"}],
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", [validate.CHAT, validate.COMPLETION])
def test_an_upstream_error_mid_stream_ends_it_with_the_engines_in_band_error(fake, engine, kind):
    req, status, _, pieces = _stream(fake, engine, kind, "ERRMID")
    wire = WIRE.for_engine(engine)
    event = wire.stream_error_event(wire.route(kind), 500, "the fake broke mid-answer")
    assert (status, pieces[-1]) == (200, wire.frame(json.dumps(event).encode()))
    normaliser = _normalised(req, engine, pieces)
    assert (normaliser.text, normaliser.failure.original_status) == ("The fake", 500)


def test_an_upstream_that_hangs_up_mid_stream_ends_it_with_a_502_in_band(fake):
    req, status, _, pieces = _stream(fake, "vllm", validate.CHAT, "CUT")
    event = json.loads(pieces[-1].removeprefix(b"data: "))
    assert (status, event["error"]["code"], event["error"]["type"]) == (200, 502, "BadRequestError")
    assert event["error"]["message"] == (
        f"upstream {fake.base_url} broke off its stream (RemoteProtocolError: peer closed connection without "
        "sending complete message body (incomplete chunked read))"
    )
    assert _normalised(req, "vllm", pieces).failure.original_status == 502


def test_an_upstream_that_answers_a_stream_whole_is_a_502_naming_what_it_sent(fake):
    _, status, _, pieces = _stream(fake, "vllm", validate.COMPLETION, "WHOLE")
    assert (status, json.loads(pieces[0])["message"]) == (
        502,
        "upstream answered stream: true with application/json, not text/event-stream",
    )


def test_an_unreachable_upstream_is_a_502_before_anything_streams():
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    req, body = _request("lmi", validate.CHAT, "hi")
    status, _, pieces = OpenAIUpstream(f"http://127.0.0.1:{port}/v1", "lmi", model=MODEL).stream("e", body, {})
    assert (status, json.loads(b"".join(pieces))) == (
        502,
        {
            "error": f"upstream http://127.0.0.1:{port}/v1 did not answer "
            "(ConnectionRefusedError: [Errno 111] Connection refused)",
            "code": 502,
        },
    )


def test_a_body_the_forwarder_never_streams_is_refused_with_the_two_it_does():
    body = json.dumps({"inputs": "hi", "parameters": {}, "stream": True}).encode()
    status, _, pieces = OpenAIUpstream("http://127.0.0.1:9/v1", "lmi", model=MODEL).stream("e", body, {})
    assert (status, json.loads(b"".join(pieces))) == (
        400,
        {"error": "--upstream streams the bodies the forwarder sends lmi only (messages and prompt)", "code": 400},
    )


# -- the whole local path: the openai client sees the chunks while the upstream generates -----------


@pytest.fixture(scope="module")
def upstream_stacks(paced_fake):
    from ownllm.local.stack import LocalStack

    started: dict[str, LocalStack] = {}

    def get(engine: str) -> LocalStack:
        if engine not in started:
            started[engine] = LocalStack(
                engine=engine, api_key=KEY, upstream=paced_fake.base_url, max_instances=2
            ).start()
        return started[engine]

    yield get
    for stack in started.values():
        stack.stop()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_the_openai_client_gets_chunks_while_the_upstream_is_still_generating(
    paced_fake, upstream_stacks, engine, kind
):
    stack = upstream_stacks(engine)
    client = openai.OpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0, timeout=30)
    ask = {"model": MODEL, "max_tokens": 32, "stream": True, "stream_options": {"include_usage": True}}
    if kind == "chat":
        chunks = client.chat.completions.create(messages=[{"role": "user", "content": "tell me a b c"}], **ask)
    else:
        chunks = client.completions.create(prompt="tell me a b c", **ask)
    arrivals: list[float] = []
    text: list[str] = []
    usage = None
    for chunk in chunks:
        piece = (chunk.choices[0].delta.content if kind == "chat" else chunk.choices[0].text) if chunk.choices else ""
        if piece:
            arrivals.append(time.monotonic())
            text.append(piece)
        usage = chunk.usage or usage
    sent = paced_fake.requests[-1]
    assert ("".join(text), usage.prompt_tokens, usage.completion_tokens) == (ANSWER, 5, len(TOKENS))
    assert sent.body["stream"] is True
    # Streamed, not buffered: the first words reached the client before the upstream sent its last.
    assert arrivals[0] < sent.chunks_at[-1]
    assert sum(1 for at in arrivals if at < sent.chunks_at[-1]) > 1
