"""One typed, validated settings object, built once from CDK context and passed down.

Pure Python (no CDK import): the CLI, the cost model and the tests build it from a plain
dict. Every problem found is reported at once, one line per problem, naming the key, the
bad value and what would be accepted, before any construct is built.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ownllm import gpus

ENGINES = ("vllm", "lmi", "tgi")
# Serving memory ~= 2 bytes per parameter at 16-bit, with >= 1.2x headroom for the KV cache
# and runtime (shared/reference/economics.md, after ray-project/llm-numbers).
BYTES_PER_PARAM = 2
MEMORY_HEADROOM = 1.2
# API Gateway REST integrations time out at 29 s; the Lambda must finish first.
API_GATEWAY_TIMEOUT_S = 29
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

_SIZE_RE = re.compile(r"(?<![A-Za-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)
_HOURS_RE = re.compile(r"^(\d{1,2}):?(\d{2})?-(\d{1,2}):?(\d{2})?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_S3_PREFIX_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
_HF_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
    the safe side for a memory check.
    """
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    matches = _SIZE_RE.findall(name)
    if not matches:
        return None
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


@dataclass(frozen=True)
class Settings:
    # What to serve, and on what.
    model_id: str = "Qwen/Qwen2.5-7B-Instruct"
    model_size_b: float | None = None
    engine: str = "vllm"
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = 1
    min_instances: int = 1
    max_instances: int = 2
    target_concurrency_per_instance: int = 8
    # Business hours only: "08:00-20:00", on active_days, in timezone (IANA name).
    active_hours: str | None = None
    active_days: str = "MON-FRI"
    timezone: str = "UTC"
    # Engine limits, also enforced by the Lambda before a request reaches the GPU.
    max_input_tokens: int = 4096
    max_total_tokens: int = 8192
    max_batch_size: int = 64
    default_max_tokens: int = 512
    max_request_bytes: int = 262_144
    hf_token_secret_name: str | None = None
    # API.
    api_rate_limit_rps: float = 10.0
    api_burst_limit: int = 20
    api_quota_per_day: int = 50_000
    lambda_memory_mb: int = 128
    # API Gateway needs an account-wide CloudWatch role to write access logs. It is one per
    # region (AWS::ApiGateway::Account); set false if another stack already manages it.
    apigw_cloudwatch_role: bool = True
    lambda_timeout_s: int = 28
    log_retention_days: int = 30
    # Monitoring.
    alarm_email: str | None = None
    latency_p95_ms: int = 20_000
    gpu_memory_alarm_percent: float = 95.0
    # Usage assumptions for the cost estimate (and its budget guard).
    requests_per_day: int = 1_000
    avg_input_tokens: int = 500
    avg_output_tokens: int = 250
    generation_tokens_per_s: float = 40.0
    instance_tokens_per_s: float | None = None
    max_daily_usd: float | None = None
    api_input_usd_per_m: float | None = None
    api_output_usd_per_m: float | None = None
    # Where: None keeps the stacks environment-agnostic (deployable to any region; images
    # resolved through a per-region map, prices for us-east-1 unless told otherwise).
    region: str | None = None
    # Naming.
    stack_prefix: str = "OwnLlm"
    # Filled in by validation.
    resolved_model_size_b: float = field(default=0.0, compare=False)

    # ----- derived facts -------------------------------------------------------------
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
        m = _HOURS_RE.match(self.active_hours.strip())
        assert m, "validated"
        return ActiveHours(int(m.group(1)), int(m.group(3)), _expand_days(self.active_days) or (), self.timezone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ----- construction --------------------------------------------------------------
    @classmethod
    def from_context(cls, raw: dict[str, Any] | None) -> Settings:
        """Build from the 'ownllm' context dict plus flat `-c key=value` overrides.

        Values from `-c` arrive as strings; they are coerced to each field's type.
        """
        raw = dict(raw or {})
        known = {f.name: f for f in fields(cls) if f.name != "resolved_model_size_b"}
        problems: list[str] = []
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                close = " or ".join(_close(key, list(known)))
                problems.append(f"{key}: unknown setting" + (f"; did you mean {close}?" if close else ""))
                continue
            coerced, problem = _coerce(key, value, known[key].type)
            if problem:
                problems.append(problem)
            else:
                values[key] = coerced
        if problems:
            raise SettingsError(problems)
        settings = cls(**values)
        return settings._validated()

    def _validated(self) -> Settings:
        p: list[str] = []
        if self.engine not in ENGINES:
            p.append(f"engine: {self.engine!r} is not supported; accepted: {', '.join(ENGINES)}")
        if not (self.model_from_s3 or _HF_ID_RE.match(self.model_id)):
            p.append(
                f"model_id: {self.model_id!r} is neither a Hugging Face id ('org/name') nor an s3:// prefix of weights"
            )
        if self.model_from_s3 and not _S3_PREFIX_RE.match(self.model_id):
            p.append(
                f"model_id: {self.model_id!r} is not an s3:// prefix with a valid bucket name "
                "(3-63 lowercase letters, digits, '.' and '-'), e.g. s3://my-bucket/llama-3-8b/"
            )
        size = self.model_size_b if self.model_size_b is not None else infer_model_size_b(self.model_id)
        if size is None:
            p.append(
                f"model_size_b: not set and cannot be inferred from model_id {self.model_id!r}; "
                "give the size in billions of parameters, e.g. -c model_size_b=8"
            )
        elif size <= 0:
            p.append(f"model_size_b: {size!r} must be a positive number of billions of parameters")
        info = gpus.gpu_info(self.instance_type)
        if info is None:
            close = gpus.close_instance_types(self.instance_type)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            p.append(
                f"instance_type: {self.instance_type!r} is not a supported GPU instance type{hint} "
                f"(families: {', '.join(gpus.SUPPORTED_FAMILIES)})"
            )
        elif size and size > 0:
            need = model_memory_gib(size)
            if need > info.gpu_memory_gib:
                fitting = [t for t, g in gpus.gpu_table().items() if g.gpu_memory_gib >= need][:5]
                p.append(
                    f"instance_type: {self.instance_type!r} has {info.gpu_memory_gib:.0f} GiB of GPU memory, but a "
                    f"{size:g}B model needs about {need:.0f} GiB (2 bytes/parameter x {MEMORY_HEADROOM} headroom); "
                    f"instance types that fit: {', '.join(fitting) or 'none'}"
                )
        for key in ("instance_count", "min_instances", "max_instances"):
            if getattr(self, key) < 1:
                p.append(
                    f"{key}: {getattr(self, key)} must be at least 1 (an instance-backed endpoint cannot run on 0)"
                )
        if self.min_instances > self.max_instances:
            p.append(f"min_instances: {self.min_instances} is greater than max_instances {self.max_instances}")
        elif not self.min_instances <= self.instance_count <= self.max_instances:
            p.append(
                f"instance_count: {self.instance_count} must lie between min_instances {self.min_instances} "
                f"and max_instances {self.max_instances}"
            )
        if self.active_hours:
            m = _HOURS_RE.match(self.active_hours.strip())
            if (
                not m
                or m.group(2) not in (None, "00")
                or m.group(4) not in (None, "00")
                or not (0 <= int(m.group(1)) < int(m.group(3)) <= 24)
            ):
                p.append(
                    f"active_hours: {self.active_hours!r} is not a whole-hour range like '08:00-20:00' (start < end, 0-24)"
                )
            if _expand_days(self.active_days) is None:
                p.append(f"active_days: {self.active_days!r} is not a day range like 'MON-FRI' or a list 'MON,WED,FRI'")
        if self.alarm_email and not _EMAIL_RE.match(self.alarm_email):
            p.append(f"alarm_email: {self.alarm_email!r} is not an email address")
        if self.max_input_tokens >= self.max_total_tokens:
            p.append(
                f"max_input_tokens: {self.max_input_tokens} must be below max_total_tokens {self.max_total_tokens}"
            )
        if not 0 < self.default_max_tokens <= self.max_total_tokens - self.max_input_tokens:
            p.append(
                f"default_max_tokens: {self.default_max_tokens} must be between 1 and "
                f"max_total_tokens - max_input_tokens ({self.max_total_tokens - self.max_input_tokens})"
            )
        if not 1024 <= self.max_request_bytes <= 6 * 1024 * 1024:
            p.append(
                f"max_request_bytes: {self.max_request_bytes} must be between 1024 and 6291456 (Lambda's 6 MB payload limit)"
            )
        if not 128 <= self.lambda_memory_mb <= 10240:
            p.append(f"lambda_memory_mb: {self.lambda_memory_mb} must be between 128 and 10240")
        if not 3 <= self.lambda_timeout_s < API_GATEWAY_TIMEOUT_S:
            p.append(
                f"lambda_timeout_s: {self.lambda_timeout_s} must be between 3 and {API_GATEWAY_TIMEOUT_S - 1} "
                f"(API Gateway's integration timeout is {API_GATEWAY_TIMEOUT_S} s)"
            )
        if self.log_retention_days not in RETENTION_DAYS:
            p.append(
                f"log_retention_days: {self.log_retention_days} is not a CloudWatch retention; "
                f"accepted: {', '.join(map(str, RETENTION_DAYS))}"
            )
        for key in (
            "latency_p95_ms",
            "max_batch_size",
            "target_concurrency_per_instance",
            "api_burst_limit",
            "api_quota_per_day",
            "avg_output_tokens",
        ):
            if getattr(self, key) <= 0:
                p.append(f"{key}: {getattr(self, key)} must be greater than 0")
        for key in ("requests_per_day", "avg_input_tokens"):
            if getattr(self, key) < 0:
                p.append(f"{key}: {getattr(self, key)} must not be negative")
        for key in (
            "api_rate_limit_rps",
            "generation_tokens_per_s",
            "instance_tokens_per_s",
            "max_daily_usd",
            "api_input_usd_per_m",
            "api_output_usd_per_m",
        ):
            v = getattr(self, key)
            if v is not None and v <= 0:
                p.append(f"{key}: {v} must be greater than 0")
        if not 0 < self.gpu_memory_alarm_percent <= 100:
            p.append(f"gpu_memory_alarm_percent: {self.gpu_memory_alarm_percent} must be in (0, 100]")
        if not re.match(r"^[A-Za-z][A-Za-z0-9-]{0,30}$", self.stack_prefix):
            p.append(
                f"stack_prefix: {self.stack_prefix!r} must start with a letter and use letters, digits and '-' (max 31)"
            )
        if self.region is not None and not re.match(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", self.region):
            p.append(f"region: {self.region!r} is not an AWS region name like 'us-east-1'")
        if p:
            raise SettingsError(p)
        object.__setattr__(self, "resolved_model_size_b", float(size))
        return self


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


def _expand_days(spec: str) -> tuple[str, ...] | None:
    spec = spec.strip().upper()
    if "-" in spec and "," not in spec:
        a, _, b = spec.partition("-")
        if a in DAYS and b in DAYS and DAYS.index(a) <= DAYS.index(b):
            return DAYS[DAYS.index(a) : DAYS.index(b) + 1]
        return None
    days = tuple(d.strip() for d in spec.split(","))
    return days if days and all(d in DAYS for d in days) else None


def _close(key: str, options: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(key, options, n=2, cutoff=0.75)


def _coerce(key: str, value: Any, annotation: str) -> tuple[Any, str | None]:
    """Coerce one raw context value to the field's declared type (annotations are strings)."""
    optional = "None" in annotation
    base = annotation.replace(" | None", "").strip()
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None, None
        return None, f"{key}: a value is required ({base})"
    if base == "str":
        return (str(value), None)
    if base == "int":
        if isinstance(value, bool):
            return None, f"{key}: {value!r} is not a whole number"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value), None
        return None, f"{key}: {value!r} is not a whole number"
    if base == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes"), None
        return None, f"{key}: {value!r} is not true or false"
    if base == "float":
        if isinstance(value, bool):
            return None, f"{key}: {value!r} is not a number"
        try:
            return float(value), None
        except (TypeError, ValueError):
            return None, f"{key}: {value!r} is not a number"
    return value, None


def settings_from_app_context(try_get_context) -> Settings:
    """Read the 'ownllm' context object, then apply flat `-c key=value` overrides."""
    base = dict(try_get_context("ownllm") or {})
    for f in fields(Settings):
        override = try_get_context(f.name)
        if override is not None:
            base[f.name] = override
    return Settings.from_context(base)
