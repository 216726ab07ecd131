"""How much the forwarder Lambda costs over the least a Lambda could do: pass the body on.

All handlers run against the same local SageMaker runtime (ownllm.local.runtime, a vLLM
stand-in answering at once, in its own process so it does not share the GIL):

- bare: `boto3.client("sagemaker-runtime")` at import, a handler that passes the event
  body to `invoke_endpoint` and returns what comes back (no validation, logs or metrics).
  The targets are ratios to this one.
- bare-tuned (for information): the same handler with the forwarder's two client-side
  optimisations (a botocore client with a fixed User-Agent, GC frozen after init), so the
  cost of Powertools and the forwarder's own work can be read without them;
- forwarder: lambda/forwarder/app.py as deployed (Powertools resolver, Logger, Metrics).

Figures (targets from the issue):
- cold start: import plus client creation, in fresh interpreters, median of --repeats,
  the two handlers interleaved; the asset is compiled from source every time (Lambda's
  /var/task ships no .pyc and is read-only) -> within 1.3x of bare;
- warm: per-request wall time for a ~4 KB chat request, median over --requests -> within 1.25x;
- memory: peak RSS of the process after --requests requests -> under 100 MB (128 MB Lambda).

    .venv/bin/python benchmarks/lambda_handler.py [--repeats 21] [--requests 1000]

A benchmark, not a test: it prints figures and ratios and exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ownllm.forwarder import ASSET_EXCLUDE, forwarder_environment
from ownllm.forwarder import FORWARDER_DIR as ASSET
from ownllm.local.lambda_pool import FAKE_AWS_ENV
from ownllm.settings import Settings

MODEL = "Qwen/Qwen2.5-7B-Instruct"
TARGETS = {"cold": 1.3, "warm": 1.25, "rss_mb": 100}

BARE = """
import os
import boto3

CLIENT = boto3.client("sagemaker-runtime")
ENDPOINT = os.environ["ENDPOINT_NAME"]


def handler(event, context):
    response = CLIENT.invoke_endpoint(EndpointName=ENDPOINT, Body=event["body"], ContentType="application/json")
    return {"statusCode": 200, "body": response["Body"].read().decode()}
"""

BARE_TUNED = """
import gc
gc.disable()
import os
import platform
import botocore
import botocore.session
from botocore.config import Config

CLIENT = botocore.session.get_session().create_client(
    "sagemaker-runtime",
    config=Config(
        connect_timeout=2, read_timeout=25, retries={"mode": "standard", "total_max_attempts": 3},
        user_agent=f"bare botocore/{botocore.__version__} Python/{platform.python_version()}", parameter_validation=False,
    ),
)
ENDPOINT = os.environ["ENDPOINT_NAME"]


def handler(event, context):
    response = CLIENT.invoke_endpoint(EndpointName=ENDPOINT, Body=event["body"], ContentType="application/json")
    return {"statusCode": 200, "body": response["Body"].read().decode()}


gc.freeze()
gc.enable()
"""

# Runs in a fresh interpreter: time `import app` (module code, client creation included).
COLD = """
import sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, {asset!r})
started = time.perf_counter()
import app
print((time.perf_counter() - started) * 1000)
"""

# A long-lived interpreter per handler, driven over stdin: "N" runs N timed requests and
# answers their times; "rss" answers the peak RSS. The parent alternates batches between
# the two handlers so that load from elsewhere on the machine hits both alike.
WARM = """
import json, resource, sys, time
sys.dont_write_bytecode = True
sys.path.insert(0, {asset!r})
real_stdout = sys.stdout
sys.stdout = open("/dev/null", "w")  # logs and EMF go to stdout on Lambda too: written, not read
import app

event = json.loads({event!r})
class Context:
    function_name = "bench"; function_version = "$LATEST"; memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"; aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 28000
context = Context()
for line in sys.stdin:
    if line.strip() == "rss":
        answer = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        answer = []
        for _ in range(int(line)):
            started = time.perf_counter()
            response = app.handler(event, context)
            answer.append((time.perf_counter() - started) * 1000)
            assert response["statusCode"] == 200, response
    real_stdout.write(json.dumps(answer) + "\\n")
    real_stdout.flush()
"""


class Worker:
    """One handler in its own interpreter, answering timing requests over a pipe."""

    def __init__(self, asset: Path, event: str, env: dict):
        code = WARM.format(asset=str(asset), event=event)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def chat_event(size: int = 4096) -> dict:
    """An API Gateway REST event carrying a chat request of about `size` bytes."""
    filler = "Summarise the following notes for a busy reader. " * 200
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": "You are concise."}, {"role": "user", "content": ""}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    body["messages"][1]["content"] = filler[: size - len(json.dumps(body))]
    raw = json.dumps(body)
    return {
        "resource": "/{proxy+}",
        "path": "/v1/chat/completions",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "x-api-key": "k"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": "v1/chat/completions"},
        "stageVariables": None,
        "isBase64Encoded": False,
        "body": raw,
        "requestContext": {
            "requestId": "bench-request",
            "stage": "prod",
            "path": "/prod/v1/chat/completions",
            "httpMethod": "POST",
            "resourcePath": "/{proxy+}",
            "identity": {"sourceIp": "203.0.113.7", "apiKey": "k"},
            "accountId": "123456789012",
            "apiId": "abc123",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": 0,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        },
    }


def serve() -> None:
    """--serve: run the local runtime until stdin closes (the parent's lifetime)."""
    from ownllm.local.runtime import RuntimeServer, StandIn

    with RuntimeServer(StandIn(engine="vllm", model_name=MODEL)) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def run(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms   min {values[0]:7.2f} ms"


def verdict(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21, help="fresh interpreters per handler for cold start")
    parser.add_argument("--requests", type=int, default=1000, help="timed warm requests per handler")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="ownllm-bench-") as tmp:
            handlers = {name: Path(tmp, name) for name in ("bare", "bare-tuned", "forwarder")}
            for name, code in (("bare", BARE), ("bare-tuned", BARE_TUNED)):
                handlers[name].mkdir()
                (handlers[name] / "app.py").write_text(textwrap.dedent(code))
            shutil.copytree(ASSET, handlers["forwarder"], ignore=shutil.ignore_patterns(*ASSET_EXCLUDE))
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
                **FAKE_AWS_ENV,
                **forwarder_environment(Settings.from_context({}), endpoint_name="bench-endpoint", model_name=MODEL),
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
                "PYTHONDONTWRITEBYTECODE": "1",
            }

            cold: dict[str, list[float]] = {name: [] for name in handlers}
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits all alike
                for name, asset in handlers.items():
                    cold[name].append(float(run(COLD.format(asset=str(asset)), env)))

            event = json.dumps(chat_event())
            workers = {name: Worker(asset, event, env) for name, asset in handlers.items()}
            warm = {name: {"times": []} for name in handlers}
            try:
                for worker in workers.values():
                    worker.ask("50")  # warm-up, not counted
                batch = 50
                for _ in range(max(1, args.requests // batch)):
                    for name, worker in workers.items():
                        warm[name]["times"] += worker.ask(str(batch))
                for name, worker in workers.items():
                    warm[name]["rss_mb"] = worker.ask("rss")
            finally:
                for worker in workers.values():
                    worker.close()
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    def ratio(figures: dict, versus: str) -> float:
        return statistics.median(figures["forwarder"]) / statistics.median(figures[versus])

    times = {name: warm[name]["times"] for name in handlers}
    rss = warm["forwarder"]["rss_mb"]
    print(
        f"Python {sys.version.split()[0]}, request body {len(chat_event()['body'])} bytes, local vLLM stand-in at {url}"
    )
    print(f"cold start ({args.repeats} fresh interpreters each, import + client creation)")
    for name in handlers:
        print(f"  {name:<11} {summary(cold[name])}")
    print(f"warm request ({args.requests} requests each after 50 to warm up, in alternating batches of 50)")
    for name in handlers:
        print(f"  {name:<11} {summary(times[name])}")
    print(f"peak RSS after {args.requests} requests")
    for name in handlers:
        print(f"  {name:<11} {warm[name]['rss_mb']:7.1f} MB")
    cold_ratio, warm_ratio = ratio(cold, "bare"), ratio(times, "bare")
    print("ratios, forwarder / bare (the targets)")
    print(f"  cold start  {cold_ratio:5.2f}x  target <= {TARGETS['cold']}x   {verdict(cold_ratio, TARGETS['cold'])}")
    print(f"  warm        {warm_ratio:5.2f}x  target <= {TARGETS['warm']}x  {verdict(warm_ratio, TARGETS['warm'])}")
    print(
        f"  peak RSS    {rss:5.1f} MB target <  {TARGETS['rss_mb']} MB  {'ok' if rss < TARGETS['rss_mb'] else 'OVER TARGET'}"
    )
    print("for information, forwarder / bare-tuned (Powertools and the forwarder's own work alone)")
    print(f"  cold start  {ratio(cold, 'bare-tuned'):5.2f}x")
    print(f"  warm        {ratio(times, 'bare-tuned'):5.2f}x")


if __name__ == "__main__":
    main()
