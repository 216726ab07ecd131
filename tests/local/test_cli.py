"""`ownllm local` as a user runs it: the banner's lines work, Ctrl-C stops everything, failures are one line."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ownllm.cli import main
from ownllm.local.procs import descendants

ROOT = Path(__file__).resolve().parents[2]
# As a terminal runs it: Ctrl-C raises KeyboardInterrupt (a shell's background job would ignore SIGINT).
LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ownllm.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for every purpose here
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see child processes")
def test_local_prints_a_working_url_key_curl_line_and_openai_snippet_and_ctrl_c_stops_everything(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "local", "--port", "0", "--key", "cli-test-key"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    banner: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not banner or "Ctrl-C stops everything." not in banner[-1]:
            banner.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        text = "".join(banner)
        assert "STAND-IN" in text
        url = next(line.split()[1] for line in banner if line.strip().startswith("URL"))
        assert "cli-test-key" in text
        request = urllib.request.Request(url + "/models", headers={"x-api-key": "cli-test-key"})
        assert json.loads(urllib.request.urlopen(request, timeout=10).read())["data"][0]["id"] == "ownllm-stand-in"

        curl = "".join(banner[banner.index("curl:\n") + 1 :]).split("\n\n")[0].replace("\\\n", " ")
        if shutil.which("curl"):
            answer = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
            assert "[stand-in for ownllm-stand-in]" in json.loads(answer.stdout)["choices"][0]["message"]["content"]

        start = next(i for i, line in enumerate(banner) if line.startswith("python"))
        snippet = "".join(line[2:] for line in banner[start + 1 :] if line.startswith("  "))
        run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "[stand-in for ownllm-stand-in]" in run.stdout

        helpers = descendants(process.pid)
        assert helpers  # the fork server and at least one Lambda environment
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        process.wait(15)
        reader.join(5)
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    assert process.returncode == 0
    out = "".join(lines.queue)
    assert "ownllm local: stopped" in out
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in helpers)


def test_a_busy_port_is_one_clear_line_and_exit_code_2(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = main(["local", "--port", str(busy.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "is in use" in err and err.startswith("ownllm local:")


def test_a_missing_dependency_is_one_clear_line_and_exit_code_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)  # as if not installed
    code = main(["local", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "missing dependency aws-lambda-powertools" in err


def test_an_unreachable_upstream_is_one_clear_line_and_exit_code_2(capsys):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code = main(["local", "--port", "0", "--upstream", f"http://127.0.0.1:{port}/v1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "cannot reach the upstream" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "30"],
        ["--timeout", "0"],
        ["--instances", "0"],
        ["--port", "70000"],
        ["--latency", "-1"],
        ["--lambda-log", "/no/such/folder/lambda.log"],
    ],
)
def test_out_of_range_options_are_one_clear_line_and_exit_code_2(capsys, args):
    assert main(["local", *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_settings_in_cdk_json_are_one_clear_line_and_exit_code_2(capsys, tmp_path):
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text('{"context": {"ownllm": {"max_request_bytes": 12}}}')
    assert main(["local", "--port", "0", "--cdk-json", str(cdk_json)]) == 2
    err = capsys.readouterr().err
    assert "max_request_bytes: 12 must be between 1024 and 6291456" in err
    assert "Traceback" not in err


def test_the_local_function_gets_the_deployed_limits_from_the_settings():
    from ownllm.local.stack import LocalStack
    from ownllm.settings import Settings

    settings = Settings.from_context({"max_request_bytes": 2048, "max_total_tokens": 4096, "max_input_tokens": 1024})
    env = LocalStack(engine="tgi", settings=settings).function_env()
    assert (env["MAX_REQUEST_BYTES"], env["MAX_TOTAL_TOKENS"], env["MAX_INPUT_TOKENS"]) == ("2048", "4096", "1024")
    assert env["ENGINE"] == "tgi"
