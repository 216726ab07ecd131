"""The pull-request preview: `ownllm cost diff BASE HEAD [--comment]`."""

from __future__ import annotations

import json

import pytest

from ownllm.cli import main
from ownllm.cost.diff import COMMENT_MARKER, diff_estimates, markdown_diff
from ownllm.cost.estimate import estimate_cdk_out
from ownllm.cost.model import Estimate
from ownllm.cost.synth_hook import write_reports

from .builders import ENDPOINT, monitoring_resources, serving_resources


@pytest.fixture
def base_and_head(cdk_out, settings):
    """Base: one ml.g5.4xlarge ($48.7353/day); head: two, and one dashboard more ($3/month)."""
    base = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    head = cdk_out({"OwnLlm": {**serving_resources("ml.g5.4xlarge", 2), **monitoring_resources(alarms=0)}})
    s = settings(instance_count=2, max_instances=2)
    for out in (base, head):
        write_reports(estimate_cdk_out(out, s), out)
    return base, head


def test_the_total_change_is_given_in_dollars_a_day_and_percent(base_and_head):
    """+48.72 (a second instance) + 3 / 30.41667 = 0.098630 (a dashboard) = +$48.82/day;
    48.818630 / 48.7353295 = +100.2%."""
    base, head = base_and_head
    d = diff_estimates(Estimate.read_json(base / "cost-estimate.json"), Estimate.read_json(head / "cost-estimate.json"))
    assert d.delta == pytest.approx(48.72 + 3 / (730 / 24), abs=1e-4)
    assert d.percent == pytest.approx(100.17, abs=0.01)
    assert "(+$48.82/day, +100.2%)" in markdown_diff(d)


def test_lines_are_marked_added_removed_or_changed(base_and_head):
    base, head = base_and_head
    d = diff_estimates(Estimate.read_json(head / "cost-estimate.json"), Estimate.read_json(base / "cost-estimate.json"))
    kinds = {(c.kind, c.logical_id) for c in d.changes}
    assert ("changed", ENDPOINT) in kinds
    assert ("removed", "Dashboard09C8B7A00") in kinds
    assert not any(c.logical_id == "AlarmTopicD01E77F9" for c in d.changes)  # free lines are not news
    endpoint = next(c for c in d.changes if c.logical_id == ENDPOINT)
    assert (endpoint.before, endpoint.after) == (pytest.approx(97.44), pytest.approx(48.72))


def test_the_comment_body_leads_with_the_hidden_marker_and_holds_the_full_estimate(base_and_head, tmp_path):
    base, head = base_and_head
    out = tmp_path / "comment.md"
    assert main(["cost", "diff", str(base / "cost-estimate.json"), str(head), "--comment", "-o", str(out)]) == 0
    body = out.read_text()
    assert body.startswith(COMMENT_MARKER + "\n## ownllm cost preview")
    assert "| added | OwnLlm | Dashboard09C8B7A00 | AWS::CloudWatch::Dashboard |" in body
    assert "<details><summary>Full estimate for this branch</summary>" in body
    assert "xychart-beta" in body


def test_a_missing_base_still_previews_the_head(base_and_head, tmp_path, capsys):
    _, head = base_and_head
    assert main(["cost", "diff", str(tmp_path / "no-base"), str(head), "--comment"]) == 0
    body = capsys.readouterr().out
    assert "no base estimate to compare with" in body and "holds no estimate" in body


def test_a_cdk_out_without_a_written_estimate_is_estimated_from_its_templates(cdk_out, tmp_path, capsys):
    bare = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    settings_file = tmp_path / "cdk.json"
    settings_file.write_text(
        json.dumps({"context": {"ownllm": {"instance_type": "ml.g5.4xlarge", "avg_output_tokens": 192}}})
    )
    assert main(["cost", "diff", str(bare), str(bare), "--settings", str(settings_file)]) == 0
    text = capsys.readouterr().out
    assert "$48.74/day → $48.74/day (+$0.00/day, +0.0%)" in text
    assert "No resource changes its cost." in text


def test_cost_estimate_reprints_an_existing_cdk_out(cdk_out, tmp_path, capsys):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    rc = main(
        [
            "cost",
            "estimate",
            "--cdk-out",
            str(out),
            "--settings",
            str(_empty_cdk_json(tmp_path)),
            "-c",
            "avg_output_tokens=192",
            "-c",
            "generation_tokens_per_s=40",
            "--format",
            "json",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["daily_usd"] == pytest.approx(48.7353, abs=1e-4)


def test_cost_estimate_exits_non_zero_over_budget(cdk_out, tmp_path, capsys):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    rc = main(
        [
            "cost",
            "estimate",
            "--cdk-out",
            str(out),
            "--settings",
            str(_empty_cdk_json(tmp_path)),
            "-c",
            "max_daily_usd=10",
        ]
    )
    assert rc == 1
    assert "exceeds max_daily_usd" in capsys.readouterr().err


def test_cost_estimate_without_a_cdk_out_says_to_synth(tmp_path, capsys):
    assert main(["cost", "estimate", "--cdk-out", str(tmp_path), "--settings", str(_empty_cdk_json(tmp_path))]) == 2
    assert "run `cdk synth` first" in capsys.readouterr().err


def test_the_commands_are_registered_on_the_ownllm_cli(capsys):
    with pytest.raises(SystemExit):
        main(["prices", "--help"])
    assert "refresh" in capsys.readouterr().out


def _empty_cdk_json(folder):
    """A cdk.json with no settings: every setting at its default, ./cdk.json not read."""
    path = folder / "empty-cdk.json"
    path.write_text("{}")
    return path


def test_dash_c_prices_both_cdk_outs_again_rather_than_being_ignored_for_their_written_estimates(
    base_and_head, capsys, monkeypatch, tmp_path
):
    """Both folders hold a us-east-1 estimate; -c region=eu-west-1 prices their templates again:
    the endpoint goes from 1 to 2 x ml.g5.4xlarge x 24 h x $2.2736/h = $54.57 -> $109.13/day.
    Before, the written estimates were read and -c was dropped without a word."""
    monkeypatch.chdir(tmp_path)  # no ./cdk.json
    base, head = base_and_head
    assert main(["cost", "diff", str(base), str(head), "-c", "region=eu-west-1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| changed")]
    assert rows == [
        "| changed (Instance usage) | OwnLlm | ServingEndpoint5B3C1A2F | AWS::SageMaker::Endpoint | $54.57 | $109.13 "
        "| +$54.57 | 2 x ml.g5.4xlarge x 24 h x $2.2736/h [estimated price] |"
    ]


def test_dash_c_with_a_written_estimate_file_is_refused_since_it_cannot_be_priced_again(base_and_head, capsys):
    base, head = base_and_head
    written = base / "cost-estimate.json"
    assert main(["cost", "diff", str(written), str(head), "-c", "requests_per_day=5"]) == 2
    assert capsys.readouterr().err == (
        f"ownllm: {written}: a written estimate cannot be priced again with --settings or -c; give the cdk.out "
        "folder it was written into (its templates are priced again), or leave the settings out\n"
    )


def test_a_bad_dash_c_value_is_refused_even_when_both_sides_hold_written_estimates(base_and_head, capsys):
    base, head = base_and_head
    assert main(["cost", "diff", str(base), str(head), "-c", "requests_per_day=-5"]) == 2
    assert capsys.readouterr().err == "ownllm: requests_per_day: '-5' must not be negative\n"


def test_an_output_path_that_cannot_be_written_is_one_line_not_a_traceback(base_and_head, capsys, tmp_path):
    base, head = base_and_head
    assert main(["cost", "diff", str(base), str(head), "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"ownllm: --output {str(tmp_path)!r}: cannot be written (Is a directory)\n"
