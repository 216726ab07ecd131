"""The drop-in promise, checked with the official `openai` client: change base_url, keep the code.

The client's HTTP goes through an httpx transport that turns each request into the API
Gateway REST proxy event the Lambda receives, and the Lambda's answer back into HTTP.
"""

from __future__ import annotations

import base64

import httpx2 as httpx  # openai 3.x ships its HTTP stack as httpx2
import openai
import pytest
from lambda_testkit import ADAPTERS, MODEL, FakeContext, rest_event


def _client(harness) -> openai.OpenAI:
    def bridge(request: httpx.Request) -> httpx.Response:
        path = request.url.path  # API Gateway's `path` excludes the stage
        body = request.content.decode() if request.content else None
        headers = {k.title(): v for k, v in request.headers.items()}
        response = harness.app.handler(rest_event(request.method, path, body, headers=headers), FakeContext())
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        content = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
        return httpx.Response(response["statusCode"], headers=headers, content=content)

    return openai.OpenAI(
        base_url="https://abc123.execute-api.us-east-1.amazonaws.com/v1",
        api_key="k3yk3yk3y",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(bridge)),
    )


@pytest.fixture(params=["vllm", "lmi", "tgi"])
def client(request, make_forwarder):
    return _client(make_forwarder(request.param))


def test_chat_completions_create_works_unchanged(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, temperature=0.2
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert "stand-in" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 8
    assert completion._request_id  # the x-request-id header


def test_chat_completions_stream_true_is_parsed_by_the_client(client):
    whole = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 6


def test_completions_create_works_with_and_without_stream(client):
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert whole.choices[0].text.startswith("[stand-in for")
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, stream=True)
    )
    assert streamed == whole.choices[0].text


def test_models_list_and_retrieve_work(client):
    assert [m.id for m in client.models.list()] == [MODEL, *ADAPTERS]
    assert client.models.retrieve(MODEL).id == MODEL


def test_an_adapter_is_chosen_with_the_model_argument(client):
    completion = client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert completion.model == "support"
    assert "stand-in for support" in completion.choices[0].message.content


def test_errors_surface_as_the_clients_typed_exceptions(make_forwarder):
    harness = make_forwarder("vllm")
    client = _client(harness)
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[{"role": "wizard", "content": "Hi"}])
    assert bad.value.param == "messages[0].role"
    harness.server.set_fault("throttle")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    harness.server.set_fault("not_ready")
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert unavailable.value.status_code == 503
    assert unavailable.value.response.headers["retry-after"] == "30"
