"""A Lambda cold start in `ownllm local`: how much longer a request takes when it needs a new
execution environment (fork from the fork server, import lambda/forwarder/main.py, uvicorn's
first answer) than when one is warm.

Each round sends GET /v1/models to a warm environment, then ends every idle environment and
sends it again, so it needs a cold start. Printed: the medians and extremes of both, the
difference, and the environment's own init phase (the import) as the access log reports it.
Target (issue 12): a cold start of about 150 ms at most.

    PYTHONPATH=. .venv/bin/python benchmarks/local_cold_start.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import time

from ownllm.local.gateway import AccessRecord
from ownllm.local.stack import LocalStack

TARGET_MS = 150.0
_INIT = re.compile(r"cold start, init (\d+) ms")


def models_ms(stack: LocalStack) -> float:
    """One GET /v1/models over a new connection, in milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.gateway.port if stack.gateway else 0, timeout=30)
    started = time.perf_counter()
    try:
        conn.request("GET", "/v1/models", headers={"x-api-key": stack.api_key})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise SystemExit(f"GET /v1/models answered {response.status}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    records: list[AccessRecord] = []
    warm: list[float] = []
    cold: list[float] = []
    with LocalStack(max_instances=1, on_request=records.append) as stack:
        pool = stack.pool
        if pool is None:
            raise SystemExit("the stack has no Lambda pool")
        for _ in range(args.rounds):
            warm.append(models_ms(stack))
            pool.stop_idle()
            cold.append(models_ms(stack))
    inits = [float(m.group(1)) for r in records if (m := _INIT.search(r.note))]
    w, c = statistics.median(warm), statistics.median(cold)
    print(f"{args.rounds} rounds; GET /v1/models through ownllm local")
    print(f"warm  median {w:7.1f} ms  (min {min(warm):.1f}, max {max(warm):.1f})")
    print(f"cold  median {c:7.1f} ms  (min {min(cold):.1f}, max {max(cold):.1f})")
    print(
        f"cold start: +{c - w:.1f} ms (median), of which the environment's init (import main.py) "
        f"{statistics.median(inits):.0f} ms"
    )
    print(f"target about {TARGET_MS:g} ms: {'met' if c - w <= TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
