"""Token counts of a batch before it is sent: the input as the forwarder estimates it, and
the most output the requests allow (their max_tokens, or the API's default)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from ownllm.batch.jsonl import BatchRequest


def _tokens() -> ModuleType:
    """The forwarder's own estimate (about 4 bytes of UTF-8 per token, plus per-message
    overhead), loaded by path so the batch tool and the API count the same way."""
    from ownllm.forwarder import forwarder_module

    return forwarder_module("tokens")


def estimate_text(text: str) -> int:
    return int(_tokens().estimate(text))


def estimate_messages(contents: list[str]) -> int:
    return int(_tokens().estimate_chat([{"content": c} for c in contents]))


def _text(content: object) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def input_tokens(request: BatchRequest) -> int | None:
    """The forwarder's estimate of one request's prompt; None when it has no prompt to read."""
    body = request.body
    if request.url.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        contents = [_text(m.get("content")) if isinstance(m, dict) else None for m in messages]
        if any(c is None for c in contents):
            return None
        return estimate_messages([c for c in contents if c is not None])
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return estimate_text(prompt) if isinstance(prompt, str) else None


def _cap(request: BatchRequest) -> object:
    """The cap the forwarder reads: max_completion_tokens wins over max_tokens (None: neither set)."""
    body = request.body
    value = body.get("max_completion_tokens")
    return body.get("max_tokens") if value is None else value


def max_output_tokens(request: BatchRequest) -> int | None:
    """The request's own cap, or None when it sets none or one the forwarder refuses."""
    value = _cap(request)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the forwarder reads 100.0 as 100
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def refuses_max_tokens(request: BatchRequest) -> bool:
    """A cap the forwarder answers 400 to: not a whole number, or below 1 (lambda/forwarder/validate.py)."""
    return _cap(request) is not None and max_output_tokens(request) is None


@dataclass(frozen=True)
class TokenCount:
    requests: int
    input_tokens: int  # estimated, over the requests with a readable prompt
    unreadable: int  # requests whose prompt the forwarder would refuse (not counted above)
    output_tokens_max: int
    defaulted: int  # requests without their own cap, counted at default_max_tokens
    default_max_tokens: int
    bad_max_tokens: int = 0  # requests whose max_tokens the forwarder refuses: nothing counted
    too_large: int = 0  # requests whose body is over max_request_bytes (answered 413): nothing counted
    max_request_bytes: int | None = None

    @property
    def refused(self) -> int:
        return self.bad_max_tokens + self.too_large

    @property
    def served(self) -> int:
        """The requests that reach the model."""
        return self.requests - self.refused


def count_tokens(
    requests: Iterable[BatchRequest], default_max_tokens: int, max_request_bytes: int | None = None
) -> TokenCount:
    total = inputs = unreadable = outputs = defaulted = bad_cap = too_large = 0
    for request in requests:
        total += 1
        if max_request_bytes is not None and len(request.payload()) > max_request_bytes:
            too_large += 1  # answered 413 by the forwarder: it reads and generates nothing
            continue
        if refuses_max_tokens(request):
            bad_cap += 1  # answered 400 before the model: it reads and generates nothing
            continue
        prompt = input_tokens(request)
        if prompt is None:
            unreadable += 1
        else:
            inputs += prompt
        cap = max_output_tokens(request)
        if cap is None:
            defaulted += 1
            cap = default_max_tokens
        outputs += cap
    return TokenCount(
        total, inputs, unreadable, outputs, defaulted, default_max_tokens, bad_cap, too_large, max_request_bytes
    )
