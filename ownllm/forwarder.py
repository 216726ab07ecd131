"""The forwarder Lambda's contract with the tools: the environment the deployed stack
(stacks/api.py) and the local stack (ownllm/local) both give lambda/forwarder/app.py, and the
forwarder's own dependency-free modules (errors, telemetry), loaded by path the way the Lambda
loads them, so their facts are read, never copied."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ownllm.settings import Settings

FORWARDER_DIR = Path(__file__).resolve().parent.parent / "lambda" / "forwarder"
# Modules of the asset that import nothing but the standard library.
_DEPENDENCY_FREE = ("errors", "telemetry")


def forwarder_module(name: str) -> ModuleType:
    """lambda/forwarder/<name>.py as a module, under a name of its own (`ownllm_forwarder_<name>`)."""
    if name not in _DEPENDENCY_FREE:
        raise ValueError(f"{name!r} is not one of the forwarder's dependency-free modules {_DEPENDENCY_FREE}")
    qualified = f"ownllm_forwarder_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, FORWARDER_DIR / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {FORWARDER_DIR / name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[qualified]


SERVICE_NAME = "ownllm-forwarder"
METRICS_NAMESPACE = "ownllm"


def forwarder_environment(
    settings: Settings,
    *,
    endpoint_name: str,
    adapters: tuple[str, ...] = (),
    model_name: str | None = None,
    inference_component: str | None = None,
) -> dict[str, str]:
    """inference_component: the component's name when the model runs as one (scale to zero)."""
    s = settings
    env = {
        "ENDPOINT_NAME": endpoint_name,
        "ENGINE": s.engine,
        "MODEL_NAME": model_name or s.served_model_name,
        "ADAPTERS": ",".join(adapters),
        "MAX_REQUEST_BYTES": str(s.max_request_bytes),
        "MAX_INPUT_TOKENS": str(s.max_input_tokens),
        # The forwarder reads MAX_TOTAL_TOKENS only to cap max_tokens at MAX_TOTAL_TOKENS -
        # MAX_INPUT_TOKENS (lambda/forwarder/config.py): passing max_input_tokens + the cap makes
        # that cap Settings.max_output_tokens, which also keeps an answer within the Lambda timeout.
        "MAX_TOTAL_TOKENS": str(s.max_input_tokens + s.max_output_tokens),
        "DEFAULT_MAX_TOKENS": str(min(s.default_max_tokens, s.max_output_tokens)),
        "LOG_PROMPTS": "false",
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }
    if inference_component:
        env["INFERENCE_COMPONENT_NAME"] = inference_component
    return env
