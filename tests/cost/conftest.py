"""Shared fixtures: settings built like the CDK app builds them, and a tmp cdk.out writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ownllm.settings import Settings

from .builders import write_cdk_out


def make_settings(**overrides: Any) -> Settings:
    """Validated settings; tests name only what they assume (e.g. 192 output tokens = 4.8 s at 40 tokens/s,
    one instance 320 output tokens/s)."""
    base: dict[str, Any] = {
        "instance_type": "ml.g5.4xlarge",
        "requests_per_day": 1000,
        "avg_input_tokens": 500,
        "avg_output_tokens": 192,
        "generation_tokens_per_s": 40,
        # Calibrated figures, so hand-worked bills do not move with the performance model.
        "instance_tokens_per_s": 320,
    }
    base.update(overrides)
    return Settings.from_context(base)


@pytest.fixture(autouse=True)
def no_region_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment-agnostic stacks are priced in AWS_REGION / CDK_DEFAULT_REGION when set; the
    tests' hand-worked bills are us-east-1's, whatever the machine running them says."""
    from ownllm.cost.assembly import REGION_VARIABLES

    for name in REGION_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings() -> Callable[..., Settings]:
    return make_settings


@pytest.fixture
def cdk_out(tmp_path: Path) -> Callable[..., Path]:
    counter = {"n": 0}

    def write(stacks: dict[str, dict[str, Any]], **kw: Any) -> Path:
        counter["n"] += 1
        return write_cdk_out(tmp_path / f"cdk.out.{counter['n']}", stacks, **kw)

    return write


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--refresh-golden",
        action="store_true",
        help="synthesize the golden variants again and rewrite tests/cost/golden (review the diff)",
    )
