"""Fixtures for the bench: a trivial OpenAI-shaped server, the local stack, a cdk.json to calibrate.

Everything on 127.0.0.1, port 0, stopped after the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.trivial_server import TrivialServer
from ownllm.bench.report import BenchReport, LevelSummary
from ownllm.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
KEY = "bench-test-key"


@pytest.fixture
def trivial():
    """trivial(**TrivialServer kwargs) -> a started server (url ends in /v1)."""
    servers: list[TrivialServer] = []

    def make(**kwargs) -> TrivialServer:
        server = TrivialServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def local_stack():
    stack = LocalStack(api_key=KEY, max_instances=8).start()
    yield stack
    stack.stop()


@pytest.fixture
def cdk_json(tmp_path) -> Path:
    """A copy of the project's cdk.json, to calibrate without touching the real one."""
    path = tmp_path / "cdk.json"
    shutil.copy(ROOT / "cdk.json", path)
    return path


@pytest.fixture
def level():
    """level(concurrency, ok=..., requests=..., tokens_s=..., per_request=...) -> a LevelSummary."""

    def make(
        concurrency: int,
        *,
        ok: int = 100,
        requests: int | None = None,
        tokens_s: float = 100.0,
        per_request: float | None = 20.0,
    ) -> LevelSummary:
        requests = ok if requests is None else requests
        return LevelSummary(
            concurrency=concurrency,
            requests=requests,
            ok=ok,
            errors={"500": requests - ok} if requests > ok else {},
            elapsed_s=10.0,
            requests_per_s=ok / 10,
            output_tokens_per_s=tokens_s,
            latency_p50_ms=100.0,
            latency_p95_ms=150.0,
            latency_p99_ms=200.0,
            latency_mean_ms=110.0,
            request_tokens_per_s=per_request,
        )

    return make


@pytest.fixture
def report():
    def make(levels, model: str = "Qwen/Qwen2.5-7B-Instruct", backend: str | None = None) -> BenchReport:
        return BenchReport(
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/v1",
            model,
            128,
            "requests",
            100,
            levels=list(levels),
            backend=backend,
        )

    return make
