"""Lambda execution environments for the function's code, run locally the way Lambda runs them
behind Lambda Web Adapter.

Each environment is a process that imports the asset's `main.py` once (its cold start: the fork
server has botocore, Powertools and uvicorn imported already) and then serves `main:app` with
uvicorn on its own loopback port, as lambda/forwarder/run.sh does on the adapter's port. The
gateway relays one request at a time to it. Concurrent requests get more environments, up to
`max_instances`; beyond that they wait for one to free up. Processes, not threads, because the
function keeps per-request state in module globals (the forwarder's Powertools resolver and
metrics do), which is right for Lambda and wrong for two requests at once.

As in Lambda: an invocation past the function's timeout ends its environment (the gateway
discards it; the next one is a cold start); an environment idle for `idle_timeout_s` is
reclaimed, one is kept warm. Each environment sees fake AWS credentials, no AWS config files, no
proxy settings and only the environment it is given, so nothing here can reach AWS with the
caller's identity, and its loopback calls never go through HTTP(S)_PROXY.

Scripts that start a pool (or a LocalStack) need the usual multiprocessing guard,
`if __name__ == "__main__":`, because the fork server imports the main module.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import importlib
import io
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Protocol

import uvicorn

from ownllm.forwarder import ASGI_KEEP_ALIVE_S

ROOT = Path(__file__).resolve().parents[2]
FORWARDER_DIR = ROOT / "lambda" / "forwarder"
# Lambda's init phase may take 10 s; a local cold start takes well under a second.
INIT_TIMEOUT_S = 10.0
# Lambda reclaims an environment after some minutes without work; so does the pool.
IDLE_TIMEOUT_S = 300.0
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
FUNCTION_NAME = "ownllm-forwarder-local"
# What each environment serves: lambda/forwarder/run.sh runs `uvicorn main:app`.
APP_MODULE, APP_ATTRIBUTE = "main", "app"
# Cold starts that run at once; more wait their turn (each is a fork and an import).
PARALLEL_COLD_STARTS = 8
# How long an environment's uvicorn keeps the gateway's idle connection: run.sh's (a day, longer
# than any environment stays idle; one is kept warm forever, though: the gateway then reconnects).
KEEP_ALIVE_S = ASGI_KEEP_ALIVE_S
STOP_TIMEOUT_S = 2.0

# What each environment sees instead of the caller's AWS setup: fake credentials, one
# region, no config files, no instance metadata.
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
# All an environment keeps of the gateway's own environment (locale and a temporary folder):
# no AWS_PROFILE or AWS_ENDPOINT_URL, no HTTP_PROXY/HTTPS_PROXY/ALL_PROXY.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
# Imported once by the fork server and shared by every environment it forks. Each environment
# also runs the parent's main module again, as multiprocessing does for every child (CPython
# Lib/multiprocessing/spawn.py, prepare; the fork server's own "__main__" preload never applies in
# 3.11: it asks get_preparation_data for a `main_path` key that is called `init_main_from_path`);
# a script or benchmark that starts the stack imports ownllm.local.stack (pydantic, the settings,
# the runtime), which would otherwise be ~120 ms of every cold start.
_PRELOAD = [
    "ownllm.local.stack",
    "ownllm.local.lambda_pool",
    "botocore.session",
    "botocore.client",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.logging",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
]


class LocalStackError(Exception):
    """Something stops the local stack from starting, said in one line for the user."""


def _environment_main(conn: Connection, env: dict[str, str], code_dir: str, log_path: str | None) -> None:
    """One execution environment: import main.py, then serve main:app until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the gateway handles it
    started = time.perf_counter()
    try:
        out = os.open(log_path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for stream in (sys.stdout, sys.stderr):  # Lambda's Python runtime writes each line at once
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=True)
        kept = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
        os.environ.clear()
        os.environ.update({**kept, **env})
        os.chdir(code_dir)  # run.sh's working directory: the asset
        sys.path.insert(0, code_dir)
        app = getattr(importlib.import_module(APP_MODULE), APP_ATTRIBUTE)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see server.py: no Nagle
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
    except BaseException as exc:  # noqa: BLE001 - whatever init raises is the answer
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    # run.sh's uvicorn, but with h11 and asyncio named (the asset bundles no httptools or uvloop),
    # and a keep-alive longer than any idle gap, so the gateway's connection is not closed under it.
    config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        log_level="warning",
        access_log=False,
        date_header=False,  # set once at start and never updated without the tick; the gateway sets none either
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = _EnvironmentServer(config, conn)
    conn.send(("ready", (listener.getsockname()[1], (time.perf_counter() - started) * 1000)))
    server.run(sockets=[listener])


class _EnvironmentServer(uvicorn.Server):
    """uvicorn.Server as an environment runs it: stopped over its control pipe (a message, or EOF
    when the gateway is gone), not by signals (Ctrl-C at the terminal is the gateway's to handle),
    and without uvicorn's 0.1 s housekeeping tick, which would cost every idle environment CPU."""

    def __init__(self, config: uvicorn.Config, control: Connection) -> None:
        super().__init__(config)
        self.control = control

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def watch_the_gateway() -> None:
            with contextlib.suppress(EOFError, OSError):
                self.control.recv()
            with contextlib.suppress(RuntimeError):  # the loop is gone already
                loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_the_gateway, name="gateway-watch", daemon=True).start()
        await stop.wait()


class KeptConnection(Protocol):
    """What the gateway keeps open to an environment between requests."""

    def close_soon(self) -> None:
        """Close it from any thread (it belongs to the gateway's event loop)."""


@dataclass(eq=False)
class Environment:
    """One execution environment: its process, its control pipe, the port main:app listens on, and
    the gateway's keep-alive connection to it."""

    process: BaseProcess
    control: Connection
    port: int = 0
    init_ms: float = 0.0
    invocations: int = 0
    idle_since: float = 0.0
    connection: KeptConnection | None = None

    def drop_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close_soon()


@dataclass(eq=False)
class LambdaPool:
    """Execution environments for one function, started on demand, one request each at a time.

    `acquire` and `release`/`discard` run on the gateway's event loop; `start`, `reap` and
    `close` from any thread."""

    env: dict[str, str]
    timeout_s: float  # the function's timeout (Settings.function_timeout_s as deployed)
    code_dir: Path = FORWARDER_DIR
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
        self._idle: list[Environment] = []
        self._envs: dict[int, Environment] = {}
        self._starting = 0
        self._waiters: collections.deque[asyncio.Future[Environment | None]] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        self._spawner = concurrent.futures.ThreadPoolExecutor(
            min(self.max_instances, PARALLEL_COLD_STARTS), thread_name_prefix=f"{self.function_name}-init"
        )
        self._reaper_stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, warm: int = 1) -> LambdaPool:
        """Start `warm` environments now, so a broken function fails here, not on the first request."""
        if not (Path(self.code_dir) / f"{APP_MODULE}.py").is_file():
            raise LocalStackError(
                f"the function's code is not at {self.code_dir}/{APP_MODULE}.py; run from an ownllm checkout"
            )
        for _ in range(min(warm, self.max_instances)):
            with self._lock:
                self._starting += 1
            try:
                environment = self._spawn(time.monotonic() + INIT_TIMEOUT_S)
            except InitFailed as exc:
                raise LocalStackError(
                    f"the function failed to start ({self.code_dir}/{APP_MODULE}.py): {exc}"
                ) from None
            with self._lock:
                environment.idle_since = time.monotonic()
                self._idle.append(environment)
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
        with self._lock:
            stale = [e for e in self._idle if now - e.idle_since >= self.idle_timeout_s]
            if stale and len(stale) == len(self._envs):
                stale.remove(max(stale, key=lambda e: e.idle_since))  # the most recently used stays warm
            for environment in stale:
                self._idle.remove(environment)
                self._envs.pop(environment.process.pid or 0, None)
        for environment in stale:
            self._stop(environment)
        return len(stale)

    def stop_idle(self) -> int:
        """Stop every idle environment now, the warm one too (the next request is a cold start);
        how many were stopped."""
        with self._lock:
            idle, self._idle = self._idle, []
            for environment in idle:
                self._envs.pop(environment.process.pid or 0, None)
        for environment in idle:
            self._stop(environment)
        return len(idle)

    def close(self) -> None:
        self._reaper_stop.set()
        if self._reaper is not None:
            self._reaper.join(5)
        with self._lock:
            self._closed = True
            everything = list(self._envs.values())
            self._envs.clear()
            self._idle.clear()
            waiters, self._waiters = list(self._waiters), collections.deque()
        for waiter in waiters:  # requests still waiting: their loop may be gone already
            with contextlib.suppress(RuntimeError):
                waiter.get_loop().call_soon_threadsafe(waiter.cancel)
        for environment in everything:
            with contextlib.suppress(OSError):
                environment.control.send(None)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for environment in everything:
            environment.process.join(max(0.0, deadline - time.monotonic()))
            self._kill(environment)
        self._spawner.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LambdaPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return list(self._envs)

    @property
    def instances(self) -> int:
        with self._lock:
            return len(self._envs)

    # -- one request ------------------------------------------------------------------------------

    async def acquire(self, deadline: float) -> tuple[Environment, bool] | None:
        """A free environment and whether it was a cold start, or None if none is free by `deadline`
        (time.monotonic()). Raises InitFailed when a new environment fails its init phase."""
        loop = asyncio.get_running_loop()
        while True:
            waiter: asyncio.Future[Environment | None] | None = None
            with self._lock:
                if self._closed:
                    return None
                if self._idle:
                    return self._idle.pop(), False
                if len(self._envs) + self._starting < self.max_instances:
                    self._starting += 1
                else:
                    waiter = loop.create_future()
                    self._waiters.append(waiter)
            if waiter is None:
                init_deadline = min(deadline, time.monotonic() + INIT_TIMEOUT_S)
                return await loop.run_in_executor(self._spawner, self._spawn, init_deadline), True
            left = deadline - time.monotonic()
            if left > 0:
                await asyncio.wait({waiter}, timeout=left)
            if not waiter.done():
                waiter.cancel()
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                return None
            handed = waiter.result()
            if handed is not None:
                return handed, False
            # None: a slot was freed; go round and start an environment in it

    def release(self, environment: Environment) -> None:
        """An environment done with its request: to the next waiting request, else idle."""
        environment.invocations += 1
        with self._lock:
            if not self._closed:
                environment.idle_since = time.monotonic()
                while self._waiters:
                    waiter = self._waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(environment)
                        return
                self._idle.append(environment)
                return
        self._stop(environment)

    def close_connections(self) -> None:
        """Close the gateway's connections to idle environments (the gateway is stopping)."""
        with self._lock:
            idle = list(self._idle)
        for environment in idle:
            environment.drop_connection()

    def discard(self, environment: Environment) -> None:
        """End an environment (a timed-out or broken invocation); its slot goes to a waiting request."""
        environment.process.kill()  # Lambda resets an environment whose invocation timed out
        environment.drop_connection()
        with self._lock:
            self._envs.pop(environment.process.pid or 0, None)
            self._hand_a_free_slot()
        try:
            self._spawner.submit(self._kill, environment)  # reaped off the event loop
        except RuntimeError:  # the pool is closing: reap it here
            self._kill(environment)

    def _hand_a_free_slot(self) -> None:
        """Tell the first waiting request that a slot is free (it starts an environment in it).
        Called with the lock held, from the event loop or a cold-start thread."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
                    waiter.get_loop().call_soon_threadsafe(_wake, waiter)
                return

    def _spawn(self, deadline: float) -> Environment:
        """A new environment through its init phase; the caller has reserved a slot in _starting."""
        ready = False
        try:
            parent, child = self._mp.Pipe()
            process = self._mp.Process(
                target=_environment_main,
                args=(child, self.env, str(self.code_dir), self.log_path),
                name=f"{self.function_name}-env",
                daemon=True,
            )
            process.start()
            child.close()
            environment = Environment(process, parent)
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                self._kill(environment)
                raise InitFailed("init did not finish in time")
            try:
                kind, value = parent.recv()
            except (EOFError, OSError):
                self._kill(environment)
                raise InitFailed(f"the environment exited during init (exit code {process.exitcode})") from None
            if kind != "ready":
                self._kill(environment)
                raise InitFailed(str(value))
            environment.port, environment.init_ms = int(value[0]), float(value[1])
            ready = True
        finally:
            with self._lock:
                self._starting -= 1
                if not ready:  # the slot it had reserved is free again
                    self._hand_a_free_slot()
        pid = process.pid
        if pid is None:  # start() returned, so the process has a pid
            raise InitFailed("the environment has no process id")
        with self._lock:
            self._envs[pid] = environment
            self.cold_starts += 1
        return environment

    def _stop(self, environment: Environment) -> None:
        """Stop an idle environment the way Lambda shuts one down: asked first, then killed."""
        environment.drop_connection()
        with contextlib.suppress(OSError):
            environment.control.send(None)
        environment.process.join(STOP_TIMEOUT_S)
        self._kill(environment)

    @staticmethod
    def _kill(environment: Environment) -> None:
        if environment.process.is_alive():
            environment.process.kill()
        environment.process.join(STOP_TIMEOUT_S)
        environment.control.close()


def _wake(waiter: asyncio.Future[Environment | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class InitFailed(Exception):
    """A new environment did not finish its init phase; the message says why."""
