"""Drive concurrent chat-completion requests at one base URL and record every answer.

One thread per concurrent client, each with its own persistent `http.client` connection
(no client library, no connection set-up per request): about 0.1-0.2 ms of CPU per request
including the kernel's share (benchmarks/bench_overhead.py), so one core drives thousands of
requests/s and the figures describe the server, not the bench. Every loop is bounded: a
level stops after a request count or a duration, each request has a timeout, and a stop
event (Ctrl-C) ends it early.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import math
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from ownllm.urls import is_http_url, is_loopback, proxy_for

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
# `ownllm local` marks every answer with where it came from ("stand-in" or "upstream"), so a
# sweep of the stand-in's canned speed is never taken for a model's (ownllm.local.stack).
BACKEND_HEADER = "x-ownllm-local-backend"
# After a connection error a worker pauses this long, so a server that is down costs the
# bench (and the machine) nothing while the level runs out its count or duration.
_CONNECTION_ERROR_PAUSE_S = 0.05


class BenchError(Exception):
    """A problem with the target or the options, said in one line for the user."""


class Sample(NamedTuple):
    """One request: HTTP status (or 'timeout' / 'connection' / 'bad_response'), seconds, output tokens."""

    status: int | str
    latency_s: float
    output_tokens: int
    started_s: float


@dataclass(frozen=True)
class Target:
    """What to send where. `base_url` is what an OpenAI client takes as base_url (ends in /v1)."""

    base_url: str
    api_key: str | None = None
    model: str = ""
    max_tokens: int = 128
    prompt: str = DEFAULT_PROMPT
    timeout_s: float = 60.0

    # The user's proxy for base_url (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, less NO_PROXY), read when the
    # target is made; never one for a loopback URL (ownllm.urls.proxy_for).
    proxy: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not is_http_url(self.base_url):
            raise BenchError(f"URL {self.base_url!r} is not an http:// or https:// URL")
        if self.max_tokens < 1:
            raise BenchError(f"max tokens {self.max_tokens} must be at least 1")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise BenchError(f"timeout {self.timeout_s:g} must be a finite number greater than 0")
        proxy = proxy_for(self.base_url)
        if proxy is not None and (urlsplit(proxy).scheme != "http" or not is_http_url(proxy)):
            raise BenchError(
                f"proxy {proxy!r} (from the *_PROXY variables) for {self.base_url} is not an http:// proxy URL, "
                "the only kind the bench can use; set NO_PROXY to reach the API directly"
            )
        object.__setattr__(self, "proxy", proxy)  # frozen: set once, here

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.base_url)

    def path(self, endpoint: str) -> str:
        """The request target: the path, or the whole URL when a proxy forwards plain HTTP."""
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/") + endpoint
        return f"http://{parts.netloc}{path}" if self.proxy and parts.scheme == "http" else path

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "ownllm-bench"}
        if self.api_key:
            # The deployed API takes either; a plain OpenAI-compatible server takes the Bearer one.
            headers["x-api-key"] = self.api_key
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.proxy and urlsplit(self.base_url).scheme == "http" and _proxy_authorization(self.proxy):
            headers["Proxy-Authorization"] = _proxy_authorization(self.proxy)
        return headers

    def chat_body(self) -> bytes:
        return json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": self.prompt}],
                "max_tokens": self.max_tokens,
                "stream": False,
            }
        ).encode()

    def connect(self) -> http.client.HTTPConnection:
        """A connection to the API, or to the proxy: HTTPS tunnels through it (CONNECT), HTTP is forwarded."""
        parts = urlsplit(self.base_url)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        host, connect_port = self.host, port
        if self.proxy:
            proxy = urlsplit(self.proxy)
            host, connect_port = proxy.hostname or "", proxy.port or 80
        if not https:
            return http.client.HTTPConnection(host, connect_port, timeout=self.timeout_s)
        conn = http.client.HTTPSConnection(
            host, connect_port, timeout=self.timeout_s, context=ssl.create_default_context()
        )
        if self.proxy:
            auth = _proxy_authorization(self.proxy)
            conn.set_tunnel(self.host, port, headers={"Proxy-Authorization": auth} if auth else None)
        return conn


def _proxy_authorization(proxy: str) -> str:
    """Basic credentials for a proxy URL with user:password@ in it; empty without."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return ""
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@dataclass
class LevelRun:
    """Everything one concurrency level produced, before any summarising."""

    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    backends: set[str] = field(default_factory=set)  # BACKEND_HEADER values seen


def output_tokens(body: bytes) -> int | None:
    """`usage.completion_tokens` of an OpenAI response; None when the body is not one."""
    try:
        usage = json.loads(body).get("usage") or {}
        return int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return None


def _worker(
    target: Target,
    tickets: Callable[[], bool],
    stop: threading.Event,
    run: LevelRun,
) -> None:
    path, body, headers = target.path("/chat/completions"), target.chat_body(), target.headers()
    conn: http.client.HTTPConnection | None = None
    reused = False  # whether conn has already carried a request (keep-alive)
    clock = time.perf_counter
    try:
        while not stop.is_set() and tickets():
            tokens = 0
            for attempt in (1, 2):
                if conn is None:
                    conn, reused = target.connect(), False
                current = conn
                started = clock()
                try:
                    current.request("POST", path, body, headers)
                    response = current.getresponse()
                    data = response.read()
                    status: int | str = response.status
                    backend = response.getheader(BACKEND_HEADER)
                    if backend and backend not in run.backends:
                        run.backends.add(backend)
                    reused = True
                    if response.will_close:
                        current.close()
                        conn = None
                    break
                except TimeoutError:
                    status = "timeout"
                except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                    # On a reused keep-alive connection this is almost always the server having
                    # closed it while idle, before the request arrived: sent again, once, fresh.
                    status = "connection"
                    if reused and attempt == 1:
                        current.close()
                        conn = None
                        continue
                except (OSError, http.client.HTTPException):
                    status = "connection"
                current.close()
                conn = None
                break
            latency = clock() - started
            if status == "connection":
                stop.wait(_CONNECTION_ERROR_PAUSE_S)
            elif isinstance(status, int) and 200 <= status < 300:
                parsed = output_tokens(data)
                if parsed is None:
                    status = "bad_response"
                else:
                    tokens = parsed
            run.samples.append(Sample(status, latency, tokens, started))
    finally:
        if conn is not None:
            conn.close()


def run_level(
    target: Target,
    concurrency: int,
    *,
    requests: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    poll_s: float = 0.1,
) -> LevelRun:
    """Run one level: `concurrency` clients until `requests` are sent or `duration_s` has passed.

    In duration mode no request starts after the deadline; those in flight finish (each is
    bounded by the target's timeout). `progress` is called from this thread with the number
    of finished requests, so the workers never pay for the display.
    """
    if concurrency < 1:
        raise BenchError(f"concurrency {concurrency} must be at least 1")
    if (requests is None) == (duration_s is None):
        raise BenchError("give either a request count or a duration per level")
    if requests is not None and requests < 1:
        raise BenchError(f"request count {requests} must be at least 1")
    if duration_s is not None and duration_s <= 0:
        raise BenchError(f"duration {duration_s} must be greater than 0")
    stop = stop or threading.Event()
    run = LevelRun(concurrency)
    started = time.perf_counter()
    if requests is not None:
        counter = itertools.count()  # next() on it is atomic under the GIL
        limit = requests

        def tickets() -> bool:
            return next(counter) < limit

    else:
        assert duration_s is not None  # checked above: exactly one of the two is given
        deadline = started + duration_s

        def tickets() -> bool:
            return time.perf_counter() < deadline

    threads = [
        threading.Thread(target=_worker, args=(target, tickets, stop, run), name=f"bench-{i}", daemon=True)
        for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    try:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(poll_s)
            if progress:
                progress(len(run.samples))
    except KeyboardInterrupt:
        run.interrupted = True
        stop.set()
        grace = time.perf_counter() + min(target.timeout_s, 2.0)
        for t in threads:
            t.join(max(0.0, grace - time.perf_counter()))
    run.elapsed_s = time.perf_counter() - started
    if stop.is_set():
        run.interrupted = True
    if progress:
        progress(len(run.samples))
    return run


def discover_model(target: Target) -> str:
    """The first model id from GET {base_url}/models, as an OpenAI client would list it."""
    conn = target.connect()
    try:
        conn.request("GET", target.path("/models"), headers=target.headers())
        response = conn.getresponse()
        data = response.read()
    except OSError as exc:
        raise BenchError(f"cannot reach {target.base_url}: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(
            f"GET {target.base_url.rstrip('/')}/models answered {response.status}: {data[:200].decode(errors='replace')}"
            + (" (check the API key)" if response.status in (401, 403) else "")
        )
    try:
        return json.loads(data)["data"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BenchError(f"GET {target.base_url.rstrip('/')}/models did not list any model; pass --model") from None
