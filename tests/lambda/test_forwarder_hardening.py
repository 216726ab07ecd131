"""What an adversarial review found on the request path: engine text stays out of logs and
client answers, oversized engine answers are refused, numbers that are not finite never reach
the engine."""

from __future__ import annotations

import json

import errors
import translate
import upstream
import validate


def test_an_unreadable_engine_answer_logs_its_size_and_not_its_text(forwarder, logs):
    secret = "the prompt was: my password is hunter2"
    forwarder.server.backend = lambda _e, _b, _h: (200, {"Content-Type": "application/json"}, secret.encode())
    answer = forwarder.chat(max_tokens=4)
    assert (answer.status, answer.error["code"]) == (502, "bad_upstream_response")
    assert "hunter2" not in json.dumps(logs())
    assert any(f"not JSON ({len(secret)} bytes)" in json.dumps(line) for line in logs())


def test_an_engine_answer_over_the_cap_is_a_502_not_a_lambda_crash(forwarder):
    huge = b'{"x": "' + b"a" * (upstream.MAX_ANSWER_BYTES + 10) + b'"}'
    forwarder.server.backend = lambda _e, _b, _h: (200, {"Content-Type": "application/json"}, huge)
    answer = forwarder.chat(max_tokens=4)
    assert (answer.status, answer.error["code"]) == (502, "bad_upstream_response")


def test_engine_error_text_that_is_not_its_json_error_is_not_shown_to_clients():
    failure = errors.UpstreamFailure("service", "ModelError", 424, "", 400, "Traceback (most recent call last): ...")
    mapped = errors.map_upstream(failure)
    assert (mapped.status, mapped.message) == (
        400,
        "The model rejected the request: the model server rejected the request",
    )


def test_a_number_too_large_for_a_float_is_refused_like_infinity(forwarder):
    body = (
        '{"model": "Qwen/Qwen2.5-7B-Instruct", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}'
    )
    answer = forwarder.call(body=body)
    assert (answer.status, answer.error["code"]) == (400, "invalid_json")
    tools = '{"model": "Qwen/Qwen2.5-7B-Instruct", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"maximum": 1e999}}}]}'
    assert forwarder.call(body=tools).status == 400
    assert forwarder.server.requests == type(forwarder.server.requests)(maxlen=forwarder.server.requests.maxlen)


def test_the_engine_body_encoder_refuses_non_finite_numbers():
    import pytest

    with pytest.raises(ValueError):
        translate._ENCODER.encode({"x": float("inf")})
    assert validate._DECODER.decode('{"x": 1.5e10}') == {"x": 1.5e10}


def test_tools_tool_calls_and_response_format_count_towards_the_prompt_limit(forwarder):
    """MAX_INPUT_TOKENS is 4096 in these tests: 20,000 bytes of tool schema are about 5,000 tokens."""
    schema = {"type": "object", "description": "x" * 20_000}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    answer = forwarder.chat(max_tokens=4, tools=tools)
    assert (answer.status, answer.error["code"], answer.error["param"]) == (400, "context_length_exceeded", "messages")
    answer = forwarder.chat(max_tokens=4, response_format={"type": "json_schema", "json_schema": schema})
    assert answer.error["code"] == "context_length_exceeded"
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "y" * 20_000}}]
    body = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "max_tokens": 4,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
    }
    assert forwarder.call(body=body).error["code"] == "context_length_exceeded"
