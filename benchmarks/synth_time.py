"""`make synth` time against an empty CDK app's synth, in the same run (target: within 2.5x).

Both go through the pinned CDK CLI (`npx cdk synth`), so CLI start-up, jsii start-up and
the Python interpreter are in both figures; the difference is ownllm's own work: settings,
image resolution, the three stacks, cdk-nag validation and the cost estimate.

    .venv/bin/python benchmarks/synth_time.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.5


def synth_seconds(app_command: str | None) -> float:
    out = tempfile.mkdtemp(prefix="ownllm-bench-")
    cmd = ["npx", "cdk", "synth", "--quiet", "--output", out]
    if app_command:
        cmd += ["--app", app_command]
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = str(ROOT / ".venv" / "bin" / "python")
    empty, ours = [], []
    synth_seconds(None)  # warm the file cache and npx
    for _ in range(args.runs):  # interleaved, so drift on the machine hits both alike
        empty.append(synth_seconds(f"{python} benchmarks/empty_app.py"))
        ours.append(synth_seconds(None))
    e, o = statistics.median(empty), statistics.median(ours)
    ratio = o / e
    print(f"empty CDK app synth : median {e:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in empty)})")
    print(f"ownllm synth        : median {o:6.2f} s  (runs: {', '.join(f'{x:.2f}' for x in ours)})")
    print(
        f"ratio               : {ratio:.2f}x  (target <= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
