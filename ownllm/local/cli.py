"""`ownllm local`: the deployed API's request path on 127.0.0.1, without AWS."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from ownllm.forwarder import contract

if TYPE_CHECKING:
    from ownllm.local.gateway import AccessRecord
    from ownllm.local.stack import LocalStack

DEFAULT_PORT = 8765
KEY_ENV = "OWNLLM_API_KEY"
UPSTREAM_KEY_ENV = "OWNLLM_UPSTREAM_KEY"
# import name -> what to install; the forwarder Lambda needs them (Lambda's runtime and layer bring
# botocore and Powertools; the asset bundles uvicorn, which serves the gateway here too).
REQUIRED = {"botocore": "botocore", "aws_lambda_powertools": "aws-lambda-powertools", "uvicorn": "uvicorn"}
# Signals that stop `ownllm local`: Ctrl-C at a terminal, and what `kill` or a supervisor sends.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(subparsers: argparse._SubParsersAction) -> None:
    c = contract()
    p = subparsers.add_parser(
        "local",
        help="run the API locally: gateway -> the real forwarder Lambda -> a local SageMaker runtime",
        description=(
            "Serve the deployed API's request path on 127.0.0.1 without AWS: API Gateway's rules (API key, "
            f"{c.API_GATEWAY_PAYLOAD_BYTES // (1024 * 1024)} MB, {c.API_GATEWAY_TIMEOUT_S} s), the real forwarder Lambda from lambda/forwarder, and a local SageMaker runtime. "
            "The model is a stand-in (canned text in the engine's wire shape: it exercises the path, it is "
            "not a model) unless --upstream names an OpenAI-compatible server you run."
        ),
    )
    p.add_argument(
        "--engine",
        choices=c.ENGINES,
        default=None,
        help="container wire shapes the forwarder speaks (default: cdk.json's engine, else vllm)",
    )
    p.add_argument(
        "--cdk-json",
        default="cdk.json",
        help="where the deployed settings are (limits, engine); missing file: the defaults",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port for the API (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument(
        "--key",
        default=os.environ.get(KEY_ENV),
        help=f"API key clients must send (default: ${KEY_ENV}, else a generated one)",
    )
    p.add_argument(
        "--upstream",
        metavar="URL",
        help="an OpenAI-compatible base URL you run, e.g. http://127.0.0.1:8000/v1 (vLLM), "
        "http://127.0.0.1:11434/v1 (Ollama); default: the built-in stand-in",
    )
    p.add_argument("--upstream-model", help="model name to send upstream (default: the first GET /models lists)")
    p.add_argument(
        "--upstream-key",
        default=os.environ.get(UPSTREAM_KEY_ENV),
        help=f"Bearer key for the upstream, if it wants one (default: ${UPSTREAM_KEY_ENV})",
    )
    p.add_argument(
        "--model-name", help="model name clients pass as `model` (default: the upstream's, or 'ownllm-stand-in')"
    )
    p.add_argument("--adapters", default="", help="comma-separated LoRA adapter names, also valid as `model`")
    p.add_argument("--latency", type=float, default=0.0, help="stand-in: seconds added to every answer (default 0)")
    p.add_argument(
        "--tokens-per-s",
        type=float,
        default=0.0,
        help="stand-in: pace generated tokens at this speed (default 0: answer at once)",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=64,
        help="most Lambda execution environments at once; more requests wait (default 64)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"API Gateway's integration timeout in seconds for routes other than the completions (default "
        f"{c.API_GATEWAY_TIMEOUT_S:g}); the completion routes get cdk.json's api_timeout_s",
    )
    p.add_argument("--lambda-log", metavar="FILE", help="append the Lambda's own log lines (JSON, EMF) to FILE")
    p.add_argument("--quiet", action="store_true", help="no line per request")
    p.add_argument(
        "--scale-to-zero",
        type=float,
        default=None,
        metavar="SECONDS",
        help="emulate an endpoint scaled to zero (min_instances 0): calls answer 503 'starting' until "
        "SECONDS after the first one, then normal",
    )
    p.set_defaults(func=run)


def missing_dependencies() -> list[str]:
    return [package for module, package in REQUIRED.items() if importlib.util.find_spec(module) is None]


def banner(stack: LocalStack) -> str:
    model = stack.model_name
    base = stack.base_url
    key = stack.api_key
    if stack.is_stand_in:
        what = f"{model}  (STAND-IN: canned text in {stack.engine}'s wire shape, not a model; --upstream URL for one)"
    else:
        what = f"{model}  (upstream {stack.upstream}, model {stack.upstream_served_model!r} there)"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64})
    return "\n".join(
        [
            "ownllm local: the deployed API's request path on 127.0.0.1, no AWS",
            f"  URL      {base}",
            f"  key      {key}",
            f"  model    {what}",
            f"  path     API Gateway rules (key, 10 MB) -> lambda/forwarder main:app "
            f"(engine {stack.engine}, up to {stack.max_instances} environments) -> SageMaker runtime {stack.runtime_url}",
            f"  stream   {streams(stack)}",
            "",
            "curl:",
            f"  curl -s {base}/chat/completions -H 'x-api-key: {key}' -H 'content-type: application/json' \\",
            f"    -d '{body}'",
            "",
            "python (pip install openai):",
            "  from openai import OpenAI",
            f'  client = OpenAI(base_url="{base}", api_key="{key}")',
            f'  reply = client.chat.completions.create(model="{model}",'
            ' messages=[{"role": "user", "content": "Hello!"}])',
            "  print(reply.choices[0].message.content)",
            "",
            "Ctrl-C stops everything.",
        ]
    )


def streams(stack: LocalStack) -> str:
    return (
        "every answer is relayed chunk by chunk from main:app under uvicorn (STREAM mode, as Lambda Web "
        f"Adapter runs it): {stack.gateway_timeout_s:g} s, the completion routes up to {stack.stream_timeout_s:g} s"
    )


def run(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"ownllm local: {message}", file=sys.stderr)
        return 2

    missing = missing_dependencies()
    if missing:
        return fail(
            f"missing dependency {', '.join(missing)} (the forwarder Lambda needs it): "
            f"pip install {' '.join(missing)}, or pip install -e '.[dev]'"
        )
    from ownllm.local.gateway import INTEGRATION_TIMEOUT_S
    from ownllm.local.stack import LocalStack, LocalStackError

    if not 0 <= args.port <= 65535:
        return fail(f"--port {args.port} is not a port number (0-65535)")
    if args.instances < 1:
        return fail(f"--instances {args.instances} must be at least 1")
    for flag, value in (("--latency", args.latency), ("--tokens-per-s", args.tokens_per_s)):
        if not 0 <= value < float("inf"):
            return fail(f"{flag} {value:g} must be a finite number of at least 0")
    if args.lambda_log:
        try:
            open(args.lambda_log, "a").close()
        except OSError as exc:
            return fail(f"--lambda-log {args.lambda_log}: {exc.strerror or exc}")
    from ownllm.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.cdk_json)  # the same loader and precedence as cdk synth
    except SettingsError as exc:
        return fail(f"{args.cdk_json}: {'; '.join(exc.problems)}")
    engine = args.engine or settings.engine
    timeout = INTEGRATION_TIMEOUT_S if args.timeout is None else args.timeout
    if not 0 < timeout <= INTEGRATION_TIMEOUT_S:
        return fail(
            f"--timeout {timeout:g} must be above 0 and at most {INTEGRATION_TIMEOUT_S:g} (API Gateway's limit)"
        )

    def log(record: AccessRecord) -> None:
        note = f"  {record.note}" if record.note else ""
        print(f"{record.method} {record.path} {record.status} {record.latency_ms:.0f} ms{note}", flush=True)

    try:
        stack = LocalStack(
            engine=engine,
            settings=settings,
            model_name=args.model_name,
            adapters=[a.strip() for a in args.adapters.split(",")],
            api_key=args.key,
            port=args.port,
            upstream=args.upstream,
            upstream_model=args.upstream_model,
            upstream_key=args.upstream_key,
            latency_s=args.latency,
            tokens_per_s=args.tokens_per_s,
            gateway_timeout_s=timeout,
            max_instances=args.instances,
            lambda_log=args.lambda_log,
            on_request=None if args.quiet else log,
            scale_to_zero_wake_s=args.scale_to_zero,
        )
    except LocalStackError as exc:
        return fail(str(exc))
    # Explicit handlers for both signals: a script that starts this in the background leaves SIGINT
    # ignored (and Python then installs no KeyboardInterrupt for it), yet Ctrl-C or `kill -INT` must
    # still stop everything cleanly.
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        try:
            stack.start()
        except LocalStackError as exc:
            return fail(str(exc))
        if not stop.is_set():
            print(banner(stack), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    print("ownllm local: stopped", flush=True)
    return 0
