"""How long `ownllm plan` takes to rank the whole price catalog (budget: under 1 s).

Run from a checkout: .venv/bin/python benchmarks/plan_time.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ownllm.cost.catalog import load_catalog
from ownllm.perf import plan as planner
from ownllm.perf.models import resolve

BUDGET_S = 1.0


def main() -> int:
    catalog = load_catalog()
    traffic = planner.Traffic(requests_per_day=100_000, input_tokens=512, output_tokens=256, active_hours=10)
    times = []
    for model_id in ("Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mixtral-8x7B-v0.1"):
        model = resolve(model_id)
        for _ in range(5):
            t0 = time.perf_counter()
            options = planner.plan(model, traffic, catalog)
            planner.api_option(model, traffic, catalog)
            times.append(time.perf_counter() - t0)
    worst = max(times)
    print(
        f"plan over {len(options)} instance types: median {statistics.median(times) * 1000:.1f} ms, "
        f"worst {worst * 1000:.1f} ms (budget {BUDGET_S * 1000:.0f} ms)"
    )
    return 0 if worst < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
