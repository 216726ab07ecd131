"""The model against published measurements (data/measurements.csv): error on the points it was
fitted on and on held-out points, and the committed factors being what the fit gives."""

import json
import statistics
from pathlib import Path

import pytest

from ownllm.perf.calibrate import error_table, fit, load_measurements, render, render_markdown, summary
from ownllm.perf.predict import CALIBRATION_JSON, calibrated


def test_every_measurement_names_its_source_and_split():
    points = load_measurements()
    assert len(points) >= 60
    assert {p.split for p in points} == {"fit", "holdout"}
    assert sum(p.split == "holdout" for p in points) >= 20
    assert all(len(p.source) > 40 for p in points)


def test_the_model_is_within_its_error_budget_on_published_measurements():
    rows = error_table(calibrated())
    print("\n" + render(rows))
    for kind, budget in (("throughput", 0.20), ("single_stream", 0.20)):
        for split in ("fit", "holdout"):
            sel = [r.error for r in rows if r.measurement.kind == kind and r.measurement.split == split]
            assert statistics.median(sel) <= budget, (kind, split)
    worst = max(rows, key=lambda r: r.ratio)
    assert worst.ratio < 2.0, worst.measurement.id


def test_the_committed_factors_are_what_the_fit_gives():
    committed = json.loads(CALIBRATION_JSON.read_text())
    refit = fit().to_dict()
    assert set(refit) == set(committed["factors"])
    for name, value in committed["factors"].items():
        assert refit[name] == pytest.approx(value, rel=0.01, abs=1e-9), name
    assert committed["error"] == {
        k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in summary(error_table(calibrated())).items()
    }


def test_the_error_tables_in_the_docs_are_the_current_ones():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "performance.md").read_text()
    assert render_markdown(error_table(calibrated())) in doc
