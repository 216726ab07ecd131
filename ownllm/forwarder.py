"""The forwarder Lambda's contract with the tools: the environment the deployed stack
(stacks/api.py) and the local stack (ownllm/local) both give lambda/forwarder/app.py, and the
forwarder's own dependency-free modules (contract, wire, errors, tokens), loaded by path the
way the Lambda loads them, so their facts are read, never copied."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings reads the contract through this module: no import cycle at run time
    from ownllm.settings import Settings

FORWARDER_DIR = Path(__file__).resolve().parent.parent / "lambda" / "forwarder"
# Modules of the asset that import nothing but the standard library and, by their top-level
# names as the Lambda imports them, the asset modules listed with them.
_DEPENDENCY_FREE: dict[str, tuple[str, ...]] = {
    "contract": (),
    "wire": (),
    "errors": ("contract", "wire"),
    "tokens": (),
}


def load_module(module_name: str, path: Path) -> ModuleType:
    """Import one Python file under a name of our choosing (a Lambda asset's files are top-level
    modules with names such as `app` that other code uses too)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def forwarder_module(name: str) -> ModuleType:
    """lambda/forwarder/<name>.py as a module, under a name of its own (`ownllm_forwarder_<name>`).

    The asset modules it imports (`import contract`) are its loaded siblings: they are put under
    their top-level names only while it is executed."""
    if name not in _DEPENDENCY_FREE:
        raise ValueError(f"{name!r} is not one of the forwarder's dependency-free modules {tuple(_DEPENDENCY_FREE)}")
    qualified = f"ownllm_forwarder_{name}"
    loaded = sys.modules.get(qualified)
    if loaded is not None:
        return loaded
    siblings = {dependency: forwarder_module(dependency) for dependency in _DEPENDENCY_FREE[name]}
    shadowed = {dependency: sys.modules.get(dependency) for dependency in siblings}
    sys.modules.update(siblings)
    try:
        return load_module(qualified, FORWARDER_DIR / f"{name}.py")
    finally:
        for dependency, previous in shadowed.items():
            if previous is None:
                del sys.modules[dependency]
            else:
                sys.modules[dependency] = previous


def contract() -> ModuleType:
    """lambda/forwarder/contract.py: engines, environment names and defaults, limits, error
    classes and metric names."""
    return forwarder_module("contract")


_CONTRACT = contract()
SERVICE_NAME: str = _CONTRACT.SERVICE_NAME
METRICS_NAMESPACE: str = _CONTRACT.METRICS_NAMESPACE


def forwarder_environment(
    settings: Settings,
    *,
    endpoint_name: str,
    adapters: tuple[str, ...] = (),
    model_name: str | None = None,
    inference_component: str | None = None,
) -> dict[str, str]:
    """inference_component: the component's name when the model runs as one (scale to zero)."""
    s, c = settings, contract()
    env = {
        c.ENDPOINT_NAME: endpoint_name,
        c.ENGINE: s.engine,
        c.MODEL_NAME: model_name or s.served_model_name,
        c.ADAPTERS: ",".join(adapters),
        c.MAX_REQUEST_BYTES: str(s.max_request_bytes),
        c.MAX_INPUT_TOKENS: str(s.max_input_tokens),
        # The forwarder reads MAX_TOTAL_TOKENS only to cap max_tokens at MAX_TOTAL_TOKENS -
        # MAX_INPUT_TOKENS (lambda/forwarder/config.py): passing max_input_tokens + the cap makes
        # that cap Settings.max_output_tokens, which also keeps an answer within the Lambda timeout.
        c.MAX_TOTAL_TOKENS: str(s.max_input_tokens + s.max_output_tokens),
        c.DEFAULT_MAX_TOKENS: str(min(s.default_max_tokens, s.max_output_tokens)),
        # stream: true may run until the function's longer timeout: its own, higher cap.
        c.MAX_STREAM_TOKENS: str(s.max_stream_output_tokens),
        c.LOG_PROMPTS: "false",
        c.POWERTOOLS_SERVICE_NAME: c.SERVICE_NAME,
        c.POWERTOOLS_METRICS_NAMESPACE: c.METRICS_NAMESPACE,
    }
    if inference_component:
        env[c.INFERENCE_COMPONENT_NAME] = inference_component
    return env


def custom_metrics() -> dict[str, int]:
    """The custom metrics the forwarder emits as EMF, as the stack declares them for the cost
    estimate (ownllm/cost/pricers/functions.py): `always` on every request, up to `at_most` once
    every error class has occurred (an Errors metric per ErrorClass dimension value)."""
    c = contract()
    always = len(c.METRICS)
    return {"always": always, "at_most": always + len(c.ERROR_CLASSES)}


# -- Lambda Web Adapter: how the function runs main:app and streams ------------------------
# aws/aws-lambda-web-adapter (1.0.0, README and .github/workflows/prod.json at 2912565, read
# 2026-12-02): the arm64 layer is `LambdaAdapterLayerArm64` of account 753240598075, version 27.
WEB_ADAPTER_LAYER = "arn:{partition}:lambda:{region}:753240598075:layer:LambdaAdapterLayerArm64:27"
# The handler: lambda/forwarder/run.sh starts the ASGI server on WEB_ADAPTER_PORT; the adapter
# (the exec wrapper) forwards each invocation to it.
WEB_ADAPTER_HANDLER = "run.sh"
WEB_ADAPTER_PORT = 8080  # the adapter's default traffic port; run.sh reads it as $PORT
# lambda/forwarder/main.py answers this path (HEALTH_PATH) once it can take requests.
READINESS_CHECK_PATH = "/health"
# How long uvicorn keeps the adapter's idle connection (run.sh's --timeout-keep-alive; the local
# environments use the same). uvicorn's default, 5 s, closes a connection the adapter still holds in
# its pool between invocations, and its next request then races the close (a reset, answered as an
# error): the known keep-alive race of uvicorn behind a pooling proxy (e.g. kserve/kserve#5446,
# vllm-project/vllm#18472). A day outlasts any idle gap; the adapter is the only client.
ASGI_KEEP_ALIVE_S = 24 * 3600
# What the asset bundles from this environment's site-packages, each at the version pinned in
# pyproject.toml (tests/infra/test_streaming_api.py checks the asset carries exactly those), so the
# function runs what the tests ran instead of a managed layer's or the runtime's copy:
# - the ASGI server and what it imports: uvicorn 0.54 requires click and h11 (without uvloop or
#   httptools it runs on asyncio and h11);
# - Powertools and what it imports: jmespath and typing-extensions (aws_lambda_powertools-3.37.0
#   METADATA, Requires-Dist without extras);
# - botocore and what it imports: jmespath, python-dateutil and urllib3 (botocore-1.44.5 METADATA,
#   Requires-Dist; `crt` is an extra the forwarder does not use), and six, which python-dateutil
#   requires (python_dateutil-2.9.0.post0 METADATA). boto3 is not used: the client comes from botocore.
ASGI_SERVER_DISTRIBUTIONS = ("uvicorn", "h11", "click")
POWERTOOLS_DISTRIBUTIONS = ("aws-lambda-powertools", "typing-extensions")
BOTOCORE_DISTRIBUTIONS = ("botocore", "jmespath", "python-dateutil", "six", "urllib3")
BUNDLED_DISTRIBUTIONS = tuple(
    dict.fromkeys(ASGI_SERVER_DISTRIBUTIONS + POWERTOOLS_DISTRIBUTIONS + BOTOCORE_DISTRIBUTIONS)
)
# botocore/data holds every AWS service's model (28 MB of 41 MB unzipped; 18 MB of the zip). The
# forwarder's one client (sagemaker-runtime, standard retries) loads only these: its service model and
# endpoint rules, the partitions and endpoints, the retry and defaults-mode tables. The tests that start
# run.sh from the synthesized asset create that client and call both operations through it.
BOTOCORE_DATA = PurePosixPath("botocore/data")
# Never in an asset: Lambda's /var/task is read-only, and byte code for this machine's Python is
# not the runtime's.
ASSET_EXCLUDE = ("__pycache__", "*.pyc")
BOTOCORE_DATA_KEPT = (
    "sagemaker-runtime",
    "_retry.json",
    "endpoints.json",
    "partitions.json",
    "sdk-default-configuration.json",
)


def bundled(relative: PurePosixPath) -> bool:
    """Whether a file of a bundled distribution (its path inside site-packages) goes into the asset."""
    depth = len(BOTOCORE_DATA.parts)
    if relative.parts[:depth] != BOTOCORE_DATA.parts or len(relative.parts) == depth:
        return True
    return relative.parts[depth] in BOTOCORE_DATA_KEPT


def bundle(source: Path, distributions: Sequence[str], out: Path) -> None:
    """Copy a Lambda asset's source files and the named distributions from this environment's
    site-packages into out (stacks/api.py's SitePackagesBundler; benchmarks/lambda_stream.py)."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(*ASSET_EXCLUDE), dirs_exist_ok=True)
    for name in distributions:
        for relative, path in distribution_files(name):
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / relative)


def bundle_fingerprint(source: Path, distributions: Sequence[str]) -> str:
    """What `bundle` would copy, hashed without copying it: the source files, each distribution's
    name and version, and the rules that pick their files. Equal fingerprints mean equal bundles, so
    CDK (a CUSTOM asset hash) reuses the asset already staged in cdk.out instead of bundling again."""
    digest = hashlib.sha256(repr((ASSET_EXCLUDE, BOTOCORE_DATA, BOTOCORE_DATA_KEPT)).encode())
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not any(fnmatch.fnmatch(part, p) for part in relative.parts for p in ASSET_EXCLUDE):
            digest.update(f"{relative.as_posix()}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    for name in distributions:
        digest.update(f"{name}=={importlib.metadata.version(name)}\0".encode())
    return digest.hexdigest()


def distribution_files(name: str) -> list[tuple[Path, Path]]:
    """(path inside site-packages, file) for each importable file of an installed distribution
    and its .dist-info; console scripts (outside site-packages), byte code and what the function
    never loads (`bundled`: most of botocore's service models) are left out."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"{name} is not installed in this Python environment; the forwarder's asset bundles it "
            "(run `make setup`, which installs pyproject.toml's pinned dependencies)"
        ) from None
    files = []
    for entry in dist.files or ():
        relative = Path(str(entry))
        if relative.parts[0] == ".." or "__pycache__" in relative.parts or relative.suffix == ".pyc":
            continue
        if not bundled(PurePosixPath(relative.as_posix())):
            continue
        files.append((relative, Path(str(dist.locate_file(entry)))))
    return files


def web_adapter_environment() -> dict[str, str]:
    """The variables that make Lambda Web Adapter run the function and stream its answers."""
    return {
        # aws-lambda-web-adapter README, "Lambda functions packaged as Zip package for AWS managed runtimes".
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
        # README, configuration table: "buffered" or "response_stream".
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "AWS_LWA_READINESS_CHECK_PATH": READINESS_CHECK_PATH,
        # AWS_LWA_PORT falls back to PORT (README); run.sh passes PORT to uvicorn.
        "PORT": str(WEB_ADAPTER_PORT),
        # lambda_http (aws-lambda-rust-runtime, the adapter's HTTP layer) puts the REST stage in the
        # path unless this is set; main.py routes on /v1/..., without the stage.
        "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
    }
