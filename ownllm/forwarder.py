"""The forwarder Lambda's environment: the one contract the deployed stack (stacks/api.py)
and the local stack (ownllm/local) both give lambda/forwarder/app.py."""

from __future__ import annotations

from ownllm.settings import Settings

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
        "MAX_TOTAL_TOKENS": str(s.max_total_tokens),
        "DEFAULT_MAX_TOKENS": str(s.default_max_tokens),
        "LOG_PROMPTS": "false",
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }
    if inference_component:
        env["INFERENCE_COMPONENT_NAME"] = inference_component
    return env
