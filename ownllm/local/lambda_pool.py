"""Lambda execution environments for a function's code, run locally the way Lambda runs them.

Each environment is a process that imports the asset's `app.py` once (its cold start,
~70 ms: the fork server has botocore and Powertools imported already) and then serves one
invocation at a time with a context whose remaining time counts down from the function's
timeout. Concurrent invocations get more environments, up to `max_instances`; beyond that
they wait for one to free up. Processes, not threads, because a Lambda handler may keep
per-request state in module globals (the forwarder's Powertools resolver and metrics do),
which is right for Lambda and wrong for two threads at once.

As in Lambda: an invocation past the function's timeout ends its environment (the next
one is a cold start); an environment idle for `idle_timeout_s` is reclaimed, one is kept
warm. Each environment sees fake AWS credentials, no AWS config files and only the
environment it is given, so nothing here can reach AWS with the caller's identity.

Scripts that start a pool (or a LocalStack) need the usual multiprocessing guard,
`if __name__ == "__main__":`, because each environment imports the main module.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

from ownllm.forwarder import load_module
from ownllm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FORWARDER_DIR = ROOT / "lambda" / "forwarder"
LAMBDA_TIMEOUT_S = float(Settings.model_fields["lambda_timeout_s"].default)
LAMBDA_MEMORY_MB: int = Settings.model_fields["lambda_memory_mb"].default
# Lambda's init phase may take 10 s; a local cold start takes well under a second.
INIT_TIMEOUT_S = 10.0
# Lambda reclaims an environment after some minutes without work; so does the pool.
IDLE_TIMEOUT_S = 300.0
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
FUNCTION_NAME = "ownllm-forwarder-local"

# What each environment sees instead of the caller's AWS setup: fake credentials, one
# region, no config files, no instance metadata. Anything that would redirect or disable
# the endpoint override is removed.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "ownlocal",
    "AWS_SECRET_ACCESS_KEY": "ownlocal",
    "AWS_SESSION_TOKEN": "ownlocal",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_UNSET_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)
# Imported once by the fork server and shared by every environment it forks.
_PRELOAD = [
    "ownllm.local.lambda_pool",
    "botocore.session",
    "botocore.client",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.logging",
]


class LocalStackError(Exception):
    """Something stops the local stack from starting, said in one line for the user."""


class LambdaContext:
    """What the handler gets as `context`: Lambda's attributes, a clock counting down to the timeout."""

    function_version = "$LATEST"
    log_group_name = f"/aws/lambda/{FUNCTION_NAME}"

    def __init__(self, aws_request_id: str, deadline: float, function_name: str, memory_limit_in_mb: int):
        self.aws_request_id = aws_request_id
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{os.getpid():032x}"
        self._deadline = deadline  # time.monotonic(): one clock for every process on the machine

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler_module(code_dir: Path, module_name: str = "forwarder_app") -> ModuleType:
    """Import `app.py` from a Lambda asset folder, with the folder on sys.path as in Lambda.

    The module gets its own name because the asset's `app.py` must not be confused with
    any other `app` (the CDK app at the repository root has that name too).
    """
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    return load_module(module_name, Path(code_dir) / "app.py")


def _environment_main(
    conn: Connection, env: dict, code_dir: str, function_name: str, memory_mb: int, log_path: str | None
) -> None:
    """One execution environment: init once, then invocations one at a time until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the gateway handles it
    started = time.perf_counter()
    try:
        out = os.open(log_path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for stream in (sys.stdout, sys.stderr):  # Lambda's Python runtime writes each line at once
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        for key in _UNSET_ENV:
            os.environ.pop(key, None)
        os.environ.update(env)
        handler = load_handler_module(Path(code_dir)).handler
    except BaseException as exc:  # noqa: BLE001 - whatever init raises is the answer
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the gateway is gone
            return
        if message is None:
            return
        event, aws_request_id, deadline = message
        try:
            result = ("ok", handler(event, LambdaContext(aws_request_id, deadline, function_name, memory_mb)))
        except Exception as exc:  # noqa: BLE001 - Lambda reports an unhandled error as errorType/errorMessage
            result = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:  # noqa: BLE001 - an unpicklable return value is not a proxy response either
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class _Environment:
    process: Any
    conn: Any
    init_ms: float = 0.0
    invocations: int = 0
    idle_since: float = 0.0


@dataclass(frozen=True)
class Invocation:
    """How one invocation ended: kind is ok, error, lambda_timeout, or gateway_timeout."""

    kind: str
    result: Any = None
    detail: str = ""
    cold_start: bool = False
    init_ms: float | None = None  # the environment's init phase, on a cold start


@dataclass(eq=False)
class LambdaPool:
    """Execution environments for one function, started on demand, one request each at a time."""

    env: dict[str, str]
    code_dir: Path = FORWARDER_DIR
    timeout_s: float = LAMBDA_TIMEOUT_S
    memory_mb: int = LAMBDA_MEMORY_MB
    max_instances: int = 64
    log_path: str | None = None
    function_name: str = FUNCTION_NAME
    # Like Lambda, an environment left idle this long is reclaimed (one is always kept warm).
    idle_timeout_s: float = IDLE_TIMEOUT_S
    cold_starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        self._mp: multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            self._mp = multiprocessing.get_context("forkserver")
            self._mp.set_forkserver_preload(_PRELOAD)
        else:
            self._mp = multiprocessing.get_context("spawn")
        self._idle: list[_Environment] = []
        self._envs: dict[int, _Environment] = {}
        self._starting = 0
        self._cond = threading.Condition()
        self._closed = False
        self._reaper_stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, warm: int = 1) -> LambdaPool:
        """Start `warm` environments now, so a broken function fails here, not on the first request."""
        if not (Path(self.code_dir) / "app.py").is_file():
            raise LocalStackError(f"the function's code is not at {self.code_dir}/app.py; run from an ownllm checkout")
        for _ in range(min(warm, self.max_instances)):
            with self._cond:
                self._starting += 1
            try:
                environment = self._spawn(time.monotonic() + INIT_TIMEOUT_S)
            except _InitFailed as exc:
                raise LocalStackError(f"the function failed to start ({self.code_dir}/app.py): {exc}") from None
            self._release(environment)
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_idle, name=f"{self.function_name}-reaper", daemon=True)
            self._reaper.start()
        return self

    def _reap_idle(self) -> None:
        interval = min(30.0, max(0.05, self.idle_timeout_s / 4))
        while not self._reaper_stop.wait(interval):  # until close()
            self.reap()

    def reap(self) -> int:
        """Stop environments idle for idle_timeout_s or more, keeping one; how many were stopped."""
        now = time.monotonic()
        with self._cond:
            stale = [e for e in self._idle if now - e.idle_since >= self.idle_timeout_s]
            if stale and len(stale) == len(self._envs):
                stale.remove(max(stale, key=lambda e: e.idle_since))  # the most recently used stays warm
            for environment in stale:
                self._idle.remove(environment)
                self._envs.pop(environment.process.pid, None)
        for environment in stale:
            with contextlib.suppress(OSError):
                environment.conn.send(None)
            environment.process.join(1.0)
            self._kill(environment)
        return len(stale)

    def close(self) -> None:
        self._reaper_stop.set()
        if self._reaper is not None:
            self._reaper.join(5)
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            everything = list(self._envs.values())
            self._cond.notify_all()
        for environment in idle:
            with contextlib.suppress(OSError):
                environment.conn.send(None)
        deadline = time.monotonic() + 2.0
        for environment in everything:
            environment.process.join(max(0.0, deadline - time.monotonic()))
            self._kill(environment)

    def __enter__(self) -> LambdaPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        with self._cond:
            return [e.process.pid for e in self._envs.values()]

    @property
    def instances(self) -> int:
        with self._cond:
            return len(self._envs)

    # -- one invocation ----------------------------------------------------------------------------

    def invoke(self, event: dict, deadline: float) -> Invocation:
        """Run the handler on a free environment; give up at `deadline` (time.monotonic())."""
        try:
            environment, cold = self._acquire(deadline)
        except _InitFailed as exc:
            if time.monotonic() >= deadline:
                return Invocation("gateway_timeout", detail=f"still in init: {exc}", cold_start=True)
            return Invocation("error", detail=f"init failed: {exc}", cold_start=True)
        if environment is None:
            return Invocation("gateway_timeout", detail="no free execution environment in time")
        init_ms = environment.init_ms if cold else None
        lambda_deadline = time.monotonic() + self.timeout_s
        try:
            environment.conn.send((event, str(uuid.uuid4()), lambda_deadline))
            wait = min(deadline, lambda_deadline + 0.25) - time.monotonic()
            answered = environment.conn.poll(max(0.0, wait))
            if answered:
                kind, value = environment.conn.recv()
        except (EOFError, OSError) as exc:
            self._discard(environment)
            return Invocation("error", detail=f"the environment died: {type(exc).__name__}", cold_start=cold)
        if not answered:
            # Lambda resets an environment whose invocation timed out; the gateway does the same.
            self._discard(environment)
            if time.monotonic() >= deadline:
                return Invocation("gateway_timeout", detail="no answer within the integration timeout", cold_start=cold)
            return Invocation(
                "lambda_timeout", detail=f"Task timed out after {self.timeout_s:.2f} seconds", cold_start=cold
            )
        environment.invocations += 1
        self._release(environment)
        if kind == "ok":
            return Invocation("ok", result=value, cold_start=cold, init_ms=init_ms)
        return Invocation("error", detail=str(value), cold_start=cold, init_ms=init_ms)

    def _acquire(self, deadline: float) -> tuple[_Environment | None, bool]:
        with self._cond:
            while True:
                if self._closed:
                    return None, False
                if self._idle:
                    return self._idle.pop(), False
                if len(self._envs) + self._starting < self.max_instances:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, False
                self._cond.wait(left)
        return self._spawn(min(deadline, time.monotonic() + INIT_TIMEOUT_S)), True

    def _spawn(self, deadline: float) -> _Environment:
        """A new environment through its init phase; the caller has reserved a slot in _starting."""
        try:
            parent, child = self._mp.Pipe()
            process = self._mp.Process(
                target=_environment_main,
                args=(child, self.env, str(self.code_dir), self.function_name, self.memory_mb, self.log_path),
                name=f"{self.function_name}-env",
                daemon=True,
            )
            process.start()
            child.close()
            environment = _Environment(process, parent)
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                self._kill(environment)
                raise _InitFailed("init did not finish in time")
            try:
                kind, value = parent.recv()
            except (EOFError, OSError):
                self._kill(environment)
                raise _InitFailed(f"the environment exited during init (exit code {process.exitcode})") from None
            if kind != "ready":
                self._kill(environment)
                raise _InitFailed(str(value))
            environment.init_ms = float(value)
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
        pid = process.pid
        if pid is None:  # start() returned, so the process has a pid
            raise _InitFailed("the environment has no process id")
        with self._cond:
            self._envs[pid] = environment
            self.cold_starts += 1
        return environment

    def _release(self, environment: _Environment) -> None:
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                environment.idle_since = time.monotonic()
                self._idle.append(environment)
                self._cond.notify()
        if closed:
            self._discard(environment)

    def _discard(self, environment: _Environment) -> None:
        self._kill(environment)
        with self._cond:
            self._envs.pop(environment.process.pid, None)
            self._cond.notify()

    @staticmethod
    def _kill(environment: _Environment) -> None:
        if environment.process.is_alive():
            environment.process.kill()
        environment.process.join(2.0)
        environment.conn.close()


class _InitFailed(Exception):
    pass
