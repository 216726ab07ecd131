"""The local stack's one HTTP server (ownllm/local/server.py): uvicorn in a thread, with a deadline on request heads."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import pytest

from ownllm.local.server import (
    BodyTooLarge,
    DaemonPool,
    LocalServer,
    Receive,
    Scope,
    Send,
    answer,
    close_connection,
    read_body,
    request_headers,
)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive) or b""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server():
    with LocalServer(echo, header_timeout_s=0.5) as running:
        yield running


def _raw(server: LocalServer, data: bytes, wait_s: float = 2.0) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=wait_s) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_a_request_is_answered_on_the_port_the_server_reports(server):
    assert server.port > 0
    response = httpx.post(server.url, content=b"hello")
    assert (response.status_code, response.text) == (200, "hello")


def test_a_negative_chunk_size_is_a_400_before_the_app_sees_a_byte(server):
    answer = _raw(server, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_chunk_size_that_is_not_hex_is_a_400(server):
    answer = _raw(server, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_client_that_trickles_its_headers_is_disconnected_after_the_header_timeout(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        closed_after = None
        for _ in range(40):  # one header byte every 0.1 s: never a complete head
            try:
                sock.sendall(b"X")
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            except OSError:  # closed, and the byte sent since answered with a reset
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None and closed_after < 2.0


def test_a_connection_that_never_sends_is_closed_after_the_header_timeout(server):
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        assert sock.recv(1) == b""


def test_a_port_in_use_is_an_error_in_the_caller(server):
    with pytest.raises(OSError):
        LocalServer(echo, server.host, server.port)


def test_stop_releases_the_port():
    running = LocalServer(echo).start()
    port = running.port
    running.stop()
    LocalServer(echo, port=port).stop()


async def hangs_up(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers /ok with what it was sent; hangs up without a byte on anything else and on a stalled body."""
    body = await read_body(receive)
    if body is None:
        close_connection(scope)
    elif scope["path"] == "/ok":
        headers = request_headers(scope)
        await answer(send, 200, {"Content-Length": "999", "x-seen": headers["x-test"]}, body)
    else:
        close_connection(scope)


def test_an_app_can_hang_up_without_answering_and_the_connection_sends_nothing(caplog):
    with LocalServer(hangs_up) as running:
        assert _raw(running, b"POST /drop HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi") == b""
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []


def test_an_answer_carries_the_body_length_and_the_last_of_repeated_request_headers():
    with LocalServer(hangs_up) as running:
        response = httpx.post(f"{running.url}/ok", content=b"hello", headers=[("X-Test", "a"), ("X-Test", "b")])
    assert (response.status_code, response.headers["content-length"], response.headers["x-seen"], response.text) == (
        200,
        "5",
        "b",
        "hello",
    )


class _Greeter:
    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await answer(send, 200, {}, b"hi from a method")


def test_a_bound_async_method_is_served_as_an_asgi3_app():
    with LocalServer(_Greeter().app) as running:
        response = httpx.get(running.url)
    assert (response.status_code, response.text) == (200, "hi from a method")


def test_connections_are_tcp_sockets_so_asyncio_turns_nagles_algorithm_off():
    """asyncio sets TCP_NODELAY only on sockets made with proto IPPROTO_TCP; accepted ones inherit it."""
    with LocalServer(echo) as running:
        assert running._socket.proto == socket.IPPROTO_TCP


def test_a_daemon_pool_runs_work_on_as_many_threads_as_are_busy_up_to_its_limit():
    pool = DaemonPool(3, "test-pool")
    release = threading.Event()
    started = threading.Barrier(4, timeout=5)  # three workers and this test

    def busy() -> str:
        started.wait()
        release.wait(5)
        return threading.current_thread().name

    futures = [pool.submit(busy) for _ in range(3)]
    started.wait()  # all three ran at once: one thread each
    waiting = pool.submit(lambda: "after")
    release.set()
    assert (sorted(f.result(5) for f in futures), waiting.result(5)) == (
        ["test-pool-0", "test-pool-1", "test-pool-2"],
        "after",
    )
    pool.shutdown()


def test_a_daemon_pool_hands_a_failure_to_the_caller_and_refuses_work_once_shut_down():
    pool = DaemonPool(1, "test-pool")
    failed = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match=r"^invalid literal for int\(\) with base 10: 'not a number'$"):
        failed.result(5)
    pool.shutdown()
    with pytest.raises(RuntimeError, match=r"^test-pool is shut down$"):
        pool.submit(int, "1")


def test_a_process_exits_while_its_daemon_pool_still_runs_work():
    """`ownllm local` must stop on Ctrl-C even while a backend generates a long answer."""
    script = (
        "import time\n"
        "from ownllm.local.server import DaemonPool\n"
        "pool = DaemonPool(1, 'p')\n"
        "pool.submit(time.sleep, 600)\n"
        "time.sleep(0.2)\n"
        "print('leaving', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "leaving\n", "")


async def capped(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        body = await read_body(receive, max_bytes=8)
    except BodyTooLarge as too_large:
        await answer(send, 413, {"Connection": "close"}, str(too_large).encode())
        return
    await answer(send, 200, {}, body or b"")


def test_a_chunked_body_past_the_limit_is_refused_before_the_client_has_finished_sending():
    with LocalServer(capped) as running, socket.create_connection((running.host, running.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n")
        received = b""  # no last chunk sent: the answer comes from the limit alone, then the server hangs up
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 ") and received.endswith(b"\r\n\r\nrequest body over 8 bytes")


def test_a_client_that_stops_mid_body_is_disconnected_after_the_body_idle_timeout():
    with (
        LocalServer(echo, body_idle_timeout_s=0.3) as running,
        socket.create_connection((running.host, running.port), timeout=5) as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed, and nothing answered
        assert time.monotonic() - started >= 0.3


def test_a_body_that_keeps_coming_is_read_whatever_its_length_in_time():
    with (
        LocalServer(echo, body_idle_timeout_s=0.3) as running,
        socket.create_connection((running.host, running.port), timeout=5) as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for byte in b"trickled":  # 1.6 s in all, never 0.3 s without a byte
            time.sleep(0.2)
            sock.sendall(bytes([byte]))
        answer = b""
        while not answer.endswith(b"\r\n0\r\n\r\n"):  # the echo's last chunk
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\n8\r\ntrickled\r\n0\r\n\r\n")


async def cut_after_one_piece(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"piece", "more_body": True})
    close_connection(scope)


def test_close_connection_ends_an_answer_without_its_final_chunk(caplog):
    with LocalServer(cut_after_one_piece) as running:
        answer = _raw(running, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\n5\r\npiece\r\n")  # no 0-length chunk: the client sees it cut short
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []


async def echo_later(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(0.6)  # longer than the body idle timeout before it reads a byte
    await echo(scope, receive, send)


def test_a_client_waiting_for_100_continue_is_not_dropped_while_the_app_has_not_read_yet():
    with (
        LocalServer(echo_later, body_idle_timeout_s=0.2) as running,
        socket.create_connection((running.host, running.port), timeout=5) as sock,
    ):
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        answer = b""
        while not answer.endswith(b"\r\n0\r\n\r\n"):
            answer += sock.recv(65536)
    assert answer.endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
