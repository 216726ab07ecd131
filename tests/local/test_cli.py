"""`ownllm local` as a user runs it: the banner's lines work, Ctrl-C stops everything, failures are one line."""

from __future__ import annotations

import errno
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from ownllm.cli import main

ROOT = Path(__file__).resolve().parents[2]
# As a terminal runs it: Ctrl-C raises KeyboardInterrupt (a shell's background job would ignore SIGINT).
LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ownllm.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _alive(process: psutil.Process) -> bool:
    """Still running; a zombie (ended, not yet reaped by whoever adopted it) is gone for every purpose here."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
        [url_line] = [line for line in banner if line.startswith("  URL ")]
        url = url_line.split()[1]
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/v1", url), url_line
        assert "  key      cli-test-key\n" in banner
        [model_line] = [line for line in banner if line.startswith("  model ")]
        assert model_line.startswith("  model    ownllm-stand-in  (STAND-IN: canned text in vllm's wire shape")
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

        helpers = psutil.Process(process.pid).children(recursive=True)
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
    deadline = time.monotonic() + 5  # only to bound the wait: they are reaped by whoever adopted them
    while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.pid for p in helpers if _alive(p)] == []


def test_a_busy_port_is_one_clear_line_naming_the_port_and_exit_code_2(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["local", "--port", str(port)])
    assert (code, capsys.readouterr().err) == (
        2,
        f"ownllm local: cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)} "
        "(the port is in use; pick another with --port)\n",
    )


def test_a_missing_dependency_is_one_clear_line_naming_the_package_and_exit_code_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)  # as if not installed
    assert (main(["local", "--port", "0"]), capsys.readouterr().err) == (
        2,
        "ownllm local: missing dependency aws-lambda-powertools (the forwarder Lambda needs it): "
        "pip install aws-lambda-powertools, or pip install -e '.[dev]'\n",
    )


def test_an_unreachable_upstream_is_one_clear_line_naming_the_url_and_exit_code_2(capsys):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code = main(["local", "--port", "0", "--upstream", f"http://127.0.0.1:{port}/v1"])
    assert (code, capsys.readouterr().err) == (
        2,
        f"ownllm local: cannot reach the upstream at http://127.0.0.1:{port}/v1: ConnectionRefusedError: "
        f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "30"], "--timeout 30 must be above 0 and at most 29 (API Gateway's limit)"),
        (["--timeout", "0"], "--timeout 0 must be above 0 and at most 29 (API Gateway's limit)"),
        (["--instances", "0"], "--instances 0 must be at least 1"),
        (["--port", "70000"], "--port 70000 is not a port number (0-65535)"),
        (["--latency", "-1"], "--latency -1 must be a finite number of at least 0"),
        (["--tokens-per-s", "nan"], "--tokens-per-s nan must be a finite number of at least 0"),
        (["--scale-to-zero", "-5"], "--scale-to-zero -5: expected 0 to 3600 seconds to wake"),
        (
            ["--lambda-log", "/no/such/folder/lambda.log"],
            "--lambda-log /no/such/folder/lambda.log: No such file or directory",
        ),
    ],
)
def test_out_of_range_options_are_one_line_naming_the_option_and_what_is_accepted(capsys, args, message):
    assert (main(["local", *args]), capsys.readouterr().err) == (2, f"ownllm local: {message}\n")


def test_bad_settings_in_cdk_json_are_one_line_naming_the_file_the_key_and_the_range(capsys, tmp_path):
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text('{"context": {"ownllm": {"max_request_bytes": 12}}}')
    assert main(["local", "--port", "0", "--cdk-json", str(cdk_json)]) == 2
    assert capsys.readouterr().err == (
        f"ownllm local: {cdk_json}: max_request_bytes: 12 must be between 1024 and 6291456 (Lambda's 6 MB payload limit)\n"
    )


def test_the_local_function_gets_the_deployed_limits_from_the_settings():
    from ownllm.local.stack import LocalStack
    from ownllm.settings import Settings

    settings = Settings.from_context({"max_request_bytes": 2048, "max_total_tokens": 4096, "max_input_tokens": 1024})
    env = LocalStack(engine="tgi", settings=settings).function_env()
    cap = settings.max_output_tokens  # within the Lambda timeout, at most 4,096 - 1,024
    assert (env["MAX_REQUEST_BYTES"], env["MAX_TOTAL_TOKENS"], env["MAX_INPUT_TOKENS"]) == (
        "2048",
        str(1024 + cap),
        "1024",
    )
    assert env["ENGINE"] == "tgi"


def _launch(env: dict[str, str] | None = None, **popen) -> tuple[subprocess.Popen, str, queue.Queue[str]]:
    """`ownllm local` in a process of its own, as a script starts it: (process, base URL once it
    serves, the lines it prints from then on)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ownllm.cli", "local", "--port", "0", "--key", "cli-test-key", "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 20
    url = ""
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line.startswith("  URL "):
            url = line.split()[1]
        if "Ctrl-C stops everything." in line:
            return process, url, lines


def _chat(url: str, stream: bool) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)  # never reads proxy settings
    body = {"model": "ownllm-stand-in", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    try:
        conn.request(
            "POST",
            parts.path + "/chat/completions",
            json.dumps({**body, "stream": stream}),
            {"x-api-key": "cli-test-key", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_proxy_settings_pointing_at_a_dead_port_never_touch_the_local_path(unused_port):
    dead = f"http://127.0.0.1:{unused_port}"
    proxies = dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"), dead)
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"} | proxies | {"all_proxy": dead}
    process, url, _ = _launch(env, start_new_session=True)
    try:
        status, whole = _chat(url, stream=False)
        assert (status, json.loads(whole)["usage"]["completion_tokens"]) == (200, 3)
        status, streamed = _chat(url, stream=True)
        assert (status, streamed.endswith(b"data: [DONE]\n\n")) == (200, True)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    assert process.returncode == 0


def test_started_by_a_script_that_ignores_sigint_it_still_stops_cleanly_on_sigint_leaving_no_process():
    """A background job of a shell script starts with SIGINT ignored; Python then installs no
    KeyboardInterrupt handler, so only an explicit handler makes Ctrl-C (or `kill -INT`) stop it."""
    process, url, lines = _launch(
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        start_new_session=True,
    )
    try:
        assert _chat(url, stream=False)[0] == 200
        helpers = psutil.Process(process.pid).children(recursive=True)
        assert helpers  # the fork server and at least one execution environment
        process.send_signal(signal.SIGINT)
        process.wait(10)
        last = lines.get(timeout=5)  # the one line printed after the banner, once stopped
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    assert (process.returncode, last, "Traceback" in err) == (0, "ownllm local: stopped\n", False)
    deadline = time.monotonic() + 5  # only to bound the wait: they are reaped by whoever adopted them
    while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.pid for p in helpers if _alive(p)] == []


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return unused.getsockname()[1]
