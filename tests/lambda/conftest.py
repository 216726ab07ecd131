"""Fixtures for the forwarder Lambda: real API Gateway REST proxy events, a local SageMaker
runtime (ownllm.local.runtime) answering in each engine's shape, and fake AWS credentials.

The forwarder's modules are plain top-level modules (Lambda puts the asset on sys.path);
its `app.py` is loaded under the name `forwarder_app` so it cannot be confused with the
CDK `app.py` at the repository root.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lambda_testkit import ADAPTERS, BASE_ENV, FAKE_AWS, FORWARDER, MODEL, Harness

from ownllm.forwarder import contract
from ownllm.local.runtime import RuntimeServer, StandIn


@pytest.fixture(scope="session")
def forwarder_app():
    """The Lambda module, imported the way Lambda does: env first, then `app`."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**FAKE_AWS, **BASE_ENV}.items():
            mp.setenv(key, value)
        spec = importlib.util.spec_from_file_location("forwarder_app", FORWARDER / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["forwarder_app"] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_forwarder(forwarder_app, monkeypatch):
    """Configure the forwarder for an engine against a fresh local runtime (or a custom backend)."""
    import config as settings
    import upstream

    servers: list[RuntimeServer] = []

    def make(engine: str = "vllm", backend=None, env: dict | None = None, **standin_kwargs) -> Harness:
        standin_kwargs.setdefault("adapters", ADAPTERS)
        standin = backend or StandIn(engine=engine, model_name=MODEL, **standin_kwargs)
        server = RuntimeServer(backend=standin, keep_requests=100).start()  # tests read what the engine got
        servers.append(server)
        full_env = {**FAKE_AWS, **BASE_ENV, "ENGINE": engine, **(env or {})}
        full_env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = server.url
        for key, value in full_env.items():
            monkeypatch.setenv(key, value)
        cfg = settings.load(full_env)
        monkeypatch.setattr(forwarder_app, "CONFIG", cfg)
        monkeypatch.setattr(
            forwarder_app, "CLIENT", upstream.create_client(cfg.connect_timeout_s, cfg.read_timeout_s, cfg.max_attempts)
        )
        return Harness(forwarder_app, server, standin)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def forwarder(make_forwarder) -> Harness:
    return make_forwarder("vllm")


@pytest.fixture(params=contract().ENGINES)
def any_engine(request, make_forwarder) -> Harness:
    return make_forwarder(request.param)


@pytest.fixture
def logs(forwarder_app):
    """The forwarder's structured log lines (Powertools Logger), as dicts."""
    handler = forwarder_app.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    yield lines
    handler.setStream(previous)
