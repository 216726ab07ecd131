"""A local API Gateway (REST API, Lambda proxy integrations in STREAM transfer mode) in front of
the real forwarder.

`Gateway` is an ASGI app served by uvicorn (ownllm/local/server.py). It applies the deployed
gateway's rules, then relays the request to the function's `main:app` in a Lambda execution
environment (lambda_pool.py), as Lambda Web Adapter does in the deployed function
(lambda/forwarder/run.sh), and passes the answer on chunk by chunk as it is produced. Deployed,
every route is a STREAM integration (stacks/api.py), so buffered answers take the same path.

Its own answers are the deployed API's gateway responses (ownllm/gateway_responses.py),
OpenAI-shaped `{"error": {"message", "type", "param", "code", "request_id"}}`, in this order (the
first three before anything of the body is read):

- a path outside `/v1/...` -> MISSING_AUTHENTICATION_TOKEN (404 `unknown_url` here)
- no key (`x-api-key` or `Authorization: Bearer`, read by the deployed authorizer's own
  `api_key_from_headers`) -> UNAUTHORIZED 401; a wrong key -> INVALID_API_KEY 403
- a body over 10 MB -> REQUEST_TOO_LARGE 413, at most the limit and one read taken in (none at
  all when the client waits for `100 Continue`, which uvicorn sends only once the body is read);
- no response headers within the integration timeout -> INTEGRATION_TIMEOUT 504 with
  `x-should-retry: false`; a function that fails before its headers (its environment died, or it
  ran past the function's timeout) -> DEFAULT_5XX, 502 "Internal server error".

A refusal sent before a body was read closes the connection, unless the body is a declared length
within the limit and the client did not ask for `100 Continue`: uvicorn then reads and discards it.

The function gets what Lambda Web Adapter gives it: the client's request (method, path without
the stage, query, headers, body) plus `x-amzn-request-context` (API Gateway's REST request
context) and `x-amzn-lambda-context` (`request_id`, `deadline` in epoch milliseconds: now + the
function's timeout, `invoked_function_arn`).

Timeouts, as API Gateway applies them to a STREAM integration (API Gateway developer guide,
"response-transfer-mode" and "response-streaming-troubleshoot"): the integration timeout (29 s;
the completion routes: Settings.api_timeout_s) bounds the whole answer, not just its first byte;
no status and headers within it -> 504; past it mid-answer the connection is closed without the
final chunk (curl: "transfer closed with outstanding read data remaining"). An answer silent for
the idle timeout (5 min, Regional endpoint) is closed the same way. An invocation past the
function's timeout ends its environment: before the headers that is the 502, after them the cut.
Whatever the function answers itself is passed on, an app that raised too (uvicorn's 500, as the
adapter passes it). A client that leaves does not stop the invocation, as in Lambda: its
environment is free once the function's answer ends.

Not emulated: the usage plan's throttling and quota, Lambda's 6 MB invocation payload limit
(the function's own MAX_REQUEST_BYTES check answers first), the 2 MB/s bandwidth limit past a
stream's first 10 MB.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, unquote

import h11

from ownllm.forwarder import contract, load_module
from ownllm.gateway_responses import gateway_errors
from ownllm.local.lambda_pool import (
    ACCOUNT_ID,
    FUNCTION_NAME,
    REGION,
    Environment,
    InitFailed,
    LambdaPool,
    LocalStackError,
)
from ownllm.local.server import (
    BODY_IDLE_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    BodyTooLarge,
    LocalServer,
    Receive,
    Scope,
    Send,
    close_connection,
    read_body,
)
from ownllm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZER_FILE = ROOT / "lambda" / "authorizer" / "app.py"

STAGE = "prod"
RESOURCE = "/v1/{proxy+}"
PREFIX = "/v1/"
API_ID = "local"
# API Gateway REST: payloads up to 10 MB; the integration gives up after 29 s (contract.py).
PAYLOAD_LIMIT_BYTES: int = contract().API_GATEWAY_PAYLOAD_BYTES
INTEGRATION_TIMEOUT_S = float(contract().API_GATEWAY_TIMEOUT_S)
# The completion routes' STREAM integrations get Settings.api_timeout_s (stacks/api.py); an answer
# silent this long is closed (Regional endpoint: 5 minutes; API Gateway developer guide,
# https://docs.aws.amazon.com/apigateway/latest/developerguide/response-transfer-mode.html).
STREAM_PATHS = ("/v1/chat/completions", "/v1/completions")
STREAM_TIMEOUT_S = float(Settings.model_fields["api_timeout_s"].default)
STREAM_IDLE_TIMEOUT_S = 300.0
# Lambda Web Adapter passes these to the app (lambda/forwarder/main.py reads them).
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
RELAY_READ_BYTES = 64 * 1024
# What the access log keeps of an error answer to name its code.
ERROR_PEEK_BYTES = 4096
# Lambda's own clock runs a little past the deadline it reports before it stops an invocation.
TIMEOUT_GRACE_S = 0.25
EXIT_WAIT_S = 0.05

__all__ = [
    "AccessRecord",
    "Gateway",
    "INTEGRATION_TIMEOUT_S",
    "LocalStackError",
    "PAYLOAD_LIMIT_BYTES",
    "STREAM_TIMEOUT_S",
    "api_key_from_headers",
    "request_context",
    "rest_event",
]


# -- the authorizer's key rule, reused --------------------------------------------------------

_authorizer: ModuleType | None = None


def api_key_from_headers(headers: dict[str, str]) -> str | None:
    """The deployed authorizer's own function (lambda/authorizer/app.py), loaded by file path."""
    global _authorizer
    if _authorizer is None:
        _authorizer = load_module("ownllm_local_authorizer", AUTHORIZER_FILE)
    key: str | None = _authorizer.api_key_from_headers(headers)
    return key


# -- the request context and the proxy event ---------------------------------------------------


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of an HTTP request target. A target is a path, never a URL: `//[x` is a
    path, where urllib's urlsplit would read a host and refuse it."""
    path, _, query = target.partition("?")
    return path, query.partition("#")[0]


def request_context(
    method: str,
    path: str,
    *,
    request_id: str,
    source_ip: str = "127.0.0.1",
    user_agent: str | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
) -> dict:
    """API Gateway's REST request context for resource /v1/{proxy+} (`path` without the stage)."""
    now = time.time()
    return {
        "resourceId": "local1",
        "resourcePath": RESOURCE,
        "httpMethod": method,
        "extendedRequestId": request_id[:16],
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "path": f"/{STAGE}{path}",
        "accountId": ACCOUNT_ID,
        "protocol": "HTTP/1.1",
        "stage": STAGE,
        "domainPrefix": API_ID,
        "requestTimeEpoch": int(now * 1000),
        "requestId": request_id,
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "sourceIp": source_ip,
            "principalOrgId": None,
            "accessKey": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": user_agent,
            "user": None,
            "apiKey": api_key,
            "apiKeyId": "localkey" if api_key else None,
        },
        "authorizer": {"principalId": "api-key", "integrationLatency": 0},
        "domainName": host,
        "deploymentId": "local",
        "apiId": API_ID,
    }


def rest_event(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    request_id: str,
    source_ip: str = "127.0.0.1",
    api_key: str | None = None,
    host: str = "127.0.0.1",
) -> dict:
    """The REST API (payload v1) proxy event for resource /v1/{proxy+}, as API Gateway builds it
    for a buffered Lambda integration (tests feed it to app.handler directly).

    `path` excludes the stage (`requestContext.path` includes it); single-value maps keep
    the last value; a body that is not UTF-8 travels base64-encoded.
    """
    raw, query_text = split_target(raw_path)
    path = unquote(raw)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query = parse_qsl(query_text, keep_blank_values=True)
    query_multi: dict[str, list[str]] = {}
    for k, v in query:
        query_multi.setdefault(k, []).append(v)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
    context = request_context(
        method, path, request_id=request_id, source_ip=source_ip, user_agent=user_agent, api_key=api_key, host=host
    )
    return {
        "resource": RESOURCE,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": {"proxy": path[len(PREFIX) :]},
        "stageVariables": None,
        "requestContext": context,
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


# -- the gateway ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRecord:
    """One request, for the access log: what API Gateway's access log line would hold, and why."""

    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    note: str = ""  # e.g. the error code, "cold start", the gateway's reason


# API Gateway's own answers: gateway response type, its default status and message (used where
# the deployed gateway response keeps them), x-amzn-ErrorType.
_Answer = tuple[str, int, str, str | None]
_UNAUTHORIZED: _Answer = ("UNAUTHORIZED", 401, "Unauthorized", "UnauthorizedException")
_FORBIDDEN: _Answer = ("INVALID_API_KEY", 403, "Forbidden", "ForbiddenException")
_NO_ROUTE: _Answer = (
    "MISSING_AUTHENTICATION_TOKEN",
    403,
    "Missing Authentication Token",
    "MissingAuthenticationTokenException",
)
_TOO_LARGE: _Answer = ("REQUEST_TOO_LARGE", 413, "Request Too Long", None)
_LAMBDA_FAILED: _Answer = ("DEFAULT_5XX", 502, "Internal server error", None)
_TIMED_OUT: _Answer = ("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out", None)
# The deployed API's gateway responses (the quota's message is never answered locally).
_RESPONSES = {g.response_type: g for g in gateway_errors(quota_per_day=0)}
# Not passed between client and function (HTTP/1.1 hop-by-hop headers, framing, and what the
# adapter sets itself).
_REQUEST_DROPPED = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
    REQUEST_CONTEXT_HEADER,
    LAMBDA_CONTEXT_HEADER,
}
_RESPONSE_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


class _Cut(Exception):
    """The answer stops here without its final chunk; the message says why (for the access log)."""


class _Request:
    """One request's state through the gateway."""

    def __init__(self, scope: Scope) -> None:
        self.started = time.monotonic()
        self.request_id = str(uuid.uuid4())
        self.method: str = scope["method"]
        self.path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = bytes(scope.get("query_string") or b"").decode("latin-1")
        self.target = f"{self.path}?{query}" if query else self.path
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.lowered = {k.lower(): v for k, v in self.headers}
        client = scope.get("client")
        self.source_ip = str(client[0]) if client else "127.0.0.1"
        self.body_read = False

    def declared_length(self) -> int | None:
        try:
            return int(self.lowered["content-length"])
        except (KeyError, ValueError):
            return None

    @property
    def chunked(self) -> bool:
        return "chunked" in self.lowered.get("transfer-encoding", "").lower()

    @property
    def expects_continue(self) -> bool:
        return self.lowered.get("expect", "").lower() == "100-continue"

    def must_close(self, payload_limit: int) -> bool:
        """Whether an answer sent now must close the connection: a body not read, which uvicorn
        would otherwise read and discard, unless it is a declared length within the limit."""
        if self.body_read:
            return False
        declared = self.declared_length()
        if self.chunked or self.expects_continue:
            return True
        return declared is not None and declared > payload_limit


class Gateway:
    """The API's HTTP front door on 127.0.0.1: an ASGI app on LocalServer, run in a daemon thread."""

    def __init__(
        self,
        pool: LambdaPool | None,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_s: float = INTEGRATION_TIMEOUT_S,
        stream_timeout_s: float = STREAM_TIMEOUT_S,
        stream_idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S,
        payload_limit: int = PAYLOAD_LIMIT_BYTES,
        on_request: Callable[[AccessRecord], None] | None = None,
        extra_headers: dict[str, str] | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
    ):
        if not api_key:
            raise ValueError("the gateway needs an API key")
        self.pool = pool
        self.api_key = api_key
        self.host = host
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self.payload_limit = payload_limit
        self.on_request = on_request
        self.extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (extra_headers or {}).items()]
        self.statuses: dict[int, int] = {}
        try:
            self._server = LocalServer(
                self,
                host,
                port,
                name="gateway",
                lifespan=True,
                header_timeout_s=header_timeout_s,
                body_idle_timeout_s=body_idle_timeout_s,
            )
        except OSError as exc:
            hint = " (the port is in use; pick another with --port)" if exc.errno == errno.EADDRINUSE else ""
            raise LocalStackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
        self.port = self._server.port

    def start(self) -> Gateway:
        if self.pool is None:
            raise RuntimeError("the gateway needs its LambdaPool before it starts")
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def _record(self, request: _Request, status: int, note: str) -> None:
        latency_ms = round((time.monotonic() - request.started) * 1000, 1)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.on_request is not None:
            with contextlib.suppress(Exception):  # a broken logger must not break the API
                self.on_request(
                    AccessRecord(request.request_id, request.method, request.path, status, latency_ms, note)
                )

    # -- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        request = _Request(scope)
        if not request.path.startswith(PREFIX) or request.path == PREFIX:
            return await self._refuse(send, request, _NO_ROUTE)
        key = api_key_from_headers(request.lowered)
        if not key:
            return await self._refuse(send, request, _UNAUTHORIZED)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return await self._refuse(send, request, _FORBIDDEN)
        declared = request.declared_length()
        if declared is not None and declared > self.payload_limit and request.expects_continue:
            return await self._refuse(send, request, _TOO_LARGE)  # before the client sends a byte of it
        try:
            body = await read_body(receive, max_bytes=self.payload_limit)
        except BodyTooLarge:
            return await self._refuse(send, request, _TOO_LARGE)
        if body is None:  # the client left, or stopped sending for the server's body idle timeout
            return None
        request.body_read = True
        await self._relay(scope, receive, send, request, key, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Close the kept connections to the environments on the server's own loop when it stops."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    self.pool.close_connections()
                await asyncio.sleep(0)  # let the transports finish closing
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(self, send: Send, request: _Request, answer: _Answer, note: str = "") -> None:
        response_type, default_status, message, error_type = answer
        response = _RESPONSES[response_type]
        headers = [(b"content-type", b"application/json")]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
        if error_type:
            headers.append((b"x-amzn-errortype", error_type.encode()))
        data = response.body(message, request.request_id)
        headers.append((b"content-length", str(len(data)).encode()))
        if request.must_close(self.payload_limit):
            headers.append((b"connection", b"close"))
        status = response.status or default_status
        self._record(request, status, note or message)
        await send(
            {"type": "http.response.start", "status": status, "headers": self._gateway_headers(request, headers)}
        )
        await send({"type": "http.response.body", "body": data})

    def _gateway_headers(self, request: _Request, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return [
            *headers,
            (b"x-amzn-requestid", request.request_id.encode()),
            (b"x-amz-apigw-id", request.request_id[:16].encode()),
            *self.extra_headers,
        ]

    # -- the integration -------------------------------------------------------------------------

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, request: _Request, key: str, body: bytes
    ) -> None:
        """The request to main:app in an execution environment, its answer to the client as produced."""
        pool = self.pool
        if pool is None:  # start() refuses to run without one
            raise RuntimeError("the gateway has no LambdaPool")
        integration_s = self.stream_timeout_s if request.path in STREAM_PATHS else self.timeout_s
        until = request.started + integration_s
        try:
            acquired = await pool.acquire(until)
        except InitFailed as exc:
            return await self._refuse(send, request, _LAMBDA_FAILED, note=f"init failed: {exc}")
        if acquired is None:
            return await self._refuse(send, request, _TIMED_OUT, note="no free execution environment in time")
        environment, cold = acquired
        notes = [f"cold start, init {environment.init_ms:.0f} ms"] if cold else []
        limits = _Limits(until, time.monotonic() + pool.timeout_s + TIMEOUT_GRACE_S, pool.timeout_s)
        call = _FunctionCall(environment)
        client_gone = asyncio.ensure_future(receive())  # http.disconnect once the client leaves
        settled = False
        try:
            try:
                headers = self._function_headers(request, key, body, pool.timeout_s)
                response = await call.start(request.method, request.target, headers, body, limits)
            except _Failed as failed:
                return await self._refuse(send, request, failed.answer, note=failed.note)
            passed = [(k, v) for k, v in response.headers if k.decode("latin-1") not in _RESPONSE_DROPPED]
            status = response.status_code
            await send(
                {"type": "http.response.start", "status": status, "headers": self._gateway_headers(request, passed)}
            )
            try:
                peek = await self._pump(call, send, limits, peek=status >= 400)
            except _Cut as cut:
                self._record(request, status, "; ".join([*notes, f"cut: {cut}"]))
                close_connection(scope)
                return None
            call.finish(clean=True)
            pool.release(environment)  # free for the next request before the last chunk goes out
            settled = True
            if status >= 400:
                notes.insert(0, _error_code(peek))
            if client_gone.done():  # before the last chunk, only a disconnect ends receive()
                notes.append("the client left before the end")
            self._record(request, status, "; ".join(n for n in notes if n))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            client_gone.cancel()
            if not settled:  # timed out, broken, cut, or the server stopping mid-invocation: not used again
                call.finish(clean=False)
                pool.discard(environment)

    async def _pump(self, call: _FunctionCall, send: Send, limits: _Limits, *, peek: bool) -> bytes:
        """The answer's body to the client, each piece as it arrives; what it began with, if `peek`.

        A client that leaves does not stop the invocation, as in Lambda: the rest is read (uvicorn
        drops what is sent to a closed connection) and the environment is free once it ends."""
        seen = b""
        while True:
            chunk = await call.next_chunk(limits, self.stream_idle_timeout_s)
            if chunk is None:
                return seen
            if peek and len(seen) < ERROR_PEEK_BYTES:
                seen += chunk[: ERROR_PEEK_BYTES - len(seen)]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    def _function_headers(
        self, request: _Request, key: str, body: bytes, function_timeout_s: float
    ) -> list[tuple[str, str]]:
        """The client's headers as Lambda Web Adapter passes them, with the two context headers."""
        context = request_context(
            request.method,
            unquote(request.path),
            request_id=request.request_id,
            source_ip=request.source_ip,
            user_agent=request.lowered.get("user-agent"),
            api_key=key,
            host=request.lowered.get("host") or self.host,
        )
        lambda_context = {
            "request_id": str(uuid.uuid4()),
            "deadline": int((time.time() + function_timeout_s) * 1000),
            "invoked_function_arn": FUNCTION_ARN,
        }
        headers = [(k, v) for k, v in request.headers if k.lower() not in _REQUEST_DROPPED]
        if "host" not in request.lowered:  # an HTTP/1.0 client may leave it out; HTTP/1.1 needs it
            headers.append(("host", self.host))
        headers += [
            ("content-length", str(len(body))),
            (REQUEST_CONTEXT_HEADER, json.dumps(context)),
            (LAMBDA_CONTEXT_HEADER, json.dumps(lambda_context)),
        ]
        return headers


@dataclass(frozen=True)
class _Limits:
    """An invocation's deadlines (time.monotonic()): the integration's, and the function's own."""

    integration: float
    function: float
    function_timeout_s: float


class _Failed(Exception):
    """The invocation failed before its answer's headers: the gateway's answer, and why."""

    def __init__(self, answer: _Answer, note: str) -> None:
        super().__init__(note)
        self.answer, self.note = answer, note


class _Broken(Exception):
    """The environment closed the connection before its answer was complete."""


class _Connection:
    """The gateway's HTTP/1.1 keep-alive connection to one environment's uvicorn: asyncio streams and
    h11, so no proxy setting or default header of an HTTP client library applies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @property
    def usable(self) -> bool:
        """Ready for a request: open, and the environment has not closed its end."""
        return self.h11.our_state is h11.IDLE and not self.writer.is_closing() and not self.reader.at_eof()

    def next_cycle(self) -> bool:
        """After a whole answer: ready the connection for the next request, if it can take one."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False

    def close_soon(self) -> None:
        if self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.writer.close()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self.writer.close)


class _FunctionCall:
    """One request to an environment's main:app and its answer, over the environment's kept connection."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._connection: _Connection | None = None

    async def start(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, limits: _Limits
    ) -> h11.Response:
        """Send the request; the answer's status and headers, or _Failed."""
        try:
            async with asyncio.timeout_at(min(limits.integration, limits.function)):
                kept = self.environment.connection
                if isinstance(kept, _Connection) and kept.usable:
                    connection = kept
                else:
                    self.environment.drop_connection()
                    connection = await _Connection.open(self.environment.port)
                    self.environment.connection = connection
                self._connection = connection
                request = h11.Request(method=method, target=target.encode("latin-1"), headers=headers)
                out = connection.h11.send(request) + connection.h11.send(h11.Data(data=body))
                connection.writer.write(out + connection.h11.send(h11.EndOfMessage()))
                while True:
                    event = await self._next_event()
                    if isinstance(event, h11.Response):
                        return event
                    if not isinstance(event, h11.InformationalResponse):
                        raise _Broken(f"unexpected {type(event).__name__} before the response")
        except TimeoutError:
            if time.monotonic() >= limits.integration:
                raise _Failed(_TIMED_OUT, "no response headers within the integration timeout") from None
            raise _Failed(_LAMBDA_FAILED, f"Task timed out after {limits.function_timeout_s:.2f} seconds") from None
        except (OSError, h11.ProtocolError, _Broken) as exc:
            raise _Failed(_LAMBDA_FAILED, _failure(self.environment, exc)) from None

    async def next_chunk(self, limits: _Limits, idle_s: float) -> bytes | None:
        """The next piece of the body as it arrives; None at its end; _Cut past a deadline or if broken."""
        deadline = min(limits.integration, limits.function, time.monotonic() + idle_s)
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    event = await self._next_event()
                    if isinstance(event, h11.Data):
                        if event.data:
                            return bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        return None
                    else:
                        raise _Broken(f"unexpected {type(event).__name__} in the body")
        except TimeoutError:
            now = time.monotonic()
            if now >= limits.function:
                raise _Cut(f"Task timed out after {limits.function_timeout_s:.2f} seconds") from None
            raise _Cut("integration timeout" if now >= limits.integration else "idle timeout") from None
        except (OSError, h11.ProtocolError, _Broken) as exc:
            raise _Cut(_failure(self.environment, exc)) from None

    async def _next_event(self) -> h11.Event:
        connection = self._connection
        if connection is None:
            raise _Broken("not connected")
        while True:
            event = connection.h11.next_event()
            if event is h11.PAUSED:  # only after the response: more data than one answer
                raise _Broken("data after the end of the answer")
            if isinstance(event, h11.ConnectionClosed):
                raise _Broken("the connection closed")
            if isinstance(event, h11.Event):
                return event
            connection.h11.receive_data(await connection.reader.read(RELAY_READ_BYTES))

    def finish(self, clean: bool) -> None:
        """Keep the connection for the environment's next request if the exchange ended cleanly."""
        if self._connection is not None and not (clean and self._connection.next_cycle()):
            if self.environment.connection is self._connection:
                self.environment.connection = None
            self._connection.close_soon()


def _failure(environment: Environment, exc: BaseException) -> str:
    """Why an invocation failed, for the access log."""
    environment.process.join(EXIT_WAIT_S)  # a process that exited closes its socket a moment before it is reaped
    code = environment.process.exitcode
    if code is not None:
        return f"the execution environment ended (exit code {code})"
    return f"the function's answer broke off: {type(exc).__name__}: {exc}"


def _error_code(data: bytes) -> str:
    """The OpenAI error code of a function's error answer, for the access log."""
    try:
        error = json.loads(data).get("error") or {}
        return str(error.get("code") or error.get("type") or "")
    except (ValueError, AttributeError):
        return ""
