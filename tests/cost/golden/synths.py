"""Golden estimates of the kit's own synths: every infra test variant, and one with adapters.

Each variant is kept as two files next to the hand-worked bills (tests/cost/test_golden.py):
`<name>.assembly.json.gz`, the manifest, templates and recorded settings that `cdk synth`
wrote, and `<name>.estimate.json`, the estimate's lines as quantities and prices. Tests
re-price the stored assembly and compare; only the explicit option
`pytest tests/cost/test_real_synths.py --refresh-golden` synthesizes again and rewrites both.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from ownllm.cost.model import Estimate
from ownllm.settings import SETTINGS_FILE

HERE = Path(__file__).resolve().parent

# name -> settings overrides (the same ones tests/infra synthesizes), and whether a LoRA adapter
# rides along in model_artifacts/adapters.
VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    "default": ({}, False),
    "adapters": ({}, True),
    "business-hours": ({"active_hours": "08:00-20:00", "max_instances": 4, "timezone": "Europe/Berlin"}, False),
    "alarm-email": ({"alarm_email": "ops@example.com"}, False),
    "no-apigw-role": ({"apigw_cloudwatch_role": False}, False),
    "lmi-g6e": ({"engine": "lmi", "instance_type": "ml.g6e.12xlarge"}, False),
    "tgi-32b": ({"engine": "tgi", "instance_type": "ml.g5.12xlarge", "model_id": "Qwen/Qwen2.5-32B-Instruct"}, False),
    "hf-token": ({"hf_token_secret_name": "hf/token"}, False),
    "g5-12xlarge": ({"instance_type": "ml.g5.12xlarge"}, False),
    "log-retention-7": ({"log_retention_days": 7}, False),
    "budget-60": ({"max_daily_usd": 60}, False),
    "two-fixed": ({"min_instances": 2, "max_instances": 2, "instance_count": 2}, False),
    "s3-weights": ({"model_id": "s3://my-weights/llama/8b/", "model_size_b": 8}, False),
    "eu-west-1": ({"region": "eu-west-1"}, False),
    "scale-to-zero": ({"min_instances": 0}, False),
    "scale-to-zero-business-hours": ({"min_instances": 0, "active_hours": "08:00-20:00"}, False),
}


def assembly_path(name: str) -> Path:
    return HERE / f"{name}.assembly.json.gz"


def estimate_path(name: str) -> Path:
    return HERE / f"{name}.estimate.json"


def pack(outdir: Path) -> dict[str, Any]:
    """The files of a cloud assembly the estimate reads, as one JSON document."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    files = {
        props["templateFile"]: json.loads((outdir / props["templateFile"]).read_text())
        for artifact in manifest["artifacts"].values()
        if artifact.get("type") == "aws:cloudformation:stack"
        for props in [artifact["properties"]]
    }
    files[SETTINGS_FILE] = json.loads((outdir / SETTINGS_FILE).read_text())
    return {"manifest.json": manifest, **files}


def unpack(bundle: dict[str, Any], outdir: Path) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    for name, doc in bundle.items():
        (outdir / name).write_text(json.dumps(doc))
    return outdir


def read_bundle(name: str) -> dict[str, Any]:
    with gzip.open(assembly_path(name), "rt") as fh:
        bundle: dict[str, Any] = json.load(fh)
    return bundle


def compact(est: Estimate) -> dict[str, Any]:
    """What a golden file pins: each line's category and its components' quantities and prices."""
    return {
        "complete": est.complete,
        "region": est.region,
        "daily_usd": round(est.daily_usd, 6),
        "lines": {
            f"{i.stack}/{i.logical_id}": {
                "category": i.category,
                "daily_usd": None if i.daily_usd is None else round(i.daily_usd, 6),
                "components": [[c.name, c.unit, round(c.quantity_per_day, 9), c.unit_usd] for c in i.components],
            }
            for i in est.items
        },
    }
