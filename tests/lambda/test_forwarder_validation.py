"""Bad input gets a clear 4xx naming the field, never a 500, and never reaches the endpoint."""

from __future__ import annotations

import json

import config as settings
import errors
import pytest
import validate
from lambda_testkit import MODEL, FakeContext, rest_event

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def _user(content="hi"):
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        (CHAT, {"model": MODEL}, "messages", "missing_required_parameter"),
        (CHAT, {"messages": "hello"}, "messages", "invalid_type"),
        (CHAT, {"messages": []}, "messages", "empty_array"),
        (CHAT, {"messages": ["hello"]}, "messages[0]", "invalid_type"),
        (CHAT, {"messages": [{"content": "hi"}]}, "messages[0].role", "missing_required_parameter"),
        (CHAT, {"messages": [{"role": 7, "content": "hi"}]}, "messages[0].role", "invalid_type"),
        (CHAT, {"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        (CHAT, {"messages": [{"role": "user", "content": 42}]}, "messages[0].content", "invalid_type"),
        (CHAT, {"messages": [{"role": "user", "content": "   "}]}, "messages[0].content", "empty_content"),
        (CHAT, {"messages": [{"role": "user", "content": []}]}, "messages[0].content", "empty_content"),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].type",
            "unsupported_content",
        ),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "invalid_type",
        ),
        (
            CHAT,
            {"messages": [*_user(), {"role": "tool", "content": "42"}]},
            "messages[1].tool_call_id",
            "missing_required_parameter",
        ),
        (CHAT, {"messages": _user(), "temperature": "hot"}, "temperature", "invalid_type"),
        (CHAT, {"messages": _user(), "temperature": 3}, "temperature", "invalid_value"),
        (CHAT, {"messages": _user(), "top_p": -0.1}, "top_p", "invalid_value"),
        (CHAT, {"messages": _user(), "max_tokens": "10"}, "max_tokens", "invalid_type"),
        (CHAT, {"messages": _user(), "max_tokens": True}, "max_tokens", "invalid_type"),
        (CHAT, {"messages": _user(), "max_tokens": 0}, "max_tokens", "invalid_value"),
        (CHAT, {"messages": _user(), "stream": "yes"}, "stream", "invalid_type"),
        (
            CHAT,
            {"messages": _user(), "stream_options": {"include_usage": 1}},
            "stream_options.include_usage",
            "invalid_type",
        ),
        (CHAT, {"messages": _user(), "stop": 5}, "stop", "invalid_type"),
        (CHAT, {"messages": _user(), "stop": ["a"] * 17}, "stop", "invalid_value"),
        (CHAT, {"messages": _user(), "n": 2}, "n", "unsupported_value"),
        (CHAT, {"messages": _user(), "seed": "x"}, "seed", "invalid_type"),
        (CHAT, {"messages": _user(), "seed": 2**63}, "seed", "invalid_value"),
        (CHAT, {"messages": _user(), "seed": -(2**63) - 1}, "seed", "invalid_value"),
        (CHAT, {"messages": _user(), "model": ["a"]}, "model", "invalid_type"),
        (CHAT, {"messages": _user(), "logprobs": True}, "logprobs", "unsupported_parameter"),
        (CHAT, {"messages": _user(), "tools": {"type": "function"}}, "tools", "invalid_type"),
        (COMPLETIONS, {"model": MODEL}, "prompt", "missing_required_parameter"),
        (COMPLETIONS, {"prompt": 12}, "prompt", "invalid_type"),
        (COMPLETIONS, {"prompt": ""}, "prompt", "empty_content"),
        (COMPLETIONS, {"prompt": ["a", "b"]}, "prompt", "unsupported_value"),
        (COMPLETIONS, {"prompt": [[1, 2, 3]]}, "prompt[0]", "invalid_type"),
        (COMPLETIONS, {"prompt": "hi", "echo": True}, "echo", "unsupported_parameter"),
    ],
)
def test_invalid_fields_are_a_400_naming_the_field(forwarder, path, body, param, code):
    answer = forwarder.call(path=path, body=body)
    assert answer.status == 400, answer.text
    assert answer.error["type"] == "invalid_request_error"
    assert answer.error["param"] == param
    assert answer.error["code"] == code
    assert param.split("[")[0].split(".")[0] in answer.error["message"]
    assert len(forwarder.server.requests) == 0


def test_unknown_role_is_a_400_naming_the_field(forwarder):
    answer = forwarder.call(body={"messages": [{"role": "wizard", "content": "hi"}]})
    assert answer.status == 400
    assert answer.error["param"] == "messages[0].role"
    assert "wizard" in answer.error["message"] and "assistant" in answer.error["message"]


@pytest.mark.parametrize("body", ["{not json", "", "   ", "[1, 2]", '"a string"', "null", "NaN", '{"a": Infinity}'])
def test_a_body_that_is_not_a_json_object_is_a_400(forwarder, body):
    answer = forwarder.call(body=body)
    assert answer.status == 400
    assert answer.error["code"] == "invalid_json"


@pytest.mark.parametrize(
    "body, why",
    [
        ("{not json", "Expecting property name enclosed in double quotes at line 1 column 2"),
        ('\ufeff{"messages": []}', "it starts with a byte order mark (U+FEFF); send UTF-8 without one"),
        ('{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": "\xff"}', "it is not UTF-8"),
        ('{"max_tokens": ' + "9" * 5000 + "}", "a number in it has too many digits"),
        ("[" * 100_000 + "]" * 100_000, "it is nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_says_what_is_wrong_and_where(forwarder, body, why):
    answer = forwarder.call(body=body)
    assert (answer.status, answer.error["code"]) == (400, "invalid_json")
    assert answer.error["message"] == f"The request body is not valid JSON: {why}."


def test_a_seed_outside_64_bits_is_a_400_stating_the_range(forwarder):
    answer = forwarder.call(body={"messages": _user(), "seed": 2**64})
    assert answer.error["message"] == (
        f"'seed' must be between {-(2**63)} and {2**63 - 1} (a 64-bit integer); got {2**64}."
    )


def test_text_that_is_not_valid_unicode_is_a_400_not_a_crash(forwarder):
    answer = forwarder.call(body='{"messages": [{"role": "user", "content": "half a pair: \\ud800"}]}')
    assert answer.status == 400 and answer.error["param"] == "messages"
    answer = forwarder.call(path=COMPLETIONS, body='{"prompt": "\\udfff"}')
    assert answer.status == 400 and answer.error["param"] == "prompt"


def test_absurdly_nested_json_is_a_400_not_a_crash(forwarder):
    answer = forwarder.call(body="[" * 100_000 + "]" * 100_000)
    assert answer.status == 400 and answer.error["code"] == "invalid_json"


def test_a_body_larger_than_the_limit_is_a_413(make_forwarder):
    fw = make_forwarder("vllm", env={"MAX_REQUEST_BYTES": "1000"})
    body = json.dumps({"messages": _user("x" * 1000)})
    answer = fw.call(body=body)
    assert answer.status == 413
    assert answer.error["code"] == "request_too_large"
    assert "1000" in answer.error["message"]


def test_max_tokens_above_the_cap_is_a_400_that_states_the_limit(forwarder):
    """Cap = MAX_TOTAL_TOKENS 8192 - MAX_INPUT_TOKENS 4096 = 4096."""
    answer = forwarder.chat(max_tokens=4097)
    assert answer.status == 400
    assert answer.error["param"] == "max_tokens" and answer.error["code"] == "max_tokens_exceeded"
    assert "4096" in answer.error["message"]
    assert forwarder.chat(max_tokens=4096).status == 200


def test_max_completion_tokens_is_honoured_and_capped_like_max_tokens(forwarder):
    assert forwarder.chat(max_completion_tokens=9).status == 200
    assert forwarder.sent["max_tokens"] == 9
    answer = forwarder.chat(max_completion_tokens=5000)
    assert answer.status == 400 and answer.error["param"] == "max_completion_tokens"


def test_a_prompt_over_the_input_limit_is_a_400_that_states_the_limit(make_forwarder):
    fw = make_forwarder("vllm", env={"MAX_INPUT_TOKENS": "100", "MAX_TOTAL_TOKENS": "200", "DEFAULT_MAX_TOKENS": "50"})
    answer = fw.chat(content="word " * 200)  # 1000 bytes, ~250 tokens
    assert answer.status == 400
    assert answer.error["code"] == "context_length_exceeded" and answer.error["param"] == "messages"
    assert "100" in answer.error["message"]
    answer = fw.complete(prompt="word " * 200)
    assert answer.status == 400 and answer.error["param"] == "prompt"


def test_an_invalid_base64_body_is_a_400(forwarder):
    event = rest_event("POST", CHAT, None) | {"body": "!!!not base64!!!", "isBase64Encoded": True}
    response = forwarder.app.handler(event, FakeContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_body"


# -- the pure validator --------------------------------------------------------------------

CFG = settings.Config(endpoint_name="e", engine="vllm", model_name=MODEL, adapters=("a",))


def test_developer_messages_reach_the_engine_as_system_messages():
    req = validate.parse(
        validate.CHAT, json.dumps({"messages": [{"role": "developer", "content": "be brief"}, *_user()]}).encode(), CFG
    )
    assert [m["role"] for m in req.messages] == ["system", "user"]


def test_text_parts_are_joined_into_one_string():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert validate.parse(validate.CHAT, json.dumps(body).encode(), CFG).messages[0]["content"] == "a\nb"


def test_an_assistant_message_may_carry_tool_calls_without_content():
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    body = {
        "messages": [
            *_user(),
            {"role": "assistant", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
        ]
    }
    req = validate.parse(validate.CHAT, json.dumps(body).encode(), CFG)
    assert req.messages[1] == {"role": "assistant", "tool_calls": calls, "content": None}


def test_a_chat_request_estimates_its_prompt_tokens():
    req = validate.parse(validate.CHAT, json.dumps({"messages": _user("x" * 40)}).encode(), CFG)
    assert req.prompt_tokens_estimate == 3 + 4 + 10


def test_the_validator_only_ever_raises_api_errors_for_client_mistakes():
    with pytest.raises(errors.ApiError) as caught:
        validate.parse(validate.COMPLETION, b"\xff\xfe\x00garbage", CFG)
    assert caught.value.status == 400


# -- the configuration ---------------------------------------------------------------------


def test_configuration_names_every_bad_key_and_what_is_accepted():
    with pytest.raises(settings.ConfigError) as caught:
        settings.load({"ENGINE": "gpt", "MAX_INPUT_TOKENS": "lots", "MAX_TOTAL_TOKENS": "100", "LOG_PROMPTS": "maybe"})
    text = str(caught.value)
    for expected in (
        "ENDPOINT_NAME",
        "ENGINE='gpt'",
        "vllm, lmi, tgi",
        "MODEL_NAME",
        "MAX_INPUT_TOKENS='lots'",
        "LOG_PROMPTS",
    ):
        assert expected in text


def test_configuration_defaults_match_the_stack_contract():
    cfg = settings.load({"ENDPOINT_NAME": "e", "ENGINE": "tgi", "MODEL_NAME": "m"})
    assert (cfg.max_request_bytes, cfg.max_input_tokens, cfg.max_total_tokens, cfg.default_max_tokens) == (
        262144,
        4096,
        8192,
        512,
    )
    assert cfg.max_tokens_cap == 4096 and cfg.adapters == () and cfg.log_prompts is False


def test_default_max_tokens_above_the_cap_is_a_configuration_error():
    with pytest.raises(settings.ConfigError, match="DEFAULT_MAX_TOKENS=600"):
        settings.load(
            {
                "ENDPOINT_NAME": "e",
                "ENGINE": "vllm",
                "MODEL_NAME": "m",
                "MAX_INPUT_TOKENS": "1000",
                "MAX_TOTAL_TOKENS": "1500",
                "DEFAULT_MAX_TOKENS": "600",
            }
        )


def test_adapters_are_parsed_from_a_comma_separated_list():
    cfg = settings.load({"ENDPOINT_NAME": "e", "ENGINE": "vllm", "MODEL_NAME": "m", "ADAPTERS": " a, b,,a ,m"})
    assert cfg.adapters == ("a", "b")
