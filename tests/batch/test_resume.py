"""Exactly once in the result files, however the run ends: SIGKILL, Ctrl-C, a cut-short line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ownllm.cli import main

from .fakeapi import ScriptedServer, error_body, read_lines, write_input

ROOT = Path(__file__).resolve().parents[2]


def command(source: Path, server: ScriptedServer, output: Path, errors: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ownllm.cli",
        "batch",
        "run",
        str(source),
        "--url",
        server.url,
        "--output",
        str(output),
        "--errors",
        str(errors),
        "--concurrency",
        "8",
        "--backoff",
        "0.001",
        "--no-progress",
    ]


def start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(*paths: Path) -> int:
    """Whole lines written so far, across the files."""
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def wait_for_results(paths: tuple[Path, Path], at_least: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while results(*paths) < at_least:
        assert process.poll() is None, f"the run ended before {at_least} results: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {at_least} results within 30 s"
        time.sleep(0.002)


def test_a_run_killed_three_times_ends_with_each_request_exactly_once(tmp_path, server):
    """Three SIGKILLs at seeded random points (after a random number of results, plus a random
    pause of up to 30 ms, so some land between results and some mid-write), then a run to the end.
    One request in ten is refused (400: the errors file), one in ten is throttled once first."""
    rng = random.Random(14)
    ids = [f"r{i:03d}" for i in range(400)]
    for i, custom_id in enumerate(ids):
        if i % 10 == 3:  # refused on every try: a killed run may have used up one
            server.script(custom_id, *[(400, {})] * 5)
        elif i % 10 == 5:
            server.script(custom_id, (429, {"Retry-After": "0"}), 200)
    server.delay_s = 0.02  # 8 in flight: about 400 results/s, so a run lasts about a second
    source = write_input(tmp_path / "in.jsonl", ids)
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    argv = command(source, server, output, errors)

    for threshold in sorted(rng.sample(range(20, 360), 3)):
        process = start(argv)
        wait_for_results((output, errors), threshold, process)
        time.sleep(rng.uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.communicate()
    finisher = start(argv)
    stdout, stderr = finisher.communicate(timeout=60)

    assert finisher.returncode == 1, stderr  # the refused requests
    assert stdout.splitlines()[0] == f"360 of 400 succeeded -> {output}; 40 failed -> {errors}"
    written = Counter(line["custom_id"] for line in read_lines(output) + read_lines(errors))
    assert written == Counter(ids)
    assert {line["custom_id"] for line in read_lines(errors)} == {c for i, c in enumerate(ids) if i % 10 == 3}
    assert all(line["response"]["status_code"] == 200 for line in read_lines(output))
    assert len(server.seen) >= 400 + 40  # at least once each, and the throttled ones twice


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_and_the_same_command_finishes(tmp_path, server, stop):
    ids = [f"r{i:03d}" for i in range(300)]
    server.delay_s = 0.02
    source = write_input(tmp_path / "in.jsonl", ids)
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    argv = command(source, server, output, errors)

    process = start(argv)
    wait_for_results((output, errors), 40, process)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=30)
    stopped_at = results(output, errors)
    finisher = start(argv)
    stdout, _ = finisher.communicate(timeout=60)

    assert process.returncode == 130
    assert stderr.splitlines()[-1] == (
        "ownllm batch run: stopped; the files are consistent. Run the same command to finish the rest "
        "(requests that were in flight have no result and will be sent again)."
    )
    assert "Traceback" not in stderr
    assert 40 <= stopped_at < 300
    assert finisher.returncode == 0
    assert stdout.splitlines()[0] == f"300 of 300 succeeded -> {output}; 0 failed -> {errors}"
    assert Counter(line["custom_id"] for line in read_lines(output)) == Counter(ids)


def test_a_partial_last_line_is_cut_off_and_that_request_sent_again(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a", "b", "c"])
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    whole = {"id": "batch_req_1", "custom_id": "a", "response": {"status_code": 200}, "error": None}
    cut_output, cut_errors = '{"id": "batch_req_2", "custom_id": "b", "resp', '{"id": "batch_req_3", "cus'
    output.write_text(json.dumps(whole) + "\n" + cut_output)
    errors.write_text(cut_errors)
    server.script("c", (400, {}))

    code = main(["batch", "run", str(source), "--url", server.url, "--output", str(output), "--errors", str(errors)])

    err = capsys.readouterr().err
    assert code == 1
    assert f"ownllm batch run: {output}: removed a partial last line ({len(cut_output)} bytes)\n" in err
    assert f"ownllm batch run: {errors}: removed a partial last line ({len(cut_errors)} bytes)\n" in err
    assert [s.custom_id for s in server.seen] in (["b", "c"], ["c", "b"])  # a is done, not sent again
    assert [line["custom_id"] for line in read_lines(output)] == ["a", "b"]
    assert [line["response"]["body"] for line in read_lines(errors)] == [error_body(400)]
