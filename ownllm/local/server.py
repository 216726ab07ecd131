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

An app may also end a connection before or during its answer, as a gateway cuts a stream past
its timeout or a server dies mid-request: `close_connection(scope)` closes it without the final
chunk (ASGI has no message for that).

The socket is bound here, before the thread starts, so a port in use is an immediate OSError in
the caller, and port 0 gets a free port that `port` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

__all__ = [
    "BODY_IDLE_TIMEOUT_S",
    "BodyTooLarge",
    "DaemonPool",
    "HEADER_TIMEOUT_S",
    "KEEP_ALIVE_S",
    "LocalServer",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "answer",
    "close_connection",
    "read_body",
    "request_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_P = ParamSpec("_P")
_T = TypeVar("_T")

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
# scope["extensions"][CLOSE_EXTENSION]["close"]: close this request's connection now.
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
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE:  # still reading a request head
            self._arm_head_timer()
        else:
            self._cancel_head_timer()
        if state is h11.SEND_BODY:
            self._last_body_byte = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_idle_timeout_s, self._body_check)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a new request: its app task is scheduled, not yet running
            extensions = self.cycle.scope.setdefault("extensions", {})
            extensions[CLOSE_EXTENSION] = {"close": lambda new=self.cycle: self._close(new)}

    def _close(self, cycle: RequestResponseCycle) -> None:
        # Marked disconnected, the cycle neither answers 500 for the app nor logs its silence.
        cycle.disconnected = True
        self.transport.close()

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


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, stopped by an event instead of a flag it reads every 0.1 s: a test suite
    starts and stops hundreds of servers. (Its tick only refreshes the Date and Server headers,
    which are off, and counts requests against a limit, which is unset.)"""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: Callable[[], object] | None = None

    async def main_loop(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._wake = lambda: loop.call_soon_threadsafe(stop.set)
        if not self.should_exit:  # set before _wake was there: nothing will wake the event
            await stop.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                wake()


class BodyTooLarge(Exception):
    """A request body over the `max_bytes` given to `read_body`; what was read of it is dropped."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body over {max_bytes} bytes")
        self.max_bytes = max_bytes


async def read_body(receive: Receive, max_bytes: int | None = None) -> bytes | None:
    """The whole request body; None if the client went away (a client idle mid-body past the
    server's `body_idle_timeout_s` is hung up on, which the app reads as going away).

    With `max_bytes`, a longer body raises BodyTooLarge as soon as it passes the limit, having
    held at most that much, whatever its Content-Length claimed or its chunks add up to.
    """
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        part = message.get("body", b"")
        size += len(part)
        if max_bytes is not None and size > max_bytes:
            raise BodyTooLarge(max_bytes)
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of a repeated one)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def answer(send: Send, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes) -> None:
    """A whole answer: status, headers (any Content-Length among them replaced by the body's), body."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    raw = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs if name.lower() != "content-length"
    ]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def close_connection(scope: Scope) -> None:
    """Close the request's connection now, without an answer or without finishing the one under way."""
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
            interface="asgi3",  # said, not guessed: uvicorn takes a bound async method for ASGI2
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
        self._server = _Uvicorn(self._config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Made with proto IPPROTO_TCP, not 0: asyncio disables Nagle's algorithm only on sockets that
        # say TCP (base_events._set_nodelay), and an answer's head and body leave in two writes, so
        # with Nagle on every keep-alive answer waits ~40 ms for the client's delayed ACK.
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
            self._server.request_stop()
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


class DaemonPool(Executor):
    """An executor of up to `limit` daemon threads, started as work arrives; idle ones wait for more.

    For blocking work an app runs off the event loop (`loop.run_in_executor(pool, ...)`), such as a
    backend generating an answer for minutes. Unlike ThreadPoolExecutor's, whose threads the
    interpreter joins at exit, these let `ownllm local` exit on Ctrl-C while such work still runs,
    as ThreadingHTTPServer's daemon threads did.
    """

    def __init__(self, limit: int, name: str) -> None:
        self._limit, self._name = limit, name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one release per thread waiting for work
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is shut down")
            self._work.put(_Work(future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._limit:
                thread = threading.Thread(target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            work.run()
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    work = self._work.get_nowait()
                except queue.Empty:
                    break
                if work is not None:
                    work.future.cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


@dataclass(frozen=True)
class _Work:
    future: Future[Any]
    call: Callable[[], Any]

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.call()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, as ThreadPoolExecutor does
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
