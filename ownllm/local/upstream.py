"""A RuntimeServer backend that asks a model you already run: any OpenAI-compatible server.

vLLM (`vllm serve`), the llama.cpp server and Ollama all speak OpenAI's HTTP API. This
backend makes such a server look like the inference container the stack would deploy, so
the real forwarder Lambda talks to it in the configured engine's wire shape:

- a body with `messages` (every engine's chat) -> upstream POST /chat/completions, and its
  OpenAI answer back unchanged (vLLM, LMI and TGI all answer chat in OpenAI shape);
- a vllm or lmi (async mode) body with `prompt` -> upstream POST /completions, answer unchanged;
- a TGI or LMI native body `{inputs, parameters}` -> upstream POST /completions, and the
  answer rebuilt in the engine's shape: TGI `[{"generated_text", "details"}]`, LMI
  `{"generated_text", "details"}`, with the upstream's token counts in `details`.

`model` is rewritten to the upstream's model name (the forwarder sends the served model
name, or "tgi" for TGI's chat route), except for an adapter name, which is passed on as
vLLM serves LoRA adapters under their names. Upstream errors come back with their status
and the message in the engine's error shape, so the forwarder maps them as on SageMaker.
Which body goes where, where each engine puts the adapter, its native defaults and its
error bodies come from the one description of each engine's wire format (lambda/forwarder/wire.py).

One HTTP client, httpx2 (pinned in pyproject.toml), each request on its own connection and
bounded by `timeout_s`; a loopback upstream is called directly, never through a proxy the
environment names.

`stream` (what the local runtime's InvokeEndpointWithResponseStream route calls) asks the
upstream with `stream: true` and writes each OpenAI chunk, as it arrives, in the engine's own
stream framing and event shape (wire.py): vLLM's SSE chunks and [DONE], LMI's JSON lines and
blank last line, TGI's chat SSE and [DONE] or, for `{inputs}`, its native token events with
`details` on the last. A failure before the first chunk is a non-2xx with the engine's error
body, as `__call__` answers; after it, the engine's in-band error event ends the stream.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from ownllm.forwarder import contract, forwarder_module
from ownllm.urls import honours_proxy_env, is_http_url

ENGINES: tuple[str, ...] = contract().ENGINES
_WIRE = forwarder_module("wire")
# The upstream's OpenAI route for each of the engine's OpenAI bodies.
_OPENAI_ROUTES = {_WIRE.OPENAI_CHAT: "/chat/completions", _WIRE.OPENAI_COMPLETION: "/completions"}
_JSON = {"Content-Type": "application/json"}
# What an OpenAI-compatible server answers `stream: true` with (server-sent events).
_EVENT_STREAM = "text/event-stream"
# SageMaker gives a container 60 s to answer an invocation.
CONTAINER_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
# The status an upstream that breaks off (or answers nonsense) is reported with: a bad gateway.
_BROKEN = 502


class UpstreamError(Exception):
    """The upstream server cannot be used, said in one line for the user."""


@dataclass(frozen=True)
class _Body:
    """An invocation's body, read: the JSON object and the engine's route for it."""

    payload: dict
    route: Any


@dataclass(frozen=True)
class _Failure:
    """The upstream failed while streaming: the status and message the engine reports it with."""

    status: int
    message: str


class OpenAIUpstream:
    """`backend(endpoint_name, body, headers) -> (status, headers, body)` over an OpenAI-compatible server,
    and `backend.stream(...) -> (status, headers, pieces)` for InvokeEndpointWithResponseStream."""

    def __init__(
        self,
        base_url: str,
        engine: str = "vllm",
        *,
        model: str | None = None,
        adapters: tuple[str, ...] | list[str] = (),
        api_key: str | None = None,
        timeout_s: float = CONTAINER_TIMEOUT_S,
    ):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        if not is_http_url(base_url):
            raise UpstreamError(
                f"upstream URL {base_url!r} is not an http:// or https:// URL with a host (and a port up to 65535), "
                "e.g. http://127.0.0.1:8000/v1"
            )
        self.base_url = base_url.rstrip("/")
        self.engine = engine
        self.wire = _WIRE.for_engine(engine)
        self.model = model
        self.adapters = tuple(adapters)
        self.api_key = api_key
        self.timeout_s = timeout_s
        # No keep-alive: each invocation opens its own connection, as urllib did before, so no idle
        # socket outlives a call and an upstream that went away is seen on the next one.
        self._http = httpx2.Client(
            trust_env=honours_proxy_env(self.base_url),
            follow_redirects=True,
            limits=httpx2.Limits(max_keepalive_connections=0),
        )

    def close(self) -> None:
        self._http.close()

    # -- set-up ----------------------------------------------------------------------------------

    def discover_model(self) -> str:
        """The first model GET {base_url}/models lists (what the upstream serves)."""
        status, data = self._call("GET", "/models", None, timeout_s=5.0)
        if status is None:
            raise UpstreamError(f"cannot reach the upstream at {self.base_url}: {data.decode(errors='replace')}")
        if status != 200:
            raise UpstreamError(f"GET {self.base_url}/models answered {status}: {data[:200].decode(errors='replace')}")
        try:
            return str(json.loads(data)["data"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise UpstreamError(
                f"GET {self.base_url}/models lists no model; pass the name with --upstream-model"
            ) from None

    def resolved(self) -> OpenAIUpstream:
        """This backend with its upstream model name filled in (asked of the server if not given)."""
        if self.model is None:
            self.model = self.discover_model()
        return self

    # -- one invocation ----------------------------------------------------------------------------

    def __call__(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        parsed = self._parse(body)
        if not isinstance(parsed, _Body):
            return parsed
        payload, route = parsed.payload, parsed.route
        if route.request in _OPENAI_ROUTES:
            return self._openai(route, payload)
        return self._native(route, payload)

    def _parse(self, body: bytes) -> _Body | tuple[int, dict, bytes]:
        """The body read, or the engine's error answer to a body it cannot read."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(400, f"JSON decode error: {exc}")
        if not isinstance(payload, dict):
            return self._error(400, "request body must be a JSON object")
        route = self.wire.route_for(payload)
        if route is None:
            return self._error(self.wire.validation_status, f"request needs {self.wire.markers}")
        return _Body(payload, route)

    def _upstream_model(self, route: Any, payload: dict) -> str:
        """The adapter the body names, if the upstream serves it under that name; else the upstream's model."""
        requested = _WIRE.requested_adapter(route, payload, self.model or "")
        if isinstance(requested, str) and requested in self.adapters:
            return requested
        if self.model:
            return self.model
        named = _WIRE.get_path(payload, route.model_key) if route.model_key else None
        return named if isinstance(named, str) else ""

    def _openai_body(self, route: Any, payload: dict) -> dict:
        """The engine's OpenAI body as the upstream takes it: its model name, no engine-only fields."""
        body = dict(payload)
        model = self._upstream_model(route, payload)
        if route.adapter_key != route.model_key:  # LMI's `adapters`: not an OpenAI field
            body.pop(route.adapter_key[0], None)
        body["model"] = model
        return body

    def _openai(self, route: Any, payload: dict) -> tuple[int, dict, bytes]:
        body = self._openai_body(route, payload)
        body["stream"] = False  # InvokeEndpoint answers once; the forwarder re-streams if asked
        body.pop("stream_options", None)
        status, data = self._call("POST", _OPENAI_ROUTES[route.request], body)
        if status is None or not 200 <= status < 300:
            return self._failed(status, data)
        return status, dict(_JSON), data

    def _native_body(self, route: Any, payload: dict) -> dict | tuple[int, dict, bytes]:
        """The upstream's /completions body for a native `{inputs, parameters}` one, or the engine's refusal."""
        inputs = payload.get("inputs")
        params = payload.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(params, dict):
            return self._error(self.wire.validation_status, "inputs must be a string and parameters an object")
        max_new = _WIRE.get_path(payload, route.max_tokens_key)
        body: dict[str, Any] = {
            "model": self._upstream_model(route, payload),
            "prompt": inputs,
            "max_tokens": route.default_max_tokens if max_new is None else max_new,
            "stream": False,
        }
        if params.get("do_sample") is False:
            body["temperature"] = 0.0
        elif params.get("temperature") is not None:
            body["temperature"] = params["temperature"]
        for key in ("top_p", "seed", "frequency_penalty", "presence_penalty"):
            if params.get(key) is not None:
                body[key] = params[key]
        stop = _WIRE.get_path(payload, route.stop_key)
        if stop:
            body["stop"] = stop
        return body

    def _native(self, route: Any, payload: dict) -> tuple[int, dict, bytes]:
        body = self._native_body(route, payload)
        if isinstance(body, tuple):
            return body
        params = payload.get("parameters") or {}
        status, data = self._call("POST", "/completions", body)
        if status is None or not 200 <= status < 300:
            return self._failed(status, data)
        try:
            answer = json.loads(data)
            choice = answer["choices"][0]
            text = choice.get("text") or ""
            usage = answer.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return 200, dict(_JSON), data  # not OpenAI's shape: pass it on for the forwarder to refuse
        item: dict[str, Any] = {"generated_text": text}
        if params.get("details"):
            item["details"] = _details(choice, usage, bool(params.get("decoder_input_details")), self.engine)
        return 200, dict(_JSON), json.dumps(_WIRE.native_answer(route, item)).encode()

    # -- one streaming invocation --------------------------------------------------------------

    def stream(self, endpoint_name: str, body: bytes, headers: dict) -> tuple[int, dict, Iterator[bytes]]:
        """(status, headers, pieces): the upstream's stream in the engine's framing, each piece as it arrives.

        Returns once the first piece is in hand, so that an upstream that refuses (a non-2xx, or an
        error event first) is answered with a status, as an engine refuses before it generates.
        """
        parsed = self._parse(body)
        if not isinstance(parsed, _Body):
            return _whole(parsed)
        payload, route = parsed.payload, parsed.route
        if route not in (self.wire.chat, self.wire.completion):
            served = f"{self.wire.chat.marker} and {self.wire.completion.marker}"
            return _whole(
                self._error(400, f"--upstream streams the bodies the forwarder sends {self.engine} only ({served})")
            )
        translator: _Chunks | _TgiTokens
        if route.request in _OPENAI_ROUTES:
            upstream_body = self._openai_body(route, payload)
            path = _OPENAI_ROUTES[route.request]
            translator = _Chunks(self.wire, route)
        else:
            native = self._native_body(route, payload)
            if isinstance(native, tuple):
                return _whole(native)
            upstream_body, path = native, "/completions"
            # The last token event's details carry the counts: ask for them. stream_options.include_usage
            # adds a last chunk with `choices: []` and `usage` (vLLM: StreamOptions in
            # vllm-project/vllm vllm/entrypoints/openai/protocol.py at 0052bed).
            upstream_body["stream_options"] = {"include_usage": True}
            translator = _TgiTokens(self.wire, route, payload.get("parameters") or {})
        upstream_body["stream"] = True
        opened = self._open_stream(path, upstream_body)
        if isinstance(opened, tuple):
            return _whole(opened)
        items = self._relay(opened, translator)
        first = next(items, None)
        if isinstance(first, _Failure):
            items.close()
            return _whole(self._error(first.status, first.message))
        return 200, {"Content-Type": self.wire.stream_content_type}, self._pieces(first, items, route)

    def _open_stream(self, path: str, body: dict) -> httpx2.Response | tuple[int, dict, bytes]:
        """The upstream's streaming response, its status and headers read; or the engine's error answer."""
        request = self._http.build_request(
            "POST",
            self.base_url + path,
            content=json.dumps(body).encode(),
            headers=self._headers(_EVENT_STREAM),
            timeout=self._timeout(),
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx2.HTTPError as exc:
            return self._failed(None, _reason(exc).encode())
        content_type = response.headers.get("content-type", "")
        ok = 200 <= response.status_code < 300
        if ok and content_type.startswith(_EVENT_STREAM):
            return response
        try:
            if not ok:
                return self._failed(response.status_code, response.read())
            what = content_type or "no content type"
            return self._error(_BROKEN, f"upstream answered stream: true with {what}, not {_EVENT_STREAM}")
        except httpx2.HTTPError as exc:
            return self._failed(None, _reason(exc).encode())
        finally:
            response.close()

    def _relay(
        self, response: httpx2.Response, translator: _Chunks | _TgiTokens
    ) -> Generator[bytes | _Failure, None, None]:
        """The engine's pieces for each upstream event as it arrives; a _Failure ends them."""
        try:
            for data in _events(response):
                try:
                    event = json.loads(data)
                except (ValueError, RecursionError):
                    yield _Failure(_BROKEN, f"upstream sent a stream event that is not JSON ({len(data)} bytes)")
                    return
                if not isinstance(event, dict):
                    yield _Failure(_BROKEN, f"upstream sent a stream event that is a JSON {type(event).__name__}")
                    return
                reported = _WIRE.read_stream_error(event)
                if reported is not None:
                    yield _Failure(_error_status(reported.status), _WIRE.error_message(event) or "upstream failed")
                    return
                yield from translator.event(event)
            if not translator.finished:
                yield _Failure(_BROKEN, f"upstream {self.base_url} ended its stream before a finish_reason")
                return
            yield from translator.end()
        except httpx2.HTTPError as exc:
            yield _Failure(_BROKEN, f"upstream {self.base_url} broke off its stream ({_reason(exc)})")
        finally:
            response.close()

    def _pieces(
        self, first: bytes | None, items: Generator[bytes | _Failure, None, None], route: Any
    ) -> Iterator[bytes]:
        """The first piece, then the rest; a failure as the engine's in-band error event, which ends it."""
        try:
            if first is not None:
                yield first
            for item in items:
                if isinstance(item, _Failure):
                    event = self.wire.stream_error_event(route, item.status, item.message)
                    yield self.wire.frame(json.dumps(event).encode())
                    return
                yield item
        finally:
            items.close()

    # -- plumbing ----------------------------------------------------------------------------------

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _call(
        self, method: str, route: str, body: dict | None, timeout_s: float | None = None
    ) -> tuple[int | None, bytes]:
        """(status, body); status None when no HTTP answer came (the body then says why)."""
        data = None if body is None else json.dumps(body).encode()
        try:
            response = self._http.request(
                method,
                self.base_url + route,
                content=data,
                headers=self._headers("application/json"),
                timeout=self._timeout(timeout_s or self.timeout_s),
            )
        except httpx2.HTTPError as exc:
            return None, _reason(exc).encode()
        return response.status_code, response.content

    def _timeout(self, timeout_s: float | None = None) -> httpx2.Timeout:
        """Each read (for a stream: each gap between its pieces) bounded by timeout_s; connecting sooner."""
        total = timeout_s or self.timeout_s
        return httpx2.Timeout(total, connect=min(CONNECT_TIMEOUT_S, total))

    def _failed(self, status: int | None, data: bytes) -> tuple[int, dict, bytes]:
        if status is None:  # no answer: what a container that cannot reach its model server would say
            return self._error(_BROKEN, f"upstream {self.base_url} did not answer ({data.decode(errors='replace')})")
        return self._error(status, _message(data) or f"upstream answered {status}")

    def _error(self, status: int, message: str) -> tuple[int, dict, bytes]:
        """An error in the engine's own shape (the forwarder reads `message` or `error`)."""
        return status, dict(_JSON), json.dumps(self.wire.error_body(status, message)).encode()


# -- stream events, OpenAI's -> the engine's ---------------------------------------------------------


class _Chunks:
    """OpenAI chunks -> an OpenAI-shaped engine's (vLLM, LMI, TGI's Messages API): the same chunk, framed its way."""

    def __init__(self, wire: Any, route: Any) -> None:
        self.wire, self.route = wire, route
        self.finished = False

    def event(self, chunk: dict) -> list[bytes]:
        choices = chunk.get("choices")
        if isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
            self.finished = True
        return [self.wire.frame(json.dumps(chunk, separators=(",", ":")).encode())]

    def end(self) -> list[bytes]:
        end: bytes = self.wire.end(self.route)
        return [end] if end else []


class _TgiTokens:
    """OpenAI completion chunks -> TGI's native token events: one per chunk, the last (held until the
    counts arrive in the usage chunk) with the whole text and `details`.

    An OpenAI stream gives no token ids or special tokens: each event's token has id 0 and no
    logprob, and a natural end with no text of its own is sent as a special token, as TGI ends
    with its end-of-sequence token. TGI keeps a stop sequence in the text; OpenAI leaves it out
    and vLLM names it in `stop_reason`, so it is put back.
    """

    def __init__(self, wire: Any, route: Any, params: dict) -> None:
        self.wire, self.route, self.params = wire, route, params
        self.index = 0
        self.text: list[str] = []
        self.last: dict | None = None  # the choice with the finish_reason
        self.usage: dict = {}

    @property
    def finished(self) -> bool:
        return self.last is not None

    def event(self, chunk: dict) -> list[bytes]:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        out: list[bytes] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0 or self.last is not None:
                continue
            if choice.get("finish_reason"):
                self.last = choice
            else:
                text = choice.get("text")
                if isinstance(text, str) and text:
                    out.append(self._token(text))
        return out

    def end(self) -> list[bytes]:
        choice = self.last or {}
        raw = choice.get("text")
        text = raw if isinstance(raw, str) else ""
        finish = _finish_reason(choice)
        stop = choice.get("stop_reason")
        if finish == "stop_sequence" and isinstance(stop, str):
            text += stop
        details: dict[str, Any] = {"finish_reason": finish}
        for key, count in (("generated_tokens", "completion_tokens"), ("input_length", "prompt_tokens")):
            value = self.usage.get(count)
            if isinstance(value, int) and not isinstance(value, bool):
                details[key] = value
        details["seed"] = self.params.get("seed")
        last = self._token(
            text,
            special=not text and finish == "eos_token",
            generated_text="".join([*self.text, text]),
            details=details if self.params.get("details") else None,
        )
        end: bytes = self.wire.end(self.route)
        return [last, end] if end else [last]

    def _token(
        self, text: str, *, special: bool = False, generated_text: str | None = None, details: dict | None = None
    ) -> bytes:
        self.index += 1
        if not special:
            self.text.append(text)
        event = {
            "index": self.index,
            "token": {"id": 0, "text": text, "logprob": None, "special": special},
            "generated_text": generated_text,
            "details": details,
        }
        return bytes(self.wire.frame(json.dumps(event, separators=(",", ":")).encode()))


def _events(response: httpx2.Response) -> Iterator[str]:
    """The data of each server-sent event of an OpenAI stream as it arrives, up to `[DONE]`."""
    reader = _WIRE.EventReader(_WIRE.SSE)
    for data in response.iter_bytes():
        for event in reader.feed(data):
            if event.strip() == "[DONE]":
                return
            yield event
    for event in reader.close():
        if event.strip() == "[DONE]":
            return
        yield event


def _whole(answer: tuple[int, dict, bytes]) -> tuple[int, dict, Iterator[bytes]]:
    status, headers, body = answer
    return status, headers, iter([body])


def _error_status(status: Any) -> int:
    """An in-stream error's status as an HTTP error status (anything else: the upstream's own failure, 500)."""
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status < 600:
        return status
    return 500


def _reason(exc: Exception) -> str:
    """Why no answer came, from the error underneath the client's (ConnectionRefusedError: [Errno 111] ...)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            return f"{type(cause).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"


def _message(data: bytes) -> str:
    """The human part of an OpenAI-style error body, or the start of a body that is not JSON."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data[:500].decode(errors="replace").strip()
    message: str = _WIRE.error_message(parsed)
    return message


def _finish_reason(choice: dict) -> str:
    """TGI's finish reason for an OpenAI choice."""
    if choice.get("finish_reason") == "length":
        return "length"
    # vLLM's stop_reason: the stop string (or stop token id) that ended it, None at EOS
    # (CompletionResponseStreamChoice and CompletionResponseChoice, vllm/entrypoints/openai/protocol.py at 0052bed).
    if isinstance(choice.get("stop_reason"), str):
        return "stop_sequence"
    return "eos_token"


def _details(choice: dict, usage: dict, prefill: bool, engine: str) -> dict:
    """TGI's/LMI's `details` from an OpenAI completion: finish reason and the upstream's token counts.

    An OpenAI server does not return prompt tokens, so `prefill` holds one placeholder per
    prompt token it counted: the forwarder reads only how many there are.
    """
    details: dict[str, Any] = {"finish_reason": _finish_reason(choice)}
    completion_tokens = usage.get("completion_tokens")
    if isinstance(completion_tokens, int):
        details["generated_tokens"] = completion_tokens
    prompt_tokens = usage.get("prompt_tokens")
    if prefill and isinstance(prompt_tokens, int) and prompt_tokens > 0:
        details["prefill"] = [{"id": 0, "text": "", "logprob": None} for _ in range(prompt_tokens)]
    if engine == "tgi":
        details["seed"] = None
    return details
