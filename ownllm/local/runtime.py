"""A local SageMaker runtime: `POST /endpoints/{name}/invocations` (InvokeEndpoint) and
`/invocations-response-stream` (InvokeEndpointWithResponseStream) over plain HTTP.

Point boto3 at it with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=server.url and unchanged code
calls `invoke_endpoint` against a backend of your choice (StandIn, or a proxy to a real
engine). It answers the way SageMaker runtime does, so botocore raises the same errors:

- a backend's non-2xx answer becomes ModelError (HTTP 424) carrying OriginalStatusCode
  and OriginalMessage, as SageMaker wraps container errors;
- injected faults return SageMaker's own error shapes: the `x-amzn-ErrorType` header
  (which botocore reads for the error code) and a JSON body with the message.

    with RuntimeServer(backend=StandIn(engine="tgi")) as server:
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = server.url
        server.set_fault("throttle", times=1)   # the next call is throttled, then normal

The streaming route answers 200 with AWS's event-stream encoding (ownllm.local.eventstream):
one PayloadPart per piece the backend yields, sent as it is yielded (a backend with a
`stream` method, like StandIn, streams; any other sends its whole answer as one part), and
the backend's content type in X-Amzn-SageMaker-Content-Type. Errors before the stream are
the same as InvokeEndpoint's; the `stream_error` fault ends a stream with ModelStreamError.

It is an ASGI app on LocalServer (uvicorn, one event loop). Backends are synchronous: each call,
and each piece of a stream, runs on a worker thread (DaemonPool), so a backend pacing its tokens
holds a thread, never the loop or another request; a client that leaves ends its stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

from ownllm.local import eventstream
from ownllm.local.server import (
    BodyTooLarge,
    DaemonPool,
    LocalServer,
    Receive,
    Scope,
    Send,
    answer,
    close_connection,
    read_body,
    request_headers,
)
from ownllm.local.standin import StandIn

__all__ = ["FAULTS", "RecordedRequest", "RuntimeServer", "StandIn"]

Backend = Callable[[str, bytes, dict], "tuple[int, dict, bytes]"]


@runtime_checkable
class StreamingBackend(Protocol):
    """A backend that can also answer piece by piece (StandIn)."""

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]: ...

    def stream(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, Iterator[bytes]]: ...


# Backend calls (and the stream pieces they generate) run on this many threads at most, off the
# event loop: a paced stream sleeping between tokens holds a thread, never the server. asyncio's
# default executor (min(32, CPUs + 4) threads) would let six paced streams on 2 cores stall the rest.
BACKEND_THREADS = 256
# InvokeEndpoint's largest request body: BodyBlob's "max" in botocore's sagemaker-runtime service
# model (botocore/data/sagemaker-runtime/2017-05-13/service-2.json). Above it SageMaker answers 413
# "HTTP content length exceeded N bytes." (reported with the older ~5 MB limit in
# github.com/aws/sagemaker-python-sdk/issues/171 and aws/amazon-sagemaker-examples/issues/245).
MAX_BODY_BYTES = 6_291_456
# The ModelStreamError codes SageMaker documents (botocore's sagemaker-runtime service model).
STREAM_BROKEN = "StreamBroken"
INVOCATION_TIME_EXCEEDED = "ModelInvocationTimeExceeded"

# name -> what it does (params with defaults in brackets)
FAULTS = {
    "slow": "answer normally after delay_s [5.0] seconds (a read timeout, if the client's is shorter)",
    "model_error": "ModelError 424 with OriginalStatusCode original_status [500] and original_message",
    "throttle": "ThrottlingException, HTTP 400 (SageMaker's per-endpoint concurrency limit)",
    "not_ready": "ModelNotReadyException, HTTP 429",
    "unavailable": "ServiceUnavailable, HTTP 503",
    "internal": "InternalFailure, HTTP 500",
    "not_found": "ValidationError, HTTP 400: 'Endpoint NAME of account ACCOUNT not found.'",
    "access_denied": "AccessDeniedException, HTTP 400: the caller may not invoke this endpoint",
    "drop": "close the connection without answering (botocore: ConnectionClosedError)",
    "garbage": "HTTP 200 with a body that is not JSON (an engine answering nonsense)",
    "no_capacity": "an inference component scaled to zero: ValidationError, HTTP 400 'no capacity', until "
    "wake_s [300] seconds after the first such answer, then normal (the wake that answer triggers)",
    "stream_error": "streams only: ModelStreamError with error_code [StreamBroken] after after_parts [1] "
    "payload parts (the container's connection broke mid-answer)",
}
# SageMaker runtime's answer while an inference component has zero copies (SageMaker developer
# guide, endpoint-auto-scaling-zero-instances).
NO_CAPACITY_MESSAGE = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress "
    "(if configured) or try to increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
)


@dataclass(frozen=True)
class RecordedRequest:
    endpoint_name: str
    body: bytes
    headers: dict
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Stream:
    """A streaming answer: the backend's content type and its pieces, and where to break it."""

    content_type: str
    pieces: Iterator[bytes]
    break_after: int | None = None  # parts sent before a ModelStreamError, if injected
    error_code: str = STREAM_BROKEN


@dataclass
class _Fault:
    name: str
    params: dict
    remaining: int | None  # None: until cleared


class RuntimeServer:
    """SageMaker runtime's InvokeEndpoint on a local port, served by LocalServer (uvicorn) in a thread.

    endpoint_names, when given, limits which endpoints exist (others answer SageMaker's
    'Endpoint ... not found' ValidationError). `keep_requests` > 0 keeps the last that many
    requests, bodies included, in `requests` for tests to inspect; by default none are kept,
    so a long-running `ownllm local` holds no request bodies.
    """

    def __init__(
        self,
        backend: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        endpoint_names: tuple[str, ...] | list[str] | None = None,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        keep_requests: int = 0,
    ):
        self.backend = backend
        self.host, self.port = host, port
        self._requested_port = port  # 0: any free port, chosen again on each start
        self.endpoint_names = None if endpoint_names is None else frozenset(endpoint_names)
        self.account_id, self.region = account_id, region
        self.requests: deque[RecordedRequest] = deque()
        self.keep_requests = keep_requests
        self._fault: _Fault | None = None
        self._lock = threading.Lock()
        self._server: LocalServer | None = None
        self._workers: DaemonPool | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RuntimeServer:
        if self._server is not None:
            return self
        workers = DaemonPool(BACKEND_THREADS, "sagemaker-runtime-backend")
        server = LocalServer(_App(self, workers), self.host, self._requested_port, name="sagemaker-runtime")
        try:
            server.start()
        except BaseException:
            server.stop()
            workers.shutdown(wait=False)
            raise
        self._server, self._workers = server, workers
        self.port = server.port
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        workers, self._workers = self._workers, None
        if workers is not None:  # a paced stream still sleeping in a worker ends by itself
            workers.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("RuntimeServer is not started; call start() first")
        return self._server.url

    @property
    def keep_requests(self) -> int:
        """How many of the latest requests `requests` holds (0: none)."""
        return self.requests.maxlen or 0

    @keep_requests.setter
    def keep_requests(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"keep_requests must be 0 (keep none) or more, not {count}")
        self.requests = deque(self.requests, maxlen=count)

    # -- fault injection ---------------------------------------------------------------------

    def set_fault(self, fault: str | None, *, times: int | None = None, **params: Any) -> None:
        """Answer the next `times` requests (all, if None) with `fault`; None clears it."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        with self._lock:
            self._fault = None if fault is None else _Fault(fault, params, times)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            fault = self._fault
            if fault is not None and fault.name == "no_capacity":
                # Asleep until wake_s after the first refused call, then awake for good.
                now = time.monotonic()
                wake_at = fault.params.setdefault("wake_at", now + float(fault.params.get("wake_s", 300.0)))
                if now >= wake_at:
                    self._fault = None
                    return None
                return fault
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._fault = None
            return fault

    # -- one invocation ----------------------------------------------------------------------

    def _invoke(
        self, endpoint: str, body: bytes, headers: dict, stream: bool = False
    ) -> tuple[int, dict, bytes] | _Stream | None:
        """(status, headers, body) to send, a stream to send, or None to drop the connection."""
        if self.requests.maxlen:
            self.requests.append(RecordedRequest(endpoint, body, headers))
        if self.endpoint_names is not None and endpoint not in self.endpoint_names:
            return self._not_found(endpoint)
        fault = self._take_fault()
        if fault is not None:
            name, params = fault.name, fault.params
            if name == "slow":
                time.sleep(float(params.get("delay_s", 5.0)))
            elif name == "drop":
                return None
            elif name == "model_error":
                return self._model_error(
                    endpoint,
                    int(params.get("original_status", 500)),
                    str(params.get("original_message", '{"error": "injected model error"}')),
                )
            elif name == "throttle":
                return _aws_error(400, "ThrottlingException", params.get("message"))
            elif name == "not_ready":
                message = params.get("message", f"Model for endpoint {endpoint} is not ready.")
                return _aws_error(429, "ModelNotReadyException", message)
            elif name == "unavailable":
                return _aws_error(503, "ServiceUnavailable", params.get("message", "Service Unavailable"))
            elif name == "internal":
                return _aws_error(500, "InternalFailure", params.get("message", "An internal error occurred."))
            elif name == "not_found":
                return self._not_found(endpoint)
            elif name == "access_denied":
                return _aws_error(
                    400,
                    "AccessDeniedException",
                    f"User: arn:aws:sts::{self.account_id}:assumed-role/stand-in/fn is not authorized to perform: "
                    f"sagemaker:InvokeEndpoint on resource: {self._endpoint_arn(endpoint)} "
                    "because no identity-based policy allows the sagemaker:InvokeEndpoint action",
                )
            elif name == "garbage":
                return 200, {"Content-Type": "application/json"}, b"<html>502 Bad Gateway</html>"
            elif name == "no_capacity":
                return _aws_error(400, "ValidationError", NO_CAPACITY_MESSAGE)
        if stream:
            return self._stream(endpoint, body, headers, fault)
        status, out_headers, out_body = self.backend(endpoint, body, headers)
        if not 200 <= status < 300:
            return self._model_error(endpoint, status, out_body.decode("utf-8", "replace"))
        out_headers = {"Content-Type": "application/json", **(out_headers or {})}
        out_headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
        return status, out_headers, out_body

    def _stream(
        self, endpoint: str, body: bytes, headers: dict, fault: _Fault | None
    ) -> tuple[int, dict, bytes] | _Stream:
        backend = self.backend
        if isinstance(backend, StreamingBackend):
            status, out_headers, pieces = backend.stream(endpoint, body, headers)
        else:
            status, out_headers, whole = backend(endpoint, body, headers)
            pieces = iter([whole])
        if not 200 <= status < 300:  # refused before streaming: SageMaker answers ModelError
            return self._model_error(endpoint, status, b"".join(pieces).decode("utf-8", "replace"))
        content_type = {k.lower(): v for k, v in (out_headers or {}).items()}.get("content-type", "application/json")
        if fault is not None and fault.name == "stream_error":
            error_code = str(fault.params.get("error_code", STREAM_BROKEN))
            return _Stream(content_type, pieces, int(fault.params.get("after_parts", 1)), error_code)
        return _Stream(content_type, pieces)

    def _endpoint_arn(self, endpoint: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:endpoint/{endpoint.lower()}"

    def _not_found(self, endpoint: str) -> tuple[int, dict, bytes]:
        return _aws_error(400, "ValidationError", f"Endpoint {endpoint} of account {self.account_id} not found.")

    def _model_error(self, endpoint: str, original_status: int, original_message: str) -> tuple[int, dict, bytes]:
        side = "client" if 400 <= original_status < 500 else "server"
        log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
        body = {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "LogStreamArn": f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{log_group}",
            "Message": (
                f'Received {side} error ({original_status}) from primary with message "{original_message}". '
                f"See https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#logEventViewer:group={log_group} in account {self.account_id} for more information."
            ),
            "OriginalMessage": original_message,
            "OriginalStatusCode": original_status,
        }
        return _aws_error(424, "ModelError", body=body)


def _too_large() -> tuple[int, dict, bytes]:
    # No error type: botocore then names the error by its status, "(413)", as users report SageMaker's.
    message = f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."
    return 413, {"Content-Type": "application/json", "Connection": "close"}, json.dumps({"message": message}).encode()


def _aws_error(status: int, code: str, message: str | None = None, body: dict | None = None) -> tuple[int, dict, bytes]:
    # botocore reads the error code from this header, up to the first ':'.
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazonaws.sagemaker/"
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
    return status, headers, json.dumps(body if body is not None else {"message": message}).encode()


class _App:
    """The ASGI app: routes, reads the body, and runs the backend on `workers`, never on the event loop."""

    OPERATIONS = ("invocations", "invocations-response-stream")

    def __init__(self, runtime: RuntimeServer, workers: DaemonPool) -> None:
        self.runtime = runtime
        self.workers = workers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        path = f"{raw_path}?{query}" if query else raw_path
        try:
            body = await read_body(receive, max_bytes=MAX_BODY_BYTES)
        except BodyTooLarge:
            await _answer(send, *_too_large())
            return
        if body is None:  # the client went away, or stalled mid-body
            close_connection(scope)
            return
        if scope["method"] != "POST":
            no_operation = f"No operation at {scope['method']} {path}"
            await _answer(send, *_aws_error(404, "UnknownOperationException", no_operation))
            return
        parts = raw_path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in self.OPERATIONS:
            await _answer(send, *_aws_error(404, "UnknownOperationException", f"No operation at {path}"))
            return
        endpoint = unquote(parts[1])
        stream = parts[2] == "invocations-response-stream"
        loop = asyncio.get_running_loop()
        headers = request_headers(scope)
        try:
            result = await loop.run_in_executor(self.workers, self.runtime._invoke, endpoint, body, headers, stream)
        except Exception as exc:  # noqa: BLE001 - a broken backend is an internal failure, not a hung client
            result = _aws_error(500, "InternalFailure", f"backend raised {type(exc).__name__}: {exc}")
        if result is None:
            close_connection(scope)
        elif isinstance(result, _Stream):
            await self._send_stream(result, receive, send)
        else:
            await _answer(send, *result)

    async def _send_stream(self, stream: _Stream, receive: Receive, send: Send) -> None:
        """200, then each piece as a PayloadPart in its own HTTP chunk, sent as the backend yields it.

        Each piece is drawn on a worker thread; the client leaving stops the drawing at the next piece.
        """
        headers = [
            (b"content-type", eventstream.CONTENT_TYPE.encode()),
            (b"x-amzn-sagemaker-content-type", stream.content_type.encode("latin-1")),
            (b"x-amzn-invoked-production-variant", b"AllTraffic"),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(_until_disconnected(receive))
        loop = asyncio.get_running_loop()
        sent, failed = 0, False
        try:
            while not gone.done() and (stream.break_after is None or sent < stream.break_after):
                try:
                    piece = await loop.run_in_executor(self.workers, next, stream.pieces, None)
                except Exception as exc:  # noqa: BLE001 - a backend failing mid-answer is a broken stream
                    await _part(send, _stream_error(f"backend raised {exc}", STREAM_BROKEN))
                    failed = True
                    break
                if piece is None:
                    break
                if piece:
                    await _part(send, eventstream.payload_part(piece))
                    sent += 1
            if stream.break_after is not None and not failed:
                await _part(send, _stream_error("Model stream broken (injected).", stream.error_code))
        finally:
            gone.cancel()
        if isinstance(stream.pieces, Generator):  # one left unfinished runs its cleanup, off the loop
            await loop.run_in_executor(self.workers, stream.pieces.close)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(send: Send, status: int, headers: dict, body: bytes) -> None:
    await answer(send, status, {**headers, "x-amzn-RequestId": str(uuid.uuid4())}, body)


def _stream_error(message: str, error_code: str) -> bytes:
    return eventstream.stream_error(eventstream.MODEL_STREAM_ERROR, message, error_code)


async def _part(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
