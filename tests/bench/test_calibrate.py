"""--calibrate: measured speeds into cdk.json's context.ownllm, where the cost estimate reads them."""

from __future__ import annotations

import difflib
import json

import pytest

from ownllm.bench.calibrate import CalibrationError, calibration_from, write_calibration
from ownllm.cost.usage import usage_from_settings
from ownllm.settings import Settings


def test_generation_speed_comes_from_the_lowest_healthy_level_and_throughput_from_the_best(report, level):
    """c=1 sees 30 tok/s per request; the best aggregate is 900 tok/s at c=16; over 2 instances: 450 each."""
    sweep = report(
        [
            level(1, per_request=30.0, tokens_s=30.0),
            level(4, per_request=28.0, tokens_s=110.0),
            level(16, per_request=25.0, tokens_s=900.0),
            level(64, per_request=12.0, tokens_s=700.0),
        ]
    )
    calibration = calibration_from(sweep, instances=2)
    assert calibration.generation_tokens_per_s == 30.0
    assert calibration.generation_from_concurrency == 1
    assert calibration.instance_tokens_per_s == 450.0
    assert calibration.throughput_from_concurrency == 16


def test_levels_with_more_than_one_percent_errors_are_not_trusted(report, level):
    sweep = report(
        [
            level(1, ok=97, requests=100, per_request=99.0, tokens_s=99.0),  # 3% failed: ignored
            level(4, ok=995, requests=1000, per_request=20.0, tokens_s=80.0),  # 0.5%: fine
            level(16, ok=50, requests=100, tokens_s=5000.0),
        ]
    )
    calibration = calibration_from(sweep)
    assert (calibration.generation_tokens_per_s, calibration.instance_tokens_per_s) == (20.0, 80.0)


def test_a_sweep_without_a_healthy_level_is_refused_saying_why(report, level):
    with pytest.raises(CalibrationError, match="c=1: 10/100 ok"):
        calibration_from(report([level(1, ok=10, requests=100)]))


@pytest.mark.parametrize(("model", "backend"), [("ownllm-stand-in", None), ("Qwen/Qwen2.5-7B-Instruct", "stand-in")])
def test_the_stand_ins_canned_speed_is_never_calibrated_from(report, level, model, backend):
    with pytest.raises(CalibrationError, match="stand-in"):
        calibration_from(report([level(1)], model=model, backend=backend))


def test_writing_changes_only_the_two_values_and_keeps_the_rest_of_cdk_json(cdk_json, report, level):
    before = cdk_json.read_text()
    changes = write_calibration(cdk_json, calibration_from(report([level(1, per_request=31.5, tokens_s=640.0)])))
    after = cdk_json.read_text()
    assert changes == {"generation_tokens_per_s": (None, 31.5), "instance_tokens_per_s": (None, 640.0)}
    diff = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert diff == [
        '-      "avg_output_tokens": 250',
        '+      "avg_output_tokens": 250,',
        '+      "generation_tokens_per_s": 31.5,',
        '+      "instance_tokens_per_s": 640.0',
    ]
    old, new = json.loads(before), json.loads(after)
    del new["context"]["ownllm"]["generation_tokens_per_s"], new["context"]["ownllm"]["instance_tokens_per_s"]
    assert new == old


def test_a_second_calibration_replaces_the_first_and_reports_the_old_values(cdk_json, report, level):
    write_calibration(cdk_json, calibration_from(report([level(1, per_request=31.5, tokens_s=640.0)])))
    changes = write_calibration(cdk_json, calibration_from(report([level(1, per_request=40.0, tokens_s=700.0)])))
    assert changes == {"generation_tokens_per_s": (31.5, 40.0), "instance_tokens_per_s": (640.0, 700.0)}
    assert json.loads(cdk_json.read_text())["context"]["ownllm"]["generation_tokens_per_s"] == 40.0


def test_the_cost_estimate_reads_what_calibration_wrote(cdk_json, report, level):
    write_calibration(cdk_json, calibration_from(report([level(1, per_request=31.5, tokens_s=640.0)])))
    usage = usage_from_settings(Settings.from_context(json.loads(cdk_json.read_text())["context"]["ownllm"]))
    assert (usage.generation_tokens_per_s, usage.instance_tokens_per_s) == (31.5, 640.0)
    assert usage.instance_tokens_per_s_source == "settings.instance_tokens_per_s"


def test_a_cdk_json_indented_with_tabs_stays_indented_with_tabs(tmp_path, report, level):
    path = tmp_path / "cdk.json"
    path.write_text('{\n\t"app": "python3 app.py",\n\t"context": {}\n}\n')
    write_calibration(path, calibration_from(report([level(1)])))
    assert '\n\t\t"ownllm": {\n\t\t\t"generation_tokens_per_s"' in path.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{nope", "not valid JSON"),
        ("[]", "does not hold a JSON object"),
        ('{"context": []}', "context is not an object"),
        ('{"context": {"ownllm": 3}}', "context.ownllm is not an object"),
    ],
)
def test_a_cdk_json_that_cannot_take_the_values_is_refused_and_left_alone(tmp_path, report, level, content, message):
    path = tmp_path / "cdk.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        write_calibration(path, calibration_from(report([level(1)])))
    assert (path.read_text() if content is not None else None) == content
