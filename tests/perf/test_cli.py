"""`ownllm capacity` and `ownllm plan`: JSON shapes, rankings, bad input, --apply."""

import json

import pytest

from ownllm.cli import main
from ownllm.cost.catalog import load_catalog
from ownllm.perf.cli import CAPACITY_JSON_KEYS
from ownllm.perf.hardware import for_instance
from ownllm.perf.models import resolve
from ownllm.perf.predict import predict


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_capacity_json_has_exactly_the_documented_keys_and_the_model_s_figures(capsys):
    code, out, err = run(
        capsys,
        "capacity",
        "--instance-type",
        "ml.g5.2xlarge",
        "--model",
        "Qwen/Qwen2.5-7B-Instruct",
        "--input-tokens",
        "512",
        "--output-tokens",
        "256",
        "--concurrency",
        "8",
        "--json",
    )
    data = json.loads(out)
    assert (code, err) == (0, "")
    assert tuple(data) == CAPACITY_JSON_KEYS
    expected = predict(resolve("Qwen/Qwen2.5-7B-Instruct"), for_instance("ml.g5.2xlarge"), "bf16", "vllm", 512, 256, 8)
    assert data["output_tokens_per_s"] == expected.output_tokens_per_s
    assert (data["gpu"], data["gpu_count"], data["model_params_b"], data["fits"]) == ("A10G", 1, 7.62, True)


def test_capacity_by_gpu_name_and_count(capsys):
    code, out, _ = run(
        capsys,
        "capacity",
        "--gpu",
        "h100",
        "--gpu-count",
        "2",
        "--model",
        "meta-llama/Llama-3.3-70B-Instruct",
        "--precision",
        "fp8",
        "--json",
    )
    data = json.loads(out)
    assert (code, data["gpu"], data["gpu_count"], data["fits"]) == (0, "H100", 2, True)


def test_capacity_reports_a_model_that_does_not_fit_with_null_ttft(capsys):
    code, out, _ = run(
        capsys,
        "capacity",
        "--instance-type",
        "ml.g4dn.xlarge",
        "--model",
        "Qwen/Qwen2.5-7B-Instruct",
        "--precision",
        "fp16",
        "--json",
    )
    data = json.loads(out)
    assert (code, data["fits"], data["max_concurrency"], data["time_to_first_token_s"]) == (0, False, 0, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--precision", "bf17"], "ownllm capacity: --precision 'bf17': accepted: bf16, fp16, fp8, int8, int4\n"),
        (["--engine", "trt"], "ownllm capacity: --engine 'trt': accepted: vllm, lmi, tgi\n"),
        (["--concurrency", "0"], "ownllm capacity: --concurrency '0': must be a whole number >= 1\n"),
        (
            ["--gpu", "v100"],
            "ownllm capacity: --gpu 'v100': accepted: t4, a10g, l4, l40s, a100-40gb, a100-80gb, h100, h200, rtx-4090\n",
        ),
        (
            ["--gpu", "t4"],
            "ownllm capacity: --precision bf16: the T4 has no bf16; use --precision fp16 (same size and speed)\n",
        ),
    ],
)
def test_capacity_bad_input_is_one_line_naming_option_value_and_accepted_values(capsys, argv, message):
    base = ["capacity", "--model", "Qwen/Qwen2.5-7B-Instruct"]
    if "--gpu" not in argv:
        base += ["--instance-type", "ml.g5.2xlarge"]
    code, out, err = run(capsys, *base, *argv)
    assert (code, out, err) == (2, "", message)


def test_capacity_without_hardware_says_which_option_is_missing(capsys):
    code, _, err = run(capsys, "capacity", "--model", "Qwen/Qwen2.5-7B-Instruct")
    assert (code, err) == (
        2,
        "ownllm capacity: --instance-type: required (e.g. ml.g5.2xlarge), or --gpu NAME --gpu-count N\n",
    )


def test_capacity_table_names_the_model_and_the_hardware(capsys):
    code, out, _ = run(capsys, "capacity", "--instance-type", "ml.g6e.xlarge", "--model", "Qwen/Qwen3-8B")
    assert code == 0
    assert "Qwen/Qwen3-8B on 1 x L40S (ml.g6e.xlarge)" in " ".join(out.split())


PLAN = [
    "plan",
    "--model",
    "Qwen/Qwen2.5-7B-Instruct",
    "--requests-per-day",
    "100000",
    "--input-tokens",
    "500",
    "--output-tokens",
    "250",
    "--active-hours",
    "10",
]


def test_plan_ranks_fitting_instance_types_cheapest_first_next_to_the_api(capsys):
    code, out, _ = run(capsys, *PLAN, "--json")
    data = json.loads(out)
    fitting = [o for o in data["options"] if o["fits"]]
    assert code == 0 and len(fitting) >= 10
    assert [o["daily_usd"] for o in fitting] == sorted(o["daily_usd"] for o in fitting)
    first = fitting[0]
    price = load_catalog().get(f"sagemaker.hosting:{first['instance_type']}", "us-east-1").usd
    assert first["daily_usd"] == pytest.approx(first["instances"] * price * 24)
    assert first["usd_per_1m_output_tokens"] == pytest.approx(first["daily_usd"] / 25.0)
    # 100,000 requests x 250 tokens over 10 h = 694.4 tokens/s to serve.
    assert first["instances"] * first["instance_output_tokens_per_s"] >= 100_000 * 250 / 36_000
    # The API prices the same traffic: 100,000 x (500 in x $/1M in + 250 out x $/1M out).
    api = data["api"]
    assert api["daily_usd"] == pytest.approx(
        100_000 * (500 * api["input_usd_per_m"] + 250 * api["output_usd_per_m"]) / 1e6
    )
    assert api["usd_per_1m_output_tokens"] == pytest.approx(api["daily_usd"] / 25.0)
    assert set(first) >= {"instance_type", "instances", "daily_usd", "usd_per_1m_output_tokens", "fits", "headroom"}


def test_plan_marks_too_small_or_too_slow_instances_as_not_fitting(capsys):
    _, out, _ = run(capsys, "plan", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--json")
    by_type = {o["instance_type"]: o for o in json.loads(out)["options"]}
    assert (by_type["ml.g5.2xlarge"]["fits"], by_type["ml.g5.2xlarge"]["note"]) == (False, "does not fit in GPU memory")
    assert by_type["ml.p4de.24xlarge"]["fits"] is True


def test_plan_marks_eight_gpu_instances_a_model_cannot_be_split_over(capsys):
    _, out, _ = run(capsys, *PLAN, "--json")
    by_type = {o["instance_type"]: o for o in json.loads(out)["options"]}
    note = "its 28 attention heads do not split over 8 GPUs (vLLM needs the GPU count to divide them)"
    assert (by_type["ml.g6e.48xlarge"]["fits"], by_type["ml.g6e.48xlarge"]["note"]) == (False, note)
    assert by_type["ml.g6e.12xlarge"]["fits"] is True


def test_plan_apply_writes_the_cheapest_option_into_cdk_json(capsys, tmp_path):
    settings = tmp_path / "cdk.json"
    model = "Qwen/Qwen2.5-7B-Instruct"
    settings.write_text(json.dumps({"app": "x", "context": {"ownllm": {"model_id": model, "max_instances": 4}}}))
    code, out, err = run(capsys, *PLAN, "--json", "--apply", "--settings", str(settings))
    cheapest = next(o for o in json.loads(out)["options"] if o["fits"])
    ctx = json.loads(settings.read_text())["context"]["ownllm"]
    assert code == 0
    assert ctx == {
        "model_id": model,
        "instance_type": cheapest["instance_type"],
        "instance_count": cheapest["instances"],
        "min_instances": cheapest["instances"],
        "max_instances": max(4, cheapest["instances"]),
    }
    assert err.startswith(f"wrote instance_type={cheapest['instance_type']}, instance_count=")


def test_plan_bad_region_names_the_accepted_ones(capsys):
    code, _, err = run(capsys, *PLAN, "--region", "mars-1")
    accepted = ", ".join(load_catalog().regions)
    assert (code, err) == (2, f"ownllm plan: --region 'mars-1': accepted: {accepted}\n")


def test_plan_unknown_model_without_size_is_one_clear_line(capsys):
    code, _, err = run(capsys, "plan", "--model", "acme/secret")
    assert code == 2
    assert err.startswith("ownllm plan: --model 'acme/secret': not in the bundled table; pass --model-size-b")
    assert err.count("\n") == 1


def test_a_gpu_count_with_an_instance_type_is_refused_not_silently_ignored(capsys):
    """ml.g5.12xlarge has 4 GPUs; --gpu-count 2 was dropped without a word and the 4-GPU figures printed."""
    argv = ["capacity", "--model", "Qwen/Qwen2.5-7B-Instruct", "--instance-type", "ml.g5.12xlarge", "--gpu-count", "2"]
    assert run(capsys, *argv) == (
        2,
        "",
        "ownllm capacity: --gpu-count '2': goes with --gpu NAME; an --instance-type has its own GPU count\n",
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ("[]", "not a JSON object"),
        ('{"context": []}', "'context' is not an object"),
        ('{"context": {"ownllm": [1]}}', "'context.ownllm' is not an object"),
        (
            '{"context": {"ownllm": {"max_instances": 2, "max_instances": 3}}}',
            "key 'max_instances' appears twice (a rewrite would keep only one)",
        ),
    ],
)
def test_plan_apply_refuses_a_malformed_cdk_json_and_leaves_it_as_it_was(capsys, tmp_path, text, problem):
    settings = tmp_path / "cdk.json"
    settings.write_text(text)
    code, out, err = run(capsys, *PLAN, "--apply", "--settings", str(settings))
    assert (code, out, err) == (2, "", f"ownllm plan: --settings {str(settings)!r}: {problem}; nothing written\n")
    assert settings.read_text() == text


@pytest.mark.parametrize(
    "context, served",
    [
        ({"ownllm": {"model_id": "meta-llama/Llama-3.1-70B-Instruct"}}, "meta-llama/Llama-3.1-70B-Instruct"),
        ({"model_id": "meta-llama/Llama-3.1-8B-Instruct", "ownllm": {}}, "meta-llama/Llama-3.1-8B-Instruct"),
    ],
)
def test_plan_apply_refuses_a_cdk_json_that_serves_another_model(capsys, tmp_path, context, served):
    """An instance sized for Qwen 7B was written next to a 70B model_id without a word."""
    settings = tmp_path / "cdk.json"
    settings.write_text(json.dumps({"context": context}))
    before = settings.read_text()
    code, out, err = run(capsys, *PLAN, "--apply", "--settings", str(settings))
    assert (code, out, settings.read_text()) == (2, "", before)
    assert err == (
        f"ownllm plan: --settings {str(settings)!r}: it serves model_id {served!r}, not the planned --model "
        f"'Qwen/Qwen2.5-7B-Instruct'; set model_id to 'Qwen/Qwen2.5-7B-Instruct' there first, or plan --model "
        f"{served!r}; nothing written\n"
    )


def test_plan_apply_rewrites_a_cdk_json_saved_with_a_byte_order_mark(capsys, tmp_path):
    settings = tmp_path / "cdk.json"
    settings.write_bytes(b'\xef\xbb\xbf{"app": "x", "context": {"ownllm": {"max_instances": 4}}}')
    code, out, _ = run(capsys, *PLAN, "--json", "--apply", "--settings", str(settings))
    cheapest = next(o for o in json.loads(out)["options"] if o["fits"])
    assert (code, json.loads(settings.read_text())["context"]["ownllm"]["instance_type"]) == (
        0,
        cheapest["instance_type"],
    )


@pytest.mark.parametrize(
    "ownllm, problem",
    [
        ({"request_per_day": 5}, "request_per_day: unknown setting; did you mean requests_per_day?"),
        ({"requests_per_day": float("nan")}, "requests_per_day: nan is not a finite number; accepted: 0 or more"),
    ],
)
def test_plan_apply_refuses_to_write_a_cdk_json_synth_would_refuse(capsys, tmp_path, ownllm, problem):
    """Before, the plan was written into it and NaN written back out, which the CDK CLI cannot parse."""
    settings = tmp_path / "cdk.json"
    settings.write_text(json.dumps({"context": {"ownllm": ownllm}}))
    before = settings.read_text()
    code, out, err = run(capsys, *PLAN, "--apply", "--settings", str(settings))
    assert (code, out, settings.read_text()) == (2, "", before)
    assert err == (
        f"ownllm plan: --settings {str(settings)!r}: with the plan applied, synth would refuse it: {problem}; "
        "nothing written\n"
    )


def test_plan_apply_refuses_a_cdk_json_that_is_not_utf8(capsys, tmp_path):
    settings = tmp_path / "cdk.json"
    settings.write_bytes(b"\xff\xfe{}")
    code, out, err = run(capsys, *PLAN, "--apply", "--settings", str(settings))
    assert (code, out) == (2, "")
    assert err.startswith(f"ownllm plan: --settings {str(settings)!r}: cannot be read as UTF-8 (")
    assert settings.read_bytes() == b"\xff\xfe{}"


def test_plan_apply_updates_a_flat_context_key_where_the_loader_reads_it(capsys, tmp_path):
    """A flat context key wins over context.ownllm; writing only the latter would change nothing."""
    settings = tmp_path / "cdk.json"
    settings.write_text(json.dumps({"context": {"instance_type": "ml.p5.48xlarge", "ownllm": {}}}))
    code, out, _ = run(capsys, *PLAN, "--json", "--apply", "--settings", str(settings))
    cheapest = next(o for o in json.loads(out)["options"] if o["fits"])
    ctx = json.loads(settings.read_text())["context"]
    assert (code, ctx["instance_type"], "instance_type" in ctx["ownllm"]) == (0, cheapest["instance_type"], False)


@pytest.mark.parametrize(
    "argv, problem",
    [
        (
            ["capacity", "--instance-type", "ml.g5.2xlarge", "--model-size-b", "nan"],
            "ownllm capacity: --model-size-b 'nan': must be a number from 0.01 to 10000",
        ),
        (
            ["capacity", "--instance-type", "ml.g5.2xlarge", "--model-size-b", "1e308", "--json"],
            "ownllm capacity: --model-size-b '1e308': must be a number from 0.01 to 10000",
        ),
        (
            ["plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--requests-per-day", "1e400"],
            "ownllm plan: --requests-per-day '1e400': must be a number from 0 to 2147483647",
        ),
        (
            ["plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--requests-per-day", "1e300"],
            "ownllm plan: --requests-per-day '1e300': must be a number from 0 to 2147483647",
        ),
        (
            ["plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--active-hours", "nan"],
            "ownllm plan: --active-hours 'nan': must be a number >= 0.01",
        ),
        (
            ["plan", "--model", "Qwen/Qwen2.5-7B-Instruct", "--min-tokens-per-s", "inf"],
            "ownllm plan: --min-tokens-per-s 'inf': must be a number from 0 to 1000000",
        ),
    ],
)
def test_a_number_that_is_not_finite_or_too_large_is_one_line_not_a_traceback(capsys, argv, problem):
    """--model-size-b 1e308 printed "weights_gib": Infinity, which is not JSON."""
    assert run(capsys, *argv) == (2, "", problem + "\n")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[1, 2]", "not a Hugging Face config.json (a JSON object of hyperparameters)"),
        ('{"text_config": 7}', "not a Hugging Face config.json (a JSON object of hyperparameters)"),
        (
            "\udcff",
            "cannot read a JSON config ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)",
        ),
    ],
)
def test_a_model_config_that_is_not_a_json_object_is_one_line(capsys, tmp_path, text, problem):
    config = tmp_path / "config.json"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, out, err = run(capsys, "capacity", "--instance-type", "ml.g5.2xlarge", "--model-config", str(config))
    assert (code, out, err) == (2, "", f"ownllm capacity: --model-config {config}: {problem}\n")


@pytest.mark.parametrize("command", [["capacity", "--gpu", "h200"], ["plan"]])
def test_a_request_longer_than_the_models_context_is_refused_not_predicted(capsys, command):
    """Qwen2.5-7B reads 32768 positions; a 40256-token request once 'fit' an H200 with a speed."""
    code, out, err = run(
        capsys, *command, "--model", "Qwen/Qwen2.5-7B-Instruct", "--input-tokens", "40000", "--output-tokens", "256"
    )
    assert (code, out, err) == (
        2,
        "",
        f"ownllm {command[0]}: --input-tokens 40000 + --output-tokens 256: above the 32768-token context of "
        "Qwen/Qwen2.5-7B-Instruct (max_position_embeddings); no engine serves a request that long\n",
    )


def test_a_model_known_only_by_size_is_not_held_to_an_assumed_context(capsys):
    code, _, _ = run(capsys, "capacity", "--gpu", "h200", "--model-size-b", "7", "--input-tokens", "20000", "--json")
    assert code == 0


def test_plan_apply_keeps_a_scale_to_zero_deploy_scaling_to_zero(capsys, tmp_path):
    settings = tmp_path / "cdk.json"
    settings.write_text(json.dumps({"context": {"ownllm": {"min_instances": 0, "max_instances": 3}}}))
    code, out, _ = run(capsys, *PLAN, "--json", "--apply", "--settings", str(settings))
    cheapest = next(o for o in json.loads(out)["options"] if o["fits"])
    ctx = json.loads(settings.read_text())["context"]["ownllm"]
    assert code == 0
    assert (ctx["min_instances"], ctx["instance_count"], ctx["max_instances"]) == (
        0,
        cheapest["instances"],
        max(3, cheapest["instances"]),
    )
