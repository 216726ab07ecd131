"""The deployed streaming path: API Gateway's STREAM transfer mode into the forwarder, which runs
`main:app` in uvicorn behind Lambda Web Adapter, from an asset bundled without Docker."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

from ownllm.forwarder import ASGI_SERVER_DISTRIBUTIONS
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
    assert fn["Layers"][1] == {
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


def pinned_versions() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def test_the_asset_bundles_the_asgi_server_at_the_versions_pinned_in_pyproject(default):
    folder = asset_dir(default)
    bundled = {}
    for metadata in sorted(folder.glob("*.dist-info/METADATA")):
        fields = Parser().parsestr(metadata.read_text())
        bundled[fields["Name"].lower()] = fields["Version"]
    pins = pinned_versions()
    assert bundled == {name: pins[name] for name in ASGI_SERVER_DISTRIBUTIONS}
    assert bundled == {"uvicorn": "0.54.0", "h11": "0.16.0", "click": "8.5.1"}
    for package in ("uvicorn", "h11", "click"):
        assert (folder / package / "__init__.py").is_file(), package
    assert not list(folder.rglob("__pycache__")) and not list(folder.rglob("*.pyc"))


def test_the_asset_holds_the_forwarder_and_an_executable_run_sh(default):
    folder = asset_dir(default)
    source = ROOT / "lambda" / "forwarder"
    for module in sorted(source.glob("*.py")):
        assert (folder / module.name).read_bytes() == module.read_bytes(), module.name
    assert os.access(folder / "run.sh", os.X_OK)


# botocore and its imports (the python3.14 runtime), aws_lambda_powertools and its imports (the layer).
RUNTIME_AND_LAYER_MODULES = (
    "botocore",
    "jmespath",
    "dateutil",
    "urllib3",
    "six.py",
    "aws_lambda_powertools",
    "typing_extensions.py",
)


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
        return 500, {}, b"{}"

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

    def python(self, code: str) -> str:
        """Run Python code in the asset as run.sh runs the server (same interpreter and paths)."""
        env = {**self.env, "PYTHONPATH": f"/opt/python:{self.env['LAMBDA_RUNTIME_DIR']}"}
        done = subprocess.run(["python", "-c", code], cwd=self.folder, env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()


@pytest.fixture(scope="module")
def deployed_asset(default, tmp_path_factory):
    """run.sh, as Lambda Web Adapter starts it, in the bundled asset, with a Python outside this
    virtual environment: botocore and Powertools come from LAMBDA_RUNTIME_DIR (as the runtime and
    the layer provide them), uvicorn, h11 and click only from the asset. The forwarder talks to a
    local SageMaker runtime."""
    tmp_path = tmp_path_factory.mktemp("deployed")
    folder = asset_dir(default)
    fn = forwarder(default.api)
    port = free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    site_packages = Path(next(p for p in sys.path if p.endswith("site-packages")))
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    for name in RUNTIME_AND_LAYER_MODULES:
        (runtime_dir / name).symlink_to(site_packages / name)
    engine = GatedEngine()
    with RuntimeServer(engine) as sagemaker:
        env = {
            **{k: v for k, v in fn["Environment"]["Variables"].items() if isinstance(v, str)},
            "PORT": str(port),
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "PYTHONPATH": "",
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
            yield Deployed(base, env, engine, folder)
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_run_sh_answers_the_readiness_check_and_buffered_routes_from_the_asset(deployed_asset):
    base, env = deployed_asset.base_url, deployed_asset.env
    assert get(f"{base}{env['AWS_LWA_READINESS_CHECK_PATH']}") == (200, {"status": "ok"})
    status, models = get(f"{base}/v1/models")
    assert status == 200
    assert [m["id"] for m in models["data"]] == [MODEL]


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
