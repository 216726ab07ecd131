"""The pull-request workflow wires synth, diff and the comment together the way the tests assume."""

from __future__ import annotations

from pathlib import Path

import yaml

from ownllm.cost.diff import COMMENT_MARKER

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "cost-preview.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    return load()["jobs"]["cost-preview"]["steps"]


def test_it_runs_on_pull_requests_and_may_write_comments():
    doc = load()
    assert "pull_request" in doc[True]  # YAML 1.1 reads the key `on` as True
    assert doc["permissions"]["pull-requests"] == "write"


def test_it_checks_out_base_and_head_and_synths_each_with_make():
    runs = [s.get("run", "") for s in steps()]
    refs = [s.get("with", {}).get("ref", "") for s in steps() if "checkout" in s.get("uses", "")]
    assert "github.event.pull_request.base.sha" in "".join(refs)
    assert "make -C base synth" in runs and "make -C head synth" in runs


def test_the_comment_body_comes_from_the_tested_cli_and_is_found_by_the_same_marker():
    body_step = next(s for s in steps() if "cost diff" in s.get("run", ""))
    assert "--comment" in body_step["run"] and "base/cdk.out head/cdk.out" in body_step["run"]
    script = next(s for s in steps() if "github-script" in s.get("uses", ""))["with"]["script"]
    assert f"'{COMMENT_MARKER}'" in script
    assert "updateComment" in script and "createComment" in script


def test_a_failing_head_synth_still_comments_then_fails_the_job():
    by_id = {s.get("id"): s for s in steps() if s.get("id")}
    assert by_id["head"]["continue-on-error"] is True
    assert steps()[-1]["if"] == "steps.head.outcome == 'failure'"
