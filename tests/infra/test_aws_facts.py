"""Pins for the external facts in docs/aws-facts.md that an offline check can prove: each
test reads the fact from the pinned SDK's own service model or image config, so upgrading
botocore or sagemaker-core re-checks it."""

from __future__ import annotations

import re

import pytest
from botocore.loaders import Loader

from ownllm.cfn_rules._facts import (
    CUDA13_AMI_EXAMPLE,
    CUDA13_TAG,
    FORECASTABLE_TIME_UNITS,
    REQUIRED_GATEWAY_RESPONSES,
)
from ownllm.engines import ENGINE_IMAGES
from ownllm.images import engine_image


@pytest.fixture(scope="module")
def sagemaker_model() -> dict:
    return Loader().load_service_model("sagemaker", "service-2")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_vllm_and_lmi_images_are_cuda_13_builds_and_tgi_is_not():
    """Which pinned images need InferenceAmiVersion (rule E9002)."""
    tags = {engine: engine_image(engine, "us-east-1").uri.rsplit(":", 1)[1] for engine in ENGINE_IMAGES}
    assert tags == {
        "vllm": "0.30.0-gpu-py312-cu130-ubuntu24.04-sagemaker",
        "lmi": "0.38.0-lmi29.0.0-cu130",
        "tgi": "2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04",
    }
    assert {engine for engine, tag in tags.items() if CUDA13_TAG.search(tag)} == {"vllm", "lmi"}


def test_the_ami_suggested_for_cuda_13_is_the_one_sagemaker_documents_with_cuda_13(sagemaker_model):
    shapes = sagemaker_model["shapes"]
    assert shapes["ProductionVariantInferenceAmiVersion"]["enum"] == [
        "al2-ami-sagemaker-inference-gpu-2",
        "al2-ami-sagemaker-inference-gpu-2-1",
        "al2-ami-sagemaker-inference-gpu-3-1",
        "al2-ami-sagemaker-inference-neuron-2",
        "al2023-ami-sagemaker-inference-gpu-4-1",
    ]
    doc = _text(shapes["ProductionVariant"]["members"]["InferenceAmiVersion"]["documentation"])
    assert f"{CUDA13_AMI_EXAMPLE} Accelerator: GPU NVIDIA driver version: 580 CUDA version: 13.0" in doc


def test_the_startup_and_download_timeouts_sit_in_sagemakers_allowed_range(sagemaker_model):
    from stacks.serving import MODEL_DOWNLOAD_TIMEOUT_S, STARTUP_HEALTH_CHECK_S

    members = sagemaker_model["shapes"]["ProductionVariant"]["members"]
    ranges = {
        name: (
            sagemaker_model["shapes"][members[name]["shape"]]["min"],
            sagemaker_model["shapes"][members[name]["shape"]]["max"],
        )
        for name in ("ContainerStartupHealthCheckTimeoutInSeconds", "ModelDataDownloadTimeoutInSeconds")
    }
    assert ranges == {
        "ContainerStartupHealthCheckTimeoutInSeconds": (60, 3600),
        "ModelDataDownloadTimeoutInSeconds": (60, 3600),
    }
    assert 60 <= STARTUP_HEALTH_CHECK_S <= 3600
    assert 60 <= MODEL_DOWNLOAD_TIMEOUT_S <= 3600


def test_budget_time_units_and_notification_types_are_the_ones_budgets_knows():
    shapes = Loader().load_service_model("budgets", "service-2")["shapes"]
    assert shapes["TimeUnit"]["enum"] == ["DAILY", "MONTHLY", "QUARTERLY", "ANNUALLY", "CUSTOM"]
    assert shapes["NotificationType"]["enum"] == ["ACTUAL", "FORECASTED"]
    assert set(shapes["TimeUnit"]["enum"]) > FORECASTABLE_TIME_UNITS


def test_every_required_gateway_response_type_exists_in_api_gateway():
    enum = Loader().load_service_model("apigateway", "service-2")["shapes"]["GatewayResponseType"]["enum"]
    assert [t for t in REQUIRED_GATEWAY_RESPONSES if t not in enum] == []
