"""End to end: a batch through `ownllm local` (gateway, Lambda-like forwarder, stand-in model)."""

from __future__ import annotations

import json

from ownllm.cli import main
from ownllm.local.stack import LocalStack

from .fakeapi import read_lines

KEY = "batch-test-key-0123456789"


def test_a_batch_through_the_local_stack_gets_openai_answers_and_a_clear_refusal(tmp_path):
    source = tmp_path / "in.jsonl"
    chat = {"model": "ownllm-stand-in", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    text = {"model": "ownllm-stand-in", "prompt": "Hi", "max_tokens": 3}
    lines = [
        {"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": chat},
        {"custom_id": "text", "method": "POST", "url": "/v1/completions", "body": text},
        {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "ownllm-stand-in"}},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"

    with LocalStack(engine="vllm", api_key=KEY, max_instances=2) as stack:
        argv = ["batch", "run", str(source), "--url", stack.base_url, "--output", str(output), "--errors", str(errors)]
        code = main([*argv, "--key", KEY, "--no-progress"])

    done = {line["custom_id"]: line for line in read_lines(output)}
    [failed] = read_lines(errors)
    assert code == 1
    assert sorted(done) == ["chat", "text"]
    assert done["chat"]["response"]["body"]["object"] == "chat.completion"
    assert done["chat"]["response"]["body"]["usage"]["completion_tokens"] == 4
    assert done["text"]["response"]["body"]["object"] == "text_completion"
    assert done["chat"]["response"]["request_id"]  # API Gateway's x-amzn-RequestId
    assert failed["custom_id"] == "bad"
    assert failed["response"]["status_code"] == 400
    assert failed["response"]["body"]["error"]["param"] == "messages"
