"""Summarise a sweep into per-level figures, save them as JSON, print them as a table."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ownllm import __version__
from ownllm.bench.runner import LevelRun

if TYPE_CHECKING:
    from rich.table import Table


def percentiles(values: Sequence[float]) -> list[float]:
    """p1..p99 of the values: `percentiles(values)[q - 1]` is the q-th percentile.

    statistics.quantiles' 'inclusive' method is numpy's default ('linear'): for n sorted
    values the q-th percentile sits at rank (n - 1) * q / 100, a fractional rank
    interpolated between its two neighbours. One value is every percentile of itself
    (quantiles asks for two before Python 3.13).
    """
    if not values:
        raise ValueError("percentiles of no values")
    if len(values) == 1:
        return [float(values[0])] * 99
    return statistics.quantiles(values, n=100, method="inclusive")


@dataclass(frozen=True)
class LevelSummary:
    concurrency: int
    requests: int
    ok: int
    # status code (or 'timeout', 'connection', 'bad_response') -> count, for failed requests only
    errors: dict[str, int]
    elapsed_s: float
    requests_per_s: float
    output_tokens_per_s: float
    # Latency of successful requests, milliseconds; None when none succeeded.
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    # Median over successful requests of output tokens / request latency: the speed one
    # client sees, including the network, the Lambda and the prompt's prefill.
    # requests_per_s and output_tokens_per_s count successful requests only: throughput
    # bought with errors is not throughput.
    request_tokens_per_s: float | None
    interrupted: bool = False

    @property
    def error_rate(self) -> float:
        return (self.requests - self.ok) / self.requests if self.requests else 0.0


def summarise(run: LevelRun) -> LevelSummary:
    ok = [s for s in run.samples if isinstance(s.status, int) and 200 <= s.status < 300]
    errors = Counter(str(s.status) for s in run.samples if not (isinstance(s.status, int) and 200 <= s.status < 300))
    latencies_ms = [s.latency_s * 1000 for s in ok]
    elapsed = max(run.elapsed_s, 1e-9)
    per_request_speed = [s.output_tokens / s.latency_s for s in ok if s.latency_s > 0 and s.output_tokens > 0]

    cuts = percentiles(latencies_ms) if latencies_ms else None

    def pct(q: int) -> float | None:
        return round(cuts[q - 1], 3) if cuts else None

    return LevelSummary(
        concurrency=run.concurrency,
        requests=len(run.samples),
        ok=len(ok),
        errors=dict(sorted(errors.items())),
        elapsed_s=round(run.elapsed_s, 4),
        requests_per_s=round(len(ok) / elapsed, 3),
        output_tokens_per_s=round(sum(s.output_tokens for s in ok) / elapsed, 3),
        latency_p50_ms=pct(50),
        latency_p95_ms=pct(95),
        latency_p99_ms=pct(99),
        latency_mean_ms=round(statistics.fmean(latencies_ms), 3) if latencies_ms else None,
        request_tokens_per_s=round(statistics.median(per_request_speed), 3) if per_request_speed else None,
        interrupted=run.interrupted,
    )


@dataclass
class BenchReport:
    base_url: str
    model: str
    max_tokens: int
    # 'requests' (a count per level) or 'duration' (seconds per level), and its value.
    mode: str
    per_level: float
    levels: list[LevelSummary] = field(default_factory=list)
    # What answered, when the target says (`ownllm local` does: "stand-in" or "upstream").
    backend: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    tool: str = f"ownllm-bench {__version__}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BenchReport:
        levels = [LevelSummary(**level) for level in raw.get("levels", [])]
        return cls(**{**raw, "levels": levels})

    def write_json(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read_json(cls, path: Path) -> BenchReport:
        return cls.from_dict(json.loads(path.read_text()))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(report: BenchReport) -> Table:
    """A rich Table of the sweep, one row per concurrency level."""
    from rich.table import Table

    t = Table(
        title=f"ownllm bench: {report.base_url} (model {report.model}, max_tokens {report.max_tokens})"
        + (" - the STAND-IN answered: canned text, not a model's speed" if report.backend == "stand-in" else ""),
        caption="tok/s: output tokens/s of all clients; tok/s/req: median output tokens/s one request saw",
    )
    for name in ("conc", "reqs", "req/s", "tok/s", "p50 ms", "p95 ms", "p99 ms", "tok/s/req", "errors"):
        last = name == "errors"  # the one column of free text: left-aligned, allowed to wrap
        t.add_column(name, justify="left" if last else "right", no_wrap=not last, min_width=6 if last else None)
    for lv in report.levels:
        errors = ", ".join(f"{k}: {v}" for k, v in lv.errors.items()) or "none"
        t.add_row(
            str(lv.concurrency),
            f"{lv.requests}" + (" (stopped)" if lv.interrupted else ""),
            f"{lv.requests_per_s:,.1f}",
            f"{lv.output_tokens_per_s:,.1f}",
            _ms(lv.latency_p50_ms),
            _ms(lv.latency_p95_ms),
            _ms(lv.latency_p99_ms),
            "-" if lv.request_tokens_per_s is None else f"{lv.request_tokens_per_s:,.1f}",
            errors,
            style="red" if lv.errors else None,
        )
    return t
