"""The forwarder as an ASGI app (`main:app`), for Lambda Web Adapter's response streaming.

Behind API Gateway's STREAM transfer mode, Lambda Web Adapter runs an HTTP server in the
function and passes it each request (shared/reference/streaming.md). Requests with
`stream: true` on the completion routes are streamed here, chunk by chunk, as the engine
generates them (upstream.invoke_stream); every other request goes through the Lambda
handler in app.py unchanged, as an API Gateway REST event, so both entry points answer
alike. Standard library only: the ASGI server (uvicorn) is the packaging's concern.

One request at a time per execution environment, as Lambda runs them: app.py keeps the
current request in module state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import contract
import errors
import streaming
import translate
import upstream
import validate
from aws_lambda_powertools.metrics import MetricUnit

import app as forwarder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Lambda Web Adapter polls this path until the app answers (AWS_LWA_READINESS_CHECK_PATH).
HEALTH_PATH = "/health"
STREAM_ROUTES = {
    "/v1/chat/completions": validate.CHAT,
    "/chat/completions": validate.CHAT,
    "/v1/completions": validate.COMPLETION,
    "/completions": validate.COMPLETION,
}
# Lambda Web Adapter passes API Gateway's request context and Lambda's context as JSON headers;
# the latter has `request_id`, `deadline` (epoch milliseconds) and `invoked_function_arn`
# (awslabs/aws-lambda-web-adapter at 2194417: src/lib.rs, examples/aspnet-webapi-zip/src/LambdaContext.cs).
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"


class _Context:
    """The LambdaContext app.handler (and Powertools) reads: Lambda Web Adapter's header and
    the runtime's environment variables."""

    def __init__(self, request_id: str, deadline: float, function_arn: str = "") -> None:
        self.aws_request_id = request_id
        self._deadline = deadline  # time.monotonic()
        self.invoked_function_arn = function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "ownllm-forwarder")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0") or 0)
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    body = await _body(receive)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    method, path = scope["method"].upper(), scope["path"]
    if path == HEALTH_PATH:
        await _send_whole(send, 200, {"Content-Type": "application/json"}, b'{"status":"ok"}')
        return
    request_context = _json_header(headers, REQUEST_CONTEXT_HEADER)
    lambda_context = _json_header(headers, LAMBDA_CONTEXT_HEADER)
    request_id = str(request_context.get("requestId") or lambda_context.get("request_id") or uuid.uuid4())
    deadline = _deadline(lambda_context)
    if path not in STREAM_ROUTES:  # a buffered integration (stacks/api.py): API Gateway waits 29 s
        deadline = min(deadline, time.monotonic() + contract.API_GATEWAY_TIMEOUT_S)
    context = _Context(
        str(lambda_context.get("request_id") or request_id),
        deadline,
        str(lambda_context.get("invoked_function_arn") or ""),
    )
    kind = STREAM_ROUTES.get(path) if method == "POST" else None
    if kind is not None and _wants_stream(body):
        await _stream(kind, body, request_id, context, send)
        return
    event = _rest_event(scope, headers, body, request_context, request_id)
    response = await asyncio.to_thread(forwarder.handler, event, context)
    await _send_lambda_response(send, response)


# -- streaming -----------------------------------------------------------------------------


async def _stream(kind: str, body: bytes, request_id: str, context: _Context, send: Send) -> None:
    started = time.monotonic()
    log: dict[str, Any] = {"request_id": request_id, "lambda_request_id": context.aws_request_id, "stream": True}
    forwarder.metrics.add_metric(name=contract.REQUESTS, unit=MetricUnit.Count, value=1)
    cfg = forwarder.CONFIG
    client = forwarder.CLIENT
    margin = cfg.response_margin_s if cfg else 1.0
    until = started + min(context.get_remaining_time_in_millis() / 1000, contract.STREAM_LIMIT_S) - margin
    try:
        if cfg is None or client is None:
            raise errors.configuration(f"invalid environment: {forwarder.CONFIG_PROBLEM}")
        req = validate.parse(kind, body, cfg)
        log.update(model=req.model, max_tokens=req.max_tokens)
        normaliser = streaming.Normaliser(req, cfg.engine, request_id)
        invocation = await asyncio.to_thread(
            upstream.invoke_stream,
            client,
            cfg.endpoint_name,
            translate.engine_body(req, cfg, stream=True),
            normaliser,
            request_id,
            deadline=until,
            connect_timeout_s=cfg.connect_timeout_s,
            read_timeout_s=cfg.read_timeout_s,
            inference_component=cfg.inference_component,
            stream_deadline=until,
        )
    except errors.UpstreamFailure as failure:
        await _send_error(send, errors.map_upstream(failure), request_id, log, started)
        return
    except errors.ApiError as err:
        await _send_error(send, err, request_id, log, started)
        return
    except Exception as exc:  # noqa: BLE001 - a bug still answers, in OpenAI's shape
        forwarder.logger.exception("unexpected error", extra={"request_id": request_id})
        await _send_error(send, errors.internal(f"{type(exc).__name__}: {exc}"), request_id, log, started)
        return
    log.update(model_latency_ms=round(invocation.first_chunk_ms, 1), attempts=invocation.attempts)
    forwarder.metrics.add_metric(
        name=contract.MODEL_LATENCY, unit=MetricUnit.Milliseconds, value=invocation.first_chunk_ms
    )
    headers = {
        "Content-Type": forwarder.EVENT_STREAM,
        "Cache-Control": "no-cache",
        "x-request-id": request_id,
    }
    await send({"type": "http.response.start", "status": 200, "headers": _encode(headers)})
    try:
        await _pump(invocation.chunks, send)
    finally:
        # A client gone mid-stream: stop reading from SageMaker. If the read is cancelled while its
        # thread still runs, that thread finishes the read and the generator is left to be collected.
        with contextlib.suppress(ValueError):  # "generator already executing"
            invocation.chunks.close()
        if cfg.log_prompts:  # opt-in: prompts may hold personal data
            prompt = req.messages if req.messages is not None else req.prompt
            forwarder.logger.info(
                "prompt", extra={"request_id": request_id, "prompt": prompt, "completion": normaliser.text}
            )
        usage = normaliser.usage
        log.update(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            usage=normaliser.usage_source,
            status=200,
        )
        forwarder.metrics.add_metric(name=contract.PROMPT_TOKENS, unit=MetricUnit.Count, value=usage["prompt_tokens"])
        forwarder.metrics.add_metric(
            name=contract.COMPLETION_TOKENS, unit=MetricUnit.Count, value=usage["completion_tokens"]
        )
        _finish(log, started, normaliser.error)


async def _pump(chunks: Iterator[bytes], send: Send) -> None:
    """Each chunk to the client as the engine produces it (botocore blocks: read in a thread)."""
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            break
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_error(send: Send, err: errors.ApiError, request_id: str, log: dict, started: float) -> None:
    log["status"] = err.status
    headers = {"Content-Type": "application/json", "x-request-id": request_id, **err.headers}
    await _send_whole(send, err.status, headers, err.body(request_id).encode())
    _finish(log, started, err)


def _finish(log: dict, started: float, err: errors.ApiError | None) -> None:
    """The request's metrics and log fields on one EMF line, as app.handler writes them."""
    log["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    if err is not None:
        log.update(error_class=err.error_class, error_code=err.code)
        if err.log_detail:
            log["error_detail"] = err.log_detail
        forwarder.record_error_metric(err)
        if err.status >= 500:
            forwarder.logger.error("request failed", extra=log)
        else:
            forwarder.logger.info("request refused", extra=log)
    forwarder.metrics.add_metadata(key="request", value=log)
    forwarder.metrics.flush_metrics()


# -- plumbing ------------------------------------------------------------------------------


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


def _wants_stream(body: bytes) -> bool:
    """Whether the body asks to stream; anything unreadable goes to the handler, which says why."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


def _json_header(headers: dict[str, str], name: str) -> dict:
    try:
        value = json.loads(headers.get(name) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _deadline(lambda_context: dict) -> float:
    """time.monotonic() at Lambda's deadline (epoch milliseconds in the header), else the stream limit."""
    deadline_ms = lambda_context.get("deadline")
    if isinstance(deadline_ms, int) and not isinstance(deadline_ms, bool):
        return time.monotonic() + (deadline_ms / 1000 - time.time())
    return time.monotonic() + contract.STREAM_LIMIT_S


def _rest_event(scope: Scope, headers: dict[str, str], body: bytes, request_context: dict, request_id: str) -> dict:
    """An API Gateway REST proxy event, as the handler receives it without the adapter."""
    query: dict[str, list[str]] = {}
    for pair in scope.get("query_string", b"").decode("latin-1").split("&"):
        if pair:
            key, _, value = pair.partition("=")
            query.setdefault(key, []).append(value)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    passed = {k: v for k, v in headers.items() if k not in (REQUEST_CONTEXT_HEADER, LAMBDA_CONTEXT_HEADER)}
    return {
        "resource": "/{proxy+}",
        "path": scope["path"],
        "httpMethod": scope["method"].upper(),
        "headers": passed,
        "multiValueHeaders": {k: [v] for k, v in passed.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": scope["path"].lstrip("/")},
        "stageVariables": None,
        "requestContext": {**request_context, "requestId": request_id},
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


async def _send_lambda_response(send: Send, response: dict) -> None:
    headers: dict[str, str] = dict(response.get("headers") or {})
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key] = ", ".join(values) if isinstance(values, list) else str(values)
    raw = response.get("body") or ""
    data = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode("utf-8")
    await _send_whole(send, int(response.get("statusCode", 500)), headers, data)


async def _send_whole(send: Send, status: int, headers: dict[str, str], data: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
