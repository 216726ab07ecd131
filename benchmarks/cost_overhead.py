"""How much the cost estimate adds to `cdk synth` (target: at most 10%).

    .venv/bin/python benchmarks/cost_overhead.py [--repeat 5] [--cdk-out DIR] [--no-synth]

1. Synth: `npx cdk synth --quiet` of this app with the estimate switched off
   (OWNLLM_SKIP_COST=1), into a temporary folder. Without a working app or CLI it falls back
   to synthesizing a one-stack CDK app in a fresh Python process (jsii start-up included):
   the least any synth costs.
2. Estimate: in a fresh Python process (as in the CDK app, where settings are already
   imported), the import of ownllm.cost.synth_hook plus report_after_synth() on that cdk.out
   (or on --cdk-out DIR): estimating, printing the table, writing the two reports.
Prints each median and the ratio estimate / synth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10

_HOOK = r"""
import json, sys, time, io
from ownllm.cost.cli import load_settings
settings = load_settings(sys.argv[2], [])
t0 = time.perf_counter()
from ownllm.cost.synth_hook import report_after_synth
t1 = time.perf_counter()
report_after_synth(sys.argv[1], settings, stream=io.StringIO())
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "estimate_s": t2 - t1}))
"""

_MINIMAL_APP = r"""
import time
t0 = time.perf_counter()
import aws_cdk as cdk
app = cdk.App(outdir=__import__("sys").argv[1])
stack = cdk.Stack(app, "Bench")
for n in range(40):
    cdk.CfnResource(stack, f"Topic{n}", type="AWS::SNS::Topic")
app.synth()
print(time.perf_counter() - t0)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "AWS_EC2_METADATA_DISABLED": "true",
            "OWNLLM_SKIP_COST": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def time_cdk_synth(outdir: Path) -> float | None:
    """Seconds for `npx cdk synth --quiet` of this app, or None when it cannot run here."""
    if not (ROOT / "app.py").is_file() or not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        return None
    t0 = time.perf_counter()
    done = subprocess.run(
        ["npx", "cdk", "synth", "--quiet", "-o", str(outdir)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0 or not (outdir / "manifest.json").is_file():
        print(f"npx cdk synth failed (rc {done.returncode}); falling back to a minimal CDK app", file=sys.stderr)
        return None
    return elapsed


def time_minimal_synth(outdir: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _MINIMAL_APP, str(outdir)], cwd=ROOT, env=_env(), check=True, capture_output=True
    )
    return time.perf_counter() - t0


def time_hook(cdk_out: Path, settings_file: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _HOOK, str(cdk_out), str(settings_file)],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def resource_count(cdk_out: Path) -> int:
    return sum(len(json.loads(p.read_text()).get("Resources", {})) for p in cdk_out.glob("*.template.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="estimate runs (median reported)")
    parser.add_argument("--synth-repeat", type=int, default=1, help="synth runs (median reported)")
    parser.add_argument("--cdk-out", type=Path, help="estimate this cloud assembly instead of the synthesized one")
    parser.add_argument("--settings", type=Path, default=ROOT / "cdk.json")
    parser.add_argument("--no-synth", action="store_true", help="time the minimal in-process synth only")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        synth_times: list[float] = []
        kind = "npx cdk synth --quiet (this app, OWNLLM_SKIP_COST=1)"
        for n in range(args.synth_repeat):
            out = Path(tmp) / f"synth{n}"
            t = None if args.no_synth else time_cdk_synth(out)
            if t is None:
                kind = "minimal one-stack CDK app, fresh Python process"
                t = time_minimal_synth(out)
            synth_times.append(t)
        cdk_out = args.cdk_out or Path(tmp) / "synth0"
        if not (cdk_out / "manifest.json").is_file():
            print(f"{cdk_out}: no cloud assembly to estimate", file=sys.stderr)
            return 2
        runs = [time_hook(cdk_out, args.settings) for _ in range(args.repeat)]
        resources = resource_count(cdk_out)

    synth = statistics.median(synth_times)
    imp = statistics.median(r["import_s"] for r in runs)
    est = statistics.median(r["estimate_s"] for r in runs)
    ratio = (imp + est) / synth
    print(f"cloud assembly       : {args.cdk_out or 'the one just synthesized'}, {resources} resources")
    print(f"synth                : {synth:8.3f} s  ({kind}; median of {len(synth_times)})")
    print(f"import cost hook     : {imp * 1000:8.1f} ms (median of {len(runs)})")
    print(f"estimate+print+write : {est * 1000:8.1f} ms (median of {len(runs)})")
    print(f"overhead / synth     : {ratio:8.2%}  (target <= {TARGET_RATIO:.0%})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
