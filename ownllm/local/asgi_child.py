"""The deployed function's streaming entry point, run locally: lambda/forwarder's `main:app` under
uvicorn in a child process, as lambda/forwarder/run.sh starts it behind Lambda Web Adapter.

The child sees only the environment it is given (the forwarder's, fake AWS credentials, the local
runtime's URL) plus PATH, so nothing in it can reach AWS with the caller's identity. `start()`
returns once the app answers its readiness path (Lambda Web Adapter polls the same path,
AWS_LWA_READINESS_CHECK_PATH); `stop()` ends the process and waits for it.

One process serves every stream at once (uvicorn is asynchronous), where Lambda would give each
stream its own execution environment; the streaming path keeps no per-request module state
except the metrics buffer, so only the local EMF lines may mix.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ownllm.local.lambda_pool import FORWARDER_DIR, LocalStackError

__all__ = ["AsgiChild", "HEALTH_PATH", "UVICORN_VERSION"]

# main.py's HEALTH_PATH: what Lambda Web Adapter polls before it sends the first request.
HEALTH_PATH = "/health"
# The uvicorn the function's asset bundles (lambda/forwarder/run.sh runs `python -m uvicorn`).
UVICORN_VERSION = "0.54.0"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
# What the child keeps of this process's environment: finding Python, nothing about AWS.
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class AsgiChild:
    """`main:app` in uvicorn on 127.0.0.1; `url` once started."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        code_dir: Path = FORWARDER_DIR,
        host: str = "127.0.0.1",
        log_path: str | None = None,
    ) -> None:
        self.env = dict(env)
        self.code_dir = Path(code_dir)
        self.host = host
        self.port = 0
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def child_environment(self) -> dict[str, str]:
        kept = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
        # sys.path of this interpreter: the venv's packages (uvicorn, botocore, Powertools), as the
        # function's /opt/python layer and $LAMBDA_RUNTIME_DIR provide them in Lambda.
        search = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
        return {**kept, **self.env, "PYTHONPATH": search, "PYTHONUNBUFFERED": "1"}

    def start(self) -> AsgiChild:
        if self.process is not None:
            return self
        self.port = _free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            f"--host={self.host}",
            f"--port={self.port}",
            "--no-access-log",
            "--log-level=warning",
            "main:app",
        ]
        out = open(self.log_path or os.devnull, "ab")  # noqa: SIM115 - the child keeps it; closed below
        try:
            self.process = subprocess.Popen(
                command,
                cwd=self.code_dir,
                env=self.child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # Ctrl-C reaches the gateway, which stops the child itself
            )
        except OSError as exc:
            raise LocalStackError(f"cannot start uvicorn for the streaming function: {exc}") from None
        finally:
            out.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process is not None else None
                self.stop()
                raise LocalStackError(
                    f"the streaming function (uvicorn {UVICORN_VERSION} main:app) exited with code {code} "
                    f"before it was ready; see --lambda-log"
                )
            conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
            try:
                conn.request("GET", HEALTH_PATH)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.05)
        self.stop()
        raise LocalStackError(f"the streaming function was not ready within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_S)
