"""API Gateway's own errors, in the forwarder's OpenAI shape.

Without gateway responses API Gateway answers a missing key, a bad key, throttling, the
quota, an oversized body or an integration timeout with `{"message": ...}`, which OpenAI
clients cannot read. Each response here gives `{"error": {"message", "type", "param",
"code", "request_id"}}`, the body lambda/forwarder/errors.py writes. The error types,
Retry-After values and, where the forwarder has the same condition, status and code come
from that file (loaded by path, as the Lambda loads it): one source for both sides.

Pure data, no CDK: stacks/api.py turns it into AWS::ApiGateway::GatewayResponse, and the
local gateway can answer the same bodies.

Facts (read 2026-12-02):
- Response types and default status codes: API Gateway developer guide,
  https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
- Templates allow only simple variable substitution (no VTL); `$context.error.messageString`
  is the already-quoted message: https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.responseTemplates.html
- The openai Python client retries 408/409/429/5xx twice unless the answer carries
  `x-should-retry: false` (openai/openai-python, src/openai/_base_client.py `_should_retry`):
  a 504 after a long generation would otherwise be generated three times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType

from ownllm.forwarder import forwarder_module

# API Gateway's own text, already a quoted JSON string; used where ours would say less.
GATEWAY_MESSAGE = "$context.error.messageString"
NO_RETRY = {"x-should-retry": "false"}


def forwarder_errors() -> ModuleType:
    """lambda/forwarder/errors.py as a module (it is dependency-free by design)."""
    return forwarder_module("errors")


@dataclass(frozen=True)
class GatewayError:
    response_type: str  # API Gateway's name for the condition
    status: int | None  # None keeps API Gateway's own status (DEFAULT_4XX/DEFAULT_5XX)
    type: str
    code: str
    message: str | None  # None: API Gateway's own message
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, gateway_message: str, request_id: str) -> bytes:
        """The body the deployed API answers, with the template's variables filled in (for the
        local gateway): gateway_message is API Gateway's own text for the condition."""
        error = {
            "message": gateway_message if self.message is None else self.message,
            "type": self.type,
            "param": None,
            "code": self.code,
            "request_id": request_id,
        }
        return json.dumps({"error": error}).encode()

    def template(self) -> str:
        """The application/json body template: the forwarder's shape, request id included."""
        message = GATEWAY_MESSAGE if self.message is None else json.dumps(self.message)
        return (
            f'{{"error": {{"message": {message}, "type": {json.dumps(self.type)}, "param": null, '
            f'"code": {json.dumps(self.code)}, "request_id": "$context.requestId"}}}}'
        )


def gateway_errors(*, quota_per_day: int) -> tuple[GatewayError, ...]:
    """Every gateway response type API Gateway documents, in the forwarder's words."""
    e = forwarder_errors()
    key_help = "Send the API key as 'Authorization: Bearer <key>' (OpenAI clients' api_key) or as 'x-api-key'."
    unknown = e.unknown_route("GET", "/")
    too_large = e.request_too_large(0, 0)
    internal = e.internal("")
    throttled = e.map_upstream(e.UpstreamFailure("service", code="ThrottlingException"))
    timeout = e.map_upstream(e.UpstreamFailure("read_timeout"))
    server, invalid, rate = e.SERVER, e.INVALID_REQUEST, e.RATE_LIMIT
    return (
        GatewayError("UNAUTHORIZED", 401, invalid, "missing_api_key", f"No API key was sent. {key_help}"),
        GatewayError("INVALID_API_KEY", 403, invalid, "invalid_api_key", f"The API key is not valid. {key_help}"),
        GatewayError("ACCESS_DENIED", 403, invalid, "invalid_api_key", f"The API key is not valid. {key_help}"),
        GatewayError("EXPIRED_TOKEN", 403, invalid, "invalid_api_key", None),
        GatewayError("INVALID_SIGNATURE", 403, invalid, "invalid_api_key", None),
        # This API has no IAM-authorized methods, so this answer means an unknown path.
        GatewayError(
            "MISSING_AUTHENTICATION_TOKEN",
            unknown.status,
            unknown.type,
            unknown.code,
            "Unknown request URL. Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.",
        ),
        GatewayError("RESOURCE_NOT_FOUND", unknown.status, unknown.type, unknown.code, None),
        GatewayError(
            "REQUEST_TOO_LARGE",
            413,
            too_large.type,
            too_large.code,
            "Request body is larger than API Gateway's 10 MB limit.",
        ),
        GatewayError("UNSUPPORTED_MEDIA_TYPE", 415, invalid, "unsupported_media_type", None),
        GatewayError("BAD_REQUEST_PARAMETERS", 400, invalid, "invalid_value", None),
        GatewayError("BAD_REQUEST_BODY", 400, invalid, "invalid_value", None),
        GatewayError(
            "THROTTLED",
            throttled.status,
            throttled.type,
            throttled.code,
            "Too many requests for this API key; slow down and retry.",
            dict(throttled.headers),
        ),
        # Retrying soon cannot help: the quota only resets with the next period.
        GatewayError(
            "QUOTA_EXCEEDED",
            429,
            rate,
            "quota_exceeded",
            f"This API key has used its quota of {quota_per_day} requests per day; it resets at the start of "
            "the next day.",
            dict(NO_RETRY),
        ),
        GatewayError("WAF_FILTERED", 403, invalid, "request_blocked", None),
        GatewayError(
            "INTEGRATION_TIMEOUT", 504, timeout.type, timeout.code, timeout.message, {**timeout.headers, **NO_RETRY}
        ),
        GatewayError("INTEGRATION_FAILURE", 504, internal.type, internal.code, None, dict(NO_RETRY)),
        GatewayError("AUTHORIZER_FAILURE", 500, server, "authorizer_error", None),
        GatewayError("AUTHORIZER_CONFIGURATION_ERROR", 500, server, "authorizer_error", None),
        GatewayError("API_CONFIGURATION_ERROR", 500, server, "configuration_error", None),
        GatewayError("DEFAULT_4XX", None, invalid, "invalid_request", None),
        GatewayError("DEFAULT_5XX", None, server, internal.code, None),
    )
