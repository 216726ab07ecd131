"""A scriptable OpenAI-shaped server for the batch tests: real HTTP on 127.0.0.1, port 0.

Each request's body carries its custom_id in `user` (an OpenAI chat parameter), so a test can
script the replies one request gets, in order: `server.script("r1", (429, {"Retry-After": "0"}), 200)`.
Unscripted requests get a chat completion with usage {prompt 10, completion 5}.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ownllm.local.server import LocalServer, Receive, Scope, Send, answer, close_connection, read_body, request_headers

COMPLETION_TOKENS = 5
PROMPT_TOKENS = 10

Reply = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], object]


def completion(custom_id: str) -> dict:
    return {
        "id": f"chatcmpl-{custom_id}",
        "object": "chat.completion",
        "created": 0,
        "model": "test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def error_body(status: int, code: str = "test_error") -> dict:
    return {"error": {"message": f"status {status} on purpose", "type": "test", "param": None, "code": code}}


@dataclass
class Seen:
    custom_id: str
    path: str
    headers: dict[str, str]


@dataclass
class ScriptedServer:
    url: str = ""
    delay_s: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    _script: dict[str, list[Reply]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, custom_id: str, *replies: Reply) -> None:
        self._script[custom_id] = list(replies)

    def sent(self, custom_id: str) -> int:
        return sum(1 for s in self.seen if s.custom_id == custom_id)

    def next_reply(self, custom_id: str) -> tuple[int, dict[str, str], object]:
        with self._lock:
            replies = self._script.get(custom_id)
            reply: Reply = replies.pop(0) if replies else 200
        if isinstance(reply, int):
            reply = (reply, {})
        if len(reply) == 2:
            status, headers = reply
            body: object = completion(custom_id) if status == 200 else error_body(status)
        else:
            status, headers, body = reply
        return status, headers, body


def start_server(server: ScriptedServer) -> LocalServer:
    """`server` answering on 127.0.0.1 (LocalServer: uvicorn in a thread); its url is set, ending in /v1."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:  # a client killed mid-request is what the crash tests do
            close_connection(scope)
            return
        custom_id = json.loads(raw).get("user", "")
        with server._lock:
            server.seen.append(Seen(custom_id, scope["path"], request_headers(scope)))
        if server.delay_s:
            await asyncio.sleep(server.delay_s)
        status, headers, body = server.next_reply(custom_id)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", "x-request-id": f"req-{custom_id}", **headers}
        await answer(send, status, sent, payload)

    running = LocalServer(app, name="scripted-api").start()
    server.url = f"{running.url}/v1"
    return running


def request_line(custom_id: str, url: str = "/v1/chat/completions", **overrides: object) -> dict:
    line: dict = {
        "custom_id": custom_id,
        "method": "POST",
        "url": url,
        "body": {"model": "test", "user": custom_id, "messages": [{"role": "user", "content": "hi"}]},
    }
    line.update(overrides)
    return line


def write_input(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps(request_line(i)) + "\n" for i in ids))
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
