"""The OpenAI routes end to end: API Gateway event -> handler -> local SageMaker runtime -> answer."""

from __future__ import annotations

import json

import pytest
from lambda_testkit import ADAPTERS, MODEL


def test_chat_completion_answers_in_openai_shape_for_every_engine(any_engine):
    answer = any_engine.chat(max_tokens=5)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == MODEL
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert "stand-in" in choice["message"]["content"]
    assert choice["finish_reason"] == "length"  # 5 tokens cut the stand-in's answer short
    usage = body["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion_answers_in_openai_shape_for_every_engine(any_engine):
    answer = any_engine.complete(max_tokens=4)
    assert answer.status == 200
    body = answer.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == MODEL
    [choice] = body["choices"]
    assert choice["text"].startswith("[stand-in for")
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 4


def test_an_answer_that_ends_naturally_reports_finish_reason_stop_for_every_engine(any_engine):
    """LMI and TGI say eos_token; OpenAI clients expect stop."""
    assert any_engine.chat(max_tokens=200).json()["choices"][0]["finish_reason"] == "stop"
    assert any_engine.complete(max_tokens=200).json()["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("engine", "path", "expected_keys"),
    [
        ("vllm", "/v1/chat/completions", {"model", "messages", "max_tokens"}),
        ("vllm", "/v1/completions", {"model", "prompt", "max_tokens"}),
        ("lmi", "/v1/chat/completions", {"messages", "max_tokens"}),
        ("lmi", "/v1/completions", {"prompt", "max_tokens"}),  # vLLM async mode: OpenAI bodies, no `model`
        ("tgi", "/v1/chat/completions", {"model", "messages", "max_tokens"}),
        ("tgi", "/v1/completions", {"inputs", "parameters"}),
    ],
)
def test_each_engine_receives_the_request_shape_it_documents(make_forwarder, engine, path, expected_keys):
    fw = make_forwarder(engine)
    body = {"model": MODEL, "max_tokens": 7, "temperature": 0.5, "stop": ["\n\n"]}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"})
    assert fw.call(path=path, body=body).status == 200
    sent = fw.sent
    assert expected_keys <= set(sent)
    assert sent.get("stream") in (None, False)
    if "inputs" in sent:
        params = sent["parameters"]
        assert params["max_new_tokens"] == 7
        assert params["details"] is True and params["decoder_input_details"] is True
        assert params["temperature"] == 0.5 and params["do_sample"] is True
        assert params["stop"] == ["\n\n"]
    else:
        assert sent["max_tokens"] == 7 and sent["temperature"] == 0.5 and sent["stop"] == ["\n\n"]


def test_tgi_chat_names_no_adapter_when_the_base_model_is_asked_for(make_forwarder):
    """TGI takes any `model` other than "tgi" as a LoRA adapter id."""
    fw = make_forwarder("tgi")
    assert fw.chat().status == 200
    assert fw.sent["model"] == "tgi"


def test_tgi_never_receives_a_top_p_it_refuses(make_forwarder):
    fw = make_forwarder("tgi")
    assert fw.chat(top_p=1.0).status == 200
    assert "top_p" not in fw.sent
    assert fw.complete(top_p=1.0).status == 200
    assert "top_p" not in fw.sent["parameters"]


def test_temperature_zero_means_greedy_decoding_on_native_engines(make_forwarder):
    fw = make_forwarder("tgi")  # the one engine still sent native `{inputs, parameters}` completions
    assert fw.complete(temperature=0).status == 200
    params = fw.sent["parameters"]
    assert params["do_sample"] is False and "temperature" not in params


def test_default_max_tokens_applies_when_the_client_sends_none(make_forwarder):
    fw = make_forwarder("vllm", env={"DEFAULT_MAX_TOKENS": "33"})
    assert fw.call(body={"messages": [{"role": "user", "content": "hi"}]}).status == 200
    assert fw.sent["max_tokens"] == 33


def test_missing_model_field_means_the_base_model(forwarder):
    answer = forwarder.call(body={"messages": [{"role": "user", "content": "hi"}]})
    assert answer.status == 200
    assert answer.json()["model"] == MODEL
    assert forwarder.sent["model"] == MODEL


# -- adapters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "path", "where"),
    [
        ("vllm", "/v1/chat/completions", lambda sent: sent["model"]),
        ("vllm", "/v1/completions", lambda sent: sent["model"]),
        ("lmi", "/v1/chat/completions", lambda sent: sent["adapters"]),
        ("lmi", "/v1/completions", lambda sent: sent["adapters"]),
        ("tgi", "/v1/chat/completions", lambda sent: sent["model"]),
        ("tgi", "/v1/completions", lambda sent: sent["parameters"]["adapter_id"]),
    ],
)
def test_an_adapter_named_in_model_is_sent_where_each_engine_expects_it(make_forwarder, engine, path, where):
    fw = make_forwarder(engine)
    body = {"model": "sql-expert", "max_tokens": 3}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"})
    answer = fw.call(path=path, body=body)
    assert answer.status == 200
    assert answer.json()["model"] == "sql-expert"
    assert where(fw.sent) == "sql-expert"
    text = answer.json()["choices"][0]
    assert "stand-in for sql-expert" in (text.get("text") or text["message"]["content"])


def test_an_unknown_model_is_a_404_model_not_found(any_engine):
    answer = any_engine.call(body={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status == 404
    assert answer.error["code"] == "model_not_found"
    assert answer.error["param"] == "model"
    assert "gpt-4o" in answer.error["message"]
    assert len(any_engine.server.requests) == 0  # never reached the endpoint


def test_adapters_are_unknown_models_when_none_are_deployed(make_forwarder):
    fw = make_forwarder("vllm", env={"ADAPTERS": ""})
    answer = fw.call(body={"model": "sql-expert", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status == 404 and answer.error["code"] == "model_not_found"


def test_models_lists_the_base_model_and_its_adapters(forwarder):
    answer = forwarder.call("GET", "/v1/models")
    assert answer.status == 200
    body = answer.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL, *ADAPTERS]
    assert all(m["object"] == "model" and m["owned_by"] == "ownllm" for m in body["data"])
    assert body["data"][1]["parent"] == MODEL


def test_one_model_can_be_retrieved_by_a_hub_id_with_a_slash(forwarder):
    answer = forwarder.call("GET", f"/v1/models/{MODEL}")
    assert answer.status == 200 and answer.json()["id"] == MODEL
    assert forwarder.call("GET", "/v1/models/support").json()["id"] == "support"
    missing = forwarder.call("GET", "/v1/models/nope")
    assert (missing.status, missing.error["code"], missing.error["param"]) == (404, "model_not_found", "model")


# -- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["vllm", "lmi", "tgi"])
def test_usage_is_reported_when_the_engine_counts_tokens(make_forwarder, engine):
    fw = make_forwarder(engine)
    for answer in (fw.chat(), fw.complete()):
        assert answer.status == 200
        assert answer.headers["x-ownllm-usage"] == "reported"


def test_usage_is_estimated_and_says_so_when_the_engine_does_not_count(make_forwarder):
    """LMI answers {"generated_text"} alone when details are not returned."""
    text = "Deep learning learns layered representations."

    def bare_lmi(endpoint, body, headers):
        return 200, {"Content-Type": "application/json"}, json.dumps({"generated_text": text}).encode()

    fw = make_forwarder("lmi", backend=bare_lmi)
    answer = fw.complete(prompt="x" * 400)
    assert answer.status == 200
    assert answer.headers["x-ownllm-usage"] == "estimated"
    usage = answer.json()["usage"]
    assert usage["prompt_tokens"] == 100  # 400 bytes at ~4 bytes per token
    assert usage["completion_tokens"] == -(-len(text) // 4)
    assert answer.json()["choices"][0]["text"] == text


# -- paths, methods, request ids -----------------------------------------------------------


def test_paths_without_the_v1_prefix_are_the_same_routes(forwarder):
    chat = forwarder.call(path="/chat/completions", body={"messages": [{"role": "user", "content": "hi"}]})
    completion = forwarder.call(path="/completions", body={"prompt": "hi"})
    models = forwarder.call("GET", "/models")
    assert (chat.status, chat.json()["object"]) == (200, "chat.completion")
    assert (completion.status, completion.json()["object"]) == (200, "text_completion")
    assert (models.status, [m["id"] for m in models.json()["data"]]) == (200, [MODEL, *ADAPTERS])


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/completions", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", f"/v1/models/{MODEL}", "GET"),
    ],
)
def test_a_wrong_method_on_a_known_path_is_a_405_naming_the_allowed_one(forwarder, method, path, allowed):
    answer = forwarder.call(method, path)
    assert answer.status == 405
    assert answer.headers["allow"] == allowed
    assert answer.error["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/chat", "/", "/v2/chat/completions", "/v1/chat/completions/x"])
def test_an_unknown_path_is_a_404_in_openai_error_shape(forwarder, path):
    answer = forwarder.call("POST", path, body={"prompt": "hi"})
    assert answer.status == 404
    assert set(answer.error) == {"message", "type", "param", "code", "request_id"}
    assert (answer.error["type"], answer.error["code"]) == ("invalid_request_error", "unknown_url")
    assert answer.error["message"].startswith(f"Unknown request URL: POST {path}.")


def test_every_answer_carries_the_api_gateway_request_id(forwarder):
    ok = forwarder.call(body={"messages": [{"role": "user", "content": "hi"}]}, request_id="req-ok-1")
    bad = forwarder.call(body={"messages": []}, request_id="req-bad-2")
    lost = forwarder.call("GET", "/v1/nowhere", request_id="req-404-3")
    assert ok.headers["x-request-id"] == "req-ok-1"
    assert ok.json()["id"] == "chatcmpl-req-ok-1"
    assert bad.headers["x-request-id"] == "req-bad-2" and bad.error["request_id"] == "req-bad-2"
    assert lost.headers["x-request-id"] == "req-404-3" and lost.error["request_id"] == "req-404-3"


def test_a_base64_encoded_body_is_decoded(forwarder):
    body = json.dumps({"messages": [{"role": "user", "content": "héllo"}]})
    answer = forwarder.call(body=body, base64_body=True)
    assert answer.status == 200
    assert forwarder.sent["messages"][0]["content"] == "héllo"


# -- streaming -----------------------------------------------------------------------------


def _events(text: str) -> list:
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: ")
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_stream_true_answers_a_buffered_event_stream_of_chat_chunks_ending_in_done(any_engine):
    full = any_engine.chat(max_tokens=6).json()["choices"][0]["message"]["content"]
    answer = any_engine.chat(max_tokens=6, stream=True)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == full
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
    assert all("usage" not in c for c in chunks)
    assert any_engine.sent.get("stream") in (None, False)  # the engine is never asked to stream


def test_stream_with_include_usage_ends_with_a_usage_chunk(forwarder):
    answer = forwarder.chat(max_tokens=4, stream=True, stream_options={"include_usage": True})
    chunks = _events(answer.text)[:-1]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_true_answers_completion_chunks_too(make_forwarder):
    fw = make_forwarder("tgi")
    events = _events(fw.complete(max_tokens=3, stream=True).text)
    assert events[-1] == "[DONE]"
    assert {c["object"] for c in events[:-1]} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in events[:-1]).startswith("[stand-in for")


# -- logs and metrics ----------------------------------------------------------------------


def _emf(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]


def test_each_request_is_one_structured_json_line_with_its_request_id_and_no_prompt(forwarder, logs, capsys):
    """The EMF metrics line doubles as the request's log line: one log event per request."""
    forwarder.chat(content="my secret medical question", request_id="req-log-1")
    [emf] = [m for m in _emf(capsys) if "Requests" in m]
    line = emf["request"]
    assert line["request_id"] == "req-log-1"
    assert (line["status"], line["method"], line["path"]) == (200, "POST", "/v1/chat/completions")
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0 and line["usage"] == "reported"
    assert line["latency_ms"] >= line["model_latency_ms"] > 0
    assert logs() == []  # nothing else for a request that went well
    assert "secret" not in json.dumps(emf)


def test_a_refused_request_adds_a_logger_line_with_the_reason(forwarder, logs):
    forwarder.call(body={"messages": [{"role": "wizard", "content": "my secret"}]}, request_id="req-bad-9")
    [line] = logs()
    assert line["message"] == "request refused" and line["level"] == "INFO"
    assert line["request_id"] == "req-bad-9" and line["status"] == 400 and line["error_class"] == "invalid_request"
    assert "secret" not in json.dumps(line)


def test_log_prompts_true_logs_the_prompt_and_the_completion(make_forwarder, logs):
    fw = make_forwarder("vllm", env={"LOG_PROMPTS": "true"})
    fw.chat(content="my opted-in question", request_id="req-p-1")
    [line] = [line for line in logs() if line.get("message") == "prompt"]
    assert line["request_id"] == "req-p-1"
    assert line["prompt"][0]["content"] == "my opted-in question"
    assert "stand-in" in line["completion"]


def test_metrics_are_emitted_as_emf_with_requests_tokens_and_model_latency(forwarder, capsys):
    forwarder.chat(max_tokens=5)
    [main] = [m for m in _emf(capsys) if "Requests" in m]
    names = {d["Name"] for d in main["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Requests", "PromptTokens", "CompletionTokens", "ModelLatency"} <= names
    assert main["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ownllm"
    assert main["CompletionTokens"] == [5.0]


def test_errors_are_counted_by_class(forwarder, capsys):
    forwarder.call(body={"messages": "nope"})
    [error] = [m for m in _emf(capsys) if "Errors" in m]
    assert error["ErrorClass"] == "invalid_request"
    assert ["ErrorClass", "service"] in [sorted(d) for d in error["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


# -- configuration -------------------------------------------------------------------------


def test_an_invalid_environment_answers_500_configuration_error_and_logs_why(
    forwarder, forwarder_app, monkeypatch, logs
):
    monkeypatch.setattr(forwarder_app, "CONFIG", None)
    monkeypatch.setattr(forwarder_app, "CONFIG_PROBLEM", "ENGINE='gpt' is not one of vllm, lmi, tgi")
    answer = forwarder.chat()
    assert answer.status == 500
    assert answer.error["code"] == "configuration_error"
    assert "ENGINE" not in answer.error["message"]  # details stay in the log
    [line] = [line for line in logs() if line.get("message") == "request failed"]
    assert "ENGINE='gpt'" in line["error_detail"]
