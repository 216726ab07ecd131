"""`--upstream`: a model you run (any OpenAI-compatible server) behind the real path, in each engine's shape.

A fake OpenAI-compatible server stands in for vLLM / llama.cpp / Ollama and records what
it was asked, so the translation on both sides is checked: what the forwarder sends in the
engine's shape reaches the upstream as OpenAI, and the upstream's answer (and its token
counts) comes back to the client.
"""

from __future__ import annotations

import json
import socket

import openai
import pytest

from ownllm.forwarder import contract
from ownllm.local.stack import LocalStackError
from ownllm.local.upstream import OpenAIUpstream

KEY = "test-key-0123456789"
ENGINES = contract().ENGINES


@pytest.fixture(params=ENGINES)
def upstream_stack(request, make_stack, fake_openai):
    stack = make_stack(engine=request.param, upstream=fake_openai.base_url, adapters=("sql-expert",))
    return stack, fake_openai


def _client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=KEY, max_retries=0, timeout=30)


def test_the_model_name_is_the_upstreams_own_when_not_given(upstream_stack):
    stack, _ = upstream_stack
    assert stack.model_name == "fake-model"
    assert [m.id for m in _client(stack).models.list()] == ["fake-model", "sql-expert"]


def test_chat_reaches_the_upstreams_chat_completions_as_openai_and_comes_back(upstream_stack):
    stack, fake = upstream_stack
    messages = [{"role": "user", "content": "tell me about lighthouses"}]
    reply = _client(stack).chat.completions.create(model="fake-model", messages=messages, max_tokens=16)
    assert reply.choices[0].message.content == "fake says: me about lighthouses"
    path, sent, _ = fake.requests[-1]
    assert path == "/v1/chat/completions"
    assert sent["model"] == "fake-model"  # never "tgi", whatever the engine's own chat route wants
    assert sent["stream"] is False
    assert sent["max_tokens"] == 16
    assert reply.usage.prompt_tokens == 4


def test_completions_reach_the_upstreams_completions_and_keep_its_token_counts(upstream_stack):
    stack, fake = upstream_stack
    raw = _client(stack).completions.with_raw_response.create(
        model="fake-model", prompt="Deep learning is a", max_tokens=7, temperature=0
    )
    reply = raw.parse()
    assert reply.choices[0].text == "fake says: learning is a"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 5)
    assert raw.headers["x-ownllm-usage"] == "reported"  # TGI/LMI details carry the upstream's counts
    path, sent, _ = fake.requests[-1]
    assert path == "/v1/completions"
    assert (sent["prompt"], sent["max_tokens"], sent["temperature"]) == ("Deep learning is a", 7, 0)


def test_an_adapter_name_is_passed_upstream_as_the_model(upstream_stack):
    stack, fake = upstream_stack
    _client(stack).completions.create(model="sql-expert", prompt="select", max_tokens=3)
    assert fake.requests[-1][1]["model"] == "sql-expert"


def test_an_upstream_refusal_reaches_the_client_as_the_deployed_apis_400_with_its_reason(upstream_stack):
    stack, _ = upstream_stack
    with pytest.raises(openai.BadRequestError) as caught:
        _client(stack).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "FAIL400 now"}]
        )
    assert caught.value.code == "model_rejected_request"
    assert "the fake refuses FAIL400" in caught.value.message


def test_the_banner_model_and_answers_say_upstream_not_stand_in(upstream_stack, api):
    stack, _ = upstream_stack
    assert not stack.is_stand_in
    assert api(stack.url, "GET", "/v1/models").headers["x-ownllm-local-backend"] == "upstream"


def test_an_upstream_that_goes_away_answers_502_and_never_hangs(make_stack, fake_openai, api):
    stack = make_stack(upstream=fake_openai.base_url)
    fake_openai.stop()
    reply = api(
        stack.url,
        "POST",
        "/v1/chat/completions",
        {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status == 502  # the function's own answer: a hang would end in the gateway's 504 instead
    assert reply.error["code"] == "upstream_error"


def test_an_unreachable_upstream_stops_the_stack_from_starting_with_one_clear_line(make_stack):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LocalStackError, match=f"cannot reach the upstream at http://127.0.0.1:{port}/v1"):
        make_stack(upstream=f"http://127.0.0.1:{port}/v1")


def test_an_upstream_key_is_sent_as_a_bearer_token(make_stack, fake_openai):
    fake_openai.api_key = "upstream-secret"
    stack = make_stack(upstream=fake_openai.base_url, upstream_key="upstream-secret")
    reply = _client(stack).chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "fake says: hi"
    assert fake_openai.requests[-1][2]["authorization"] == "Bearer upstream-secret"


# -- the translation itself, without a stack ------------------------------------------------------


def test_tgi_native_answers_are_an_array_with_details_and_one_prefill_entry_per_prompt_token(fake_openai):
    backend = OpenAIUpstream(fake_openai.base_url, "tgi", model="fake-model")
    body = {
        "inputs": "one two three",
        "parameters": {
            "max_new_tokens": 5,
            "details": True,
            "decoder_input_details": True,
            "stop": ["\n"],
            "do_sample": False,
            "adapter_id": None,
        },
    }
    status, _, data = backend("endpoint", json.dumps(body).encode(), {})
    answer = json.loads(data)
    assert status == 200
    assert isinstance(answer, list)
    assert answer[0]["generated_text"] == "fake says: one two three"
    assert answer[0]["details"]["generated_tokens"] == 5
    assert len(answer[0]["details"]["prefill"]) == 3
    assert answer[0]["details"]["finish_reason"] == "eos_token"
    sent = fake_openai.requests[-1][1]
    assert (sent["stop"], sent["temperature"], sent["model"]) == (["\n"], 0.0, "fake-model")


def test_lmi_native_answers_are_an_object_and_its_adapter_becomes_the_model(fake_openai):
    backend = OpenAIUpstream(fake_openai.base_url, "lmi", model="fake-model", adapters=("sql-expert",))
    body = {"inputs": "x", "parameters": {"max_new_tokens": 2, "stop_sequences": ["."]}, "adapters": "sql-expert"}
    status, _, data = backend("endpoint", json.dumps(body).encode(), {})
    assert status == 200
    assert json.loads(data) == {"generated_text": "fake says: x"}
    sent = fake_openai.requests[-1][1]
    assert (sent["model"], sent["stop"], sent["max_tokens"]) == ("sql-expert", ["."], 2)


@pytest.mark.parametrize(("engine", "shape"), [("vllm", "message"), ("tgi", "error"), ("lmi", "error")])
def test_upstream_errors_come_back_in_the_engines_own_error_shape(fake_openai, engine, shape):
    backend = OpenAIUpstream(fake_openai.base_url, engine, model="fake-model")
    body = {"messages": [{"role": "user", "content": "FAIL400"}]}
    status, _, data = backend("endpoint", json.dumps(body).encode(), {})
    assert status == 400
    assert json.loads(data)[shape] == "the fake refuses FAIL400"


@pytest.mark.parametrize("url", ["notaurl", "ftp://host/v1", "http://", "http:///v1", "http://host:99999/v1"])
def test_an_upstream_url_without_an_http_host_and_port_is_refused_before_any_request(url):
    from ownllm.local.upstream import UpstreamError

    with pytest.raises(UpstreamError) as raised:
        OpenAIUpstream(url)
    assert str(raised.value) == (
        f"upstream URL {url!r} is not an http:// or https:// URL with a host (and a port up to 65535), "
        "e.g. http://127.0.0.1:8000/v1"
    )
