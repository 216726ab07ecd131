"""The caller's deadline holds on both of upstream.py's branches: with botocore's per-request read
timeout (1.44.5, bundled) and without it (older botocore), and while a buffered answer's body is
still arriving."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lambda_testkit import BASE_ENV, FAKE_AWS, MODEL, Harness

# The deployed connect timeout (config.py's default): with it, a retry that had to fit the client's
# whole read timeout (2 s + 25 s) into a buffered request's 27 s could never start.
DEPLOYED_CONNECT_TIMEOUT = {"UPSTREAM_CONNECT_TIMEOUT_S": "2.0"}


@pytest.fixture(params=[True, False], ids=["per-request-read-timeout", "older-botocore"])
def branch(request, forwarder_app, monkeypatch) -> bool:
    """Each test runs as if botocore had, then had not, the per-request read timeout."""
    import upstream

    monkeypatch.setattr(upstream, "PER_REQUEST_READ_TIMEOUT", request.param)
    return request.param


def test_the_bundled_botocore_has_the_per_request_read_timeout():
    import upstream

    assert upstream.PER_REQUEST_READ_TIMEOUT is True


def test_a_throttled_attempt_is_retried_within_a_buffered_requests_budget(branch, make_forwarder):
    forwarder = make_forwarder("vllm", env=DEPLOYED_CONNECT_TIMEOUT)
    forwarder.server.set_fault("throttle", times=1)
    answer = forwarder.chat()
    assert (answer.status, answer.json()["choices"][0]["finish_reason"]) == (200, "stop")
    assert len(forwarder.server.requests) == 2  # the throttled attempt and its retry


def test_a_slow_model_is_answered_with_a_504_at_the_deadline_not_when_it_finishes(branch, forwarder):
    """2.5 s left, 1 s kept back: the model's answer after 4 s comes too late to be waited for."""
    forwarder.server.set_fault("slow", delay_s=4)
    answer = forwarder.chat(remaining_ms=2500)
    assert (answer.status, answer.error["code"]) == (504, "timeout")
    assert len(forwarder.server.requests) == 1


def test_no_retry_is_started_with_less_time_left_than_an_attempt_needs(branch, forwarder):
    """Throttled at once with 3 s left (2 s budget): a retry needs MIN_ATTEMPT_S (2 s), so none is tried."""
    forwarder.server.set_fault("throttle")
    answer = forwarder.chat(remaining_ms=3000)
    assert answer.status == 429  # the real failure, not a timeout
    assert len(forwarder.server.requests) == 1


# -- an answer that drips in ---------------------------------------------------------------------


def chat_answer(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    answer = {"id": "chatcmpl-drip", "object": "chat.completion", "created": 1, "model": MODEL, "usage": usage}
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    return json.dumps(answer).encode()


class DripServer(ThreadingHTTPServer):
    """InvokeEndpoint answered at once with its headers, then its body `piece` bytes every `every_s`
    seconds, with a Content-Length or chunked."""

    daemon_threads = True

    def __init__(self, body: bytes, piece: int, every_s: float, chunked: bool) -> None:
        super().__init__(("127.0.0.1", 0), _DripHandler)
        self.body, self.piece, self.every_s, self.chunked = body, piece, every_s, chunked
        self.finished = threading.Event()  # the whole body was sent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _DripHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DripServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        s = self.server
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header(*(("Transfer-Encoding", "chunked") if s.chunked else ("Content-Length", str(len(s.body)))))
        self.end_headers()
        try:
            for start in range(0, len(s.body), s.piece):
                piece = s.body[start : start + s.piece]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if s.chunked else piece)
                self.wfile.flush()
                time.sleep(s.every_s)
            if s.chunked:
                self.wfile.write(b"0\r\n\r\n")
            s.finished.set()
        except OSError:
            pass  # the forwarder hung up

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def drip(forwarder_app, monkeypatch) -> Iterator:
    """The forwarder wired to a DripServer made by the test."""
    import config as settings
    import upstream

    servers: list[DripServer] = []

    def make(body: bytes, *, piece: int, every_s: float, chunked: bool) -> tuple[Harness, DripServer]:
        server = DripServer(body, piece, every_s, chunked)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        env = {**FAKE_AWS, **BASE_ENV, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        cfg = settings.load(env)
        monkeypatch.setattr(forwarder_app, "CONFIG", cfg)
        client = upstream.create_client(cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_attempts)
        monkeypatch.setattr(forwarder_app, "CLIENT", client)
        return Harness(forwarder_app, None, None), server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_that_drips_in_is_cut_at_the_deadline_with_a_504(branch, drip, chunked):
    """A byte every 50 ms: the whole answer would take about 15 s, each read only 50 ms (well inside
    any socket timeout). 3 s left, 1 s kept back: the answer is a 504 while the body is still arriving."""
    forwarder, server = drip(chat_answer("x" * 100), piece=1, every_s=0.05, chunked=chunked)
    answer = forwarder.chat(remaining_ms=3000)
    assert (answer.status, answer.error["code"]) == (504, "timeout")
    assert not server.finished.is_set()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_answer_read_piece_by_piece_arrives_whole(branch, drip, chunked):
    forwarder, _ = drip(chat_answer("Deep learning " * 20), piece=64, every_s=0.01, chunked=chunked)
    answer = forwarder.chat()
    assert answer.status == 200
    assert answer.json()["choices"][0]["message"] == {"role": "assistant", "content": "Deep learning " * 20}
