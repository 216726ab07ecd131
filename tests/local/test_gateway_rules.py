"""The local API answers like the deployed one: API Gateway's own refusals first, then the function's."""

from __future__ import annotations

import http.client
import socket

import pytest

from ownllm.local.gateway import PAYLOAD_LIMIT_BYTES

KEY = "test-key-0123456789"


def test_a_request_with_the_key_in_x_api_key_reaches_the_model(stack, api, chat_body):
    reply = api(stack.url, "POST", "/v1/chat/completions", chat_body(stack))
    assert reply.status == 200
    assert reply.json()["object"] == "chat.completion"
    assert "stand-in" in reply.json()["choices"][0]["message"]["content"]


def test_an_openai_style_bearer_key_is_accepted_too(stack, api, chat_body):
    reply = api(
        stack.url, "POST", "/v1/chat/completions", chat_body(stack), {"Authorization": f"Bearer {KEY}"}, key=None
    )
    assert (reply.status, reply.json()["object"]) == (200, "chat.completion")


def _gateway_error(reply) -> tuple[int, str, str, str]:
    """(status, type, code, message) of an OpenAI-shaped gateway answer carrying its request id."""
    error = reply.error
    assert error["request_id"] == reply.headers["x-amzn-requestid"]
    assert error["param"] is None
    return reply.status, error["type"], error["code"], error["message"]


def test_a_request_without_a_key_is_refused_401_in_the_deployed_apis_openai_shape(stack, api, chat_body):
    reply = api(stack.url, "POST", "/v1/chat/completions", chat_body(stack), key=None)
    assert _gateway_error(reply) == (
        401,
        "invalid_request_error",
        "missing_api_key",
        "No API key was sent. Send the API key as 'Authorization: Bearer <key>' (OpenAI clients' api_key) or as "
        "'x-api-key'.",
    )
    assert reply.headers["x-amzn-errortype"] == "UnauthorizedException"


@pytest.mark.parametrize("headers", [{"x-api-key": "not-the-key"}, {"Authorization": "Bearer not-the-key"}])
def test_a_wrong_key_is_refused_403_forbidden(stack, api, chat_body, headers):
    reply = api(stack.url, "POST", "/v1/chat/completions", chat_body(stack), headers, key=None)
    assert _gateway_error(reply)[:3] == (403, "invalid_request_error", "invalid_api_key")
    assert reply.error["message"].startswith("The API key is not valid.")
    assert reply.headers["x-amzn-errortype"] == "ForbiddenException"


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/", "/v2/chat/completions", "/chat/completions", "/prod/v1/models"])
def test_paths_outside_v1_answer_unknown_url_even_with_a_key(stack, api, path):
    reply = api(stack.url, "POST", path, {"x": 1})
    assert _gateway_error(reply) == (
        404,
        "invalid_request_error",
        "unknown_url",
        "Unknown request URL. Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.",
    )


def test_a_body_over_10_mb_is_refused_413_by_the_gateway(stack, api):
    reply = api(stack.url, "POST", "/v1/chat/completions", b"x" * (PAYLOAD_LIMIT_BYTES + 1))
    assert _gateway_error(reply) == (
        413,
        "invalid_request_error",
        "request_too_large",
        "Request body is larger than API Gateway's 10 MB limit.",
    )


def test_a_body_over_max_request_bytes_but_under_10_mb_gets_the_functions_own_openai_413(stack, api, chat_body):
    reply = api(stack.url, "POST", "/v1/chat/completions", chat_body(stack, "word " * 60_000))  # ~300 KB
    assert reply.status == 413
    assert reply.error["code"] == "request_too_large"


def test_a_client_that_asks_expect_100_continue_is_refused_before_it_sends_an_oversized_body(stack):
    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + KEY.encode()
            + f"\r\nContent-Length: {PAYLOAD_LIMIT_BYTES + 1}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = b""
        for _ in range(100):  # the gateway closes the connection after answering
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"code": "request_too_large"' in answer


def test_the_gateway_request_id_is_the_request_id_the_function_reports(stack, api):
    reply = api(stack.url, "POST", "/v1/chat/completions", b"{not json")
    assert reply.status == 400
    assert reply.error["code"] == "invalid_json"
    assert reply.headers["x-amzn-requestid"] == reply.headers["x-request-id"] == reply.error["request_id"]


def test_an_unknown_route_under_v1_is_the_functions_openai_404(stack, api):
    reply = api(stack.url, "GET", "/v1/embeddings")
    assert reply.status == 404
    assert reply.error["code"] == "unknown_url"


def test_the_wrong_method_is_the_functions_405_with_allow(stack, api):
    reply = api(stack.url, "GET", "/v1/chat/completions")
    assert reply.status == 405
    assert reply.headers["allow"] == "POST"


def test_an_unknown_model_is_the_functions_404_model_not_found(stack, api, chat_body):
    reply = api(stack.url, "POST", "/v1/chat/completions", {**chat_body(stack), "model": "gpt-4o"})
    assert reply.status == 404
    assert reply.error["code"] == "model_not_found"


def test_models_lists_the_stand_in_and_the_adapters(stack, api):
    ids = [m["id"] for m in api(stack.url, "GET", "/v1/models").json()["data"]]
    assert ids == ["ownllm-stand-in", "sql-expert"]


def test_every_answer_says_it_came_from_the_stand_in(stack, api):
    assert api(stack.url, "GET", "/v1/models").headers["x-ownllm-local-backend"] == "stand-in"


def test_a_chunked_request_body_is_read_whole(stack, chat_body):
    import json

    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        body = json.dumps(chat_body(stack, max_tokens=3)).encode()
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=iter([body[:10], body[10:]]),
            headers={"x-api-key": KEY, "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert answer["usage"]["completion_tokens"] == 3


def test_one_keep_alive_connection_carries_many_requests(stack, chat_body):
    import json

    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port, timeout=10)
    try:
        statuses, sockets = [], set()
        for _ in range(5):
            conn.request("POST", "/v1/chat/completions", body=json.dumps(chat_body(stack)), headers={"x-api-key": KEY})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            sockets.add(id(conn.sock))
    finally:
        conn.close()
    assert statuses == [200] * 5
    assert len(sockets) == 1


@pytest.mark.parametrize("path", ["//[", "//host/v1/models", "/v1/models#frag"])
def test_request_targets_that_look_like_urls_are_paths_and_never_a_500(stack, api, path):
    """A request target is a path: `//[` once made urllib read a host and raise (found by hypothesis)."""
    reply = api(stack.url, "GET", path)
    assert reply.status < 500
