"""The drop-in promise, checked with the official `openai` client: change base_url, keep the code.

Over real HTTP through the local API (gateway rules, the real forwarder Lambda, each engine's
wire shape), so what the client parses is what the deployed API sends. Only base_url and
api_key differ from the deployed API: OpenAI(base_url=URL + "/v1", api_key=KEY).
"""

from __future__ import annotations

import re

import openai
import pytest

KEY = "test-key-0123456789"
MODEL = "ownllm-stand-in"
HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
def client(any_engine) -> openai.OpenAI:
    return openai.OpenAI(base_url=any_engine.base_url, api_key=KEY, max_retries=0, timeout=30)


def test_the_base_url_is_the_local_apis_origin_and_v1(any_engine):
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", any_engine.url)
    assert any_engine.base_url == f"http://127.0.0.1:{any_engine.gateway.port}/v1"


def test_chat_completions_create_answers_through_every_engine_shape(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, max_tokens=8, temperature=0.2)
    reply = raw.parse()
    assert (reply.object, reply.model) == ("chat.completion", MODEL)
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.startswith(f"[stand-in for {MODEL}]")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8
    assert reply._request_id == raw.headers["x-amzn-requestid"]  # the client reads x-request-id: API Gateway's id


def test_completions_create_answers_through_every_engine_shape(client):
    reply = client.completions.create(model=MODEL, prompt="Deep learning is", max_tokens=5)
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith(f"[stand-in for {MODEL}]")
    assert reply.usage.completion_tokens == 5


def test_chat_stream_true_is_parsed_by_the_client_into_the_same_text(client):
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=6)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 6


def test_completions_stream_true_is_parsed_by_the_client_into_the_same_text(client):
    whole = client.completions.create(model=MODEL, prompt="Hi", max_tokens=4)
    chunks = list(client.completions.create(model=MODEL, prompt="Hi", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_an_adapter_is_a_model_name_the_client_can_use(client):
    reply = client.chat.completions.create(model="sql-expert", messages=HELLO, max_tokens=4)
    assert reply.model == "sql-expert"
    assert reply.choices[0].message.content.startswith("[stand-in for sql-expert]")


def test_models_list_and_retrieve_name_the_stand_in_and_its_adapter(client):
    assert [m.id for m in client.models.list()] == [MODEL, "sql-expert"]
    assert client.models.retrieve(MODEL).id == MODEL
    assert client.models.retrieve("sql-expert").id == "sql-expert"


def test_an_unknown_model_raises_not_found_naming_the_model_field(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")


def test_an_invalid_request_raises_bad_request_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "Hi"}])
    assert caught.value.param == "messages[0].role"


def test_max_tokens_above_the_cap_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=100_000)
    assert (caught.value.code, caught.value.param) == ("max_tokens_exceeded", "max_tokens")


def test_a_wrong_key_raises_permission_denied_like_the_deployed_api(stack):
    client = openai.OpenAI(base_url=stack.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.models.list()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
