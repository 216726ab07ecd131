"""A minimal HTTP/1.1 server for an ASGI app, in a thread: what uvicorn does inside the function,
enough for a real HTTP client to read a streamed answer as it is sent (chunked encoding).

One request per connection (Connection: close), no TLS, no pipelining: a test helper only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any


class AsgiServer:
    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="asgi-server")
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AsgiServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the ASGI test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers: list[tuple[bytes, bytes]] = []
        length = 0
        while True:
            line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers.append((name.strip().lower().encode(), value.strip().encode()))
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode(),
            "headers": headers,
        }
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never: the client does not disconnect in these tests
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
                head += [f"{k.decode()}: {v.decode()}" for k, v in message.get("headers", [])]
                head += ["Transfer-Encoding: chunked", "Connection: close", "", ""]
                writer.write("\r\n".join(head).encode("latin-1"))
            else:
                data = message.get("body", b"")
                if data:
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                if not message.get("more_body"):
                    writer.write(b"0\r\n\r\n")
            await writer.drain()

        try:
            await self.app(scope, receive, send)
        finally:
            writer.close()
