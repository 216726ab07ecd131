"""The load generator: bounded levels, every answer recorded with its status, latency and tokens."""

from __future__ import annotations

import socket
import threading

import pytest

from ownllm.bench import runner
from ownllm.local.server import LocalServer, Receive, Scope, Send, answer, close_connection, read_body, request_headers

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
        close_connection(scope)  # no "Connection: close": it claims keep-alive, then hangs up anyway

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


class _Proxy:
    """Plays a proxy on 127.0.0.1: records each request's method, target and Proxy-Authorization;
    forwards nothing, answering a plain request itself and refusing a CONNECT tunnel with 403."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.server = LocalServer(self.app).start()

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        self.seen.append((scope["method"], scope["path"], request_headers(scope).get("proxy-authorization")))
        if scope["method"] == "CONNECT":
            await answer(send, 403, {}, b"")
        else:
            await answer(send, 200, {}, b'{"usage": {"completion_tokens": 2}}')


@pytest.fixture
def proxy():
    played = _Proxy()
    yield played
    played.server.stop()


def test_a_loopback_server_is_reached_directly_whatever_the_proxy_variables_say(trivial, proxy, proxy_env):
    proxy_env(proxy.server.url)
    run = runner.run_level(_target(trivial().url), 1, requests=3)
    assert ([s.status for s in run.samples], proxy.seen) == ([200] * 3, [])


def test_a_plain_http_api_is_reached_through_the_users_proxy_with_its_credentials(proxy, proxy_env):
    proxy_env(proxy.server.url.replace("http://", "http://bench:p%40ss@"))
    run = runner.run_level(_target("http://api.example.test:8080/v1"), 1, requests=2)
    assert [s.status for s in run.samples] == [200] * 2
    assert proxy.seen == [("POST", "http://api.example.test:8080/v1/chat/completions", "Basic YmVuY2g6cEBzcw==")] * 2


def test_an_https_api_is_tunnelled_through_the_users_proxy(proxy, proxy_env):
    proxy_env(proxy.server.url)
    run = runner.run_level(_target("https://api.example.test/prod/v1"), 1, requests=1)
    assert ([s.status for s in run.samples], proxy.seen) == (
        ["connection"],
        [("CONNECT", "api.example.test:443", None)],
    )


def test_a_proxy_the_bench_cannot_use_is_refused_naming_it(proxy_env):
    proxy_env("https://proxy.corp:3129")
    with pytest.raises(runner.BenchError) as caught:
        runner.Target("https://api.example.test/v1")
    assert str(caught.value) == (
        "proxy 'https://proxy.corp:3129' (from the *_PROXY variables) for https://api.example.test/v1 is not an "
        "http:// proxy URL, the only kind the bench can use; set NO_PROXY to reach the API directly"
    )
