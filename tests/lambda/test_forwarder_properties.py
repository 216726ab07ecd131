"""Whatever a client sends, the forwarder answers a 2xx or a 4xx in OpenAI's error shape:
never a 5xx, never an uncaught exception. Hypothesis generates the bodies."""

from __future__ import annotations

import json
import os

import config as cfg_module
import errors
import pytest
import translate
import validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_testkit import MODEL, FakeContext, rest_event

# OWNLLM_FUZZ_EXAMPLES=2000 for a longer hunt than the suite's default.
PROPERTY = settings(
    max_examples=int(os.environ.get("OWNLLM_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CFG = cfg_module.Config(endpoint_name="e", engine="tgi", model_name=MODEL, adapters=("a",))

# Text includes lone surrogates: JSON can escape them (\\ud800), UTF-8 cannot carry them.
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "wizard", "", "USER"]) | st.text(
    max_size=8
)
contents = (
    st.text(max_size=60)
    | json_values
    | st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image_url", "x"]), "text": st.text(max_size=20) | json_values}
        ),
        max_size=3,
    )
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles},
        optional={"content": contents, "tool_call_id": json_values, "name": json_values, "tool_calls": json_values},
    ),
    max_size=4,
)
chat_like = st.fixed_dictionaries(
    {"messages": messages | json_values},
    optional={
        "model": st.sampled_from([MODEL, "a", "nope", ""]) | json_values,
        "max_tokens": st.integers(-5, 10_000) | json_values,
        "temperature": st.floats(-1, 3) | json_values,
        "top_p": st.floats(-0.5, 1.5) | json_values,
        "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=20) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values}) | json_values,
        "n": st.integers(-2, 3) | json_values,
        "seed": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "response_format": json_values,
        "logprobs": json_values,
    },
)
completion_like = st.fixed_dictionaries(
    {"prompt": st.text(max_size=60) | st.lists(st.text(max_size=10), max_size=3) | json_values},
    optional={
        "model": json_values,
        "max_tokens": st.integers(-5, 10_000) | json_values,
        "echo": json_values,
        "suffix": json_values,
        "stream": json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_target(forwarder_app):
    """One forwarder and one local runtime for all examples (TGI: the strictest engine)."""
    import upstream
    from lambda_testkit import BASE_ENV, FAKE_AWS

    from ownllm.local.runtime import RuntimeServer, StandIn

    server = RuntimeServer(StandIn(engine="tgi", model_name=MODEL, adapters=("a",))).start()
    env = {**FAKE_AWS, **BASE_ENV, "ENGINE": "tgi", "ADAPTERS": "a", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    previous = forwarder_app.CONFIG, forwarder_app.CLIENT
    cfg = cfg_module.load(env)
    forwarder_app.CONFIG = cfg
    forwarder_app.CLIENT = upstream.create_client(cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_attempts)
    yield forwarder_app
    forwarder_app.CONFIG, forwarder_app.CLIENT = previous
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def _assert_client_safe(app, event):
    response = app.handler(event, FakeContext())
    status = response["statusCode"]
    assert status < 500, response["body"]
    body = json.loads(response["body"]) if not response["body"].startswith("data: ") else None
    if status >= 400:
        assert set(body["error"]) >= {"message", "type", "param", "code"}
    return status


@PROPERTY
@given(body=json_values, path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_any_json_body_gets_a_2xx_or_a_4xx(fuzz_target, body, path):
    _assert_client_safe(fuzz_target, rest_event("POST", path, json.dumps(body)))


@PROPERTY
@given(body=chat_like)
def test_any_chat_shaped_body_gets_a_2xx_or_a_4xx(fuzz_target, body):
    _assert_client_safe(fuzz_target, rest_event("POST", "/v1/chat/completions", json.dumps(body)))


@PROPERTY
@given(body=completion_like)
def test_any_completion_shaped_body_gets_a_2xx_or_a_4xx(fuzz_target, body):
    _assert_client_safe(fuzz_target, rest_event("POST", "/v1/completions", json.dumps(body)))


@PROPERTY
@given(raw=st.binary(max_size=300), encoded=st.booleans())
def test_any_bytes_get_a_4xx(fuzz_target, raw, encoded):
    status = _assert_client_safe(fuzz_target, rest_event("POST", "/v1/chat/completions", raw, base64_body=encoded))
    assert 400 <= status < 500


@PROPERTY
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/models", "/models", "/v1"])
    | st.text(st.characters(codec="ascii", exclude_characters="?#"), max_size=30).map(lambda p: "/" + p),
)
def test_any_method_and_path_gets_an_answer_below_500(fuzz_target, method, path):
    _assert_client_safe(fuzz_target, rest_event(method, path, None))


# -- the pure layers on their own: many more examples, no I/O ------------------------------


@settings(max_examples=400, deadline=None)
@given(
    raw=st.binary(max_size=400)
    | json_values.map(lambda v: json.dumps(v).encode())
    | chat_like.map(lambda v: json.dumps(v).encode()),
    kind=st.sampled_from([validate.CHAT, validate.COMPLETION]),
)
def test_the_validator_raises_nothing_but_client_errors(raw, kind):
    try:
        req = validate.parse(kind, raw, CFG)
    except errors.ApiError as exc:
        assert 400 <= exc.status < 500
        return
    for engine in ("vllm", "lmi", "tgi"):  # whatever passes validation translates for every engine
        json.dumps(translate.to_engine(req, cfg_module.Config(endpoint_name="e", engine=engine, model_name=MODEL)))


@settings(max_examples=300, deadline=None)
@given(answer=json_values, kind=st.sampled_from([validate.CHAT, validate.COMPLETION]))
def test_any_engine_answer_is_normalised_or_reported_as_a_502(answer, kind):
    raw = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}]} if kind == validate.CHAT else {"prompt": "hi"}
    ).encode()
    req = validate.parse(kind, raw, CFG)
    try:
        done = translate.from_engine(req, CFG, json.dumps(answer).encode(), "rid")
    except errors.ApiError as exc:
        assert exc.status == 502
        return
    usage = done.body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    translate.to_sse(done.body, include_usage=True)
