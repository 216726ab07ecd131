"""GPU facts per SageMaker instance type: how many GPUs and how much GPU memory.

The SageMaker SDK ships these facts (``image_uri_config/instance_gpu_info.json``); we read
that file directly instead of importing ``sagemaker.core`` (whose import costs ~1.4 s,
which would be paid on every synth and every CLI call). The SDK's table lacks the newer
families and has one typo (``ml.g5n.xlarge`` for ``ml.g5.xlarge``), so a small supplement
below fills the gaps, each line with its public source.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GIB = 1024**3

# Families whose GPUs the kit's engines (vLLM, LMI, TGI) support. p2 (K80) and p3 (V100)
# are left out: no bf16, and current engine images no longer target them.
SUPPORTED_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e")

# (gpu count, GiB per GPU). Sources: AWS EC2 instance type pages for G5 (A10G 24 GB),
# G6 (L4 24 GB), G6e (L40S 48 GB), P5e (H200 141 GB); shared/reference/economics.md.
_SUPPLEMENT: dict[str, tuple[int, int]] = {
    "ml.g5.xlarge": (1, 24),
    **{f"ml.g6.{s}": (1, 24) for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g6.12xlarge": (4, 24),
    "ml.g6.24xlarge": (4, 24),
    "ml.g6.48xlarge": (8, 24),
    **{f"ml.g6e.{s}": (1, 48) for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g6e.12xlarge": (4, 48),
    "ml.g6e.24xlarge": (4, 48),
    "ml.g6e.48xlarge": (8, 48),
    "ml.p5e.48xlarge": (8, 141),
}

# GPU instance families whose storage is local NVMe: the endpoint config must not set
# VolumeSizeInGB or KmsKeyId for them (SageMaker rejects it).
INSTANCE_STORE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e")

_INSTANCE_RE = re.compile(r"^ml\.([a-z0-9]+)\.(\d*x?large|metal)$")


@dataclass(frozen=True)
class GpuInfo:
    instance_type: str
    gpu_count: int
    gpu_memory_gib: float  # total over all GPUs

    @property
    def family(self) -> str:
        return family_of(self.instance_type)

    @property
    def memory_per_gpu_gib(self) -> float:
        return self.gpu_memory_gib / self.gpu_count


def family_of(instance_type: str) -> str:
    m = _INSTANCE_RE.match(instance_type)
    return m.group(1) if m else ""


def sdk_data_file(name: str) -> Path | None:
    """A file of the SageMaker SDK's image_uri_config, found without importing the SDK."""
    spec = importlib.util.find_spec("sagemaker")  # finds the namespace without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "core" / "image_uri_config" / name
        if candidate.is_file():
            return candidate
    return None


@cache
def gpu_table() -> dict[str, GpuInfo]:
    """Every supported GPU instance type, from the SDK's table plus the supplement."""
    table: dict[str, GpuInfo] = {}
    path = sdk_data_file("instance_gpu_info.json")
    if path is not None:
        for region_types in json.loads(path.read_text()).values():
            for itype, info in region_types.items():
                if family_of(itype) in SUPPORTED_FAMILIES:
                    table[itype] = GpuInfo(itype, int(info["Count"]), info["TotalGpuMemoryInMiB"] / 1024)
    for itype, (count, per_gpu) in _SUPPLEMENT.items():
        table.setdefault(itype, GpuInfo(itype, count, float(count * per_gpu)))
    return dict(sorted(table.items(), key=lambda kv: (kv[1].gpu_memory_gib, kv[0])))


def gpu_info(instance_type: str) -> GpuInfo | None:
    return gpu_table().get(instance_type)


def close_instance_types(instance_type: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(instance_type, list(gpu_table()), n=n, cutoff=0.5)


def is_instance_store(instance_type: str) -> bool:
    return family_of(instance_type) in INSTANCE_STORE_FAMILIES
