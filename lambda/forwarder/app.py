"""An OpenAI-compatible API in front of one SageMaker endpoint (API Gateway REST -> Lambda).

Routes are small; validation (validate.py), translation (translate.py), the upstream call
(upstream.py) and the error mapping (errors.py) live in their own modules. Every answer,
success or error, carries the API Gateway request id in `x-request-id`.

One JSON line per request: the EMF metrics line (Powertools Metrics) also carries the
request's log fields (request id, status, latency, model, tokens), so a request costs one
log event, not two. Refusals and failures add a Logger line with the details; prompts and
completions are logged only with LOG_PROMPTS=true.
"""

from __future__ import annotations

import gc

# Init only creates long-lived objects (modules, the client): garbage collection during it
# is wasted work, about a fifth of this function's cold start. Re-enabled, with the init
# objects frozen out of future collections, at the end of this module.
gc.disable()

import base64
import binascii
import json
import os
import time
from typing import TYPE_CHECKING

import config as settings
import contract
import errors
import translate
import upstream
import validate
from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"
# Known paths (after the optional /v1 prefix) and the one method each accepts.
ALLOWED = {"/chat/completions": "POST", "/completions": "POST", "/models": "GET"}
STARTED = int(time.time())

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver(strip_prefixes=["/v1"])

try:
    CONFIG: settings.Config | None = settings.load(os.environ)
    CONFIG_PROBLEM = None
except settings.ConfigError as exc:
    CONFIG, CONFIG_PROBLEM = None, str(exc)
    logger.error("configuration error: every request will answer 500", extra={"problems": exc.problems})

CLIENT = (
    upstream.create_client(CONFIG.connect_timeout_s, CONFIG.read_timeout_s, CONFIG.max_attempts) if CONFIG else None
)


class _Request:
    """What this invocation has learned so far, for its response headers and its log line."""

    def __init__(self, request_id: str, deadline: float):
        self.request_id = request_id
        self.deadline = deadline
        self.log: dict = {}


_current = _Request("", 0.0)


def _config() -> settings.Config:
    if CONFIG is None:
        raise errors.configuration(f"invalid environment: {CONFIG_PROBLEM}")
    return CONFIG


def _client() -> SageMakerRuntimeClient:
    if CLIENT is None:
        raise errors.configuration(f"invalid environment: {CONFIG_PROBLEM}")
    return CLIENT


def _headers(extra: dict | None = None) -> dict:
    headers = {"x-request-id": _current.request_id}
    if extra:
        headers.update(extra)
    return headers


def _raw_body() -> bytes | str:
    event = app.current_event
    body = event.body
    if body is None:
        return ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError):
            raise errors.invalid(
                "The request body is marked base64 but does not decode.", None, "invalid_body"
            ) from None
    return body


# -- routes --------------------------------------------------------------------------------


@app.post("/chat/completions")
def chat_completions() -> Response:
    return _complete(validate.CHAT)


@app.post("/completions")
def completions() -> Response:
    return _complete(validate.COMPLETION)


@app.get("/models")
def list_models() -> Response:
    cfg = _config()
    data = [_model_card(name, cfg) for name in cfg.model_names]
    return Response(200, JSON, json.dumps({"object": "list", "data": data}), _headers())


@app.get("/models/<name>")
def get_model(name: str) -> Response:
    return _one_model(name)


@app.get("/models/<owner>/<name>")
def get_namespaced_model(owner: str, name: str) -> Response:  # Hub ids: "Qwen/Qwen2.5-7B-Instruct"
    return _one_model(f"{owner}/{name}")


def _one_model(name: str) -> Response:
    cfg = _config()
    if name not in cfg.model_names:
        raise errors.model_not_found(name, cfg.model_names)
    return Response(200, JSON, json.dumps(_model_card(name, cfg)), _headers())


def _model_card(name: str, cfg: settings.Config) -> dict:
    card = {"id": name, "object": "model", "created": STARTED, "owned_by": "ownllm"}
    if name != cfg.model_name:
        card["parent"] = cfg.model_name
    return card


def _complete(kind: str) -> Response:
    cfg = _config()
    req = validate.parse(kind, _raw_body(), cfg)
    log = _current.log
    log.update(model=req.model, stream=req.stream, max_tokens=req.max_tokens)
    answer = upstream.invoke(
        _client(),
        cfg.endpoint_name,
        translate.engine_body(req, cfg),
        deadline=_current.deadline,
        connect_timeout_s=cfg.connect_timeout_s,
        read_timeout_s=cfg.read_timeout_s,
        inference_component=cfg.inference_component,
    )
    log.update(model_latency_ms=round(answer.latency_ms, 1), attempts=answer.attempts)
    metrics.add_metric(name=contract.MODEL_LATENCY, unit=MetricUnit.Milliseconds, value=answer.latency_ms)
    done = translate.from_engine(req, cfg, answer.body, _current.request_id)
    usage = done.body["usage"]
    log.update(
        prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"], usage=done.usage_source
    )
    if cfg.log_prompts:  # opt-in: prompts may hold personal data
        prompt = req.messages if req.messages is not None else req.prompt
        logger.info("prompt", extra={"request_id": _current.request_id, "prompt": prompt, "completion": done.text})
    metrics.add_metric(name=contract.PROMPT_TOKENS, unit=MetricUnit.Count, value=usage["prompt_tokens"])
    metrics.add_metric(name=contract.COMPLETION_TOKENS, unit=MetricUnit.Count, value=usage["completion_tokens"])
    headers = _headers({"x-ownllm-usage": done.usage_source})
    if req.stream:
        headers["Cache-Control"] = "no-cache"
        return Response(200, EVENT_STREAM, translate.to_sse(done.body, req.include_usage), headers)
    return Response(200, JSON, json.dumps(done.body), headers)


# -- errors: mapped once, here -------------------------------------------------------------


def _error_response(err: errors.ApiError) -> Response:
    _current.log.update(error_class=err.error_class, error_code=err.code)
    if err.log_detail:
        _current.log["error_detail"] = err.log_detail
    record_error_metric(err)
    return Response(err.status, JSON, err.body(_current.request_id), _headers(err.headers))


def record_error_metric(err: errors.ApiError) -> None:
    """One Errors data point with the error's class (also for main.py's streams)."""
    with single_metric(
        name=contract.ERRORS, unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as m:
        m.add_dimension(name=contract.ERROR_CLASS_DIMENSION, value=err.error_class)


@app.exception_handler(errors.ApiError)
def on_api_error(err: errors.ApiError) -> Response:
    return _error_response(err)


@app.exception_handler(errors.UpstreamFailure)
def on_upstream_failure(failure: errors.UpstreamFailure) -> Response:
    return _error_response(errors.map_upstream(failure))


@app.not_found
def on_unknown_route(_exc: Exception) -> Response:
    event = app.current_event
    method, path = event.http_method.upper(), event.path
    known = path[3:] if path.startswith("/v1/") else path
    allowed = ALLOWED.get(known) or ("GET" if known.startswith("/models/") else None)
    if allowed and method != allowed:
        return _error_response(errors.method_not_allowed(method, path, allowed))
    return _error_response(errors.unknown_route(method, path))


@app.exception_handler(Exception)
def on_unexpected(exc: Exception) -> Response:
    logger.exception("unexpected error", extra={"request_id": _current.request_id})
    return _error_response(errors.internal(f"{type(exc).__name__}: {exc}"))


# -- entry point ---------------------------------------------------------------------------


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    global _current
    started = time.monotonic()
    request_id = str((event.get("requestContext") or {}).get("requestId") or context.aws_request_id)
    # SageMaker stops waiting for the model at 60 s, the Lambda at its timeout (main.py narrows it to
    # API Gateway's 29 s on the routes that integration bounds): answer before both.
    budget = min(context.get_remaining_time_in_millis() / 1000, contract.INVOKE_ENDPOINT_TIMEOUT_S - 0.5)
    margin = CONFIG.response_margin_s if CONFIG else 1.0
    _current = _Request(request_id, started + budget - margin)
    metrics.add_metric(name=contract.REQUESTS, unit=MetricUnit.Count, value=1)
    response = app.resolve(event, context)
    status = response.get("statusCode", 0)
    fields = {
        "request_id": request_id,
        "lambda_request_id": getattr(context, "aws_request_id", None),
        "method": event.get("httpMethod"),
        "path": event.get("path"),
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        **_current.log,
    }
    metrics.add_metadata(key="request", value=fields)  # the request's log fields, on its EMF line
    if status >= 500:
        logger.error("request failed", extra=fields)
    elif status >= 400:
        logger.info("request refused", extra=fields)
    return response


gc.freeze()
gc.enable()
