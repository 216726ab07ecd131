"""The whole local path in one object: gateway -> forwarder Lambda -> SageMaker runtime -> model.

    with LocalStack(engine="tgi") as stack:
        OpenAI(base_url=stack.base_url, api_key=stack.api_key)...
        stack.runtime.set_fault("throttle", times=1)

Everything listens on 127.0.0.1. The model is the built-in stand-in (canned text, each
engine's exact wire shape; it exercises the path, it is not a model) unless `upstream`
names an OpenAI-compatible server you run (vLLM, llama.cpp, Ollama).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from ownllm.forwarder import contract, forwarder_environment
from ownllm.local.gateway import INTEGRATION_TIMEOUT_S, AccessRecord, Gateway
from ownllm.local.lambda_pool import (
    FAKE_AWS_ENV,
    FORWARDER_DIR,
    FUNCTION_NAME,
    IDLE_TIMEOUT_S,
    LambdaPool,
    LocalStackError,
)
from ownllm.local.runtime import RuntimeServer
from ownllm.local.standin import StandIn
from ownllm.local.upstream import OpenAIUpstream, UpstreamError
from ownllm.settings import Settings

__all__ = ["LocalStack", "LocalStackError", "STAND_IN_MODEL", "BACKEND_HEADER"]

STAND_IN_MODEL = "ownllm-stand-in"
ENDPOINT_NAME = "ownllm-local-endpoint"
INFERENCE_COMPONENT_NAME = "ownllm-local-component"
# Set on every answer, so a client (the bench's --calibrate) can tell canned speed from a model's.
BACKEND_HEADER = "x-ownllm-local-backend"


def new_api_key() -> str:
    """A key shaped like API Gateway's: 40 letters and digits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(40))


class LocalStack:
    """Start with start() (or `with`), stop with stop(); `url`, `base_url`, `api_key` to call it."""

    def __init__(
        self,
        *,
        engine: str = "vllm",
        settings: Settings | None = None,
        model_name: str | None = None,
        adapters: tuple[str, ...] | list[str] = (),
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream: str | None = None,
        upstream_model: str | None = None,
        upstream_key: str | None = None,
        latency_s: float = 0.0,
        tokens_per_s: float = 0.0,
        fill_max_tokens: bool = False,
        gateway_timeout_s: float = INTEGRATION_TIMEOUT_S,
        stream_timeout_s: float | None = None,
        lambda_timeout_s: float | None = None,
        max_instances: int = 64,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        lambda_env: dict[str, str] | None = None,
        lambda_log: str | Path | None = None,
        code_dir: Path = FORWARDER_DIR,
        on_request: Callable[[AccessRecord], None] | None = None,
        scale_to_zero_wake_s: float | None = None,
    ):
        engines: tuple[str, ...] = contract().ENGINES
        if engine not in engines:
            raise LocalStackError(f"engine {engine!r} is not one of {', '.join(engines)}")
        if latency_s < 0 or tokens_per_s < 0:
            raise LocalStackError("latency and tokens/s must not be negative")
        if scale_to_zero_wake_s is not None and not 0 <= scale_to_zero_wake_s <= 3600:
            raise LocalStackError(f"--scale-to-zero {scale_to_zero_wake_s:g}: expected 0 to 3600 seconds to wake")
        # Emulates an inference component at zero copies: the first call wakes it, and every
        # call answers SageMaker's no-capacity error until it is awake.
        self.scale_to_zero_wake_s = scale_to_zero_wake_s
        self.engine = engine
        # Limits (request size, tokens) as deployed: from cdk.json when the CLI passes them.
        self.settings = settings or Settings.from_context({})
        self.model_name = model_name
        self.adapters = tuple(a for a in adapters if a)
        self.api_key = api_key or new_api_key()
        self.host, self.port = host, port
        self.upstream, self.upstream_model, self.upstream_key = upstream, upstream_model, upstream_key
        self.latency_s, self.tokens_per_s = latency_s, tokens_per_s
        self.fill_max_tokens = fill_max_tokens
        # API Gateway's integration timeouts as deployed (stacks/api.py): 29 s, and api_timeout_s
        # on the completion routes; the function's own timeout: Settings.function_timeout_s.
        self.gateway_timeout_s = gateway_timeout_s
        self.stream_timeout_s = float(self.settings.api_timeout_s) if stream_timeout_s is None else stream_timeout_s
        self.lambda_timeout_s = (
            float(self.settings.function_timeout_s) if lambda_timeout_s is None else lambda_timeout_s
        )
        self.max_instances = max_instances
        self.idle_timeout_s = idle_timeout_s
        self.lambda_env = dict(lambda_env or {})
        self.lambda_log = str(lambda_log) if lambda_log else None
        self.code_dir = code_dir
        self.on_request = on_request
        self.runtime: RuntimeServer | None = None
        self.pool: LambdaPool | None = None
        self.gateway: Gateway | None = None
        self.backend_kind = "upstream" if upstream else "stand-in"

    @property
    def runtime_url(self) -> str:
        if self.runtime is None:
            raise RuntimeError("the local stack is not started")
        return self.runtime.url

    @property
    def upstream_served_model(self) -> str | None:
        """The model the --upstream server serves (it may differ from the one the API names)."""
        backend = self.runtime.backend if self.runtime is not None else None
        return backend.model if isinstance(backend, OpenAIUpstream) else None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Bind the port first (a busy port fails before anything starts), then runtime, Lambda, gateway."""
        if self.gateway is not None:
            return self
        try:
            backend = self._backend()
            self.gateway = Gateway(
                None,  # the Lambda comes next, once the runtime's URL is known
                self.api_key,
                self.host,
                self.port,
                timeout_s=self.gateway_timeout_s,
                stream_timeout_s=self.stream_timeout_s,
                on_request=self.on_request,
                extra_headers={BACKEND_HEADER: self.backend_kind},
            )
            self.runtime = RuntimeServer(backend=backend, endpoint_names=[ENDPOINT_NAME]).start()
            if self.scale_to_zero_wake_s is not None:
                self.runtime.set_fault("no_capacity", wake_s=self.scale_to_zero_wake_s)
            self.pool = LambdaPool(
                env=self.function_env(),
                code_dir=self.code_dir,
                timeout_s=self.lambda_timeout_s,
                max_instances=self.max_instances,
                log_path=self.lambda_log,
                idle_timeout_s=self.idle_timeout_s,
            ).start()
            self.gateway.pool = self.pool
            self.gateway.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.stop()
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.close()
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves ----------------------------------------------------------------------------

    def _backend(self):
        if self.upstream:
            try:
                backend = OpenAIUpstream(
                    self.upstream,
                    self.engine,
                    model=self.upstream_model,
                    adapters=self.adapters,
                    api_key=self.upstream_key,
                ).resolved()
            except UpstreamError as exc:
                raise LocalStackError(str(exc)) from None
            self.model_name = self.model_name or backend.model
            return backend
        self.model_name = self.model_name or STAND_IN_MODEL
        return StandIn(
            engine=self.engine,
            model_name=self.model_name,
            latency_s=self.latency_s,
            tokens_per_s=self.tokens_per_s,
            adapters=self.adapters,
            max_total_tokens=self.settings.max_total_tokens,
            fill_max_tokens=self.fill_max_tokens,
        )

    def function_env(self) -> dict[str, str]:
        """The forwarder's environment: the stack's contract (stacks/api.py), fake AWS, the local runtime."""
        s = self.settings
        env = {
            **forwarder_environment(
                s,
                endpoint_name=ENDPOINT_NAME,
                adapters=self.adapters,
                model_name=self.model_name or STAND_IN_MODEL,
                inference_component=INFERENCE_COMPONENT_NAME if self.scale_to_zero_wake_s is not None else None,
            ),
            contract().ENGINE: self.engine,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(s.lambda_memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            **FAKE_AWS_ENV,
            **self.lambda_env,
        }
        if self.runtime is not None:
            env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = self.runtime.url
        return env

    @property
    def url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("LocalStack is not started; call start() first")
        return self.gateway.url

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return self.url + "/v1"

    @property
    def is_stand_in(self) -> bool:
        return self.backend_kind == "stand-in"
