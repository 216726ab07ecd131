"""What synth prints and writes: stderr table, cost-estimate.json, cost-estimate.md."""

from __future__ import annotations

import io
import json

import pytest

from ownllm.cost.model import Estimate
from ownllm.cost.report import markdown, mermaid_chart, print_terminal
from ownllm.cost.synth_hook import report_after_synth

from .builders import ENDPOINT, monitoring_resources, serving_resources

REQUIRED_TOP = {"daily_usd", "monthly_usd", "region", "assumptions", "unpriced", "catalog_date", "items"}
REQUIRED_ITEM = {"stack", "logical_id", "resource_type", "daily_usd", "basis"}


@pytest.fixture
def synthesized(cdk_out, settings, capsys):
    out = cdk_out(
        {"OwnLlm-Serving": serving_resources(autoscaling=(1, 2)), "OwnLlm-Monitoring": monitoring_resources()}
    )
    est = report_after_synth(out, settings())
    return out, est, capsys.readouterr()


def test_the_hook_prints_its_table_to_stderr_not_stdout(synthesized):
    _, _, captured = synthesized
    assert captured.out == ""
    assert "ownllm cost estimate: $48.84/day" in captured.err
    assert "Break-even" in captured.err and "Assumptions" in captured.err


def test_the_json_report_has_the_documented_fields(synthesized):
    out, est, _ = synthesized
    doc = json.loads((out / "cost-estimate.json").read_text())
    assert set(doc) >= REQUIRED_TOP
    assert all(set(i) >= REQUIRED_ITEM for i in doc["items"])
    assert doc["daily_usd"] == pytest.approx(est.daily_usd, abs=1e-4)
    assert doc["monthly_usd"] == pytest.approx(est.daily_usd * 730 / 24, abs=0.01)
    assert doc["catalog_date"] == "2026-11"
    assert doc["assumptions"]["requests_per_day"] == 1000
    assert doc["assumptions"]["lambda_duration_s"] == pytest.approx(5.0)


def test_the_json_report_round_trips(synthesized):
    out, est, _ = synthesized
    again = Estimate.read_json(out / "cost-estimate.json")
    assert again.daily_usd == pytest.approx(est.daily_usd, abs=1e-5)
    assert [i.key for i in again.items] == [i.key for i in est.items]


def test_the_markdown_report_has_per_stack_lines_assumptions_and_a_mermaid_chart(synthesized):
    out, _, _ = synthesized
    md = (out / "cost-estimate.md").read_text()
    assert "| OwnLlm-Serving | us-east-1 |" in md
    assert f"| OwnLlm-Serving | {ENDPOINT} | AWS::SageMaker::Endpoint | $48.72 |" in md
    assert "## Assumptions" in md and "- 1,000 requests/day" in md
    assert "```mermaid\nxychart-beta" in md
    assert "## Capacity" in md


def test_the_mermaid_chart_has_one_label_and_two_values_per_volume(synthesized):
    _, est, _ = synthesized
    chart = mermaid_chart(est)
    labels = chart.split("x-axis")[1].split("[")[1].split("]")[0].split(",")
    own, api = [line.split("[")[1].rstrip("]").split(",") for line in chart.splitlines() if "line [" in line]
    assert len(labels) == len(own) == len(api) >= 3
    assert '"1k"' in chart


def test_the_chart_marks_volumes_beyond_what_max_instances_serves(synthesized):
    """Autoscaling 1..2, 144,000 requests/day per instance: 432,000 (a third instance) is beyond;
    two instances: 2 x $48.72 + 288,000 x $0.0000153290 + $0.11 of alarms = $101.96."""
    _, est, _ = synthesized
    chart = mermaid_chart(est)
    labels = [s.strip().strip('"') for s in chart.split("x-axis")[1].split("[")[1].split("]")[0].split(",")]
    assert [label for label in labels if label.endswith("*")] == [
        label for label, b in zip(labels, est.chart["beyond_capacity"], strict=True) if b
    ]
    assert {"144k", "288k", "432k*"} <= set(labels)
    # The third instance adds $48.72 + 144,000 x $0.0000153290 of per-request lines = $50.93;
    # the API at 432,000 x (500 + 192) x $0.22 / 1M = $65.77.
    rows = [line for line in markdown(est).splitlines() if line.startswith(("| 288,000 |", "| 432,000 |"))]
    assert rows == ["| 288,000 | $101.96 | $43.85 | yes |", "| 432,000 | $152.89 | $65.77 | **no** |"]


def test_unpriced_lines_show_in_every_report(cdk_out, settings):
    r = serving_resources()
    r["Mystery"] = {"Type": "AWS::Foo::Bar"}
    out = cdk_out({"S": r})
    buf = io.StringIO()
    est = report_after_synth(out, settings(), stream=buf)
    assert "unpriced" in buf.getvalue() and "Mystery" in buf.getvalue()
    assert "| S | Mystery | AWS::Foo::Bar | **unpriced** |" in markdown(est)


@pytest.mark.parametrize("columns, shows_basis", [(80, False), (200, True)])
def test_the_basis_column_appears_only_where_the_terminal_is_wide_enough(
    cdk_out, settings, monkeypatch, columns, shows_basis
):
    est = report_after_synth(cdk_out({"S": serving_resources()}), settings(), stream=io.StringIO())
    monkeypatch.setenv("COLUMNS", str(columns))
    buf = io.StringIO()
    print_terminal(est, file=buf)
    header = next(line for line in buf.getvalue().splitlines() if "stack / resource" in line)
    assert ("basis" in header) is shows_basis


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "stream, env, colored",
    [
        (io.StringIO, {"FORCE_COLOR": "0"}, False),  # how `cdk synth` runs the app: a pipe, FORCE_COLOR=0
        (_Tty, {"NO_COLOR": "1"}, False),
        (_Tty, {}, True),
        (io.StringIO, {"FORCE_COLOR": "1"}, True),
    ],
)
def test_colour_codes_only_reach_a_terminal_and_never_with_no_color(
    cdk_out, settings, monkeypatch, stream, env, colored
):
    est = report_after_synth(cdk_out({"S": serving_resources()}), settings(), stream=io.StringIO())
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "80")
    buf = stream()
    print_terminal(est, file=buf)
    assert ("\x1b[" in buf.getvalue()) is colored


def test_the_piped_table_fits_80_columns_and_keeps_each_logical_id_on_one_line(cdk_out, settings, monkeypatch):
    long_id = "MonitoringLambdaDurationNearTimeoutAlarmBB9CFE99"
    resources = {**serving_resources(), **monitoring_resources()}
    resources[long_id] = resources.pop(next(k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"))
    est = report_after_synth(cdk_out({"OwnLlm-Monitoring": resources}), settings(), stream=io.StringIO())
    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    print_terminal(est, file=buf)
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.strip().startswith(long_id + " ") for line in lines)
