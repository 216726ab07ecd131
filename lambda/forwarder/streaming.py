"""Each engine's token stream -> OpenAI's server-sent events, chunk by chunk. Pure.

SageMaker's InvokeEndpointWithResponseStream hands over the container's response body in
PayloadPart events whose boundaries are arbitrary: one part may end mid-line (even
mid-character) or hold many lines. Bytes are buffered and split on newlines before any
parsing, so every split of the same stream gives the same chunks.

What each engine streams on /invocations for a body with `stream: true`:
- vllm (SageMaker vLLM DLC, vLLM's OpenAI server): SSE, `data: {chunk}` then a blank
  line, ending with `data: [DONE]`; a failure mid-stream is `data: {"error": {...}}`.
- lmi (vLLM async mode): vLLM's chunks as JSON lines, one chunk object per line with no
  `data:`, a blank line at the end and no [DONE]; a failure is a line
  `{"code": 424, "error": "..."}` or LMI's `{"code", "message"}` (djl-serving at d21927c4:
  engines/python/setup/djl_python/lmi_vllm/request_response_utils.py
  vllm_stream_output_formatter strips `data: ` and ends at [DONE];
  engines/python/setup/djl_python/async_utils.py create_stream_chunk_output adds the
  newline and the 424; engines/python/src/main/java/ai/djl/python/engine/Request.java
  addResponse writes each chunk's data as it comes).
- tgi: SSE. Chat (Messages API) sends chat.completion.chunk events and `data: [DONE]`, a
  failure as `{"error": {"message", "http_status_code"}}`. Native `{inputs, parameters,
  stream: true}` (completions here) sends one `{"index", "token": {"id", "text",
  "logprob", "special"}, "generated_text", "details"}` per token, the last with
  `details {finish_reason, generated_tokens, input_length}`, and no [DONE]; a failure is
  `{"error", "error_type"}` (huggingface/text-generation-inference at db931fc:
  router/src/server.rs generate_stream and chat_completions, router/src/lib.rs
  StreamResponse, router/src/infer/mod.rs into_openai_event). Its keep-alive comments
  (lines starting with `:`) are skipped.

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
from translate import ESTIMATED, REPORTED, finish_reason
from validate import CHAT, Request

DONE = b"data: [DONE]\n\n"
# TGI's error_type -> the HTTP status TGI answers it with outside a stream (router/src/
# server.rs: validation 422, overloaded 429). "generation" (424 there) and
# "incomplete_generation" are the engine's own failures: 500, so they map to a 502.
_TGI_ERROR_STATUS = {"validation": 422, "overloaded": 429}
# 424 ("failed dependency") is how LMI and TGI report their own failures inside a stream.
_ENGINE_FAILED = 424


class LineBuffer:
    """Bytes in arbitrary pieces -> complete lines (without the newline), decoded as UTF-8.

    Splitting bytes before decoding keeps a multi-byte character cut between two parts whole.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        data = self._pending + data
        *lines, self._pending = data.split(b"\n")
        return [_decode(line) for line in lines]

    def close(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest else []


def _decode(line: bytes) -> str:
    return line.removesuffix(b"\r").decode("utf-8", "replace")


def sse(event: dict) -> bytes:
    # UTF-8 rather than \u escapes; a lone surrogate an engine escaped (\ud800) cannot be UTF-8: "?".
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return b"data: " + data + b"\n\n"


def in_band_error(err: errors.ApiError, request_id: str | None) -> bytes:
    """How a stream that already started says it failed: OpenAI's error object, then [DONE]."""
    return b"data: " + err.body(request_id).encode() + b"\n\n" + DONE


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
        self._lines = LineBuffer()
        self._sse = engine != "lmi"
        self._data: list[str] = []  # the data lines of the SSE event being read
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
        stops = (req.sampling.get("stop") or []) if engine == "tgi" and not chat else []
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
                for line in self._lines.feed(data):
                    self._line(line, out)
            except (errors.UpstreamFailure, errors.ApiError) as exc:
                self.failure = exc
        return out

    def close(self) -> list[bytes]:
        """The engine's stream ended: flush, then the usage chunk and [DONE]."""
        out: list[bytes] = []
        if self.failure is None and not self._ended:
            try:
                for line in self._lines.close():
                    self._line(line, out)
                if self._data:
                    self._event("\n".join(self._data), out)
                    self._data = []
                self._end(out)
            except (errors.UpstreamFailure, errors.ApiError) as exc:
                self.failure = exc
        return out

    def _line(self, line: str, out: list[bytes]) -> None:
        if self._ended:
            return
        if not self._sse:  # JSON lines: every non-blank line is one chunk
            if line.strip():
                self._event(line, out)
            return
        if not line:  # a blank line ends an SSE event
            if self._data:
                data, self._data = "\n".join(self._data), []
                self._event(data, out)
        elif line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
        # other SSE fields (event:, id:, retry:) and comments (":" keep-alives) carry nothing here

    def _event(self, data: str, out: list[bytes]) -> None:
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
    if "choices" in event or "token" in event:
        return None
    error = event.get("error")
    status: Any = None
    if isinstance(error, dict):  # vLLM ({"error": {"message", "code"}}), TGI chat ({"http_status_code"})
        status = error.get("code", error.get("http_status_code"))
    elif isinstance(error, str):  # TGI native ({"error_type"}), LMI ({"code"})
        status = _TGI_ERROR_STATUS.get(event.get("error_type") or "", event.get("code"))
    elif event.get("object") == "error":  # older vLLM: {"object": "error", "message", "code"}
        status = event.get("code")
    elif isinstance(event.get("code"), int) and isinstance(event.get("message"), str):
        # LMI's async failure: its Output object, {"code", "message", ...} (djl-serving
        # engines/python/src/main/java/ai/djl/python/engine/AsyncRequestManager.java sendErrorResponse)
        status = event["code"]
    else:
        return None
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status < 600 or status == _ENGINE_FAILED:
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
