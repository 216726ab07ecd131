"""One typed, validated settings object, resolved once by one loader and passed down.

Pure Python (no CDK import): synth, `ownllm cost`, `ownllm local` and `ownllm bench
--calibrate` all resolve settings here, with one precedence:

    field defaults  <  cdk.json context.ownllm  <  flat context keys (cdk.json, then -c)

Unknown keys are refused the same way wherever they come from. Every problem is reported
at once, one line per problem, naming the key, the bad value and what would be accepted.
Synth records the resolved settings in cdk.out (SETTINGS_FILE), so a later
`ownllm cost estimate` prices the assembly with the settings it was built from.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ownllm import capacity as sizing
from ownllm import gpus, regions
from ownllm.forwarder import contract
from ownllm.perf.models import ModelArch

# The request path's facts (lambda/forwarder/contract.py), which the forwarder enforces too.
_CONTRACT = contract()
ENGINES: tuple[str, ...] = _CONTRACT.ENGINES
# Weight precisions the performance model knows and the engines are told (ownllm/engines.py).
PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4")
# int8/int4 serve a checkpoint quantized ahead of time (AWQ, GPTQ, W8A8...): the engines read the
# method from its config.json, so the model id must name such a checkpoint.
_QUANTIZED_ID_RE = {
    "int4": re.compile(r"awq|gptq|int4|w4a16|4bit|nf4", re.IGNORECASE),
    "int8": re.compile(r"int8|w8a8|w8a16|8bit|gptq", re.IGNORECASE),
}
# Settings left unset whose values the performance model (ownllm.capacity) or the hardware supplies.
DERIVED_KEYS = ("precision", "target_concurrency_per_instance", "latency_p95_ms")
# Serving memory ~= 2 bytes per parameter at 16-bit, with >= 1.2x headroom for the KV cache
# and runtime (ray-project/llm-numbers, "Rules of thumb for sizing").
BYTES_PER_PARAM = 2
MEMORY_HEADROOM = 1.2
# The model sizes accepted, in billions of parameters (as `ownllm capacity --model-size-b`). The
# largest is ten trillion parameters: more than the GPU memory of any supported instance holds even
# at 4 bits (tests/infra/test_settings.py checks it against ownllm/gpus.py), and small enough that
# every memory figure stays finite.
MIN_MODEL_SIZE_B = 0.01
MAX_MODEL_SIZE_B = 10_000.0
# The largest speed (tokens/s) and API price (USD per million tokens) accepted: far above any real
# figure, so only a typo meets them, and low enough that every total built from them stays finite
# (1e308 tokens/s overflowed `math.floor`; 1e308 USD per million tokens printed "$inf/day").
MAX_TOKENS_PER_S = 1_000_000.0
MAX_USD_PER_M_TOKENS = 10_000.0
# API Gateway REST integrations time out at 29 s (buffered); a STREAM integration may run 15 minutes.
API_GATEWAY_TIMEOUT_S: int = _CONTRACT.API_GATEWAY_TIMEOUT_S
API_GATEWAY_STREAM_TIMEOUT_S: int = _CONTRACT.STREAM_LIMIT_S
# SageMaker's InvokeEndpoint waits 60 s for the model: the bound of a buffered (stream: false) answer.
INVOKE_ENDPOINT_TIMEOUT_S: int = _CONTRACT.INVOKE_ENDPOINT_TIMEOUT_S
# Lambda: memory 128-10240 MB; a synchronous invocation's payload is at most 6 MB.
LAMBDA_MEMORY_MB = (128, 10_240)
LAMBDA_PAYLOAD_BYTES: int = _CONTRACT.LAMBDA_PAYLOAD_BYTES
_DEFAULTS = _CONTRACT.DEFAULTS
# AWS APIs and CloudFormation take whole numbers as 32-bit signed integers (Smithy's `integer`
# shape, https://smithy.io/2.0/spec/simple-types.html); a larger one reached the template as 1e+23.
INT32_MAX = 2**31 - 1
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# CloudWatch Logs retention values (AWS::Logs::LogGroup RetentionInDays).
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Where synth records the settings it resolved, inside the cloud assembly directory.
SETTINGS_FILE = "ownllm-settings.json"
SETTINGS_SCHEMA = "ownllm.settings/1"

_SIZE_RE = re.compile(r"(?<![A-Za-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)
_HOURS_RE = re.compile(r"(\d{1,2}):?(\d{2})?-(\d{1,2}):?(\d{2})?")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_S3_PREFIX_RE = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?")
# A Hugging Face repo id 'org/name': ASCII letters, digits, '-', '_' and '.'; the name 1-96 characters,
# neither starting nor ending with '-' or '.'; no '--' or '..'; not ending in '.git' (huggingface_hub
# validate_repo_id, src/huggingface_hub/utils/_validators.py, which mirrors the Hub's own rule).
_HF_ID_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
HF_ID_RULE = (
    "a Hugging Face id 'org/name' (ASCII letters, digits, '-', '_' and '.'; the name at most 96 characters, "
    "not starting or ending with '-' or '.'; no '--' or '..')"
)
_STACK_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,30}")
_REGION_RE = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
# Secrets Manager names: 1-512 ASCII letters, digits and /_+=.@- (CreateSecret's Name,
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html; the
# length is NameType's min/max in boto/botocore botocore/data/secretsmanager/2017-10-17/service-2.json).
# The name is pasted into a {{resolve:secretsmanager:NAME:...}} dynamic reference, so this
# also keeps ':' '{' '}' out of it.
_SECRET_NAME_RE = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# A context key in ownllm's namespace: lower-case snake case. CDK's own keys ('@aws-cdk/...',
# 'aws:cdk:...', 'acknowledged-issue-numbers') never look like this.
_SETTING_KEY_RE = re.compile(r"[a-z][a-z0-9_]*")
_NONE_WORDS = ("", "none", "null")
_FIELDS_ONLY = "fields_only"  # validation context: check each field, not the rules between them


class SettingsError(ValueError):
    """All problems with the settings, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "ownllm settings are not valid (set them in cdk.json context 'ownllm' or with -c key=value):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def infer_model_size_b(model_id: str) -> float | None:
    """Billions of parameters from a model id such as 'Qwen2.5-7B-Instruct' or 'Mixtral-8x7B'.

    For mixture-of-experts names (8x7B) the product is returned: an upper bound, which is
    the safe side for a memory check. An id naming no size ('Phi-3-mini') falls back to the
    bundled model table's parameter count.
    """
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    matches = _SIZE_RE.findall(name)
    if not matches:
        known = sizing.bundled_arch(model_id)
        return known.params_b if known is not None else None
    experts, size = matches[-1]
    return float(size) * (int(experts) if experts else 1)


def model_memory_gib(model_size_b: float) -> float:
    return model_size_b * 1e9 * BYTES_PER_PARAM * MEMORY_HEADROOM / gpus.GIB


@dataclass(frozen=True)
class ActiveHours:
    start_hour: int
    end_hour: int
    days: tuple[str, ...]
    timezone: str

    @property
    def hours_per_week(self) -> int:
        return (self.end_hour - self.start_hour) * len(self.days)


Positive = Annotated[int, Field(gt=0, le=INT32_MAX)]
NonNegative = Annotated[int, Field(ge=0, le=INT32_MAX)]
Speed = Annotated[float, Field(gt=0, le=MAX_TOKENS_PER_S)]
OptionalSpeed = Annotated[float | None, Field(gt=0, le=MAX_TOKENS_PER_S)]
OptionalPrice = Annotated[float | None, Field(gt=0, le=MAX_USD_PER_M_TOKENS)]
PositiveFloat = Annotated[float, Field(gt=0)]
OptionalPositiveFloat = Annotated[float | None, Field(gt=0)]
OptionalPositive = Annotated[int | None, Field(gt=0, le=INT32_MAX)]
Count = Annotated[int, Field(ge=1, le=INT32_MAX)]

# Why a bound exists, appended to the message when a value is out of it.
_WHY: dict[str, str] = {
    "instance_count": "an instance-backed endpoint cannot run on 0",
    "min_instances": "0 runs the model as an inference component that scales to zero",
    "max_instances": "an instance-backed endpoint cannot run on 0",
    "max_request_bytes": "Lambda's 6 MB payload limit",
    "model_size_b": "billions of parameters; 0.01 is ten million, smaller than any served LLM",
    "min_tokens_per_s_per_request": "tokens/s",
    "generation_tokens_per_s": "tokens/s per request",
    "instance_tokens_per_s": "tokens/s per instance",
    "api_input_usd_per_m": "USD per million tokens",
    "api_output_usd_per_m": "USD per million tokens",
    "lambda_timeout_s": f"SageMaker's InvokeEndpoint waits {INVOKE_ENDPOINT_TIMEOUT_S} s for the model",
    "api_timeout_s": f"a stream outlasts the buffered {API_GATEWAY_TIMEOUT_S} s and may last "
    f"{API_GATEWAY_STREAM_TIMEOUT_S} s at most",
}

# Why an upper bound exists, where it differs from the reason for the lower one.
_WHY_ABOVE: dict[str, str] = {
    "model_size_b": "billions of parameters; 10000 is ten trillion, more than any supported instance holds "
    "even at 4 bits",
}

# Keys an existing cdk.out can be re-priced with: they change the usage assumptions, the
# prices or the guard. Every other key needs a new synth. (Token counts and measured speeds
# also feed the model-derived defaults of the next synth: autoscaling target, alarms, max_tokens;
# re-pricing asks "what would this traffic cost on what is built".)
ESTIMATE_KEYS = frozenset(
    {
        "requests_per_day",
        "avg_input_tokens",
        "avg_output_tokens",
        "generation_tokens_per_s",
        "instance_tokens_per_s",
        "max_daily_usd",
        "api_input_usd_per_m",
        "api_output_usd_per_m",
        "region",
        "model_size_b",
    }
)


class Settings(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, protected_namespaces=(), validate_default=False
    )

    # What to serve, and on what.
    model_id: str = "Qwen/Qwen2.5-7B-Instruct"
    model_size_b: Annotated[float | None, Field(ge=MIN_MODEL_SIZE_B, le=MAX_MODEL_SIZE_B)] = None
    engine: str = "vllm"
    instance_type: str = "ml.g5.2xlarge"
    instance_count: Count = 1
    min_instances: NonNegative = 1  # 0: scale to zero (an inference component wakes on demand)
    max_instances: Count = 2
    # None: from the performance model (ownllm.capacity), the concurrency where throughput levels
    # off while each request keeps min_tokens_per_s_per_request. Validated settings hold the number.
    target_concurrency_per_instance: OptionalPositive = None
    min_tokens_per_s_per_request: Speed = 20.0
    # Weight precision; None: bf16, or fp16 on GPUs without bf16 (g4dn's T4).
    precision: str | None = None
    # Business hours only: "08:00-20:00", on active_days, in timezone (IANA name).
    active_hours: str | None = None
    active_days: str = "MON-FRI"
    timezone: str = "UTC"
    # Engine limits, also enforced by the Lambda before a request reaches the GPU.
    max_input_tokens: Positive = _DEFAULTS.max_input_tokens
    max_total_tokens: Positive = _DEFAULTS.max_total_tokens
    max_batch_size: Positive = 64
    default_max_tokens: Positive = _DEFAULTS.default_max_tokens
    max_request_bytes: Annotated[int, Field(ge=1024, le=LAMBDA_PAYLOAD_BYTES)] = _DEFAULTS.max_request_bytes
    hf_token_secret_name: str | None = None
    # API.
    api_rate_limit_rps: PositiveFloat = 10.0
    api_burst_limit: Positive = 20
    api_quota_per_day: Positive = 50_000
    lambda_memory_mb: Annotated[int, Field(ge=LAMBDA_MEMORY_MB[0], le=LAMBDA_MEMORY_MB[1])] = 128
    # API Gateway needs an account-wide CloudWatch role to write access logs. It is one per
    # region (AWS::ApiGateway::Account); set false if another stack already manages it.
    apigw_cloudwatch_role: bool = True
    # How long a buffered (stream: false) answer is sized for: its max_tokens cap is what finishes
    # within it at the predicted speed, the latency alarm sits under it and Lambda time is priced up
    # to it. Every route is a STREAM integration, so API Gateway's 29 s does not bound it; SageMaker's
    # InvokeEndpoint waits 60 s for the model, so at most 59. 28 s by default: a buffered answer
    # stays within the 30 s many HTTP clients and proxies wait; longer answers stream.
    lambda_timeout_s: Annotated[int, Field(ge=3, le=INVOKE_ENDPOINT_TIMEOUT_S - 1)] = 28
    # How long a streamed completion may run: the STREAM integration's timeout; the function's is
    # one second less, so its own deadline ends the stream first. 300 s: the longest answer the
    # engine allows (max_total_tokens - max_input_tokens = 4,096 tokens) at the 20 tokens/s per
    # request the sizing keeps takes 205 s, plus room for a queue; the 900 s maximum would mostly
    # bill Lambda time for stuck streams.
    api_timeout_s: Annotated[int, Field(ge=API_GATEWAY_TIMEOUT_S + 1, le=API_GATEWAY_STREAM_TIMEOUT_S)] = 300
    log_retention_days: int = 30
    # Monitoring.
    alarm_email: str | None = None
    # None: twice the predicted request time, at most the Lambda timeout (ownllm.capacity).
    latency_p95_ms: OptionalPositive = None
    # Usage assumptions for the cost estimate (and its budget guard).
    requests_per_day: NonNegative = 1_000
    avg_input_tokens: NonNegative = 500
    avg_output_tokens: Positive = 250
    # Measured by `ownllm bench --calibrate`; None: predicted by the performance model.
    generation_tokens_per_s: OptionalSpeed = None
    instance_tokens_per_s: OptionalSpeed = None
    max_daily_usd: OptionalPositiveFloat = None
    api_input_usd_per_m: OptionalPrice = None
    api_output_usd_per_m: OptionalPrice = None
    # Where: None keeps the stacks environment-agnostic (deployable to any region; images
    # resolved through a per-region map; the estimate is priced for AWS_REGION /
    # CDK_DEFAULT_REGION when set, else us-east-1).
    region: str | None = None
    # Naming.
    stack_prefix: str = "OwnLlm"

    # ----- field rules ---------------------------------------------------------------
    @field_validator("*", mode="before")
    @classmethod
    def _plain_input(cls, value: object, info: ValidationInfo) -> object:
        """-c values arrive as text: 'none' clears an optional key; a bool is never a number."""
        kinds = _field_kinds(info.field_name) if info.field_name else ()
        if isinstance(value, str) and value.strip().lower() in _NONE_WORDS and type(None) in kinds:
            return None
        if isinstance(value, bool) and (int in kinds or float in kinds):
            raise ValueError("is not a whole number" if int in kinds else "is not a number")
        return value

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        if v not in ENGINES:
            raise ValueError(f"is not supported; accepted: {', '.join(ENGINES)}{_did_you_mean(v, ENGINES)}")
        return v

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str | None) -> str | None:
        if v is not None and v not in PRECISIONS:
            raise ValueError(f"is not supported; accepted: {', '.join(PRECISIONS)}{_did_you_mean(v, PRECISIONS)}")
        return v

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, v: str) -> str:
        if v.startswith("s3://"):
            if not _S3_PREFIX_RE.fullmatch(v):
                raise ValueError(
                    "is not an s3:// prefix with a valid bucket name "
                    "(3-63 lowercase letters, digits, '.' and '-'), e.g. s3://my-bucket/llama-3-8b/"
                )
        elif not _HF_ID_RE.fullmatch(v) or "--" in v or ".." in v or v.endswith(".git"):
            raise ValueError(f"is neither {HF_ID_RULE} nor an s3:// prefix of weights")
        return v

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, v: str) -> str:
        if gpus.gpu_info(v) is None:
            close = gpus.close_instance_types(v)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"is not a supported GPU instance type{hint} (families: {', '.join(gpus.SUPPORTED_FAMILIES)})"
            )
        return v

    @field_validator("active_hours")
    @classmethod
    def _active_hours(cls, v: str | None) -> str | None:
        if v is not None and _hour_range(v) is None:
            raise ValueError("is not a whole-hour range like '08:00-20:00' (start < end, 0-24)")
        return v

    @field_validator("active_days")
    @classmethod
    def _active_days(cls, v: str) -> str:
        if _expand_days(v) is None:
            raise ValueError("is not a day range like 'MON-FRI' or a list 'MON,WED,FRI'")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if not is_iana_timezone(v):
            same = [name for name in (*sorted(_iana_names()), "UTC") if name.lower() == v.strip().lower()]
            hint = f"; did you mean {same[0]}?" if same else _did_you_mean(v, sorted(_iana_names()))
            raise ValueError(f"is not an IANA time zone name like 'Europe/Berlin' or 'UTC'{hint}")
        return v

    @field_validator("hf_token_secret_name")
    @classmethod
    def _secret_name(cls, v: str | None) -> str | None:
        if v is not None and not _SECRET_NAME_RE.fullmatch(v):
            raise ValueError(
                "is not a Secrets Manager secret name (1-512 ASCII letters, digits and the characters /_+=.@-)"
            )
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in RETENTION_DAYS:
            raise ValueError(f"is not a CloudWatch retention; accepted: {', '.join(map(str, RETENTION_DAYS))}")
        return v

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL_RE.fullmatch(v):
            raise ValueError("is not an email address")
        return v

    @field_validator("stack_prefix")
    @classmethod
    def _stack_prefix(cls, v: str) -> str:
        if not _STACK_PREFIX_RE.fullmatch(v):
            raise ValueError("must start with a letter and use letters, digits and '-' (max 31)")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not _REGION_RE.fullmatch(v):
            raise ValueError("is not an AWS region name like 'us-east-1'")
        reason = regions.unsupported_region_reason(v) if v is not None else None
        if reason:  # refused here too, so no tool prices a region synth would refuse
            raise ValueError(reason)
        return v

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> Settings:
        if info.context and info.context.get(_FIELDS_ONLY):
            return self
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("\n".join(text for _, text in problems))
        return self._with_derived_defaults()

    _derived: frozenset[str] = PrivateAttr(default=frozenset())

    def _with_derived_defaults(self) -> Settings:
        """Fill the keys left unset from the hardware and the performance model, remembering which."""
        unset = [k for k in DERIVED_KEYS if getattr(self, k) is None]
        if not unset:
            return self
        update: dict[str, object] = {"precision": self.precision or sizing.default_precision(self.instance_type)}
        with_precision = self.model_copy(update=update)
        try:
            cap = with_precision.capacity
        except sizing.CapacityError as exc:
            raise ValueError(str(exc)) from None
        if self.target_concurrency_per_instance is None:
            update["target_concurrency_per_instance"] = int(cap.target_concurrency.value)
        if self.latency_p95_ms is None:
            update["latency_p95_ms"] = int(cap.latency_alarm_ms.value)
        # In place, so Settings(...) gets them too (pydantic ignores another instance returned to
        # __init__); the fields stay out of model_fields_set: the user did not set them.
        for key, value in update.items():
            object.__setattr__(self, key, value)
        self._derived = frozenset(unset)
        return self

    # ----- derived facts -------------------------------------------------------------
    @property
    def resolved_model_size_b(self) -> float:
        size = self.model_size_b if self.model_size_b is not None else infer_model_size_b(self.model_id)
        assert size is not None, "validated settings always know the model size"
        return size

    @property
    def gpu(self) -> gpus.GpuInfo:
        info = gpus.gpu_info(self.instance_type)
        assert info is not None, "validated settings always name a known instance type"
        return info

    @property
    def gpu_count(self) -> int:
        return self.gpu.gpu_count

    @property
    def model_memory_gib(self) -> float:
        return model_memory_gib(self.resolved_model_size_b)

    @property
    def scale_to_zero(self) -> bool:
        """min_instances 0: the model runs as an inference component that can have no copies."""
        return self.min_instances == 0

    @property
    def model_arch(self) -> ModelArch:
        return sizing.model_arch(self.model_id, self.model_size_b, infer_model_size_b(self.model_id))

    @property
    def resolved_precision(self) -> str:
        return self.precision or sizing.default_precision(self.instance_type)

    @property
    def derived_keys(self) -> frozenset[str]:
        """The keys the user left unset, whose values came from the hardware or the performance model."""
        return self._derived

    @property
    def capacity(self) -> sizing.ServingCapacity:
        """What one instance serves at the autoscaling target; calibrated speeds beat the model."""
        user_set = self.model_fields_set - self._derived
        return sizing.serving_capacity(
            self.model_arch,
            self.instance_type,
            self.resolved_precision,
            self.engine,
            self.avg_input_tokens,
            self.avg_output_tokens,
            self.max_batch_size,
            self.min_tokens_per_s_per_request,
            float(self.lambda_timeout_s),
            self.target_concurrency_per_instance if "target_concurrency_per_instance" in user_set else None,
            self.generation_tokens_per_s,
            self.instance_tokens_per_s,
            self.latency_p95_ms if "latency_p95_ms" in user_set else None,
        )

    @property
    def autoscaling_target(self) -> int:
        """Requests in flight per instance that target tracking holds (setting, else the model)."""
        return int(self.capacity.target_concurrency.value)

    @property
    def latency_alarm_ms(self) -> int:
        """The latency alarms' threshold (latency_p95_ms, else from the predicted request time)."""
        return int(self.capacity.latency_alarm_ms.value)

    @property
    def max_output_tokens(self) -> int:
        """The largest max_tokens a request may ask for: what the engine holds after the longest
        prompt, and what finishes within the Lambda timeout at the predicted (or measured) speed."""
        return min(self.max_total_tokens - self.max_input_tokens, int(self.capacity.max_output_tokens.value))

    @property
    def function_timeout_s(self) -> int:
        """The forwarder's own timeout: a second under the streaming integration's, so the function's
        deadline ends a stream in-band before API Gateway cuts it."""
        return self.api_timeout_s - 1

    @property
    def max_stream_output_tokens(self) -> int:
        """The largest max_tokens with stream: true: what the engine holds after the longest prompt,
        and what a stream generates before the function's own timeout (api_timeout_s - 1 s, less the
        forwarder's 1 s margin) at the same per-request speed."""
        cap = self.capacity
        budget = self.function_timeout_s - 1.0 - cap.time_to_first_token_s
        speed = self.generation_tokens_per_s or cap.decode_tokens_per_s
        tokens = math.floor(budget * speed) + 1
        return max(1, min(self.max_total_tokens - self.max_input_tokens, tokens))

    @property
    def model_from_s3(self) -> bool:
        return self.model_id.startswith("s3://")

    @property
    def served_model_name(self) -> str:
        """The name clients pass as `model` and see in responses."""
        return self.model_id.rstrip("/").rsplit("/", 1)[-1] if self.model_from_s3 else self.model_id

    @property
    def schedule(self) -> ActiveHours | None:
        if not self.active_hours:
            return None
        hours = _hour_range(self.active_hours)
        days = _expand_days(self.active_days)
        assert hours is not None and days is not None, "validated"
        return ActiveHours(hours[0], hours[1], days, self.timezone)

    def to_dict(self) -> dict[str, Any]:
        """The settings as given: derived defaults are left out, so reading them back derives them again."""
        return self.model_dump(mode="json", exclude=set(self._derived))

    # ----- construction --------------------------------------------------------------
    @classmethod
    def from_context(cls, raw: Mapping[str, object] | None) -> Settings:
        """Validate one resolved dict of settings; every problem is reported at once."""
        values = dict(raw or {})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = _problems(exc, values)
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if bad:  # the rules between the keys that are good still report, all at once
                rest = {k: v for k, v in values.items() if k not in bad}
                good = cls.model_validate(rest, context={_FIELDS_ONLY: True})  # these keys validated above
                problems += [text for keys, text in cross_field_problems(good) if not keys & bad]
            raise SettingsError(problems) from None


def cross_field_problems(s: Settings) -> list[tuple[frozenset[str], str]]:
    """Rules between fields, each with the keys it reads (a rule reading a bad key is skipped)."""
    p: list[tuple[frozenset[str], str]] = []

    def rule(keys: str, text: str) -> None:
        p.append((frozenset(keys.split()), text))

    size = s.model_size_b if s.model_size_b is not None else infer_model_size_b(s.model_id)
    if size is None:
        rule(
            "model_size_b model_id",
            f"model_size_b: not set and cannot be inferred from model_id {s.model_id!r}; "
            "give the size in billions of parameters, e.g. -c model_size_b=8",
        )
    else:
        precision = s.resolved_precision
        problem = sizing.fit_problem(
            s.model_arch, s.instance_type, precision, s.engine, s.avg_input_tokens, s.avg_output_tokens
        )
        if problem:
            rule("precision instance_type model_size_b model_id engine avg_input_tokens avg_output_tokens", problem)
        quantized = _QUANTIZED_ID_RE.get(precision)
        if quantized and not s.model_from_s3 and not quantized.search(s.model_id):
            rule(
                "precision model_id",
                f"precision: {precision!r} serves a checkpoint quantized ahead of time (the engine reads its "
                f"method from config.json), but model_id {s.model_id!r} does not name one (AWQ, GPTQ, "
                f"{'W4A16' if precision == 'int4' else 'W8A8'}); use such a model id, or precision fp8 "
                "(quantized when the engine loads)",
            )
    if s.lambda_timeout_s >= s.function_timeout_s:
        rule(
            "lambda_timeout_s api_timeout_s",
            f"lambda_timeout_s: {s.lambda_timeout_s} s must be below the function's timeout, {s.function_timeout_s} s "
            f"(api_timeout_s {s.api_timeout_s} less 1); raise api_timeout_s or lower lambda_timeout_s",
        )
    if s.min_instances > s.max_instances:
        rule(
            "min_instances max_instances",
            f"min_instances: {s.min_instances} is greater than max_instances {s.max_instances}",
        )
    elif not s.min_instances <= s.instance_count <= s.max_instances:
        rule(
            "instance_count min_instances max_instances",
            f"instance_count: {s.instance_count} must lie between min_instances {s.min_instances} "
            f"and max_instances {s.max_instances}",
        )
    if s.max_input_tokens >= s.max_total_tokens:
        rule(
            "max_input_tokens max_total_tokens",
            f"max_input_tokens: {s.max_input_tokens} must be below max_total_tokens {s.max_total_tokens}",
        )
    elif s.default_max_tokens > s.max_total_tokens - s.max_input_tokens:
        rule(
            "default_max_tokens max_total_tokens max_input_tokens",
            f"default_max_tokens: {s.default_max_tokens} must be between 1 and "
            f"max_total_tokens - max_input_tokens ({s.max_total_tokens - s.max_input_tokens})",
        )
    known = sizing.bundled_arch(s.model_id)
    if known is not None and s.max_total_tokens > known.context:
        # vLLM refuses to start when max_model_len is above the config's max_position_embeddings
        # ("User-specified max_model_len ... is greater than the derived max_model_len",
        # vllm-project/vllm vllm/config.py, ModelConfig); positions past it were never trained.
        rule(
            "max_total_tokens model_id",
            f"max_total_tokens: {s.max_total_tokens} is above the {known.context}-token context of "
            f"{s.model_id} (max_position_embeddings in its config.json); the engine would not start; "
            f"use at most {known.context}",
        )
    if s.avg_input_tokens > s.max_input_tokens:
        rule(
            "avg_input_tokens max_input_tokens",
            f"avg_input_tokens: {s.avg_input_tokens} is above max_input_tokens {s.max_input_tokens}: "
            "no request that long is accepted",
        )
    if s.avg_input_tokens + s.avg_output_tokens > s.max_total_tokens:
        rule(
            "avg_input_tokens avg_output_tokens max_total_tokens",
            f"avg_output_tokens: {s.avg_output_tokens} plus avg_input_tokens {s.avg_input_tokens} is above "
            f"max_total_tokens {s.max_total_tokens}: no request that long is accepted",
        )
    return p


def _field_kinds(name: str) -> tuple[object, ...]:
    """The types a field accepts: (int,), (float, NoneType), ..."""
    annotation = Settings.model_fields[name].annotation
    return get_args(annotation) or (annotation,)


@cache
def _iana_names() -> frozenset[str]:
    import zoneinfo

    # "localtime" is this machine's zone, not a name another machine knows.
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}


def is_iana_timezone(name: str) -> bool:
    """A name from the IANA database ('Europe/Berlin', 'UTC'), not a path or a machine's own zone."""
    if name == "UTC" or name in _iana_names():
        return True
    if _iana_names() or not name or name != name.strip() or name.startswith("/") or ".." in name:
        return False
    import zoneinfo  # no zone database listed here (no tzdata): loading the zone is the test

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _hour_range(text: str) -> tuple[int, int] | None:
    m = _HOURS_RE.fullmatch(text)
    if not m or m.group(2) not in (None, "00") or m.group(4) not in (None, "00"):
        return None
    start, end = int(m.group(1)), int(m.group(3))
    return (start, end) if 0 <= start < end <= 24 else None


def _expand_days(spec: str) -> tuple[str, ...] | None:
    spec = spec.upper()
    if "-" in spec and "," not in spec:
        a, _, b = spec.partition("-")
        if a in DAYS and b in DAYS and DAYS.index(a) <= DAYS.index(b):
            return DAYS[DAYS.index(a) : DAYS.index(b) + 1]
        return None
    days = tuple(spec.split(","))
    return days if days and all(d in DAYS for d in days) else None


def _did_you_mean(value: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=2, cutoff=0.75)
    return f"; did you mean {' or '.join(close)}?" if close else ""


# ----- pydantic errors -> one line each ----------------------------------------------------


def _problems(exc: ValidationError, raw: dict[str, object]) -> list[str]:
    out: list[str] = []
    for error in exc.errors():
        if not error["loc"]:  # cross-field rules: already whole lines
            out.extend(str(_ctx(error).get("error", error["msg"])).splitlines())
            continue
        key = str(error["loc"][0])
        out.append(f"{key}: {_describe(key, raw.get(key), error)}")
    return out


def _ctx(error: ErrorDetails) -> dict[str, Any]:
    return dict(error.get("ctx") or {})


def _describe(key: str, value: object, error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        normal = key.strip().lower().replace("-", "_")  # names are lower-case snake case
        if normal in Settings.model_fields:
            return f"unknown setting; did you mean {normal}?"
        if normal == "ownllm":
            return "unknown setting; context.ownllm holds the settings themselves, not another 'ownllm'"
        return "unknown setting" + _did_you_mean(key, list(Settings.model_fields))
    shown = repr(value)
    if kind == "value_error":
        text = str(_ctx(error)["error"])
        return f"{shown} {text}{_range(key)}" if text in _NOT_A_NUMBER else f"{shown} {text}"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{shown} is not a whole number{_range(key)}"
    if kind == "finite_number":
        return f"{shown} is not a finite number{_range(key)}"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number{_range(key)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not true or false"
    if kind == "string_type":
        hint = _TEXT_ACCEPTED.get(key)
        return f"{shown} is not text" + (f"; accepted: {hint}" if hint else "")
    if kind == "less_than_equal" and _ctx(error).get("le") == INT32_MAX:
        return f"{shown} is above {INT32_MAX}, the largest whole number AWS APIs take"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{shown} {_bounds_text(key, exceeded=kind.startswith('less'))}"
    return f"{shown}: {error['msg']}"


_NOT_A_NUMBER = ("is not a whole number", "is not a number")
# What a text key takes, said when it is given a number, a list or an object.
_TEXT_ACCEPTED: dict[str, str] = {
    "engine": ", ".join(ENGINES),
    "precision": ", ".join(PRECISIONS),
    "model_id": f"{HF_ID_RULE} or an s3:// prefix of weights",
    "instance_type": "a SageMaker GPU instance type like 'ml.g5.2xlarge'",
    "region": "an AWS region name like 'us-east-1'",
    "timezone": "an IANA time zone name like 'Europe/Berlin' or 'UTC'",
    "active_hours": "a whole-hour range like '08:00-20:00'",
    "active_days": "a day range like 'MON-FRI' or a list 'MON,WED,FRI'",
    "alarm_email": "an email address",
    "stack_prefix": "a letter, then letters, digits and '-' (max 31)",
    "hf_token_secret_name": "a Secrets Manager secret name",
}  # _plain_input's words for a bool


def _range(key: str) -> str:
    """'; accepted: 1 or more (...)': what a number key takes, after saying the value is not a number."""
    if key == "log_retention_days":
        return f"; accepted: {', '.join(map(str, RETENTION_DAYS))}"
    lo: tuple[str, float] | None = None
    hi: tuple[str, float] | None = None
    for meta in Settings.model_fields[key].metadata:
        for name in ("gt", "ge"):
            if getattr(meta, name, None) is not None:
                lo = (name, getattr(meta, name))
        for name in ("lt", "le"):
            if getattr(meta, name, None) not in (None, INT32_MAX):
                hi = (name, getattr(meta, name))
    if lo is None:
        return ""
    low = f"{_num(lo[1])} or more" if lo[0] == "ge" else f"above {_num(lo[1])}"
    if hi is not None:
        low = f"{_num(lo[1])} to {_num(hi[1])}" if lo[0] == "ge" else f"above {_num(lo[1])}, up to {_num(hi[1])}"
    why = f" ({_WHY[key]})" if key in _WHY else ""
    return f"; accepted: {low}{why}"


def _bounds_text(key: str, exceeded: bool = False) -> str:
    lo: tuple[str, float] | None = None
    hi: tuple[str, float] | None = None
    for meta in Settings.model_fields[key].metadata:
        for name in ("gt", "ge"):
            if getattr(meta, name, None) is not None:
                lo = (name, getattr(meta, name))
        for name in ("lt", "le"):
            if getattr(meta, name, None) not in (None, INT32_MAX):  # said only when exceeded (_describe)
                hi = (name, getattr(meta, name))
    reason = _WHY_ABOVE.get(key) if exceeded else None
    reason = reason or _WHY.get(key)
    why = f" ({reason})" if reason else ""
    if lo and hi and lo[0] == "ge" and hi[0] == "le":
        return f"must be between {_num(lo[1])} and {_num(hi[1])}{why}"
    if lo and hi:
        low = f"greater than {_num(lo[1])}" if lo[0] == "gt" else f"at least {_num(lo[1])}"
        high = f"below {_num(hi[1])}" if hi[0] == "lt" else f"at most {_num(hi[1])}"
        return f"must be {low} and {high}{why}"
    if lo:
        text = "must be greater than 0" if lo == ("gt", 0) else f"must be at least {lo[1]:g}"
        if lo == ("ge", 0):
            text = "must not be negative"
        return text + why
    return f"must be at most {hi[1]:g}{why}" if hi else "is out of range"


def _num(value: float) -> str:
    """A bound as people write it: 10000, not 10000.0 or 1e+04."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# ----- the one loader: where settings come from, and in which order -------------------------


def is_setting_key(key: str) -> bool:
    """Whether a flat context key belongs to ownllm (and so must be a known setting): lower-case snake
    case, or a setting's name in another case or with '-' (`-c Instance_Type=...`), which would
    otherwise be dropped without a word and leave the default in place."""
    if key == "ownllm":
        return False
    return bool(_SETTING_KEY_RE.fullmatch(key)) or key.strip().lower().replace("-", "_") in Settings.model_fields


def merge_context(ownllm: object, flat: Mapping[str, object], where: str = "context") -> dict[str, object]:
    """context.ownllm, overridden by flat ownllm-looking keys: the one precedence."""
    if ownllm is None:
        ownllm = {}
    if not isinstance(ownllm, Mapping):
        raise SettingsError([f"{where}.ownllm: {ownllm!r} is not an object of settings"])
    merged: dict[str, object] = dict(ownllm)
    merged.update({k: v for k, v in flat.items() if is_setting_key(k)})
    return merged


def settings_from_app_context(context: Mapping[str, object]) -> Settings:
    """Synth: every context key the app received (cdk.json, cdk.context.json, -c) merged."""
    return Settings.from_context(merge_context(context.get("ownllm"), context))


# cdk.json is read as UTF-8 with an optional byte order mark (as Windows editors save it): the pinned
# CDK CLI (aws-cdk 2.1148.1, package.json) reads such a file and runs the app (measured with `cdk ls`),
# so every ownllm tool reads it too.
CDK_JSON_ENCODING = "utf-8-sig"


class DuplicateKeyError(ValueError):
    """A key given twice in one JSON object (json.loads would silently keep the last)."""


def unique_json_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def read_cdk_json(path: str | os.PathLike[str]) -> dict[str, object]:
    """The context of a cdk.json, {} when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        doc = json.loads(p.read_bytes().decode(CDK_JSON_ENCODING), object_pairs_hook=unique_json_object)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{p}: cannot be read ({exc})"]) from None
    except DuplicateKeyError as exc:
        raise SettingsError(
            [f"{p}: key {str(exc)!r} appears twice in one object; JSON readers keep only the last, so say it once"]
        ) from None
    except ValueError as exc:
        raise SettingsError([f"{p}: not valid JSON ({exc})"]) from None
    context = doc.get("context", {}) if isinstance(doc, dict) else None
    if not isinstance(context, dict):
        raise SettingsError([f"{p}: 'context' is not an object"])
    return context


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """`-c key=value` items, as the CDK CLI takes them."""
    out: dict[str, str] = {}
    bad = [item for item in items if "=" not in item or not item.partition("=")[0].strip()]
    if bad:
        raise SettingsError([f"-c {item!r}: expected KEY=VALUE" for item in bad])
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = value
    return out


def named_cdk_json(given: str | None, option: str = "--settings") -> str:
    """The cdk.json a CLI reads: the one named on the command line, which must exist (a typo must not
    price or size the defaults), else ./cdk.json if present."""
    if given is None:
        return "cdk.json"
    path = Path(given)
    if path.is_dir():
        inside = path / "cdk.json"
        hint = f"; did you mean {str(inside)!r}?" if inside.is_file() else ""
        raise SettingsError([f"{option} {given!r}: is a folder, not a cdk.json file{hint}"])
    if not path.is_file():
        raise SettingsError([f"{option} {given!r}: no such file"])
    return given


def load_settings(cdk_json: str | os.PathLike[str] | None, overrides: Mapping[str, object] | None = None) -> Settings:
    """CLI tools: cdk.json (if any) then -c overrides, with synth's precedence."""
    context = read_cdk_json(cdk_json) if cdk_json else {}
    where = str(cdk_json) if cdk_json else "context"
    return Settings.from_context(merge_context(context.get("ownllm"), {**context, **(overrides or {})}, where))


def setting_location(context: Mapping[str, object], key: str) -> tuple[str, ...]:
    """Where in a cdk.json context the loader reads `key` from: a flat key wins."""
    return (key,) if key in context else ("ownllm", key)


# ----- settings recorded in cdk.out -------------------------------------------------------


def write_recorded_settings(outdir: str | os.PathLike[str], settings: Settings) -> Path:
    path = Path(outdir) / SETTINGS_FILE
    path.write_text(json.dumps({"schema": SETTINGS_SCHEMA, "settings": settings.to_dict()}, indent=2) + "\n")
    return path


def read_recorded_settings(outdir: str | os.PathLike[str]) -> dict[str, object] | None:
    """The settings dict synth recorded in `outdir`, or None when it recorded none."""
    path = Path(outdir) / SETTINGS_FILE
    if path.exists() and not path.is_file():
        raise SettingsError([f"{path}: is not a file; run `cdk synth` again"])
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(doc, dict) or doc.get("schema") != SETTINGS_SCHEMA or not isinstance(doc.get("settings"), dict):
        raise SettingsError([f"{path}: not an ownllm settings record (schema {SETTINGS_SCHEMA})"])
    recorded: dict[str, object] = doc["settings"]
    return recorded
