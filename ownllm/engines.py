"""Serving engines: pinned container versions and the environment each container needs.

Pure (no CDK, no SageMaker SDK import): the stacks call `container_environment`; the image
table (ownllm/data/images.json, see ownllm/images.py) holds the image of each pinned version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ownllm.settings import Settings

if TYPE_CHECKING:
    from ownllm.artifacts import ModelArtifacts

# Weights given as model data are mounted here by SageMaker.
MODEL_DIR = "/opt/ml/model"
ADAPTERS_SUBDIR = "adapters"


@dataclass(frozen=True)
class EngineImage:
    framework: str  # the SageMaker SDK's image_uris framework name
    version: str  # pinned: `version=None` fails for these frameworks, and pins keep synth stable


# Pinned framework versions (newest each ships in sagemaker-core 2.27.0's image config). After
# changing one, run `ownllm images refresh` to regenerate ownllm/data/images.json.
ENGINE_IMAGES: dict[str, EngineImage] = {
    "vllm": EngineImage("vllm", "0.30.0"),  # SageMaker vLLM DLC: OpenAI shape on /invocations
    "lmi": EngineImage("djl-lmi", "0.38.0"),  # Large Model Inference (DJL Serving, vLLM backend)
    "tgi": EngineImage("huggingface-llm", "3.3.6"),  # Hugging Face Text Generation Inference
}

# One line per engine that still works but should not be chosen for new deployments; synth
# shows it as a warning on the serving stack, and the README quotes it.
# TGI: the upstream README opens with "text-generation-inference is now in maintenance mode"
# (huggingface/text-generation-inference, README.md at db931fc, 2026-01-08); the repository
# was archived in 2026-03 (shared/reference/aws-pitfalls.md). Checked 2026-12-02.
ENGINE_NOTICES: dict[str, str] = {
    "tgi": (
        "engine=tgi: Hugging Face put Text Generation Inference in maintenance mode (2025-12) and archived it "
        "(2026-03), so it gets no new models or fixes; prefer engine=vllm for new deployments."
    ),
}

# LoRA ranks vLLM can reserve memory for (`--max-lora-rank`, default 16): vllm/config/lora.py
# `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]` (vllm-project/vllm at 01230b4;
# checked 2026-12-02). LMI passes OPTION_MAX_LORA_RANK through to the same vLLM argument.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

# LMI's vLLM async mode, the default since LMI v17 ("Async mode will become the default, and
# only supported mode": djl-serving serving/docs/lmi/user_guides/vllm_user_guide.md, branch
# 0.36.0-lmi27-dlc). `OPTION_ROLLING_BATCH=vllm` is the legacy rolling-batch mode. Async mode
# and rolling batch are mutually exclusive, so rolling batch is disabled explicitly
# (serving/docs/configurations_model.md); the entry point is the one LMI picks for async
# vLLM (engines/python/src/main/java/ai/djl/python/engine/PyModel.java) and the docs set
# (serving/docs/stateful_sessions.md). OPTION_ENTRYPOINT maps to `entryPoint`
# (wlm/src/main/java/ai/djl/serving/wlm/ModelInfo.java). Checked 2026-12-02.
LMI_ASYNC_ENTRYPOINT = "djl_python.lmi_vllm.vllm_async_service"


# What each engine is told so that it serves the precision the performance model assumed.
# vLLM DLC: every SM_VLLM_X becomes `--x` (aws/deep-learning-containers
# scripts/docker/vllm/sagemaker_args.py, `flag_for`), so SM_VLLM_DTYPE is vLLM's --dtype
# (float16, bfloat16) and SM_VLLM_QUANTIZATION its --quantization; fp8 is quantized as the engine
# loads the weights (vLLM docs "FP8 W8A8": Ampere runs it weight-only through Marlin kernels).
# LMI: OPTION_DTYPE (option.dtype, "fp16"/"bf16" in DJL Serving's configuration table) and
# OPTION_QUANTIZE: "runtime quantization: fp8, bitsandbytes ... `OPTION_QUANTIZE=<fp8|bitsandbytes>`"
# (deepjavalibrary/djl-serving serving/docs/lmi/user_guides/vllm_user_guide.md). Checked 2026-12-02.
# TGI: DTYPE (float16, bfloat16) and QUANTIZE (fp8 among its values); the launcher says --dtype
# "cannot be used with `--quantize`" (huggingface/text-generation-inference launcher/src/main.rs).
# int8/int4: a checkpoint quantized ahead of time (AWQ, GPTQ, ...) whose config.json names the
# method, which every engine reads itself; telling it again limits vLLM's kernel choice (LMI guide:
# "If you are using a pre-quantized model, you should not set any quantization-specific configurations").
PRECISION_ENV: dict[str, dict[str, dict[str, str]]] = {
    "vllm": {
        "bf16": {"SM_VLLM_DTYPE": "bfloat16"},
        "fp16": {"SM_VLLM_DTYPE": "float16"},
        "fp8": {"SM_VLLM_QUANTIZATION": "fp8"},
        "int8": {},
        "int4": {},
    },
    "lmi": {
        "bf16": {"OPTION_DTYPE": "bf16"},
        "fp16": {"OPTION_DTYPE": "fp16"},
        "fp8": {"OPTION_QUANTIZE": "fp8"},
        "int8": {},
        "int4": {},
    },
    "tgi": {
        "bf16": {"DTYPE": "bfloat16"},
        "fp16": {"DTYPE": "float16"},
        "fp8": {"QUANTIZE": "fp8"},
        "int8": {},
        "int4": {},
    },
}


def precision_environment(settings: Settings) -> dict[str, str]:
    """The engine's dtype/quantization variables for the settings' (resolved) precision."""
    return dict(PRECISION_ENV[settings.engine][settings.resolved_precision])


def model_location(settings: Settings) -> str:
    """What the engine loads: the Hub id, or the mounted model data for s3:// weights."""
    return MODEL_DIR if settings.model_from_s3 else settings.model_id


def lora_rank_for(rank: int) -> int:
    """The smallest rank vLLM accepts for --max-lora-rank that holds an adapter of `rank`."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]})")


def vllm_lora_modules(adapters: tuple[str, ...]) -> str:
    """SM_VLLM_LORA_MODULES as a JSON array of `{"name", "path"}` objects.

    The vLLM DLC's entrypoint turns a JSON array into one argv token per element
    (aws/deep-learning-containers scripts/docker/vllm/sagemaker_args.py, `tokens_for`, added
    2026-08-19 in #6564, before vLLM 0.28), and vLLM's `--lora-modules` parser reads a token
    holding `{` as JSON (vllm/entrypoints/openai/cli_args.py, LoRAParserAction). A space-joined
    `a=/p b=/q` reaches vLLM as one token and fails its `name, path = item.split("=")`.
    """
    modules = [{"name": a, "path": f"{MODEL_DIR}/{ADAPTERS_SUBDIR}/{a}"} for a in adapters]
    return json.dumps(modules, separators=(",", ":"))


def container_environment(settings: Settings, artifacts: ModelArtifacts | None = None) -> dict[str, str]:
    """The container environment for the configured engine.

    Tensor parallelism spans every GPU of the instance; token limits and batch size come
    from settings so the Lambda and the engine agree on them. Engine overrides from
    model_artifacts/serving.json win over the computed values.
    """
    s = settings
    adapters = artifacts.adapters if artifacts else ()
    model = model_location(s)
    gpus = s.gpu_count
    adapter_dir = f"{MODEL_DIR}/{ADAPTERS_SUBDIR}"
    rank = str(lora_rank_for(artifacts.max_lora_rank)) if artifacts and artifacts.max_lora_rank else None
    env: dict[str, str]
    if s.engine == "vllm":
        # The DLC turns every SM_VLLM_X into a `--x` server argument ("true" into a bare flag).
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
            env["SM_VLLM_LORA_MODULES"] = vllm_lora_modules(adapters)
            if rank:
                env["SM_VLLM_MAX_LORA_RANK"] = rank
    elif s.engine == "lmi":
        env = {
            "HF_MODEL_ID": model,
            "OPTION_ASYNC_MODE": "true",
            "OPTION_ROLLING_BATCH": "disable",
            "OPTION_ENTRYPOINT": LMI_ASYNC_ENTRYPOINT,
            "OPTION_TENSOR_PARALLEL_DEGREE": str(gpus),
            "OPTION_MAX_MODEL_LEN": str(s.max_total_tokens),
            # LMI's name for vLLM's max_num_seqs, in async mode too (djl_python
            # properties_manager/vllm_rb_properties.py, generate_vllm_engine_arg_dict).
            "OPTION_MAX_ROLLING_BATCH_SIZE": str(s.max_batch_size),
        }
        if adapters:
            # LMI loads every adapter under the model directory's adapters/ at start-up
            # (djl-serving serving/docs/adapters.md, "Adapters local directory").
            env["OPTION_ENABLE_LORA"] = "true"
            env["OPTION_MAX_LORAS"] = str(len(adapters))
            if rank:
                env["OPTION_MAX_LORA_RANK"] = rank
    elif s.engine == "tgi":
        # TGI 3.x reads these through its launcher's arguments (launcher/src/main.rs at v3.3.6);
        # the SageMaker entrypoint turns SM_NUM_GPUS into NUM_SHARD (sagemaker-entrypoint.sh).
        # The Messages API is always on in 3.x: MESSAGES_API_ENABLED is read by no 3.3.6 code.
        env = {
            "HF_MODEL_ID": model,
            "SM_NUM_GPUS": str(gpus),
            "MAX_INPUT_TOKENS": str(s.max_input_tokens),
            "MAX_TOTAL_TOKENS": str(s.max_total_tokens),
            "MAX_BATCH_PREFILL_TOKENS": str(max(s.max_input_tokens, 4096)),
            "MAX_CONCURRENT_REQUESTS": str(s.max_batch_size * 2),
        }
        if adapters:
            env["LORA_ADAPTERS"] = ",".join(f"{a}={adapter_dir}/{a}" for a in adapters)
    else:  # pragma: no cover - settings validation rejects other engines
        raise ValueError(f"unknown engine {s.engine!r}")
    env.update(precision_environment(s))
    env.update(artifacts.overrides_for(s.engine) if artifacts else {})
    return env
