"""Soak the local path: 64 concurrent clients for 30 s, zero errors, memory sampled over time.

`ownllm local` runs in its own process (stand-in, no added latency), so what is measured
is its memory alone: the gateway process (gateway, SageMaker runtime, stand-in) and its
Lambda execution environments (one process each, forked from a shared fork server).
After a warm-up that starts every environment, the clients send chat completions without
pause while a sampler reads /proc once a second.

Bounds (issue 5): no failed request; after warm-up the gateway process grows by less than
20 MB, and so does the Lambda side: the proportional set size (PSS: memory shared with the
fork server counted once) summed over the environments, the fork server and
multiprocessing's resource tracker.

Baseline: benchmarks/trivial_server.py (one fixed answer, no work) driven by the same
clients for --baseline seconds; printed as ratios: the local path's requests/s to the
trivial server's, and the gateway's RSS to the trivial server's (a Python HTTP server
doing nothing).

    .venv/bin/python benchmarks/local_soak.py [--concurrency 64] [--duration 30]

A benchmark, not a test: it prints figures and verdicts; exit 1 if a bound is broken.
Processes and memory come from psutil (a dev dependency); PSS needs Linux.
tests/local/test_soak.py is the short version that runs with the suite: it checks for
errors only, never a speed.
"""

from __future__ import annotations

import argparse
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ownllm.bench import runner
from ownllm.bench.report import LevelSummary, summarise

KEY = "soak-key"
GROWTH_BOUND_MB = 20.0
_URL = re.compile(r"(http://127\.0\.0\.1:\d+/v1)")


# -- a server in its own process, and what /proc says about it ---------------------------------------


def start_server(command: list[str], timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start a server that prints its base URL (…/v1) on stdout; (process, url)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            match = _URL.search(lines.get(timeout=0.2))
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if match:
            return process, match.group(1)
    process.kill()
    raise SystemExit(f"{' '.join(command)} did not print its URL: {process.stderr.read()[-2000:]}")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)  # `ownllm local` stops cleanly on SIGTERM
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def descendants(pid: int) -> set[int]:
    """Every process below pid (children, their children, ...)."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def rss_mb(pid: int) -> float:
    """Resident set size; 0 for a process that has ended."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size (memory shared with other processes counted once over them); 0 once ended."""
    try:
        return psutil.Process(pid).memory_full_info().pss / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used; 0 for a process that has ended."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def trivial_baseline(concurrency: int, duration_s: float) -> tuple[LevelSummary, float]:
    """The same load against the trivial server: (its level summary, its RSS in MB at the end)."""
    process, url = start_server([sys.executable, str(ROOT / "benchmarks" / "trivial_server.py")])
    try:
        target = runner.Target(url, KEY, "trivial", max_tokens=32, timeout_s=30)
        runner.run_level(target, concurrency, requests=concurrency)  # connections
        summary = summarise(runner.run_level(target, concurrency, duration_s=duration_s))
        return summary, rss_mb(process.pid)
    finally:
        stop_server(process)


# -- the soak ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before the first memory sample counts"
    )
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds against the trivial server")
    args = parser.parse_args()

    process, url = start_server(
        [
            sys.executable,
            "-m",
            "ownllm.cli",
            "local",
            "--port",
            "0",
            "--key",
            KEY,
            "--quiet",
            "--instances",
            str(args.concurrency),
        ]
    )
    try:
        target = runner.Target(url, KEY, "ownllm-stand-in", max_tokens=32, timeout_s=30)
        warm = runner.run_level(target, args.concurrency, duration_s=args.warmup)
        samples: list[tuple[float, float, float, int]] = []  # (t, gateway RSS, environments PSS, environments)
        done = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not done.is_set():
                envs = [p for p in sorted(descendants(process.pid)) if rss_mb(p) > 0]
                samples.append(
                    (time.monotonic() - started, rss_mb(process.pid), sum(pss_mb(p) for p in envs), len(envs))
                )
                done.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run = runner.run_level(target, args.concurrency, duration_s=args.duration)
        done.set()
        sampler.join(5)
    finally:
        stop_server(process)
    baseline, baseline_rss = trivial_baseline(args.concurrency, args.baseline)

    s = summarise(run)
    print(
        f"ownllm local, stand-in with no latency; {args.concurrency} clients; warm-up {args.warmup:g} s "
        f"({len(warm.samples)} requests, {sum(1 for x in warm.samples if x.status != 200)} failed)"
    )
    print(
        f"soak {s.elapsed_s:.1f} s: {s.requests} requests, {s.requests_per_s:.0f} req/s, "
        f"p50 {s.latency_p50_ms:.1f} ms, p99 {s.latency_p99_ms:.1f} ms, errors {s.errors or 'none'}"
    )
    print(" t (s)   gateway RSS (MB)   Lambda side PSS (MB)   processes (environments, fork server, tracker)")
    step = max(1, -(-len(samples) // 10))  # about ten rows, and always the last sample
    for t, gateway, envs, count in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"{t:6.1f}   {gateway:16.1f}   {envs:20.1f}   {count:9d}")
    first, last = samples[0], samples[-1]
    gateway_growth = last[1] - first[1]
    env_growth = last[2] - first[2]
    peak_gateway = max(x[1] for x in samples)
    print(
        f"gateway RSS: {first[1]:.1f} -> {last[1]:.1f} MB (growth {gateway_growth:+.1f} MB, peak {peak_gateway:.1f} MB)"
    )
    print(
        f"Lambda side PSS: {first[2]:.1f} -> {last[2]:.1f} MB over {last[3]} processes "
        f"(growth {env_growth:+.1f} MB, {last[2] / max(last[3], 1):.1f} MB each)"
    )
    print(
        f"baseline (trivial server, {args.concurrency} clients, {baseline.elapsed_s:.1f} s): "
        f"{baseline.requests_per_s:.0f} req/s, RSS {baseline_rss:.1f} MB; local path / baseline: "
        f"{s.requests_per_s / max(baseline.requests_per_s, 1e-9):.2f}x req/s, "
        f"{peak_gateway / max(baseline_rss, 1e-9):.1f}x gateway RSS (peak)"
    )
    ok = not s.errors and gateway_growth < GROWTH_BOUND_MB and env_growth < GROWTH_BOUND_MB
    print(f"bounds: no errors, growth < {GROWTH_BOUND_MB:g} MB after warm-up: {'ok' if ok else 'BROKEN'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
