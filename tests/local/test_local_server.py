"""The local stack's one HTTP server (ownllm/local/server.py): uvicorn in a thread, with a deadline on request heads."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx2 as httpx
import pytest

from ownllm.local.server import LocalServer, Receive, Scope, Send, close_connection


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
