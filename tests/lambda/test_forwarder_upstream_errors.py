"""Upstream failures: mapped once (errors.map_upstream), bounded by the deadline, logged.

Faults come from the local SageMaker runtime, which answers SageMaker's own error shapes
so botocore raises what it raises in AWS; codes the runtime does not produce come from
botocore's Stubber.
"""

from __future__ import annotations

import json

import errors
import pytest
from botocore.stub import Stubber


def test_a_model_error_with_a_4xx_original_status_stays_a_client_error_with_the_engines_reason(forwarder):
    forwarder.server.set_fault(
        "model_error",
        original_status=400,
        original_message=json.dumps(
            {
                "object": "error",
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        ),
    )
    answer = forwarder.chat()
    assert answer.status == 400
    assert answer.error["type"] == "invalid_request_error"
    assert answer.error["code"] == "model_rejected_request"
    assert "maximum context length is 8192" in answer.error["message"]
    assert len(forwarder.server.requests) == 1  # a client error is not retried


def test_an_engine_validation_error_keeps_its_422(make_forwarder):
    """TGI refuses prompt + max_new_tokens above its MAX_TOTAL_TOKENS with 422."""
    fw = make_forwarder("tgi", max_total_tokens=20)
    answer = fw.complete(max_tokens=100)
    assert answer.status == 422
    assert "maximum context length is 20" in answer.error["message"]


def test_an_adapter_the_engine_does_not_know_is_the_engines_404(make_forwarder):
    fw = make_forwarder("vllm", adapters=())  # configured in ADAPTERS, not loaded by the engine
    answer = fw.chat(model="support")
    assert answer.status == 404
    assert "does not exist" in answer.error["message"]


@pytest.mark.parametrize("original", [500, 503, 507])
def test_a_model_error_with_a_5xx_original_status_is_a_502_that_hides_the_engines_text(
    forwarder, original, logs, capsys
):
    forwarder.server.set_fault(
        "model_error", original_status=original, original_message="Traceback: CUDA OOM on 'my prompt'"
    )
    answer = forwarder.chat()
    assert answer.status == 502
    assert answer.error["type"] == "server_error" and answer.error["code"] == "upstream_error"
    assert "CUDA" not in answer.error["message"]
    [line] = logs()
    assert line["level"] == "ERROR" and f"original={original}" in line["error_detail"]
    assert "my prompt" not in json.dumps(logs()) + capsys.readouterr().out  # engine text may quote prompts


def test_a_model_error_with_original_status_429_is_a_rate_limit(forwarder):
    forwarder.server.set_fault("model_error", original_status=429, original_message='{"error": "Model is overloaded"}')
    answer = forwarder.chat()
    assert answer.status == 429 and answer.headers["retry-after"] == "1"


def test_persistent_throttling_is_a_429_with_retry_after_after_the_retry_budget(forwarder):
    forwarder.server.set_fault("throttle")
    answer = forwarder.chat()
    assert answer.status == 429
    assert answer.error["type"] == "rate_limit_error" and answer.error["code"] == "rate_limit_exceeded"
    assert answer.headers["retry-after"] == "1"
    assert len(forwarder.server.requests) == 3  # standard mode: 1 call + 2 retries


def test_a_single_throttle_is_retried_and_the_client_never_sees_it(forwarder):
    forwarder.server.set_fault("throttle", times=1)
    answer = forwarder.chat()
    assert answer.status == 200
    assert len(forwarder.server.requests) == 2


@pytest.mark.parametrize(
    ("fault", "code", "retry_after"),
    [("not_ready", "model_not_ready", "30"), ("unavailable", "service_unavailable", "5")],
)
def test_a_model_that_is_not_ready_or_unavailable_is_a_503_with_retry_after(forwarder, fault, code, retry_after):
    forwarder.server.set_fault(fault)
    answer = forwarder.chat()
    assert answer.status == 503
    assert answer.error["code"] == code
    assert answer.headers["retry-after"] == retry_after


def test_an_internal_failure_is_a_502(forwarder):
    forwarder.server.set_fault("internal")
    assert forwarder.chat().status == 502


def test_a_dropped_connection_is_a_502_upstream_unreachable(forwarder):
    forwarder.server.set_fault("drop")
    answer = forwarder.chat()
    assert answer.status == 502 and answer.error["code"] == "upstream_unreachable"


def test_an_engine_answer_that_is_not_json_is_a_502(forwarder):
    forwarder.server.set_fault("garbage")
    answer = forwarder.chat()
    assert answer.status == 502 and answer.error["code"] == "bad_upstream_response"


@pytest.mark.parametrize("fault", ["not_found", "access_denied"])
def test_a_missing_or_forbidden_endpoint_is_a_500_logged_as_a_configuration_error(forwarder, logs, fault):
    forwarder.server.set_fault(fault)
    answer = forwarder.chat()
    assert answer.status == 500
    assert answer.error["code"] == "configuration_error"
    assert "not found" not in answer.error["message"] and "arn:" not in answer.error["message"]
    [line] = [line for line in logs() if line.get("message") == "request failed"]
    assert line["level"] == "ERROR" and line["error_class"] == "configuration"
    assert ("ValidationError" if fault == "not_found" else "AccessDeniedException") in line["error_detail"]
    assert len(forwarder.server.requests) == 1  # a configuration error is not retried


def test_lmi_reporting_an_error_inside_a_200_answer_is_a_502(make_forwarder):
    """LMI's documented shape for a failure during generation (non-streaming)."""

    def failing_lmi(endpoint, body, headers):
        answer = {
            "generated_text": "",
            "details": {"finish_reason": "error", "generated_tokens": None, "inputs": None, "tokens": None},
        }
        return 200, {}, json.dumps(answer).encode()

    fw = make_forwarder("lmi", backend=failing_lmi)
    assert fw.complete().status == 502


# -- time budget ---------------------------------------------------------------------------


def test_a_slow_model_is_a_504_before_the_lambda_runs_out_of_time(forwarder):
    """2.5 s left, 1 s kept back to answer, 0.5 s to connect: the read gives up after ~1 s."""
    forwarder.server.set_fault("slow", delay_s=4)
    answer = forwarder.chat(remaining_ms=2500)
    assert answer.status == 504
    assert answer.error["code"] == "timeout"
    assert answer.elapsed_s < 2.5
    assert len(forwarder.server.requests) == 1  # no time was left for a retry


def test_no_retry_is_started_that_could_not_finish_in_time(forwarder):
    """Throttled at once with 3 s left (2 s budget): a retry needs 2 s, so none is tried."""
    forwarder.server.set_fault("throttle")
    answer = forwarder.chat(remaining_ms=3000)
    assert answer.status == 429  # the real failure, not a timeout
    assert len(forwarder.server.requests) == 1
    assert answer.elapsed_s < 2.0


def test_the_read_timeout_never_exceeds_api_gateways_budget(forwarder, forwarder_app):
    """With 900 s left (a misconfigured Lambda timeout) the call still ends before 29 s."""
    import upstream

    seen = {}

    def spy(request, **kwargs):
        seen["read_timeout"] = request.context.get("read_timeout")

    forwarder_app.CLIENT.meta.events.register_last(f"before-send.{upstream.OPERATION}", spy)
    assert forwarder.chat(remaining_ms=900_000).status == 200
    assert upstream.PER_REQUEST_READ_TIMEOUT
    assert 0 < seen["read_timeout"] <= 25.0  # UPSTREAM_READ_TIMEOUT_S ceiling, inside 29 s - margins


def test_the_client_is_created_with_explicit_timeouts_and_standard_retries(forwarder_app):
    config = forwarder_app.CLIENT.meta.config
    assert config.connect_timeout == 0.5  # UPSTREAM_CONNECT_TIMEOUT_S from the test environment
    assert config.read_timeout == 25.0
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


# -- codes the local runtime does not produce: botocore's Stubber --------------------------


@pytest.mark.parametrize(
    ("code", "http", "status", "error_code"),
    [
        ("InternalDependencyException", 530, 502, "upstream_error"),
        ("UnrecognizedClientException", 400, 500, "configuration_error"),
        ("ExpiredTokenException", 400, 500, "configuration_error"),
        ("ValidationError", 400, 500, "internal_error"),
    ],
)
def test_other_sagemaker_errors_map_to_a_bounded_set_of_answers(
    forwarder, forwarder_app, code, http, status, error_code
):
    with Stubber(forwarder_app.CLIENT) as stub:
        stub.add_client_error(
            "invoke_endpoint", service_error_code=code, service_message="from stub", http_status_code=http
        )
        answer = forwarder.chat()
    assert answer.status == status
    assert answer.error["code"] == error_code


def test_a_stubbed_model_error_carries_its_original_status_through(forwarder, forwarder_app):
    with Stubber(forwarder_app.CLIENT) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (413)",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 413, "OriginalMessage": '{"error": "too long"}'},
        )
        answer = forwarder.chat()
    assert answer.status == 413 and "too long" in answer.error["message"]


# -- the mapping itself, as plain data -----------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (errors.UpstreamFailure("service", "ModelError", 424, "m", 400, "{}"), 400),
        (errors.UpstreamFailure("service", "ModelError", 424, "m", 404, "{}"), 404),
        (errors.UpstreamFailure("service", "ModelError", 424, "m", 418, "{}"), 400),
        (errors.UpstreamFailure("service", "ModelError", 424, "m", None, None), 502),
        (errors.UpstreamFailure("service", "ThrottlingException", 400, ""), 429),
        (errors.UpstreamFailure("service", "ModelNotReadyException", 429, ""), 503),
        (errors.UpstreamFailure("service", "ServiceUnavailable", 503, ""), 503),
        (errors.UpstreamFailure("service", "SomethingNew", 503, ""), 503),
        (errors.UpstreamFailure("service", "ValidationError", 400, "Endpoint e of account 1 not found."), 500),
        (errors.UpstreamFailure("service", "SomethingNew", 500, ""), 502),
        (errors.UpstreamFailure("read_timeout"), 504),
        (errors.UpstreamFailure("connect"), 502),
        (errors.UpstreamFailure("other"), 502),
    ],
)
def test_every_upstream_failure_maps_to_one_answer(failure, status):
    assert errors.map_upstream(failure).status == status


def test_engine_messages_are_read_from_each_engines_error_body():
    assert errors.engine_message('{"object": "error", "message": "vllm says"}') == "vllm says"
    assert errors.engine_message('{"error": "tgi says", "error_type": "validation"}') == "tgi says"
    assert errors.engine_message('{"error": "lmi says", "code": 424}') == "lmi says"
    assert errors.engine_message("plain text") == "plain text"
    assert len(errors.engine_message("x" * 5000)) == 1000
