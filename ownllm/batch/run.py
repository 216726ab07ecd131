"""Send a batch's requests with bounded concurrency, retries and an optional rate limit.

One asyncio event loop and one httpx2 client: the workers share a connection pool, and every
result reaches the sink between two awaits, so a result line is never half-handled when the
run is cancelled (Ctrl-C, SIGTERM). The sink (the CLI) writes it; this module does no file I/O.

A request in flight when the process dies has no result line, so the next run sends it again:
at-least-once to the server, exactly-once in the result files.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ownllm.batch.defaults import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_STARTUP_WAIT_S,
    DEFAULT_TIMEOUT_S,
    MAX_RETRY_AFTER_S,
)
from ownllm.batch.jsonl import BatchRequest
from ownllm.urls import honours_proxy_env

if TYPE_CHECKING:
    import httpx2

RETRY_STATUSES = frozenset({429, 503, 504})
# The forwarder's answers while the model cannot serve yet, both 503 with Retry-After
# (lambda/forwarder/errors.py map_upstream; lambda/README.md error table): model_starting, an
# inference component scaled to zero and now waking (Retry-After 60); model_not_ready, an
# endpoint starting or scaling (SageMaker's ModelNotReadyException, Retry-After 30).
STARTING_STATUS = 503
STARTING_CODES = frozenset({"model_starting", "model_not_ready"})
# API Gateway names its request id x-amzn-RequestId; OpenAI-compatible servers use x-request-id.
REQUEST_ID_HEADERS = ("x-request-id", "x-amzn-requestid", "apigw-requestid")
TICK_S = 0.25
# This many requests in a row ending with no answer at all means the server is down or the URL
# wrong, not that those requests are bad: stop rather than fill the errors file with the rest.
UNREACHABLE_STOP_AFTER = 10


class Unreachable(Exception):
    """The server gave no answer to UNREACHABLE_STOP_AFTER requests in a row."""


def join_url(base: str, path: str) -> str:
    """The URL for a batch line's url under --url, which is the base an OpenAI client takes.

    A base ending in /v1 (http://127.0.0.1:8765/v1, https://ID.execute-api.../prod/v1) already
    holds the line's /v1 prefix; any other base (https://host/prod) gets the whole path.
    """
    base = base.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        return base + path[len("/v1") :]
    return base + path


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - now_epoch
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_s(retry: int, retry_after: float | None, rng: random.Random, base_s: float = BACKOFF_BASE_S) -> float:
    """Full jitter (uniform in [0, min(cap, base * 2**retry)]), never sooner than Retry-After."""
    jittered = rng.uniform(0.0, min(BACKOFF_CAP_S, base_s * 2.0**retry))
    return jittered if retry_after is None else max(retry_after, jittered)


class Verdict(Enum):
    DONE = "done"  # a 2xx with a JSON body: the output file
    FAILED = "failed"  # final: the errors file
    RETRY = "retry"  # 429/503/504 or no answer: again, within the attempt budget
    STARTING = "starting"  # the endpoint is starting: wait, outside the attempt budget


def _error_code(body: object) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def classify(status: int, body: object) -> Verdict:
    if 200 <= status < 300:
        return Verdict.DONE if isinstance(body, dict) else Verdict.FAILED
    if status == STARTING_STATUS and _error_code(body) in STARTING_CODES:
        return Verdict.STARTING
    if status in RETRY_STATUSES:
        return Verdict.RETRY
    return Verdict.FAILED


@dataclass(frozen=True)
class Result:
    """One request's final outcome, shaped as an OpenAI batch output/error line by `line()`."""

    request: BatchRequest
    ok: bool
    status: int | None  # None: no HTTP answer at all
    request_id: str | None
    body: object
    error: dict[str, str] | None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def line(self) -> dict[str, object]:
        # The per-line object of OpenAI's batch output and error files: {id, custom_id,
        # response: {status_code, request_id, body} | null, error: {code, message} | null}
        # (OpenAPI BatchRequestOutput, https://platform.openai.com/docs/api-reference/batch/request-output).
        # A request the API refused sits in the error file with its 4xx in `response` and
        # `error: null`; `error` is for failures with no HTTP answer (openai/openai-openapi#302).
        response = (
            None
            if self.status is None
            else {"status_code": self.status, "request_id": self.request_id, "body": self.body}
        )
        return {
            "id": f"batch_req_{uuid.uuid4().hex}",
            "custom_id": self.request.custom_id,
            "response": response,
            "error": self.error,
        }


def _tokens(body: object) -> tuple[int, int]:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)


@dataclass
class Stats:
    """Counters the progress display reads; only the event loop thread writes them."""

    ok: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    starting_since: float | None = None  # monotonic time the endpoint first said it is starting
    unanswered_in_a_row: int = 0  # final results with no HTTP answer since the last answered one
    failed_by: dict[str, int] = field(default_factory=dict)  # "HTTP 400", "connection_error" -> count

    def add(self, result: Result) -> None:
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1
            key = f"HTTP {result.status}" if result.status is not None else (result.error or {}).get("code", "error")
            self.failed_by[key] = self.failed_by.get(key, 0) + 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.unanswered_in_a_row = self.unanswered_in_a_row + 1 if result.status is None else 0


class RateLimiter:
    """Spaces request starts at least 1/rps apart (no bursts): API Gateway's usage plan is a token
    bucket, so staying under its rate never draws on its burst."""

    def __init__(self, rps: float):
        self._interval = 1.0 / rps
        self._next_at = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        at = max(now, self._next_at)
        self._next_at = at + self._interval
        if at > now:
            await asyncio.sleep(at - now)


@dataclass(frozen=True)
class Options:
    base_url: str
    api_key: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_rps: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    startup_wait_s: float = DEFAULT_STARTUP_WAIT_S
    backoff_base_s: float = BACKOFF_BASE_S


class Sender:
    """Sends requests through one pooled client; `run` returns when all are handled or cancelled."""

    def __init__(self, options: Options, stats: Stats):
        self.options = options
        self.stats = stats
        self._rng = random.Random()
        self._limiter = RateLimiter(options.max_rps) if options.max_rps else None
        self._headers = {"Content-Type": "application/json"}
        if options.api_key:
            # The deployed API's authorizer takes either (stacks/api.py); other servers take Bearer.
            self._headers["x-api-key"] = options.api_key
            self._headers["Authorization"] = f"Bearer {options.api_key}"

    async def run(
        self,
        requests: Iterator[BatchRequest],
        sink: Callable[[Result], None],
        tick: Callable[[], None] | None = None,
    ) -> None:
        import httpx2

        n = self.options.concurrency
        limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
        timeout = httpx2.Timeout(self.options.timeout_s, connect=min(10.0, self.options.timeout_s))
        # A loopback server (ownllm local) is never reached through HTTP(S)_PROXY; a remote API is, if set.
        trust_env = honours_proxy_env(self.options.base_url)
        async with httpx2.AsyncClient(
            limits=limits, timeout=timeout, headers=self._headers, trust_env=trust_env
        ) as client:
            stopping: list[Result] = []

            async def worker() -> None:
                for request in requests:  # one shared iterator: next() never interleaves with an await
                    result = await self._send(client, request)
                    if stopping:  # another worker stopped the run in this same loop turn: no result
                        return
                    self.stats.add(result)
                    sink(result)
                    if self.stats.unanswered_in_a_row >= UNREACHABLE_STOP_AFTER:
                        stopping.append(result)
                        message = (result.error or {}).get("message", "")
                        raise Unreachable(
                            f"the last {UNREACHABLE_STOP_AFTER} requests got no answer from {self.options.base_url} "
                            f"({message}); is the server up and the URL right?"
                        )

            ticker = asyncio.create_task(self._tick(tick)) if tick else None
            try:
                async with asyncio.TaskGroup() as group:  # one worker failing (a full disk) stops the others
                    for _ in range(n):
                        group.create_task(worker())
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
            finally:
                if ticker:
                    ticker.cancel()

    @staticmethod
    async def _tick(tick: Callable[[], None]) -> None:
        while True:
            tick()
            await asyncio.sleep(TICK_S)

    async def _send(self, client: httpx2.AsyncClient, request: BatchRequest) -> Result:
        import httpx2

        url = join_url(self.options.base_url, request.url)
        payload = request.payload()
        counted = 0  # tries that use the attempt budget: not those answered "starting"
        while True:
            if self._limiter:
                await self._limiter.wait()
            retry_after: float | None = None
            try:
                response = await client.post(url, content=payload)
            except httpx2.TransportError as exc:
                verdict = Verdict.RETRY
                result = Result(request, False, None, None, None, {"code": "connection_error", "message": _brief(exc)})
            else:
                result, verdict = _judge(request, response)
                retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            if verdict is Verdict.DONE:
                self.stats.starting_since = None
                return result
            if verdict is Verdict.FAILED:
                return result
            if verdict is Verdict.STARTING and self._may_wait_for_start():
                delay = retry_after if retry_after is not None else BACKOFF_CAP_S
            else:
                counted += 1
                if counted >= self.options.max_attempts:
                    return result
                delay = backoff_s(counted - 1, retry_after, self._rng, self.options.backoff_base_s)
            self.stats.retries += 1
            await asyncio.sleep(delay)

    def _may_wait_for_start(self) -> bool:
        now = time.monotonic()
        if self.stats.starting_since is None:
            self.stats.starting_since = now
        return now - self.stats.starting_since < self.options.startup_wait_s


def _brief(exc: Exception) -> str:
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:300]


def _judge(request: BatchRequest, response: httpx2.Response) -> tuple[Result, Verdict]:
    status = response.status_code
    request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
    try:
        body: object = response.json()
    except ValueError:
        shown = response.text[:300]
        not_json = {"code": "invalid_response", "message": f"HTTP {status} with a body that is not JSON: {shown!r}"}
        verdict = Verdict.RETRY if status in RETRY_STATUSES else Verdict.FAILED
        return Result(request, False, status, request_id, None, not_json), verdict
    verdict = classify(status, body)
    prompt, completion = _tokens(body) if verdict is Verdict.DONE else (0, 0)
    ok = verdict is Verdict.DONE
    error: dict[str, str] | None = None
    if 200 <= status < 300 and not ok:
        error = {"code": "invalid_response", "message": f"HTTP {status} with a JSON body that is not an object"}
    return Result(request, ok, status, request_id, body, error, prompt, completion), verdict
