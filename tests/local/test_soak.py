"""A short soak: 16 concurrent clients for ~2 s through the whole local path, without one error.

benchmarks/local_soak.py is the long version (64 clients, 30 s, memory sampled over time).
"""

from __future__ import annotations

from ownllm.bench import runner
from ownllm.bench.report import summarise

KEY = "test-key-0123456789"


def test_sixteen_concurrent_clients_for_two_seconds_get_no_error(make_stack):
    stack = make_stack(max_instances=16)
    target = runner.Target(stack.base_url, KEY, stack.model_name, max_tokens=16, timeout_s=10)
    runner.run_level(target, 16, requests=32)  # cold starts out of the way
    run = runner.run_level(target, 16, duration_s=2.0)
    summary = summarise(run)
    assert summary.errors == {}
    assert summary.requests >= 100  # hundreds on two cores; 100 leaves room for a busy machine
    assert summary.requests_per_s > 50
    assert set(stack.gateway.statuses) == {200}
    assert stack.pool.instances <= 16
    assert run.backends == {"stand-in"}
