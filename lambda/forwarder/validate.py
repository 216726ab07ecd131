"""OpenAI request bodies in, one validated Request out, or an ApiError naming the field.

Pure: bytes and a Config in, plain data out. Every client mistake becomes a 4xx here so
that nothing a client sends can reach the engine malformed or make the function fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import errors
import tokens
from config import Config
from wire import CHAT
from wire import COMPLETION as COMPLETION  # the route kinds are wire.py's; the routes pass validate.COMPLETION

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 16


@dataclass(slots=True)
class Request:
    kind: str  # CHAT or COMPLETION
    model: str  # the name answers report: the base model or the adapter asked for
    adapter: str | None
    max_tokens: int
    stream: bool = False
    include_usage: bool = False
    messages: list[dict] | None = None  # chat: role + content (text), tool fields kept
    prompt: str | None = None  # completion
    sampling: dict = field(default_factory=dict)  # temperature, top_p, stop (list), seed, penalties
    extras: dict = field(default_factory=dict)  # chat passthrough: tools, tool_choice, response_format
    prompt_tokens_estimate: int = 0


# vLLM's OpenAI server takes a seed in torch.long's range, a 64-bit integer
# (vllm-project/vllm vllm/entrypoints/openai/protocol.py: Field(ge=_LONG_INFO.min, le=_LONG_INFO.max)).
SEED_RANGE = (-(2**63), 2**63 - 1)


class _NotJson(ValueError):
    """A reason the body is not JSON, already in words for the client."""


def _reject_constant(name: str) -> float:
    raise _NotJson(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf, which would reach the engine as Infinity
        raise ValueError(f"{text[:20]} is too large for a number")
    return value


# Python's json accepts NaN and Infinity, which are not JSON and which no engine takes.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(raw: bytes | str, limit: int) -> dict:
    """The body as a JSON object; the size limit counts UTF-8 bytes, as on the wire."""
    if isinstance(raw, str):
        size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    else:
        size = len(raw)
    if size > limit:
        raise errors.request_too_large(size, limit)
    if not raw or raw.isspace():
        raise errors.invalid("The request body is empty; send a JSON object.", None, "invalid_json")
    try:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259)
        if text.startswith("\ufeff"):
            raise _NotJson("it starts with a byte order mark (U+FEFF); send UTF-8 without one")
        body = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise errors.invalid(
            f"The request body is not valid JSON: {_why_not_json(exc)}.", None, "invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise errors.invalid("The request body must be a JSON object.", None, "invalid_json")
    return body


def _why_not_json(exc: Exception) -> str:
    if isinstance(exc, _NotJson):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    return "a number in it has too many digits"  # the one other ValueError: int() refuses > 4300 digits


def parse(kind: str, raw: bytes | str, config: Config) -> Request:
    body = parse_json(raw, config.max_request_bytes)
    model, adapter = _model(body, config)
    stream = _optional(body, "stream", bool, "a boolean") or False
    max_tokens = _max_tokens(body, config, stream)
    include_usage = False
    options = _optional(body, "stream_options", dict, "an object")
    if options is not None:
        include_usage = _optional(options, "include_usage", bool, "a boolean", "stream_options.include_usage") or False
    n = _optional(body, "n", int, "an integer")
    if n is not None and n != 1:
        raise errors.invalid("Only n=1 is supported: ask for one choice per request.", "n", "unsupported_value")
    sampling = _sampling(body)
    if kind == CHAT:
        messages = _messages(body)
        extras = _chat_extras(body)
        estimate = tokens.estimate_chat(messages, extras)
        prompt_param = "messages"
    else:
        prompt = _prompt(body)
        messages, extras, estimate, prompt_param = None, {}, tokens.estimate(prompt), "prompt"
    if estimate > config.max_input_tokens:
        raise errors.invalid(
            f"The prompt is about {estimate} tokens (estimated), above this API's limit of "
            f"{config.max_input_tokens} input tokens. Shorten it.",
            prompt_param,
            "context_length_exceeded",
        )
    return Request(
        kind=kind,
        model=model,
        adapter=adapter,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage and stream,
        messages=messages,
        prompt=None if kind == CHAT else prompt,
        sampling=sampling,
        extras=extras,
        prompt_tokens_estimate=estimate,
    )


# -- fields --------------------------------------------------------------------------------


def _optional(obj: dict, key: str, kind: type, expected: str, param: str | None = None) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
            return int(value)
        raise errors.wrong_type(param or key, expected, value)
    if kind is not int and not isinstance(value, kind):
        raise errors.wrong_type(param or key, expected, value)
    return value


def _number(obj: dict, key: str, lo: float, hi: float) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise errors.wrong_type(key, "a number", value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise errors.invalid(f"'{key}' must be between {lo:g} and {hi:g}; got {value}.", key)
    return value


def _model(body: dict, config: Config) -> tuple[str, str | None]:
    name = _optional(body, "model", str, "a string")
    resolved = config.resolve_model(name)
    if resolved is None:
        raise errors.model_not_found(str(name), config.model_names)
    return resolved


def _max_tokens(body: dict, config: Config, stream: bool) -> int:
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = _optional(body, key, int, "an integer")
    if value is None:
        return config.default_max_tokens
    if value < 1:
        raise errors.invalid(f"'{key}' must be at least 1; got {value}.", key)
    cap = config.max_tokens_for(stream)
    if value > cap:
        longer = config.max_tokens_for(True)
        hint = f' With "stream": true the limit is {longer}.' if not stream and longer > cap else ""
        raise errors.invalid(
            f"'{key}' is {value}, above this API's limit of {cap} tokens per answer.{hint}",
            key,
            "max_tokens_exceeded",
        )
    return value


def _sampling(body: dict) -> dict:
    out: dict[str, Any] = {}
    for key, lo, hi in (
        ("temperature", 0, 2),
        ("top_p", 0, 1),
        ("presence_penalty", -2, 2),
        ("frequency_penalty", -2, 2),
    ):
        value = _number(body, key, lo, hi)
        if value is not None:
            out[key] = value
    seed = _optional(body, "seed", int, "an integer")
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise errors.invalid(
            f"'seed' must be between {SEED_RANGE[0]} and {SEED_RANGE[1]} (a 64-bit integer); got {seed}.", "seed"
        )
    if seed is not None:
        out["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise errors.wrong_type("stop", "a string or a list of strings", stop)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise errors.invalid(
                f"'stop' has {len(stops)} sequences; at most {MAX_STOP_SEQUENCES} are allowed.", "stop"
            )
        stops = [s for s in stops if s]
        if stops:
            out["stop"] = stops
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise errors.invalid("logprobs are not supported by this API.", "logprobs", "unsupported_parameter")
    return out


def _text(content: Any, param: str) -> str:
    """Message content as text: a string, or a list of text parts (joined as OpenAI does)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise errors.wrong_type(f"{param}[{j}]", "an object", part)
            if part.get("type") != "text":
                raise errors.invalid(
                    f"Only text content is supported; '{param}[{j}].type' is {part.get('type')!r}.",
                    f"{param}[{j}].type",
                    "unsupported_content",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise errors.wrong_type(f"{param}[{j}].text", "a string", text)
            parts.append(text)
        return "\n".join(parts)
    raise errors.wrong_type(param, "a string or a list of text parts", content)


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if messages is None:
        raise errors.missing("messages")
    if not isinstance(messages, list):
        raise errors.wrong_type("messages", "an array", messages)
    if not messages:
        raise errors.invalid("'messages' must contain at least one message.", "messages", "empty_array")
    out = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise errors.wrong_type(param, "an object", message)
        role = message.get("role")
        if role is None:
            raise errors.missing(f"{param}.role")
        if not isinstance(role, str):
            raise errors.wrong_type(f"{param}.role", "a string", role)
        if role not in ROLES:
            raise errors.invalid(
                f"Invalid value for '{param}.role': {role[:64]!r}. Supported: {', '.join(ROLES)}.", f"{param}.role"
            )
        normal: dict[str, Any] = {"role": "system" if role == "developer" else role}
        tool_calls = message.get("tool_calls")
        if role == "assistant" and tool_calls is not None:
            if not isinstance(tool_calls, list) or not all(isinstance(t, dict) for t in tool_calls):
                raise errors.wrong_type(f"{param}.tool_calls", "an array of objects", tool_calls)
            normal["tool_calls"] = tool_calls
        content = message.get("content")
        if content is None and not normal.get("tool_calls"):
            raise errors.missing(f"{param}.content")
        text = "" if content is None else _text(content, f"{param}.content")
        if (not text or text.isspace()) and not normal.get("tool_calls"):
            raise errors.invalid(
                f"'{param}.content' is empty; every message needs text.", f"{param}.content", "empty_content"
            )
        normal["content"] = text if content is not None else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise (
                    errors.missing(f"{param}.tool_call_id")
                    if call_id is None
                    else errors.wrong_type(f"{param}.tool_call_id", "a non-empty string", call_id)
                )
            normal["tool_call_id"] = call_id
        name = message.get("name")
        if name is not None:
            if not isinstance(name, str):
                raise errors.wrong_type(f"{param}.name", "a string", name)
            normal["name"] = name
        out.append(normal)
    return out


def _chat_extras(body: dict) -> dict:
    extras: dict[str, Any] = {}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise errors.wrong_type("tools", "an array of objects", tools)
        extras["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, (str, dict)):
            raise errors.wrong_type("tool_choice", "a string or an object", choice)
        extras["tool_choice"] = choice
    response_format = body.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict):
            raise errors.wrong_type("response_format", "an object", response_format)
        extras["response_format"] = response_format
    return extras


def _prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if prompt is None:
        raise errors.missing("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise errors.invalid("Send exactly one prompt per request.", "prompt", "unsupported_value")
        prompt = prompt[0]
        if not isinstance(prompt, str):
            raise errors.wrong_type("prompt[0]", "a string", prompt)
    if not isinstance(prompt, str):
        raise errors.wrong_type("prompt", "a string", prompt)
    if not prompt or prompt.isspace():
        raise errors.invalid("'prompt' is empty.", "prompt", "empty_content")
    if body.get("echo") is True:
        raise errors.invalid("echo is not supported by this API.", "echo", "unsupported_parameter")
    if body.get("suffix"):
        raise errors.invalid("suffix is not supported by this API.", "suffix", "unsupported_parameter")
    return prompt
