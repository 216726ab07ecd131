"""The forwarder's settings, read once from the environment the stack sets.

Pure: `load(environ)` takes a mapping and returns a frozen Config or raises ConfigError
listing every problem (key, bad value, what is accepted), so a misconfigured function
answers a logged 500 configuration error instead of failing at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import contract as c
from contract import DEFAULTS, ENGINES


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Config:
    endpoint_name: str
    engine: str
    model_name: str
    adapters: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULTS.max_request_bytes
    max_input_tokens: int = DEFAULTS.max_input_tokens
    max_total_tokens: int = DEFAULTS.max_total_tokens
    default_max_tokens: int = DEFAULTS.default_max_tokens
    log_prompts: bool = False
    # Set when the model runs as an inference component (the scale-to-zero topology).
    inference_component: str | None = None
    # Upstream call budget (optional env overrides; each attempt gets at most the time left).
    connect_timeout_s: float = DEFAULTS.connect_timeout_s
    read_timeout_s: float = DEFAULTS.read_timeout_s
    max_attempts: int = DEFAULTS.max_attempts
    response_margin_s: float = 1.0  # kept back to build and log the answer

    # Largest max_tokens with stream: true (a stream may run up to the function's longer timeout);
    # None: the same as without.
    max_stream_tokens: int | None = None

    @property
    def max_tokens_cap(self) -> int:
        """Largest max_tokens a request may ask for: whatever the context leaves after the longest prompt."""
        return self.max_total_tokens - self.max_input_tokens

    def max_tokens_for(self, stream: bool) -> int:
        """The cap for a request: a stream may ask for what finishes within its longer time."""
        if stream and self.max_stream_tokens is not None:
            return self.max_stream_tokens
        return self.max_tokens_cap

    def resolve_model(self, name: str | None) -> tuple[str, str | None] | None:
        """(model name to report, adapter or None) for a requested name; None if unknown."""
        if name is None or name == "" or name == self.model_name:
            return self.model_name, None
        if name in self.adapters:
            return name, name
        return None

    @property
    def model_names(self) -> tuple[str, ...]:
        return (self.model_name, *self.adapters)


def _int(env: Mapping[str, str], key: str, default: int, problems: list[str], minimum: int = 1) -> int:
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{key}={raw!r} is not an integer (expected a whole number >= {minimum})")
        return default
    if value < minimum:
        problems.append(f"{key}={value} is below {minimum}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{key}={raw!r} is not a number of seconds")
        return default
    if not 0 < value <= c.INVOKE_ENDPOINT_TIMEOUT_S:
        problems.append(f"{key}={value} must be above 0 and at most {c.INVOKE_ENDPOINT_TIMEOUT_S:g} seconds")
    return value


def _bool(env: Mapping[str, str], key: str, problems: list[str]) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    problems.append(f"{key}={raw!r} is not a boolean (expected true or false)")
    return False


def load(env: Mapping[str, str]) -> Config:
    problems: list[str] = []
    endpoint_name = env.get(c.ENDPOINT_NAME, "").strip()
    if not endpoint_name:
        problems.append(f"{c.ENDPOINT_NAME} is not set (expected the SageMaker endpoint's name)")
    engine = env.get(c.ENGINE, "").strip().lower()
    if engine not in ENGINES:
        problems.append(f"{c.ENGINE}={engine!r} is not one of {', '.join(ENGINES)}")
    model_name = env.get(c.MODEL_NAME, "").strip()
    if not model_name:
        problems.append(f"{c.MODEL_NAME} is not set (expected the served model name clients pass as `model`)")
    adapters = tuple(dict.fromkeys(a.strip() for a in env.get(c.ADAPTERS, "").split(",") if a.strip()))
    adapters = tuple(a for a in adapters if a != model_name)
    max_request_bytes = _int(env, c.MAX_REQUEST_BYTES, DEFAULTS.max_request_bytes, problems)
    max_input_tokens = _int(env, c.MAX_INPUT_TOKENS, DEFAULTS.max_input_tokens, problems)
    max_total_tokens = _int(env, c.MAX_TOTAL_TOKENS, DEFAULTS.max_total_tokens, problems)
    default_max_tokens = _int(env, c.DEFAULT_MAX_TOKENS, DEFAULTS.default_max_tokens, problems)
    cap = max_total_tokens - max_input_tokens
    if cap < 1:
        problems.append(
            f"{c.MAX_TOTAL_TOKENS}={max_total_tokens} leaves no room to generate after "
            f"{c.MAX_INPUT_TOKENS}={max_input_tokens} (expected {c.MAX_TOTAL_TOKENS} > {c.MAX_INPUT_TOKENS})"
        )
    elif default_max_tokens > cap:
        problems.append(
            f"{c.DEFAULT_MAX_TOKENS}={default_max_tokens} is above the max_tokens cap {cap}"
            f" ({c.MAX_TOTAL_TOKENS} - {c.MAX_INPUT_TOKENS})"
        )
    config = Config(
        endpoint_name=endpoint_name,
        engine=engine,
        model_name=model_name,
        adapters=adapters,
        max_request_bytes=max_request_bytes,
        max_input_tokens=max_input_tokens,
        max_total_tokens=max_total_tokens,
        default_max_tokens=default_max_tokens,
        log_prompts=_bool(env, c.LOG_PROMPTS, problems),
        inference_component=env.get(c.INFERENCE_COMPONENT_NAME, "").strip() or None,
        connect_timeout_s=_float(env, c.UPSTREAM_CONNECT_TIMEOUT_S, DEFAULTS.connect_timeout_s, problems),
        read_timeout_s=_float(env, c.UPSTREAM_READ_TIMEOUT_S, DEFAULTS.read_timeout_s, problems),
        max_stream_tokens=_int(env, c.MAX_STREAM_TOKENS, max(cap, 1), problems)
        if env.get(c.MAX_STREAM_TOKENS)
        else None,
        max_attempts=_int(env, c.UPSTREAM_MAX_ATTEMPTS, DEFAULTS.max_attempts, problems),
    )
    if problems:
        raise ConfigError(problems)
    return config
