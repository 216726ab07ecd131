"""`ownllm batch run` against a scripted server: result lines, retries, final failures."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from ownllm.cli import main

from .fakeapi import COMPLETION_TOKENS, PROMPT_TOKENS, completion, error_body, read_lines, write_input


def run_batch(tmp_path: Path, url: str, ids: list[str], *extra: str) -> tuple[int, Path, Path]:
    source = write_input(tmp_path / "in.jsonl", ids)
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    argv = ["batch", "run", str(source), "--url", url, "--output", str(output), "--errors", str(errors)]
    code = main([*argv, "--key", "k-123", "--no-progress", "--backoff", "0.001", *extra])
    return code, output, errors


def test_each_success_is_one_openai_batch_output_line(tmp_path, server, capsys):
    code, output, errors = run_batch(tmp_path, server.url, ["a", "b"])

    lines = sorted(read_lines(output), key=lambda line: line["custom_id"])
    assert code == 0
    assert [sorted(line) for line in lines] == [["custom_id", "error", "id", "response"]] * 2
    assert lines[0]["custom_id"] == "a"
    assert lines[0]["id"].startswith("batch_req_")
    assert lines[0]["error"] is None
    assert lines[0]["response"] == {"status_code": 200, "request_id": "req-a", "body": completion("a")}
    assert read_lines(errors) == []
    out = capsys.readouterr().out
    assert f"2 of 2 succeeded -> {output}; 0 failed -> {errors}\n" in out
    assert f"{2 * PROMPT_TOKENS} prompt + {2 * COMPLETION_TOKENS} output tokens\n" in out


def test_requests_go_to_the_line_url_under_the_base_with_the_key(tmp_path, server):
    source = tmp_path / "in.jsonl"
    line = {
        "custom_id": "c",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"model": "test", "user": "c", "prompt": "hi"},
    }
    source.write_text(json.dumps(line) + "\n")
    argv = ["batch", "run", str(source), "--url", server.url + "/", "--output", str(tmp_path / "o.jsonl")]

    assert main([*argv, "--key", "k-123", "--no-progress"]) == 0
    assert [s.path for s in server.seen] == ["/v1/completions"]
    assert server.seen[0].headers["x-api-key"] == "k-123"
    assert server.seen[0].headers["authorization"] == "Bearer k-123"
    assert (tmp_path / "o.errors.jsonl").read_text() == ""  # the default errors file, beside the output


def test_429_and_503_and_504_are_retried_until_success(tmp_path, server):
    server.script("a", (429, {"Retry-After": "0"}), (503, {}), (504, {}), 200)

    code, output, errors = run_batch(tmp_path, server.url, ["a"])

    assert code == 0
    assert server.sent("a") == 4
    assert [line["response"]["status_code"] for line in read_lines(output)] == [200]
    assert read_lines(errors) == []


def test_retry_after_is_honored_before_the_next_try(tmp_path, server):
    server.script("a", (429, {"Retry-After": "1"}), 200)

    started = time.monotonic()
    code, output, _ = run_batch(tmp_path, server.url, ["a"])

    assert code == 0
    assert time.monotonic() - started >= 1.0  # the jittered backoff alone is at most 1 ms here
    assert len(read_lines(output)) == 1


def test_a_request_that_keeps_failing_goes_to_errors_with_its_last_answer(tmp_path, server, capsys):
    server.script("a", *[(504, {})] * 10)

    code, output, errors = run_batch(tmp_path, server.url, ["a", "b"], "--max-attempts", "3")

    assert code == 1
    assert server.sent("a") == 3
    [line] = read_lines(errors)
    assert line["custom_id"] == "a"
    assert line["error"] is None
    assert line["response"] == {"status_code": 504, "request_id": "req-a", "body": error_body(504)}
    assert [line["custom_id"] for line in read_lines(output)] == ["b"]
    assert "failed this run: HTTP 504: 1\n" in capsys.readouterr().out


def test_a_client_error_is_final_and_not_retried(tmp_path, server):
    server.script("a", (400, {}), 200)

    code, _, errors = run_batch(tmp_path, server.url, ["a"])

    assert code == 1
    assert server.sent("a") == 1
    assert [line["response"]["status_code"] for line in read_lines(errors)] == [400]


def test_no_answer_at_all_goes_to_errors_as_a_connection_error(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    code, output, errors = run_batch(tmp_path, f"http://127.0.0.1:{port}/v1", ["a"], "--max-attempts", "2")

    [line] = read_lines(errors)
    assert code == 1
    assert line["response"] is None
    assert line["error"]["code"] == "connection_error"
    assert line["error"]["message"].startswith("ConnectError: ")
    assert read_lines(output) == []


def test_a_server_that_never_answers_stops_the_run_instead_of_failing_every_request(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"

    code, output, errors = run_batch(tmp_path, url, [f"r{i}" for i in range(40)], "--max-attempts", "1")

    assert code == 1
    assert len(read_lines(errors)) == 10  # UNREACHABLE_STOP_AFTER; the other 30 wait for the next run
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith(f"ownllm batch run: stopped: the last 10 requests got no answer from {url} (ConnectError: ")
    )


@pytest.mark.parametrize("code", ["model_starting", "model_not_ready"])
def test_a_starting_endpoint_is_waited_for_without_using_up_attempts(tmp_path, server, code):
    starting = (503, {"Retry-After": "0"}, error_body(503, code=code))
    server.script("a", *[starting] * 5, 200)

    code, output, _ = run_batch(tmp_path, server.url, ["a"], "--max-attempts", "2")

    assert code == 0
    assert server.sent("a") == 6
    assert [line["custom_id"] for line in read_lines(output)] == ["a"]


def test_waiting_for_a_starting_endpoint_stops_at_the_startup_wait(tmp_path, server):
    starting = (503, {"Retry-After": "0"}, error_body(503, code="model_not_ready"))
    server.script("a", *[starting] * 5, 200)

    code, _, errors = run_batch(tmp_path, server.url, ["a"], "--max-attempts", "2", "--startup-wait", "0")

    assert code == 1
    assert server.sent("a") == 2
    assert [line["response"]["body"]["error"]["code"] for line in read_lines(errors)] == ["model_not_ready"]


def test_max_rps_spaces_the_requests(tmp_path, server):
    started = time.monotonic()
    code, output, _ = run_batch(tmp_path, server.url, [f"r{i}" for i in range(6)], "--max-rps", "10")

    assert code == 0
    assert time.monotonic() - started >= 0.5  # six starts 0.1 s apart: the last at 0.5 s at the earliest
    assert len(read_lines(output)) == 6


def test_the_cost_so_far_uses_the_price_given(tmp_path, server, capsys):
    code, _, _ = run_batch(tmp_path, server.url, ["a", "b", "c"], "--cost-per-request", "0.01")

    assert code == 0
    assert "cost this run: $0.03 at $0.01/request\n" in capsys.readouterr().out


def test_without_a_price_it_says_it_shows_tokens_not_cost(tmp_path, server, capsys):
    run_batch(tmp_path, server.url, ["a"])

    assert (
        "ownllm batch run: no price given (--cost-per-request); showing tokens, not cost\n" in capsys.readouterr().err
    )


def test_a_second_run_sends_nothing_already_done(tmp_path, server, capsys):
    run_batch(tmp_path, server.url, ["a", "b"])
    capsys.readouterr()

    code, output, _ = run_batch(tmp_path, server.url, ["a", "b"])

    assert code == 0
    assert len(server.seen) == 2
    assert len(read_lines(output)) == 2
    assert f"resuming: 2 in {output}, 0 in {tmp_path / 'err.jsonl'}; 0 left\n" in capsys.readouterr().err


@pytest.fixture
def proxy_env(monkeypatch):
    """proxy_env(url): HTTP_PROXY, HTTPS_PROXY and ALL_PROXY all name `url`; no NO_PROXY."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    def set_proxy(url: str) -> None:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, url)

    return set_proxy


def test_a_loopback_server_is_reached_directly_whatever_the_proxy_variables_say(tmp_path, server, proxy_env):
    with socket.socket() as unused:  # a proxy that is not there: any request sent to it fails
        unused.bind(("127.0.0.1", 0))
        proxy_env(f"http://127.0.0.1:{unused.getsockname()[1]}")
    code, output, _ = run_batch(tmp_path, server.url, ["a"])
    assert (code, [line["custom_id"] for line in read_lines(output)], server.sent("a")) == (0, ["a"], 1)


def test_a_remote_api_is_reached_through_the_users_proxy(tmp_path, server, proxy_env):
    """The scripted server plays the proxy: a proxied plain-HTTP request names the whole URL."""
    proxy_env(server.url.removesuffix("/v1"))
    code, output, _ = run_batch(tmp_path, "http://api.example.test/v1", ["a"])
    assert (code, [s.path for s in server.seen]) == (0, ["http://api.example.test/v1/chat/completions"])
