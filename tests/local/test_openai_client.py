"""The official `openai` client against the local API, over real HTTP, for every engine's wire shape.

Only base_url and api_key change from the deployed API: OpenAI(base_url=URL + "/v1", api_key=KEY).
"""

from __future__ import annotations

import openai
import pytest

KEY = "test-key-0123456789"


@pytest.fixture
def client(any_engine) -> openai.OpenAI:
    return openai.OpenAI(base_url=any_engine.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def test_chat_completions_create_answers_through_every_engine_shape(client):
    reply = client.chat.completions.create(
        model="ownllm-stand-in", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8
    )
    assert reply.object == "chat.completion"
    assert reply.model == "ownllm-stand-in"
    assert reply.choices[0].message.content.startswith("[stand-in for ownllm-stand-in]")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8


def test_completions_create_answers_through_every_engine_shape(client):
    reply = client.completions.create(model="ownllm-stand-in", prompt="Deep learning is", max_tokens=5)
    assert reply.object == "text_completion"
    assert reply.choices[0].text.startswith("[stand-in for ownllm-stand-in]")
    assert reply.usage.completion_tokens == 5


def test_chat_stream_true_is_parsed_by_the_client_into_the_same_text(client):
    whole = client.chat.completions.create(
        model="ownllm-stand-in", messages=[{"role": "user", "content": "Hi"}], max_tokens=6
    )
    chunks = list(
        client.chat.completions.create(
            model="ownllm-stand-in",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 6


def test_completions_stream_true_is_parsed_by_the_client(client):
    chunks = list(client.completions.create(model="ownllm-stand-in", prompt="Hi", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in chunks).startswith("[stand-in")
    assert chunks[-1].choices[0].finish_reason == "length"


def test_an_adapter_is_a_model_name_the_client_can_use(client):
    reply = client.chat.completions.create(
        model="sql-expert", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert reply.model == "sql-expert"
    assert "stand-in for sql-expert" in reply.choices[0].message.content


def test_models_list_names_the_stand_in(client):
    assert [m.id for m in client.models.list()] == ["ownllm-stand-in", "sql-expert"]


def test_an_unknown_model_raises_not_found_with_the_openai_error_code(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "model_not_found"


def test_an_invalid_request_raises_bad_request_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="ownllm-stand-in", messages=[{"role": "robot", "content": "Hi"}])
    assert caught.value.param == "messages[0].role"


def test_max_tokens_above_the_cap_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="ownllm-stand-in", messages=[{"role": "user", "content": "Hi"}], max_tokens=100_000
        )
    assert caught.value.code == "max_tokens_exceeded"


def test_a_wrong_key_raises_permission_denied_like_the_deployed_api(stack):
    client = openai.OpenAI(base_url=stack.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.models.list()
    assert caught.value.body == {"message": "Forbidden"}
