"""ownllm.local.runtime: a local SageMaker runtime that botocore cannot tell from the real one."""

from __future__ import annotations

import http.client
import json
import time

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from ownllm.local.runtime import FAULTS, MAX_BODY_BYTES, RuntimeServer, StandIn


@pytest.fixture
def runtime(monkeypatch):
    servers = []

    def start(backend=None, **kwargs):
        server = RuntimeServer(backend=backend or StandIn(engine="vllm"), **kwargs).start()
        servers.append(server)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
        }.items():
            monkeypatch.setenv(key, value)
        client = botocore.session.get_session().create_client(
            "sagemaker-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=1)
        )
        return server, client

    yield start
    for server in servers:
        server.stop()


def _invoke(client, body, endpoint="ep"):
    response = client.invoke_endpoint(EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json")
    return json.loads(response["Body"].read())


def test_the_server_binds_a_free_port_and_reports_its_url(runtime):
    server, _ = runtime()
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"


def test_stand_ins_answer_in_each_engines_wire_shape(runtime):
    _, vllm = runtime(StandIn(engine="vllm", model_name="m"))
    assert _invoke(vllm, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})["object"] == "chat.completion"
    assert _invoke(vllm, {"model": "m", "prompt": "hi"})["object"] == "text_completion"
    _, tgi = runtime(StandIn(engine="tgi"))
    answer = _invoke(
        tgi, {"inputs": "hi there", "parameters": {"max_new_tokens": 3, "details": True, "decoder_input_details": True}}
    )
    assert isinstance(answer, list) and answer[0]["details"]["generated_tokens"] == 3
    assert len(answer[0]["details"]["prefill"]) == 2
    _, lmi = runtime(StandIn(engine="lmi"))
    answer = _invoke(lmi, {"inputs": "hi", "parameters": {"max_new_tokens": 3}})
    assert isinstance(answer, dict) and set(answer) == {"generated_text"}  # details only when asked for
    assert "stand-in" in answer["generated_text"]


def test_the_stand_in_is_deterministic_and_says_what_it_is(runtime):
    _, client = runtime(StandIn(engine="tgi"))
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 50}}
    first, second = _invoke(client, body), _invoke(client, body)
    assert first == second
    assert first[0]["generated_text"].startswith("[stand-in for stand-in] This is a deterministic stand-in answer")


def test_tokens_per_second_paces_the_answer(runtime):
    _, client = runtime(StandIn(engine="vllm", tokens_per_s=100, latency_s=0.05))
    started = time.monotonic()
    _invoke(client, {"prompt": "hi", "max_tokens": 10})
    assert time.monotonic() - started >= 0.05 + 10 / 100


def test_an_engine_error_becomes_a_model_error_with_the_original_status(runtime):
    _, client = runtime(StandIn(engine="vllm", model_name="m"))
    with pytest.raises(ClientError) as caught:
        _invoke(client, {"model": "other", "prompt": "hi"})
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 404
    assert "does not exist" in caught.value.response["OriginalMessage"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("throttle", "ThrottlingException", 400),
        ("not_ready", "ModelNotReadyException", 429),
        ("unavailable", "ServiceUnavailable", 503),
        ("internal", "InternalFailure", 500),
        ("not_found", "ValidationError", 400),
        ("access_denied", "AccessDeniedException", 400),
    ],
)
def test_faults_raise_the_errors_botocore_raises_against_sagemaker(runtime, fault, code, status):
    server, client = runtime()
    server.set_fault(fault)
    with pytest.raises(ClientError) as caught:
        _invoke(client, {"prompt": "hi"})
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if fault in ("not_ready", "unavailable", "internal"):
        assert type(caught.value).__name__ == code  # modeled: botocore raises the named class


def test_a_model_error_fault_carries_original_status_and_message(runtime):
    server, client = runtime()
    server.set_fault("model_error", original_status=400, original_message='{"error": "bad"}')
    with pytest.raises(ClientError) as caught:
        _invoke(client, {"prompt": "hi"})
    response = caught.value.response
    assert (response["OriginalStatusCode"], response["OriginalMessage"]) == (400, '{"error": "bad"}')
    assert response["Error"]["Message"].startswith("Received client error (400) from primary")


def test_slow_and_drop_faults_end_in_botocores_timeout_and_connection_errors(runtime):
    server, client = runtime()
    server.set_fault("slow", delay_s=1.5)
    with pytest.raises(ReadTimeoutError):
        _invoke(client, {"prompt": "hi"})
    server.set_fault("drop")
    with pytest.raises(ConnectionClosedError):
        _invoke(client, {"prompt": "hi"})


def test_a_fault_with_times_clears_itself(runtime):
    server, client = runtime()
    server.set_fault("throttle", times=2)
    for _ in range(2):
        with pytest.raises(ClientError):
            _invoke(client, {"prompt": "hi"})
    assert _invoke(client, {"prompt": "hi"})["object"] == "text_completion"


def test_an_unknown_endpoint_is_sagemakers_validation_error_naming_it(runtime):
    _, client = runtime(endpoint_names=("ep",))
    with pytest.raises(ClientError) as caught:
        _invoke(client, {"prompt": "hi"}, endpoint="other")
    assert caught.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint other of account 123456789012 not found.",
    }


def test_an_unknown_fault_is_refused_listing_the_known_ones(runtime):
    server, _ = runtime()
    with pytest.raises(ValueError) as caught:
        server.set_fault("meteor")
    assert str(caught.value) == f"unknown fault 'meteor'; known: {', '.join(FAULTS)}"


def test_the_garbage_fault_answers_200_with_a_body_that_is_not_json(runtime):
    server, client = runtime()
    server.set_fault("garbage")
    response = client.invoke_endpoint(EndpointName="ep", Body=b"{}", ContentType="application/json")
    body = response["Body"].read()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_requests_are_recorded_for_inspection_when_asked(runtime):
    server, client = runtime(keep_requests=2)
    for n in range(3):
        _invoke(client, {"prompt": f"recorded {n}"})
    assert [r.json() for r in server.requests] == [{"prompt": "recorded 1"}, {"prompt": "recorded 2"}]
    assert (server.requests[-1].endpoint_name, server.requests[-1].headers["content-type"]) == (
        "ep",
        "application/json",
    )


def test_no_request_is_kept_unless_asked(runtime):
    server, client = runtime()
    for n in range(5):
        _invoke(client, {"prompt": f"not kept {n}"})
    assert (server.keep_requests, list(server.requests)) == (0, [])


def test_a_negative_request_count_to_keep_is_refused_naming_it():
    with pytest.raises(ValueError) as caught:
        RuntimeServer(StandIn(), keep_requests=-1)
    assert str(caught.value) == "keep_requests must be 0 (keep none) or more, not -1"


def test_the_local_stacks_runtime_keeps_no_request_bodies(api, stack, chat_body):
    """`ownllm local` runs a LocalStack for days: its runtime must not hold what clients sent."""
    for n in range(12):
        assert api(stack.url, "POST", "/v1/chat/completions", chat_body(stack, f"secret {n}")).status == 200
    assert (stack.runtime.keep_requests, list(stack.runtime.requests)) == (0, [])


def test_a_request_for_no_operation_is_sagemakers_unknown_operation(runtime):
    server, _ = runtime()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/ping?x=1")
    response = conn.getresponse()
    assert (response.status, response.getheader("x-amzn-ErrorType"), json.loads(response.read())) == (
        404,
        "UnknownOperationException:http://internal.amazon.com/coral/com.amazonaws.sagemaker/",
        {"message": "No operation at GET /ping?x=1"},
    )
    conn.request("POST", "/endpoints/ep/explode", body=b"{}")
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())) == (404, {"message": "No operation at /endpoints/ep/explode"})
    conn.close()


def test_any_callable_is_a_backend_and_a_crashing_one_is_an_internal_failure(runtime):
    _, client = runtime(lambda endpoint, body, headers: (200, {"Content-Type": "application/json"}, b'{"echo": 1}'))
    assert _invoke(client, {}) == {"echo": 1}

    def broken(endpoint, body, headers):
        raise RuntimeError("boom")

    _, client = runtime(broken)
    with pytest.raises(ClientError) as caught:
        _invoke(client, {})
    assert caught.value.response["Error"]["Code"] == "InternalFailure"


def test_the_server_is_a_context_manager(monkeypatch):
    with RuntimeServer(StandIn(engine="lmi")) as server:
        url = server.url
    with pytest.raises(RuntimeError, match=r"^RuntimeServer is not started; call start\(\) first$"):
        server.url  # noqa: B018 - stopped servers have no URL
    assert url.startswith("http://127.0.0.1:")


def test_a_body_over_sagemakers_limit_is_refused_with_413_naming_it(runtime):
    _, client = runtime()
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(EndpointName="ep", Body=b"x" * (MAX_BODY_BYTES + 1), ContentType="application/json")
    response = caught.value.response
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]) == (
        413,
        {"Code": "413", "Message": "HTTP content length exceeded 6291456 bytes."},
    )
    assert _invoke(client, {"prompt": "hi"})["object"] == "text_completion"  # and the server carries on
