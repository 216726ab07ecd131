"""Time to first token through `ownllm local`'s streaming path, against the stand-in's own.

The stand-in generates TOKENS tokens at TOKENS_PER_S (a ~25 s answer). In one run, the same
request is streamed twice: straight from the local SageMaker runtime
(invoke_endpoint_with_response_stream: the model's own first token) and through the gateway ->
main:app (uvicorn, in a Lambda execution environment) -> runtime path with the official openai
client; then asked once more with `stream: false`. Targets: the path adds at most 50 ms to the
first token, the whole answer takes as long as the model does, and the answer without streaming
is a 200 (the completion routes' integration timeout is api_timeout_s, not 29 s).

    PYTHONPATH=. .venv/bin/python benchmarks/local_ttft.py [--engine vllm] [--tokens 500] [--tokens-per-s 20]
"""

from __future__ import annotations

import argparse
import json
import re
import time

import boto3
import openai
from botocore.config import Config

from ownllm.local.lambda_pool import FAKE_AWS_ENV, REGION
from ownllm.local.stack import ENDPOINT_NAME, LocalStack

TARGET_EXTRA_MS = 50.0
# A chat chunk with text in it: every engine streams OpenAI's chunk shape for chat (SSE or JSON lines).
_CONTENT = re.compile(rb'"content":\s*"[^"]')


def direct(stack: LocalStack, tokens: int) -> tuple[float, float]:
    """(first content token, whole answer) in seconds, straight from the runtime."""
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.runtime_url,
        region_name=REGION,
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(read_timeout=120, retries={"max_attempts": 0}),
    )
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": tokens,
        "stream": True,
    }
    started = time.monotonic()
    first = None
    response = client.invoke_endpoint_with_response_stream(EndpointName=ENDPOINT_NAME, Body=json.dumps(body).encode())
    seen = b""
    for event in response["Body"]:
        if "PayloadPart" in event and first is None:
            seen += event["PayloadPart"]["Bytes"]
            if _CONTENT.search(seen):
                first = time.monotonic() - started
    return (first or 0.0), time.monotonic() - started


def through_gateway(stack: LocalStack, tokens: int) -> tuple[float, float, int]:
    """(first content token, whole answer) in seconds and the content chunks, via the openai client."""
    client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=120)
    started = time.monotonic()
    first = None
    chunks = 0
    for chunk in client.chat.completions.create(
        model=stack.model_name or "", messages=[{"role": "user", "content": "Hi"}], max_tokens=tokens, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = time.monotonic() - started
    return (first or 0.0), time.monotonic() - started, chunks


def not_streamed(stack: LocalStack, tokens: int) -> tuple[int, float]:
    """(HTTP status, seconds) of the same request with stream: false, via the openai client."""
    client = openai.OpenAI(base_url=stack.base_url, api_key=stack.api_key, max_retries=0, timeout=600)
    started = time.monotonic()
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=stack.model_name or "", messages=[{"role": "user", "content": "Hi"}], max_tokens=tokens
        )
        status = raw.status_code
    except openai.APIStatusError as exc:
        status = exc.status_code
    return status, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("vllm", "lmi", "tgi"), default="vllm")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--tokens-per-s", type=float, default=20.0)
    args = parser.parse_args()
    with LocalStack(engine=args.engine, tokens_per_s=args.tokens_per_s, fill_max_tokens=True) as stack:
        through_gateway(stack, 2)  # warm: the streaming function's cold start is not the path's cost
        direct(stack, 2)
        d_first, d_total = direct(stack, args.tokens)
        g_first, g_total, chunks = through_gateway(stack, args.tokens)
        whole_status, whole_s = not_streamed(stack, args.tokens)
    extra_ms = (g_first - d_first) * 1000
    print(f"engine {args.engine}, stand-in {args.tokens} tokens at {args.tokens_per_s:g} tokens/s")
    print(
        f"first token  model {d_first * 1000:8.1f} ms   via ownllm local {g_first * 1000:8.1f} ms   +{extra_ms:.1f} ms"
    )
    print(f"whole answer model {d_total:8.2f} s    via ownllm local {g_total:8.2f} s    ({chunks} content chunks)")
    print(f"first token / whole answer via ownllm local: {g_first / g_total:.4f}")
    print(f"stream: false, same request: HTTP {whole_status} after {whole_s:.2f} s")
    verdict = "met" if extra_ms <= TARGET_EXTRA_MS else "MISSED"
    print(f"target +{TARGET_EXTRA_MS:g} ms on the first token: {verdict}")
    print(f"target 200 without streaming: {'met' if whole_status == 200 else 'MISSED'}")


if __name__ == "__main__":
    main()
