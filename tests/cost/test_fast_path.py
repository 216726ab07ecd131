"""The synth hook stays cheap: no CDK, no boto3, rich only when printing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_the_hook_loads_neither_cdk_nor_boto3_nor_rich():
    loaded = _modules_after("import ownllm.cost.synth_hook, ownllm.cost.estimate")
    assert not {m for m in loaded if m.split(".")[0] in ("aws_cdk", "boto3", "botocore", "jsii", "rich")}


def test_no_module_under_ownllm_cost_imports_the_cdk():
    every_module = (
        "import pkgutil, importlib, ownllm.cost; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(ownllm.cost.__path__, 'ownllm.cost.')]"
    )
    loaded = _modules_after(every_module)
    assert {"ownllm.cost.estimate", "ownllm.cost.pricers.sagemaker", "ownllm.cost.diff"} <= loaded
    assert not {m for m in loaded if m.split(".")[0] in ("aws_cdk", "constructs", "jsii")}
