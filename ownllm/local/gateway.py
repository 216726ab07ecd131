"""A local API Gateway (REST API, Lambda proxy integration) in front of the real forwarder.

`Gateway` turns each HTTP request into the proxy event API Gateway sends for the deployed
resource `/v1/{proxy+}` (stage `prod`), runs the function on a `LambdaPool` and answers
with what it returns, after applying the gateway's own rules. Its own answers are the
deployed API's gateway responses (ownllm/gateway_responses.py), OpenAI-shaped
`{"error": {"message", "type", "param", "code", "request_id"}}`:

- a path outside `/v1/...` -> MISSING_AUTHENTICATION_TOKEN (404 `unknown_url` here)
- no key (`x-api-key` or `Authorization: Bearer`, read by the deployed authorizer's own
  `api_key_from_headers`) -> UNAUTHORIZED 401; a wrong key -> INVALID_API_KEY 403
- a body over 10 MB -> REQUEST_TOO_LARGE 413
- no answer from the function within the integration timeout (29 s) -> INTEGRATION_TIMEOUT
  504 with `x-should-retry: false`; a function that fails, times out or returns something
  that is not a proxy response -> DEFAULT_5XX, 502 "Internal server error".

Response streaming (the deployed API's STREAM integrations on /v1/chat/completions and
/v1/completions, stacks/api.py): a POST with `"stream": true` on those routes goes, after the
key and size checks, to the function's streaming entry point `main:app` (lambda/forwarder/main.py)
served by uvicorn in a child process (asgi_child.py), with the `x-amzn-request-context` and
`x-amzn-lambda-context` headers Lambda Web Adapter adds (Lambda's deadline: now + the function's
timeout, Settings.function_timeout_s). Its answer is relayed chunk by chunk (chunked transfer
encoding, each chunk written as it arrives). Every other request, `stream: false` included, runs
the buffered handler on the LambdaPool: main:app hands those to the same app.handler unchanged.

Timeouts of a stream, as API Gateway applies them (API Gateway developer guide,
"response-transfer-mode" and "response-streaming-troubleshoot"): the integration timeout
(Settings.api_timeout_s) bounds the whole stream, not just its first byte; no status and headers
within it -> INTEGRATION_TIMEOUT 504; past it mid-stream the connection is closed without the
final chunk (curl: "transfer closed with outstanding read data remaining"). A stream silent for
the idle timeout (5 min, Regional endpoint) is closed the same way.

Not emulated: the usage plan's throttling and quota, Lambda's 6 MB invocation payload
limit (the function's own MAX_REQUEST_BYTES check answers first), one execution environment
per concurrent stream (one uvicorn process serves them all), the 2 MB/s bandwidth limit past
a stream's first 10 MB.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hmac
import http.client
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote

from ownllm.forwarder import contract, load_module
from ownllm.gateway_responses import gateway_errors
from ownllm.local.lambda_pool import ACCOUNT_ID, LambdaPool, LocalStackError

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZER_FILE = ROOT / "lambda" / "authorizer" / "app.py"

STAGE = "prod"
RESOURCE = "/v1/{proxy+}"
PREFIX = "/v1/"
API_ID = "local"
# API Gateway REST: payloads up to 10 MB; the integration gives up after 29 s (contract.py).
PAYLOAD_LIMIT_BYTES: int = contract().API_GATEWAY_PAYLOAD_BYTES
INTEGRATION_TIMEOUT_S = float(contract().API_GATEWAY_TIMEOUT_S)
# STREAM integrations (stacks/api.py): the routes, and how long a stream may stay silent before
# API Gateway closes it (Regional endpoint: 5 minutes; API Gateway developer guide,
# https://docs.aws.amazon.com/apigateway/latest/developerguide/response-transfer-mode.html).
STREAM_PATHS = ("/v1/chat/completions", "/v1/completions")
STREAM_IDLE_TIMEOUT_S = 300.0
# Lambda Web Adapter passes these to the app (lambda/forwarder/main.py reads them).
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
RELAY_CHUNK_BYTES = 64 * 1024
# An oversized body without `Expect: 100-continue` is read and discarded up to this much,
# so the client gets its 413 instead of a reset; beyond it the connection is just closed.
DRAIN_LIMIT_BYTES = 4 * PAYLOAD_LIMIT_BYTES

__all__ = [
    "Gateway",
    "StreamTarget",
    "AccessRecord",
    "LocalStackError",
    "rest_event",
    "proxy_response",
    "api_key_from_headers",
]


# -- the authorizer's key rule, reused --------------------------------------------------------

_authorizer: ModuleType | None = None


def api_key_from_headers(headers: dict) -> str | None:
    """The deployed authorizer's own function (lambda/authorizer/app.py), loaded by file path."""
    global _authorizer
    if _authorizer is None:
        _authorizer = load_module("ownllm_local_authorizer", AUTHORIZER_FILE)
    key: str | None = _authorizer.api_key_from_headers(headers)
    return key


# -- the proxy event ---------------------------------------------------------------------------


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of an HTTP request target. A target is a path, never a URL: `//[x` is a
    path, where urllib's urlsplit would read a host and refuse it."""
    path, _, query = target.partition("?")
    return path, query.partition("#")[0]


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
    """The REST API (payload v1) proxy event for resource /v1/{proxy+}, as API Gateway builds it.

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
    now = time.time()
    user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
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
        "requestContext": {
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
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date"}


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """(status, headers, body) from the function's return value; None if it is not a proxy response."""
    if not isinstance(result, dict):
        return None
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        return None
    elif result.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = body.encode("utf-8", "surrogatepass")
    merged: dict[str, list[tuple[str, str]]] = {}
    for name, value in (result.get("headers") or {}).items():
        merged[str(name).lower()] = [(str(name), str(value))]
    for name, values in (result.get("multiValueHeaders") or {}).items():  # API Gateway: these win
        if isinstance(values, list):
            merged[str(name).lower()] = [(str(name), str(v)) for v in values]
    headers = [pair for lowered, pairs in merged.items() if lowered not in _HOP_BY_HOP for pair in pairs]
    return status, headers, data


# -- the HTTP side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTarget:
    """Where streamed requests go (the function's main:app over HTTP) and their time limits."""

    host: str
    port: int
    integration_timeout_s: float  # Settings.api_timeout_s: the whole stream
    function_timeout_s: float  # Settings.function_timeout_s: Lambda's deadline, in the context header
    function_arn: str = ""
    idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S


def wants_stream(body: bytes) -> bool:
    """Whether a body asks to stream (main.py's own rule: a JSON object with `"stream": true`)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


@dataclass(frozen=True)
class AccessRecord:
    """One request, for the access log: what API Gateway's access log line would hold, and why."""

    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    note: str = ""  # e.g. the error code, "cold start", the gateway's reason


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops SYNs when 64 clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client that left is not news
            super().handle_error(request, client_address)


class Gateway:
    """The API's HTTP front door on 127.0.0.1, run in a daemon thread."""

    def __init__(
        self,
        pool: LambdaPool | None,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_s: float = INTEGRATION_TIMEOUT_S,
        payload_limit: int = PAYLOAD_LIMIT_BYTES,
        on_request: Callable[[AccessRecord], None] | None = None,
        extra_headers: dict[str, str] | None = None,
    ):
        if not api_key:
            raise ValueError("the gateway needs an API key")
        self.pool = pool
        self.api_key = api_key
        self.host = host
        self.timeout_s = timeout_s
        self.payload_limit = payload_limit
        self.on_request = on_request
        self.extra_headers = dict(extra_headers or {})
        # Where streams go, started on first use (a Lambda cold start); None: streams are buffered too.
        self.stream_target: Callable[[], StreamTarget] | None = None
        handler = type("_BoundGatewayHandler", (_GatewayHandler,), {"gateway": self})
        try:
            self._httpd = _Server((host, port), handler)
        except OSError as exc:
            hint = " (the port is in use; pick another with --port)" if exc.errno == errno.EADDRINUSE else ""
            raise LocalStackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self.statuses: dict[int, int] = {}

    def start(self) -> Gateway:
        if self.pool is None:
            raise RuntimeError("the gateway needs its LambdaPool before it starts")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"gateway:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _record(self, record: AccessRecord) -> None:
        with self._stats_lock:
            self.statuses[record.status] = self.statuses.get(record.status, 0) + 1
        if self.on_request is not None:
            with contextlib.suppress(Exception):  # a broken logger must not break the API
                self.on_request(record)


# API Gateway's own answers: gateway response type, its default status and message (used where
# the deployed gateway response keeps them), x-amzn-ErrorType.
_UNAUTHORIZED = ("UNAUTHORIZED", 401, "Unauthorized", "UnauthorizedException")
_FORBIDDEN = ("INVALID_API_KEY", 403, "Forbidden", "ForbiddenException")
_NO_ROUTE = ("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", "MissingAuthenticationTokenException")
_TOO_LARGE = ("REQUEST_TOO_LARGE", 413, "Request Too Long", None)
_LAMBDA_FAILED = ("DEFAULT_5XX", 502, "Internal server error", None)
_TIMED_OUT = ("INTEGRATION_TIMEOUT", 504, "Endpoint request timed out", None)
# The deployed API's gateway responses (the quota's message is never answered locally).
_RESPONSES = {g.response_type: g for g in gateway_errors(quota_per_day=0)}


class _GatewayHandler(BaseHTTPRequestHandler):
    gateway: Gateway  # bound per server in Gateway.__init__
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway and every client expects
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    def version_string(self) -> str:
        return "ownllm-local"

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815 - the ANY method

    def handle_expect_100(self) -> bool:
        # A client that asks first (curl does for large bodies) is refused before it sends them.
        if self._declared_length() > self.gateway.payload_limit:
            self._started = time.monotonic()
            self._request_id = str(uuid.uuid4())
            self._gateway_answer(_TOO_LARGE, close=True)
            return False
        return super().handle_expect_100()

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is over the payload limit (then drained or abandoned)."""
        limit = self.gateway.payload_limit
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = self._declared_length()
        if length > limit:
            if length <= DRAIN_LIMIT_BYTES:
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self, limit: int) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:  # not chunked after all, or cut short: answer what came, then hang up
                self.close_connection = True
                return b"".join(parts)
            if chunk == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(parts)
            size += chunk
            if size > limit:
                self.close_connection = True
                return None
            parts.append(self.rfile.read(chunk))
            self.rfile.readline(8)  # CRLF after each chunk

    def _handle(self) -> None:
        gw = self.gateway
        self._started = time.monotonic()
        self._request_id = str(uuid.uuid4())
        body = self._read_body()
        if body is None:
            return self._gateway_answer(_TOO_LARGE, close=True)
        path = split_target(self.path)[0]
        if not path.startswith(PREFIX) or path == PREFIX:
            return self._gateway_answer(_NO_ROUTE)
        headers = list(self.headers.items())
        key = api_key_from_headers(dict(headers))
        if not key:
            return self._gateway_answer(_UNAUTHORIZED)
        if not hmac.compare_digest(key.encode(), gw.api_key.encode()):
            return self._gateway_answer(_FORBIDDEN)
        event = rest_event(
            self.command,
            self.path,
            headers,
            body,
            request_id=self._request_id,
            source_ip=self.client_address[0],
            api_key=key,
            host=self.headers.get("Host") or gw.host,
        )
        if gw.stream_target is not None and self.command == "POST" and path in STREAM_PATHS and wants_stream(body):
            try:
                target = gw.stream_target()
            except LocalStackError as exc:
                return self._gateway_answer(_LAMBDA_FAILED, note=str(exc))
            return self._relay_stream(target, headers, body, event["requestContext"])
        pool = gw.pool
        if pool is None:  # start() refuses to run without one
            raise RuntimeError("the gateway has no LambdaPool")
        outcome = pool.invoke(event, self._started + gw.timeout_s)
        note = f"cold start, init {outcome.init_ms:.0f} ms" if outcome.init_ms is not None else ""
        if outcome.kind == "gateway_timeout":
            return self._gateway_answer(_TIMED_OUT, note=outcome.detail)
        if outcome.kind != "ok":
            return self._gateway_answer(_LAMBDA_FAILED, note=outcome.detail)
        response = proxy_response(outcome.result)
        if response is None:
            return self._gateway_answer(_LAMBDA_FAILED, note="malformed Lambda proxy response")
        status, out_headers, data = response
        if status >= 400:
            note = _error_code(data) or note
        self._send(status, out_headers, data, note=note)

    def _relay_stream(
        self, target: StreamTarget, headers: list[tuple[str, str]], body: bytes, request_context: dict
    ) -> None:
        """The STREAM integration: the request to main:app with Lambda Web Adapter's headers, its
        answer to the client chunk by chunk as it is produced."""
        gw = self.gateway
        until = self._started + target.integration_timeout_s
        lambda_context = {
            "request_id": str(uuid.uuid4()),
            "deadline": int((time.time() + target.function_timeout_s) * 1000),
            "invoked_function_arn": target.function_arn,
        }
        sent = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}
        sent[REQUEST_CONTEXT_HEADER] = json.dumps(request_context)
        sent[LAMBDA_CONTEXT_HEADER] = json.dumps(lambda_context)
        sent["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(target.host, target.port, timeout=max(0.001, until - time.monotonic()))
        try:
            try:
                conn.request("POST", self.path, body=body, headers=sent)
                sock = conn.sock  # kept: the response reads from it, even if the connection lets it go
                upstream = conn.getresponse()
            except TimeoutError:
                return self._gateway_answer(_TIMED_OUT, note="no response headers within the integration timeout")
            except (OSError, http.client.HTTPException) as exc:
                return self._gateway_answer(_LAMBDA_FAILED, note=f"streaming function: {type(exc).__name__}")
            out = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP and k.lower() != "server"]
            note = "stream"
            latency_ms = round((time.monotonic() - self._started) * 1000, 1)  # to the first byte
            path = split_target(self.path)[0]
            gw._record(AccessRecord(self._request_id, self.command, path, upstream.status, latency_ms, note))
            self._pump(upstream, sock, out, until, target.idle_timeout_s)
        finally:
            conn.close()

    def _pump(
        self,
        upstream: http.client.HTTPResponse,
        sock: socket.socket | None,
        headers: list[tuple[str, str]],
        until: float,
        idle_s: float,
    ) -> None:
        gw = self.gateway
        try:
            self.send_response(upstream.status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("x-amzn-RequestId", self._request_id)
            self.send_header("x-amz-apigw-id", self._request_id[:16])
            for name, value in gw.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    raise TimeoutError("integration timeout")
                if sock is not None:
                    sock.settimeout(min(left, idle_s))
                chunk = upstream.read1(RELAY_CHUNK_BYTES)
                if not chunk:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (TimeoutError, http.client.HTTPException, OSError):
            # Past the integration or idle timeout, a function that died, a client that left: API
            # Gateway closes the connection without the final chunk.
            self.close_connection = True

    def _gateway_answer(self, answer: tuple[str, int, str, str | None], *, close: bool = False, note: str = "") -> None:
        response_type, default_status, message, error_type = answer
        response = _RESPONSES[response_type]
        headers = [("Content-Type", "application/json"), *response.headers.items()]
        if error_type:
            headers.append(("x-amzn-ErrorType", error_type))
        if close:
            self.close_connection = True
        status = response.status or default_status
        self._send(status, headers, response.body(message, self._request_id), note=note or message)

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes, note: str = "") -> None:
        gw = self.gateway
        # Recorded before the answer leaves, so whoever reads the record after the answer finds it.
        latency_ms = (time.monotonic() - self._started) * 1000
        path = split_target(self.path)[0]
        gw._record(AccessRecord(self._request_id, self.command, path, status, round(latency_ms, 1), note))
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("x-amzn-RequestId", self._request_id)
            self.send_header("x-amz-apigw-id", self._request_id[:16])
            for name, value in gw.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: access records go to on_request
        pass


def _error_code(data: bytes) -> str:
    """The OpenAI error code of a function's error answer, for the access log."""
    try:
        error = json.loads(data).get("error") or {}
        return str(error.get("code") or error.get("type") or "")
    except (ValueError, AttributeError):
        return ""
