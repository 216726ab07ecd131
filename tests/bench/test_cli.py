"""`ownllm bench` as a user runs it: a sweep, its JSON and PNG, --calibrate, and clear failures."""

from __future__ import annotations

import json
import socket

import pytest

from ownllm.cli import main

KEY = "bench-test-key"


def _report(out_dir) -> dict:
    [path] = out_dir.glob("bench-*.json")
    return json.loads(path.read_text())


def test_a_sweep_reports_every_level_and_writes_json_and_png(trivial, tmp_path, capsys):
    server = trivial(tokens=12)
    code = main(
        ["bench", server.url, "--concurrency", "4,1", "--requests", "30", "--out", str(tmp_path), "--no-progress"]
    )
    assert code == 0
    report = _report(tmp_path)
    assert [level["concurrency"] for level in report["levels"]] == [1, 4]
    assert [level["requests"] for level in report["levels"]] == [30, 30]
    assert all(
        level["output_tokens_per_s"] == pytest.approx(12 * level["requests_per_s"], rel=1e-3)
        for level in report["levels"]
    )
    assert report["model"] == "trivial"  # discovered from GET /models
    [png] = tmp_path.glob("bench-*.png")
    assert png.read_bytes().startswith(b"\x89PNG")
    out = capsys.readouterr().out
    assert "req/s" in out and "p95 ms" in out


def test_a_duration_sweep_stops_by_itself(trivial, tmp_path):
    code = main(
        [
            "bench",
            trivial().url,
            "--concurrency",
            "2",
            "--duration",
            "0.3",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plot",
        ]
    )
    assert code == 0
    [level] = _report(tmp_path)["levels"]
    assert level["elapsed_s"] >= 0.3
    assert level["requests"] > 2
    assert (_report(tmp_path)["mode"], _report(tmp_path)["per_level"]) == ("duration", 0.3)


def test_errors_by_status_are_in_the_report(trivial, tmp_path):
    server = trivial(status_for=lambda n: 503 if n % 2 else 200)
    main(
        [
            "bench",
            server.url,
            "--concurrency",
            "1",
            "--requests",
            "20",
            "--warmup",
            "0",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plot",
        ]
    )
    [level] = _report(tmp_path)["levels"]
    assert (level["ok"], level["errors"]) == (10, {"503": 10})


def test_calibrate_writes_the_measured_speeds_into_cdk_json(trivial, tmp_path, cdk_json, capsys):
    server = trivial(tokens=20)
    code = main(
        [
            "bench",
            server.url,
            "--concurrency",
            "1,4",
            "--requests",
            "40",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plot",
            "--calibrate",
            "--cdk-json",
            str(cdk_json),
        ]
    )
    assert code == 0
    levels = _report(tmp_path)["levels"]
    written = json.loads(cdk_json.read_text())["context"]["ownllm"]
    assert written["generation_tokens_per_s"] == round(levels[0]["request_tokens_per_s"], 1)
    assert written["instance_tokens_per_s"] == round(max(lv["output_tokens_per_s"] for lv in levels), 1)
    assert written["model_id"] == "Qwen/Qwen2.5-7B-Instruct"  # the rest is kept
    assert "context.ownllm.instance_tokens_per_s: None ->" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "{path} does not exist; run from the project folder or pass --cdk-json"),
        (b"\xff\xfe{}", "{path} is not UTF-8 text (byte 0)"),
        (
            b'{"context": {"ownllm": {"region": "eu-west-1", "region": "us-east-1"}}}',
            "{path}: key 'region' appears twice in one object; a rewrite would keep only one, so say it once",
        ),
        (
            b'{"context": {"ownllm": {"instance_typ": "ml.g5.xlarge"}}}',
            "{path}: synth would refuse it: instance_typ: unknown setting; did you mean instance_type or instance_count?",
        ),
    ],
)
def test_calibrate_into_a_cdk_json_it_cannot_rewrite_is_refused_before_the_sweep(tmp_path, capsys, content, problem):
    """Before, the sweep ran first and then ended in "not calibrated" (or, for bytes that are not UTF-8, a
    UnicodeDecodeError traceback)."""
    path = tmp_path / "cdk.json"
    if content is not None:
        path.write_bytes(content)
    argv = ["bench", "http://127.0.0.1:1/v1", "--model", "m", "--out", str(tmp_path), "--no-progress", "--no-plot"]
    assert main([*argv, "--calibrate", "--cdk-json", str(path)]) == 2
    assert capsys.readouterr().err == f"ownllm bench: --calibrate: {problem.format(path=path)}; nothing was sent\n"
    assert list(tmp_path.glob("bench-*.json")) == []


def test_an_out_folder_that_is_a_file_is_refused_before_the_sweep_not_a_traceback_after_it(tmp_path, capsys):
    """Before, the sweep ran and then writing the report raised FileExistsError: the results were lost."""
    taken = tmp_path / "results"
    taken.write_text("notes")
    argv = ["bench", "http://127.0.0.1:1/v1", "--model", "m", "--out", str(taken), "--no-progress", "--no-plot"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"ownllm bench: --out {str(taken)!r}: is a file; give a folder (created if missing)\n"
    )


def test_a_sweep_of_the_local_stand_in_runs_but_refuses_to_calibrate(local_stack, tmp_path, cdk_json, capsys):
    before = cdk_json.read_text()
    code = main(
        [
            "bench",
            local_stack.base_url,
            "--key",
            KEY,
            "--model",
            "ownllm-stand-in",
            "--concurrency",
            "1,2",
            "--requests",
            "10",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plot",
            "--calibrate",
            "--cdk-json",
            str(cdk_json),
        ]
    )
    assert code == 1
    assert _report(tmp_path)["backend"] == "stand-in"
    assert [level["ok"] for level in _report(tmp_path)["levels"]] == [10, 10]
    assert capsys.readouterr().err == (
        "ownllm bench: not calibrated: the model 'ownllm-stand-in' is ownllm's stand-in: its speed is whatever it was "
        "told to fake, not a model's. Calibrate against the deployed API, or `ownllm local --upstream` with a real model\n"
    )
    assert cdk_json.read_text() == before


def test_a_sweep_where_nothing_succeeds_exits_1_saying_so(trivial, tmp_path, capsys):
    server = trivial(status_for=lambda n: 500)
    code = main(
        [
            "bench",
            server.url,
            "--model",
            "m",
            "--concurrency",
            "1",
            "--requests",
            "3",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--no-plot",
        ]
    )
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == "no request succeeded (see errors by status above)"


def test_an_unreachable_url_is_one_clear_line_and_exit_code_2(tmp_path, capsys):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code = main(["bench", f"http://127.0.0.1:{port}/v1", "--requests", "1", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ownllm bench: cannot reach") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("levels", "why"),
    [
        ("0,4", "'0,4': give one or more levels, each from 1 to 1024"),
        ("a,b", "'a,b' is not a comma-separated list of whole numbers"),
        ("", "'': give one or more levels, each from 1 to 1024"),
        ("2000", "'2000': give one or more levels, each from 1 to 1024"),
    ],
)
def test_bad_concurrency_levels_are_refused_by_the_parser_naming_the_option_and_the_range(levels, why, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["bench", "http://127.0.0.1:1/v1", "--concurrency", levels])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"ownllm bench: error: argument --concurrency: {why}"


@pytest.mark.parametrize(
    "extra, why",
    [
        (("http://127.0.0.1:99999/v1",), "URL 'http://127.0.0.1:99999/v1' is not an http:// or https:// URL"),
        (("http://[::1/v1",), "URL 'http://[::1/v1' is not an http:// or https:// URL"),
        (("http://my host/v1",), "URL 'http://my host/v1' is not an http:// or https:// URL"),
        (("http://127.0.0.1:1/v1", "--timeout", "nan"), "timeout nan must be a finite number greater than 0"),
        (("http://127.0.0.1:1/v1", "--timeout", "inf"), "timeout inf must be a finite number greater than 0"),
        (("http://127.0.0.1:1/v1", "--duration", "inf"), "--duration inf must be a finite number greater than 0"),
        (("http://127.0.0.1:1/v1", "--duration", "nan"), "--duration nan must be a finite number greater than 0"),
    ],
)
def test_a_bad_port_or_host_or_a_time_that_is_not_finite_is_one_line_not_a_traceback(extra, why, capsys):
    assert main(["bench", *extra, "--model", "m"]) == 2
    assert capsys.readouterr().err == f"ownllm bench: {why}\n"
