"""A stand-in for an inference container: each engine's wire shapes, no model behind them.

The text it generates is deterministic and says it is a stand-in. What it copies faithfully
is the contract: which body each engine routes where, where the model or adapter goes, what
it answers and how it streams and fails are read from the one description of each engine's
wire format (lambda/forwarder/wire.py, with its sources), which the forwarder uses too; the
recorded engine answers (tests/lambda/contracts) are checked against this stand-in as well.
What is left here is the content: vLLM's extra answer fields, LMI's `eos_token` and
`log_prob`, TGI's `system_fingerprint` and the role in every chat delta, TGI's stream keeping
the stop sequence and ending a natural stop with a special end-of-sequence token.

Token counts are whitespace words, which is all a stand-in needs to be consistent.

With `stream: true` (StandIn.stream, which the local runtime's
invocations-response-stream route calls) it sends each engine's streaming wire shape, one
piece at a time as it is "generated".
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Iterator
from typing import Any

from ownllm.forwarder import contract, forwarder_module

ENGINES: tuple[str, ...] = contract().ENGINES
_WIRE = forwarder_module("wire")
_JSON = {"Content-Type": "application/json"}
_ANSWER = [
    "This",
    "is",
    "a",
    "deterministic",
    "stand-in",
    "answer",
    "from",
    "the",
    "ownllm",
    "local",
    "runtime.",
    "No",
    "model",
    "produced",
    "it,",
    "so",
    "it",
    "means",
    "nothing",
    "beyond",
    "showing",
    "that",
    "the",
    "request",
    "went",
    "all",
    "the",
    "way",
    "through",
    "and",
    "back.",
]
_TGI_VERSION = "3.3.6-stand-in"
_TOKEN = re.compile(r"\s*(?:\[[^\]]*\]|\S+)|\s+$")
# How each engine says it does not serve the adapter a body names (its status: wire.py).
_UNKNOWN_ADAPTER = {
    "vllm": "The model `{}` does not exist.",
    "lmi": "Adapter {!r} is not registered",
    "tgi": "adapter {!r} is not loaded",
}


class _Reject(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _words(text: str) -> int:
    return len(text.split())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class StandIn:
    """A backend for RuntimeServer: `backend(endpoint_name, body, headers) -> (status, headers, body)`.

    latency_s is added to every answer (queueing, prefill); tokens_per_s paces the
    generated tokens (0 answers at once). max_total_tokens, when set, makes the stand-in
    refuse prompt + max new tokens above it, the way the engines do. fill_max_tokens makes
    it generate exactly the max tokens asked for (repeating its text), as a model that never
    stops by itself would: long answers for streaming and timeout tests.
    """

    def __init__(
        self,
        engine: str = "vllm",
        model_name: str = "stand-in",
        latency_s: float = 0.0,
        tokens_per_s: float = 0.0,
        adapters: tuple[str, ...] | list[str] = (),
        max_total_tokens: int | None = None,
        fill_max_tokens: bool = False,
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        self.engine = engine
        self.wire = _WIRE.for_engine(engine)
        self.model_name = model_name
        self.latency_s = latency_s
        self.tokens_per_s = tokens_per_s
        self.adapters = tuple(adapters)
        self.max_total_tokens = max_total_tokens
        self.fill_max_tokens = fill_max_tokens

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(_Reject(400, f"JSON decode error: {exc}"))
        if not isinstance(payload, dict):
            return self._error(_Reject(400, "request body must be a JSON object"))
        if payload.get("stream") is True:  # InvokeEndpoint of a streaming body: the whole stream at once
            status, out_headers, pieces = self.stream(endpoint_name, body, headers)
            return status, out_headers, b"".join(pieces)
        try:
            answer, generated = self._answer(payload)
        except _Reject as exc:
            return self._error(exc)
        pause = self.latency_s + (generated / self.tokens_per_s if self.tokens_per_s > 0 else 0.0)
        if pause > 0:
            time.sleep(pause)
        return 200, dict(_JSON), json.dumps(answer).encode()

    # -- dispatch, as each engine routes /invocations -------------------------------------

    def _answer(self, p: dict) -> tuple[Any, int]:
        route = self.wire.route_for(p)
        if route is None:
            raise _Reject(self.wire.validation_status, f"request needs {self.wire.markers}")
        if route.request == _WIRE.OPENAI_CHAT:
            return self._chat(p, route)
        if route.request == _WIRE.OPENAI_COMPLETION:
            return self._openai_completion(p, route)
        return self._native(p, route)

    def _model_for(self, route: Any, p: dict) -> str:
        """The model or adapter that answers, refusing names the engine would not know."""
        requested = _WIRE.requested_adapter(route, p, self.model_name)
        if requested is None:
            return self.model_name
        if requested in self.adapters:
            return str(requested)
        raise _Reject(self.wire.unknown_adapter_status, _UNKNOWN_ADAPTER[self.engine].format(requested))

    @staticmethod
    def _max_tokens(route: Any, p: dict) -> Any:
        asked = _WIRE.get_path(p, route.max_tokens_key)
        return route.default_max_tokens if asked is None else asked

    def _generate(self, model: str, prompt_tokens: int, max_new: Any, stop: Any) -> tuple[str, int, bool, bool]:
        """(text, tokens, hit_length_limit, hit_stop_sequence), deterministic per model."""
        if max_new is not None and (not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1):
            raise _Reject(self.wire.validation_status, "max tokens must be a positive integer")
        if self.max_total_tokens is not None and prompt_tokens + (max_new or 0) > self.max_total_tokens:
            raise _Reject(
                self.wire.validation_status,
                f"This model's maximum context length is {self.max_total_tokens} tokens; "
                f"the request asked for {prompt_tokens} prompt + {max_new or 0} new tokens.",
            )
        tokens = [f"[stand-in for {model}]"] + _ANSWER
        if self.fill_max_tokens and max_new is not None:
            tokens = [tokens[i % len(tokens)] for i in range(max_new)]
        n = len(tokens) if max_new is None else min(max_new, len(tokens))
        text = " ".join(tokens[:n])
        stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
        for s in stops:
            at = text.find(s) if s else -1
            if at >= 0:
                text = text[:at]
                return text, max(_words(text), 1), False, True
        return text, n, n < len(tokens) or (self.fill_max_tokens and max_new is not None), False

    # -- OpenAI shapes (vLLM, LMI and TGI all answer `messages` this way) -------------------

    def _chat(self, p: dict, route: Any) -> tuple[dict, int]:
        messages = p.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(self.wire.validation_status, "messages must be a non-empty list")
        model = self._model_for(route, p)
        prompt_tokens = sum(_words(_content_text(m.get("content"))) + 4 for m in messages if isinstance(m, dict)) + 2
        max_new = p.get("max_completion_tokens", self._max_tokens(route, p))
        text, n, length, stopped = self._generate(model, prompt_tokens, max_new, _WIRE.get_path(p, route.stop_key))
        finish = "length" if length else "stop"
        if self.engine == "lmi" and not length:
            finish = "stop_sequence" if stopped else "eos_token"
        message: dict[str, Any] = {"role": "assistant", "content": text}
        answer: dict[str, Any] = {
            "id": self._id("chatcmpl", p),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(prompt_tokens, n),
        }
        if self.engine == "vllm":
            message.update({"tool_calls": [], "reasoning_content": None})
            answer["choices"][0]["stop_reason"] = None
            answer["prompt_logprobs"] = None
            answer["usage"]["prompt_tokens_details"] = None
        elif self.engine == "tgi":
            answer["id"] = ""
            answer["system_fingerprint"] = _TGI_VERSION
        else:  # LMI's chat answer carries no model field
            del answer["model"]
        return answer, n

    def _openai_completion(self, p: dict, route: Any) -> tuple[dict, int]:
        prompt = p.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _Reject(400, "prompt must be a string")
        model = self._model_for(route, p)
        prompt_tokens = _words(prompt)
        stop = _WIRE.get_path(p, route.stop_key)
        text, n, length, _ = self._generate(model, prompt_tokens, self._max_tokens(route, p), stop)
        return {
            "id": self._id("cmpl", p),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "logprobs": None,
                    "finish_reason": "length" if length else "stop",
                    "stop_reason": None,
                    "prompt_logprobs": None,
                }
            ],
            # vLLM's completion server (LMI's too, in async mode) reports no cached-prompt details.
            "usage": {**_usage(prompt_tokens, n), "prompt_tokens_details": None},
        }, n

    # -- native {inputs, parameters}: LMI object, TGI array ---------------------------------

    def _native(self, p: dict, route: Any) -> tuple[Any, int]:
        inputs = p.get("inputs")
        if not isinstance(inputs, str):
            raise _Reject(self.wire.validation_status, "inputs must be a string")
        params = p.get("parameters") or {}
        if not isinstance(params, dict):
            raise _Reject(self.wire.validation_status, "parameters must be an object")
        model = self._model_for(route, p)
        prompt_tokens = _words(inputs)
        stop = _WIRE.get_path(p, route.stop_key)
        text, n, length, stopped = self._generate(model, prompt_tokens, self._max_tokens(route, p), stop)
        answer: dict[str, Any] = {"generated_text": text}
        if params.get("details"):
            finish = "length" if length else ("stop_sequence" if stopped else "eos_token")
            tokens = [
                {"id": 1000 + i, "text": w if i == 0 else f" {w}", "logprob": -0.5, "special": False}
                for i, w in enumerate(text.split()[:n])
            ]
            details: dict[str, Any] = {"finish_reason": finish, "generated_tokens": n}
            if self.engine == "lmi":
                details["inputs"] = inputs
                for t in tokens:  # LMI names it log_prob and has no `special`
                    t["log_prob"] = t.pop("logprob")
                    t.pop("special")
            else:
                details["seed"] = params.get("seed")
            details["tokens"] = tokens
            if params.get("decoder_input_details"):
                details["prefill"] = [{"id": 10 + i, "text": w, "logprob": None} for i, w in enumerate(inputs.split())]
            answer["details"] = details
        return _WIRE.native_answer(route, answer), n

    # -- streaming ---------------------------------------------------------------------------

    def stream(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, Iterator[bytes]]:
        """(status, headers, pieces): the engine's streaming answer, each piece sent as it is generated.

        A refusal (bad body, unknown adapter, context too long) is a non-2xx with the engine's
        error body, before anything streams, as the engines refuse before generating.
        """
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise _Reject(400, "request body must be a JSON object")
            route = self.wire.route_for(payload)
            if route is not None and route not in (self.wire.chat, self.wire.completion):
                served = f"{self.wire.chat.marker} and {self.wire.completion.marker}"
                raise _Reject(400, f"the stand-in streams the bodies the forwarder sends {self.engine} only ({served})")
            answer, _ = self._answer({k: v for k, v in payload.items() if k not in ("stream", "stream_options")})
        except (ValueError, UnicodeDecodeError) as exc:
            status, out_headers, error = self._error(_Reject(400, f"JSON decode error: {exc}"))
            return status, out_headers, iter([error])
        except _Reject as exc:
            status, out_headers, error = self._error(exc)
            return status, out_headers, iter([error])
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events, generated = self._stream_events(payload, route, answer, include_usage)
        end = self.wire.end(route)
        if end:
            events.append((False, end))
        return 200, {"Content-Type": self.wire.stream_content_type}, self._paced(events, generated)

    def _paced(self, events: list[tuple[bool, bytes]], generated: int) -> Iterator[bytes]:
        """Each (is_token, wire bytes), after the latency and, for tokens, the time to generate one."""
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        tokens = sum(1 for is_token, _ in events if is_token)
        per_token = 0.0
        if self.tokens_per_s > 0 and tokens:
            per_token = generated / self.tokens_per_s / tokens
        for is_token, wire in events:
            if is_token and per_token > 0:
                time.sleep(per_token)
            yield wire

    def _stream_events(
        self, payload: dict, route: Any, answer: Any, include_usage: bool
    ) -> tuple[list[tuple[bool, bytes]], int]:
        """(is_token, wire bytes) for each event, and the tokens generated; the end of stream apart."""
        if route.stream_event == _WIRE.TGI_TOKEN:
            return self._tgi_native_events(payload, route, _WIRE.native_item(answer))
        chat = answer["object"] == "chat.completion"
        choice = answer["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
        usage = answer["usage"]
        base: dict[str, Any] = {
            "id": answer["id"],
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": answer["created"],
            "model": answer.get("model", self.model_name),
        }
        if self.engine == "tgi":
            base["system_fingerprint"] = _TGI_VERSION
            base["usage"] = None
        pieces = _pieces(text) or [""]  # the finish reason comes with the last piece, even an empty one
        chunks: list[tuple[bool, dict]] = []
        if chat and self.engine != "tgi":  # vLLM opens with the role; TGI repeats it in every delta
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
            chunks.append((False, {**base, "choices": [first]}))
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            finish = choice["finish_reason"] if last else None
            part: dict[str, Any] = {"index": 0}
            if chat:
                part["delta"] = {"role": "assistant", "content": piece} if self.engine == "tgi" else {"content": piece}
            else:
                part["text"] = piece
            part.update(logprobs=None, finish_reason=finish)
            chunks.append((True, {**base, "choices": [part]}))
        if include_usage:
            chunks.append((False, {**base, "choices": [], "usage": usage}))
        return [(t, self.wire.frame(json.dumps(c).encode())) for t, c in chunks], usage["completion_tokens"]

    def _tgi_native_events(self, payload: dict, route: Any, answer: dict) -> tuple[list[tuple[bool, bytes]], int]:
        details = answer.get("details") or {}
        params = payload.get("parameters") or {}
        finish = details.get("finish_reason", "length")
        text = answer["generated_text"]
        if finish == "stop_sequence" and route.keeps_stop_sequence:  # in what it generated
            stops = _WIRE.get_path(payload, route.stop_key) or []
            text += next((s for s in stops if isinstance(s, str) and s), "")
        generated = details.get("generated_tokens", _words(text))
        pieces = _pieces(text) or [""]
        if finish == "eos_token":
            pieces.append("</s>")
        stream_details = {
            "finish_reason": finish,
            "generated_tokens": generated,
            "seed": params.get("seed"),
            "input_length": _words(payload.get("inputs") or ""),
        }
        events: list[tuple[bool, bytes]] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            event = {
                "index": i + 1,
                "token": {"id": 1000 + i, "text": piece, "logprob": -0.5, "special": piece == "</s>"},
                "generated_text": text if last else None,
                "details": stream_details if last and params.get("details") else None,
            }
            events.append((True, self.wire.frame(json.dumps(event).encode())))
        return events, generated

    # -- plumbing ----------------------------------------------------------------------------

    def _id(self, prefix: str, p: dict) -> str:
        return f"{prefix}-{zlib.crc32(json.dumps(p, sort_keys=True).encode()):08x}"

    def _error(self, exc: _Reject) -> tuple[int, dict, bytes]:
        return exc.status, dict(_JSON), json.dumps(self.wire.error_body(exc.status, exc.message)).encode()


def _pieces(text: str) -> list[str]:
    """The text as the tokens it streams in: the bracketed model marker and each word, with the
    whitespace before it (so the pieces join back into the text)."""
    return _TOKEN.findall(text)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
