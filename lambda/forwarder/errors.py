"""Every error the API answers, in OpenAI's shape, and the one mapping from upstream failures.

Pure: no AWS import. `upstream.py` turns botocore's exceptions into an UpstreamFailure
(plain data); `map_upstream` decides, in this one place, what the client sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import contract
from wire import error_message

INVALID_REQUEST = "invalid_request_error"
RATE_LIMIT = "rate_limit_error"
SERVER = "server_error"


@dataclass
class ApiError(Exception):
    """An answer other than 2xx. `error_class` labels the Errors metric and the log line."""

    status: int
    message: str
    type: str = INVALID_REQUEST
    param: str | None = None
    code: str | None = None
    error_class: str = "invalid_request"
    headers: dict[str, str] = field(default_factory=dict)
    log_detail: str | None = None  # for the log only: never sent to the client

    def __post_init__(self) -> None:
        # The stacks declare and price one Errors metric per contract.ERROR_CLASSES: an undeclared
        # class would be an unpriced metric.
        if self.error_class not in contract.ERROR_CLASSES:
            raise ValueError(f"error_class {self.error_class!r} is not one of ERROR_CLASSES")
        super().__init__(self.message)

    def body(self, request_id: str | None) -> str:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if request_id:
            error["request_id"] = request_id
        return json.dumps({"error": error})


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, INVALID_REQUEST, param, code)


def missing(param: str) -> ApiError:
    return ApiError(
        400, f"Missing required parameter: '{param}'.", INVALID_REQUEST, param, "missing_required_parameter"
    )


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def wrong_type(param: str, expected: str, value: object) -> ApiError:
    got = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
    return ApiError(
        400, f"Invalid type for '{param}': expected {expected}, but got {got}.", INVALID_REQUEST, param, "invalid_type"
    )


def request_too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body is {size} bytes; this API accepts at most {limit} bytes (MAX_REQUEST_BYTES).",
        INVALID_REQUEST,
        None,
        "request_too_large",
    )


def model_not_found(name: str, available: tuple[str, ...]) -> ApiError:
    return ApiError(
        404,
        f"The model '{name}' does not exist on this endpoint. Available: {', '.join(available)}.",
        INVALID_REQUEST,
        "model",
        "model_not_found",
        error_class="model_not_found",
    )


def unknown_route(method: str, path: str) -> ApiError:
    return ApiError(
        404,
        f"Unknown request URL: {method} {path}. Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.",
        INVALID_REQUEST,
        None,
        "unknown_url",
        error_class="unknown_route",
    )


def method_not_allowed(method: str, path: str, allowed: str) -> ApiError:
    return ApiError(
        405,
        f"{method} is not allowed on {path}; use {allowed}.",
        INVALID_REQUEST,
        None,
        "method_not_allowed",
        error_class="method_not_allowed",
        headers={"Allow": allowed},
    )


def configuration(detail: str) -> ApiError:
    return ApiError(
        500,
        "The API is misconfigured and cannot reach its model; the operator has been notified in the logs.",
        SERVER,
        None,
        "configuration_error",
        error_class="configuration",
        log_detail=detail,
    )


def internal(detail: str) -> ApiError:
    return ApiError(500, "Internal error.", SERVER, None, "internal_error", error_class="internal", log_detail=detail)


def bad_upstream_answer(detail: str) -> ApiError:
    return ApiError(
        502,
        "The model server answered something this API could not read.",
        SERVER,
        None,
        "bad_upstream_response",
        error_class="upstream_error",
        log_detail=detail,
    )


# -- upstream ------------------------------------------------------------------------------


@dataclass
class UpstreamFailure(Exception):
    """What went wrong calling InvokeEndpoint, as plain data.

    kind: "service" (SageMaker answered an error: code, http_status, message, and for
    ModelError original_status/original_message), "read_timeout", "connect" (could not
    connect, or the connection closed without an answer), or "other".
    """

    kind: str
    code: str | None = None
    http_status: int | None = None
    message: str = ""
    original_status: int | None = None
    original_message: str | None = None
    attempts: int = 1

    def __post_init__(self) -> None:
        super().__init__(f"{self.kind}:{self.code}:{self.message}")


# Seconds a client should wait before trying again, per condition (Retry-After).
RETRY_AFTER_THROTTLED_S = 1
RETRY_AFTER_NOT_READY_S = 30
RETRY_AFTER_UNAVAILABLE_S = 5
# An inference component at zero copies: SageMaker's step scaling adds one after its alarm
# (about a minute), then an instance starts and loads the weights. AWS's scale-to-zero
# announcement (AWS ML blog, 2024-12-03) puts the whole wake at about 5-10 minutes for a
# 7-8B model; nobody has measured it on this kit yet.
RETRY_AFTER_STARTING_S = 60
NO_RETRY = {"x-should-retry": "false"}
WAKE_MINUTES = "5-10"
_CONFIG_CODES = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "UnknownOperationException",
}


def engine_message(original: str | None) -> str:
    """The human part of an engine's JSON error body (wire.error_message), bounded; "" for
    anything else: text that is not the engine's own error object (an HTML page, a stack trace,
    a proxy's answer) is not passed on to clients."""
    if not original:
        return ""
    try:
        parsed = json.loads(original)
    except ValueError:
        return ""
    return error_message(parsed)


def _upstream(
    status: int, message: str, type_: str, code: str, error_class: str, detail: str, retry_after: int | None = None
) -> ApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(status, message, type_, None, code, error_class, headers, detail)


def map_upstream(f: UpstreamFailure) -> ApiError:
    """The client's answer for an upstream failure. The one place SageMaker errors are mapped."""
    detail = f"{f.kind} {f.code} http={f.http_status} original={f.original_status} attempts={f.attempts}"
    if f.code != "ModelError":  # an engine's own text may quote the prompt: it stays in the engine's log group
        detail += f": {f.message}"
    if f.kind == "read_timeout":
        timed_out = _upstream(
            504,
            "The model did not answer in time. Ask for fewer tokens (max_tokens) or try again.",
            SERVER,
            "timeout",
            "timeout",
            detail,
        )
        # The openai client retries a 5xx twice unless told not to: a generation that ran out of
        # time would run three times (openai-python _base_client.py, _should_retry).
        timed_out.headers.update(NO_RETRY)
        return timed_out
    if f.kind == "connect":
        return _upstream(
            502, "Could not reach the model endpoint.", SERVER, "upstream_unreachable", "upstream_error", detail
        )
    code = f.code or ""
    if code == "ModelError":  # the container answered an error; SageMaker passes on its status
        original = f.original_status
        if original in (401, 403):  # the engine refused its own caller: our configuration, not the request
            return configuration(f"the engine answered {original}: {detail}")
        if original is not None and 400 <= original < 500:
            why = engine_message(f.original_message) or "the model server rejected the request"
            if original == 429:
                return _upstream(
                    429,
                    f"The model server is busy: {why}",
                    RATE_LIMIT,
                    "rate_limit_exceeded",
                    "throttled",
                    detail,
                    RETRY_AFTER_THROTTLED_S,
                )
            status = original if original in (400, 404, 413, 422) else 400
            return _upstream(
                status,
                f"The model rejected the request: {why}",
                INVALID_REQUEST,
                "model_rejected_request",
                "upstream_client_error",
                detail,
            )
        shown = original if original is not None else "unknown"
        return _upstream(
            502, f"The model server failed (status {shown}).", SERVER, "upstream_error", "upstream_error", detail
        )
    # A bare 429 (a code SageMaker does not document) means too many requests as well.
    if code in ("ThrottlingException", "Throttling", "TooManyRequestsException") or (
        f.http_status == 429 and code != "ModelNotReadyException"
    ):
        return _upstream(
            429,
            "Too many requests for the model endpoint; slow down and retry.",
            RATE_LIMIT,
            "rate_limit_exceeded",
            "throttled",
            detail,
            RETRY_AFTER_THROTTLED_S,
        )
    if code == "ModelNotReadyException":
        return _upstream(
            503,
            "The model is not ready yet (starting or scaling). Retry shortly.",
            SERVER,
            "model_not_ready",
            "not_ready",
            detail,
            RETRY_AFTER_NOT_READY_S,
        )
    if code in ("ServiceUnavailable", "ServiceUnavailableException") or f.http_status == 503:
        return _upstream(
            503,
            "The model endpoint is temporarily unavailable. Retry shortly.",
            SERVER,
            "service_unavailable",
            "unavailable",
            detail,
            RETRY_AFTER_UNAVAILABLE_S,
        )
    if code == "ValidationError" and "no capacity" in f.message.lower():
        # "Inference Component has no capacity to process this request": scaled to zero. This
        # very failure emits NoCapacityInvocationFailures, the metric whose alarm wakes it.
        return _upstream(
            503,
            f"The model is scaled to zero and is starting now; that takes about {WAKE_MINUTES} minutes "
            f"for a 7-8B model. Retry after {RETRY_AFTER_STARTING_S} s.",
            SERVER,
            "model_starting",
            "starting",
            detail,
            RETRY_AFTER_STARTING_S,
        )
    if code == "ValidationError" and "endpoint" in f.message.lower() and "not found" in f.message.lower():
        return configuration(f"endpoint missing: {detail}")
    if code in _CONFIG_CODES:
        return configuration(detail)
    if code == "ValidationError":  # SageMaker refused the request this function built: our bug
        return internal(detail)
    return _upstream(502, "The model endpoint failed.", SERVER, "upstream_error", "upstream_error", detail)
