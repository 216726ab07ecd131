"""Per-level figures from raw samples, the JSON they are saved as, the table and the plot."""

from __future__ import annotations

import io
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ownllm.bench.plot import write_plot
from ownllm.bench.report import BenchReport, percentiles, summarise, table
from ownllm.bench.runner import LevelRun, Sample


def test_percentiles_interpolate_between_closest_ranks_like_numpys_default():
    """[10, 20, 30, 40]: rank = 3 * q / 100; p1 -> 0.03 -> 10.3; p50 -> 1.5 -> 25; p95 -> 2.85 -> 38.5;
    p99 -> 2.97 -> 39.7."""
    cuts = percentiles([40, 10, 30, 20])
    assert len(cuts) == 99
    assert (cuts[0], cuts[49], cuts[94], cuts[98]) == pytest.approx((10.3, 25.0, 38.5, 39.7))


def test_one_value_is_every_percentile_of_itself():
    assert percentiles([7.0]) == [7.0] * 99


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_lie_within_the_values_and_never_decrease(values):
    """Up to a unit in the last place (ulp): between two equal neighbours statistics.quantiles' weighted sum
    lands on either side of them by one ulp, so two cuts can also step down by two."""
    cuts = percentiles(values)
    ulp = math.ulp(max(values))
    assert min(values) - ulp <= cuts[0] and cuts[-1] <= max(values) + ulp
    assert all(low <= high + 2 * ulp for low, high in itertools.pairwise(cuts))


def test_percentiles_of_nothing_are_refused():
    with pytest.raises(ValueError, match="percentiles of no values"):
        percentiles([])


def test_a_level_summary_counts_successes_errors_by_status_and_throughput():
    """4 ok answers of 10 tokens in 2 s -> 2 requests/s and 20 tokens/s; latencies from the ok ones only."""
    samples = [
        Sample(200, 0.1, 10, 0),
        Sample(200, 0.2, 10, 0),
        Sample(200, 0.3, 10, 0),
        Sample(200, 0.4, 10, 0),
        Sample(503, 5.0, 0, 0),
        Sample("timeout", 9.0, 0, 0),
        Sample(503, 5.0, 0, 0),
    ]
    summary = summarise(LevelRun(concurrency=4, samples=samples, elapsed_s=2.0))
    assert (summary.requests, summary.ok) == (7, 4)
    assert summary.errors == {"503": 2, "timeout": 1}
    assert summary.requests_per_s == 2.0
    assert summary.output_tokens_per_s == 20.0
    assert summary.latency_p50_ms == pytest.approx(250.0)
    assert summary.latency_p99_ms == pytest.approx(397.0)
    # 10 tokens in 0.1, 0.2, 0.3, 0.4 s: 100, 50, 33.3, 25 tokens/s; the median is (50 + 33.3) / 2
    assert summary.request_tokens_per_s == pytest.approx((50 + 100 / 3) / 2, abs=1e-3)
    assert summary.error_rate == pytest.approx(3 / 7)


def test_a_level_where_nothing_succeeded_has_no_latency_figures():
    summary = summarise(LevelRun(concurrency=1, samples=[Sample(403, 0.01, 0, 0)], elapsed_s=1.0))
    assert summary.ok == 0
    assert summary.latency_p50_ms is None
    assert summary.request_tokens_per_s is None


def test_a_report_survives_a_round_trip_through_json(tmp_path, report, level):
    original = report([level(1), level(4, ok=90, requests=100)], backend="upstream")
    path = original.write_json(tmp_path / "out" / "bench.json")
    assert BenchReport.read_json(path) == original


def test_the_table_has_one_row_per_level_with_its_errors():
    from rich.console import Console

    samples = [Sample(200, 0.1, 5, 0), Sample(429, 0.1, 0, 0)]
    bench = BenchReport(
        "http://127.0.0.1:1/v1",
        "m",
        16,
        "requests",
        2,
        levels=[summarise(LevelRun(1, samples, 1.0)), summarise(LevelRun(8, samples, 1.0))],
    )
    out = io.StringIO()
    Console(file=out, width=160).print(table(bench))
    text = out.getvalue()
    assert text.count("429: 1") == 2
    assert "p99 ms" in text


def test_a_sweep_of_the_stand_in_says_so_in_the_table_title(report, level):
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=200).print(table(report([level(1)], model="x", backend="stand-in")))
    assert "STAND-IN answered" in out.getvalue()


def test_the_plot_is_a_png_of_latency_and_throughput_against_concurrency(tmp_path, report, level):
    path = write_plot(
        report([level(1), level(4), level(16, ok=50, requests=100), level(64, ok=0, requests=10)]),
        tmp_path / "plots" / "bench.png",
    )
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_a_single_level_plots_too(tmp_path, report, level):
    assert write_plot(report([level(1)]), tmp_path / "one.png").read_bytes().startswith(b"\x89PNG")
