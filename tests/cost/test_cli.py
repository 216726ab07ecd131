"""`ownllm cost estimate|diff` and `ownllm prices ...` on bad input: one line, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ownllm.cli import main
from ownllm.regions import unsupported_region_problem
from ownllm.settings import write_recorded_settings

from .builders import serving_resources
from .conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


def estimate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["cost", "estimate", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cost_estimate_prices_a_cdk_out_with_the_settings_synth_recorded_there(cdk_out, capsys, monkeypatch, tmp_path):
    """Recorded: 0 requests/day, so the per-request lines are $0 and the endpoint's 48.72 is the bill
    (1 x ml.g5.4xlarge x 24 h x $2.03). The cdk.json in the working folder says 1,000 and is not used."""
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    write_recorded_settings(out, make_settings(requests_per_day=0))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"ownllm": {"requests_per_day": 1000}}}))
    doc = estimate_json(capsys, "--cdk-out", str(out))
    assert doc["assumptions"]["requests_per_day"] == 0
    assert doc["daily_usd"] == pytest.approx(48.72)
    doc = estimate_json(capsys, "--cdk-out", str(out), "-c", "requests_per_day=2000")
    assert doc["assumptions"]["requests_per_day"] == 2000


def test_a_dash_c_key_that_shapes_the_templates_is_refused_not_ignored(cdk_out, capsys, tmp_path):
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
            "instance_type=ml.g5.12xlarge",
        ]
    )
    assert rc == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "ownllm: -c instance_type: shapes the synthesized templates, so it cannot be applied to an existing cdk.out; "
        "run `cdk synth -c instance_type=...`"
    )


def test_a_dash_c_typo_gets_did_you_mean_and_exit_2(cdk_out, capsys, tmp_path):
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
            "requests_per_dya=5",
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err == "ownllm: requests_per_dya: unknown setting; did you mean requests_per_day?\n"


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"items": [', "not an ownllm cost estimate (not valid JSON: "),
        ('{"hello": 1}', "not an ownllm cost estimate (not an ownllm cost estimate (no 'items' / 'daily_usd'))"),
        ("[1, 2]", "not an ownllm cost estimate ("),
    ],
)
def test_cost_diff_given_a_file_that_is_not_an_estimate_names_it_in_one_line(tmp_path, capsys, content, reason):
    bad = tmp_path / "notes.json"
    bad.write_text(content)
    assert main(["cost", "diff", str(bad), str(bad)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ownllm: {bad}: {reason}")


def test_prices_show_lists_the_bundled_catalog_offline(capsys):
    assert (
        main(
            ["prices", "show", "--region", "us-east-1", "--item", "sagemaker.hosting:ml.g5.4xlarge", "--format", "csv"]
        )
        == 0
    )
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "region,item,usd,unit,source,date"
    [row] = rows[1:]
    assert row.split(",")[:4] == ["us-east-1", "sagemaker.hosting:ml.g5.4xlarge", "2.03", "hour"]


def test_prices_refresh_without_credentials_says_what_it_needs_in_one_line(capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["prices", "refresh", "--output", str(tmp_path / "prices.csv")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("ownllm prices refresh: needs AWS credentials allowed to call pricing:GetProducts")
    assert not (tmp_path / "prices.csv").exists()


def test_prices_refresh_to_a_folder_is_one_line_before_any_aws_call(capsys, tmp_path):
    assert main(["prices", "refresh", "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"ownllm prices refresh: --output {str(tmp_path)!r}: is a folder; give a file name; nothing written\n"
    )


def test_json_piped_into_a_reader_that_stops_early_ends_without_a_traceback(cdk_out, tmp_path):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    write_recorded_settings(out, make_settings())
    code = "from ownllm.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "cost", "estimate", "--cdk-out", str(out), "--format", "json"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the estimate is written, as with `| head` on a long one
    err = proc.stderr.read().decode()
    assert proc.wait() == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_dash_c_region_is_refused_for_stacks_synthesized_for_a_region(cdk_out, capsys, tmp_path):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)}, environment="aws://123456789012/eu-west-1")
    rc = main(
        [
            "cost",
            "estimate",
            "--cdk-out",
            str(out),
            "--settings",
            str(_empty_cdk_json(tmp_path)),
            "-c",
            "region=us-west-2",
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err == (
        "ownllm: -c region: the stacks were synthesized for eu-west-1 (their environment), so the estimate "
        "cannot move them; run `cdk synth -c region=...`\n"
    )


def test_dash_c_region_prices_an_environment_agnostic_cdk_out_there(cdk_out, capsys, tmp_path):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    doc = estimate_json(
        capsys, "--cdk-out", str(out), "--settings", str(_empty_cdk_json(tmp_path)), "-c", "region=eu-west-1"
    )
    assert (doc["region"], doc["region_source"]) == ("eu-west-1", "settings.region")


def test_dash_c_region_with_a_typo_is_refused_instead_of_priced_at_us_east_1_rates(cdk_out, capsys):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    write_recorded_settings(out, make_settings())
    rc = main(["cost", "estimate", "--cdk-out", str(out), "-c", "region=us-eats-1"])
    assert (rc, capsys.readouterr()) == (
        2,
        ("", f"ownllm: {unsupported_region_problem('us-eats-1')}\n"),
    )
    assert unsupported_region_problem("us-eats-1").endswith("; did you mean us-east-1?")


@pytest.mark.parametrize(
    "argv, problem",
    [
        (
            ["--region", "us-eats-1"],
            "ownllm prices show: --region 'us-eats-1': the catalog has eu-west-1, us-east-1, us-west-2; "
            "did you mean us-east-1?",
        ),
        (
            ["--item", "nonsense"],
            "ownllm prices show: --item 'nonsense': matches no catalog item "
            "(items look like sagemaker.hosting:ml.g5.2xlarge; --item matches any part of one)",
        ),
    ],
)
def test_prices_show_for_a_region_or_item_the_catalog_lacks_says_so_instead_of_zero_prices(capsys, argv, problem):
    assert main(["prices", "show", *argv]) == 2
    assert capsys.readouterr() == ("", problem + "\n")


def _empty_cdk_json(folder):
    """A cdk.json with no settings: every setting at its default, ./cdk.json not read."""
    path = folder / "empty-cdk.json"
    path.write_text("{}")
    return path


def test_a_settings_file_that_does_not_exist_is_refused_not_replaced_by_defaults(cdk_out, capsys, tmp_path):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    missing = tmp_path / "cdk.jsn"
    assert main(["cost", "estimate", "--cdk-out", str(out), "--settings", str(missing)]) == 2
    assert capsys.readouterr() == ("", f"ownllm: --settings {str(missing)!r}: no such file\n")


def test_a_folder_given_as_settings_is_named_as_one_with_its_cdk_json_suggested(cdk_out, capsys, tmp_path):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    project = tmp_path / "project"
    project.mkdir()
    (project / "cdk.json").write_text('{"context": {}}')
    assert main(["cost", "estimate", "--cdk-out", str(out), "--settings", str(project)]) == 2
    assert capsys.readouterr().err == (
        f"ownllm: --settings {str(project)!r}: is a folder, not a cdk.json file; "
        f"did you mean {str(project / 'cdk.json')!r}?\n"
    )


def test_a_bad_recorded_setting_names_the_record_and_a_bad_dash_c_names_only_the_key(cdk_out, capsys):
    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    record = out / "ownllm-settings.json"
    record.write_text(json.dumps({"schema": "ownllm.settings/1", "settings": {"request_per_day": 5}}))
    assert main(["cost", "estimate", "--cdk-out", str(out), "-c", "avg_input_tokens=-1"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ownllm: avg_input_tokens: '-1' must not be negative",
        f"ownllm: {record} (what synth recorded): request_per_day: unknown setting; did you mean requests_per_day?",
    ]
