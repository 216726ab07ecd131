"""`ownllm batch estimate`: a batch's tokens counted before anything is sent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ownllm.batch.estimate_cli import run_concurrency
from ownllm.batch.job import Job, serving_on
from ownllm.batch.jsonl import load_requests
from ownllm.cli import main
from ownllm.perf.hardware import for_instance
from ownllm.perf.models import resolve
from ownllm.perf.predict import saturation
from ownllm.settings import Settings

from .fakeapi import request_line


def write(path, lines: list[dict]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def chat(custom_id: str, messages: list[dict], **extra: object) -> dict:
    body = {"model": "m", "messages": messages, **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_tokens_are_counted_as_the_forwarder_counts_them(tmp_path, capsys):
    """Input, at ceil(bytes / 4) per text, +4 per chat message, +3 per chat request:
    "Hello there!" 12 bytes -> 3, +4 +3 = 10; prompt "abcdefghi" 9 bytes -> 3;
    text parts "abcd" (the image part has no text) 4 bytes -> 1, +4 +3 = 8. Total 21.
    Output: max_tokens 100; max_completion_tokens 50 wins over max_tokens 999; none -> the default 256. Total 406."""
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    text = {"model": "m", "prompt": "abcdefghi", "max_completion_tokens": 50, "max_tokens": 999}
    lines = [
        chat("a", [{"role": "user", "content": "Hello there!"}], max_tokens=100),
        {"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": text},
        chat("c", [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image]}]),
    ]
    source = write(tmp_path / "in.jsonl", lines)

    code = main(
        ["batch", "estimate", source, "--settings", str(_empty_cdk_json(tmp_path)), "-c", "default_max_tokens=256"]
    )

    assert code == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "requests       3",
        "input tokens   21  (estimated as the forwarder does: about 4 bytes of text per token plus a few per chat message)",
        "output tokens  at most 406  (2 with their own max_tokens; 1 at default_max_tokens 256)",
    ]


def test_a_request_without_a_readable_prompt_is_named_not_counted(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "abcd"}]), chat("b", "hi")])

    code = main(["batch", "estimate", source, "--settings", str(_empty_cdk_json(tmp_path))])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[1].startswith("input tokens   8  ")
    assert captured.err.splitlines() == [
        "ownllm batch estimate: 1 request(s) have no prompt the API can read (messages or prompt missing or of "
        "the wrong shape); their input is not counted and the API will refuse them"
    ]


def test_a_max_tokens_the_api_refuses_is_named_and_not_counted_at_the_default(tmp_path, capsys):
    """max_tokens -5, 2.5 and "64" are answered 400 by the forwarder, so those requests read and generate
    nothing; before, each was counted as if it had no cap (at default_max_tokens 256). 100.0 is read as 100.
    Counted: "abcd" 4 bytes -> 1, +4 +3 = 8 input tokens; output max_tokens 100."""
    user = [{"role": "user", "content": "abcd"}]
    lines = [
        chat("a", user, max_tokens=100.0),
        chat("b", user, max_tokens=-5),
        chat("c", user, max_tokens=2.5),
        chat("d", user, max_completion_tokens="64"),
    ]
    source = write(tmp_path / "in.jsonl", lines)

    code = main(
        ["batch", "estimate", source, "--settings", str(_empty_cdk_json(tmp_path)), "-c", "default_max_tokens=256"]
    )

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[:3] == [
        "requests       4",
        "input tokens   8  (estimated as the forwarder does: about 4 bytes of text per token plus a few per chat message)",
        "output tokens  at most 100  (1 with their own max_tokens; 0 at default_max_tokens 256; 3 refused)",
    ]
    assert captured.err.splitlines() == [
        "ownllm batch estimate: the API will refuse 3 request(s) setting max_tokens (or max_completion_tokens) to "
        "something other than a whole number of at least 1, so they are not counted"
    ]


def test_a_file_whose_every_max_tokens_is_refused_is_one_line_not_a_division_by_zero(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "abcd"}], max_tokens=0)])

    code = main(["batch", "estimate", source, "--settings", str(_empty_cdk_json(tmp_path))])

    assert code == 2
    assert capsys.readouterr().err == (
        f"ownllm batch estimate: INPUT {source!r}: the API would refuse every request (1 request(s) setting "
        "max_tokens (or max_completion_tokens) to something other than a whole number of at least 1)\n"
    )


def test_a_body_over_max_request_bytes_is_named_and_not_counted(tmp_path, capsys):
    """The forwarder answers 413 to a body over max_request_bytes (here 1,024 bytes) before the model sees
    it; before, its 2,000-character prompt was counted as 507 input tokens and sized the job.
    Counted: "abcd" -> 1 + 4 + 3 = 8 input tokens; output max_tokens 10."""
    user = [{"role": "user", "content": "abcd"}]
    big = [{"role": "user", "content": "x" * 2000}]
    source = write(tmp_path / "in.jsonl", [chat("a", user, max_tokens=10), chat("b", big, max_tokens=10)])

    code = main(
        ["batch", "estimate", source, "--settings", str(_empty_cdk_json(tmp_path)), "-c", "max_request_bytes=1024"]
    )

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[:3] == [
        "requests       2",
        "input tokens   8  (estimated as the forwarder does: about 4 bytes of text per token plus a few per chat message)",
        "output tokens  at most 10  (1 with their own max_tokens; 0 at default_max_tokens 512; 1 refused)",
    ]
    assert captured.err.splitlines() == [
        "ownllm batch estimate: the API will refuse 1 request(s) whose body is over max_request_bytes 1024 "
        "(answered 413), so they are not counted"
    ]


def test_bad_input_is_refused_by_line_as_for_run(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"custom_id": "a"}\n')

    assert main(["batch", "estimate", str(source)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch estimate: {source} line 1: method is missing; only 'POST' is accepted"
    )


PUBLISHED_JOB = ["--requests", "4000000", "--input-tokens", "1000", "--output-tokens", "200"]


def estimate_json(tmp_path, capsys, *extra: str) -> dict:
    code = main(["batch", "estimate", *PUBLISHED_JOB, "--settings", str(_empty_cdk_json(tmp_path)), "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def g5_saturation() -> tuple[int, float]:
    """The default endpoint (ml.g5.2xlarge, Qwen2.5-7B, bf16, vLLM, max_batch_size 64) at 1,000 in / 200 out,
    each request inside the 28 s buffered-answer budget: at least 200 / (28 - 0.2) tokens/s."""
    model, hw = resolve("Qwen/Qwen2.5-7B-Instruct"), for_instance("ml.g5.2xlarge")
    return saturation(model, hw, "bf16", "vllm", 1000, 200, min_tokens_per_s=200 / 27.8, max_batch=64)


def test_the_published_job_is_priced_on_the_default_endpoint_and_against_the_api(tmp_path, capsys):
    """4,000,000 requests x 200 = 800,000,000 output tokens on 1 ml.g5.2xlarge at T tokens/s:
    hours = 800,000,000 / T / 3600; instances = 1 x hours x $1.515.
    API Gateway 4,000,000 x $3.50/1M = $14; Lambda requests 4,000,000 x $0.20/1M = $0.80.
    API: 4e9 in x $0.22/1M = $880 + 8e8 out x $0.22/1M = $176 = $1,056; batch half: $528."""
    concurrency, tps = g5_saturation()

    data = estimate_json(tmp_path, capsys)

    hours = 800_000_000 / tps / 3600
    assert {k: data[k] for k in ("requests", "input_tokens", "output_tokens", "instance_type", "instances")} == {
        "requests": 4_000_000,
        "input_tokens": 4_000_000_000,
        "output_tokens": 800_000_000,
        "instance_type": "ml.g5.2xlarge",
        "instances": 1,
    }
    assert data["concurrency_per_instance"] == concurrency
    assert data["hours"] == pytest.approx(hours)
    assert data["instance_usd"] == pytest.approx(hours * 1.515)
    assert data["apigateway_usd"] == pytest.approx(14.0)
    assert data["own_usd"] == pytest.approx(hours * 1.515 + 14.0 + data["lambda_usd"])
    assert data["lambda_usd"] == pytest.approx(0.8 + 4_000_000 * (data["request_s"] + 0.2) * 0.125 * 0.0000133334)
    assert (data["api_usd"], data["api_batch_usd"]) == (pytest.approx(1056.0), pytest.approx(528.0))
    assert data["quota_days"] == 80.0  # 4,000,000 / api_quota_per_day 50,000
    assert data["rate_limit_hours"] == pytest.approx(4_000_000 / 10 / 3600)
    cheapest = data["cheapest"]
    # Every option generates the same tokens, so the instance bill ranks them by cost per token.
    assert [c["instance_usd"] for c in cheapest] == sorted(c["instance_usd"] for c in cheapest)
    assert cheapest[0]["instance_usd"] <= data["instance_usd"]


def test_within_picks_the_instance_count_and_says_when_it_passes_max_instances(tmp_path, capsys):
    """One g5.2xlarge needs 800,000,000 / T / 3600 h; in 24 h: ceil(that / 24) instances, above max_instances 2."""
    _, tps = g5_saturation()
    needed = math.ceil(800_000_000 / tps / 3600 / 24)

    data = estimate_json(tmp_path, capsys, "--within", "1d")

    assert (data["instances"], data["within_hours"], data["exceeds_max_instances"]) == (needed, 24.0, True)
    assert data["hours"] == pytest.approx(800_000_000 / (needed * tps) / 3600)
    code = main(["batch", "estimate", *PUBLISHED_JOB, "--settings", str(_empty_cdk_json(tmp_path)), "--within", "24h"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert (
        f"  --within 24 h needs {needed} instances, above max_instances 2: raise max_instances (and instance_count) "
        "in cdk.json for this job"
    ) in lines
    # The usage plan lets 10 requests/s through: 4,000,000 / 10 / 3600 = 111.1 h; to keep up with the
    # instances it needs 4,000,000 / (hours x 3600) requests/s, and the whole job inside one day's quota.
    hours = 800_000_000 / (needed * tps) / 3600
    assert (
        "  api_rate_limit_rps 10 lets this job through in no less than 111.1 h: raise it to "
        f"{math.ceil(4_000_000 / (hours * 3600))} or more for this job"
    ) in lines
    assert (
        "  api_quota_per_day 50,000 spreads this job over 80.0 days: raise it to 4,000,000 or more for this job"
    ) in lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--requests", "0", "--input-tokens", "1", "--output-tokens", "1"],
            "--requests '0': must be a whole number >= 1",
        ),
        (
            ["--requests", "ten", "--input-tokens", "1", "--output-tokens", "1"],
            "--requests 'ten': must be a whole number >= 1",
        ),
        (["--requests", "10", "--output-tokens", "1"], "--input-tokens: required with --requests (tokens per request)"),
        (["--requests", "10", "--input-tokens", "1"], "--output-tokens: required with --requests (tokens per request)"),
        ([], "INPUT: give a batch input file, or --requests N --input-tokens I --output-tokens O"),
        ([*PUBLISHED_JOB, "--within", "soon"], "--within 'soon': must be a duration above zero like 24h, 90m or 2d"),
        ([*PUBLISHED_JOB, "--precision", "fp3"], "--precision 'fp3': accepted: bf16, fp16, fp8, int8, int4"),
        (
            [*PUBLISHED_JOB, "--region", "mars-1"],
            "--region 'mars-1': the price catalog has eu-west-1, us-east-1, us-west-2",
        ),
        ([*PUBLISHED_JOB, "-c", "instance_type=ml.g5.huge"], None),
        (
            ["--requests", "10", "--input-tokens", "1000", "--output-tokens", "2000"],
            "instance_type 'ml.g5.2xlarge' cannot serve this job (Qwen/Qwen2.5-7B-Instruct, bf16, 1000 in / 2000 out): "
            "a 2000-token answer must end inside the 28 s buffered-answer budget (lambda_timeout_s), which takes 71.9 "
            "tokens/s per request, and the performance model predicts less; ask for fewer output tokens",
        ),
    ],
)
def test_bad_options_get_one_line_naming_the_option_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["batch", "estimate", *argv, "--settings", str(_empty_cdk_json(tmp_path))])

    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1
    if message is not None:
        assert err == [f"ownllm batch estimate: {message}"]
    else:
        assert err[0].startswith(
            "ownllm batch estimate: instance_type: 'ml.g5.huge' is not a supported GPU instance type"
        )


def test_a_file_and_request_counts_together_are_refused(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "hi"}])])

    code = main(["batch", "estimate", source, "--requests", "5", "--settings", str(_empty_cdk_json(tmp_path))])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "ownllm batch estimate: --requests: give INPUT or --requests N --input-tokens I --output-tokens O, not both"
    ]


def test_batch_run_takes_its_default_concurrency_from_the_performance_model(tmp_path):
    """The default endpoint, 1 instance, for a file of 1,000-token prompts capped at 200 output tokens:
    the saturation concurrency S (rate cap: 10 rps x ~15 s per request = ~150, not reached).
    A 4,000-byte prompt is 1,000 tokens, +4 for its message +3 for the request = 1,007 (the forwarder's count)."""
    prompt = "abcd" * 1000
    lines = [chat(str(i), [{"role": "user", "content": prompt}], max_tokens=200) for i in range(3)]
    source = write(tmp_path / "in.jsonl", lines)
    expected, _ = saturation(
        resolve("Qwen/Qwen2.5-7B-Instruct"),
        for_instance("ml.g5.2xlarge"),
        "bf16",
        "vllm",
        1007,
        200,
        min_tokens_per_s=200 / 27.8,
        max_batch=64,
    )

    concurrency, why = run_concurrency(Settings(), load_requests(Path(source)), 1024)

    assert concurrency == expected
    assert why == (
        f"{expected} in flight per instance saturate ml.g5.2xlarge for Qwen/Qwen2.5-7B-Instruct at 1007 in / 200 out "
        "(performance model) x instance_count 1; --concurrency to override"
    )


def test_batch_run_caps_the_default_by_the_usage_plan_rate(tmp_path):
    """At api_rate_limit_rps 0.1, Little's law: 0.1 requests/s x (t in the engine + 0.2 s in the Lambda)
    requests in flight keep the rate busy; for t of ~15 s that is ceil(~1.5) = 2, below saturation."""
    prompt = "abcd" * 1000
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": prompt}], max_tokens=200)])
    job = Job(1, 1007, 200)
    serving = serving_on(
        resolve("Qwen/Qwen2.5-7B-Instruct"),
        "ml.g5.2xlarge",
        job,
        precision="bf16",
        engine="vllm",
        max_batch=64,
        lambda_timeout_s=28,
    )
    assert serving is not None

    concurrency, why = run_concurrency(Settings(api_rate_limit_rps=0.1), load_requests(Path(source)), 1024)

    assert concurrency == 2 == math.ceil(0.1 * (serving.request_s + 0.2))
    assert why == (
        f"{serving.concurrency} in flight per instance saturate ml.g5.2xlarge for Qwen/Qwen2.5-7B-Instruct at "
        f"1007 in / 200 out (performance model) x instance_count 1, capped by api_rate_limit_rps 0.1 x "
        f"{serving.request_s + 0.2:.1f} s per request; --concurrency to override"
    )


def test_batch_run_says_which_concurrency_it_chose_and_why(tmp_path, server, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "hi"}], max_tokens=10)])
    argv = ["batch", "run", source, "--url", server.url, "--output", str(tmp_path / "o.jsonl"), "--no-progress"]
    settings = Settings()
    expected, why = run_concurrency(settings, load_requests(Path(source)), 1024)

    code = main([*argv, "--key", "k", "--settings", str(_empty_cdk_json(tmp_path))])

    assert code == 0
    assert f"ownllm batch run: concurrency {expected}: {why}" in capsys.readouterr().err.splitlines()


def test_batch_run_refuses_bad_settings_before_creating_a_file(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "hi"}])])
    output = tmp_path / "o.jsonl"
    argv = ["batch", "run", source, "--url", "http://127.0.0.1:9/v1", "--output", str(output), "--no-progress"]

    code = main([*argv, "--settings", str(_empty_cdk_json(tmp_path)), "-c", "engine=vlm"])

    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ownllm batch run: engine: 'vlm' is not supported; accepted: vllm, lmi, tgi; did you mean vllm?"
    )
    assert not output.exists()


def _empty_cdk_json(folder):
    """A cdk.json with no settings: every setting at its default, ./cdk.json not read."""
    path = folder / "empty-cdk.json"
    path.write_text("{}")
    return path


def test_a_settings_file_that_does_not_exist_is_refused_not_replaced_by_defaults(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(request_line("a")) + "\n")
    missing = tmp_path / "cdk.jsn"
    assert main(["batch", "estimate", str(source), "--settings", str(missing)]) == 2
    assert capsys.readouterr() == ("", f"ownllm batch estimate: --settings {str(missing)!r}: no such file\n")
