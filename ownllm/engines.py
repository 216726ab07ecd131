"""Serving engines: pinned container versions and the environment each container needs.

Pure (no CDK, no SageMaker SDK import): the stacks call `container_environment` and the
image module resolves `ENGINE_IMAGES` through the SageMaker SDK.
"""

from __future__ import annotations

from dataclasses import dataclass

from ownllm.settings import Settings

# Weights given as model data are mounted here by SageMaker.
MODEL_DIR = "/opt/ml/model"
ADAPTERS_SUBDIR = "adapters"


@dataclass(frozen=True)
class EngineImage:
    framework: str  # the SageMaker SDK's image_uris framework name
    version: str  # pinned: `version=None` fails for these frameworks, and pins keep synth stable


# Pinned framework versions (newest each ships in sagemaker-core 2.27.0's image config).
ENGINE_IMAGES: dict[str, EngineImage] = {
    "vllm": EngineImage("vllm", "0.30.0"),  # SageMaker vLLM DLC: OpenAI shape on /invocations
    "lmi": EngineImage("djl-lmi", "0.38.0"),  # Large Model Inference (DJL Serving, vLLM backend)
    "tgi": EngineImage("huggingface-llm", "3.3.6"),  # Hugging Face Text Generation Inference
}


def model_location(settings: Settings) -> str:
    """What the engine loads: the Hub id, or the mounted model data for s3:// weights."""
    return MODEL_DIR if settings.model_from_s3 else settings.model_id


def container_environment(
    settings: Settings, adapters: tuple[str, ...] = (), overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """The container environment for the configured engine.

    Tensor parallelism spans every GPU of the instance; token limits and batch size come
    from settings so the Lambda and the engine agree on them. `overrides` (from
    model_artifacts/serving.json) win over the computed values.
    """
    s = settings
    model = model_location(s)
    gpus = s.gpu_count
    adapter_dir = f"{MODEL_DIR}/{ADAPTERS_SUBDIR}"
    env: dict[str, str]
    if s.engine == "vllm":
        env = {
            "SM_VLLM_MODEL": model,
            "SM_VLLM_SERVED_MODEL_NAME": s.served_model_name,
            "SM_VLLM_TENSOR_PARALLEL_SIZE": str(gpus),
            "SM_VLLM_MAX_MODEL_LEN": str(s.max_total_tokens),
            "SM_VLLM_MAX_NUM_SEQS": str(s.max_batch_size),
            "SM_VLLM_GPU_MEMORY_UTILIZATION": "0.9",
        }
        if adapters:
            env["SM_VLLM_ENABLE_LORA"] = "true"
            env["SM_VLLM_MAX_LORAS"] = str(len(adapters))
            env["SM_VLLM_LORA_MODULES"] = " ".join(f"{a}={adapter_dir}/{a}" for a in adapters)
    elif s.engine == "lmi":
        env = {
            "HF_MODEL_ID": model,
            "OPTION_ROLLING_BATCH": "vllm",
            "OPTION_TENSOR_PARALLEL_DEGREE": str(gpus),
            "OPTION_MAX_MODEL_LEN": str(s.max_total_tokens),
            "OPTION_MAX_ROLLING_BATCH_SIZE": str(s.max_batch_size),
        }
        if adapters:
            env["OPTION_ENABLE_LORA"] = "true"
            env["OPTION_MAX_LORAS"] = str(len(adapters))
    elif s.engine == "tgi":
        env = {
            "HF_MODEL_ID": model,
            "SM_NUM_GPUS": str(gpus),
            "MAX_INPUT_TOKENS": str(s.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(s.max_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(max(s.max_input_tokens, 4096)),
            "MAX_CONCURRENT_REQUESTS": str(s.max_batch_size * 2),
            "MESSAGES_API_ENABLED": "true",
        }
        if adapters:
            env["LORA_ADAPTERS"] = ",".join(f"{a}={adapter_dir}/{a}" for a in adapters)
    else:  # pragma: no cover - settings validation rejects other engines
        raise ValueError(f"unknown engine {s.engine!r}")
    env.update(overrides or {})
    return env
