"""Each engine's wire format on SageMaker's /invocations, described once. Pure, standard library.

The forwarder's translation (translate.py) and stream normalisation (streaming.py), the local
stand-in container (ownllm/local/standin.py) and the `--upstream` adapter (ownllm/local/
upstream.py) all read this description: the tools load this file by path
(ownllm.forwarder.forwarder_module("wire")). Its keys are contract.ENGINES (a test checks).

What each engine speaks:

- vllm (SageMaker vLLM DLC, vLLM's OpenAI server): OpenAI bodies as they are (`messages` ->
  chat, `prompt` -> completion); `model` is the served model name or a LoRA adapter name.
  Answers are OpenAI's, with `usage`. A stream is SSE: `data: {chunk}` and a blank line,
  ending with `data: [DONE]`. Errors: `{"object": "error", "message", "type", "param", "code"}`
  (newer vLLM: `{"error": {"message", "type", "param", "code"}}`, which readers accept too); a
  failure mid-stream is `data: {"error": {...}}`.
- lmi (DJL Serving LMI in vLLM async mode, its default since LMI v17): OpenAI bodies too,
  answered by vLLM's own OpenAI servers, with no `model` (LMI fills in its own) and the adapter
  in `adapters`; a chat answer has no `model` and its finish_reason may be LMI's `eos_token`.
  Its `{inputs, parameters}` compatibility route answers `{"generated_text", "details"}`; the
  forwarder does not use it: it ignores `stop_sequences`, reports vLLM's stop_reason (None on
  length) as finish_reason and drops the first prompt token from `prefill` (djl-serving
  engines/python/setup/djl_python/lmi_vllm/request_response_utils.py and
  vllm_async_service.py, branch 0.36.0-lmi27-dlc). A stream is vLLM's chunks as JSON lines:
  one chunk object per line with no `data:`, a blank line at the end and no [DONE]; a failure
  is a line `{"code": 424, "error": "..."}` or LMI's `{"code", "message"}` (djl-serving at
  d21927c4: lmi_vllm/request_response_utils.py vllm_stream_output_formatter strips `data: `
  and ends at [DONE]; async_utils.py create_stream_chunk_output adds the newline and the 424;
  engines/python/src/main/java/ai/djl/python/engine/Request.java addResponse writes each
  chunk as it comes; AsyncRequestManager.java sendErrorResponse the `{"code", "message"}`).
  Errors: `{"error", "code"}`.
- tgi (Text Generation Inference): chat is the Messages API (`messages` -> OpenAI chat
  answer, `model` "tgi" for the base model, any other value an adapter id), streamed as SSE
  chat.completion.chunk events and `data: [DONE]`, a failure as `{"error": {"message",
  "http_status_code"}}`. Completions are native: `{inputs, parameters}` -> `[{"generated_text",
  "details"}]`, the adapter in `parameters.adapter_id`; with `stream: true`, one SSE event
  `{"index", "token": {"id", "text", "logprob", "special"}, "generated_text", "details"}` per
  token, the last with `details {finish_reason, generated_tokens, input_length}`, the stop
  sequence kept in the text, and no [DONE]. Errors and native stream failures: `{"error",
  "error_type"}` (huggingface/text-generation-inference at db931fc: router/src/server.rs
  generate_stream and chat_completions, router/src/lib.rs StreamResponse,
  router/src/infer/mod.rs into_openai_event). Keep-alive comments (`:` lines) carry nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What the forwarder uses a route for (validate.CHAT, validate.COMPLETION).
CHAT = "chat"
COMPLETION = "completion"

# Request bodies.
OPENAI_CHAT = "openai-chat"  # {"messages", ...}
OPENAI_COMPLETION = "openai-completion"  # {"prompt", ...}
NATIVE = "native"  # {"inputs", "parameters"}

# Answers.
OPENAI_ANSWER = "openai"  # chat.completion / text_completion, with usage
NATIVE_LIST = "native-list"  # [{"generated_text", "details"?}]
NATIVE_OBJECT = "native-object"  # {"generated_text", "details"?}

# Stream framing.
SSE = "sse"  # `data: {json}` + blank line
JSON_LINES = "json-lines"  # `{json}` + newline

# Stream events.
OPENAI_CHUNK = "openai-chunk"  # {"id", "object", "created", "model", "choices", "usage"?}
TGI_TOKEN = "tgi-token"  # {"index", "token", "generated_text", "details"}

# Error bodies.
OPENAI_ERROR = "openai-error"  # {"object": "error", "message", "type", "param", "code"}
TGI_ERROR = "tgi-error"  # {"error", "error_type"}
LMI_ERROR = "lmi-error"  # {"error", "code"}

DONE = b"data: [DONE]\n\n"
# The keys of each stream event kind, as the engines send them.
STREAM_EVENT_KEYS: Mapping[str, frozenset[str]] = {
    OPENAI_CHUNK: frozenset({"id", "object", "created", "model", "choices"}),
    TGI_TOKEN: frozenset({"index", "token", "generated_text", "details"}),
}
TGI_TOKEN_KEYS = frozenset({"id", "text", "logprob", "special"})
# TGI's error_type -> the HTTP status TGI answers it with outside a stream (router/src/server.rs:
# validation 422, overloaded 429). "generation" (424 there) and "incomplete_generation" are the
# engine's own failures.
TGI_ERROR_STATUS: Mapping[str, int] = {"validation": 422, "overloaded": 429}
# 424 ("failed dependency") is how LMI and TGI report their own failures inside a stream.
ENGINE_FAILED = 424
# vLLM's error `type` per status (its ErrorResponse names the HTTP exception).
_OPENAI_ERROR_TYPES = {404: "NotFoundError"}


@dataclass(frozen=True)
class Route:
    """One body shape an engine takes on /invocations, and what it answers and streams."""

    kind: str  # CHAT or COMPLETION
    request: str  # OPENAI_CHAT, OPENAI_COMPLETION or NATIVE
    marker: str  # the body key that selects this route
    # Where the model's name goes; None: the engine names its model itself.
    model_key: tuple[str, ...] | None
    # What model_key says for the base model; None: the served model name.
    base_model: str | None
    adapter_key: tuple[str, ...]  # where a LoRA adapter's name goes
    max_tokens_key: tuple[str, ...]
    # What the engine generates when max tokens is not given; None: up to the context length.
    default_max_tokens: int | None
    stop_key: tuple[str, ...]
    answer: str  # OPENAI_ANSWER, NATIVE_LIST or NATIVE_OBJECT
    stream_event: str  # OPENAI_CHUNK or TGI_TOKEN
    stream_done: bool  # the stream ends with `data: [DONE]`
    # The generated text keeps the stop sequence that ended it (OpenAI leaves it out).
    keeps_stop_sequence: bool


@dataclass(frozen=True)
class Wire:
    """One engine: the routes the forwarder uses, every route it takes, framing and errors."""

    engine: str
    chat: Route
    completion: Route
    routes: tuple[Route, ...]  # every route it takes, in the order it checks the body
    framing: str  # SSE or JSON_LINES
    stream_content_type: str
    error: str  # OPENAI_ERROR, TGI_ERROR or LMI_ERROR
    validation_status: int  # the status of a body it cannot read
    unknown_adapter_status: int  # the status of an adapter it does not serve

    def route(self, kind: str) -> Route:
        """The route the forwarder uses for CHAT or COMPLETION."""
        return self.chat if kind == CHAT else self.completion

    def route_for(self, body: Mapping[str, Any]) -> Route | None:
        """The route the engine answers this body on; None if it has none."""
        return next((r for r in self.routes if r.marker in body), None)

    @property
    def markers(self) -> str:
        """The body keys it routes on, in words ("messages or prompt")."""
        names = [r.marker for r in self.routes]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

    # -- streams -------------------------------------------------------------------------------

    def frame(self, data: bytes) -> bytes:
        """One stream event's bytes (its JSON), as the engine writes them."""
        return b"data: " + data + b"\n\n" if self.framing == SSE else data + b"\n"

    def end(self, route: Route) -> bytes:
        """What the engine writes after its last event: [DONE], LMI's blank line, or nothing."""
        if route.stream_done:
            return DONE
        return b"\n" if self.framing == JSON_LINES else b""

    def reader(self) -> EventReader:
        """Reads this engine's stream back into the data of each event."""
        return EventReader(self.framing)

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The engine's own error body for an HTTP error status."""
        if self.error == OPENAI_ERROR:
            kind = _OPENAI_ERROR_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
            return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        if self.error == TGI_ERROR:
            error_type = "overloaded" if status == 429 else "validation" if status < 500 else "generation"
            return {"error": message, "error_type": error_type}
        return {"error": message, "code": status}

    def stream_error_event(self, route: Route, status: int, message: str) -> dict[str, Any]:
        """The event the engine sends when it fails after its stream started."""
        if self.error == OPENAI_ERROR:  # vLLM: OpenAI's error object
            return {"error": {"message": message, "type": "BadRequestError", "code": status}}
        if self.error == LMI_ERROR:
            return {"code": ENGINE_FAILED, "error": message}
        if route.stream_event == OPENAI_CHUNK:  # TGI's Messages API
            return {"error": {"message": message, "http_status_code": status}}
        return self.error_body(status, message)


def _openai_route(kind: str, *, model: bool, base_model: str | None, adapter_key: str, done: bool) -> Route:
    chat = kind == CHAT
    return Route(
        kind=kind,
        request=OPENAI_CHAT if chat else OPENAI_COMPLETION,
        marker="messages" if chat else "prompt",
        model_key=("model",) if model else None,
        base_model=base_model,
        adapter_key=(adapter_key,),
        max_tokens_key=("max_tokens",),
        # vLLM's CompletionRequest defaults max_tokens to 16 (vllm/entrypoints/openai/protocol.py);
        # a chat request generates up to the context length.
        default_max_tokens=None if chat else 16,
        stop_key=("stop",),
        answer=OPENAI_ANSWER,
        stream_event=OPENAI_CHUNK,
        stream_done=done,
        keeps_stop_sequence=False,
    )


def _native_route(*, adapter_key: tuple[str, ...], default_max_tokens: int, stop: str, answer: str) -> Route:
    return Route(
        kind=COMPLETION,
        request=NATIVE,
        marker="inputs",
        model_key=None,
        base_model=None,
        adapter_key=adapter_key,
        max_tokens_key=("parameters", "max_new_tokens"),
        default_max_tokens=default_max_tokens,
        stop_key=("parameters", stop),
        answer=answer,
        stream_event=TGI_TOKEN,
        stream_done=False,
        keeps_stop_sequence=True,
    )


_VLLM_CHAT = _openai_route(CHAT, model=True, base_model=None, adapter_key="model", done=True)
_VLLM_COMPLETION = _openai_route(COMPLETION, model=True, base_model=None, adapter_key="model", done=True)
_LMI_CHAT = _openai_route(CHAT, model=False, base_model=None, adapter_key="adapters", done=False)
_LMI_COMPLETION = _openai_route(COMPLETION, model=False, base_model=None, adapter_key="adapters", done=False)
# LMI's compatibility route; its stream's token says `log_prob`, not `logprob` (the forwarder does
# not stream it). max_new_tokens defaults: LMI 30 (djl-serving serving/docs/lmi/user_guides/lmi_input_output_schema.md),
# TGI 100 (text-generation-inference router/src/lib.rs default_max_new_tokens).
_LMI_NATIVE = _native_route(
    adapter_key=("adapters",), default_max_tokens=30, stop="stop_sequences", answer=NATIVE_OBJECT
)
_TGI_CHAT = _openai_route(CHAT, model=True, base_model="tgi", adapter_key="model", done=True)
_TGI_COMPLETION = _native_route(
    adapter_key=("parameters", "adapter_id"), default_max_tokens=100, stop="stop", answer=NATIVE_LIST
)

WIRES: Mapping[str, Wire] = {
    "vllm": Wire(
        engine="vllm",
        chat=_VLLM_CHAT,
        completion=_VLLM_COMPLETION,
        routes=(_VLLM_CHAT, _VLLM_COMPLETION),
        framing=SSE,
        stream_content_type="text/event-stream; charset=utf-8",
        error=OPENAI_ERROR,
        validation_status=400,
        unknown_adapter_status=404,
    ),
    "lmi": Wire(
        engine="lmi",
        chat=_LMI_CHAT,
        completion=_LMI_COMPLETION,
        routes=(_LMI_CHAT, _LMI_COMPLETION, _LMI_NATIVE),
        framing=JSON_LINES,
        # djl-serving engines/python/setup/djl_python/async_utils.py create_stream_chunk_output.
        stream_content_type="application/jsonlines",
        error=LMI_ERROR,
        validation_status=400,
        unknown_adapter_status=400,
    ),
    "tgi": Wire(
        engine="tgi",
        chat=_TGI_CHAT,
        completion=_TGI_COMPLETION,
        routes=(_TGI_CHAT, _TGI_COMPLETION),
        framing=SSE,
        stream_content_type="text/event-stream",
        error=TGI_ERROR,
        validation_status=422,
        unknown_adapter_status=422,
    ),
}


def for_engine(engine: str) -> Wire:
    try:
        return WIRES[engine]
    except KeyError:
        raise ValueError(f"engine must be one of {tuple(WIRES)}, not {engine!r}") from None


# -- where the model goes ----------------------------------------------------------------------


def get_path(body: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = body
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def set_path(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        body = body.setdefault(key, {})
    body[path[-1]] = value


def name_model(route: Route, body: dict[str, Any], served_model: str, adapter: str | None) -> None:
    """Say in `body` which model answers: the adapter, or the base model (where the engine wants a name)."""
    if adapter:
        set_path(body, route.adapter_key, adapter)
    elif route.model_key is not None:
        set_path(body, route.model_key, route.base_model or served_model)


def requested_adapter(route: Route, body: Mapping[str, Any], served_model: str) -> Any:
    """The adapter a body asks for, as sent (maybe not a string); None when it asks for the base model."""
    value = get_path(body, route.adapter_key)
    if value is None or value == "":
        return None
    if route.adapter_key == route.model_key and value == (route.base_model or served_model):
        return None
    return value


# -- answers -------------------------------------------------------------------------------------


def native_answer(route: Route, item: dict[str, Any]) -> Any:
    """A native answer's body: TGI's is a one-item list, LMI's the object itself."""
    return [item] if route.answer == NATIVE_LIST else item


def native_item(answer: Any) -> Any:
    """The `{"generated_text", "details"}` object of a native answer, list or not."""
    return answer[0] if isinstance(answer, list) and answer else answer


# -- streams -------------------------------------------------------------------------------------


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


class EventReader:
    """An engine's stream in arbitrary pieces -> the data of each event ("[DONE]" included).

    JSON lines: every non-blank line is an event. SSE: the `data:` lines of an event, joined,
    once a blank line ends it; other fields (event:, id:, retry:) and comments carry nothing here.
    """

    def __init__(self, framing: str) -> None:
        self._lines = LineBuffer()
        self._sse = framing == SSE
        self._data: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        return self._events(self._lines.feed(data))

    def close(self) -> list[str]:
        events = self._events(self._lines.close())
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _events(self, lines: list[str]) -> list[str]:
        events: list[str] = []
        for line in lines:
            if not self._sse:
                if line.strip():
                    events.append(line)
            elif not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
        return events


# -- errors --------------------------------------------------------------------------------------


def error_message(body: Any) -> str:
    """The human part of an engine's parsed error body (vLLM `message` or `error.message`, TGI
    and LMI `error`, a proxy's `detail`), at most 1,000 characters; "" if it has none."""
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value[:1000]
    return ""


@dataclass(frozen=True)
class StreamError:
    """An engine's in-stream error event: the status it reports, as sent (maybe absent, or not a number)."""

    status: Any


def read_stream_error(event: Mapping[str, Any]) -> StreamError | None:
    """The error an in-stream event reports; None when the event is not an error."""
    if "choices" in event or "token" in event:
        return None
    error = event.get("error")
    if isinstance(error, dict):  # vLLM ({"error": {"message", "code"}}), TGI chat ({"http_status_code"})
        return StreamError(error.get("code", error.get("http_status_code")))
    if isinstance(error, str):  # TGI native ({"error_type"}), LMI ({"code"})
        return StreamError(TGI_ERROR_STATUS.get(event.get("error_type") or "", event.get("code")))
    if event.get("object") == "error":  # older vLLM: {"object": "error", "message", "code"}
        return StreamError(event.get("code"))
    if isinstance(event.get("code"), int) and isinstance(event.get("message"), str):  # LMI's {"code", "message"}
        return StreamError(event["code"])
    return None
