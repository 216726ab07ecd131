"""The request path's contract: the facts both sides of the forwarder's boundary need, once.

The Lambda reads this file as its own module (`import contract`); the stacks, the local stack,
the settings and the cost model load it by path (ownllm.forwarder.forwarder_module("contract")).
Standard library only, and no import of another asset module, so either side can load it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- engines ---------------------------------------------------------------------------------

# The inference containers the kit deploys and the forwarder speaks to (wire.py: their bodies).
ENGINES = ("vllm", "lmi", "tgi")

# -- environment: what the forwarder reads (config.py), what the stacks set (ownllm/forwarder.py) --

ENDPOINT_NAME = "ENDPOINT_NAME"  # required: the SageMaker endpoint to invoke
ENGINE = "ENGINE"  # required: one of ENGINES
MODEL_NAME = "MODEL_NAME"  # required: the served model name clients pass as `model`
ADAPTERS = "ADAPTERS"  # comma-separated LoRA adapter names, also valid as `model`
MAX_REQUEST_BYTES = "MAX_REQUEST_BYTES"
MAX_INPUT_TOKENS = "MAX_INPUT_TOKENS"
# The forwarder caps max_tokens at MAX_TOTAL_TOKENS - MAX_INPUT_TOKENS.
MAX_TOTAL_TOKENS = "MAX_TOTAL_TOKENS"
DEFAULT_MAX_TOKENS = "DEFAULT_MAX_TOKENS"
# The max_tokens cap with stream: true (a stream may run to the function's longer timeout).
MAX_STREAM_TOKENS = "MAX_STREAM_TOKENS"
LOG_PROMPTS = "LOG_PROMPTS"
# Set when the model runs as an inference component (the scale-to-zero topology).
INFERENCE_COMPONENT_NAME = "INFERENCE_COMPONENT_NAME"
# The upstream call budget; the stacks leave them to their defaults.
UPSTREAM_CONNECT_TIMEOUT_S = "UPSTREAM_CONNECT_TIMEOUT_S"
UPSTREAM_READ_TIMEOUT_S = "UPSTREAM_READ_TIMEOUT_S"
UPSTREAM_MAX_ATTEMPTS = "UPSTREAM_MAX_ATTEMPTS"
# Read by Powertools (Logger, Metrics): the service dimension and the metrics namespace.
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"

# Every variable the forwarder's code reads from its environment, besides what Lambda,
# Lambda Web Adapter and botocore set and read themselves.
ENVIRONMENT = (
    ENDPOINT_NAME,
    ENGINE,
    MODEL_NAME,
    ADAPTERS,
    MAX_REQUEST_BYTES,
    MAX_INPUT_TOKENS,
    MAX_TOTAL_TOKENS,
    DEFAULT_MAX_TOKENS,
    MAX_STREAM_TOKENS,
    LOG_PROMPTS,
    INFERENCE_COMPONENT_NAME,
    UPSTREAM_CONNECT_TIMEOUT_S,
    UPSTREAM_READ_TIMEOUT_S,
    UPSTREAM_MAX_ATTEMPTS,
    POWERTOOLS_SERVICE_NAME,
    POWERTOOLS_METRICS_NAMESPACE,
)
# The names a deployment may leave unset, each meaning its default below (INFERENCE_COMPONENT_NAME:
# no inference component; MAX_STREAM_TOKENS: the same cap as without stream).
OPTIONAL = (
    INFERENCE_COMPONENT_NAME,
    MAX_STREAM_TOKENS,
    UPSTREAM_CONNECT_TIMEOUT_S,
    UPSTREAM_READ_TIMEOUT_S,
    UPSTREAM_MAX_ATTEMPTS,
)


@dataclass(frozen=True)
class Defaults:
    """What the forwarder uses for a variable that is unset or blank; the settings' defaults
    (ownllm/settings.py) are the same numbers."""

    max_request_bytes: int = 262_144
    max_input_tokens: int = 4096
    max_total_tokens: int = 8192
    default_max_tokens: int = 512
    connect_timeout_s: float = 2.0
    # A ceiling: each attempt gets less when less time is left. SageMaker itself stops waiting for
    # the model at INVOKE_ENDPOINT_TIMEOUT_S; a stream's ceiling is the gap between two parts.
    read_timeout_s: float = 60.0
    max_attempts: int = 3  # botocore standard retry mode: 1 call + at most 2 retries


DEFAULTS = Defaults()

# -- limits ----------------------------------------------------------------------------------

# API Gateway REST integrations wait at most 29 s for a buffered answer (API Gateway developer
# guide, "Amazon API Gateway quotas for configuring and running a REST API": integration timeout
# 50 ms - 29 s; raising it needs a quota increase: https://aws.amazon.com/about-aws/whats-new/
# 2024/06/amazon-api-gateway-integration-timeout-limit-29-seconds/). The Lambda answers first.
API_GATEWAY_TIMEOUT_S = 29
# SageMaker's InvokeEndpoint waits at most 60 s for the model's answer ("A customer's model containers
# must respond to requests within 60 seconds": SageMaker API reference, InvokeEndpoint,
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html). Every
# route is a STREAM integration (stacks/api.py), so this, not API Gateway's 29 s, bounds a buffered
# (stream: false) completion.
INVOKE_ENDPOINT_TIMEOUT_S = 60
# A REST integration in STREAM transfer mode may run up to 15 minutes (TimeoutInMillis up to
# 900,000; API Gateway developer guide, "response-transfer-mode"), as long as Lambda's own cap.
STREAM_LIMIT_S = 15 * 60
# API Gateway REST: request and response payloads up to 10 MB (same quotas page).
API_GATEWAY_PAYLOAD_BYTES = 10 * 1024 * 1024
# Lambda: a synchronous invocation's request and buffered response are at most 6 MB each
# (Lambda developer guide, "Lambda quotas": invocation payload).
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
# The largest engine answer the forwarder reads: well under Lambda's 6 MB response, which the
# OpenAI body (about the same size) and its headers must fit in. Bigger: 502 bad_upstream_response.
MAX_ANSWER_BYTES = 4 * 1024 * 1024

# -- errors ----------------------------------------------------------------------------------

# Every value of errors.ApiError.error_class: the ErrorClass dimension of the Errors metric, so
# the stacks declare and price one custom metric per class.
ERROR_CLASSES = (
    "invalid_request",
    "model_not_found",
    "unknown_route",
    "method_not_allowed",
    "configuration",
    "internal",
    "upstream_error",
    "upstream_client_error",
    "timeout",
    "throttled",
    "not_ready",
    "starting",
    "unavailable",
)

# -- metrics: what the forwarder emits (app.py, main.py), what the stacks declare, price and graph --

SERVICE_NAME = "ownllm-forwarder"  # POWERTOOLS_SERVICE_NAME: the `service` dimension
METRICS_NAMESPACE = "ownllm"  # POWERTOOLS_METRICS_NAMESPACE
REQUESTS = "Requests"
MODEL_LATENCY = "ModelLatency"
PROMPT_TOKENS = "PromptTokens"
COMPLETION_TOKENS = "CompletionTokens"
COLD_START = "ColdStart"  # Powertools' own (capture_cold_start_metric)
# Emitted on every request (ColdStart once per environment): each is one custom metric.
METRICS = (REQUESTS, MODEL_LATENCY, PROMPT_TOKENS, COMPLETION_TOKENS, COLD_START)
# One more custom metric per error class seen (ERROR_CLASSES).
ERRORS = "Errors"
ERROR_CLASS_DIMENSION = "ErrorClass"
