"""Fit the performance model's efficiency factors on published measurements.

The points (data/measurements.csv) carry their source and a split: `fit` points drive the
fit, `holdout` points only check it. The fit is a deterministic Nelder-Mead over a handful
of bounded factors minimising the mean squared log error, each engine's points weighing the
same in total. `python -m ownllm.perf.calibrate` prints the error table; `--write` stores
the factors in data/calibration.json (committed; a test re-runs the fit and compares).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from ownllm.perf import hardware, models
from ownllm.perf.predict import CALIBRATION_JSON, Efficiency, measure

MEASUREMENTS_CSV = Path(__file__).resolve().parent / "data" / "measurements.csv"

# (low, high) for each factor: the fit cannot leave physically sensible ranges.
BOUNDS: dict[str, tuple[float, float]] = {
    "bandwidth": (0.3, 0.92),  # stream benchmarks reach ~90% of datasheet HBM/GDDR bandwidth
    "flops": (0.15, 1.0),
    "dequant_flops_per_weight": (0.0, 500.0),
    "step_overhead_s": (0.0, 0.03),
    "layer_overhead_s": (0.0, 0.0003),
    "legacy_layer_overhead_s": (0.0, 0.0003),
    "seq_overhead_s": (0.0, 0.0005),
    "legacy_vllm_step_overhead_s": (0.0, 0.03),
    "legacy_tgi_step_overhead_s": (0.0, 0.03),
    "legacy_seq_overhead_s": (0.0, 0.0005),
    "allreduce_nvlink_s": (0.0, 0.0005),
    "legacy_tgi_pcie_bandwidth": (0.05, 1.0),
    "legacy_tgi_allreduce_pcie_s": (0.0, 0.0005),
    "tp_step_sync_s": (0.0, 0.003),
    "legacy_tgi_tp_sync_s": (0.0, 0.006),
}
START: dict[str, float] = {
    "bandwidth": 0.8,
    "flops": 0.5,
    "dequant_flops_per_weight": 60.0,
    "step_overhead_s": 0.002,
    "layer_overhead_s": 0.00003,
    "legacy_layer_overhead_s": 0.00005,
    "seq_overhead_s": 0.00002,
    "legacy_vllm_step_overhead_s": 0.005,
    "legacy_tgi_step_overhead_s": 0.005,
    "legacy_seq_overhead_s": 0.00005,
    "allreduce_nvlink_s": 0.00001,
    "legacy_tgi_pcie_bandwidth": 0.5,
    "legacy_tgi_allreduce_pcie_s": 0.00003,
    "tp_step_sync_s": 0.0003,
    "legacy_tgi_tp_sync_s": 0.001,
}
NAMES = [f.name for f in fields(Efficiency)]


@dataclass(frozen=True)
class Measurement:
    id: str
    split: str
    engine: str
    gpu: str
    gpu_count: int
    model: str
    precision: str
    input_tokens: int
    output_tokens: int
    concurrency: int
    metric: str
    value: float
    counting: str
    source: str

    @property
    def kind(self) -> str:
        """throughput (aggregate), single_stream (one request alone) or loaded_speed (per request under load)."""
        if self.metric == "output_tokens_per_s":
            return "throughput"
        return "single_stream" if self.concurrency == 1 else "loaded_speed"


def load_measurements(path: Path = MEASUREMENTS_CSV) -> list[Measurement]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(line for line in fh if not line.startswith("#"))
        return [
            Measurement(
                r["id"],
                r["split"],
                r["engine"],
                r["gpu"],
                int(r["gpu_count"]),
                r["model"],
                r["precision"],
                int(r["input_tokens"]),
                int(r["output_tokens"]),
                int(r["concurrency"]),
                r["metric"],
                float(r["value"]),
                r["counting"],
                r["source"],
            )
            for r in reader
        ]


def predicted(m: Measurement, eff: Efficiency) -> float:
    arch = models.resolve(m.model)
    hw = hardware.for_gpu(m.gpu, m.gpu_count)
    return measure(arch, hw, m.precision, m.engine, m.input_tokens, m.output_tokens, m.concurrency, m.metric, eff)


def _to_eff(x: Sequence[float]) -> Efficiency:
    values = {}
    for name, xi in zip(NAMES, x, strict=True):
        lo, hi = BOUNDS[name]
        values[name] = lo + (hi - lo) / (1.0 + math.exp(-xi))
    return Efficiency(**values)


def _from_eff(values: dict[str, float]) -> list[float]:
    out = []
    for name in NAMES:
        lo, hi = BOUNDS[name]
        p = min(max((values[name] - lo) / (hi - lo), 1e-6), 1 - 1e-6)
        out.append(math.log(p / (1 - p)))
    return out


def loss(points: Sequence[Measurement], eff: Efficiency) -> float:
    per_engine = Counter(p.engine for p in points)
    total = 0.0
    for p in points:
        err = math.log(predicted(p, eff) / p.value)
        total += err * err / per_engine[p.engine]
    return total / len(per_engine)


def nelder_mead(f: Callable[[list[float]], float], x0: list[float], max_evals: int, step: float = 0.6) -> list[float]:
    """Plain deterministic Nelder-Mead (no dependency on scipy)."""
    n = len(x0)
    simplex = [list(x0)] + [[x0[j] + (step if j == i else 0.0) for j in range(n)] for i in range(n)]
    values = [f(x) for x in simplex]
    evals = n + 1
    while evals < max_evals:
        order = sorted(range(n + 1), key=lambda i: values[i])
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if values[-1] - values[0] < 1e-10:
            break
        centroid = [sum(x[j] for x in simplex[:-1]) / n for j in range(n)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centroid, worst, strict=True)]
        fr = f(reflected)
        evals += 1
        if fr < values[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centroid, worst, strict=True)]
            fe = f(expanded)
            evals += 1
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centroid, worst, strict=True)]
            fc = f(contracted)
            evals += 1
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [[b + 0.5 * (x - b) for b, x in zip(best, s, strict=True)] for s in simplex[1:]]
                values = [values[0]] + [f(s) for s in simplex[1:]]
                evals += n
    return simplex[min(range(n + 1), key=lambda i: values[i])]


def fit(points: Sequence[Measurement] | None = None, max_evals: int = 2500) -> Efficiency:
    """The factors minimising the fit points' error; restarted once from the first optimum."""
    fit_points = [p for p in (points or load_measurements()) if p.split == "fit"]

    def objective(x: list[float]) -> float:
        return loss(fit_points, _to_eff(x))

    x = _from_eff(START)
    for _ in range(3):
        x = nelder_mead(objective, x, max_evals)
    eff = _to_eff(x)
    # Four significant digits; a factor the fit drove to its floor (below a nanosecond) is zero.
    return Efficiency(**{k: float(f"{v:.4g}") if v >= 1e-9 else 0.0 for k, v in eff.to_dict().items()})


@dataclass(frozen=True)
class ErrorRow:
    measurement: Measurement
    predicted: float

    @property
    def error(self) -> float:
        """Relative error of the prediction (0.1 = 10% off either way, as measured over predicted or back)."""
        return abs(self.predicted - self.measurement.value) / self.measurement.value

    @property
    def ratio(self) -> float:
        r = self.predicted / self.measurement.value
        return max(r, 1 / r)


def error_table(eff: Efficiency, points: Sequence[Measurement] | None = None) -> list[ErrorRow]:
    return [ErrorRow(p, predicted(p, eff)) for p in (points or load_measurements())]


def summary(rows: Sequence[ErrorRow]) -> dict[str, dict[str, float]]:
    """Median and max relative error and worst ratio per (split, kind)."""
    out: dict[str, dict[str, float]] = {}
    for split in ("fit", "holdout"):
        for kind in ("throughput", "single_stream", "loaded_speed"):
            sel = [r for r in rows if r.measurement.split == split and r.measurement.kind == kind]
            if sel:
                out[f"{split}/{kind}"] = {
                    "n": len(sel),
                    "median_error": statistics.median(r.error for r in sel),
                    "max_error": max(r.error for r in sel),
                    "max_ratio": max(r.ratio for r in sel),
                }
    return out


def render(rows: Sequence[ErrorRow]) -> str:
    lines = [f"{'id':44} {'split':7} {'kind':13} {'measured':>9} {'predicted':>9} {'error':>7}"]
    for r in rows:
        m = r.measurement
        lines.append(f"{m.id:44} {m.split:7} {m.kind:13} {m.value:9.1f} {r.predicted:9.1f} {r.error:7.1%}")
    lines.append("")
    for key, s in summary(rows).items():
        lines.append(
            f"{key:28} n={s['n']:<3.0f} median {s['median_error']:6.1%}  max {s['max_error']:6.1%}  worst ratio {s['max_ratio']:.2f}x"
        )
    return "\n".join(lines)


def render_markdown(rows: Sequence[ErrorRow]) -> str:
    """The factor, summary and per-point tables for docs/performance.md."""
    from ownllm.perf.predict import calibrated

    lines = ["| factor | fitted |", "| --- | ---: |"]
    lines += [f"| `{k}` | {v:g} |" for k, v in calibrated().to_dict().items()]
    lines += [
        "",
        "| split / kind | points | median error | max error | worst ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, s in summary(rows).items():
        lines.append(
            f"| {key} | {s['n']:.0f} | {s['median_error']:.1%} | {s['max_error']:.1%} | {s['max_ratio']:.2f}x |"
        )
    lines += [
        "",
        "| point | split | engine | GPUs | model | prec | in/out | C | metric | measured | predicted | error |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        m = r.measurement
        lines.append(
            f"| {m.id} | {m.split} | {m.engine} | {m.gpu_count} x {m.gpu} | {m.model.split('/')[-1]} | {m.precision} "
            f"| {m.input_tokens}/{m.output_tokens} | {m.concurrency} | {m.kind} | {m.value:,.1f} | {r.predicted:,.1f} "
            f"| {r.error:.1%} |"
        )
    return "\n".join(lines)


def write(eff: Efficiency, path: Path = CALIBRATION_JSON) -> None:
    rows = error_table(eff)
    payload = {
        "about": "Fitted by `python -m ownllm.perf.calibrate --write` on data/measurements.csv (split=fit).",
        "factors": eff.to_dict(),
        "error": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in summary(rows).items()},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ownllm.perf.calibrate", description=__doc__)
    parser.add_argument("--write", action="store_true", help="re-fit and store the factors in data/calibration.json")
    parser.add_argument("--markdown", action="store_true", help="print the error tables as Markdown")
    args = parser.parse_args(argv)
    from ownllm.perf.predict import calibrated

    eff = fit() if args.write else calibrated()
    if args.write:
        write(eff)
    if args.markdown:
        print(render_markdown(error_table(eff)))  # noqa: T201 - a developer tool that prints its table
        return 0
    print(json.dumps(eff.to_dict(), indent=2))  # noqa: T201 - a developer tool that prints its table
    print(render(error_table(eff)))  # noqa: T201 - same
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
