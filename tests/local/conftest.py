"""Fixtures for the local stack: real HTTP on 127.0.0.1, port 0, everything stopped afterwards.

Stacks take ~0.3 s to start (a fork server, then one Lambda environment), so the common
ones are shared per session, one per engine; tests that inject faults or need other
timeouts build their own with `make_stack`, stopped at the end of the test.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from ownllm.forwarder import contract
from ownllm.local.server import LocalServer, Receive, Scope, Send, answer, close_connection, read_body, request_headers
from ownllm.local.stack import LocalStack

KEY = "test-key-0123456789"
ENGINES = contract().ENGINES
ADAPTERS = ("sql-expert",)


@dataclass
class Reply:
    status: int
    headers: dict  # lower-cased names; a repeated header's values joined with ", "
    body: bytes
    elapsed_s: float = 0.0

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json()["error"]


def call(
    url: str,
    method: str = "GET",
    path: str = "/v1/models",
    body=None,
    headers: dict | None = None,
    *,
    key: str | None = KEY,
    timeout: float = 30.0,
) -> Reply:
    """One request over a fresh http.client connection (curl-style: the raw HTTP, no client library)."""
    import time

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        sent["x-api-key"] = key
    sent.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        headers: dict[str, str] = {}
        for name, value in response.getheaders():  # repeated headers joined, as HTTP allows
            headers[name.lower()] = f"{headers[name.lower()]}, {value}" if name.lower() in headers else value
        return Reply(response.status, headers, data, time.monotonic() - started)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def stacks():
    """stacks(engine) -> a started LocalStack with the stand-in, shared by the session."""
    started: dict[str, LocalStack] = {}

    def get(engine: str = "vllm") -> LocalStack:
        if engine not in started:
            started[engine] = LocalStack(engine=engine, api_key=KEY, adapters=ADAPTERS, max_instances=8).start()
        return started[engine]

    yield get
    for stack in started.values():
        stack.stop()


@pytest.fixture
def stack(stacks) -> LocalStack:
    return stacks("vllm")


@pytest.fixture(params=ENGINES)
def any_engine(request, stacks) -> LocalStack:
    return stacks(request.param)


@pytest.fixture
def make_stack():
    """make_stack(**LocalStack kwargs) -> a started stack of its own, stopped after the test."""
    made: list[LocalStack] = []

    def make(**kwargs) -> LocalStack:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("max_instances", 4)
        stack = LocalStack(**kwargs)
        made.append(stack)
        return stack.start()

    yield make
    for stack in made:
        stack.stop()


@pytest.fixture
def api():
    """api(url, method, path, body, headers, key=KEY) -> Reply."""
    return call


@pytest.fixture
def chat_body():
    def body(stack: LocalStack, content: str = "What is deep learning?", **fields) -> dict:
        return {"model": stack.model_name, "messages": [{"role": "user", "content": content}], **fields}

    return body


class FakeOpenAI:
    """A tiny OpenAI-compatible server (what vLLM, llama.cpp or Ollama would be), recording what it got.

    /models lists "fake-model"; chat and completions answer "fake says: <last words>" with
    usage counted in words; a prompt or message containing FAIL400 gets a 400 in OpenAI's
    error shape.
    """

    MODEL = "fake-model"

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.requests: list[tuple[str, dict, dict]] = []  # (path, body, headers by lower-case name)
        self._server = LocalServer(self._app, name="fake-openai").start()
        self.base_url = f"{self._server.url}/v1"

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:
            close_connection(scope)
        elif scope["method"] == "GET":
            await self._answer(send, 200, {"object": "list", "data": [{"id": FakeOpenAI.MODEL, "object": "model"}]})
        else:
            await self._answer(send, *self._post(scope["path"], json.loads(raw), request_headers(scope)))

    def _post(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        self.requests.append((path, body, headers))
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "bad upstream key", "type": "auth"}}
        text_in = body.get("prompt") if "prompt" in body else body["messages"][-1]["content"]
        if "FAIL400" in text_in:
            return 400, {"error": {"message": "the fake refuses FAIL400", "type": "invalid"}}
        text = "fake says: " + " ".join(text_in.split()[-3:])
        usage = {"prompt_tokens": len(text_in.split()), "completion_tokens": len(text.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if path.endswith("/chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "stop_reason": None}
            kind = "text_completion"
        answer = {"id": "x", "object": kind, "created": 0, "model": body.get("model"), "choices": [choice]}
        return 200, {**answer, "usage": usage}

    @staticmethod
    async def _answer(send: Send, status: int, payload: dict) -> None:
        await answer(send, status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.stop()
