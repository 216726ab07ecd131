"""The cheapest OpenAI-shaped server there is, to measure the bench itself.

It answers every POST with one fixed chat completion and GET /models with one model,
doing no other work, so a sweep against it shows the most the bench can drive on this
machine: the baseline of benchmarks/bench_overhead.py and benchmarks/local_soak.py, and
the target of tests/bench. `python benchmarks/trivial_server.py [PORT]` prints its URL and
serves until Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from types import TracebackType

MODEL = "trivial"


def completion(tokens: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-trivial",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok " * tokens}, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens},
        }
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's default backlog of 5 refuses a burst of 64 connects

    def handle_error(self, request: socket | tuple[bytes, socket], client_address: tuple[str, int]) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up is not news
            super().handle_error(request, client_address)


class TrivialServer:
    """`status_for(n)` picks the status of the n-th POST (0-based); `delay_s` sleeps before answering."""

    def __init__(
        self,
        port: int = 0,
        tokens: int = 16,
        delay_s: float = 0.0,
        status_for: Callable[[int], int] | None = None,
    ):
        body = completion(tokens)
        models = json.dumps(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "ownllm"}]}
        ).encode()
        self.posts = 0  # POSTs received so far
        lock = threading.Lock()
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any real API
            # Headers and body leave in two writes; without this, Nagle's algorithm meets the
            # client's delayed ACK and every answer waits ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:  # n numbers the POSTs; posts ends exact however threads interleave
                    n = server_self.posts
                    server_self.posts = n + 1
                if delay_s:
                    time.sleep(delay_s)
                status = status_for(n) if status_for else 200
                self._send(status, body if status == 200 else b'{"error": {"message": "failed on purpose"}}')

            def do_GET(self) -> None:
                self._send(200, models)

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except ConnectionError:  # the client timed out and left
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._httpd = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> TrivialServer:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, forever if it never ran
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def __enter__(self) -> TrivialServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    server = TrivialServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
