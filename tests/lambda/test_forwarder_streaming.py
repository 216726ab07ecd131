"""upstream.invoke_stream against the local SageMaker runtime: OpenAI chunks while the engine
generates, today's statuses for failures before the first chunk, in-band errors after it."""

from __future__ import annotations

import json
import time

import errors
import pytest
import streaming
import translate
import upstream
import validate
from lambda_testkit import MODEL, GatedEngine


def _start(harness, kind=validate.CHAT, *, until=None, **fields):
    """(invocation, normaliser) for a streaming request through the harness's forwarder config."""
    cfg = harness.app.CONFIG
    body = {"model": MODEL, "stream": True, **fields}
    if kind == validate.CHAT:
        body.setdefault("messages", [{"role": "user", "content": "What is deep learning?"}])
    else:
        body.setdefault("prompt", "Deep learning is")
    req = validate.parse(kind, json.dumps(body), cfg)
    normaliser = streaming.Normaliser(req, cfg.engine, "rid-1", created=1)
    invocation = upstream.invoke_stream(
        harness.app.CLIENT,
        cfg.endpoint_name,
        translate.engine_body(req, cfg, stream=True),
        normaliser,
        "rid-1",
        deadline=time.monotonic() + 20,
        connect_timeout_s=cfg.connect_timeout_s,
        read_timeout_s=cfg.read_timeout_s,
        inference_component=cfg.inference_component,
        stream_deadline=until,
    )
    return invocation, normaliser


def _events(chunks) -> list:
    wire = b"".join(chunks).decode()
    return [p if p == "[DONE]" else json.loads(p) for p in (b[6:] for b in wire.split("\n\n") if b)]


@pytest.mark.parametrize("kind", [validate.CHAT, validate.COMPLETION])
def test_every_engine_streams_the_stand_in_answer_as_openai_chunks(any_engine, kind):
    invocation, normaliser = _start(any_engine, kind, max_tokens=5, stream_options={"include_usage": True})
    events = _events(invocation.chunks)
    assert events[-1] == "[DONE]"
    assert {e["model"] for e in events[:-1]} == {MODEL}
    assert {e["id"] for e in events[:-1]} == {"chatcmpl-rid-1" if kind == validate.CHAT else "cmpl-rid-1"}
    field = "delta" if kind == validate.CHAT else "text"
    pieces = [e["choices"][0][field] for e in events[:-2]]
    text = "".join(p.get("content", "") if isinstance(p, dict) else p for p in pieces)
    assert text == f"[stand-in for {MODEL}] This is a deterministic"
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["usage"]["completion_tokens"] == 5
    assert normaliser.usage_source == translate.REPORTED
    assert any_engine.sent["stream"] is True


def test_invoke_stream_returns_with_the_first_chunk_while_the_engine_is_still_generating(make_forwarder):
    backend = GatedEngine()
    harness = make_forwarder("vllm", backend=backend)
    invocation, _ = _start(harness)
    first = next(invocation.chunks)
    assert [e["choices"][0]["delta"] for e in _events([first])] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]
    backend.go_on.set()
    assert _events(invocation.chunks)[-2:] == [
        {
            "id": "chatcmpl-rid-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
        },
        "[DONE]",
    ]
    assert backend.waited_in_vain is False


@pytest.mark.parametrize(
    ("fault", "params", "status", "code"),
    [
        ("throttle", {}, 429, "rate_limit_exceeded"),
        ("not_ready", {}, 503, "model_not_ready"),
        ("no_capacity", {"wake_s": 60.0}, 503, "model_starting"),
        (
            "model_error",
            {"original_status": 422, "original_message": '{"error": "bad"}'},
            422,
            "model_rejected_request",
        ),
    ],
)
def test_a_failure_before_the_first_chunk_keeps_todays_mapped_status(make_forwarder, fault, params, status, code):
    harness = make_forwarder("vllm")
    harness.server.set_fault(fault, **params)
    with pytest.raises(errors.UpstreamFailure) as caught:
        _start(harness)
    answer = errors.map_upstream(caught.value)
    assert (answer.status, answer.code) == (status, code)


def test_an_unknown_adapter_refused_by_the_engine_keeps_its_404(make_forwarder):
    harness = make_forwarder("vllm", adapters=())
    with pytest.raises(errors.UpstreamFailure) as caught:
        _start(harness, model="sql-expert")
    assert (errors.map_upstream(caught.value).status, caught.value.original_status) == (404, 404)


def test_a_model_stream_error_after_the_first_chunk_ends_the_stream_in_band(make_forwarder):
    harness = make_forwarder("vllm")
    harness.server.set_fault("stream_error", times=1, after_parts=3)
    invocation, normaliser = _start(harness, max_tokens=8)
    events = _events(invocation.chunks)
    assert events[-2]["error"]["code"] == "upstream_error"
    assert events[-2]["error"]["request_id"] == "rid-1"
    assert events[-1] == "[DONE]"
    assert normaliser.error is not None and normaliser.error.error_class == "upstream_error"
    assert (
        normaliser.error.log_detail
        == "service ModelStreamError http=None original=None attempts=1: Model stream broken (injected)."
    )


def test_a_stream_that_outlives_its_deadline_ends_in_band_with_a_timeout(make_forwarder):
    harness = make_forwarder("vllm", tokens_per_s=20, fill_max_tokens=True)
    invocation, normaliser = _start(harness, max_tokens=100, until=time.monotonic() + 0.3)
    events = _events(invocation.chunks)
    assert events[-2]["error"]["code"] == "timeout"
    assert normaliser.error is not None and normaliser.error.error_class == "timeout"
    assert len(events) < 100


def test_streaming_calls_name_the_inference_component(make_forwarder):
    harness = make_forwarder("vllm", env={"INFERENCE_COMPONENT_NAME": "ownllm-llm-component"})
    invocation, _ = _start(harness, max_tokens=2)
    assert _events(invocation.chunks)[-1] == "[DONE]"
    assert harness.server.requests[-1].headers["x-amzn-sagemaker-inference-component"] == "ownllm-llm-component"
