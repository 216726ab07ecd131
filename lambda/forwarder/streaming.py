"""Each engine's token stream -> OpenAI's server-sent events, chunk by chunk. Pure.

SageMaker's InvokeEndpointWithResponseStream hands over the container's response body in
PayloadPart events whose boundaries are arbitrary: one part may end mid-line (even
mid-character) or hold many lines. Bytes are buffered and split on newlines before any
parsing, so every split of the same stream gives the same chunks.

What each engine streams on /invocations for a body with `stream: true` (SSE or JSON lines,
with or without `data: [DONE]`, its event and error shapes) is described once, with its
sources, in wire.py.

A failure the engine reports before any chunk reached the client can still become an HTTP
status (`Normaliser.failure`, mapped by errors.map_upstream like InvokeEndpoint's); after
the first chunk only an in-band event is possible: `data: {"error": {...}}`, then
`data: [DONE]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import errors
import tokens
import wire
from translate import ESTIMATED, REPORTED, finish_reason
from validate import CHAT, Request

DONE = wire.DONE


# What the client gets is vLLM's stream: OpenAI's SSE chunks, ending with [DONE].
_CLIENT = wire.for_engine("vllm")


def sse(event: dict) -> bytes:
    # UTF-8 rather than \u escapes; a lone surrogate an engine escaped (\ud800) cannot be UTF-8: "?".
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return _CLIENT.frame(data)


def in_band_error(err: errors.ApiError, request_id: str | None) -> bytes:
    """How a stream that already started says it failed: OpenAI's error object, then [DONE]."""
    return _CLIENT.frame(err.body(request_id).encode()) + DONE


class Normaliser:
    """One engine stream -> OpenAI chunks for one request.

    feed() and close() return the SSE bytes to send. A failure (the engine's error event,
    something unreadable, a stream that ends without a finish reason) stops the stream and is
    kept in `failure`: an UpstreamFailure (engine-reported, mapped by map_upstream) or an
    ApiError. Afterwards usage, usage_source, finish and text describe the answer, for the
    request's log line and metrics.
    """

    def __init__(
        self,
        req: Request,
        engine: str,
        response_id: str,
        created: int | None = None,
    ) -> None:
        self.req = req
        engine_wire = wire.for_engine(engine)
        self._events = engine_wire.reader()
        chat = req.kind == CHAT
        self._chat = chat
        self._base: dict[str, Any] = {
            "id": f"chatcmpl-{response_id}" if chat else f"cmpl-{response_id}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()) if created is None else created,
            "model": req.model,  # the name the client asked for, whatever the engine calls it
        }
        if req.include_usage:
            self._base["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        # TGI's native stream keeps a stop sequence in the text; OpenAI leaves it out. Hold back
        # as many characters as the longest stop, so it can be cut once the stream says so.
        keeps_stop = engine_wire.route(req.kind).keeps_stop_sequence
        stops = (req.sampling.get("stop") or []) if keeps_stop else []
        self._stops: list[str] = [s for s in stops if isinstance(s, str) and s]
        self._hold = max((len(s) for s in self._stops), default=0)
        self._held = ""
        self._started = False
        self._tool_calls = False
        self._ended = False
        self.finish: str | None = None
        self.text_parts: list[str] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.failure: errors.UpstreamFailure | errors.ApiError | None = None
        self.error: errors.ApiError | None = None  # the answer to `failure`, once sent in-band

    # -- input ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self.failure is None and not self._ended:
            try:
                for event in self._events.feed(data):
                    self._event(event, out)
            except (errors.UpstreamFailure, errors.ApiError) as exc:
                self.failure = exc
        return out

    def close(self) -> list[bytes]:
        """The engine's stream ended: flush, then the usage chunk and [DONE]."""
        out: list[bytes] = []
        if self.failure is None and not self._ended:
            try:
                for event in self._events.close():
                    self._event(event, out)
                if not self._ended:
                    self._end(out)
            except (errors.UpstreamFailure, errors.ApiError) as exc:
                self.failure = exc
        return out

    def _event(self, data: str, out: list[bytes]) -> None:
        if self._ended:
            return
        if data.strip() == "[DONE]":
            self._end(out)
            return
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            raise errors.bad_upstream_answer(f"stream event is not JSON ({len(data)} bytes)") from None
        if not isinstance(event, dict):
            raise errors.bad_upstream_answer(f"stream event is a JSON {type(event).__name__}")
        failure = engine_failure(event, data)
        if failure is not None:
            raise failure
        if isinstance(event.get("choices"), list):
            self._openai(event, out)
        elif isinstance(event.get("token"), dict):
            self._tgi_token(event, out)
        else:
            raise errors.bad_upstream_answer(f"stream event without choices or token ({len(data)} bytes)")

    # -- engine shapes -------------------------------------------------------------------------

    def _openai(self, event: dict, out: list[bytes]) -> None:
        self._count(event.get("usage"), "prompt_tokens", "completion_tokens")
        for choice in event["choices"]:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n is always 1 here
            self._start(out)
            if self._chat:
                raw_delta = choice.get("delta")
                delta: dict[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
                content = delta.get("content")
                calls = delta.get("tool_calls")
                if isinstance(content, str) and content:
                    self._text(content, out)
                if isinstance(calls, list) and calls:
                    self._tool_calls = True
                    out.append(self._chunk({"delta": {"tool_calls": calls}}))
            else:
                text = choice.get("text")
                if isinstance(text, str) and text:
                    self._text(text, out)
            raw_finish = choice.get("finish_reason")
            if raw_finish is not None:
                self._finish(raw_finish, out)

    def _tgi_token(self, event: dict, out: list[bytes]) -> None:
        self._start(out)
        token = event["token"]
        text = token.get("text")
        if isinstance(text, str) and not token.get("special"):  # TGI leaves special tokens out of its text
            self._held += text
            keep = len(self._held) - self._hold
            if keep > 0:
                self._text(self._held[:keep], out)
                self._held = self._held[keep:]
        raw_details = event.get("details")
        if isinstance(raw_details, dict):
            self._count(raw_details, "input_length", "generated_tokens")
            raw_finish = raw_details.get("finish_reason")
            if raw_finish == "stop_sequence":
                for stop in self._stops:
                    if self._held.endswith(stop):
                        self._held = self._held[: -len(stop)]
                        break
            self._flush_held(out)
            self._finish(raw_finish, out)
        elif event.get("generated_text") is not None:  # the last token, sent without details
            self._flush_held(out)
            self._finish("stop", out)

    # -- output --------------------------------------------------------------------------------

    def _chunk(self, fields: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**self._base, "choices": [{"index": 0, **fields, "logprobs": None, "finish_reason": finish}]})

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            if self._chat:
                out.append(self._chunk({"delta": {"role": "assistant", "content": ""}}))

    def _text(self, text: str, out: list[bytes]) -> None:
        if self.finish is not None:
            return  # nothing follows the finish chunk
        self.text_parts.append(text)
        out.append(self._chunk({"delta": {"content": text}} if self._chat else {"text": text}))

    def _flush_held(self, out: list[bytes]) -> None:
        if self._held:
            held, self._held = self._held, ""
            self._text(held, out)

    def _finish(self, raw: Any, out: list[bytes]) -> None:
        if self.finish is not None:
            return
        if raw == "error":  # LMI's rolling batch reports a failure as a finish reason
            raise errors.bad_upstream_answer("engine reported finish_reason=error")
        finish = finish_reason(raw)
        if self._tool_calls and finish == "stop":
            finish = "tool_calls"
        self.finish = finish
        out.append(self._chunk({"delta": {}} if self._chat else {"text": ""}, finish))

    def _count(self, usage: Any, prompt_key: str, completion_key: str) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = _count(usage.get(prompt_key), self.prompt_tokens)
            self.completion_tokens = _count(usage.get(completion_key), self.completion_tokens)

    def _end(self, out: list[bytes]) -> None:
        if self.finish is None:
            raise errors.bad_upstream_answer("the stream ended before a finish_reason")
        self._ended = True
        if self.req.include_usage:
            out.append(sse({**self._base, "choices": [], "usage": self.usage}))
        out.append(DONE)

    # -- results -------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def usage_source(self) -> str:
        return REPORTED if self.prompt_tokens is not None and self.completion_tokens is not None else ESTIMATED

    @property
    def usage(self) -> dict[str, int]:
        prompt = self.prompt_tokens if self.prompt_tokens is not None else self.req.prompt_tokens_estimate
        completion = self.completion_tokens if self.completion_tokens is not None else tokens.estimate(self.text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _count(value: Any, current: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return current


def engine_failure(event: dict, raw: str) -> errors.UpstreamFailure | None:
    """An engine's in-stream error event as an UpstreamFailure (a ModelError with the engine's
    status), so map_upstream decides its answer as it does for InvokeEndpoint; None otherwise."""
    reported = wire.read_stream_error(event)
    if reported is None:
        return None
    status = reported.status
    # 424 is the engines' "failed" inside a stream, and anything that is not an HTTP error status
    # is their own failure too: 500, which maps to a 502.
    if (
        not isinstance(status, int)
        or isinstance(status, bool)
        or not 400 <= status < 600
        or status == wire.ENGINE_FAILED
    ):
        status = 500
    return errors.UpstreamFailure(
        "service",
        code="ModelError",
        message="error event in the model's stream",
        original_status=status,
        original_message=raw[:2000],
    )


def sse_stream(parts: Iterable[bytes], normaliser: Normaliser, request_id: str | None) -> Iterator[bytes]:
    """The client's stream from the engine's parts.

    A failure before the first chunk is raised (an UpstreamFailure or ApiError, so a proper
    HTTP status can still be chosen); after it, the stream ends in-band with an error event
    and [DONE], and `normaliser.error` holds the ApiError for the log line and the Errors metric.
    """
    sent = False
    chunks: list[bytes] = []
    try:
        for part in parts:
            chunks = normaliser.feed(part)
            if chunks:
                sent = True
                yield b"".join(chunks)
            if normaliser.failure is not None:
                break
        else:
            chunks = normaliser.close()
            if chunks:
                sent = True
                yield b"".join(chunks)
    except errors.UpstreamFailure as exc:  # the transport failed: SageMaker's stream error, a timeout
        normaliser.failure = exc
    failure = normaliser.failure
    if failure is None:
        return
    if not sent:
        raise failure
    err = errors.map_upstream(failure) if isinstance(failure, errors.UpstreamFailure) else failure
    normaliser.error = err
    yield in_band_error(err, request_id)
