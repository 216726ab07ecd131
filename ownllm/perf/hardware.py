"""GPU facts: per-GPU-model constants (one table, with sources) and the hardware of an instance type.

GPU count and memory per SageMaker instance type come from ownllm.gpus (the SageMaker SDK's
instance_gpu_info.json plus its supplement); this module adds what a GPU model can do.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ownllm.gpus import family_of, gpu_info, gpu_table

GIB = 1024**3


class HardwareError(ValueError):
    """An unknown instance type or GPU name; the message lists what is accepted."""


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_gib: float  # nominal
    visible_gib: float  # what the driver reports as total (nvidia-smi); the engine budgets from this
    bandwidth_gbs: float  # HBM/GDDR bandwidth, GB/s (1e9 bytes)
    bf16_tflops: float  # dense tensor-core bf16 (fp16 on T4, which has no bf16)
    fp8_tflops: float  # dense fp8 tensor-core; 0 where the GPU has none
    cuda_fp16_tflops: float  # non-tensor fp16 (CUDA cores): where int4/int8 weights are unpacked
    bf16: bool  # native bf16 support
    link: str  # "nvlink" or "pcie": how the GPUs of one instance talk
    link_gbs: float  # per-GPU bandwidth of that link, one direction, GB/s
    source: str


# Dense figures (NVIDIA's "with sparsity" figures are halved). Non-tensor fp16 (where int4/int8
# weights are unpacked): fp16 runs at the fp32 rate on GA102/AD10x (A10G 31.2 as the A10 datasheet's
# FP32; L4 30.3, fpsbench.com L4 spec "FP16 30.29 TFLOPS (1:1)"; L40S 91.6, NVIDIA L40S datasheet FP32),
# 2x fp32 on Turing (T4: 2 x 8.1) and Hopper (H100/H200 SXM 133.8, glennklockwood.com/garden/processors/h100),
# 4x on GA100 (A100 78: NVIDIA A100 whitepaper table 1, quoted on forums.developer.nvidia.com/t/218102).
# Visible memory: nvidia-smi totals as commonly reported (T4 15360 MiB, A10G 23028, L4 23034, L40S
# 46068, A100 40960/81920, H100 81559, H200 143771); the SDK's per-instance MiB (ownllm.gpus) is used
# where it is lower.
GPUS: dict[str, GpuSpec] = {
    "t4": GpuSpec(
        "T4",
        16,
        15.0,
        320,
        65,
        0,
        16.2,
        False,
        "pcie",
        16,
        "NVIDIA T4 datasheet: 16 GB GDDR6, 320 GB/s, 65 TFLOPS fp16 mixed precision, PCIe Gen3 x16",
    ),
    "a10g": GpuSpec(
        "A10G",
        24,
        22.49,
        600,
        70,
        0,
        31.2,
        True,
        "pcie",
        32,
        "Baseten 'A10 vs A10G'; cli99/llm-analysis gpu_configs/a10g-pcie-24gb.json: 24 GB, 600 GB/s; ~70 TFLOPS bf16 dense (uncertain)",
    ),
    "l4": GpuSpec(
        "L4",
        24,
        22.49,
        300,
        121,
        242,
        30.3,
        True,
        "pcie",
        32,
        "NVIDIA L4 datasheet: 24 GB, 300 GB/s, 242/485 TFLOPS bf16/fp8 with sparsity (halved), PCIe Gen4 x16",
    ),
    "l40s": GpuSpec(
        "L40S",
        48,
        44.99,
        864,
        362,
        733,
        91.6,
        True,
        "pcie",
        32,
        "NVIDIA L40S datasheet: 48 GB, 864 GB/s, 733/1466 TFLOPS bf16/fp8 with sparsity (halved), PCIe Gen4 x16 64 GB/s bidirectional",
    ),
    "a100-40gb": GpuSpec(
        "A100-40GB",
        40,
        40.0,
        1555,
        312,
        0,
        78,
        True,
        "nvlink",
        300,
        "NVIDIA A100 datasheet; hahnyuan/LLM-Viewer hardwares/hardware_params.py: 1,555 GB/s, 312 TFLOPS bf16; NVLink 600 GB/s bidirectional",
    ),
    "a100-80gb": GpuSpec(
        "A100-80GB",
        80,
        80.0,
        2039,
        312,
        0,
        78,
        True,
        "nvlink",
        300,
        "NVIDIA A100 datasheet; hahnyuan/LLM-Viewer hardwares/hardware_params.py: 2,039 GB/s, 312 TFLOPS bf16; NVLink 600 GB/s bidirectional",
    ),
    "h100": GpuSpec(
        "H100",
        80,
        79.65,
        3350,
        989,
        1979,
        133.8,
        True,
        "nvlink",
        450,
        "NVIDIA H100 SXM datasheet; cli99/llm-analysis h100-sxm-80gb.json: 3,350 GB/s, 989/1,979 TFLOPS bf16/fp8 dense; NVLink 900 GB/s",
    ),
    "h200": GpuSpec(
        "H200",
        141,
        140.4,
        4800,
        989,
        1979,
        133.8,
        True,
        "nvlink",
        450,
        "NVIDIA H200 datasheet: 141 GB HBM3e, 4.8 TB/s, same tensor cores as H100 SXM; NVLink 900 GB/s",
    ),
    # Not on SageMaker: only for published PCIe tensor-parallel points (calibration). No peer access between
    # GeForce cards, so NCCL goes through the host as on instances without it.
    "rtx-4090": GpuSpec(
        "RTX-4090",
        24,
        23.99,
        1008,
        165.15,
        330.3,
        82.6,
        True,
        "pcie",
        32,
        "waredb.com/processor/nvidia-geforce-rtx-4090: 24 GB GDDR6X, 1,008 GB/s, 165.15/330.3 TFLOPS bf16/fp8 dense, 82.6 FP32/FP16; PCIe 4.0 x16",
    ),
}

# SageMaker instance family -> GPU model. Source: AWS EC2 accelerated computing instance pages
# (G4dn T4, G5 A10G, G6 L4, G6e L40S, P4d A100 40GB, P4de A100 80GB, P5 H100, P5e/P5en H200).
FAMILY_GPU: dict[str, str] = {
    "g4dn": "t4",
    "g5": "a10g",
    "g6": "l4",
    "g6e": "l40s",
    "p4d": "a100-40gb",
    "p4de": "a100-80gb",
    "p5": "h100",
    "p5e": "h200",
    "p5en": "h200",
}


@dataclass(frozen=True)
class Hardware:
    gpu: GpuSpec
    count: int
    memory_per_gpu_gib: float  # what the engine can budget from, per GPU
    instance_type: str = ""

    @property
    def label(self) -> str:
        return f"{self.count} x {self.gpu.name}" + (f" ({self.instance_type})" if self.instance_type else "")


def gpu_names() -> list[str]:
    return list(GPUS)


def for_gpu(name: str, count: int = 1) -> Hardware:
    key = name.strip().lower()
    spec = GPUS.get(key)
    if spec is None:
        raise HardwareError(f"--gpu {name!r}: unknown GPU; accepted: {', '.join(GPUS)}")
    if count < 1 or count > 8:
        raise HardwareError(f"--gpu-count {count}: must be 1 to 8 (GPUs of one instance)")
    return Hardware(spec, count, spec.visible_gib)


def for_instance(instance_type: str) -> Hardware:
    info = gpu_info(instance_type)
    gpu_key = FAMILY_GPU.get(family_of(instance_type))
    if info is None or gpu_key is None:
        close = difflib.get_close_matches(instance_type, list(gpu_table()), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HardwareError(
            f"--instance-type {instance_type!r}: not a known GPU instance type (families {', '.join(FAMILY_GPU)}){hint}"
        )
    spec = GPUS[gpu_key]
    return Hardware(spec, info.gpu_count, min(info.memory_per_gpu_gib, spec.visible_gib), instance_type)


def gpu_instance_types() -> list[str]:
    """Every instance type whose GPU this model knows."""
    return [t for t in gpu_table() if FAMILY_GPU.get(family_of(t))]
