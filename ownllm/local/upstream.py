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

Standard library only; one HTTP request per call (urllib), bounded by `timeout_s`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ownllm.forwarder import contract, forwarder_module
from ownllm.urls import is_http_url

ENGINES: tuple[str, ...] = contract().ENGINES
_WIRE = forwarder_module("wire")
# The upstream's OpenAI route for each of the engine's OpenAI bodies.
_OPENAI_ROUTES = {_WIRE.OPENAI_CHAT: "/chat/completions", _WIRE.OPENAI_COMPLETION: "/completions"}
_JSON = {"Content-Type": "application/json"}
# SageMaker gives a container 60 s to answer an invocation.
CONTAINER_TIMEOUT_S = 60.0


class UpstreamError(Exception):
    """The upstream server cannot be used, said in one line for the user."""


class OpenAIUpstream:
    """`backend(endpoint_name, body, headers) -> (status, headers, body)` over an OpenAI-compatible server."""

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
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(400, f"JSON decode error: {exc}")
        if not isinstance(payload, dict):
            return self._error(400, "request body must be a JSON object")
        route = self.wire.route_for(payload)
        if route is None:
            return self._error(self.wire.validation_status, f"request needs {self.wire.markers}")
        if route.request in _OPENAI_ROUTES:
            return self._openai(route, payload)
        return self._native(route, payload)

    def _upstream_model(self, route: Any, payload: dict) -> str:
        """The adapter the body names, if the upstream serves it under that name; else the upstream's model."""
        requested = _WIRE.requested_adapter(route, payload, self.model or "")
        if isinstance(requested, str) and requested in self.adapters:
            return requested
        if self.model:
            return self.model
        named = _WIRE.get_path(payload, route.model_key) if route.model_key else None
        return named if isinstance(named, str) else ""

    def _openai(self, route: Any, payload: dict) -> tuple[int, dict, bytes]:
        body = dict(payload)
        model = self._upstream_model(route, payload)
        if route.adapter_key != route.model_key:  # LMI's `adapters`: not an OpenAI field
            body.pop(route.adapter_key[0], None)
        body["model"] = model
        body["stream"] = False  # InvokeEndpoint answers once; the forwarder re-streams if asked
        body.pop("stream_options", None)
        status, data = self._call("POST", _OPENAI_ROUTES[route.request], body)
        if status is None or not 200 <= status < 300:
            return self._failed(status, data)
        return status, dict(_JSON), data

    def _native(self, route: Any, payload: dict) -> tuple[int, dict, bytes]:
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

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(
        self, method: str, route: str, body: dict | None, timeout_s: float | None = None
    ) -> tuple[int | None, bytes]:
        """(status, body); status None when no HTTP answer came (the body then says why)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + route, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s or self.timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, f"{type(reason).__name__}: {reason}".encode()

    def _failed(self, status: int | None, data: bytes) -> tuple[int, dict, bytes]:
        if status is None:  # no answer: what a container that cannot reach its model server would say
            return self._error(502, f"upstream {self.base_url} did not answer ({data.decode(errors='replace')})")
        return self._error(status, _message(data) or f"upstream answered {status}")

    def _error(self, status: int, message: str) -> tuple[int, dict, bytes]:
        """An error in the engine's own shape (the forwarder reads `message` or `error`)."""
        return status, dict(_JSON), json.dumps(self.wire.error_body(status, message)).encode()


def _message(data: bytes) -> str:
    """The human part of an OpenAI-style error body, or the start of a body that is not JSON."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return data[:500].decode(errors="replace").strip()
    message: str = _WIRE.error_message(parsed)
    return message


def _details(choice: dict, usage: dict, prefill: bool, engine: str) -> dict:
    """TGI's/LMI's `details` from an OpenAI completion: finish reason and the upstream's token counts.

    An OpenAI server does not return prompt tokens, so `prefill` holds one placeholder per
    prompt token it counted: the forwarder reads only how many there are.
    """
    finish = choice.get("finish_reason")
    if finish == "length":
        reason = "length"
    elif isinstance(choice.get("stop_reason"), str):  # vLLM names the stop string that ended it
        reason = "stop_sequence"
    else:
        reason = "eos_token"
    details: dict[str, Any] = {"finish_reason": reason}
    completion_tokens = usage.get("completion_tokens")
    if isinstance(completion_tokens, int):
        details["generated_tokens"] = completion_tokens
    prompt_tokens = usage.get("prompt_tokens")
    if prefill and isinstance(prompt_tokens, int) and prompt_tokens > 0:
        details["prefill"] = [{"id": 0, "text": "", "logprob": None} for _ in range(prompt_tokens)]
    if engine == "tgi":
        details["seed"] = None
    return details
