"""Golden estimates of the kit's own synths (tests/cost/golden): the estimate of each stored
cloud assembly must stay what was reviewed. `--refresh-golden` synthesizes them again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ownllm.cost.estimate import estimate_cdk_out
from ownllm.settings import Settings, read_recorded_settings

from .golden.synths import VARIANTS, compact, estimate_path, read_bundle, unpack


@pytest.fixture(params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if request.config.getoption("--refresh-golden"):
        from .golden.refresh import refresh

        refresh(name)
    return name


def estimate_of(name: str, tmp_path: Path):
    out = unpack(read_bundle(name), tmp_path / name)
    return estimate_cdk_out(out, Settings.from_context(read_recorded_settings(out)))


def test_the_estimate_of_each_real_synth_is_the_reviewed_one(variant, tmp_path):
    assert compact(estimate_of(variant, tmp_path)) == json.loads(estimate_path(variant).read_text())


def test_every_real_synth_is_fully_priced_except_the_adapters_bucket_and_cli_layer(tmp_path):
    """The adapters upload adds an S3 bucket (storage depends on what is stored) and the AWS CLI
    layer of CDK's BucketDeployment: both could carry cost, so that estimate says it is incomplete."""
    unpriced = {name: [i.logical_id for i in estimate_of(name, tmp_path).unpriced] for name in VARIANTS}
    assert {name: ids for name, ids in unpriced.items() if ids} == {
        "adapters": ["LlmAdaptersAwsCliLayerE509977C", "LlmArtifactsBucket24A7E82A"]
    }
