"""Serve an ASGI app on a local port with uvicorn, in a background thread: the one HTTP server of
the local stack (gateway, SageMaker runtime, stand-ins in tests and benchmarks).

uvicorn is the server the deployed function runs (lambda/forwarder/run.sh), pinned in
pyproject.toml. It parses HTTP with h11, which refuses malformed requests itself (a chunk size
that is negative or not hex, a bad request line, headers over `MAX_HEADER_BYTES`) with a 400, and
it serves every connection on one event loop, so a slow client holds no thread.

What uvicorn lacks is a header timeout and a body idle timeout: a client that connects and
trickles a request line a byte at a time, or stops halfway through its body, would keep its
connection forever (the keep-alive timeout only runs between requests). `_TimedH11Protocol`
closes a connection whose request headers are not complete within `header_timeout_s` of its
first byte (or of the connection, for the first request), and one whose body has had no new
byte for `body_idle_timeout_s` while the app was ready to read it (the app then reads
`http.disconnect`). The same holds for a body uvicorn discards after the app answered without
reading it.

An app may also end a connection mid-answer, as a gateway cuts a stream past its timeout:
`close_connection(scope)` closes it without the final chunk (ASGI has no message for that).

The socket is bound here, before the thread starts, so a port in use is an immediate OSError in
the caller, and port 0 gets a free port that `port` reports.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "BODY_IDLE_TIMEOUT_S",
    "HEADER_TIMEOUT_S",
    "KEEP_ALIVE_S",
    "LocalServer",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "close_connection",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# How long a client may take to send a request's line and headers, and how long an idle
# keep-alive connection is kept. API Gateway's own figures are not published; these are generous
# for a local client and short enough that abandoned connections go.
HEADER_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
# h11's own limit on an incomplete request head (uvicorn's default, 16 KiB): larger is a 400.
MAX_HEADER_BYTES = 16 * 1024
# Listening backlog: 64 clients connecting at once must not see refused SYNs.
BACKLOG = 1024
STOP_TIMEOUT_S = 5.0
# Where the protocol puts the connection's close function in each request's scope.
CLOSE_EXTENSION = "ownllm.close_connection"


class _TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head and on each pause in a body."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # - uvicorn's narrower signature
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_body_byte = 0.0
        self._exposed: object = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._expose_close()
        state = self.conn.their_state
        if state is h11.IDLE:  # still reading a request head
            self._arm_head_timer()
        else:
            self._cancel_head_timer()
        if state is h11.SEND_BODY:
            self._last_body_byte = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_idle_timeout_s, self._body_check)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expose_close()  # a pipelined request may have started: its task has not run yet

    def _expose_close(self) -> None:
        """Put `close_connection` into the scope of a request that has just started."""
        cycle = self.cycle
        if cycle is None or cycle is self._exposed:
            return
        self._exposed = cycle

        def close() -> None:
            cycle.disconnected = True  # uvicorn then logs no "returned without completing response"
            self.transport.close()

        cycle.scope.setdefault("extensions", {})[CLOSE_EXTENSION] = {"close": close}

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def _body_check(self) -> None:
        """One timer per body, pushed back by each byte: cheaper than a timer per read."""
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        now = self.loop.time()
        waiting_for_us = self.cycle is not None and self.cycle.waiting_for_100_continue
        if self.flow.read_paused or waiting_for_us:  # the app is not reading yet: the client is not idling
            self._last_body_byte = now
        idle = now - self._last_body_byte
        if idle >= self.body_idle_timeout_s:
            self.transport.close()
        else:
            self._body_timer = self.loop.call_later(self.body_idle_timeout_s - idle, self._body_check)


def close_connection(scope: Scope) -> None:
    """Close the request's connection now, without finishing the answer under way."""
    extension = scope.get("extensions", {}).get(CLOSE_EXTENSION)
    if extension is None:
        raise RuntimeError("close_connection needs a request served by LocalServer")
    extension["close"]()


class LocalServer:
    """`app` served on host:port by uvicorn in a daemon thread; `url` once constructed."""

    def __init__(
        self,
        app: AsgiApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "ownllm-local",
        lifespan: bool = False,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
        keep_alive_s: int = KEEP_ALIVE_S,
        graceful_stop_s: int = 1,
    ) -> None:
        self.host = host
        self.name = name
        protocol = type(
            "TimedH11Protocol",
            (_TimedH11Protocol,),
            {"header_timeout_s": header_timeout_s, "body_idle_timeout_s": body_idle_timeout_s},
        )
        self._config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="on" if lifespan else "off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For from a local client is not its address
            date_header=False,
            timeout_keep_alive=keep_alive_s,
            timeout_graceful_shutdown=graceful_stop_s,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            backlog=BACKLOG,
        )
        self._server = uvicorn.Server(self._config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets that say they are TCP
        # (base_events._set_nodelay), and with it on, a keep-alive client waits 40 ms for each answer
        # written in pieces (headers, body, last chunk): Nagle holding the next piece until the
        # client's delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(BACKLOG)
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name} on {self.url} stopped while starting")
            self._thread.join(0.005)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():  # connections that would not close in the graceful time
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
