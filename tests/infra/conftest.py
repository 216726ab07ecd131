"""Synthesize the real app for given settings, once per distinct settings (jsii is slow)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from ownllm.artifacts import ModelArtifacts, load_artifacts
from ownllm.settings import Settings
from stacks.ownllm_app import OwnLlmStacks, build_stacks

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synthesized:
    settings: Settings
    stacks: OwnLlmStacks
    outdir: Path
    serving: Template
    api: Template
    monitoring: Template

    def templates(self) -> dict[str, Template]:
        return {"serving": self.serving, "api": self.api, "monitoring": self.monitoring}


def make_app(outdir: str | None = None, **context) -> App:
    """An App with the project's feature flags, as `cdk synth` would make it."""
    flags = {k: v for k, v in CDK_CONTEXT.items() if k != "ownllm"}
    return App(outdir=outdir or tempfile.mkdtemp(prefix="ownllm-synth-"), context={**flags, **context})


def synth(overrides: tuple[tuple[str, object], ...] = (), artifacts_dir: str | None = None) -> Synthesized:
    return _synth(tuple(sorted(overrides)), artifacts_dir)


@lru_cache(maxsize=16)
def _synth(overrides: tuple[tuple[str, object], ...], artifacts_dir: str | None) -> Synthesized:
    base = dict(CDK_CONTEXT["ownllm"])
    base.update(dict(overrides))
    settings = Settings.from_context(base)
    artifacts = load_artifacts(Path(artifacts_dir)) if artifacts_dir else ModelArtifacts(ROOT / "model_artifacts")
    app = make_app()
    stacks = build_stacks(app, settings, artifacts)
    assembly = app.synth()
    return Synthesized(
        settings,
        stacks,
        Path(assembly.directory),
        Template.from_stack(stacks.serving),
        Template.from_stack(stacks.api),
        Template.from_stack(stacks.monitoring),
    )


@pytest.fixture(scope="session")
def synth_app():
    """synth_app(overrides=(("key", value), ...), artifacts_dir=None) -> Synthesized (cached)."""
    return synth


@pytest.fixture(scope="module")
def default(synth_app):
    return synth_app()


@pytest.fixture(scope="session")
def new_app():
    """new_app(**context) -> App with the project's feature flags."""
    return make_app
