"""How fast `ownllm batch run` sends a batch, against the cheapest client loop there is.

Server: `python benchmarks/trivial_server.py` in its own process (one fixed chat completion,
no work behind it), so the figures are the client's ceiling on this machine.

- baseline: a bare httpx2 AsyncClient loop at the same concurrency, same request bodies,
  answers parsed as JSON and dropped: no validation, no retries, no files;
- batch: the whole `ownllm batch run` command as a user runs it (start-up, checking the
  input, sending, writing and fsyncing both result files), wall-clock; and its send phase
  alone, as its summary line reports it.

Each is run --rounds times, alternating, and the best kept: the machine is shared.
Target (issue 14): at least 500 requests/s for the whole command on 2 cores.

    .venv/bin/python benchmarks/batch_run.py [--requests 10000] [--concurrency 16] [--rounds 3]

A benchmark, not a test: it prints figures and a verdict; exit 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_soak import ROOT, start_server, stop_server

sys.path.insert(0, str(ROOT))

import httpx2

TARGET_RPS = 500.0
_SENT = re.compile(r"this run: (\d+) requests in [\d.]+ s \(([\d.]+) req/s\)")


def write_input(path: Path, n: int) -> list[dict]:
    bodies = []
    with path.open("w") as f:
        for i in range(n):
            body = {"model": "trivial", "messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 16}
            bodies.append(body)
            f.write(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
            f.write("\n")
    return bodies


async def bare_loop(url: str, bodies: list[dict], concurrency: int) -> float:
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=30) as client:
        todo = iter(bodies)

        async def worker() -> None:
            for body in todo:
                response = await client.post(url + "/chat/completions", content=json.dumps(body).encode())
                response.raise_for_status()
                response.json()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - started)


def batch_command(url: str, source: Path, folder: Path, concurrency: int, n: int) -> tuple[float, float]:
    output, errors = folder / "out.jsonl", folder / "err.jsonl"
    for path in (output, errors):
        path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "ownllm.cli", "batch", "run", str(source), "--url", url, "--output", str(output)]
    argv += ["--errors", str(errors), "--concurrency", str(concurrency), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = output.read_bytes().count(b"\n") if output.exists() else 0
    if done.returncode != 0 or lines != n:
        raise SystemExit(f"batch run failed (exit {done.returncode}, {lines} of {n} results): {done.stderr[-2000:]}")
    match = _SENT.search(done.stdout)
    return n / wall, float(match.group(2)) if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    process, url = start_server([sys.executable, str(ROOT / "benchmarks" / "trivial_server.py")])
    try:
        with tempfile.TemporaryDirectory(prefix="ownllm-batch-bench-") as tmp:
            folder = Path(tmp)
            source = folder / "in.jsonl"
            bodies = write_input(source, args.requests)
            baseline, whole, sending = [], [], []
            for _ in range(args.rounds):
                baseline.append(asyncio.run(bare_loop(url, bodies, args.concurrency)))
                command_rps, send_rps = batch_command(url, source, folder, args.concurrency, args.requests)
                whole.append(command_rps)
                sending.append(send_rps)
    finally:
        stop_server(process)

    base, cmd, send = max(baseline), max(whole), max(sending)
    print(f"{args.requests} requests, concurrency {args.concurrency}, {os.cpu_count()} CPUs, trivial server")
    print(f"baseline  bare httpx2 loop           {base:8.1f} req/s")
    print(f"batch     send phase (its summary)    {send:8.1f} req/s   {send / base:.2f}x baseline")
    print(f"batch     whole command, wall-clock   {cmd:8.1f} req/s   {cmd / base:.2f}x baseline")
    ok = cmd >= TARGET_RPS
    print(f"target >= {TARGET_RPS:.0f} req/s for the whole command: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
