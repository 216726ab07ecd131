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
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

from ownllm.local import eventstream
from ownllm.local.standin import StandIn

__all__ = ["FAULTS", "RecordedRequest", "RuntimeServer", "StandIn"]

Backend = Callable[[str, bytes, dict], "tuple[int, dict, bytes]"]


@runtime_checkable
class StreamingBackend(Protocol):
    """A backend that can also answer piece by piece (StandIn)."""

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]: ...

    def stream(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, Iterator[bytes]]: ...


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


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses connections when many clients connect at once.
    request_queue_size = 128
    daemon_threads = True


class RuntimeServer:
    """SageMaker runtime's InvokeEndpoint on a local port, in a daemon thread.

    endpoint_names, when given, limits which endpoints exist (others answer SageMaker's
    'Endpoint ... not found' ValidationError). The last `keep_requests` requests are kept
    in `requests` for tests to inspect.
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
        keep_requests: int = 1000,
    ):
        self.backend = backend
        self.host, self.port = host, port
        self._requested_port = port  # 0: any free port, chosen again on each start
        self.endpoint_names = None if endpoint_names is None else frozenset(endpoint_names)
        self.account_id, self.region = account_id, region
        self.requests: deque[RecordedRequest] = deque(maxlen=keep_requests)
        self._fault: _Fault | None = None
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RuntimeServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"runtime": self})
        httpd = _Server((self.host, self._requested_port), handler)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        # A short poll interval: stop() returns in ~50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sagemaker-runtime:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("RuntimeServer is not started; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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


def _aws_error(status: int, code: str, message: str | None = None, body: dict | None = None) -> tuple[int, dict, bytes]:
    # botocore reads the error code from this header, up to the first ':'.
    error_type = f"{code}:http://internal.amazon.com/coral/com.amazonaws.sagemaker/"
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
    return status, headers, json.dumps(body if body is not None else {"message": message}).encode()


class _Handler(BaseHTTPRequestHandler):
    runtime: RuntimeServer  # bound per server in RuntimeServer.start
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        operations = ("invocations", "invocations-response-stream")
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] not in operations:
            self._send(*_aws_error(404, "UnknownOperationException", f"No operation at {self.path}"))
            return
        endpoint = unquote(parts[1])
        stream = parts[2] == "invocations-response-stream"
        try:
            result = self.runtime._invoke(endpoint, body, {k.lower(): v for k, v in self.headers.items()}, stream)
        except Exception as exc:  # noqa: BLE001 - a broken backend is an internal failure, not a hung client
            result = _aws_error(500, "InternalFailure", f"backend raised {type(exc).__name__}: {exc}")
        if result is None:
            self.close_connection = True
            return
        if isinstance(result, _Stream):
            self._send_stream(result)
            return
        self._send(*result)

    def do_GET(self) -> None:
        self._send(*_aws_error(404, "UnknownOperationException", f"No operation at GET {self.path}"))

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (read timeout)
            self.close_connection = True

    def _send_stream(self, stream: _Stream) -> None:
        """200, then each piece as a PayloadPart in its own HTTP chunk, written as it comes."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", eventstream.CONTENT_TYPE)
            self.send_header("X-Amzn-SageMaker-Content-Type", stream.content_type)
            self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            try:
                for piece in stream.pieces:
                    if stream.break_after is not None and sent >= stream.break_after:
                        break
                    if piece:
                        self._chunk(eventstream.payload_part(piece))
                        sent += 1
            except Exception as exc:  # noqa: BLE001 - a backend failing mid-answer is a broken stream
                self._chunk(eventstream.stream_error("ModelStreamError", f"backend raised {exc}", STREAM_BROKEN))
            else:
                if stream.break_after is not None:
                    message = "Model stream broken (injected)."
                    self._chunk(eventstream.stream_error("ModelStreamError", message, stream.error_code))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-stream
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benches read stdout
        pass
