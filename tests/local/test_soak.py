"""A short soak: 16 concurrent clients through the whole local path, without one error.

Errors only, never a speed: benchmarks/local_soak.py is the long version (64 clients, 30 s,
memory sampled over time) and prints requests/s against the trivial server's as a ratio.
"""

from __future__ import annotations

from ownllm.bench import runner
from ownllm.bench.report import summarise

KEY = "test-key-0123456789"


def test_sixteen_concurrent_clients_sending_160_requests_get_no_error(make_stack):
    stack = make_stack(max_instances=16)
    target = runner.Target(stack.base_url, KEY, stack.model_name, max_tokens=16, timeout_s=10)
    runner.run_level(target, 16, requests=32)  # cold starts out of the way
    run = runner.run_level(target, 16, requests=160)
    summary = summarise(run)
    assert (summary.requests, summary.ok, summary.errors) == (160, 160, {})
    assert stack.gateway.statuses == {200: 32 + 160}  # what the gateway answered, counted on its side
    assert stack.pool.instances <= 16
    assert run.backends == {"stand-in"}
