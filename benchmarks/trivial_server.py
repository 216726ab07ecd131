"""The cheapest OpenAI-shaped server there is, to measure the bench itself.

It answers every POST with one fixed chat completion and GET /models with one model,
doing no other work, so a sweep against it shows the most the bench can drive on this
machine: the baseline of benchmarks/bench_overhead.py and benchmarks/local_soak.py, and
the target of tests/bench. `python benchmarks/trivial_server.py [PORT]` prints its URL and
serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repository's ownllm

from ownllm.local.server import LocalServer, Receive, Scope, Send, answer, close_connection, read_body

MODEL = "trivial"
_JSON = {"Content-Type": "application/json"}
_FAILED = b'{"error": {"message": "failed on purpose"}}'


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


class TrivialServer:
    """`status_for(n)` picks the status of the n-th POST (0-based); `delay_s` waits before answering.

    An ASGI app on LocalServer (uvicorn in a thread), the server of the rest of the local stack.
    """

    def __init__(
        self,
        port: int = 0,
        tokens: int = 16,
        delay_s: float = 0.0,
        status_for: Callable[[int], int] | None = None,
    ):
        self._body = completion(tokens)
        self._models = json.dumps(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "ownllm"}]}
        ).encode()
        self._delay_s = delay_s
        self._status_for = status_for
        self.posts = 0  # POSTs received so far (counted on the one event loop: exact without a lock)
        self._server = LocalServer(self._app, "127.0.0.1", port, name="trivial-server")

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await read_body(receive) is None:  # the client timed out and left
            close_connection(scope)
            return
        if scope["method"] != "POST":
            await answer(send, 200, _JSON, self._models)
            return
        n = self.posts
        self.posts = n + 1
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        status = self._status_for(n) if self._status_for else 200
        await answer(send, status, _JSON, self._body if status == 200 else _FAILED)

    @property
    def url(self) -> str:
        return f"{self._server.url}/v1"

    def start(self) -> TrivialServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

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
