"""How fast `ownllm bench` can drive a server, and how much of a sweep's cost is the bench itself.

Two servers, each in its own process, so the bench's CPU and the server's can be told apart:

- local: `ownllm local` with the stand-in answering at once (gateway, the real forwarder
  Lambda in its execution environments, the SageMaker runtime): the whole local path;
- trivial: `python benchmarks/trivial_server.py`, one fixed OpenAI answer with no work
  behind it: the most this machine lets the bench drive at all, and the baseline: each
  level's local requests/s is also printed as a ratio to the trivial server's.

For each concurrency level (after a warm-up that starts every Lambda environment), the
bench's runner sends chat completions for --duration seconds; printed per level: requests/s,
p50/p99 latency, and CPU per request of the bench process (client) and of the server's
process tree (server), read from the kernel's counters.

Target (issue 5): at least 200 requests/s against the zero-latency stand-in on 2 cores.

    .venv/bin/python benchmarks/bench_overhead.py [--duration 5] [--concurrency 1,4,16,64]

A benchmark, not a test: it prints figures and a verdict; exit 1 if the target is missed.
CPU time of the server's process tree comes from psutil (a dev dependency).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from local_soak import ROOT, cpu_s, descendants, start_server, stop_server

sys.path.insert(0, str(ROOT))

from ownllm.bench import runner
from ownllm.bench.report import summarise

KEY = "overhead-key"
TARGET_RPS = 200.0


def sweep(name: str, command: list[str], model: str, levels: list[int], duration_s: float) -> list[dict]:
    process, url = start_server(command)
    rows = []
    try:
        target = runner.Target(url, KEY, model, max_tokens=16, timeout_s=30)
        runner.run_level(target, max(levels), duration_s=min(3.0, duration_s))  # connections, cold starts
        for level in levels:
            tree = [process.pid, *descendants(process.pid)]
            server_before = sum(cpu_s(p) for p in tree)
            client_before = time.process_time()
            run = runner.run_level(target, level, duration_s=duration_s)
            client = time.process_time() - client_before
            tree = [process.pid, *descendants(process.pid)]  # environments started since count from their start
            server = sum(cpu_s(p) for p in tree) - server_before
            s = summarise(run)
            done = max(s.requests, 1)
            rows.append(
                {
                    "server": name,
                    "concurrency": level,
                    "requests_per_s": s.requests_per_s,
                    "p50_ms": s.latency_p50_ms,
                    "p99_ms": s.latency_p99_ms,
                    "errors": s.errors,
                    "client_us": client / done * 1e6,
                    "server_us": server / done * 1e6,
                }
            )
    finally:
        stop_server(process)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level (default 5)")
    parser.add_argument("--concurrency", default="1,4,16,64", help="levels (default 1,4,16,64)")
    args = parser.parse_args()
    levels = sorted({int(x) for x in args.concurrency.split(",")})

    rows = sweep(
        "local",
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
            str(max(levels)),
        ],
        "ownllm-stand-in",
        levels,
        args.duration,
    )
    rows += sweep(
        "trivial", [sys.executable, str(ROOT / "benchmarks" / "trivial_server.py")], "trivial", levels, args.duration
    )

    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.duration:g} s per level, bench and server "
        "in separate processes on the same machine"
    )
    print(
        f"{'server':<8} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'client CPU/req':>15} "
        f"{'server CPU/req':>15}  errors"
    )
    for r in rows:
        print(
            f"{r['server']:<8} {r['concurrency']:>4} {r['requests_per_s']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['client_us']:>12.0f} us {r['server_us']:>12.0f} us  {r['errors'] or 'none'}"
        )
    trivial_rps = {r["concurrency"]: r["requests_per_s"] for r in rows if r["server"] == "trivial"}
    for r in rows:
        if r["server"] == "local":
            print(
                f"c={r['concurrency']}: local / trivial = {r['requests_per_s']:.0f} / "
                f"{trivial_rps[r['concurrency']]:.0f} req/s = {r['requests_per_s'] / max(trivial_rps[r['concurrency']], 1e-9):.2f}x"
            )
    local_best = max(r["requests_per_s"] for r in rows if r["server"] == "local")
    client_us = max(r["client_us"] for r in rows)
    print(
        f"bench client CPU per request: at most {client_us:.0f} us, so one core drives about "
        f"{1e6 / client_us:,.0f} requests/s before the bench itself is the limit"
    )
    ok = local_best >= TARGET_RPS and not any(r["errors"] for r in rows)
    print(
        f"target: >= {TARGET_RPS:.0f} req/s against the zero-latency stand-in: best {local_best:.0f} req/s, "
        f"{'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
