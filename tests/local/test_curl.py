"""curl-style requests: urllib from the standard library, and the real `curl` binary when there is one."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

KEY = "test-key-0123456789"
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="no curl binary on this machine")


def test_urllib_posts_a_chat_completion_for_every_engine(any_engine):
    body = {"model": any_engine.model_name, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    request = urllib.request.Request(
        any_engine.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"x-api-key": KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
        assert response.headers["x-ownllm-usage"] == "reported"
    assert answer["usage"]["completion_tokens"] == 4
    assert answer["choices"][0]["message"]["content"].startswith("[stand-in")


def test_urllib_sees_the_deployed_apis_401_without_a_key(stack):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(stack.base_url + "/models", timeout=30)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "missing_api_key"


def _curl(*args: str) -> tuple[int, dict]:
    done = subprocess.run([CURL, "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


@needs_curl
@pytest.mark.parametrize("auth", [f"x-api-key: {KEY}", f"Authorization: Bearer {KEY}"])
def test_curl_posts_a_chat_completion_with_either_key_header(any_engine, auth):
    body = json.dumps({"model": any_engine.model_name, "messages": [{"role": "user", "content": "Hi"}]})
    status, answer = _curl(
        any_engine.base_url + "/chat/completions", "-H", auth, "-H", "content-type: application/json", "-d", body
    )
    assert status == 200
    assert answer["object"] == "chat.completion"


@needs_curl
def test_curl_without_a_key_gets_401_and_with_a_wrong_one_403(stack):
    status, answer = _curl(stack.base_url + "/models")
    assert (status, answer["error"]["code"]) == (401, "missing_api_key")
    status, answer = _curl(stack.base_url + "/models", "-H", "x-api-key: nope")
    assert (status, answer["error"]["code"]) == (403, "invalid_api_key")


@needs_curl
def test_curl_sending_more_than_10_mb_gets_413_request_too_long(stack, tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    status, answer = _curl(stack.base_url + "/chat/completions", "-H", f"x-api-key: {KEY}", "--data-binary", f"@{big}")
    assert (status, answer["error"]["code"]) == (413, "request_too_large")


@needs_curl
def test_curl_with_a_bad_body_gets_the_functions_openai_error(stack):
    status, answer = _curl(stack.base_url + "/chat/completions", "-H", f"x-api-key: {KEY}", "-d", '{"messages": []}')
    assert status == 400
    assert answer["error"]["param"] == "messages"
