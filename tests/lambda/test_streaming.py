"""Each engine's token stream, cut into SageMaker PayloadParts anywhere, becomes the same
OpenAI chunks: our id, the model the client named, OpenAI's finish reasons, usage on request,
and failures as a status before the first chunk or an in-band error event after it."""

from __future__ import annotations

import json

import config as cfg_module
import errors
import pytest
import streaming
import translate
import validate
from hypothesis import given, settings
from hypothesis import strategies as st
from lambda_testkit import MODEL

CREATED = 1_700_000_000


def _cfg(engine: str) -> cfg_module.Config:
    return cfg_module.Config(endpoint_name="e", engine=engine, model_name=MODEL, adapters=("sql-expert",))


def _request(kind: str = validate.CHAT, engine: str = "vllm", **fields) -> validate.Request:
    body = {"messages": [{"role": "user", "content": "Say hello"}]} if kind == validate.CHAT else {"prompt": "Say"}
    body.update(stream=True, **fields)
    return validate.parse(kind, json.dumps(body), _cfg(engine))


def _normaliser(kind: str = validate.CHAT, engine: str = "vllm", **fields) -> streaming.Normaliser:
    return streaming.Normaliser(_request(kind, engine, **fields), engine, "req-1", created=CREATED)


def _run(normaliser: streaming.Normaliser, parts: list[bytes]) -> bytes:
    return b"".join(streaming.sse_stream(parts, normaliser, "req-1"))


def _events(wire: bytes) -> list:
    """The client's view: each `data:` payload, JSON-decoded ([DONE] kept as the string)."""
    out = []
    for block in wire.decode().split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def _sse(*events: object, space: str = " ") -> bytes:
    return b"".join(f"data:{space}{e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def _jsonl(*events: dict) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events) + b"\n"


def _vllm_chat(*deltas: dict, finish: str = "stop", usage: dict | None = None) -> list[dict]:
    base = {"id": "chatcmpl-engine", "object": "chat.completion.chunk", "created": 5, "model": "served-name"}
    choice = {"index": 0, "logprobs": None, "finish_reason": None}
    events = [{**base, "choices": [{**choice, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{**choice, "delta": d}]} for d in deltas]
    events.append({**base, "choices": [{**choice, "delta": {}, "finish_reason": finish, "stop_reason": None}]})
    if usage is not None:
        events.append({**base, "choices": [], "usage": usage})
    return events


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
VLLM_CHAT = _sse(*_vllm_chat({"content": "Hel"}, {"content": "lo ✓"}, usage=USAGE), "[DONE]")
LMI_CHAT = _jsonl(*_vllm_chat({"content": "Hel"}, {"content": "lo ✓"}, usage=USAGE))


def _chunk(fields: dict, finish=None, usage_null: bool = False) -> dict:
    chunk = {"id": "chatcmpl-req-1", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL}
    if usage_null:
        chunk["usage"] = None
    chunk["choices"] = [{"index": 0, **fields, "logprobs": None, "finish_reason": finish}]
    return chunk


def _tgi_token(i: int, text: str, special: bool = False, details: dict | None = None, final: str | None = None):
    return {
        "index": i,
        "token": {"id": 100 + i, "text": text, "logprob": -0.1, "special": special},
        "generated_text": final,
        "details": details,
    }


TGI_NATIVE = _sse(
    _tgi_token(1, "Hello"),
    _tgi_token(2, " world"),
    _tgi_token(3, " END"),
    _tgi_token(
        4,
        "!",
        details={"finish_reason": "stop_sequence", "generated_tokens": 4, "seed": None, "input_length": 2},
        final="Hello world END!",
    ),
)


# -- shapes ---------------------------------------------------------------------------------


def test_a_vllm_chat_stream_becomes_openai_chunks_with_our_id_and_the_asked_model():
    wire = _run(_normaliser(), [VLLM_CHAT])
    assert _events(wire) == [
        _chunk({"delta": {"role": "assistant", "content": ""}}),
        _chunk({"delta": {"content": "Hel"}}),
        _chunk({"delta": {"content": "lo ✓"}}),
        _chunk({"delta": {}}, "stop"),
        "[DONE]",
    ]


def test_lmi_json_lines_without_data_or_done_give_the_same_chunks_as_vllms_sse():
    assert _run(_normaliser(engine="lmi"), [LMI_CHAT]) == _run(_normaliser(), [VLLM_CHAT])


def test_include_usage_puts_usage_null_on_each_chunk_and_the_engines_counts_last():
    normaliser = _normaliser(stream_options={"include_usage": True})
    events = _events(_run(normaliser, [VLLM_CHAT]))
    assert [e["usage"] for e in events[:-2]] == [None, None, None, None]
    assert events[-2] == {
        "id": "chatcmpl-req-1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "usage": USAGE,
        "choices": [],
    }
    assert events[-1] == "[DONE]"
    assert normaliser.usage_source == translate.REPORTED


def test_usage_is_estimated_when_the_engine_does_not_count():
    """`Hello ✓` is 9 bytes of UTF-8: 3 tokens at 4 bytes per token; the prompt estimate is
    validate's: 3 to prime + 4 per message + 3 for "Say hello" = 10."""
    wire = _sse(*_vllm_chat({"content": "Hello ✓"}), "[DONE]")
    normaliser = _normaliser(stream_options={"include_usage": True})
    events = _events(_run(normaliser, [wire]))
    assert events[-2]["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert normaliser.usage_source == translate.ESTIMATED


def test_a_vllm_completion_stream_becomes_text_completion_chunks():
    base = {"id": "cmpl-x", "object": "text_completion", "created": 5, "model": "served-name"}
    wire = _sse(
        {**base, "choices": [{"index": 0, "text": " a", "logprobs": None, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "text": " b", "logprobs": None, "finish_reason": "length"}]},
        "[DONE]",
    )
    text_chunk = {"id": "cmpl-req-1", "object": "text_completion", "created": CREATED, "model": MODEL}
    assert _events(_run(_normaliser(validate.COMPLETION), [wire])) == [
        {**text_chunk, "choices": [{"index": 0, "text": " a", "logprobs": None, "finish_reason": None}]},
        {**text_chunk, "choices": [{"index": 0, "text": " b", "logprobs": None, "finish_reason": None}]},
        {**text_chunk, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}]},
        "[DONE]",
    ]


def test_tgi_native_tokens_become_text_without_the_stop_sequence_and_with_tgis_counts():
    normaliser = _normaliser(validate.COMPLETION, "tgi", stop=["END!"], stream_options={"include_usage": True})
    events = _events(_run(normaliser, [TGI_NATIVE]))
    assert "".join(e["choices"][0]["text"] for e in events[:-2]) == "Hello world "
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert normaliser.usage_source == translate.REPORTED


def test_tgi_special_tokens_are_left_out_of_the_text_and_eos_token_finishes_as_stop():
    wire = _sse(
        _tgi_token(1, "Hi"),
        _tgi_token(2, "</s>", special=True, details={"finish_reason": "eos_token", "generated_tokens": 2}, final="Hi"),
    )
    events = _events(_run(_normaliser(validate.COMPLETION, "tgi"), [wire]))
    assert [(e["choices"][0]["text"], e["choices"][0]["finish_reason"]) for e in events[:-1]] == [
        ("Hi", None),
        ("", "stop"),
    ]


def test_tgi_chat_sse_with_keep_alive_comments_and_no_space_after_data_is_read():
    events = _vllm_chat({"role": "assistant", "content": "Yo"}, finish="eos_token")
    wire = b":\n\n" + _sse(*events, "[DONE]", space="")
    assert _events(_run(_normaliser(engine="tgi"), [wire])) == [
        _chunk({"delta": {"role": "assistant", "content": ""}}),
        _chunk({"delta": {"content": "Yo"}}),
        _chunk({"delta": {}}, "stop"),
        "[DONE]",
    ]


def test_tool_call_deltas_pass_through_and_a_stop_after_them_finishes_as_tool_calls():
    call = [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    wire = _sse(*_vllm_chat({"tool_calls": call}), "[DONE]")
    events = _events(_run(_normaliser(), [wire]))
    assert events[1] == _chunk({"delta": {"tool_calls": call}})
    assert events[2] == _chunk({"delta": {}}, "tool_calls")


# -- failures -------------------------------------------------------------------------------


def test_an_engine_error_before_any_chunk_is_raised_and_maps_to_the_engines_status():
    wire = _sse({"error": "Input validation error: inputs too long", "error_type": "validation"})
    with pytest.raises(errors.UpstreamFailure) as caught:
        _run(_normaliser(validate.COMPLETION, "tgi"), [wire])
    answer = errors.map_upstream(caught.value)
    assert (answer.status, answer.code, answer.message) == (
        422,
        "model_rejected_request",
        "The model rejected the request: Input validation error: inputs too long",
    )


def test_an_engine_error_after_the_first_chunk_ends_the_stream_in_band_then_done():
    events = _vllm_chat({"content": "Hel"})[:2] + [{"error": {"message": "CUDA out of memory", "code": 500}}]
    normaliser = _normaliser()
    wire = _run(normaliser, [_sse(*events)])
    assert _events(wire)[-2:] == [
        {
            "error": {
                "message": "The model server failed (status 500).",
                "type": "server_error",
                "param": None,
                "code": "upstream_error",
                "request_id": "req-1",
            }
        },
        "[DONE]",
    ]
    assert normaliser.error is not None and normaliser.error.error_class == "upstream_error"


def test_lmis_424_failure_line_is_the_engines_own_failure_not_a_client_error():
    wire = _jsonl(*_vllm_chat({"content": "Hel"})[:2]) + b'{"code": 424, "error": "formatter failed"}'
    normaliser = _normaliser(engine="lmi")
    _run(normaliser, [wire])
    assert normaliser.error is not None
    assert (normaliser.error.status, normaliser.error.code) == (502, "upstream_error")


def test_a_stream_that_ends_without_a_finish_reason_ends_with_a_bad_upstream_response_event():
    normaliser = _normaliser(engine="lmi")
    wire = _run(normaliser, [_jsonl(*_vllm_chat({"content": "Hel"})[:2])])
    assert _events(wire)[-2]["error"]["code"] == "bad_upstream_response"
    assert normaliser.error is not None and normaliser.error.log_detail == "the stream ended before a finish_reason"


def test_a_transport_failure_mid_stream_ends_in_band_with_its_mapped_error():
    def parts():
        yield _sse(*_vllm_chat({"content": "Hel"})[:2])
        raise errors.UpstreamFailure("service", code="ModelStreamError", message="StreamBroken")

    normaliser = _normaliser()
    events = _events(b"".join(streaming.sse_stream(parts(), normaliser, "req-1")))
    assert [e if e == "[DONE]" else e.get("error", {}).get("code") for e in events[-2:]] == ["upstream_error", "[DONE]"]
    assert [e["choices"][0]["delta"] for e in events[:2]] == [{"role": "assistant", "content": ""}, {"content": "Hel"}]


def test_an_event_that_is_not_json_before_any_chunk_is_a_bad_upstream_response():
    with pytest.raises(errors.ApiError) as caught:
        _run(_normaliser(), [b"data: <html>502</html>\n\n"])
    assert (caught.value.status, caught.value.code) == (502, "bad_upstream_response")


# -- request bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "kind", "extra"),
    [
        ("vllm", validate.CHAT, {"stream_options": {"include_usage": True}}),
        ("lmi", validate.COMPLETION, {"stream_options": {"include_usage": True}}),
        ("tgi", validate.CHAT, {"stream_options": {"include_usage": True}}),
        ("tgi", validate.COMPLETION, {}),
    ],
)
def test_a_streaming_body_asks_the_engine_to_stream_and_openai_shaped_engines_to_count(engine, kind, extra):
    req = _request(kind, engine)
    body = json.loads(translate.engine_body(req, _cfg(engine), stream=True))
    assert body["stream"] is True
    assert {k: body[k] for k in extra} == extra
    assert ("stream_options" in body) == bool(extra)  # native TGI bodies take no OpenAI stream options


# -- any split ------------------------------------------------------------------------------

STREAMS = {
    "vllm chat": (validate.CHAT, "vllm", VLLM_CHAT),
    "lmi chat": (validate.CHAT, "lmi", LMI_CHAT),
    "tgi native": (validate.COMPLETION, "tgi", TGI_NATIVE),
    "vllm error mid-stream": (
        validate.CHAT,
        "vllm",
        _sse(*_vllm_chat({"content": "é"})[:2], {"error": {"message": "boom", "code": 500}}),
    ),
}


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)), cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_any_split_of_an_engine_stream_into_parts_gives_the_same_chunks(name, cuts):
    kind, engine, wire = STREAMS[name]
    whole = _run(streaming.Normaliser(_request(kind, engine, stop=["END!"]), engine, "req-1", CREATED), [wire])
    parts = _split(wire, cuts)
    assert b"".join(parts) == wire
    normaliser = streaming.Normaliser(_request(kind, engine, stop=["END!"]), engine, "req-1", CREATED)
    assert _run(normaliser, parts) == whole


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None, categories=None), max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": json_values,
                    "delta": json_values | st.fixed_dictionaries({}, optional={"content": json_values}),
                    "text": json_values,
                    "finish_reason": json_values,
                },
            ),
            max_size=2,
        )
        | json_values,
        "token": json_values | st.fixed_dictionaries({}, optional={"text": json_values, "special": json_values}),
        "details": json_values,
        "usage": json_values,
        "error": json_values,
        "generated_text": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(event_like | json_values, max_size=6),
    engine=st.sampled_from(["vllm", "lmi", "tgi"]),
    kind=st.sampled_from([validate.CHAT, validate.COMPLETION]),
    junk=st.binary(max_size=20),
)
def test_any_engine_stream_is_normalised_or_fails_as_a_status_or_an_in_band_error(events, engine, kind, junk):
    lines = [json.dumps(e) for e in events]
    wire = ("".join(f"data: {line}\n\n" for line in lines) if engine != "lmi" else "\n".join(lines)).encode() + junk
    normaliser = streaming.Normaliser(_request(kind, engine), engine, "req-1", CREATED)
    try:
        out = _run(normaliser, [wire])
    except (errors.UpstreamFailure, errors.ApiError) as exc:
        answer = errors.map_upstream(exc) if isinstance(exc, errors.UpstreamFailure) else exc
        assert answer.status >= 400
        return
    out.decode("utf-8")  # always valid UTF-8
    assert out.endswith(streaming.DONE)
    if normaliser.error is None:
        assert normaliser.finish in ("stop", "length", "tool_calls", "content_filter", "function_call")


def test_a_lone_surrogate_the_engine_escaped_reaches_the_client_as_valid_utf8():
    wire = _sse(*_vllm_chat({"content": "a\ud800b"}), "[DONE]")
    assert _events(_run(_normaliser(), [wire]))[1]["choices"][0]["delta"] == {"content": "a?b"}


def test_lmis_async_failure_object_before_any_chunk_is_the_engines_failure():
    wire = b'{"code": 500, "message": "Async Inference Failure engine dead", "properties": {}}'
    with pytest.raises(errors.UpstreamFailure) as caught:
        _run(_normaliser(engine="lmi"), [wire])
    answer = errors.map_upstream(caught.value)
    assert (answer.status, answer.code, caught.value.original_status) == (502, "upstream_error", 500)
