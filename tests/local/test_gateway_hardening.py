"""The gateway against clients that misbehave: it refuses before reading what it need not read,
and slow or stalled clients are dropped instead of holding a connection."""

from __future__ import annotations

import socket
import time

import pytest

from ownllm.local.gateway import Gateway
from ownllm.local.lambda_pool import LambdaPool

KEY = "test-key-0123456789"
SHORT_S = 0.3  # the bare gateway's header and body idle timeouts


def _exchange(port: int, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send `data`, then read until the gateway closes the connection (a socket timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_keyless_client_announcing_a_huge_body_gets_401_without_the_gateway_reading_it(stack):
    """Only the head is sent: a gateway that read the body first would still be waiting for it."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n"
    answer = _exchange(stack.gateway.port, head)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'"code": "missing_api_key"' in answer
    assert b"\r\nconnection: close\r\n" in answer.lower()


def test_a_wrong_key_with_a_chunked_body_gets_403_before_a_chunk_is_read(stack):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = _exchange(stack.gateway.port, head)
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b'"code": "invalid_api_key"' in answer


def test_a_body_announced_over_10_mb_gets_413_before_a_byte_of_it_is_read(stack):
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: "
        + KEY.encode()
        + b"\r\nContent-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n"
    )
    answer = _exchange(stack.gateway.port, head)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer


@pytest.mark.parametrize("size_line", [b"-5", b"zz", b"0x10"])
def test_a_negative_or_non_hex_chunk_size_is_a_400_through_the_gateway(stack, size_line):
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: "
        + KEY.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size_line
        + b"\r\nabcde\r\n0\r\n\r\n"
    )
    assert _exchange(stack.gateway.port, request).startswith(b"HTTP/1.1 400 ")


@pytest.fixture
def bare_gateway():
    """A gateway with short header and body idle timeouts; its function is never reached."""
    pool = LambdaPool(env={}, timeout_s=1.0)
    gateway = Gateway(pool, KEY, header_timeout_s=SHORT_S, body_idle_timeout_s=SHORT_S).start()
    yield gateway
    gateway.stop()
    pool.close()


def _closed_after(sock: socket.socket, trickle: bytes | None, limit_s: float = 3.0) -> tuple[float, bytes]:
    """(seconds until the gateway closed the connection, what it sent), sending `trickle` a byte
    every 0.05 s meanwhile; a connection still open after limit_s fails the test."""
    started = time.monotonic()
    sock.settimeout(0.05)
    received = b""
    while time.monotonic() - started < limit_s:
        if trickle:
            try:
                sock.sendall(trickle[:1])
            except OSError:
                return time.monotonic() - started, received
            trickle = trickle[1:] or trickle
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started, received
        if not chunk:
            return time.monotonic() - started, received
        received += chunk
    pytest.fail(f"the connection was still open after {limit_s} s")


def test_a_client_trickling_its_headers_is_dropped_after_the_header_timeout(bare_gateway):
    with socket.create_connection(("127.0.0.1", bare_gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        elapsed, received = _closed_after(sock, trickle=b"x-slow: " + b"a" * 1000)
    assert received == b""
    assert elapsed >= SHORT_S


def test_a_client_that_stops_mid_body_is_dropped_after_the_idle_timeout(bare_gateway):
    with socket.create_connection(("127.0.0.1", bare_gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + KEY.encode()
            + b"\r\nContent-Length: 100\r\n\r\n"
            + b"{" * 10
        )
        elapsed, received = _closed_after(sock, trickle=None)
    assert received == b""
    assert elapsed >= SHORT_S
