"""The deployed streaming path: API Gateway's STREAM transfer mode into the forwarder, which runs
`main:app` in uvicorn behind Lambda Web Adapter, from an asset bundled without Docker."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

from ownllm.forwarder import BOTOCORE_DATA_KEPT, BUNDLED_DISTRIBUTIONS
from ownllm.local.runtime import RuntimeServer
from ownllm.regions import SUPPORTED_REGIONS, WEB_ADAPTER_LAYER_REGIONS
from ownllm.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
MODEL = "Qwen/Qwen2.5-7B-Instruct"


def methods(t) -> dict[str, dict]:
    """Each method's properties by its resource's path under /v1 (CDK logical ids spell the path)."""
    by_id = {
        "ApiRestApiv1proxyANY": "{proxy+}",
        "ApiRestApiv1chatcompletionsANY": "chat/completions",
        "ApiRestApiv1completionsANY": "completions",
    }
    found = {}
    for lid, m in t.find_resources("AWS::ApiGateway::Method").items():
        [path] = [p for prefix, p in by_id.items() if lid.startswith(prefix)]
        found[path] = m["Properties"]
    return found


def forwarder(t) -> dict:
    [fn] = [f for lid, f in t.find_resources("AWS::Lambda::Function").items() if lid.startswith("ForwarderFunction")]
    return fn["Properties"]


def streaming_integration(timeout_ms: int) -> dict:
    return {
        "IntegrationHttpMethod": "POST",
        "ResponseTransferMode": "STREAM",
        "TimeoutInMillis": timeout_ms,
        "Type": "AWS_PROXY",
        "Uri": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":apigateway:",
                    {"Ref": "AWS::Region"},
                    # InvokeWithResponseStream, not the buffered /invocations.
                    ":lambda:path/2021-11-15/functions/",
                    {"Fn::GetAtt": ["ForwarderFunctionB3355642", "Arn"]},
                    "/response-streaming-invocations",
                ],
            ]
        },
    }


def test_the_completion_routes_stream_for_as_long_as_api_timeout_allows(default):
    found = methods(default.api)
    assert found["chat/completions"]["Integration"] == streaming_integration(300_000)
    assert found["completions"]["Integration"] == streaming_integration(300_000)


def test_every_other_route_streams_from_the_same_function_within_api_gateways_29_seconds(default):
    """GET /v1/models and the rest are buffered answers (app.handler), so they keep the 29 s budget."""
    assert methods(default.api)["{proxy+}"]["Integration"] == streaming_integration(29_000)


def test_every_method_keeps_the_api_key_the_usage_plan_and_the_key_authorizer(default):
    [authorizer] = default.api.find_resources("AWS::ApiGateway::Authorizer")
    found = methods(default.api)
    assert sorted(found) == ["chat/completions", "completions", "{proxy+}"]
    for path, props in found.items():
        assert (props["HttpMethod"], props["ApiKeyRequired"], props["AuthorizationType"]) == (
            "ANY",
            True,
            "CUSTOM",
        ), path
        assert props["AuthorizerId"] == {"Ref": authorizer}, path
    [plan] = default.api.find_resources("AWS::ApiGateway::UsagePlan").values()
    [stage] = default.api.find_resources("AWS::ApiGateway::Stage")
    assert plan["Properties"]["ApiStages"][0]["Stage"] == {"Ref": stage}


def test_api_timeout_sets_the_streaming_integrations_and_the_functions_timeouts(synth_app):
    s = synth_app((("api_timeout_s", 900),))
    found = methods(s.api)
    assert found["chat/completions"]["Integration"]["TimeoutInMillis"] == 900_000
    assert found["completions"]["Integration"]["TimeoutInMillis"] == 900_000
    assert found["{proxy+}"]["Integration"]["TimeoutInMillis"] == 29_000
    assert forwarder(s.api)["Timeout"] == 899


@pytest.mark.parametrize("value", [29, 901])
def test_an_api_timeout_outside_30_to_900_seconds_is_refused_naming_the_key(value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_context({"api_timeout_s": value})
    assert str(caught.value).splitlines()[1] == (
        f"  - api_timeout_s: {value} must be between 30 and 900 "
        "(a stream outlasts the buffered 29 s and may last 900 s at most)"
    )


def test_the_function_runs_main_app_through_lambda_web_adapter(default):
    fn = forwarder(default.api)
    assert fn["Handler"] == "run.sh"
    # The Web Adapter layer alone: Powertools and botocore come from the asset, not from a layer.
    assert fn["Layers"] == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":lambda:",
                    {"Ref": "AWS::Region"},
                    ":753240598075:layer:LambdaAdapterLayerArm64:27",
                ],
            ]
        }
    ]
    env = fn["Environment"]["Variables"]
    assert {k: v for k, v in env.items() if k.startswith(("AWS_", "PORT"))} == {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "AWS_LWA_READINESS_CHECK_PATH": "/health",
        "PORT": "8080",
        "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
    }
    # The forwarder's own contract is still there, for main.py and app.handler alike.
    assert (env["ENDPOINT_NAME"], env["ENGINE"]) == ("ownllm-llm", "vllm")


def test_the_web_adapter_layer_is_published_in_every_supported_region():
    assert sorted(set(SUPPORTED_REGIONS) - set(WEB_ADAPTER_LAYER_REGIONS)) == []


# -- the asset: what is deployed is what the tests run --------------------------------------


def asset_dir(synthesized) -> Path:
    key = forwarder(synthesized.api)["Code"]["S3Key"]
    return synthesized.outdir / f"asset.{key.removesuffix('.zip')}"


def normalized(name: str) -> str:
    """A distribution's name as pip compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {normalized(name): version for name, version in (d.split("==") for d in deps)}


def bundled_versions(folder: Path) -> dict[str, str]:
    found = {}
    for metadata in sorted(folder.glob("*.dist-info/METADATA")):
        fields = Parser().parsestr(metadata.read_text())
        found[normalized(fields["Name"])] = fields["Version"]
    return found


def test_the_asset_bundles_each_distribution_at_the_version_pinned_in_pyproject(default):
    folder = asset_dir(default)
    pins = pinned_versions()
    assert bundled_versions(folder) == {name: pins[name] for name in BUNDLED_DISTRIBUTIONS}
    assert bundled_versions(folder) == {
        "uvicorn": "0.54.0",
        "h11": "0.16.0",
        "click": "8.5.1",
        "aws-lambda-powertools": "3.37.0",
        "typing-extensions": "4.16.0",
        "botocore": "1.44.5",
        "jmespath": "1.1.0",
        "python-dateutil": "2.9.0.post0",
        "six": "1.17.0",
        "urllib3": "2.8.0",
    }
    for package in ("uvicorn", "h11", "click", "aws_lambda_powertools", "botocore", "jmespath", "dateutil", "urllib3"):
        assert (folder / package / "__init__.py").is_file(), package
    assert (folder / "six.py").is_file() and (folder / "typing_extensions.py").is_file()
    assert not list(folder.rglob("__pycache__")) and not list(folder.rglob("*.pyc"))


def test_the_asset_keeps_only_the_botocore_data_its_sagemaker_runtime_client_loads(default):
    data = asset_dir(default) / "botocore" / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(BOTOCORE_DATA_KEPT)
    assert sorted(BOTOCORE_DATA_KEPT) == [
        "_retry.json",
        "endpoints.json",
        "partitions.json",
        "sagemaker-runtime",
        "sdk-default-configuration.json",
    ]


def test_the_asset_fits_lambdas_limits_for_a_zip_package(default, tmp_path):
    """Lambda quotas: 250 MB unzipped (function and layers together), 50 MB zipped for a direct upload."""
    folder = asset_dir(default)
    files = [p for p in folder.rglob("*") if p.is_file()]
    unzipped = sum(p.stat().st_size for p in files)
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in files:
            zipped.write(path, path.relative_to(folder))
    assert unzipped < 250 * 1024 * 1024
    assert archive.stat().st_size < 50 * 1024 * 1024


def test_the_asset_holds_the_forwarder_and_an_executable_run_sh(default):
    folder = asset_dir(default)
    source = ROOT / "lambda" / "forwarder"
    for module in sorted(source.glob("*.py")):
        assert (folder / module.name).read_bytes() == module.read_bytes(), module.name
    assert os.access(folder / "run.sh", os.X_OK)


# What the python3.14 runtime's own folder (LAMBDA_RUNTIME_DIR, its PYTHONPATH) holds, and what the
# Powertools layer used to bring: decoys here, which fail on import, so the server only works when
# run.sh takes every one of them from the asset.
RUNTIME_MODULES = ("boto3", "botocore", "jmespath", "dateutil", "urllib3", "six", "aws_lambda_powertools")
DECOY = "raise ImportError('imported from the runtime, not from the asset')\n"
# run.sh's `python`, made to run a probe instead of uvicorn: the same flags before `-m`, the same
# environment and working directory, so the probe imports exactly what the server would.
PROBE_PYTHON = """#!/bin/bash
flags=()
while [ $# -gt 0 ] && [ "$1" != "-m" ]; do flags+=("$1"); shift; done
exec {python} "${{flags[@]}}" -c "$PROBE"
"""
# Where each module the function imports comes from, and which distribution version it is.
IMPORTS_PROBE = """
import importlib.metadata, json, os
found = {}
for module, dist in MODULES:
    file = __import__(module).__file__
    found[module] = [os.path.relpath(file, os.getcwd()), importlib.metadata.version(dist)]
print(json.dumps(found))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


class GatedEngine:
    """A vLLM engine for the local SageMaker runtime that sends its first chunk, then waits until
    the client has read it before it finishes: a buffered path would wait in vain."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.waited_in_vain = False

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        """InvokeEndpoint: a whole vLLM chat answer."""
        message = {"role": "assistant", "content": "Hello"}
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        answer = {"id": "x", "object": "chat.completion", "created": 1, "model": MODEL, "usage": usage}
        answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def stream(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, Iterator[bytes]]:
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

        def pieces() -> Iterator[bytes]:
            delta = {"role": "assistant", "content": "Hi"}
            yield f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode()
            self.waited_in_vain = not self.go_on.wait(10)
            done = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**chunk, 'choices': [done]})}\n\ndata: [DONE]\n\n".encode()

        return 200, {"Content-Type": "text/event-stream"}, pieces()


@dataclass
class Deployed:
    base_url: str
    env: dict[str, str]
    engine: GatedEngine
    folder: Path
    probe_bin: Path  # holds PROBE_PYTHON as `python`

    def python(self, code: str) -> str:
        """Run Python code through run.sh, in place of the server: its interpreter, flags and paths."""
        env = {**self.env, "PATH": f"{self.probe_bin}:/usr/bin:/bin", "PROBE": code}
        done = subprocess.run([str(self.folder / "run.sh")], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()


@pytest.fixture(scope="module")
def deployed_asset(default, tmp_path_factory):
    """run.sh, as Lambda Web Adapter starts it, in the bundled asset, with a Python outside this
    virtual environment and the runtime's PYTHONPATH (LAMBDA_RUNTIME_DIR) full of decoys: uvicorn,
    botocore, Powertools and what they import can only come from the asset. The forwarder talks
    to a local SageMaker runtime."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    folder = asset_dir(default)
    fn = forwarder(default.api)
    port = free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    probe_bin = tmp_path / "probe"
    probe_bin.mkdir()
    (probe_bin / "python").write_text(PROBE_PYTHON.format(python=bin_dir / "python"))
    (probe_bin / "python").chmod(0o755)
    runtime_dir = tmp_path / "runtime"
    for name in RUNTIME_MODULES:
        (runtime_dir / name).mkdir(parents=True)
        (runtime_dir / name / "__init__.py").write_text(DECOY)
    engine = GatedEngine()
    with RuntimeServer(engine) as sagemaker:
        env = {
            **{k: v for k, v in fn["Environment"]["Variables"].items() if isinstance(v, str)},
            "PORT": str(port),
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "PYTHONPATH": str(runtime_dir),  # the runtime's PYTHONPATH is LAMBDA_RUNTIME_DIR
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker.url,
        }
        server = subprocess.Popen(
            [str(folder / "run.sh")], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert server.poll() is None, server.communicate()[0].decode()
                    assert time.monotonic() < deadline, "run.sh did not start serving within 30 s"
                    time.sleep(0.2)
            yield Deployed(base, env, engine, folder, probe_bin)
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_run_sh_answers_the_readiness_check_and_buffered_routes_from_the_asset(deployed_asset):
    base, env = deployed_asset.base_url, deployed_asset.env
    assert get(f"{base}{env['AWS_LWA_READINESS_CHECK_PATH']}") == (200, {"status": "ok"})
    status, models = get(f"{base}/v1/models")
    assert status == 200
    assert [m["id"] for m in models["data"]] == [MODEL]


def test_run_sh_imports_botocore_powertools_and_what_they_import_from_the_asset_alone(deployed_asset):
    """Not the runtime's botocore nor a layer's Powertools: the files and versions the tests ran."""
    modules = {
        "uvicorn": "uvicorn",
        "h11": "h11",
        "click": "click",
        "aws_lambda_powertools": "aws-lambda-powertools",
        "typing_extensions": "typing-extensions",
        "botocore": "botocore",
        "jmespath": "jmespath",
        "dateutil": "python-dateutil",
        "six": "six",
        "urllib3": "urllib3",
    }
    found = json.loads(deployed_asset.python(f"MODULES = {sorted(modules.items())!r}\n{IMPORTS_PROBE}"))
    pins = pinned_versions()
    single_files = ("six", "typing_extensions")
    assert found == {
        module: [f"{module}.py" if module in single_files else f"{module}/__init__.py", pins[dist]]
        for module, dist in modules.items()
    }
    assert found["botocore"] == ["botocore/__init__.py", "1.44.5"]
    assert found["aws_lambda_powertools"] == ["aws_lambda_powertools/__init__.py", "3.37.0"]


def test_run_sh_answers_a_whole_chat_through_the_assets_own_botocore(deployed_asset):
    """InvokeEndpoint through the client the pruned botocore builds (its data: sagemaker-runtime only)."""
    request = urllib.request.Request(
        f"{deployed_asset.base_url}/v1/chat/completions",
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        status, answer = response.status, json.loads(response.read())
    assert (status, answer["choices"][0]["message"], answer["usage"]["total_tokens"]) == (
        200,
        {"role": "assistant", "content": "Hello"},
        4,
    )


def test_run_sh_streams_the_first_chunk_while_the_engine_is_still_generating(deployed_asset):
    base, engine = deployed_asset.base_url, deployed_asset.engine
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=20)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (200, "text/event-stream; charset=utf-8")
    received = b""
    while b'"Hi"' not in received:
        piece = response.read1()
        assert piece, f"the stream ended before the first chunk: {received!r}"
        received += piece
    engine.go_on.set()  # only now may the engine finish
    received += response.read()
    connection.close()
    assert engine.waited_in_vain is False
    events = [e.removeprefix("data: ") for e in received.decode().split("\n\n") if e]
    assert events[-1] == "[DONE]"
    assert [json.loads(e)["choices"][0]["delta"] for e in events[:-1] if json.loads(e)["choices"]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {},
    ]


def test_every_route_main_app_streams_has_a_streaming_method(default, deployed_asset):
    """main.py's STREAM_ROUTES, read from the asset: each /v1 one is a method with the long budget."""
    routes = json.loads(deployed_asset.python("import json, main; print(json.dumps(sorted(main.STREAM_ROUTES)))"))
    assert routes == ["/chat/completions", "/completions", "/v1/chat/completions", "/v1/completions"]
    streaming = {p for p, m in methods(default.api).items() if m["Integration"]["TimeoutInMillis"] == 300_000}
    assert {r.removeprefix("/v1/") for r in routes if r.startswith("/v1/")} == streaming


def test_a_second_synth_into_the_same_cdk_out_reuses_the_staged_forwarder_asset(tmp_path, monkeypatch, new_app):
    """The asset hash is the bundle's fingerprint, known before bundling, so CDK finds the asset
    already staged and skips copying 10 MB of packages again (AssetHashType.OUTPUT would re-bundle)."""
    import aws_cdk

    import stacks.api
    from ownllm.artifacts import ModelArtifacts
    from stacks.ownllm_app import build_stacks

    bundled: list[str] = []
    real = stacks.api.bundle

    def counting(source, distributions, out):
        bundled.append(str(out))
        real(source, distributions, out)

    monkeypatch.setattr(stacks.api, "bundle", counting)
    settings = Settings.from_context({})
    for _ in range(2):
        aws_cdk.AssetStaging.clear_asset_hash_cache()  # as a new `cdk synth` process starts
        app = new_app(str(tmp_path))
        build_stacks(app, settings, ModelArtifacts(ROOT / "model_artifacts"))
        app.synth()
    assert len(bundled) == 1


def test_the_bundle_fingerprint_follows_the_source_and_ignores_byte_code(tmp_path):
    from ownllm.forwarder import bundle_fingerprint

    (tmp_path / "main.py").write_text("app = None\n")
    first = bundle_fingerprint(tmp_path, ("uvicorn",))
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    assert bundle_fingerprint(tmp_path, ("uvicorn",)) == first
    (tmp_path / "main.py").write_text("app = 1\n")
    changed = bundle_fingerprint(tmp_path, ("uvicorn",))
    assert changed != first
    assert bundle_fingerprint(tmp_path, ("uvicorn", "h11")) != changed


def test_run_sh_keeps_the_adapters_idle_connection_as_long_as_the_local_environments_do():
    """uvicorn's default 5 s keep-alive would close the connection the adapter pools between
    invocations; run.sh and the local environments keep it ASGI_KEEP_ALIVE_S."""
    from ownllm.forwarder import ASGI_KEEP_ALIVE_S, FORWARDER_DIR
    from ownllm.local.lambda_pool import KEEP_ALIVE_S

    flags = re.findall(r"--timeout-keep-alive=(\d+)", (FORWARDER_DIR / "run.sh").read_text())
    assert [int(f) for f in flags] == [ASGI_KEEP_ALIVE_S] == [KEEP_ALIVE_S]
