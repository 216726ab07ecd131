"""External facts the project rules enforce, each with its source (see docs/aws-facts.md)."""

from __future__ import annotations

import re

# AWS Budgets: FORECASTED notifications need a budget period long enough to forecast;
# a DAILY budget rejects them at create time (InvalidParameterException).
# Source: https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/budgets-create.html
# ("The forecast option is not available for daily budgets"), DNXLabs/terraform-aws-billing 0.1.1.
FORECASTABLE_TIME_UNITS = frozenset({"MONTHLY", "QUARTERLY", "ANNUALLY"})

# A CUDA 13 container image tag: the SageMaker vLLM DLC `...-cu130-...`, LMI `...-cu130`.
# Such images need the variant's InferenceAmiVersion: "GPU deployments require
# inference_ami_version - the default SageMaker host AMI has incompatible NVIDIA drivers for
# CUDA 13.0 images" (aws/deep-learning-containers docs/vllm/deployment/sagemaker.md).
CUDA13_TAG = re.compile(r"cu13\d")
# The AMI the DLC docs pair with CUDA 13 images (docs/get_started/using_dlcs.md,
# docs/sglang/deployment/sagemaker.md); cfn-lint's EndpointConfig schema lists the valid values.
CUDA13_AMI_EXAMPLE = "al2023-ami-sagemaker-inference-gpu-4-1"

# The vLLM DLC entrypoint (aws/deep-learning-containers scripts/docker/vllm/sagemaker_args.py,
# since PR #6564, 2026-08-19) turns SM_VLLM_LORA_MODULES into argv tokens: a JSON array gives
# one token per element, a run of JSON objects one token per object, anything else exactly
# one token. vLLM's --lora-modules parser then reads each token as `name=path` or as a JSON
# object with "name" and "path" (vllm-project/vllm vllm/entrypoints/openai/cli_args.py,
# LoRAParserAction).
LORA_MODULES_ENV = "SM_VLLM_LORA_MODULES"

# SageMaker copies model data from a key-name prefix, which "always ends with a forward slash"
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_S3ModelDataSource.html, S3Uri).
# ModelDataUrl names one gzip-compressed tar archive instead
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContainerDefinition.html).
S3_PREFIX_DATA_TYPE = "S3Prefix"
MODEL_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")

# API Gateway's own errors answer `{"message": ...}` unless the API defines a gateway response
# for the type. These are the types an API key client can meet; DEFAULT_4XX/5XX cover the rest.
# Source: https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
REQUIRED_GATEWAY_RESPONSES = (
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "UNAUTHORIZED",
    "ACCESS_DENIED",
    "INVALID_API_KEY",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "INTEGRATION_TIMEOUT",
)
JSON_CONTENT_TYPE = "application/json"
# An OpenAI-shaped error body: {"error": {...}}.
OPENAI_ERROR_OBJECT = re.compile(r'"error"\s*:\s*\{')
