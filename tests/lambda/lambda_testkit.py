"""Shared helpers for the forwarder tests: API Gateway REST events, a Lambda context, a harness.

Imported by conftest.py and the tests (conftest puts this folder on sys.path).
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ownllm.local.gateway import rest_event as gateway_rest_event
from ownllm.local.runtime import RuntimeServer

ROOT = Path(__file__).resolve().parents[2]
FORWARDER = ROOT / "lambda" / "forwarder"
SIBLINGS = ("contract", "wire", "config", "errors", "tokens", "validate", "translate", "streaming", "upstream")
MODEL = "Qwen/Qwen2.5-7B-Instruct"
ADAPTERS = ("sql-expert", "support")
ENDPOINT = "ownllm-endpoint"

if str(FORWARDER) not in sys.path:
    sys.path.insert(0, str(FORWARDER))
for _name in SIBLINGS:
    _loaded = sys.modules.get(_name)
    if _loaded is not None and Path(getattr(_loaded, "__file__", "") or "").parent != FORWARDER:
        raise RuntimeError(f"module name {_name!r} is already taken by {_loaded!r}; the forwarder tests need it")

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SESSION_TOKEN": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
BASE_ENV = {
    "ENDPOINT_NAME": ENDPOINT,
    "ENGINE": "vllm",
    "MODEL_NAME": MODEL,
    "ADAPTERS": ",".join(ADAPTERS),
    "MAX_REQUEST_BYTES": "262144",
    "MAX_INPUT_TOKENS": "4096",
    "MAX_TOTAL_TOKENS": "8192",
    "DEFAULT_MAX_TOKENS": "512",
    "LOG_PROMPTS": "false",
    "POWERTOOLS_SERVICE_NAME": "ownllm-forwarder",
    "POWERTOOLS_METRICS_NAMESPACE": "ownllm",
    # Tests run against localhost: a short connect timeout keeps the deadline tests quick.
    "UPSTREAM_CONNECT_TIMEOUT_S": "0.5",
}


def rest_event(
    method: str = "POST",
    path: str = "/v1/chat/completions",
    body: str | bytes | None = None,
    *,
    headers: dict | None = None,
    base64_body: bool = False,
    request_id: str | None = None,
) -> dict:
    """An API Gateway REST API (v1) proxy event, stage prod, API key auth: the one the local
    gateway builds (ownllm.local.gateway.rest_event), with a deployed-looking client."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": "OpenAI/Python 3.52.0",
        "X-Amzn-Trace-Id": "Root=1-5e66d96f-7491f09xmpl79d18acf3d050",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "x-api-key": "k3yk3yk3y",
        **(headers or {}),
    }
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else (body or b"")
    event = gateway_rest_event(
        method,
        path,
        list(headers.items()),
        raw,
        request_id=request_id or str(uuid.uuid4()),
        source_ip="203.0.113.7",
        api_key="k3yk3yk3y",
        host="abc123.execute-api.us-east-1.amazonaws.com",
    )
    if body is None:
        event["body"] = None
    elif base64_body and not event["isBase64Encoded"]:  # binary media types: API Gateway sends base64
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return event


class FakeContext:
    """LambdaContext with a real clock: get_remaining_time_in_millis counts down."""

    function_name = "ownllm-forwarder"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ownllm-forwarder"
    memory_limit_in_mb = 128
    log_group_name = "/aws/lambda/ownllm-forwarder"
    log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"

    def __init__(self, remaining_ms: int = 28_000):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Answer:
    status: int
    headers: dict  # lower-cased names, single values
    text: str

    def json(self):
        return json.loads(self.text)

    @property
    def error(self) -> dict:
        return self.json()["error"]


class Harness:
    """The forwarder configured for one engine, wired to a local SageMaker runtime."""

    def __init__(self, app, server: RuntimeServer, standin):
        self.app = app
        self.server = server
        self.standin = standin

    def call(
        self, method="POST", path="/v1/chat/completions", body=None, *, remaining_ms=28_000, **event_kwargs
    ) -> Answer:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        event = rest_event(method, path, body, **event_kwargs)
        response = self.app.handler(event, FakeContext(remaining_ms))
        raw = response.get("multiValueHeaders") or {}
        headers = {k.lower(): (v[-1] if isinstance(v, list) else v) for k, v in raw.items()}
        headers.update({k.lower(): v for k, v in (response.get("headers") or {}).items()})
        return Answer(response["statusCode"], headers, response["body"])

    def chat(self, content="What is deep learning?", *, request_id=None, remaining_ms=28_000, **fields) -> Answer:
        body = {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}
        return self.call(body=body, request_id=request_id, remaining_ms=remaining_ms)

    def complete(self, prompt="Deep learning is", *, request_id=None, remaining_ms=28_000, **fields) -> Answer:
        body = {"model": MODEL, "prompt": prompt, **fields}
        return self.call(path="/v1/completions", body=body, request_id=request_id, remaining_ms=remaining_ms)

    @property
    def sent(self) -> dict:
        """The body the engine received last."""
        return self.server.requests[-1].json()


class GatedEngine:
    """A vLLM-shaped streaming backend that sends its first chunk, then waits until told to go on:
    a path that buffered the stream would wait in vain."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.waited_in_vain = False

    def __call__(self, endpoint_name, body, headers):
        return 500, {}, b"{}"

    def stream(self, endpoint_name, body, headers):
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

        def pieces():
            delta = {"role": "assistant", "content": "Hi"}
            yield f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode()
            self.waited_in_vain = not self.go_on.wait(10)
            done = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**chunk, 'choices': [done]})}\n\ndata: [DONE]\n\n".encode()

        return 200, {"Content-Type": "text/event-stream"}, pieces()
