"""What the forwarder's streaming entry point costs over the least an adapter app could do.

Both apps run as the deployed function runs them: the synthesized asset's layout (the app plus
uvicorn, botocore, Powertools and what they import, bundled as stacks/api.py bundles them), started
by lambda/forwarder/run.sh on $PORT, with Lambda Web Adapter's headers on each request. Both talk
to the same local SageMaker runtime (ownllm.local.runtime with the vLLM stand-in, no latency, in its
own process):

- bare: a `main:app` written here that passes the request body to
  `invoke_endpoint_with_response_stream` and relays each PayloadPart's bytes (no validation,
  normalisation, logs or metrics). The targets are ratios to this one.
- forwarder: lambda/forwarder's `main:app` as deployed.

Figures (targets from issue 12):
- cold start: run.sh started -> the readiness path (/health) answers -> the first streamed chat is
  read to its end (server, app init and client creation, and the first call), median of
  --repeats fresh processes, the two apps interleaved; the asset has no byte code, as on Lambda
  -> within 1.3x of bare;
- warm: wall time of one streamed chat request (a few hundred bytes, 16 tokens) over a kept-alive
  connection, median over --requests -> within 1.25x;
- memory: RSS of the server process after 1,000 requests, and its peak (VmHWM) -> under 100 MB
  (a 128 MB function).
The server's own CPU time (psutil) is printed beside the wall times: on a shared machine it
moves less with other work than the wall clock does.

    .venv/bin/python benchmarks/lambda_stream.py [--repeats 11] [--requests 300]

A benchmark, not a test: it prints figures and ratios and exits 0 either way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ownllm.forwarder import BUNDLED_DISTRIBUTIONS, FORWARDER_DIR, READINESS_CHECK_PATH, bundle, forwarder_environment
from ownllm.local.lambda_pool import FAKE_AWS_ENV
from ownllm.settings import Settings

MODEL = "Qwen/Qwen2.5-7B-Instruct"
TARGETS = {"cold": 1.3, "warm": 1.25, "rss_mb": 100}
RSS_AFTER_REQUESTS = 1000
BATCH = 50

BARE_APP = '''"""The least an adapter app can do: relay invoke_endpoint_with_response_stream's payload parts."""
import asyncio
import os

import botocore.session

CLIENT = botocore.session.get_session().create_client("sagemaker-runtime")
ENDPOINT = os.environ["ENDPOINT_NAME"]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    response = await asyncio.to_thread(
        CLIENT.invoke_endpoint_with_response_stream, EndpointName=ENDPOINT, Body=body, ContentType="application/json"
    )
    events = iter(response["Body"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    while True:
        event = await asyncio.to_thread(next, events, None)
        if event is None:
            break
        if "PayloadPart" in event:
            await send({"type": "http.response.body", "body": event["PayloadPart"]["Bytes"], "more_body": True})
    await send({"type": "http.response.body", "body": b""})
'''

CHAT = json.dumps(
    {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are concise."},
            {"role": "user", "content": "Summarise the following notes for a busy reader: " + "notes " * 40},
        ],
        "max_tokens": 16,
        "stream": True,
    }
).encode()


def adapter_headers() -> dict[str, str]:
    """What Lambda Web Adapter adds to each request (main.py reads the deadline from it)."""
    deadline_ms = int((time.time() + 300) * 1000)
    return {
        "Content-Type": "application/json",
        "x-amzn-request-context": json.dumps({"requestId": "bench", "stage": "prod"}),
        "x-amzn-lambda-context": json.dumps({"request_id": "bench", "deadline": deadline_ms}),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """One asset's run.sh, started fresh on its own port."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(folder / "run.sh")],
            env={**env, "PORT": str(self.port)},
            stdout=subprocess.DEVNULL,  # the forwarder's log and EMF lines: written, not read, as on Lambda
            stderr=subprocess.PIPE,
        )
        self.connection: http.client.HTTPConnection | None = None

    def wait_ready(self) -> None:
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", READINESS_CHECK_PATH)
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"run.sh exited: {self.proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.002)

    def chat(self) -> float:
        """One streamed chat, read to its end; its wall time in ms."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        self.connection.request("POST", "/v1/chat/completions", CHAT, adapter_headers())
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not body.rstrip().endswith(b"data: [DONE]"):
            raise RuntimeError(f"unexpected answer {response.status}: {body[-300:]!r}")
        return elapsed

    def cpu_ms(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return (times.user + times.system) * 1000

    def rss_mb(self) -> tuple[float, float]:
        """(RSS now, peak RSS) of the server process, in MB."""
        process = psutil.Process(self.proc.pid)  # run.sh execs python: same process
        rss = process.memory_info().rss / 2**20
        peak = rss
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.exists():  # Linux: VmHWM is the peak resident set
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
        return rss, peak

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def build_assets(tmp: Path) -> dict[str, Path]:
    """Each app's folder as stacks/api.py bundles the forwarder's asset (no byte code)."""
    bare_source = tmp / "bare-source"
    bare_source.mkdir()
    (bare_source / "main.py").write_text(BARE_APP)
    shutil.copy2(FORWARDER_DIR / "run.sh", bare_source / "run.sh")
    folders = {}
    for name, source in (("bare", bare_source), ("forwarder", FORWARDER_DIR)):
        folders[name] = tmp / name
        folders[name].mkdir()
        bundle(source, BUNDLED_DISTRIBUTIONS, folders[name])
    return folders


def serve() -> None:
    """--serve: run the local runtime until stdin closes (the parent's lifetime)."""
    from ownllm.local.runtime import RuntimeServer, StandIn

    with RuntimeServer(StandIn(engine="vllm", model_name=MODEL)) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values):7.2f} ms   p95 {p95:7.2f} ms   min {values[0]:7.2f} ms"


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER TARGET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11, help="fresh server processes per app for cold start")
    parser.add_argument("--requests", type=int, default=300, help="timed warm requests per app")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    runtime = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = runtime.stdout.readline().strip() if runtime.stdout else ""
        with tempfile.TemporaryDirectory(prefix="ownllm-bench-stream-") as tmp:
            folders = build_assets(Path(tmp))
            bin_dir = Path(tmp, "bin")
            bin_dir.mkdir()
            # `python` outside the virtual environment: run.sh's -S then leaves only the asset and the stdlib.
            (bin_dir / "python").symlink_to(sys.executable)
            env = {
                "PATH": f"{bin_dir}:/usr/bin:/bin",
                "LANG": os.environ.get("LANG", "C.UTF-8"),
                **FAKE_AWS_ENV,
                **forwarder_environment(Settings.from_context({}), endpoint_name="bench-endpoint", model_name=MODEL),
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
                "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only and ships no byte code
            }
            ready: dict[str, list[float]] = {name: [] for name in folders}
            cold: dict[str, list[float]] = {name: [] for name in folders}
            cold_cpu: dict[str, list[float]] = {name: [] for name in folders}
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both alike
                for name, folder in folders.items():
                    started = time.perf_counter()
                    app = App(folder, env)
                    try:
                        app.wait_ready()
                        ready[name].append((time.perf_counter() - started) * 1000)
                        app.chat()
                        cold[name].append((time.perf_counter() - started) * 1000)
                        cold_cpu[name].append(app.cpu_ms())
                    finally:
                        app.stop()

            apps = {name: App(folder, env) for name, folder in folders.items()}
            warm: dict[str, list[float]] = {name: [] for name in folders}
            warm_cpu: dict[str, list[float]] = {name: [] for name in folders}  # per request, one per batch
            memory: dict[str, tuple[float, float]] = {}
            try:
                for app in apps.values():
                    app.wait_ready()
                    for _ in range(BATCH):  # warm-up, not counted
                        app.chat()
                for _ in range(max(1, args.requests // BATCH)):
                    for name, app in apps.items():
                        cpu_before = app.cpu_ms()
                        warm[name] += [app.chat() for _ in range(BATCH)]
                        warm_cpu[name].append((app.cpu_ms() - cpu_before) / BATCH)
                for name, app in apps.items():
                    for _ in range(RSS_AFTER_REQUESTS - BATCH - len(warm[name])):
                        app.chat()
                    memory[name] = app.rss_mb()
            finally:
                for app in apps.values():
                    app.stop()
    finally:
        if runtime.stdin:
            runtime.stdin.close()
        runtime.wait(timeout=10)

    def ratio(figures: dict[str, list[float]]) -> float:
        return statistics.median(figures["forwarder"]) / statistics.median(figures["bare"])

    print(f"Python {sys.version.split()[0]}, streamed chat of {len(CHAT)} bytes, local vLLM stand-in at {url}")
    print(f"cold start to readiness ({args.repeats} fresh run.sh processes each: server, app init, client)")
    for name in folders:
        print(f"  {name:<10} {summary(ready[name])}")
    print("cold start to the first streamed chat read to its end (the target)")
    for name in folders:
        print(f"  {name:<10} {summary(cold[name])}")
    print(f"warm streamed chat ({len(warm['bare'])} requests each after {BATCH} to warm up, alternating batches)")
    for name in folders:
        print(f"  {name:<10} {summary(warm[name])}")
    print("server CPU time (user + system), less disturbed by other work on the machine")
    for name in folders:
        print(
            f"  {name:<10} cold {statistics.median(cold_cpu[name]):7.1f} ms   "
            f"warm {statistics.median(warm_cpu[name]):6.2f} ms per request (median of batches of {BATCH})"
        )
    print(f"memory after {RSS_AFTER_REQUESTS} requests: RSS now / peak (VmHWM)")
    for name in folders:
        print(f"  {name:<10} {memory[name][0]:6.1f} MB / {memory[name][1]:6.1f} MB")
    cold_ratio, warm_ratio, peak = ratio(cold), ratio(warm), memory["forwarder"][1]
    print("ratios, forwarder / bare (the targets)")
    print(f"  cold start  {cold_ratio:5.2f}x   target <= {TARGETS['cold']}x   {verdict(cold_ratio <= TARGETS['cold'])}")
    print(f"  warm        {warm_ratio:5.2f}x   target <= {TARGETS['warm']}x  {verdict(warm_ratio <= TARGETS['warm'])}")
    print(f"  peak RSS    {peak:5.1f} MB target <  {TARGETS['rss_mb']} MB  {verdict(peak < TARGETS['rss_mb'])}")
    print("for information, the same ratios in server CPU time")
    print(f"  cold start  {ratio(cold_cpu):5.2f}x")
    print(f"  warm        {ratio(warm_cpu):5.2f}x")


if __name__ == "__main__":
    main()
