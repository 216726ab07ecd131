"""Synthesize a golden variant with the real stacks and rewrite its golden files.

Run only through the explicit pytest option, then review the diff of *.estimate.json:

    .venv/bin/python -m pytest tests/cost/test_real_synths.py --refresh-golden
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from aws_cdk import App

from ownllm.artifacts import load_artifacts
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.settings import Settings, merge_context, write_recorded_settings
from stacks.ownllm_app import build_stacks

from .synths import VARIANTS, assembly_path, compact, estimate_path, pack

ROOT = Path(__file__).resolve().parents[3]


def synth(overrides: dict[str, object], adapters: bool, outdir: Path) -> Settings:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    settings = Settings.from_context(merge_context(context.get("ownllm"), overrides))
    artifacts_dir = ROOT / "model_artifacts"
    if adapters:
        artifacts_dir = outdir.parent / "artifacts"
        (artifacts_dir / "adapters" / "support-bot").mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "adapters" / "support-bot" / "adapter_config.json").write_text('{"r": 8}')
    flags = {k: v for k, v in context.items() if k != "ownllm"}
    app = App(outdir=str(outdir), context=flags)
    build_stacks(app, settings, load_artifacts(artifacts_dir))
    app.synth()
    write_recorded_settings(outdir, settings)
    return settings


def refresh(name: str) -> None:
    overrides, adapters = VARIANTS[name]
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(tmp) / "cdk.out"
        settings = synth(overrides, adapters, outdir)
        with gzip.open(assembly_path(name), "wt") as fh:
            json.dump(pack(outdir), fh, separators=(",", ":"), sort_keys=True)
        est = estimate_cdk_out(outdir, settings)
    estimate_path(name).write_text(json.dumps(compact(est), indent=1, sort_keys=True) + "\n")
