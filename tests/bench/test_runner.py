"""The load generator: bounded levels, every answer recorded with its status, latency and tokens."""

from __future__ import annotations

import socket
import threading

import pytest

from ownllm.bench import runner
from ownllm.local.server import LocalServer, Receive, Scope, Send, abort, answer, read_body

KEY = "bench-test-key"


def _target(url: str, **kwargs) -> runner.Target:
    return runner.Target(url, kwargs.pop("api_key", "k"), kwargs.pop("model", "trivial"), **kwargs)


def test_a_request_count_level_sends_exactly_that_many_requests(trivial):
    server = trivial(tokens=7)
    run = runner.run_level(_target(server.url), 4, requests=50)
    assert len(run.samples) == 50
    assert server.posts == 50
    assert {s.status for s in run.samples} == {200}
    assert {s.output_tokens for s in run.samples} == {7}


def test_a_duration_level_starts_no_request_after_its_duration(trivial):
    """Every request starts at or after the level's start, so all starting before its deadline puts
    the first and the last less than the duration apart."""
    server = trivial(delay_s=0.01)
    run = runner.run_level(_target(server.url), 8, duration_s=0.5)
    assert run.elapsed_s >= 0.5
    assert len(run.samples) > 8
    assert max(s.started_s for s in run.samples) - min(s.started_s for s in run.samples) < 0.5


def test_failed_requests_are_counted_by_status(trivial):
    server = trivial(status_for=lambda n: 500 if n % 4 == 0 else (429 if n % 4 == 1 else 200))
    run = runner.run_level(_target(server.url), 1, requests=40)
    counts = {status: sum(1 for s in run.samples if s.status == status) for status in (200, 429, 500)}
    assert counts == {200: 20, 429: 10, 500: 10}


def test_a_request_slower_than_the_timeout_counts_as_timeout_and_the_level_still_ends(trivial):
    server = trivial(delay_s=1.0)
    run = runner.run_level(_target(server.url, timeout_s=0.1), 2, requests=4)
    assert [s.status for s in run.samples] == ["timeout"] * 4


def test_an_unreachable_server_counts_connection_errors_and_the_level_still_ends():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    run = runner.run_level(_target(f"http://127.0.0.1:{port}/v1"), 2, requests=10)
    assert [s.status for s in run.samples] == ["connection"] * 10


def test_a_keep_alive_connection_the_server_closed_is_reopened_not_counted_as_an_error():
    seen = []

    async def closes_after_each_answer(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        seen.append(1)
        await answer(send, 200, {}, b'{"usage": {"completion_tokens": 3}}')
        abort(scope)  # no "Connection: close": it claims keep-alive, then hangs up anyway

    with LocalServer(closes_after_each_answer) as server:
        run = runner.run_level(_target(f"{server.url}/v1"), 1, requests=10)
    assert [s.status for s in run.samples] == [200] * 10
    assert len(seen) == 10  # every request arrived once


def test_a_stop_event_ends_a_level_early(trivial):
    server = trivial(delay_s=0.02)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    run = runner.run_level(_target(server.url), 2, duration_s=30, stop=stop)
    assert run.interrupted
    assert run.elapsed_s < 30  # ended by the event, not by the duration


def test_output_tokens_come_from_usage_and_anything_else_is_not_an_openai_answer():
    assert runner.output_tokens(b'{"usage": {"completion_tokens": 5}}') == 5
    assert runner.output_tokens(b'{"choices": []}') == 0
    assert runner.output_tokens(b"<html>") is None
    assert runner.output_tokens(b"[1, 2]") is None


def test_the_model_is_discovered_from_get_models(trivial):
    assert runner.discover_model(_target(trivial().url, model="")) == "trivial"


def test_a_wrong_key_at_discovery_says_to_check_the_key(local_stack):
    with pytest.raises(runner.BenchError, match=r"answered 403.*check the API key"):
        runner.discover_model(runner.Target(local_stack.base_url, "wrong-key"))


@pytest.mark.parametrize("url", ["ftp://x/v1", "127.0.0.1:8080/v1", "http:///v1"])
def test_a_target_that_is_not_an_http_url_is_refused(url):
    with pytest.raises(runner.BenchError):
        runner.Target(url)


def test_a_level_against_the_local_stack_records_that_the_stand_in_answered(local_stack):
    target = runner.Target(local_stack.base_url, KEY, local_stack.model_name, max_tokens=8)
    run = runner.run_level(target, 2, requests=6)
    assert [s.status for s in run.samples] == [200] * 6
    assert {s.output_tokens for s in run.samples} == {8}
    assert run.backends == {"stand-in"}
