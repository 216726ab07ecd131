"""Performance model: what a GPU instance can serve for a given open model, from first principles,
calibrated on published measurements. Pure Python; no CDK import."""

from ownllm.perf.hardware import Hardware, for_gpu, for_instance
from ownllm.perf.models import ModelArch, resolve
from ownllm.perf.predict import Efficiency, Prediction, calibrated, predict, saturation

__all__ = [
    "Efficiency",
    "Hardware",
    "ModelArch",
    "Prediction",
    "calibrated",
    "for_gpu",
    "for_instance",
    "predict",
    "resolve",
    "saturation",
]
