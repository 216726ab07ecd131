"""The local stack's one HTTP server (ownllm/local/server.py): uvicorn in a thread, with a deadline on request heads."""

from __future__ import annotations

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
    abort,
    answer,
    read_body,
    request_headers,
)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
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
    body = await read_body(receive, idle_timeout_s=0.3)
    if body is None:
        abort(scope)
    elif scope["path"] == "/ok":
        headers = request_headers(scope)
        await answer(send, 200, {"Content-Length": "999", "x-seen": headers["x-test"]}, body)
    else:
        abort(scope)


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


def test_a_body_that_stalls_past_the_idle_timeout_gets_the_connection_closed():
    with LocalServer(hangs_up) as running:  # _raw's socket times out if the server never closes
        assert _raw(running, b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhal", wait_s=5) == b""


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
