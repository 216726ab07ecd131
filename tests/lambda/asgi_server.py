"""The function's ASGI app served over real HTTP in a thread, by uvicorn as inside the function:
the local stack's one server (ownllm.local.server.LocalServer), so a real HTTP client reads a
streamed answer as it is sent."""

from __future__ import annotations

from ownllm.local.server import LocalServer


class AsgiServer(LocalServer):
    """`with AsgiServer(app) as server:` serves `app` at `server.url` (127.0.0.1, a free port)."""
