"""The calls this function makes: InvokeEndpoint, bounded by the time API Gateway allows, and
InvokeEndpointWithResponseStream for token streaming.

The client is created once, at import, from botocore alone (boto3's resource layer is
not needed for one low-level call and costs cold-start time). Its endpoint comes from the
environment (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME), so tests point it at a local server.

Time budget: SageMaker stops waiting for the model at 60 s (InvokeEndpoint), API Gateway at 29 s
off the completion routes, and botocore's defaults (60 s reads, legacy retries) would outlive
either. Standard-mode retries (throttling, 5xx, dropped connections)
are kept, but bounded by the caller's deadline:
- before each attempt, its read timeout is set to the time left (botocore reads
  `read_timeout` from the request context, botocore/botocore#3770, in 1.44.5 here). Older
  botocore cannot shorten one attempt's read timeout, so there the call runs in a helper
  thread and the caller stops waiting at the deadline (the attempt left behind ends at the
  client's read timeout, and starts no retry);
- a retry is never started with less than MIN_ATTEMPT_S left (checked before the backoff
  sleep and again before sending): the previous attempt's failure is what the client is
  told about;
- a buffered answer's body is read piece by piece, each read waiting at most the time left,
  so an answer that arrives slowly cannot outlive the deadline either (a socket timeout
  alone bounds each read, not the whole body).

Streaming: the same hooks bound the attempts until SageMaker answers; `deadline` is then
the time by which the first chunk must arrive, and each later read may wait at most the
read timeout that attempt got (the gap between two parts). The first chunk is read before
invoke_stream returns, so every failure until then is still an HTTP status; later ones
end the stream in-band (streaming.sse_stream). IAM: the streaming call is authorised by
`sagemaker:InvokeEndpoint` too (botocore's sagemaker-runtime service model,
InvokeEndpointWithResponseStream documentation).
"""

from __future__ import annotations

import contextvars
import platform
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import botocore
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)
from botocore.httpsession import URLLib3Session
from botocore.response import StreamingBody
from contract import MAX_ANSWER_BYTES
from errors import ApiError, UpstreamFailure, bad_upstream_answer
from streaming import Normaliser, sse_stream
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError
from urllib3.response import BaseHTTPResponse

if TYPE_CHECKING:
    from botocore.awsrequest import AWSResponse
    from botocore.eventstream import EventStream
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sagemaker_runtime.type_defs import ResponseStreamTypeDef

T = TypeVar("T")

OPERATION = "sagemaker-runtime.InvokeEndpoint"
STREAM_OPERATION = "sagemaker-runtime.InvokeEndpointWithResponseStream"
# Below this, an attempt (connect, send, queue, generate a few tokens) is not worth starting.
MIN_ATTEMPT_S = 2.0
# Recent botocore (1.44.5 here) reads a per-request read timeout from the request context
# (botocore/botocore#3770: URLLib3Session._get_request_timeout). Without it, the client's fixed
# read timeout applies to every attempt, and the caller enforces the deadline by waiting (_bounded).
PER_REQUEST_READ_TIMEOUT = hasattr(URLLib3Session, "_get_request_timeout")
# A buffered answer is read in pieces of at most this many bytes, one socket read each.
READ_PIECE_BYTES = 64 * 1024


class _RetryBudgetSpent(Exception):
    """Raised from needs-retry or before-send: another attempt could not finish in time."""


@dataclass
class _Call:
    deadline: float  # time.monotonic() by which the answer must be back
    connect_timeout_s: float
    read_timeout_s: float
    attempts: int = 0
    last_failure: UpstreamFailure | None = None
    answer: BaseHTTPResponse | None = None  # the HTTP body of the attempt that succeeded


_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("ownllm_upstream_call", default=None)


@dataclass(frozen=True)
class Invocation:
    body: bytes
    latency_ms: float
    attempts: int


# A fixed User-Agent: botocore otherwise rebuilds and sanitises its many-part one, character
# by character, twice per request (about a quarter of botocore's own CPU time per call).
USER_AGENT = f"ownllm-forwarder botocore/{botocore.__version__} Python/{platform.python_version()}"


def create_client(connect_timeout_s: float, read_timeout_s: float, max_attempts: int) -> SageMakerRuntimeClient:
    # botocore builds the client class at run time; the stub names what it builds.
    client: SageMakerRuntimeClient = cast(
        "SageMakerRuntimeClient",
        botocore.session.get_session().create_client(
            "sagemaker-runtime",
            config=BotoConfig(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                tcp_keepalive=True,
                user_agent=USER_AGENT,
                parameter_validation=False,  # the parameters are built here, never by a client
            ),
        ),
    )
    for operation in (OPERATION, STREAM_OPERATION):
        client.meta.events.register(f"before-send.{operation}", _before_send)
        client.meta.events.register(f"response-received.{operation}", _response_received)
        # First, so a retry that cannot finish is given up before botocore sleeps its backoff.
        client.meta.events.register_first(f"needs-retry.{operation}", _needs_retry)
    return client


def _before_send(request: Any, **_kwargs: Any) -> None:  # AWSPreparedRequest; its stubs lack `context`
    call = _CURRENT.get()
    if call is None:
        return
    left = call.deadline - time.monotonic()
    if call.attempts >= 1 and left < MIN_ATTEMPT_S:
        raise _RetryBudgetSpent()
    call.attempts += 1
    if PER_REQUEST_READ_TIMEOUT:
        # This attempt gets whatever is left after connecting: it cannot outlive the deadline.
        request.context["read_timeout"] = max(min(call.read_timeout_s, left - call.connect_timeout_s), 0.1)


def _needs_retry(
    response: tuple[AWSResponse, Any] | None = None, caught_exception: BaseException | None = None, **_kwargs: Any
) -> None:
    call = _CURRENT.get()
    if call is None:
        return None
    failed = caught_exception is not None or (response is not None and response[0].status_code >= 300)
    if failed and call.deadline - time.monotonic() < MIN_ATTEMPT_S:
        raise _RetryBudgetSpent()
    if response is not None and not failed:
        call.answer = response[0].raw  # read by _read_answer, with the deadline in mind
    return None  # botocore's standard retry handler decides the rest


def _response_received(
    parsed_response: Any = None,
    exception: BaseException | None = None,
    response_dict: dict[str, Any] | None = None,
    **_kwargs: Any,
) -> None:
    """Remember each failed attempt, so a retry cut short reports what actually failed."""
    call = _CURRENT.get()
    if call is None:
        return
    if isinstance(exception, _RetryBudgetSpent):
        return  # not a failure of the endpoint: keep the attempt that did fail
    if exception is not None:
        call.last_failure = failure_from_exception(exception, call.attempts)
    elif isinstance(parsed_response, dict) and "Error" in parsed_response:
        status = (response_dict or {}).get("status_code")
        call.last_failure = _failure_from_parsed(parsed_response, status, call.attempts)


@contextmanager
def _calling(call: _Call) -> Iterator[None]:
    """One InvokeEndpoint call under its deadline: whatever goes wrong leaves as an UpstreamFailure."""
    token = _CURRENT.set(call)
    try:
        yield
    except _RetryBudgetSpent:
        failure = call.last_failure or UpstreamFailure("read_timeout", message="no time left for another attempt")
        failure.attempts = call.attempts
        raise failure from None
    except UpstreamFailure:
        raise
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise _failure_from_parsed(exc.response, status, call.attempts) from None
    except Exception as exc:  # noqa: BLE001 - botocore's connection and timeout errors, and anything else on the wire
        raise failure_from_exception(exc, call.attempts) from None
    finally:
        _CURRENT.reset(token)


def invoke(
    client: SageMakerRuntimeClient,
    endpoint_name: str,
    body: bytes,
    *,
    deadline: float,
    connect_timeout_s: float,
    read_timeout_s: float,
    inference_component: str | None = None,
) -> Invocation:
    """POST the body to the endpoint (to its inference component, when it hosts one); raise
    UpstreamFailure for anything but an answer."""
    call = _Call(deadline, connect_timeout_s, read_timeout_s)
    started = time.perf_counter()
    params = {"ContentType": "application/json", "Accept": "application/json"}
    if inference_component:
        params["InferenceComponentName"] = inference_component
    with _calling(call):
        response = _bounded(call, lambda: client.invoke_endpoint(EndpointName=endpoint_name, Body=body, **params))
        payload = _read_answer(call, response["Body"])
    if len(payload) > MAX_ANSWER_BYTES:  # Lambda answers at most 6 MB; a bigger one is not an answer
        raise bad_upstream_answer(f"answer over {MAX_ANSWER_BYTES} bytes")
    return Invocation(payload, (time.perf_counter() - started) * 1000, call.attempts)


def _bounded(call: _Call, attempts: Callable[[], T]) -> T:
    """botocore's call with its retries. Where an attempt's read timeout cannot be shortened (older
    botocore), it runs in a helper thread and the caller waits only until the deadline."""
    if PER_REQUEST_READ_TIMEOUT:
        return attempts()
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()
    context = contextvars.copy_context()  # the attempts' hooks see this call

    def run() -> None:
        try:
            outcome.append(context.run(attempts))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who maps it
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="ownllm-upstream", daemon=True).start()
    if not done.wait(max(call.deadline - time.monotonic(), 0.0)):
        # The attempt under way is left to end at the client's read timeout; needs-retry then
        # finds no time left and starts nothing more.
        raise UpstreamFailure("read_timeout", message="no answer before the deadline", attempts=call.attempts)
    if failure:
        raise failure[0]
    return outcome[0]


def _read_answer(call: _Call, body: StreamingBody) -> bytes:
    """The answer's body, at most MAX_ANSWER_BYTES + 1 bytes, read by the deadline.

    A socket timeout bounds one read, not the body: an engine (or a proxy) that sends a byte now
    and then would keep one big read going. So each piece is one socket read (read1) waiting at
    most the time left."""
    raw = call.answer
    if raw is None:  # no HTTP answer behind it (botocore's Stubber): read it whole
        return body.read(MAX_ANSWER_BYTES + 1)
    pieces: list[bytes] = []
    size = 0
    try:
        while size <= MAX_ANSWER_BYTES:
            left = call.deadline - time.monotonic()
            if left <= 0:
                raise UpstreamFailure(
                    "read_timeout", message="the answer was still arriving at the deadline", attempts=call.attempts
                )
            if not raw.closed:
                body.set_socket_timeout(left)
            piece = raw.read1(min(READ_PIECE_BYTES, MAX_ANSWER_BYTES + 1 - size))
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
    except URLLib3ReadTimeoutError as exc:
        raise ReadTimeoutError(endpoint_url=str(exc.url), error=exc) from None
    finally:
        body.close()
    return b"".join(pieces)


@dataclass(frozen=True)
class StreamedInvocation:
    chunks: Generator[bytes, None, None]  # the client's SSE bytes (the first already read); close() to stop
    first_chunk_ms: float  # from the call to the first chunk, retries included
    attempts: int


def invoke_stream(
    client: SageMakerRuntimeClient,
    endpoint_name: str,
    body: bytes,
    normaliser: Normaliser,
    request_id: str | None,
    *,
    deadline: float,
    connect_timeout_s: float,
    read_timeout_s: float,
    inference_component: str | None = None,
    stream_deadline: float | None = None,
) -> StreamedInvocation:
    """Stream the engine's answer as OpenAI chunks.

    Raises UpstreamFailure or ApiError (a status can still be chosen) for anything that goes
    wrong before the first chunk. After it, failures end the stream in-band, and so does
    reaching stream_deadline (time.monotonic(): what the front door allows a stream).
    """
    call = _Call(deadline, connect_timeout_s, read_timeout_s)
    started = time.perf_counter()
    params = {"ContentType": "application/json"}
    if inference_component:
        params["InferenceComponentName"] = inference_component
    with _calling(call):
        response = _bounded(
            call,
            lambda: client.invoke_endpoint_with_response_stream(EndpointName=endpoint_name, Body=body, **params),
        )
    parts = _parts(response["Body"], call.attempts, stream_deadline)
    chunks = sse_stream(parts, normaliser, request_id)
    try:
        first = next(chunks, b"")
    except (UpstreamFailure, ApiError):
        parts.close()
        raise
    return StreamedInvocation(_resumed(first, chunks, parts), (time.perf_counter() - started) * 1000, call.attempts)


def _resumed(
    first: bytes, chunks: Iterator[bytes], parts: Generator[bytes, None, None]
) -> Generator[bytes, None, None]:
    """The first chunk again, then the rest; closing it (a client gone) closes SageMaker's stream."""
    try:
        yield first
        yield from chunks
    finally:
        parts.close()


def _parts(
    events: EventStream[ResponseStreamTypeDef], attempts: int, until: float | None
) -> Generator[bytes, None, None]:
    """The PayloadPart bytes; SageMaker's stream errors and timeouts as UpstreamFailure."""
    try:
        for event in events:
            part = event.get("PayloadPart")
            if part is not None:
                yield part["Bytes"]
            if until is not None and time.monotonic() > until:
                raise UpstreamFailure(
                    "read_timeout", message="the stream outlived the time the API allows", attempts=attempts
                )
    except EventStreamError as exc:  # ModelStreamError, InternalStreamFailure
        raise _failure_from_parsed(exc.response, None, attempts) from None
    except UpstreamFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - a read timeout or dropped connection mid-stream
        raise failure_from_exception(exc, attempts) from None
    finally:
        events.close()  # a stream cut short (deadline, client gone) releases its connection


def _failure_from_parsed(parsed: Mapping[str, Any], status: int | None, attempts: int) -> UpstreamFailure:
    error = parsed.get("Error") or {}
    original = parsed.get("OriginalStatusCode")
    return UpstreamFailure(
        "service",
        code=error.get("Code"),
        http_status=status,
        message=str(error.get("Message") or ""),
        original_status=original if isinstance(original, int) else None,
        original_message=parsed.get("OriginalMessage"),
        attempts=attempts,
    )


def failure_from_exception(exc: BaseException, attempts: int) -> UpstreamFailure:
    if isinstance(exc, ReadTimeoutError):
        kind = "read_timeout"
    elif isinstance(exc, (ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError)):
        kind = "connect"
    else:
        kind = "other"
    return UpstreamFailure(kind, code=type(exc).__name__, message=str(exc)[:500], attempts=attempts)
