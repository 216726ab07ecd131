"""Each engine's wire format (lambda/forwarder/wire.py) is described once and read by both
sides: what the description frames, the forwarder reads back; what it says an engine fails
with, the forwarder maps to the engine's status; and the stand-in container, which builds its
bodies and streams from the same description, answers the recorded engine contracts
(tests/lambda/contracts) with the recorded shapes, and streams them as the description says."""

from __future__ import annotations

import json
from pathlib import Path

import config as settings
import contract
import errors
import pytest
import streaming
import translate
import validate
import wire
from lambda_testkit import MODEL

from ownllm.local.standin import StandIn

CONTRACTS = sorted((Path(__file__).parent / "contracts").glob("*.json"))
ROUTES = {"chat": validate.CHAT, "completion": validate.COMPLETION}
# Recorded answers the stand-in does not produce, and why.
NOT_STAND_IN = {"vllm_chat_tool_call": "the stand-in never calls tools"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _config(recorded: dict) -> settings.Config:
    return settings.Config(
        endpoint_name="ownllm-endpoint",
        engine=recorded["engine"],
        model_name=MODEL,
        adapters=tuple(recorded.get("adapters", ())),
    )


def _shape(value: object) -> object:
    """JSON's structure without its values: keys, types, the first item of each list."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if value is None or isinstance(value, (bool, str)):
        return type(value).__name__
    return "number"


def _assert_same_shape(recorded: object, standin: object, where: str = "answer") -> None:
    """Every key the engine's recorded answer has, the stand-in's has, with the same type."""
    if isinstance(recorded, dict):
        assert isinstance(standin, dict), f"{where}: the stand-in sends {standin!r}, the engine an object"
        for key, value in recorded.items():
            assert key in standin, f"{where}.{key} is missing from the stand-in's answer"
            _assert_same_shape(value, standin[key], f"{where}.{key}")
    elif isinstance(recorded, list) and recorded:
        assert isinstance(standin, list) and standin, f"{where}: the stand-in sends {standin!r}, the engine a list"
        _assert_same_shape(recorded[0], standin[0], f"{where}[0]")
    else:
        assert recorded == standin, f"{where}: the engine sends {recorded}, the stand-in {standin}"


def _standin(recorded: dict) -> StandIn:
    return StandIn(recorded["engine"], model_name=MODEL, adapters=tuple(recorded.get("adapters", ())))


# -- one description ------------------------------------------------------------------------


def test_the_wire_describes_exactly_the_contracts_engines():
    assert tuple(wire.WIRES) == contract.ENGINES


@pytest.mark.parametrize("engine", contract.ENGINES)
@pytest.mark.parametrize("kind", [validate.CHAT, validate.COMPLETION])
def test_what_the_wire_frames_reads_back_event_by_event_however_it_is_cut(engine, kind):
    described = wire.for_engine(engine)
    route = described.route(kind)
    events = [{"n": 1, "text": "ä ✓"}, {"n": 2, "text": "\u00e9"}]
    stream = b"".join(described.frame(json.dumps(e, ensure_ascii=False).encode()) for e in events)
    stream += described.end(route)
    expected = [json.dumps(e, ensure_ascii=False) for e in events] + (["[DONE]"] if route.stream_done else [])
    for cut in range(len(stream) + 1):
        reader = described.reader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) + reader.close() == expected


@pytest.mark.parametrize(
    ("engine", "kind", "status"),
    [
        ("vllm", validate.CHAT, 400),
        ("vllm", validate.COMPLETION, 404),
        ("tgi", validate.CHAT, 422),
        ("tgi", validate.COMPLETION, 422),
        ("tgi", validate.COMPLETION, 429),
        # LMI says 424 ("failed") for every failure inside a stream: its own failure, a 500.
        ("lmi", validate.CHAT, 500),
        ("lmi", validate.COMPLETION, 500),
    ],
)
def test_an_engines_described_stream_failure_reaches_the_forwarder_with_its_status(engine, kind, status):
    described = wire.for_engine(engine)
    event = described.stream_error_event(described.route(kind), status, "it broke")
    body = {"messages": [{"role": "user", "content": "hi"}]} if kind == validate.CHAT else {"prompt": "hi"}
    req = validate.parse(kind, json.dumps({**body, "stream": True}), _config({"engine": engine}))
    normaliser = streaming.Normaliser(req, engine, "rid")
    normaliser.feed(described.frame(json.dumps(event).encode()))
    assert isinstance(normaliser.failure, errors.UpstreamFailure)
    assert (normaliser.failure.code, normaliser.failure.original_status) == ("ModelError", status)


@pytest.mark.parametrize("engine", contract.ENGINES)
@pytest.mark.parametrize("status", [400, 404, 422, 429, 500])
def test_an_engines_described_error_body_gives_the_forwarder_its_message(engine, status):
    body = wire.for_engine(engine).error_body(status, "no such adapter")
    assert errors.engine_message(json.dumps(body)) == "no such adapter"


# -- the recorded contracts, against the stand-in --------------------------------------------


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_stand_in_answers_the_recorded_engine_request_in_the_recorded_shape(path):
    if path.stem in NOT_STAND_IN:
        pytest.skip(NOT_STAND_IN[path.stem])
    recorded = _load(path)
    status, headers, body = _standin(recorded)("ownllm-endpoint", json.dumps(recorded["engine_request"]).encode(), {})
    assert (status, headers) == (200, {"Content-Type": "application/json"})
    _assert_same_shape(_shape(recorded["engine_response"]), _shape(json.loads(body)))


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_stand_in_streams_the_recorded_request_as_the_wire_describes(path):
    """Framing, terminator, event keys and content type as wire.py says; and the forwarder turns
    the stream into the same text the stand-in answers without streaming."""
    recorded = _load(path)
    engine, kind = recorded["engine"], ROUTES[recorded["route"]]
    described = wire.for_engine(engine)
    route = described.route(kind)
    config = _config(recorded)
    req = validate.parse(kind, json.dumps({**recorded["openai_request"], "stream": True}), config)
    request_body = translate.engine_body(req, config, stream=True)
    standin = _standin(recorded)

    status, headers, pieces = standin.stream("ownllm-endpoint", request_body, {})
    stream = b"".join(pieces)
    assert (status, headers) == (200, {"Content-Type": described.stream_content_type})
    assert stream.endswith(described.end(route))
    reader = described.reader()
    events = reader.feed(stream) + reader.close()
    assert (events[-1] == "[DONE]") is route.stream_done
    for event in (json.loads(e) for e in events if e != "[DONE]"):
        assert set(event) >= wire.STREAM_EVENT_KEYS[route.stream_event], event
        if route.stream_event == wire.TGI_TOKEN:
            assert set(event["token"]) == wire.TGI_TOKEN_KEYS

    normaliser = streaming.Normaliser(req, engine, "rid")
    list(streaming.sse_stream([stream], normaliser, "rid"))
    whole = dict(json.loads(request_body), stream=False)
    whole.pop("stream_options", None)
    _, _, answer = standin("ownllm-endpoint", json.dumps(whole).encode(), {})
    assert normaliser.failure is None
    assert normaliser.text == translate.from_engine(req, config, answer, "rid").text
