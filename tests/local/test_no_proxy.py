"""`ownllm local` with the user's proxy variables set: its own calls, all on loopback, bypass the proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# In a fresh process: the Lambda environments are forked from a fork server that keeps the
# environment of when it started, so this test's process (whose may have started) cannot tell.
SCRIPT = """
import http.client, json
from ownllm.local.stack import LocalStack
with LocalStack(api_key="key-0123456789abcdef", max_instances=1) as stack:
    conn = http.client.HTTPConnection(stack.host, stack.gateway.port, timeout=30)
    body = {"model": stack.model_name or "ownllm-stand-in", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"x-api-key": "key-0123456789abcdef"})
    print(conn.getresponse().status)
"""


def test_the_local_stack_answers_with_every_proxy_variable_naming_a_proxy_that_is_not_there():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"), dead))
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (0, "200\n"), done.stderr[-2000:]
