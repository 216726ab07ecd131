"""OpenAI <-> engine: the request each engine expects, and its answer back in OpenAI shape.

Pure: plain data in, plain data out. What each engine speaks on SageMaker's /invocations
(which body per route, where the model or adapter goes, what it answers) is described once,
with its sources, in wire.py; this module fills those bodies in. TGI refuses top_p outside
(0, 1) and temperature 0, so its sampling is adjusted here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import errors
import tokens
import wire
from config import Config
from validate import CHAT, Request

REPORTED = "reported"
ESTIMATED = "estimated"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "eos_token": "stop",  # TGI, LMI
    "eos": "stop",
    "stop_sequence": "stop",  # TGI, LMI
    "abort": "stop",
}


@dataclass(slots=True)
class Completion:
    body: dict  # OpenAI chat.completion or text_completion
    usage_source: str  # REPORTED when the engine counted both sides, else ESTIMATED
    text: str  # the generated text, for LOG_PROMPTS


# -- requests ------------------------------------------------------------------------------

# Compact, and UTF-8 rather than \u escapes: smaller bodies for non-English prompts.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def engine_body(req: Request, config: Config, *, stream: bool = False) -> bytes:
    """The bytes InvokeEndpoint (or, with stream, InvokeEndpointWithResponseStream) sends."""
    try:
        return _ENCODER.encode(to_engine(req, config, stream=stream)).encode("utf-8")
    except UnicodeEncodeError:  # JSON can escape a lone surrogate (\ud800); UTF-8 cannot carry one
        param = "messages" if req.kind == CHAT else "prompt"
        raise errors.invalid("The request contains text that is not valid Unicode (a lone surrogate).", param) from None
    except ValueError:  # allow_nan=False: a non-finite number is never sent (validate refuses them first)
        raise errors.invalid("The request contains a number that is not finite.", None) from None


def to_engine(req: Request, config: Config, *, stream: bool = False) -> dict:
    route = wire.for_engine(config.engine).route(req.kind)
    if route.request == wire.OPENAI_CHAT:
        body = _openai_chat(req, config.engine)
    elif route.request == wire.OPENAI_COMPLETION:
        body = _openai_completion(req)
    else:
        body = _native_completion(req, route)
    wire.name_model(route, body, req.model, req.adapter)
    if stream:
        body["stream"] = True  # TGI's native body takes it too (router/src/lib.rs CompatGenerateRequest)
        if route.request != wire.NATIVE:
            # Always ask OpenAI-shaped engines for counts (their last chunk): usage is then reported,
            # whether or not the client asked to see it.
            body["stream_options"] = {"include_usage": True}
    return body


def _openai_sampling(req: Request, engine: str) -> dict:
    sampling = dict(req.sampling)
    if engine == "tgi":
        top_p = sampling.get("top_p")
        if top_p is not None and not 0 < top_p < 1:
            del sampling["top_p"]  # 1.0 means "no nucleus filter", which TGI spells as leaving it out
    return sampling


def _openai_chat(req: Request, engine: str) -> dict:
    body: dict[str, Any] = {"messages": req.messages, "max_tokens": req.max_tokens, "stream": False}
    body.update(_openai_sampling(req, engine))
    body.update(req.extras)
    return body


def _openai_completion(req: Request) -> dict:
    body: dict[str, Any] = {"prompt": req.prompt, "max_tokens": req.max_tokens}
    body.update(req.sampling)
    body["stream"] = False
    return body


def _native_completion(req: Request, route: wire.Route) -> dict:
    """TGI's `{inputs, parameters}` (its Messages API has no completion route)."""
    s = req.sampling
    params: dict[str, Any] = {"details": True, "decoder_input_details": True}
    temperature = s.get("temperature")
    if temperature is not None:
        params["do_sample"] = temperature > 0
        if temperature > 0:
            params["temperature"] = temperature
    top_p = s.get("top_p")
    if top_p is not None and 0 < top_p < 1:
        params["top_p"] = top_p
        params["do_sample"] = params.get("do_sample", True)
    if "seed" in s:
        params["seed"] = s["seed"]
    if "frequency_penalty" in s:
        params["frequency_penalty"] = s["frequency_penalty"]
    params["return_full_text"] = False
    body: dict[str, Any] = {"inputs": req.prompt, "parameters": params}
    wire.set_path(body, route.max_tokens_key, req.max_tokens)
    if "stop" in s:
        wire.set_path(body, route.stop_key, s["stop"])
    return body


# -- answers -------------------------------------------------------------------------------


def from_engine(req: Request, config: Config, raw: bytes, response_id: str, created: int | None = None) -> Completion:
    """Normalise the engine's answer. Raises ApiError(502) for anything unreadable."""
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        # Only the size: the body may quote the prompt or the answer, which stay out of logs.
        raise errors.bad_upstream_answer(f"not JSON ({len(raw)} bytes)") from None
    created = int(time.time()) if created is None else created
    if isinstance(answer, dict) and isinstance(answer.get("choices"), list):
        text, finish, tool_calls, usage = _from_openai(req, answer)
    elif isinstance(answer, (dict, list)):
        text, finish, tool_calls, usage = _from_native(req, answer)
    else:
        raise errors.bad_upstream_answer(f"unexpected JSON {type(answer).__name__}")
    prompt_tokens, completion_tokens = usage
    source = REPORTED
    if prompt_tokens is None:
        prompt_tokens, source = req.prompt_tokens_estimate, ESTIMATED
    if completion_tokens is None:
        completion_tokens, source = tokens.estimate(text), ESTIMATED
    body: dict[str, Any]
    if req.kind == CHAT:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
            if not text:
                message["content"] = None
        body = {
            "id": f"chatcmpl-{response_id}",
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
    else:
        body = {
            "id": f"cmpl-{response_id}",
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }
    body["usage"] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return Completion(body, source, text)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def finish_reason(value: Any) -> str:
    """OpenAI's finish_reason for an engine's (TGI and LMI say eos_token, stop_sequence)."""
    return _FINISH.get(value, "stop") if isinstance(value, str) else "stop"


def _from_openai(req: Request, answer: dict) -> tuple[str, str, list | None, tuple[int | None, int | None]]:
    choices = answer["choices"]
    if not choices or not isinstance(choices[0], dict):
        raise errors.bad_upstream_answer("OpenAI-shaped answer without choices")
    choice = choices[0]
    tool_calls = None
    if req.kind == CHAT:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise errors.bad_upstream_answer("chat answer without a message")
        text = message.get("content")
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            tool_calls = [call for call in calls if isinstance(call, dict)] or None
    else:
        text = choice.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise errors.bad_upstream_answer(f"generated text is {type(text).__name__}")
    finish = finish_reason(choice.get("finish_reason"))
    if tool_calls and finish == "stop":
        finish = "tool_calls"
    usage = answer.get("usage")
    counts: tuple[int | None, int | None] = (None, None)
    if isinstance(usage, dict):
        counts = (_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
    return text, finish, tool_calls, counts


def _from_native(req: Request, answer: Any) -> tuple[str, str, None, tuple[int | None, int | None]]:
    """TGI's `[{"generated_text", "details"}]` or LMI's `{"generated_text", "details"}`."""
    item = wire.native_item(answer)
    if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
        raise errors.bad_upstream_answer("native answer without generated_text")
    text = item["generated_text"]
    raw_details = item.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    raw_finish = details.get("finish_reason", details.get("finish reason"))  # LMI docs spell both
    if raw_finish == "error":  # LMI reports failures during generation inside a 200 answer
        raise errors.bad_upstream_answer("engine reported finish_reason=error")
    finish = finish_reason(raw_finish)
    if raw_finish == "stop_sequence":  # OpenAI leaves the stop sequence out of the text
        for stop in req.sampling.get("stop", ()):
            if text.endswith(stop):
                text = text[: -len(stop)]
                break
    prefill = details.get("prefill")
    prompt_tokens = len(prefill) if isinstance(prefill, list) and prefill else None
    return text, finish, None, (prompt_tokens, _count(details.get("generated_tokens")))


# -- buffered streaming --------------------------------------------------------------------


def to_sse(completion: dict, include_usage: bool) -> str:
    """A complete answer as OpenAI's stream: chunks, then `data: [DONE]`, in one body.

    Lambda behind a REST proxy integration answers once, so the stream is buffered: the
    client gets every chunk at the same time, but parses it exactly as a live stream.
    """
    chat = completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": completion["created"],
        "model": completion["model"],
    }
    if include_usage:
        base["usage"] = None
    pieces: list[dict] = []
    if chat:
        message = choice["message"]
        pieces.append(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        )
        delta: dict[str, Any] = {}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [dict(call, index=i) for i, call in enumerate(message["tool_calls"])]
        if delta:
            pieces.append({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})
        pieces.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": choice["finish_reason"]})
    else:
        if choice["text"]:
            pieces.append({"index": 0, "text": choice["text"], "logprobs": None, "finish_reason": None})
        pieces.append({"index": 0, "text": "", "logprobs": None, "finish_reason": choice["finish_reason"]})
    events = [json.dumps({**base, "choices": [piece]}) for piece in pieces]
    if include_usage:
        events.append(json.dumps({**base, "choices": [], "usage": completion["usage"]}))
    events.append("[DONE]")
    return "".join(f"data: {event}\n\n" for event in events)
