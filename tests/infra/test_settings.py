"""Bad settings fail before any construct is built, one message per problem."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ownllm.settings import Settings, SettingsError, infer_model_size_b


def problems(**raw) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_context(raw)
    return caught.value.problems


def test_defaults_deploy_an_ungated_7b_instruct_model_on_one_24gb_gpu():
    s = Settings.from_context({})
    assert s.model_id == "Qwen/Qwen2.5-7B-Instruct"
    assert s.resolved_model_size_b == 7
    assert s.gpu.gpu_count == 1 and s.gpu.gpu_memory_gib == 24
    assert s.model_memory_gib < s.gpu.gpu_memory_gib


def test_unknown_instance_type_names_the_key_and_suggests_close_ones():
    [msg] = problems(instance_type="ml.g5.2xlargeX")
    assert msg.startswith("instance_type: 'ml.g5.2xlargeX'")
    assert "did you mean ml.g5.2xlarge" in msg


def test_a_model_too_big_for_the_gpu_names_the_precision_and_the_instance_types_that_fit():
    """Llama 3.1 70B at bf16: 70.6e9 x 2 B = 131.5 GiB of weights (131.6 with one 750-token
    sequence's KV cache); one A10G leaves the engine 18.8 GiB; no precision fits there (int4 is 35 GiB)."""
    [msg] = problems(model_id="meta-llama/Llama-3.1-70B-Instruct")
    head, here, there = msg.split("; ")[0], msg.split("; ")[-2], msg.split("; ")[-1]
    assert head.startswith(
        "precision: 'bf16' does not fit meta-llama/Llama-3.1-70B-Instruct on ml.g5.2xlarge: needs 131.6 GiB"
    )
    assert here == "no precision fits there"
    assert there == (
        "instance types that fit at bf16: ml.g5.48xlarge, ml.g6.48xlarge, ml.g6e.12xlarge, ml.g6e.24xlarge, "
        "ml.p4d.24xlarge"
    )


def test_bf16_on_a_t4_is_refused_and_unset_precision_there_is_fp16():
    t4 = {"instance_type": "ml.g4dn.xlarge", "model_id": "Qwen/Qwen2.5-1.5B-Instruct"}
    assert problems(precision="bf16", **t4) == [
        "precision: 'bf16' the T4 has no bf16; use precision fp16 (same size and speed)"
    ]
    s = Settings.from_context(t4)
    assert (s.precision, s.resolved_precision, "precision" in s.derived_keys) == ("fp16", "fp16", True)
    assert Settings.from_context({}).precision == "bf16"


def test_an_unknown_precision_lists_the_accepted_ones():
    assert problems(precision="fp9") == ["precision: 'fp9' is not supported; accepted: bf16, fp16, fp8, int8, int4"]


def test_int4_needs_a_model_id_that_names_a_checkpoint_quantized_ahead_of_time():
    [msg] = problems(precision="int4")
    assert msg.startswith("precision: 'int4' serves a checkpoint quantized ahead of time")
    assert Settings.from_context({"precision": "int4", "model_id": "Qwen/Qwen2.5-7B-Instruct-AWQ"}).precision == "int4"


def test_an_unset_autoscaling_target_comes_from_the_performance_model_and_a_set_one_wins():
    """Qwen2.5-7B bf16 on one A10G, 500 in / 250 out, batch at most 64: perf.saturation with the
    20 tokens/s floor gives the target; latency_p95_ms, set, stays as set."""
    from ownllm.perf import for_instance, resolve, saturation

    s = Settings.from_context({"latency_p95_ms": 9000})
    target, _ = saturation(
        resolve("Qwen/Qwen2.5-7B-Instruct"),
        for_instance("ml.g5.2xlarge"),
        "bf16",
        "vllm",
        500,
        250,
        min_tokens_per_s=20,
        max_batch=64,
    )
    assert (s.target_concurrency_per_instance, s.autoscaling_target) == (target, target)
    assert (s.capacity.target_concurrency.source, s.latency_alarm_ms, s.capacity.latency_alarm_ms.source) == (
        "model",
        9000,
        "setting",
    )
    assert s.derived_keys == {"precision", "target_concurrency_per_instance"}
    mine = Settings.from_context({"target_concurrency_per_instance": 4})
    assert (mine.autoscaling_target, mine.capacity.target_concurrency.source) == (4, "setting")


def test_a_higher_speed_floor_lowers_the_autoscaling_target():
    assert Settings.from_context({"min_tokens_per_s_per_request": 30}).autoscaling_target < (
        Settings.from_context({}).autoscaling_target
    )


def test_an_unset_latency_alarm_is_twice_the_predicted_request_time_in_whole_seconds():
    """250 output tokens at the model's per-request speed s tokens/s take 250 / s seconds; the alarm is
    ceil(2 x 250 / s) x 1,000 ms, at most the 28 s budget of a buffered answer (lambda_timeout_s)."""
    s = Settings.from_context({})
    speed = s.capacity.request_tokens_per_s.value
    assert s.latency_alarm_ms == math.ceil(2 * 250 / speed) * 1000
    slow = Settings.from_context({"generation_tokens_per_s": 5.0})  # calibrated: 250 / 5 = 50 s
    assert (slow.latency_alarm_ms, slow.capacity.latency_alarm_ms.source) == (28_000, "calibrated")


def test_max_tokens_is_what_finishes_within_the_lambda_timeout():
    """Calibrated at 10 tokens/s: (28 s - 0.2 s overhead) x 10 = 278 tokens, below the engine's
    8,192 - 4,096 = 4,096. The model: (27.8 s - TTFT) x decode speed + 1."""
    assert Settings.from_context({"generation_tokens_per_s": 10.0}).max_output_tokens == 278
    s = Settings.from_context({})
    c = s.capacity
    assert s.max_output_tokens == math.floor((27.8 - c.time_to_first_token_s) * c.decode_tokens_per_s) + 1
    fast = Settings.from_context({"generation_tokens_per_s": 1000.0})
    assert fast.max_output_tokens == 4096


def test_recorded_settings_leave_derived_defaults_out_so_they_are_derived_again():
    s = Settings.from_context({"requests_per_day": 5000})
    recorded = s.to_dict()
    assert [k for k in ("precision", "target_concurrency_per_instance", "latency_p95_ms") if k in recorded] == []
    assert Settings.from_context(recorded).autoscaling_target == s.autoscaling_target


def test_min_above_max_is_rejected():
    assert problems(min_instances=3, max_instances=2) == ["min_instances: 3 is greater than max_instances 2"]


def test_a_non_integer_count_is_rejected_with_its_value():
    why = "; accepted: 1 or more (an instance-backed endpoint cannot run on 0)"
    assert problems(instance_count="1.5") == [f"instance_count: '1.5' is not a whole number{why}"]
    assert problems(max_instances=True) == [f"max_instances: True is not a whole number{why}"]


def test_every_problem_is_reported_at_once():
    msgs = problems(engine="triton", min_instances=-1, alarm_email="nobody")
    assert [m.split(":")[0] for m in msgs] == ["engine", "min_instances", "alarm_email"]
    assert "accepted: vllm, lmi, tgi" in msgs[0]


def test_a_bad_key_does_not_hide_a_broken_rule_between_two_good_keys():
    msgs = problems(instance_type="ml.g5.2xlargeX", min_instances=3, max_instances=2)
    assert [m.split(":")[0] for m in msgs] == ["instance_type", "min_instances"]
    assert msgs[1] == "min_instances: 3 is greater than max_instances 2"


def test_a_rule_that_reads_a_bad_key_is_not_reported_against_its_default():
    [msg] = problems(instance_type="ml.g5.2xlargeX", model_id="meta-llama/Llama-3.1-70B-Instruct")
    assert msg.startswith("instance_type: 'ml.g5.2xlargeX' is not a supported GPU instance type")


def test_unknown_keys_are_rejected_with_a_suggestion():
    [msg] = problems(instance_typ="ml.g5.2xlarge")
    assert msg.startswith("instance_typ: unknown setting; did you mean instance_type")


def test_model_size_is_required_when_it_cannot_be_inferred():
    [msg] = problems(model_id="s3://bucket/weights/")
    assert msg.startswith("model_size_b: not set and cannot be inferred")
    assert Settings.from_context({"model_id": "s3://bucket/weights/", "model_size_b": "8"}).resolved_model_size_b == 8


def test_string_overrides_from_the_command_line_are_coerced():
    s = Settings.from_context({"max_instances": "4", "api_rate_limit_rps": "2.5", "alarm_email": "none"})
    assert (s.max_instances, s.api_rate_limit_rps, s.alarm_email) == (4, 2.5, None)


def test_active_hours_must_be_a_whole_hour_range():
    assert problems(active_hours="8-7")[0].startswith("active_hours: '8-7' is not a whole-hour range")
    assert problems(active_hours="08:00-20:00", active_days="MON-FUN")[0].startswith("active_days:")
    schedule = Settings.from_context({"active_hours": "08:00-20:00"}).schedule
    assert (schedule.start_hour, schedule.end_hour, schedule.days) == (8, 20, ("MON", "TUE", "WED", "THU", "FRI"))


def test_a_buffered_answers_budget_must_fit_inside_sagemakers_60_seconds():
    assert problems(lambda_timeout_s=60) == [
        "lambda_timeout_s: 60 must be between 3 and 59 (SageMaker's InvokeEndpoint waits 60 s for the model)"
    ]


def test_a_buffered_answers_budget_must_end_before_the_functions_timeout():
    assert problems(lambda_timeout_s=40, api_timeout_s=40) == [
        "lambda_timeout_s: 40 s must be below the function's timeout, 39 s (api_timeout_s 40 less 1); "
        "raise api_timeout_s or lower lambda_timeout_s"
    ]


@pytest.mark.parametrize(
    "model_id, size",
    [
        ("Qwen/Qwen2.5-7B-Instruct", 7),
        ("meta-llama/Llama-3.1-8B", 8),
        ("Qwen/Qwen2.5-0.5B", 0.5),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56),
        ("gpt2", None),
        ("org/b2b-model", None),
    ],
)
def test_model_size_is_inferred_from_the_id(model_id, size):
    assert infer_model_size_b(model_id) == size


def test_an_s3_model_id_needs_a_valid_bucket_name():
    [msg] = problems(model_id="s3://w/llama/", model_size_b=8)
    assert msg.startswith("model_id: 's3://w/llama/' is not an s3:// prefix with a valid bucket name")


def test_adapters_cannot_ride_along_with_s3_weights(tmp_path):
    from ownllm.artifacts import check_compatible, load_artifacts

    (tmp_path / "adapters" / "bot").mkdir(parents=True)
    (tmp_path / "adapters" / "bot" / "adapter_config.json").write_text("{}")
    settings = Settings.from_context({"model_id": "s3://my-weights/llama/", "model_size_b": 8})
    with pytest.raises(SettingsError, match="model_artifacts/adapters: 1 adapter"):
        check_compatible(settings, load_artifacts(tmp_path))


def test_serving_json_must_be_keyed_by_engine(tmp_path):
    from ownllm.artifacts import load_artifacts

    (tmp_path / "serving.json").write_text('{"vlm": {"X": "1"}}')
    with pytest.raises(SettingsError, match="'vlm' is not an engine; accepted: vllm, lmi, tgi"):
        load_artifacts(tmp_path)


ENV_NAME_RULE = (
    "is not an environment variable name (a letter or '_', then letters, digits and '_', at most 1024 bytes: "
    "SageMaker's rule)"
)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),  # was a UnicodeDecodeError traceback
        (
            b'{"vllm": {"MAX_LEN": "1"}, "vllm": {"OTHER": "2"}}',
            "key 'vllm' appears twice in one object; JSON readers keep only the last, so say it once",
        ),
        (
            b'{"vllm": {"MAX_LEN": "1", "MAX_LEN": "2"}}',
            "key 'MAX_LEN' appears twice in one object; JSON readers keep only the last, so say it once",
        ),
        (b'{"vllm": {"RATIO": NaN}}', "not valid JSON (NaN is not a JSON number; give a finite number)"),
        (b'{"vllm": {"RATIO": 1e400}}', "vllm.RATIO: inf is not a finite number"),
        (b'{"vllm": {"A=B": "1"}}', f"vllm: 'A=B' {ENV_NAME_RULE}"),
        (b'{"vllm": {"": "1"}}', f"vllm: '' {ENV_NAME_RULE}"),
        (b'{"tgi": {"X": "' + b"y" * 1025 + b'"}}', "tgi.X: the value is 1025 bytes; SageMaker takes at most 1024"),
        (b"null", "must be an object keyed by engine (vllm, lmi, tgi)"),
    ],
)
def test_serving_json_that_sagemaker_or_a_json_reader_would_take_differently_is_one_line(tmp_path, content, problem):
    """Before, a duplicate key kept only the last, NaN became the text 'nan', and a bad name reached the
    template, to fail only at deploy time."""
    from ownllm.artifacts import load_artifacts

    (tmp_path / "serving.json").write_bytes(content)
    with pytest.raises(SettingsError) as caught:
        load_artifacts(tmp_path)
    assert caught.value.problems == [f"model_artifacts/serving.json: {problem}"]


def test_a_folder_named_serving_json_is_refused_not_silently_skipped(tmp_path):
    from ownllm.artifacts import load_artifacts

    (tmp_path / "serving.json").mkdir()
    with pytest.raises(SettingsError) as caught:
        load_artifacts(tmp_path)
    assert caught.value.problems == ["model_artifacts/serving.json: is a folder; it must be a JSON file"]


def test_an_adapter_unpacked_straight_into_adapters_is_refused_not_silently_skipped(tmp_path):
    """Only sub-folders are adapters: an adapter_config.json directly in adapters/ deployed no adapter."""
    from ownllm.artifacts import load_artifacts

    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "adapter_config.json").write_text('{"r": 8}')
    with pytest.raises(SettingsError) as caught:
        load_artifacts(tmp_path)
    assert caught.value.problems == [
        "model_artifacts/adapters/adapter_config.json: an adapter goes in its own folder, named as the adapter: "
        "adapters/<name>/adapter_config.json (and its weights)"
    ]


def test_settings_nested_in_a_second_ownllm_object_are_named_not_just_unknown():
    from ownllm.settings import settings_from_app_context

    with pytest.raises(SettingsError) as caught:
        settings_from_app_context({"ownllm": {"ownllm": {"instance_type": "ml.g5.xlarge"}}})
    assert caught.value.problems == [
        "ownllm: unknown setting; context.ownllm holds the settings themselves, not another 'ownllm'"
    ]


def test_an_adapter_config_with_a_key_twice_is_refused(tmp_path):
    from ownllm.artifacts import load_artifacts

    (tmp_path / "adapters" / "sql").mkdir(parents=True)
    (tmp_path / "adapters" / "sql" / "adapter_config.json").write_text('{"r": 8, "r": 512}')
    with pytest.raises(SettingsError) as caught:
        load_artifacts(tmp_path)
    assert caught.value.problems == [
        "model_artifacts/adapters/sql/adapter_config.json: key 'r' appears twice in one object; JSON readers keep "
        "only the last, so say it once"
    ]


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("max_daily_usd", "nan", "max_daily_usd: 'nan' is not a finite number; accepted: above 0"),
        ("max_daily_usd", float("inf"), "max_daily_usd: inf is not a finite number; accepted: above 0"),
        (
            "generation_tokens_per_s",
            "-inf",
            "generation_tokens_per_s: '-inf' is not a finite number; accepted: above 0, up to 1000000 "
            "(tokens/s per request)",
        ),
        (
            "requests_per_day",
            "1e3",
            "requests_per_day: '1e3' is not a whole number; accepted: 0 or more",
        ),
        (
            "log_retention_days",
            "a month",
            "log_retention_days: 'a month' is not a whole number; accepted: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, "
            "180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
        ),
        ("requests_per_day", -5, "requests_per_day: -5 must not be negative"),
        (
            "model_size_b",
            0,
            "model_size_b: 0 must be between 0.01 and 10000 (billions of parameters; 0.01 is ten million, smaller "
            "than any served LLM)",
        ),
        ("lambda_memory_mb", 64, "lambda_memory_mb: 64 must be between 128 and 10240"),
        ("apigw_cloudwatch_role", "maybe", "apigw_cloudwatch_role: 'maybe' is not true or false"),
    ],
)
def test_numbers_must_be_finite_and_in_range(key, value, problem):
    assert problems(**{key: value}) == [problem]


@pytest.mark.parametrize(
    "key, value",
    [
        ("model_id", "Qwen/Qwen2.5-7B-Instruct\n"),
        ("alarm_email", "ops@example.com\n"),
        ("stack_prefix", "OwnLlm\n"),
        ("region", "us-east-1\n"),
        ("active_hours", "08:00-20:00\n"),
    ],
)
def test_a_trailing_newline_makes_a_text_setting_invalid(key, value):
    [msg] = problems(**{key: value})
    assert msg.startswith(f"{key}: {value!r} ")


def test_the_timezone_must_be_an_iana_name_and_a_typo_gets_a_suggestion():
    assert problems(timezone="Europe/Berln") == [
        "timezone: 'Europe/Berln' is not an IANA time zone name like 'Europe/Berlin' or 'UTC'; "
        "did you mean Europe/Berlin or Europe/Belfast?"
    ]
    assert problems(timezone="../../etc/passwd") == [
        "timezone: '../../etc/passwd' is not an IANA time zone name like 'Europe/Berlin' or 'UTC'"
    ]
    assert Settings.from_context({"timezone": "America/New_York"}).timezone == "America/New_York"
    assert problems(timezone="localtime")[0].startswith("timezone: 'localtime' is not an IANA time zone name")


def test_the_hugging_face_token_secret_must_be_a_secrets_manager_name_that_cannot_break_the_dynamic_reference():
    assert problems(hf_token_secret_name="hf:token}}") == [
        "hf_token_secret_name: 'hf:token}}' is not a Secrets Manager secret name "
        "(1-512 ASCII letters, digits and the characters /_+=.@-)"
    ]
    assert Settings.from_context({"hf_token_secret_name": "ownllm/hf-token"}).hf_token_secret_name == "ownllm/hf-token"


def test_an_average_request_longer_than_the_token_limits_is_refused():
    assert problems(avg_input_tokens=5000) == [
        "avg_input_tokens: 5000 is above max_input_tokens 4096: no request that long is accepted"
    ]


def test_an_unknown_flat_context_key_from_cdk_synth_dash_c_is_refused_like_one_in_cdk_json():
    from ownllm.settings import settings_from_app_context

    context = {"ownllm": {"engine": "vllm"}, "instnace_type": "ml.g5.4xlarge", "@aws-cdk/core:flag": True}
    with pytest.raises(SettingsError) as caught:
        settings_from_app_context(context)
    assert caught.value.problems == ["instnace_type: unknown setting; did you mean instance_type?"]


def test_flat_context_keys_win_over_context_ownllm_for_every_tool(tmp_path):
    """synth, cost, local and bench read a cdk.json with both spellings the same way."""
    from ownllm.settings import load_settings, settings_from_app_context

    context = {"ownllm": {"engine": "vllm"}, "engine": "tgi"}
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}))
    assert settings_from_app_context(context).engine == "tgi"
    assert load_settings(tmp_path / "cdk.json").engine == "tgi"
    assert load_settings(tmp_path / "cdk.json", {"engine": "lmi"}).engine == "lmi"


def test_calibration_writes_where_the_loader_reads(tmp_path):
    from ownllm.bench.calibrate import Calibration, write_calibration
    from ownllm.settings import load_settings

    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(
        json.dumps({"context": {"ownllm": {"instance_tokens_per_s": 100.0}, "instance_tokens_per_s": 200.0}})
    )
    write_calibration(cdk_json, Calibration(31.5, 640.0, 1, 16, 1))
    assert load_settings(cdk_json).instance_tokens_per_s == 640.0


def test_a_truncated_cdk_json_is_one_line_naming_the_file(tmp_path):
    from ownllm.settings import load_settings

    (tmp_path / "cdk.json").write_text('{"context": {"ownllm": {')
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path / "cdk.json")
    [msg] = caught.value.problems
    assert msg.startswith(f"{tmp_path / 'cdk.json'}: not valid JSON (")


def test_resolved_settings_round_trip_through_cdk_out(tmp_path):
    from ownllm.settings import SETTINGS_FILE, read_recorded_settings, write_recorded_settings

    settings = Settings.from_context(
        {"requests_per_day": 5000, "active_hours": "08:00-20:00", "timezone": "Asia/Tokyo"}
    )
    assert write_recorded_settings(tmp_path, settings) == tmp_path / SETTINGS_FILE
    assert Settings.from_context(read_recorded_settings(tmp_path)) == settings


def _run_app(tmp_path: Path, context: dict) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    cdk_context = json.loads((root / "cdk.json").read_text())["context"]
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({**cdk_context, **context}),
        "OWNLLM_SKIP_COST": "1",
        "PYTHONPATH": str(root),
    }
    return subprocess.run([sys.executable, "app.py"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_a_dash_c_typo_on_cdk_synth_fails_synth_with_did_you_mean(tmp_path):
    result = _run_app(tmp_path, {"instnace_type": "ml.g5.4xlarge"})
    assert result.returncode == 1
    assert "  - instnace_type: unknown setting; did you mean instance_type?" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_synth_records_the_settings_it_resolved_in_cdk_out(tmp_path):
    from ownllm.settings import read_recorded_settings

    result = _run_app(tmp_path, {"requests_per_day": "5000", "timezone": "Asia/Tokyo"})
    assert result.returncode == 0, result.stderr
    recorded = Settings.from_context(read_recorded_settings(tmp_path))
    assert (recorded.requests_per_day, recorded.timezone, recorded.instance_type) == (
        5000,
        "Asia/Tokyo",
        "ml.g5.2xlarge",
    )


@pytest.mark.parametrize(
    "engine, precision, env",
    [
        ("vllm", "bf16", {"SM_VLLM_DTYPE": "bfloat16"}),
        ("vllm", "fp8", {"SM_VLLM_QUANTIZATION": "fp8"}),
        ("lmi", "fp16", {"OPTION_DTYPE": "fp16"}),
        ("lmi", "fp8", {"OPTION_QUANTIZE": "fp8"}),
        ("tgi", "bf16", {"DTYPE": "bfloat16"}),
        ("tgi", "fp8", {"QUANTIZE": "fp8"}),
    ],
)
def test_each_engine_is_told_the_precision_the_performance_model_assumed(engine, precision, env):
    from ownllm.engines import PRECISION_ENV, container_environment

    s = Settings.from_context({"engine": engine, "precision": precision})
    container = container_environment(s)
    told = {k: container[k] for k in {k for table in PRECISION_ENV[engine].values() for k in table} if k in container}
    assert told == env


def test_a_checkpoint_quantized_ahead_of_time_is_not_told_its_method_again():
    from ownllm.engines import container_environment

    s = Settings.from_context({"precision": "int4", "model_id": "Qwen/Qwen2.5-7B-Instruct-AWQ"})
    env = container_environment(s)
    assert [k for k in env if k in ("SM_VLLM_DTYPE", "SM_VLLM_QUANTIZATION")] == []


def test_the_forwarder_caps_max_tokens_at_what_finishes_within_the_timeout():
    """Calibrated at 10 tokens/s: (28 - 0.2) x 10 = 278 tokens; default_max_tokens 512 is lowered to it."""
    from ownllm.forwarder import forwarder_environment

    s = Settings.from_context({"generation_tokens_per_s": 10.0})
    env = forwarder_environment(s, endpoint_name="e")
    assert (env["MAX_INPUT_TOKENS"], env["MAX_TOTAL_TOKENS"], env["DEFAULT_MAX_TOKENS"]) == ("4096", "4374", "278")


def test_a_stream_may_ask_for_what_it_generates_before_the_functions_longer_timeout():
    """(api_timeout_s - 1 s function margin - 1 s forwarder margin - time to first token) x decode speed
    + 1, at most what the engine holds after the longest prompt."""
    import math

    s = Settings.from_context({"api_timeout_s": 60})
    cap = s.capacity
    expected = math.floor((60 - 2.0 - cap.time_to_first_token_s) * cap.decode_tokens_per_s) + 1
    assert s.max_stream_output_tokens == expected
    assert s.max_output_tokens < s.max_stream_output_tokens < s.max_total_tokens - s.max_input_tokens
    assert Settings.from_context({}).max_stream_output_tokens == 8192 - 4096  # 298 s holds the whole context


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("latency_p95_ms", -1, "latency_p95_ms: -1 must be greater than 0"),
        ("target_concurrency_per_instance", "0", "target_concurrency_per_instance: '0' must be greater than 0"),
    ],
)
def test_an_optional_count_out_of_range_says_what_is_accepted(key, value, problem):
    assert problems(**{key: value}) == [problem]


@pytest.mark.parametrize("key", ["max_instances", "requests_per_day", "api_burst_limit", "latency_p95_ms"])
def test_a_whole_number_too_large_for_aws_is_refused_instead_of_synthesized_as_a_float(key):
    """99999999999999999999999 once reached the template as "MaxCapacity": 1e+23 and a $1e22/day bill."""
    assert problems(**{key: "99999999999999999999999"}) == [
        f"{key}: '99999999999999999999999' is above 2147483647, the largest whole number AWS APIs take"
    ]


def test_the_largest_32_bit_whole_number_is_still_accepted():
    assert Settings.from_context({"requests_per_day": "2147483647"}).requests_per_day == 2_147_483_647


def test_max_total_tokens_above_the_models_context_window_is_refused():
    """Llama 2 reads 4096 positions; vLLM would not start with max_model_len 8192 (the default)."""
    assert problems(model_id="meta-llama/Llama-2-7b-chat-hf", max_input_tokens=2048) == [
        "max_total_tokens: 8192 is above the 4096-token context of meta-llama/Llama-2-7b-chat-hf "
        "(max_position_embeddings in its config.json); the engine would not start; use at most 4096"
    ]


def test_max_total_tokens_within_the_models_context_window_is_accepted():
    s = Settings.from_context(
        {"model_id": "meta-llama/Llama-2-7b-chat-hf", "max_total_tokens": 4096, "max_input_tokens": 2048}
    )
    assert s.max_total_tokens == 4096


def test_a_bundled_model_whose_id_names_no_size_needs_no_model_size_b():
    """The bundled table knows Phi-3-mini's 3.82B parameters; its id ("mini") names none."""
    s = Settings.from_context(
        {"model_id": "microsoft/Phi-3-mini-4k-instruct", "max_total_tokens": 4096, "max_input_tokens": 2048}
    )
    assert s.resolved_model_size_b == 3.82


def test_a_model_size_below_ten_million_parameters_is_refused_as_ownllm_capacity_does():
    assert problems(model_size_b="1e-6") == [
        "model_size_b: '1e-6' must be between 0.01 and 10000 (billions of parameters; 0.01 is ten million, "
        "smaller than any served LLM)"
    ]


@pytest.mark.parametrize(
    "model_id",
    ["org/" + "x" * 94 + "-7B", "Org/Ünïcode-7B", "org/x--7b", "org/x-7b.", "org/x-7b.git", "org/x 7b"],
)
def test_a_model_id_the_hub_would_refuse_is_refused_here_with_its_rule(model_id):
    """A 100-character name and non-ASCII letters passed before (the pattern used \\w) and failed only when
    the container started."""
    assert problems(model_id=model_id, model_size_b=7) == [
        f"model_id: {model_id!r} is neither a Hugging Face id 'org/name' (ASCII letters, digits, '-', '_' and '.'; "
        "the name at most 96 characters, not starting or ending with '-' or '.'; no '--' or '..') nor an s3:// "
        "prefix of weights"
    ]


@pytest.mark.parametrize("zone, meant", [("utc", "UTC"), ("europe/berlin", "Europe/Berlin")])
def test_a_time_zone_in_the_wrong_case_gets_the_right_name_suggested(zone, meant):
    assert problems(timezone=zone) == [
        f"timezone: {zone!r} is not an IANA time zone name like 'Europe/Berlin' or 'UTC'; did you mean {meant}?"
    ]


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("engine", 5, "engine: 5 is not text; accepted: vllm, lmi, tgi"),
        (
            "instance_type",
            ["ml.g5.2xlarge"],
            "instance_type: ['ml.g5.2xlarge'] is not text; accepted: a SageMaker "
            "GPU instance type like 'ml.g5.2xlarge'",
        ),
        (
            "region",
            {"name": "us-east-1"},
            "region: {'name': 'us-east-1'} is not text; accepted: an AWS region name like 'us-east-1'",
        ),
    ],
)
def test_a_text_setting_given_a_number_list_or_object_says_what_it_accepts(key, value, problem):
    assert problems(**{key: value}) == [problem]


@pytest.mark.parametrize(
    "key, value, problem",
    [
        (
            "generation_tokens_per_s",
            "1e308",
            "generation_tokens_per_s: '1e308' must be greater than 0 and at most 1000000 (tokens/s per request)",
        ),
        (
            "instance_tokens_per_s",
            1e308,
            "instance_tokens_per_s: 1e+308 must be greater than 0 and at most 1000000 (tokens/s per instance)",
        ),
        (
            "min_tokens_per_s_per_request",
            "2e6",
            "min_tokens_per_s_per_request: '2e6' must be greater than 0 and at most 1000000 (tokens/s)",
        ),
        (
            "api_input_usd_per_m",
            "1e308",
            "api_input_usd_per_m: '1e308' must be greater than 0 and at most 10000 (USD per million tokens)",
        ),
        (
            "api_output_usd_per_m",
            10_001,
            "api_output_usd_per_m: 10001 must be greater than 0 and at most 10000 (USD per million tokens)",
        ),
        (
            "model_size_b",
            "1e308",
            "model_size_b: '1e308' must be between 0.01 and 10000 (billions of parameters; 10000 is ten trillion, "
            "more than any supported instance holds even at 4 bits)",
        ),
    ],
)
def test_a_speed_price_or_size_too_large_to_be_real_is_refused_before_a_total_overflows(key, value, problem):
    """1e308 tokens/s crashed `math.floor` with OverflowError; 1e308 USD per million tokens printed
    "$inf/day" and wrote Infinity into cost-estimate.json."""
    assert problems(**{key: value}) == [problem]


def test_the_largest_model_size_accepted_fits_no_supported_instance_even_at_4_bits():
    """So the bound refuses no model that some instance could serve: 0.5 bytes per parameter."""
    from ownllm import gpus
    from ownllm.settings import MAX_MODEL_SIZE_B

    largest_gib = max(info.gpu_memory_gib for info in gpus.gpu_table().values())
    assert largest_gib < MAX_MODEL_SIZE_B * 1e9 * 0.5 / gpus.GIB


@pytest.mark.parametrize("key", ["Instance_Type", "INSTANCE-TYPE", "instance-type"])
def test_a_setting_given_in_another_case_or_with_dashes_is_refused_not_dropped(key):
    """`cdk synth -c Instance_Type=ml.g5.xlarge` was not ownllm-looking, so synth dropped it and deployed
    the default ml.g5.2xlarge without a word."""
    from ownllm.settings import settings_from_app_context

    with pytest.raises(SettingsError) as caught:
        settings_from_app_context({key: "ml.g5.xlarge", "@aws-cdk/core:newStyleStackSynthesis": True})
    assert caught.value.problems == [f"{key}: unknown setting; did you mean instance_type?"]


def test_a_cdk_json_saved_with_a_byte_order_mark_is_read_as_the_cdk_cli_reads_it(tmp_path):
    """Windows editors save UTF-8 with a BOM; the CDK CLI runs such an app, so `ownllm cost`, wake and
    batch read it too (before: "not valid JSON (Unexpected UTF-8 BOM ...)")."""
    from ownllm.settings import load_settings

    path = tmp_path / "cdk.json"
    path.write_bytes(b'\xef\xbb\xbf{"context": {"ownllm": {"requests_per_day": 5}}}')
    assert load_settings(path).requests_per_day == 5


def test_a_key_twice_in_cdk_json_is_refused_since_json_readers_silently_keep_only_the_last(tmp_path):
    from ownllm.settings import load_settings

    path = tmp_path / "cdk.json"
    path.write_text('{"context": {"ownllm": {"instance_count": 1, "instance_count": 3}}}')
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        f"{path}: key 'instance_count' appears twice in one object; JSON readers keep only the last, so say it once"
    ]
