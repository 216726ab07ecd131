"""The request path's contract (lambda/forwarder/contract.py) is the one place its facts live:
the settings, the stacks, the cost estimate, the local stack and every per-engine table read
it, so a fact changed or removed there changes everywhere, and a copy that drifts is caught."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from ownllm import engines
from ownllm.artifacts import ModelArtifacts
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.model import DAYS_PER_MONTH
from ownllm.forwarder import contract, custom_metrics, forwarder_module, web_adapter_environment
from ownllm.local import cli as local_cli
from ownllm.local import gateway
from ownllm.local.standin import ENGINES as STAND_IN_ENGINES
from ownllm.local.upstream import ENGINES as UPSTREAM_ENGINES
from ownllm.perf.predict import ENGINES as PERF_ENGINES
from ownllm.settings import ENGINES, Settings, SettingsError
from stacks.ownllm_app import build_stacks

ROOT = Path(__file__).resolve().parents[2]
C = contract()


def _lambda_environment(template) -> dict[str, str]:
    [fn] = [
        f["Properties"]
        for lid, f in template.find_resources("AWS::Lambda::Function").items()
        if lid.startswith("ForwarderFunction")
    ]
    return fn["Environment"]["Variables"]


def test_the_settings_accept_exactly_the_contracts_engines():
    assert ENGINES == C.ENGINES == ("vllm", "lmi", "tgi")
    with pytest.raises(SettingsError) as raised:
        Settings.from_context({"engine": "sglang"})
    assert "engine: 'sglang' is not supported; accepted: vllm, lmi, tgi" in str(raised.value)


def test_every_per_engine_table_has_exactly_the_contracts_engines():
    wire = forwarder_module("wire")
    tables = {
        "perf.predict.ENGINES": tuple(PERF_ENGINES),
        "engines.ENGINE_IMAGES": tuple(engines.ENGINE_IMAGES),
        "engines.PRECISION_ENV": tuple(engines.PRECISION_ENV),
        "wire.WIRES": tuple(wire.WIRES),
        "local.standin.ENGINES": STAND_IN_ENGINES,
        "local.upstream.ENGINES": UPSTREAM_ENGINES,
    }
    assert {name: sorted(keys) for name, keys in tables.items()} == {name: sorted(C.ENGINES) for name in tables}


def test_ownllm_local_offers_the_contracts_engines_and_limits(capsys):
    parser = argparse.ArgumentParser(prog="ownllm")
    local_cli.register(parser.add_subparsers())
    assert [parser.parse_args(["local", "--engine", e]).engine for e in C.ENGINES] == list(C.ENGINES)
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "--engine", "sglang"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ownllm local: error: argument --engine: invalid choice: 'sglang' (choose from 'vllm', 'lmi', 'tgi')"
    )
    assert gateway.INTEGRATION_TIMEOUT_S == C.API_GATEWAY_TIMEOUT_S == 29
    assert gateway.PAYLOAD_LIMIT_BYTES == C.API_GATEWAY_PAYLOAD_BYTES == 10 * 1024 * 1024


def test_the_settings_defaults_are_the_forwarders_defaults():
    s = Settings.from_context({})
    d = C.DEFAULTS
    assert (s.max_request_bytes, s.max_input_tokens, s.max_total_tokens, s.default_max_tokens) == (
        d.max_request_bytes,
        d.max_input_tokens,
        d.max_total_tokens,
        d.default_max_tokens,
    )


def test_the_stacks_lambda_environment_is_exactly_the_contracts_names(default):
    """Besides Lambda Web Adapter's own variables, the function gets contract names only: all of
    them but the upstream budget (left to its defaults) and the inference component (scale to zero only)."""
    env = _lambda_environment(default.api)
    forwarder_names = set(env) - set(web_adapter_environment())
    assert forwarder_names <= set(C.ENVIRONMENT)
    assert set(C.ENVIRONMENT) - forwarder_names == {
        C.INFERENCE_COMPONENT_NAME,
        C.UPSTREAM_CONNECT_TIMEOUT_S,
        C.UPSTREAM_READ_TIMEOUT_S,
        C.UPSTREAM_MAX_ATTEMPTS,
    }
    assert (env[C.POWERTOOLS_SERVICE_NAME], env[C.POWERTOOLS_METRICS_NAMESPACE]) == ("ownllm-forwarder", "ownllm")


def test_removing_an_error_class_from_the_contract_removes_its_priced_metric(monkeypatch, new_app):
    """5 metrics always, and one Errors metric per class: 13 classes -> at most 18; without
    "starting", 17, priced at $0.30 per metric-month: 17 x 0.30 / 30.4167 = $0.16767/day at most."""
    assert custom_metrics() == {"always": 5, "at_most": 18}
    monkeypatch.setattr(C, "ERROR_CLASSES", tuple(c for c in C.ERROR_CLASSES if c != "starting"))
    assert custom_metrics() == {"always": 5, "at_most": 17}

    settings = Settings.from_context(json.loads((ROOT / "cdk.json").read_text())["context"]["ownllm"])
    app = new_app()
    stacks = build_stacks(app, settings, ModelArtifacts(ROOT / "model_artifacts"))
    outdir = app.synth().directory
    functions = Template.from_stack(stacks.api).find_resources("AWS::Lambda::Function")
    [fn] = [f for lid, f in functions.items() if lid.startswith("ForwarderFunction")]
    assert fn["Metadata"]["ownllm:custom-metrics"] == {"always": 5, "at_most": 17}
    [item] = [i for i in estimate_cdk_out(outdir, settings).items if i.logical_id.endswith("/CustomMetrics")]
    [metrics] = item.components
    assert metrics.max_quantity_per_day == pytest.approx(17 / DAYS_PER_MONTH)
    assert item.max_daily_usd == pytest.approx(17 * 0.30 / DAYS_PER_MONTH)

    # ... and the forwarder refuses to emit the class the stacks no longer price.
    errors = forwarder_module("errors")
    with pytest.raises(ValueError, match="error_class 'starting' is not one of ERROR_CLASSES"):
        errors.ApiError(503, "x", error_class="starting")


def test_a_forwarder_module_loaded_by_path_reads_the_loaded_contract_and_leaves_no_top_level_names(monkeypatch):
    """errors.py does `import contract` as in the Lambda; loaded by path, that is the contract
    the tools read, and `contract` and `wire` are not left behind as top-level module names."""
    monkeypatch.delitem(sys.modules, "ownllm_forwarder_errors", raising=False)
    before = {name: sys.modules.get(name) for name in ("contract", "wire")}
    errors = forwarder_module("errors")
    assert {name: sys.modules.get(name) for name in ("contract", "wire")} == before
    assert errors.contract is C
    assert errors.error_message is forwarder_module("wire").error_message
