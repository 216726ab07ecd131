"""Upstream failures: classified by upstream.py, mapped once by errors.map_upstream, bounded by the deadline.

The mapping itself is asserted in one table (test_every_upstream_failure_maps_to_exactly_one_answer).
The other tests check what surrounds it: which UpstreamFailure each way of failing becomes,
that the client gets exactly the mapped answer, what is retried, the time budget and the logs.
tests/local/test_faults.py checks the same faults over HTTP through the gateway, for what only
that path adds (headers through the gateway, the function's own timeout, recovery).

Faults come from the local SageMaker runtime, which answers SageMaker's own error shapes so
botocore raises what it raises in AWS; a modeled field the runtime does not send comes from
botocore's Stubber.
"""

from __future__ import annotations

import json

import errors
import pytest
from botocore.stub import Stubber

MAP_UPSTREAM = errors.map_upstream  # the real one, whatever a test's spy puts in its place


@pytest.fixture
def failures(monkeypatch) -> list[errors.UpstreamFailure]:
    """Every UpstreamFailure the handler hands to errors.map_upstream, in order (the mapping itself is unchanged)."""
    seen: list[errors.UpstreamFailure] = []

    def spy(failure: errors.UpstreamFailure) -> errors.ApiError:
        seen.append(failure)
        return MAP_UPSTREAM(failure)

    monkeypatch.setattr(errors, "map_upstream", spy)
    return seen


def _service(code: str | None, http: int, message: str = "", original: int | None = None) -> errors.UpstreamFailure:
    if code == "ModelError":
        return errors.UpstreamFailure("service", code, http, message, original, '{"error": "engine says no"}')
    return errors.UpstreamFailure("service", code, http, message)


def _name(failure: errors.UpstreamFailure) -> str:
    """A test id: the code (or kind), and what tells two rows of the same code apart."""
    name = failure.code or failure.kind
    if failure.code == "ModelError":
        return f"{name}({failure.original_status})"
    if failure.code == "SomethingNew":
        return f"{name}(http {failure.http_status})"
    if failure.code == "ValidationError":
        return f"{name}({'endpoint missing' if 'not found' in failure.message else 'bad request'})"
    return name


# -- the mapping: one table, every branch -----------------------------------------------------


BAD = errors.INVALID_REQUEST
BUSY = errors.RATE_LIMIT
FAILED = errors.SERVER
NO_ENDPOINT = "Endpoint e of account 1 not found."  # SageMaker's words for an endpoint that does not exist
NO_CAPACITY = "Inference Component has no capacity to process this request."  # scaled to zero


# failure -> (status, error type, error code, error class for the Errors metric, Retry-After)
MAPPING = [
    (_service("ModelError", 424, original=400), 400, BAD, "model_rejected_request", "upstream_client_error", None),
    (_service("ModelError", 424, original=404), 404, BAD, "model_rejected_request", "upstream_client_error", None),
    (_service("ModelError", 424, original=413), 413, BAD, "model_rejected_request", "upstream_client_error", None),
    (_service("ModelError", 424, original=422), 422, BAD, "model_rejected_request", "upstream_client_error", None),
    (_service("ModelError", 424, original=418), 400, BAD, "model_rejected_request", "upstream_client_error", None),
    (_service("ModelError", 424, original=429), 429, BUSY, "rate_limit_exceeded", "throttled", "1"),
    (_service("ModelError", 424, original=500), 502, FAILED, "upstream_error", "upstream_error", None),
    (_service("ModelError", 424, original=None), 502, FAILED, "upstream_error", "upstream_error", None),
    (_service("ModelError", 424, original=401), 500, FAILED, "configuration_error", "configuration", None),
    (_service("ModelError", 424, original=403), 500, FAILED, "configuration_error", "configuration", None),
    (_service(None, 429), 429, BUSY, "rate_limit_exceeded", "throttled", "1"),
    (_service("ThrottlingException", 400), 429, BUSY, "rate_limit_exceeded", "throttled", "1"),
    (_service("ModelNotReadyException", 429), 503, FAILED, "model_not_ready", "not_ready", "30"),
    (_service("ServiceUnavailable", 503), 503, FAILED, "service_unavailable", "unavailable", "5"),
    (_service("SomethingNew", 503), 503, FAILED, "service_unavailable", "unavailable", "5"),
    (_service("InternalFailure", 500), 502, FAILED, "upstream_error", "upstream_error", None),
    (_service("InternalDependencyException", 530), 502, FAILED, "upstream_error", "upstream_error", None),
    (_service("SomethingNew", 500), 502, FAILED, "upstream_error", "upstream_error", None),
    (_service("ValidationError", 400, NO_ENDPOINT), 500, FAILED, "configuration_error", "configuration", None),
    (_service("AccessDeniedException", 400), 500, FAILED, "configuration_error", "configuration", None),
    (_service("UnrecognizedClientException", 400), 500, FAILED, "configuration_error", "configuration", None),
    (_service("ExpiredTokenException", 400), 500, FAILED, "configuration_error", "configuration", None),
    (_service("ValidationError", 400, "1 validation error detected"), 500, FAILED, "internal_error", "internal", None),
    (_service("ValidationError", 400, NO_CAPACITY), 503, FAILED, "model_starting", "starting", "60"),
    (errors.UpstreamFailure("read_timeout"), 504, FAILED, "timeout", "timeout", None),
    (errors.UpstreamFailure("connect"), 502, FAILED, "upstream_unreachable", "upstream_error", None),
    (errors.UpstreamFailure("other"), 502, FAILED, "upstream_error", "upstream_error", None),
]


@pytest.mark.parametrize(("failure", "answer"), [(f, a) for f, *a in MAPPING], ids=[_name(f) for f, *_ in MAPPING])
def test_every_upstream_failure_maps_to_exactly_one_answer(failure, answer):
    mapped = errors.map_upstream(failure)
    retry_after = mapped.headers.pop("Retry-After", None)
    no_retry = mapped.headers.pop("x-should-retry", None)
    assert no_retry == ("false" if mapped.status == 504 else None)  # the openai client must not re-run a timeout
    assert mapped.headers == {}
    assert [mapped.status, mapped.type, mapped.code, mapped.error_class, retry_after] == answer


def test_an_engines_4xx_reason_is_shown_and_its_5xx_text_is_not():
    rejected = errors.map_upstream(_service("ModelError", 424, original=400))
    failed = errors.map_upstream(_service("ModelError", 424, original=500))
    assert rejected.message == "The model rejected the request: engine says no"
    assert failed.message == "The model server failed (status 500)."
    assert "engine says no" not in (failed.log_detail or "")  # an engine's text may quote the prompt


def test_engine_messages_are_read_from_each_engines_error_body():
    assert errors.engine_message('{"object": "error", "message": "vllm says"}') == "vllm says"
    assert errors.engine_message('{"error": "tgi says", "error_type": "validation"}') == "tgi says"
    assert errors.engine_message('{"error": "lmi says", "code": 424}') == "lmi says"
    assert errors.engine_message("plain text") == ""  # not the engine's error object: not shown to clients
    assert errors.engine_message("<html>502 Bad Gateway</html>") == ""
    assert len(errors.engine_message(json.dumps({"message": "x" * 5000}))) == 1000


# -- what each fault becomes, and that the client gets exactly the mapped answer ---------------


@pytest.mark.parametrize(
    ("fault", "params", "kind", "code", "http_status", "original_status"),
    [
        ("throttle", {}, "service", "ThrottlingException", 400, None),
        ("not_ready", {}, "service", "ModelNotReadyException", 429, None),
        ("unavailable", {}, "service", "ServiceUnavailable", 503, None),
        ("internal", {}, "service", "InternalFailure", 500, None),
        ("not_found", {}, "service", "ValidationError", 400, None),
        ("no_capacity", {"wake_s": 60.0}, "service", "ValidationError", 400, None),
        ("access_denied", {}, "service", "AccessDeniedException", 400, None),
        ("model_error", {"original_status": 400}, "service", "ModelError", 424, 400),
        ("model_error", {"original_status": 503}, "service", "ModelError", 424, 503),
        ("drop", {}, "connect", "ConnectionClosedError", None, None),
    ],
)
def test_each_sagemaker_fault_becomes_one_failure_and_the_client_gets_exactly_its_mapped_answer(
    forwarder, failures, fault, params, kind, code, http_status, original_status
):
    forwarder.server.set_fault(fault, **params)
    answer = forwarder.chat(request_id="rid-fault")
    [failure] = failures
    assert (failure.kind, failure.code, failure.http_status, failure.original_status) == (
        kind,
        code,
        http_status,
        original_status,
    )
    assert failure.attempts == len(forwarder.server.requests)
    mapped = MAP_UPSTREAM(failure)
    assert answer.status == mapped.status
    assert answer.json() == json.loads(mapped.body("rid-fault"))
    assert answer.headers.get("retry-after") == mapped.headers.get("Retry-After")


def test_an_engine_answer_that_is_not_json_is_a_502_bad_upstream_response(forwarder, failures):
    forwarder.server.set_fault("garbage")
    answer = forwarder.chat()
    assert (answer.status, answer.error["code"]) == (502, "bad_upstream_response")
    assert failures == []  # the call succeeded; reading the answer failed


def test_lmi_reporting_an_error_inside_a_200_answer_is_a_502_bad_upstream_response(make_forwarder):
    """LMI's documented shape for a failure during generation (non-streaming)."""

    def failing_lmi(endpoint, body, headers):
        answer = {
            "generated_text": "",
            "details": {"finish_reason": "error", "generated_tokens": None, "inputs": None, "tokens": None},
        }
        return 200, {}, json.dumps(answer).encode()

    answer = make_forwarder("lmi", backend=failing_lmi).complete()
    assert (answer.status, answer.error["code"]) == (502, "bad_upstream_response")


def test_a_model_error_carries_the_engines_status_and_body_through_botocore(forwarder, forwarder_app, failures):
    """OriginalStatusCode and OriginalMessage are modeled fields of ModelError: botocore parses them."""
    with Stubber(forwarder_app.CLIENT) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (413)",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 413, "OriginalMessage": '{"error": "too long"}'},
        )
        answer = forwarder.chat()
    [failure] = failures
    assert (failure.original_status, failure.original_message) == (413, '{"error": "too long"}')
    assert (answer.status, answer.error["message"]) == (413, "The model rejected the request: too long")


# -- what the engines themselves refuse ----------------------------------------------------------


def test_a_prompt_too_long_for_tgi_is_its_422_with_its_reason(make_forwarder):
    """TGI refuses prompt + max_new_tokens above its MAX_TOTAL_TOKENS with 422."""
    answer = make_forwarder("tgi", max_total_tokens=20).complete(max_tokens=100)
    assert answer.status == 422
    assert answer.error["message"].startswith("The model rejected the request: ")
    assert "maximum context length is 20" in answer.error["message"]


def test_an_adapter_the_engine_does_not_know_is_the_engines_404(make_forwarder):
    answer = make_forwarder("vllm", adapters=()).chat(model="support")  # configured here, not loaded by the engine
    assert answer.status == 404
    assert answer.error["message"].startswith("The model rejected the request: ")
    assert "does not exist" in answer.error["message"]


# -- retries -------------------------------------------------------------------------------------


def test_a_client_error_from_the_engine_is_not_retried(forwarder):
    forwarder.server.set_fault("model_error", original_status=400, original_message='{"error": "bad stop"}')
    assert forwarder.chat().status == 400
    assert len(forwarder.server.requests) == 1


def test_persistent_throttling_is_answered_after_the_retry_budget_of_three_attempts(forwarder):
    forwarder.server.set_fault("throttle")
    assert forwarder.chat().status == 429
    assert len(forwarder.server.requests) == 3  # standard mode: 1 call + 2 retries


@pytest.mark.parametrize("fault", ["throttle", "drop"])
def test_a_single_transient_fault_is_retried_and_the_client_never_sees_it(forwarder, fault):
    forwarder.server.set_fault(fault, times=1)
    answer = forwarder.chat()
    assert answer.status == 200
    assert len(forwarder.server.requests) == 2  # the failed attempt and its retry


@pytest.mark.parametrize("fault", ["not_found", "access_denied"])
def test_a_configuration_error_is_not_retried_and_is_logged_without_reaching_the_client(forwarder, logs, fault):
    forwarder.server.set_fault(fault)
    answer = forwarder.chat()
    assert answer.error["message"] == (
        "The API is misconfigured and cannot reach its model; the operator has been notified in the logs."
    )
    [line] = [line for line in logs() if line.get("message") == "request failed"]
    assert line["level"] == "ERROR" and line["error_class"] == "configuration"
    assert ("ValidationError" if fault == "not_found" else "AccessDeniedException") in line["error_detail"]
    assert len(forwarder.server.requests) == 1


# -- logs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("original", [500, 503, 507])
def test_an_engines_5xx_is_logged_with_its_status_and_never_with_its_text(forwarder, original, logs, capsys):
    forwarder.server.set_fault(
        "model_error", original_status=original, original_message="Traceback: CUDA OOM on 'my prompt'"
    )
    answer = forwarder.chat()
    assert "CUDA" not in answer.text
    [line] = logs()
    assert line["level"] == "ERROR" and f"original={original}" in line["error_detail"]
    assert "my prompt" not in json.dumps(logs()) + capsys.readouterr().out  # engine text may quote prompts


# -- time budget ---------------------------------------------------------------------------------


@pytest.fixture
def read_timeouts(forwarder, forwarder_app) -> list[float]:
    """The read timeout botocore is given for each attempt (upstream.py sets it per request)."""
    import upstream

    seen: list[float] = []

    def spy(request, **kwargs):
        seen.append(request.context.get("read_timeout"))

    forwarder_app.CLIENT.meta.events.register_last(f"before-send.{upstream.OPERATION}", spy)
    yield seen
    forwarder_app.CLIENT.meta.events.unregister(f"before-send.{upstream.OPERATION}", spy)


def test_a_slow_model_is_read_only_as_long_as_the_lambda_has_time_for_then_a_504(forwarder, read_timeouts):
    """2.5 s left, 1 s kept back to answer, 0.5 s to connect: the read may take at most 1 s."""
    forwarder.server.set_fault("slow", delay_s=4)
    answer = forwarder.chat(remaining_ms=2500)
    assert (answer.status, answer.error["code"]) == (504, "timeout")
    [read_timeout] = read_timeouts  # no time was left for a retry
    assert 0.5 < read_timeout <= 1.0


def test_no_retry_is_started_that_could_not_finish_in_time(forwarder):
    """Throttled at once with 3 s left (2 s budget): a retry needs 2 s, so none is tried."""
    forwarder.server.set_fault("throttle")
    answer = forwarder.chat(remaining_ms=3000)
    assert answer.status == 429  # the real failure, not a timeout
    assert len(forwarder.server.requests) == 1


def test_the_read_timeout_never_exceeds_sagemakers_60_second_budget(forwarder, read_timeouts):
    """With 900 s left (a completion route's long function timeout) a buffered answer is still read
    only as long as InvokeEndpoint waits: 60 s less the forwarder's 0.5 s, 1 s answer margin and
    0.5 s connect timeout, so 58 s (less the microseconds already spent)."""
    import upstream

    assert forwarder.chat(remaining_ms=900_000).status == 200
    assert upstream.PER_REQUEST_READ_TIMEOUT
    assert len(read_timeouts) == 1 and 57.9 < read_timeouts[0] <= 58.0


def test_the_client_is_created_with_explicit_timeouts_and_standard_retries(forwarder_app):
    config = forwarder_app.CLIENT.meta.config
    assert config.connect_timeout == 0.5  # UPSTREAM_CONNECT_TIMEOUT_S from the test environment
    assert config.read_timeout == 60.0  # UPSTREAM_READ_TIMEOUT_S unset: InvokeEndpoint's own 60 s
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
