"""Draw a sweep: latency percentiles and throughput against concurrency, as one PNG."""

from __future__ import annotations

from pathlib import Path

from ownllm.bench.report import BenchReport


def write_plot(report: BenchReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display here, in CI or over ssh
    import matplotlib.pyplot as plt

    levels = report.levels
    x = [lv.concurrency for lv in levels]
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    percentiles = (("p50", "latency_p50_ms", "o-"), ("p95", "latency_p95_ms", "s--"), ("p99", "latency_p99_ms", "^:"))
    for name, attr, style in percentiles:
        points = [(c, getattr(lv, attr)) for c, lv in zip(x, levels, strict=True) if getattr(lv, attr) is not None]
        if points:
            lat.plot(*zip(*points, strict=True), style, label=name)
    lat.set(title="Latency of successful requests", xlabel="concurrent requests", ylabel="latency (ms)")
    thr.plot(x, [lv.requests_per_s for lv in levels], "o-", color="tab:blue", label="requests/s")
    thr.set(title="Throughput", xlabel="concurrent requests")
    thr.set_ylabel("requests/s", color="tab:blue")
    tokens = thr.twinx()
    tokens.plot(x, [lv.output_tokens_per_s for lv in levels], "s--", color="tab:orange", label="output tokens/s")
    tokens.set_ylabel("output tokens/s", color="tab:orange")
    for ax in (lat, thr):
        if len(set(x)) > 1 and min(x) > 0 and max(x) / min(x) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(c) for c in x])
        ax.grid(True, alpha=0.3)
    for ax in (lat, thr, tokens):
        ax.set_ylim(bottom=0)
    lat.legend()
    thr.legend(handles=thr.get_lines() + tokens.get_lines(), loc="upper left")
    failed = [f"c={lv.concurrency}: {lv.requests - lv.ok} failed" for lv in levels if lv.ok < lv.requests]
    stand_in = "  [stand-in: canned text, not a model]" if report.backend == "stand-in" else ""
    fig.suptitle(
        f"{report.base_url}  model {report.model}{stand_in}" + (f"  ({'; '.join(failed)})" if failed else ""),
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
